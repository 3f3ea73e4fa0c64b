//! Membership of a collaborator: invitations (a member at once, or waiting for an account
//! with the email), members and their read-only flag, and the invitations accepted at sign-up
//! and login.

use serde::Deserialize;
use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::Action,
    accounts::validate_email,
    kind::Kind,
    model::{CollabMember, Invitation},
    plan::Write,
    store::on_duplicate,
    time,
};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    pub email: String,
    #[serde(default)]
    pub read_only: bool,
}

impl Engine {
    /// Invites a person into a collaborator (free access). With an account that proved the
    /// email they are a member at once; otherwise the invitation waits until an account with
    /// that email proves it (see `crate::proof`).
    pub async fn invite(&self, actor: &str, event: &str, collab: &str, input: InviteInput) -> Result<Invitation> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        let email = validate_email(&input.email)?;
        let now = time::now();
        let (account, proven) = self.proven_account(&email).await?;
        let Some(person) = account.filter(|_| proven) else {
            let key = format!("{event}|{email}");
            let pending = PendingInvitation {
                event: event.into(),
                collaborator: c.id.clone(),
                email: email.clone(),
                read_only: input.read_only,
                invited_by: actor.into(),
                created_at: now,
            };
            let previous: Option<PendingInvitation> = self
                .store
                .run(
                    "SELECT event, collaborator, email, read_only, invited_by, created_at FROM type::record('invitation', $k)",
                    json!({ "k": key }),
                )
                .await?
                .first(0)?;
            let write = match previous {
                Some(p) => Write::replace(Kind::Invitation, &key, &pending, vec![p.collaborator], vec![c.id.clone()])?,
                None => Write::create(Kind::Invitation, &key, &pending, vec![c.id.clone()])?,
            };
            self.commit(event, vec![write]).await?;
            return Ok(Invitation::Pending { email, collaborator: c.id, read_only: input.read_only });
        };
        let member = CollabMember {
            event: event.into(),
            collaborator: c.id.clone(),
            person: person.id.clone(),
            read_only: input.read_only,
            invited_by: actor.into(),
            created_at: now,
        };
        let existing: Option<String> = self
            .store
            .run(
                "SELECT VALUE collaborator FROM type::record('collab_member', $e + '|' + $p)",
                json!({ "e": event, "p": person.id }),
            )
            .await?
            .value(0)?;
        if let Some(other) = existing {
            let message = if other == c.id {
                "that person is already a member of this collaborator"
            } else {
                "that person already belongs to another collaborator of this event; someone who needs more than one collaborator needs an Event Pro seat"
            };
            return Err(Error::conflict("already_member", message));
        }
        self.commit(
            event,
            vec![
                Write::create(Kind::CollabMember, &member_key(event, &person.id), &member, vec![c.id.clone()])?
                    .about(&person.id),
            ],
        )
        .await
        .map_err(|e| {
            on_duplicate(e, "already_member", "that person already belongs to a collaborator of this event")
        })?;
        Ok(Invitation::Member { person: person.id, collaborator: c.id, read_only: input.read_only })
    }

    pub async fn list_collab_members(&self, actor: &str, event: &str, collab: &str) -> Result<Vec<CollabMember>> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Read, false).await?;
        self.store
            .run(
                "SELECT event, collaborator, person, read_only, invited_by, created_at FROM collab_member
                     WHERE collaborator = $c ORDER BY created_at",
                json!({ "c": c.id }),
            )
            .await?
            .all(0)
    }

    /// Sets read-only for one person in a collaborator.
    pub async fn set_member_read_only(
        &self,
        actor: &str,
        event: &str,
        collab: &str,
        person: &str,
        read_only: bool,
    ) -> Result<()> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        let mut member = self
            .collab_member(event, person)
            .await?
            .filter(|m| m.collaborator == c.id)
            .ok_or(Error::not_found("member"))?;
        member.read_only = read_only;
        let scope = vec![c.id.clone()];
        let write = Write::replace(Kind::CollabMember, &member_key(event, person), &member, scope.clone(), scope)?
            .about(person);
        self.commit(event, vec![write]).await?;
        Ok(())
    }

    pub async fn remove_collab_member(&self, actor: &str, event: &str, collab: &str, person: &str) -> Result<()> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        self.collab_member(event, person)
            .await?
            .filter(|m| m.collaborator == c.id)
            .ok_or(Error::not_found("member"))?;
        self.commit(
            event,
            vec![Write::delete(Kind::CollabMember, &member_key(event, person), vec![c.id.clone()]).about(person)],
        )
        .await?;
        Ok(())
    }

    async fn collab_member(&self, event: &str, person: &str) -> Result<Option<CollabMember>> {
        self.store
            .run(
                "SELECT event, collaborator, person, read_only, invited_by, created_at FROM type::record('collab_member', $k)",
                json!({ "k": member_key(event, person) }),
            )
            .await?
            .first(0)
    }

    /// Turns the invitations waiting for `person`'s (proven) email into memberships, one
    /// event at a time (see [`Engine::grant_waiting`]).
    pub(crate) async fn accept_invitations(&self, person: &str, email: &str) -> Result<()> {
        let pending: Vec<PendingInvitation> = self
            .store
            .run(
                "SELECT event, collaborator, email, read_only, invited_by, created_at FROM invitation WHERE email = $email",
                json!({ "email": email }),
            )
            .await?
            .all(0)?;
        for inv in pending {
            let member = CollabMember {
                event: inv.event.clone(),
                collaborator: inv.collaborator.clone(),
                person: person.into(),
                read_only: inv.read_only,
                invited_by: inv.invited_by.clone(),
                created_at: time::now(),
            };
            let scope = vec![inv.collaborator.clone()];
            let key = format!("{}|{}", inv.event, inv.email);
            let writes = vec![
                Write::create(Kind::CollabMember, &member_key(&inv.event, person), &member, scope.clone())?
                    .about(person),
                Write::delete(Kind::Invitation, &key, scope.clone()),
            ];
            match self.commit(&inv.event, writes).await {
                // Already a member there (invited twice, or a retry): drop the invitation.
                Err(Error::Conflict { .. }) => {
                    self.commit(&inv.event, vec![Write::delete(Kind::Invitation, &key, scope)]).await?;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}

fn member_key(event: &str, person: &str) -> String {
    format!("{event}|{person}")
}

/// An invitation waiting for an account with its email.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
struct PendingInvitation {
    event: String,
    collaborator: String,
    email: String,
    read_only: bool,
    invited_by: String,
    created_at: String,
}
