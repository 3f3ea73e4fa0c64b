//! The event's collaborators: reading one (and whether the caller may act on it), creating,
//! listing and changing them.

use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Standing, Target, decide, require},
    accounts::validate_name,
    kind::Kind,
    model::{Collaborator, new_id},
    plan::Write,
    time,
};

const COLLAB_FIELDS: &str = "record::id(id) AS id, event, name, read_only, created_at";

impl Engine {
    pub(crate) async fn collaborator(&self, event: &str, id: &str) -> Result<Option<Collaborator>> {
        self.store
            .run(
                &format!("SELECT {COLLAB_FIELDS} FROM type::record('collaborator', $id) WHERE event = $e"),
                json!({ "id": id, "e": event }),
            )
            .await?
            .first(0)
    }

    /// A collaborator of `event` that `actor` may act on as `action` for `target`'s sake.
    pub(super) async fn collaborator_for(
        &self,
        actor: &str,
        event: &str,
        collab: &str,
        action: Action,
        setup: bool,
    ) -> Result<(Collaborator, Standing)> {
        let (_, s) = self.standing(actor, event).await?;
        let c = self.collaborator(event, collab).await?;
        let ids = [collab.to_string()];
        // Whether the collaborator is visible at all is decided like a tab of it.
        let visible = decide(&s, Action::Read, Target::Tab { tab: crate::access::Tab::Dashboard, collaborators: &ids });
        require(visible, "collaborator")?;
        let Some(c) = c else { return Err(Error::not_found("collaborator")) };
        if setup || action == Action::Write {
            require(decide(&s, action, Target::Setup), "collaborator")?;
        }
        Ok((c, s))
    }

    pub async fn create_collaborator(&self, actor: &str, event: &str, name: &str) -> Result<Collaborator> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let c = Collaborator {
            id: new_id(),
            event: ev.id,
            name: validate_name("name", name)?,
            read_only: false,
            created_at: time::now(),
        };
        self.commit(&c.event, vec![Write::create(Kind::Collaborator, &c.id, &c, vec![c.id.clone()])?]).await?;
        Ok(c)
    }

    /// Collaborators of the event the actor can see: all for seat holders, their own for
    /// collaborator members.
    pub async fn list_collaborators(&self, actor: &str, event: &str) -> Result<Vec<Collaborator>> {
        let (ev, s) = self.standing(actor, event).await?;
        let all: Vec<Collaborator> = self
            .store
            .run(
                &format!("SELECT {COLLAB_FIELDS} FROM collaborator WHERE event = $e ORDER BY created_at"),
                json!({ "e": ev.id }),
            )
            .await?
            .all(0)?;
        Ok(all
            .into_iter()
            .filter(|c| {
                let ids = [c.id.clone()];
                decide(&s, Action::Read, Target::Tab { tab: crate::access::Tab::Dashboard, collaborators: &ids })
                    == Decision::Allow
            })
            .collect())
    }

    /// Renames a collaborator and/or makes it read-only for its members.
    pub async fn update_collaborator(
        &self,
        actor: &str,
        event: &str,
        collab: &str,
        name: Option<&str>,
        read_only: Option<bool>,
    ) -> Result<Collaborator> {
        let (mut c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        if let Some(n) = name {
            c.name = validate_name("name", n)?;
        }
        if let Some(r) = read_only {
            c.read_only = r;
        }
        let scope = vec![c.id.clone()];
        self.commit(&c.event, vec![Write::replace(Kind::Collaborator, &c.id, &c, scope.clone(), scope)?]).await?;
        Ok(c)
    }
}
