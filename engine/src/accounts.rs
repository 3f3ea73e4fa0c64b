//! Accounts: sign-up (with its personal organization), password login, and accounts that
//! arrive with a token from an external identity provider.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    Engine, Error, PasswordHashing, Result,
    model::{Account, new_id},
    store::on_duplicate,
    time,
};

/// Longest accepted email address (RFC 5321 path limit).
pub const EMAIL_LEN_MAX: usize = 254;
pub const PASSWORD_LEN_MIN: usize = 8;
/// Longest accepted password: bounds the hashing work one request can cause.
pub const PASSWORD_LEN_MAX: usize = 1024;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub password: String,
}

/// Normalizes an email (trimmed, lower case) and checks its shape.
pub fn validate_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= EMAIL_LEN_MAX
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        });
    if ok { Ok(e) } else { Err(Error::invalid("email must be an address like name@example.com")) }
}

pub(crate) use crate::rules::validate_name;

fn hasher(mode: PasswordHashing) -> Argon2<'static> {
    match mode {
        PasswordHashing::Standard => Argon2::default(),
        PasswordHashing::Fast => Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(256, 1, 1, None).unwrap_or_default(),
        ),
    }
}

/// Password hashing's bound: `running` hashes at once on blocking threads, and at most
/// `admitted` requests holding or awaiting one; past it the request is refused at once.
pub(crate) struct Hashing {
    running: std::sync::Arc<tokio::sync::Semaphore>,
    admitted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    admitted_max: usize,
}

/// One admitted request; its place is given back when the hash is done — not when the
/// request is dropped (a client that hangs up mid-hash would otherwise free a place while
/// its hash still runs, and hang-ups could run hashes without bound).
struct Admitted(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Hashing {
    fn new(limits: crate::HashingLimits) -> Hashing {
        let running = limits.running.max(1);
        Hashing {
            running: std::sync::Arc::new(tokio::sync::Semaphore::new(running)),
            admitted: std::sync::Arc::default(),
            admitted_max: running + limits.waiting,
        }
    }

    /// Runs `work` on a blocking thread when a place is free, or refuses with `Busy`.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        use std::sync::atomic::Ordering;
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.admitted_max {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Busy);
        }
        let admitted = Admitted(self.admitted.clone());
        let permit = self.running.clone().acquire_owned().await.map_err(|_| Error::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _held = (admitted, permit);
            work()
        })
        .await
        .map_err(|e| Error::Internal(format!("password hashing task: {e}")))
    }
}

impl Engine {
    fn hashing(&self) -> &Hashing {
        self.shared.hashing.get_or_init(|| Hashing::new(self.config.hashing))
    }

    async fn hash_password(&self, password: String) -> Result<String> {
        let mode = self.config.password_hashing;
        self.hashing()
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                hasher(mode)
                    .hash_password(password.as_bytes(), &salt)
                    .map(|h| h.to_string())
                    .map_err(|e| Error::Internal(format!("password hashing: {e}")))
            })
            .await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown email, or an account
    /// without a password), a stand-in hash is verified instead so the answer takes about
    /// as long.
    async fn verify_password(&self, hash: Option<String>, password: String) -> Result<bool> {
        static STAND_IN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let mode = self.config.password_hashing;
        self.hashing()
            .run(move || {
                let real = hash.is_some();
                let hash = hash.unwrap_or_else(|| {
                    STAND_IN
                        .get_or_init(|| {
                            let salt = SaltString::generate(&mut OsRng);
                            hasher(mode).hash_password(b"stand-in", &salt).map(|h| h.to_string()).unwrap_or_default()
                        })
                        .clone()
                });
                let ok = PasswordHash::new(&hash)
                    .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
                    .unwrap_or(false);
                ok && real
            })
            .await
    }
}

#[derive(Deserialize)]
struct StoredAccount {
    #[serde(flatten)]
    account: Account,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    identity: Option<String>,
}

const ACCOUNT_FIELDS: &str =
    "record::id(id) AS id, email, name, created_at, email_proven_at != NONE AS email_proven, password_hash, identity";

/// Longest accepted identity (an identity provider's issuer and subject).
const IDENTITY_LEN_MAX: usize = 512;

/// How an account signs in.
enum Credential {
    /// Its password, hashed.
    Password(String),
    /// An identity provider's tokens for this issuer and subject.
    Identity(String),
}

impl Engine {
    /// Creates an account and, in the same transaction, its personal organization. Pending
    /// collaborator invitations for the email then become memberships.
    pub async fn sign_up(&self, input: NewAccount) -> Result<Account> {
        let email = validate_email(&input.email)?;
        let name = validate_name("name", &input.name)?;
        let len = input.password.chars().count();
        if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&len) {
            return Err(Error::invalid(format!(
                "password must be {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters"
            )));
        }
        let hash = self.hash_password(input.password).await?;
        self.create_account(email, name, Credential::Password(hash)).await
    }

    async fn create_account(&self, email: String, name: String, credential: Credential) -> Result<Account> {
        // An identity provider's account arrives with the email verified by the provider.
        let email_proven = matches!(credential, Credential::Identity(_));
        let account = Account { id: new_id(), email, name, created_at: time::now(), email_proven };
        let org_id = new_id();
        // An account without a password (external identity) has no password_hash field.
        let mut stored = json!({ "email": account.email, "name": account.name, "created_at": account.created_at });
        match credential {
            Credential::Password(h) => stored["password_hash"] = json!(h),
            Credential::Identity(i) => {
                stored["identity"] = json!(i);
                stored["email_proven_at"] = json!(account.created_at);
            }
        }
        self.store
            .run(
                "BEGIN TRANSACTION;
                 CREATE type::record('account', $id) CONTENT $account;
                 CREATE type::record('org', $org) CONTENT {
                     name: $name, kind: 'personal', created_by: $id, created_at: $now };
                 CREATE type::record('org_member', $org + '|' + $id) CONTENT {
                     org: $org, person: $id, role: 'owner', created_at: $now };
                 IF $account.identity != NONE {
                     CREATE type::record('account_identity', $account.identity) CONTENT { account: $id };
                 };
                 COMMIT TRANSACTION;",
                json!({
                    "id": account.id, "email": account.email, "name": account.name,
                    "account": stored, "org": org_id, "now": account.created_at,
                }),
            )
            .await
            .map_err(|e| on_duplicate(e, "email_taken", "an account with that email already exists"))?;
        tracing::info!(account = %account.id, "account created");
        self.grant_waiting(&account).await?;
        Ok(account)
    }

    /// Checks an email and password. Wrong email and wrong password are indistinguishable,
    /// in the answer and (roughly) in time.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<Account> {
        if password.chars().count() > PASSWORD_LEN_MAX {
            return Err(Error::BadCredentials);
        }
        let email = email.trim().to_lowercase();
        let stored = self.stored_account_by_email(&email).await?;
        let hash = stored.as_ref().and_then(|s| s.password_hash.clone());
        let ok = self.verify_password(hash, password.to_string()).await?;
        match stored {
            Some(s) if ok => {
                self.grant_waiting(&s.account).await?;
                Ok(s.account)
            }
            _ => Err(Error::BadCredentials),
        }
    }

    /// Changes `account`'s password after checking the current one, and ends every other
    /// sign-in of the account (`keep` stays signed in). Returns the sign-ins ended. A wrong
    /// current password is `BadCredentials`; an account without a password (an identity
    /// provider's) has none to change.
    pub async fn change_password(
        &self,
        account: &str,
        current: &str,
        new: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>> {
        let len = new.chars().count();
        if !(PASSWORD_LEN_MIN..=PASSWORD_LEN_MAX).contains(&len) {
            return Err(Error::invalid(format!(
                "password must be {PASSWORD_LEN_MIN} to {PASSWORD_LEN_MAX} characters"
            )));
        }
        if current.chars().count() > PASSWORD_LEN_MAX {
            return Err(Error::BadCredentials);
        }
        let stored: Option<StoredAccount> = self
            .store
            .run(&format!("SELECT {ACCOUNT_FIELDS} FROM type::record('account', $id)"), json!({ "id": account }))
            .await?
            .first(0)?;
        let Some(stored) = stored else { return Err(Error::not_found("account")) };
        let Some(hash) = stored.password_hash else {
            return Err(Error::rule("no_password", "this account signs in through its identity provider"));
        };
        if !self.verify_password(Some(hash.clone()), current.to_string()).await? {
            return Err(Error::BadCredentials);
        }
        let new_hash = self.hash_password(new.to_string()).await?;
        let changed: Vec<serde_json::Value> = self
            .store
            .run(
                "UPDATE type::record('account', $id) SET password_hash = $new WHERE password_hash = $was
                     RETURN VALUE record::id(id);",
                json!({ "id": account, "new": new_hash, "was": hash }),
            )
            .await?
            .all(0)?;
        if changed.is_empty() {
            return Err(Error::conflict("password_changed", "the password was changed meanwhile; sign in again"));
        }
        tracing::info!(account, "password changed");
        self.end_sign_ins(account, keep, "password_changed").await
    }

    async fn stored_account_by_email(&self, email: &str) -> Result<Option<StoredAccount>> {
        self.store
            .run(&format!("SELECT {ACCOUNT_FIELDS} FROM account WHERE email = $email"), json!({ "email": email }))
            .await?
            .first(0)
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>> {
        Ok(self
            .store
            .run(&format!("SELECT {ACCOUNT_FIELDS} FROM type::record('account', $id)"), json!({ "id": id }))
            .await?
            .first::<StoredAccount>(0)?
            .map(|s| s.account))
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        Ok(self.stored_account_by_email(&email.trim().to_lowercase()).await?.map(|s| s.account))
    }

    /// The account for a person vouched for by an external identity provider (`identity`:
    /// its issuer and subject), created (with its personal organization) the first time they
    /// arrive. Such an account has no password: it can only be reached through the provider's
    /// tokens. An email alone never links a provider's person to an account: an account of
    /// that email made another way (a password, another provider's subject) is refused with
    /// `Conflict`; only one the provider made before identities were kept, with no password
    /// and no identity, is linked.
    pub async fn external_account(&self, identity: &str, email: &str, name: Option<&str>) -> Result<Account> {
        let email = validate_email(email)?;
        if identity.is_empty() || identity.len() > IDENTITY_LEN_MAX {
            return Err(Error::invalid("the identity provider's subject is empty or too long"));
        }
        let found: Option<String> = self
            .store
            .run("SELECT VALUE account FROM type::record('account_identity', $i)", json!({ "i": identity }))
            .await?
            .value(0)?;
        if let Some(id) = found {
            return self.account(&id).await?.ok_or_else(|| Error::Internal("an identity names no account".into()));
        }
        if let Some(a) = self.stored_account_by_email(&email).await? {
            if a.password_hash.is_some() || a.identity.is_some() {
                return Err(Error::conflict(
                    "identity_not_linked",
                    "an account with this email signs in another way; it is not linked to this identity",
                ));
            }
            self.store
                .run(
                    "BEGIN TRANSACTION;
                     UPDATE type::record('account', $id) SET identity = $i;
                     CREATE type::record('account_identity', $i) CONTENT { account: $id };
                     COMMIT TRANSACTION;",
                    json!({ "id": a.account.id, "i": identity }),
                )
                .await?;
            return Ok(a.account);
        }
        let name = match name {
            Some(n) => validate_name("name", n)?,
            None => email.split('@').next().unwrap_or("member").to_string(),
        };
        match self.create_account(email.clone(), name, Credential::Identity(identity.to_string())).await {
            Err(Error::Conflict { .. }) => {
                // Two first requests raced; the other one created it.
                Box::pin(self.external_account(identity, &email, None)).await
            }
            other => other,
        }
    }
}
