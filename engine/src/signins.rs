//! Sign-ins: one per device a person signs in on. A sign-in is renewed by its refresh token,
//! which changes at every renewal and is kept only as a hash, so a sign-in can be listed,
//! ended by its person (sign out, sign out everywhere, a password change) or by the event
//! team for a device that synced their event (a lost tablet), and a stolen token that is
//! replayed after its device renewed ends the sign-in.
//!
//! A refresh token is `<sign-in id>.<secret>`. Renewing with the current secret turns it
//! into a new one; the last [`SPENT_KEPT`] spent secrets are remembered (as hashes).
//! Presenting a spent one again ends the sign-in (`refresh_reused`), except within [`REPLAY_GRACE`] of its renewal while the
//! new secret was never used: the answer to a renewal lost on a venue's Wi-Fi is retried
//! with the old token, and that retry gets another new secret instead of ending a tablet's
//! sign-in with nobody at it to sign in again.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    Engine, Error, Result,
    access::{Action, OrgRole, Target, decide, require},
    model::new_id,
    time,
};

/// How long after a renewal the previous refresh token still renews (once more) instead of
/// ending the sign-in, provided the new one was never presented.
pub const REPLAY_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// Spent refresh tokens remembered per sign-in (a replay of an older one is refused but
/// does not end the sign-in).
pub const SPENT_KEPT: usize = 32;
/// Longest device name kept.
pub const NAME_LEN_MAX: usize = 80;
/// Longest refresh token accepted.
const TOKEN_LEN_MAX: usize = 256;
/// Sign-ins listed at most.
const LISTED_MAX: usize = 200;

/// A sign-in as its person (or the event team) sees it. Never carries a token or a hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignIn {
    pub id: String,
    /// The name the device gave when it signed in (`gate-b-lane-3`, `Chrome on macOS`).
    pub name: String,
    /// The device id it syncs with, once it has connected to the sync socket.
    #[serde(default)]
    pub device: Option<String>,
    pub created_at: String,
    /// When it was last renewed (or opened).
    pub last_used_at: String,
    /// Past this without a renewal it ends by itself.
    pub expires_at: String,
}

/// A sign-in opened or renewed: the refresh token to keep (shown once).
#[derive(Clone, Debug)]
pub struct Renewed {
    pub sign_in: String,
    pub account: String,
    pub refresh_token: String,
}

#[derive(Deserialize)]
struct Stored {
    account: String,
    refresh_hash: String,
    #[serde(default)]
    prior_hash: Option<String>,
    #[serde(default)]
    spent: Vec<String>,
    renewed_ms: i64,
    expires_at: String,
    #[serde(default)]
    ended_ms: Option<i64>,
}

fn digest(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

fn secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Why a refresh token renews nothing: one answer for every case (unknown, ended, expired,
/// replayed), so a guess learns nothing.
fn not_renewable() -> Error {
    Error::forbidden("sign_in_ended", "this sign-in has ended; sign in again")
}

/// Turns a device's name into what is kept: trimmed, control characters dropped, bounded.
fn device_name(name: Option<&str>) -> String {
    let n: String = name.unwrap_or("").chars().filter(|c| !c.is_control()).take(NAME_LEN_MAX).collect();
    let n = n.trim();
    if n.is_empty() { "unnamed device".into() } else { n.into() }
}

const LISTED: &str = "record::id(id) AS id, name, device, created_at, last_used_at, expires_at";

impl Engine {
    /// Opens a sign-in for `account` on a device called `name`.
    pub async fn open_sign_in(&self, account: &str, name: Option<&str>) -> Result<Renewed> {
        let id = new_id();
        let s = secret();
        let now = chrono::Utc::now();
        let expires = time::format(now + self.idle_lifetime());
        self.store
            .run(
                "CREATE type::record('sign_in', $id) CONTENT {
                     account: $a, name: $name, refresh_hash: $h, renewed_ms: $ms,
                     created_at: $now, last_used_at: $now, expires_at: $exp } RETURN NONE;",
                json!({ "id": id, "a": account, "name": device_name(name), "h": digest(&s),
                        "ms": now.timestamp_millis(), "now": time::format(now), "exp": expires }),
            )
            .await?;
        Ok(Renewed { refresh_token: format!("{id}.{s}"), sign_in: id, account: account.into() })
    }

    fn idle_lifetime(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.config.sign_in_idle).unwrap_or(chrono::TimeDelta::days(30))
    }

    /// Renews a sign-in by its refresh token: a new refresh token replaces it, and the
    /// sign-in lives another idle lifetime. Refused with `sign_in_ended` (403) when the
    /// token is unknown, the sign-in ended or expired, or the token was replaced already —
    /// which ends the sign-in (see the module's note on the grace of a lost answer).
    pub async fn renew_sign_in(&self, refresh_token: &str) -> Result<Renewed> {
        if refresh_token.len() > TOKEN_LEN_MAX {
            return Err(not_renewable());
        }
        let Some((id, presented)) = refresh_token.split_once('.') else { return Err(not_renewable()) };
        if id.is_empty() || presented.is_empty() {
            return Err(not_renewable());
        }
        let stored: Option<Stored> = self
            .store
            .run(
                "SELECT account, refresh_hash, prior_hash, spent, renewed_ms, expires_at, ended_ms
                     FROM type::record('sign_in', $id)",
                json!({ "id": id }),
            )
            .await?
            .first(0)?;
        let Some(st) = stored else { return Err(not_renewable()) };
        let now = chrono::Utc::now();
        if st.ended_ms.is_some() || st.expires_at < time::format(now) {
            return Err(not_renewable());
        }
        let h = digest(presented);
        let current = h == st.refresh_hash;
        let lost_answer = st.prior_hash.as_deref() == Some(h.as_str())
            && now.timestamp_millis() - st.renewed_ms < REPLAY_GRACE.num_milliseconds();
        if !current && !lost_answer {
            if st.spent.contains(&h) {
                tracing::warn!(sign_in = id, account = %st.account, "a replaced refresh token was presented again: sign-in ended");
                self.end_sign_ins_where("record::id(id) = $id", json!({ "id": id }), "refresh_reused").await?;
            }
            return Err(not_renewable());
        }
        // The prior secret stays the one before the *current* one: after a lost answer, the
        // secret that was never delivered is simply dropped.
        let prior = if current { h.clone() } else { st.prior_hash.clone().unwrap_or_default() };
        let s = secret();
        let changed: Vec<serde_json::Value> = self
            .store
            .run(
                "UPDATE type::record('sign_in', $id) SET refresh_hash = $new, prior_hash = $prior,
                     spent = array::slice(array::prepend(spent, $was), 0, $kept), renewed_ms = $ms, last_used_at = $now, expires_at = $exp
                     WHERE refresh_hash = $was AND ended_ms = NONE RETURN VALUE record::id(id);",
                json!({ "id": id, "new": digest(&s), "prior": prior, "ms": now.timestamp_millis(),
                        "now": time::format(now), "exp": time::format(now + self.idle_lifetime()),
                        "was": st.refresh_hash, "kept": SPENT_KEPT }),
            )
            .await?
            .all(0)?;
        if changed.is_empty() {
            // Another renewal with the same token won the race: this one is the replay.
            return Err(not_renewable());
        }
        Ok(Renewed { refresh_token: format!("{id}.{s}"), sign_in: id.into(), account: st.account })
    }

    /// The account of a sign-in that has not ended or expired.
    pub async fn sign_in_account(&self, id: &str) -> Result<Option<String>> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        self.store
            .run(
                "SELECT VALUE account FROM type::record('sign_in', $id) WHERE ended_ms = NONE AND expires_at > $now",
                json!({ "id": id, "now": time::now() }),
            )
            .await?
            .value(0)
    }

    /// Notes the device id a sign-in syncs with (at its first sync connection).
    pub async fn sign_in_device(&self, id: &str, device: &str) -> Result<()> {
        self.store
            .run(
                "UPDATE type::record('sign_in', $id) SET device = $d WHERE device = NONE RETURN NONE;",
                json!({ "id": id, "d": device }),
            )
            .await?;
        Ok(())
    }

    /// `account`'s sign-ins that have not ended or expired, the most recently used first.
    pub async fn sign_ins(&self, account: &str) -> Result<Vec<SignIn>> {
        self.store
            .run(
                &format!(
                    "SELECT {LISTED} FROM sign_in WHERE account = $a AND ended_ms = NONE AND expires_at > $now
                         ORDER BY last_used_at DESC LIMIT {LISTED_MAX};"
                ),
                json!({ "a": account, "now": time::now() }),
            )
            .await?
            .all(0)
    }

    /// Ends one of `account`'s own sign-ins (signing out of that device). Unknown, or
    /// another person's: not found.
    pub async fn end_sign_in(&self, account: &str, id: &str) -> Result<()> {
        let ended = self
            .end_sign_ins_where(
                "record::id(id) = $id AND account = $a",
                json!({ "id": id, "a": account }),
                "signed_out",
            )
            .await?;
        if ended.is_empty() { Err(Error::not_found("sign-in")) } else { Ok(()) }
    }

    /// Ends every sign-in of `account` but `keep` (signing out everywhere else, or
    /// everywhere with none kept). Returns the ids ended.
    pub async fn end_sign_ins(&self, account: &str, keep: Option<&str>, why: &str) -> Result<Vec<String>> {
        self.end_sign_ins_where("account = $a AND record::id(id) != $keep", json!({ "a": account, "keep": keep }), why)
            .await
    }

    /// Ends the sign-ins matching `filter` (a WHERE clause over `vars`) that have not ended;
    /// returns their ids.
    async fn end_sign_ins_where(&self, filter: &str, mut vars: serde_json::Value, why: &str) -> Result<Vec<String>> {
        vars["ms"] = json!(unix_ms());
        vars["why"] = json!(why);
        let ids: Vec<String> = self
            .store
            .run(
                &format!(
                    "UPDATE sign_in SET ended_ms = $ms, ended_why = $why WHERE {filter} AND ended_ms = NONE
                         RETURN VALUE record::id(id);"
                ),
                vars,
            )
            .await?
            .all(0)?;
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), why, "sign-ins ended");
        }
        Ok(ids)
    }

    /// Sign-ins ended at or after `since_ms` (Unix ms), with when: how every sync node learns
    /// of the sign-ins ended on another, to close their sockets.
    pub async fn sign_ins_ended_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>> {
        #[derive(Deserialize)]
        struct Ended {
            id: String,
            ended_ms: i64,
        }
        let rows: Vec<Ended> = self
            .store
            .run(
                "SELECT record::id(id) AS id, ended_ms FROM sign_in WHERE ended_ms >= $since LIMIT 10000;",
                json!({ "since": since_ms }),
            )
            .await?
            .all(0)?;
        Ok(rows.into_iter().map(|e| (e.id, e.ended_ms)).collect())
    }

    /// The sign-ins of `person` on the devices that synced `event`: for the event's seat
    /// holders and its organization's owners (a lost tablet is signed out from the devices
    /// panel). Anyone else: not found.
    pub async fn event_sign_ins(&self, actor: &str, event: &str, person: &str) -> Result<Vec<SignIn>> {
        let ev = self.may_end_sign_ins_in(actor, event).await?;
        self.store
            .run(
                &format!(
                    "LET $devices = SELECT VALUE device FROM device_seen WHERE event = $e AND account = $p;
                     SELECT {LISTED} FROM sign_in WHERE account = $p AND device IN $devices
                         AND ended_ms = NONE AND expires_at > $now ORDER BY last_used_at DESC LIMIT {LISTED_MAX};"
                ),
                json!({ "e": ev, "p": person, "now": time::now() }),
            )
            .await?
            .all(1)
    }

    /// Ends a sign-in of `person` on a device that synced `event` (see
    /// [`Engine::event_sign_ins`]).
    pub async fn end_event_sign_in(&self, actor: &str, event: &str, person: &str, id: &str) -> Result<()> {
        let ev = self.may_end_sign_ins_in(actor, event).await?;
        let ended = self
            .end_sign_ins_where(
                "record::id(id) = $id AND account = $p AND device IN
                     (SELECT VALUE device FROM device_seen WHERE event = $e AND account = $p)",
                json!({ "id": id, "p": person, "e": ev }),
                "ended_by_event_team",
            )
            .await?;
        if ended.is_empty() {
            return Err(Error::not_found("sign-in"));
        }
        tracing::info!(actor, event = %ev, person, sign_in = id, "a device's sign-in ended by the event team");
        Ok(())
    }

    /// The event's id when `actor` holds a seat in it or owns its organization.
    async fn may_end_sign_ins_in(&self, actor: &str, event: &str) -> Result<String> {
        let (ev, s) = self.standing(actor, event).await?;
        if s.org_role != Some(OrgRole::Owner) {
            require(decide(&s, Action::Write, Target::Setup), "event")?;
        }
        Ok(ev.id)
    }
}
