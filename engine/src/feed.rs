//! What one subscriber receives of one event: a snapshot, then the change log filtered by
//! the access function, with the subscriber's own access following the stream.
//!
//! A [`View`] holds one person's standing in one event *as of the stream position it has
//! reached*. Seats and memberships are log entries too, so when the stream reaches the
//! entry that narrows or widens that person's access, the view changes at exactly that seq:
//! narrowing sends a `narrow` (purge everything outside what is still visible), widening
//! asks the server for the newly visible records. No client is ever reset.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Membership, Standing, Tab, Target, decide},
    changes::{Change, Op},
    protocol::{Record, WireChange},
};

/// Kinds of records that live in an event's change log.
pub const KINDS: &[&str] =
    &["event", "collaborator", "collab_member", "invitation", "seat", "task", "activity", "file_meta", "advance"];

/// Whether a record of `kind` belonging to `collaborators` is visible under `s`.
pub fn visible(s: &Standing, kind: &str, collaborators: &[String]) -> bool {
    let tab = |tab| Target::Tab { tab, collaborators };
    let target = match kind {
        "event" => Target::EventInfo,
        "seat" => Target::Seats,
        "invitation" => Target::Setup,
        "activity" if collaborators.is_empty() => Target::Setup,
        "activity" => tab(Tab::Schedule),
        "task" => tab(Tab::Tasks),
        "file_meta" => tab(Tab::Files),
        "advance" => tab(Tab::Advances),
        "collaborator" | "collab_member" => tab(Tab::Dashboard),
        // A kind this build does not know is never sent.
        _ => return false,
    };
    decide(s, Action::Read, target) == Decision::Allow
}

/// The outcome of one change for one view.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Send(WireChange),
    /// Access widened at `seq`: send the records visible under `after` but not `before`
    /// (their current state).
    Widen {
        seq: i64,
        before: Standing,
        after: Standing,
    },
}

/// Groups views that receive identical frames for changes that touch nobody's access.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ViewKey {
    Seat,
    Member(String),
    Manager,
    Nothing,
}

#[derive(Clone, Debug)]
pub struct View {
    pub account: String,
    pub standing: Standing,
}

impl View {
    pub fn key(&self) -> ViewKey {
        let manager = self.standing.org_role.is_some_and(crate::access::OrgRole::manages);
        match (&self.standing.membership, self.standing.seat, manager) {
            (_, true, _) => ViewKey::Seat,
            (Some(m), false, _) => ViewKey::Member(m.collaborator.clone()),
            (None, false, true) => ViewKey::Manager,
            (None, false, false) => ViewKey::Nothing,
        }
    }

    /// Judges one change. A change whose subject is this view's person first updates the
    /// standing, then the record itself is judged with the standing before (for what the
    /// client may hold) and after (for what it may receive).
    pub fn step(&mut self, c: &Change) -> Vec<Step> {
        let before = self.standing.clone();
        if c.subject.as_deref() == Some(self.account.as_str()) {
            match (c.kind.as_str(), c.op) {
                ("seat", Op::Upsert) => self.standing.seat = true,
                ("seat", Op::Delete) => self.standing.seat = false,
                ("collab_member", Op::Upsert) => {
                    self.standing.membership = c.data.as_ref().and_then(|d| {
                        Some(Membership {
                            collaborator: d.get("collaborator")?.as_str()?.to_string(),
                            read_only: d.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                        })
                    })
                }
                ("collab_member", Op::Delete) => self.standing.membership = None,
                _ => {}
            }
        }
        let after = &self.standing;
        let was = visible(&before, &c.kind, &c.collaborators_before);
        let is = visible(after, &c.kind, &c.collaborators_after);
        let mut out = Vec::new();
        let (seq, kind, id) = (c.seq, c.kind.clone(), c.record.clone());
        match (c.op, is, was) {
            (Op::Upsert, true, _) => {
                out.push(Step::Send(WireChange::Upsert { seq, kind, id, data: c.data.clone().unwrap_or(Value::Null) }))
            }
            (Op::Upsert, false, true) => out.push(Step::Send(WireChange::Remove { seq, kind, id })),
            (Op::Delete, _, true) => out.push(Step::Send(WireChange::Delete { seq, kind, id })),
            _ => {}
        }
        let own = |s: &Standing| s.membership.as_ref().map(|m| m.collaborator.clone());
        // A seat lost, or (without a seat) a membership lost or moved.
        let narrowed = !after.seat && (before.seat || own(&before).is_some() && own(&before) != own(after));
        if narrowed {
            let keep_kinds =
                ["event", "seat"].into_iter().filter(|k| visible(after, k, &[])).map(String::from).collect();
            out.push(Step::Send(WireChange::Narrow { seq: c.seq, keep: own(after).into_iter().collect(), keep_kinds }));
        }
        // Losing a seat while keeping a membership widens nothing: those records are held.
        // A seat granted, or (without a seat) a membership granted or moved.
        let widened = !before.seat && (after.seat || own(after).is_some() && own(after) != own(&before));
        if widened {
            out.push(Step::Widen { seq: c.seq, before, after: after.clone() });
        }
        out
    }
}

impl View {
    /// Turns this view (current standing) back into the standing it had before `changes`
    /// (entries after a client's cursor whose subject is this view's person, in seq
    /// order), so that replaying them narrows and widens exactly as the live stream did.
    pub fn rewind(&mut self, changes: &[Change]) {
        for c in changes.iter().rev().filter(|c| c.subject.as_deref() == Some(self.account.as_str())) {
            match (c.kind.as_str(), c.op) {
                ("seat", Op::Upsert) => self.standing.seat = false,
                ("seat", Op::Delete) => self.standing.seat = true,
                ("collab_member", Op::Upsert) | ("collab_member", Op::Delete) => {
                    self.standing.membership = c
                        .collaborators_before
                        .first()
                        .map(|collaborator| Membership { collaborator: collaborator.clone(), read_only: false });
                }
                _ => {}
            }
        }
    }
}

/// A consistent starting point for one subscriber.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub view: View,
    /// The seq the records reflect; live changes continue after it.
    pub cursor: i64,
    pub records: Vec<Record>,
}

#[derive(Deserialize)]
struct Row {
    kind: String,
    id: String,
    data: Value,
}

impl Engine {
    /// `account`'s standing in `event` and the records it may see, read in one transaction
    /// together with the event's head seq. A person with no standing gets "not found".
    pub async fn snapshot(&self, account: &str, event: &str) -> Result<Snapshot> {
        self.read_view(account, event, true).await
    }

    /// The current records of `event` visible under `after` but not under `before`.
    pub async fn widened(&self, event: &str, before: &Standing, after: &Standing) -> Result<Vec<Record>> {
        let mut sql = String::new();
        for kind in KINDS {
            let key = if *kind == "event" { "record::id(id) = $e" } else { "event = $e" };
            sql.push_str(&format!("{};\n", record_query(kind, key)));
        }
        let mut rows = self.store.run(&sql, json!({ "e": event })).await?;
        let mut out = Vec::new();
        for i in 0..KINDS.len() {
            for r in rows.all::<Row>(i)? {
                let collaborators = record_collaborators(&r.kind, &r.id, &r.data);
                if visible(after, &r.kind, &collaborators) && !visible(before, &r.kind, &collaborators) {
                    out.push(Record { kind: r.kind, id: r.id, data: r.data });
                }
            }
        }
        Ok(out)
    }

    /// `account`'s current view of `event` and the event's head, without records.
    pub async fn view(&self, account: &str, event: &str) -> Result<(View, i64)> {
        let s = self.read_view(account, event, false).await?;
        Ok((s.view, s.cursor))
    }

    async fn read_view(&self, account: &str, event: &str, with_records: bool) -> Result<Snapshot> {
        // One transaction, one returned object: a consistent view at `head`.
        let mut sql = String::from(
            "BEGIN TRANSACTION;
             LET $head = (SELECT VALUE n FROM type::record('event_seq', $e))[0] ?? 0;
             LET $org = (SELECT VALUE org FROM type::record('event', $e))[0];
             LET $seat = (SELECT VALUE slot FROM seat WHERE event = $e AND person = $p);
             LET $member = (SELECT collaborator, read_only FROM type::record('collab_member', $e + '|' + $p))[0];
             LET $role = IF $org != NONE { (SELECT VALUE role FROM type::record('org_member', $org + '|' + $p))[0] } ELSE { NONE };\n",
        );
        let kinds: &[&str] = if with_records { KINDS } else { &[] };
        for kind in kinds {
            let key = if *kind == "event" { "record::id(id) = $e" } else { "event = $e" };
            sql.push_str(&format!("LET $r_{kind} = ({});\n", record_query(kind, key)));
        }
        let lists: Vec<String> = kinds.iter().map(|k| format!("$r_{k}")).collect();
        sql.push_str(&format!(
            "RETURN {{ head: $head, org: $org, seat: $seat, member: $member, role: $role, records: array::flatten([{}]) }};\nCOMMIT TRANSACTION;",
            lists.join(", ")
        ));
        #[derive(Deserialize)]
        struct M {
            collaborator: String,
            read_only: bool,
        }
        #[derive(Deserialize)]
        struct Out {
            head: i64,
            #[serde(default)]
            org: Option<String>,
            #[serde(default)]
            seat: Vec<i64>,
            #[serde(default)]
            member: Option<M>,
            #[serde(default)]
            role: Option<crate::access::OrgRole>,
            #[serde(default)]
            records: Vec<Row>,
        }
        let out: Out = self
            .store
            .run(&sql, json!({ "e": event, "p": account }))
            .await?
            .last_value()?
            .ok_or_else(|| Error::Internal("snapshot returned nothing".into()))?;
        if out.org.is_none() {
            return Err(Error::not_found("event"));
        }
        let membership = out.member.map(|m| Membership { collaborator: m.collaborator, read_only: m.read_only });
        let standing = Standing { seat: !out.seat.is_empty(), org_role: out.role, membership };
        if decide(&standing, Action::Read, Target::EventInfo) == Decision::Hidden {
            return Err(Error::not_found("event"));
        }
        let head = out.head;
        let mut records = Vec::new();
        for r in out.records {
            let collaborators = record_collaborators(&r.kind, &r.id, &r.data);
            if visible(&standing, &r.kind, &collaborators) {
                records.push(Record { kind: r.kind, id: r.id, data: r.data });
            }
        }
        Ok(Snapshot { view: View { account: account.into(), standing }, cursor: head, records })
    }
}

/// Every record of one kind in an event, shaped as `{kind, id, data}`.
fn record_query(kind: &str, key: &str) -> String {
    format!(
        "SELECT '{kind}' AS kind, record::id(id) AS id, object::extend(object::remove($this, 'id'), {{ id: record::id(id) }}) AS data FROM {kind} WHERE {key}"
    )
}

/// The collaborators a stored record belongs to, as its change entries name them.
pub fn record_collaborators(kind: &str, id: &str, data: &Value) -> Vec<String> {
    match kind {
        "collaborator" => vec![id.to_string()],
        "activity" => data
            .get("collaborators")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect())
            .unwrap_or_default(),
        "task" | "file_meta" | "advance" | "collab_member" | "invitation" => {
            data.get("collaborator").and_then(Value::as_str).map(|c| vec![c.to_string()]).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}
