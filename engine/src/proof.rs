//! Proving an email: a one-time code sent to the address, and the grants that wait for it.
//!
//! Invitations, Event Pro seats and organization roles given to an address reach its account
//! only once the account has proven it owns the address. Until then they wait — an
//! invitation as it always has, a seat in `seat_pending`, a role in `org_pending` — and are
//! shown as pending to whoever gave them. So whoever registers an address first gains
//! nothing meant for it without reading its mail.

use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Engine, Error, Result, access::OrgRole, model::Account, time};

/// How long a code may be used.
pub const CODE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(30);
/// Wrong tries a code takes before it is void.
pub const CODE_TRIES_MAX: i64 = 5;
/// A new code is sent at most this often for one account.
pub const CODE_RESEND_MIN: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// Digits of a code.
const CODE_DIGITS: u32 = 8;

/// A code to send: to whom, and until when it may be used.
#[derive(Clone, Debug)]
pub struct EmailCode {
    pub email: String,
    pub name: String,
    pub code: String,
    pub expires_at: String,
}

/// A code as stored: only its hash.
#[derive(Deserialize)]
struct Stored {
    email: String,
    hash: String,
    sent_at: String,
    expires_at: String,
    tries: i64,
}

fn hash(account: &str, code: &str) -> String {
    format!("{:x}", Sha256::digest(format!("{account}:{code}").as_bytes()))
}

/// A seat that waits for its person's email: on which event, given by whom.
#[derive(Clone, Debug, Deserialize)]
struct WaitingSeat {
    event: String,
    assigned_by: String,
}

/// A role in an organization that waits for its person's email.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct WaitingRole {
    pub org: String,
    pub person: String,
    pub role: OrgRole,
}

impl Engine {
    /// The code sent to `account` and not used yet, if any.
    async fn open_code(&self, account: &str) -> Result<Option<Stored>> {
        self.store
            .run(
                "SELECT email, hash, sent_at, expires_at, tries FROM type::record('email_code', $a)",
                json!({ "a": account }),
            )
            .await?
            .first(0)
    }

    /// A new code for `account`'s email, replacing any open one. Refused when the email is
    /// proven already (`already_proven`), or when a code went out less than
    /// [`CODE_RESEND_MIN`] ago (`too_soon`).
    pub async fn new_email_code(&self, account: &str) -> Result<EmailCode> {
        let a = self.account(account).await?.ok_or_else(|| Error::not_found("account"))?;
        if a.email_proven {
            return Err(Error::conflict("already_proven", "this email is proven already"));
        }
        let now = chrono::Utc::now();
        let open = self.open_code(account).await?;
        if let Some(o) = open
            && o.sent_at > time::format(now - CODE_RESEND_MIN)
        {
            return Err(Error::conflict(
                "too_soon",
                format!("a code was sent less than {} seconds ago; check your mail", CODE_RESEND_MIN.num_seconds()),
            ));
        }
        let code: String = {
            let mut rng = rand::rng();
            (0..CODE_DIGITS).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
        };
        let expires_at = time::format(now + CODE_LIFETIME);
        self.store
            .run(
                "UPSERT type::record('email_code', $a) CONTENT { email: $email, hash: $hash, sent_at: $now, expires_at: $exp, tries: 0 }",
                json!({ "a": account, "email": a.email, "hash": hash(account, &code), "now": time::format(now), "exp": expires_at }),
            )
            .await?
            .written::<serde_json::Value>(0)?;
        Ok(EmailCode { email: a.email, name: a.name, code, expires_at })
    }

    /// Proves `account`'s email with `code`, then gives the account what waited for the
    /// address. A wrong code is `wrong_code`; past [`CODE_TRIES_MAX`] wrong tries, or past
    /// its time, the code is void (`code_expired`: ask for a new one).
    pub async fn prove_email(&self, account: &str, code: &str) -> Result<Account> {
        let a = self.account(account).await?.ok_or_else(|| Error::not_found("account"))?;
        if a.email_proven {
            return Ok(a);
        }
        let expired = || Error::rule("code_expired", "this code can no longer be used; ask for a new one");
        let stored = self.open_code(account).await?;
        let Some(s) = stored else { return Err(expired()) };
        if s.expires_at < time::now() || s.tries >= CODE_TRIES_MAX || s.email != a.email {
            return Err(expired());
        }
        let given: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').take(64).collect();
        if hash(account, &given) != s.hash {
            // Counted in the database: tries from several nodes add up.
            self.store.run("UPDATE type::record('email_code', $a) SET tries += 1", json!({ "a": account })).await?;
            let left = CODE_TRIES_MAX - s.tries - 1;
            return Err(if left > 0 {
                Error::rule("wrong_code", format!("that is not the code we sent; {left} tries left"))
            } else {
                expired()
            });
        }
        self.store
            .run(
                "BEGIN TRANSACTION;
                 UPDATE type::record('account', $a) SET email_proven_at = $now;
                 DELETE type::record('email_code', $a);
                 COMMIT TRANSACTION;",
                json!({ "a": account, "now": time::now() }),
            )
            .await?;
        tracing::info!(account, "email proven");
        let a = Account { email_proven: true, ..a };
        self.grant_waiting(&a).await?;
        Ok(a)
    }

    /// Gives a proven account what waited for its address: invitations become memberships,
    /// seats are taken (while the event has a free one), roles are added. Runs when the email
    /// is proven and again at every sign-in, so an interrupted run finishes later.
    pub(crate) async fn grant_waiting(&self, a: &Account) -> Result<()> {
        if !a.email_proven {
            return Ok(());
        }
        self.accept_invitations(&a.id, &a.email).await?;
        let seats: Vec<WaitingSeat> = self
            .store
            .run("SELECT event, assigned_by FROM seat_pending WHERE person = $p", json!({ "p": a.id }))
            .await?
            .all(0)?;
        for s in seats {
            let seated = match self.event_by_id(&s.event).await {
                Ok(ev) => self.seat_person(&ev, &a.id, &s.assigned_by).await,
                Err(e) => Err(e),
            };
            match seated {
                Ok(_) | Err(Error::Conflict { code: "already_seated", .. }) | Err(Error::NotFound { .. }) => {
                    self.store
                        .run("DELETE type::record('seat_pending', $k)", json!({ "k": format!("{}|{}", s.event, a.id) }))
                        .await?;
                }
                // No free seat now: it keeps waiting, shown as pending, until one is.
                Err(e) => tracing::warn!(event = %s.event, error = ?e, "a waiting seat could not be taken"),
            }
        }
        let roles: Vec<WaitingRole> = self
            .store
            .run("SELECT org, person, role FROM org_pending WHERE person = $p", json!({ "p": a.id }))
            .await?
            .all(0)?;
        for r in roles {
            self.grant_waiting_role(&r).await?;
        }
        Ok(())
    }

    /// Whether `email`'s account (if any) has proven it: the account a grant may go to now.
    pub(crate) async fn proven_account(&self, email: &str) -> Result<(Option<Account>, bool)> {
        let a = self.account_by_email(email).await?;
        let proven = a.as_ref().is_some_and(|a| a.email_proven);
        Ok((a, proven))
    }
}
