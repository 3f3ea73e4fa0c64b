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

use std::collections::BTreeMap;

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Membership, Module, Modules, Standing, Target, decide},
    changes::{Change, Op},
    kind::Kind,
    protocol::{Record, WireChange},
};

/// Whether a record of `kind` owned by `owners` (see [`Kind::owners`]) is visible under `s`.
pub fn visible(s: &Standing, kind: Kind, owners: &[String]) -> bool {
    kind.target(owners).is_some_and(|target| decide(s, Action::Read, target) == Decision::Allow)
}

/// A visible record as `s` may receive it: some kinds travel with fewer fields to some
/// people (a gate device gets no credential holder's contact details).
pub fn shape(s: &Standing, kind: Kind, data: Value) -> Value {
    kind.shape(s.seat, data)
}

/// The field modules granted in an event, by collaborator.
pub type Grants = BTreeMap<String, Modules>;

/// The collaborator and module a `module_grant` change is about.
fn grant_of(c: &Change) -> Option<(String, Module)> {
    let collaborator = c.collaborators_after.first().or(c.collaborators_before.first())?.clone();
    let module = Module::parse(c.record.rsplit('|').next()?)?;
    Some((collaborator, module))
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
    /// Access narrowed at `seq` so that records of `kinds` are still visible but with fewer
    /// fields (a seat lost, the gate module kept): they were purged by the narrow; send them
    /// again as `standing` receives them.
    Reshape {
        seq: i64,
        kinds: Vec<String>,
        standing: Standing,
    },
}

/// Groups views that receive identical frames for changes that touch nobody's access.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ViewKey {
    Seat,
    Member(String, Modules),
    /// A member who receives records of their own (punches): frames are theirs alone.
    Person(String),
    Manager,
    Nothing,
}

#[derive(Clone, Debug)]
pub struct View {
    pub account: String,
    pub standing: Standing,
    /// Every collaborator's modules in the event as of the stream position: a membership
    /// that moves takes its new collaborator's modules.
    pub grants: Grants,
}

impl View {
    /// The group of this view for a batch; `personal`: the batch holds records of one
    /// person's (see [`Kind::personal`]).
    pub fn key(&self, personal: bool) -> ViewKey {
        let manager = self.standing.org_role.is_some_and(crate::access::OrgRole::manages);
        match (&self.standing.membership, self.standing.seat, manager) {
            (_, true, _) => ViewKey::Seat,
            (Some(m), false, _) if personal && m.modules.has(Module::Labor) => ViewKey::Person(self.account.clone()),
            (Some(m), false, _) => ViewKey::Member(m.collaborator.clone(), m.modules),
            (None, false, true) => ViewKey::Manager,
            (None, false, false) => ViewKey::Nothing,
        }
    }

    /// Whether `c` can change what this view may see: its person's seat or membership, or a
    /// module grant (a collaborator's access).
    pub fn touched_by(&self, c: &Change) -> bool {
        c.subject.as_deref() == Some(self.account.as_str()) || c.kind == Kind::ModuleGrant
    }

    /// The membership's modules, from the grants.
    fn sync_modules(&mut self) {
        if let Some(m) = &mut self.standing.membership {
            m.modules = self.grants.get(&m.collaborator).copied().unwrap_or_default();
        }
    }

    /// Judges one change. A change whose subject is this view's person (or a module grant)
    /// first updates the standing, then the record itself is judged with the standing before
    /// (for what the client may hold) and after (for what it may receive).
    pub fn step(&mut self, c: &Change) -> Vec<Step> {
        let before = self.standing.clone();
        if c.kind == Kind::ModuleGrant
            && let Some((collaborator, module)) = grant_of(c)
        {
            let m = self.grants.entry(collaborator).or_default();
            *m = if c.op == Op::Upsert { m.with(module) } else { m.without(module) };
            self.sync_modules();
        }
        if c.subject.as_deref() == Some(self.account.as_str()) {
            match (c.kind, c.op) {
                (Kind::Seat, Op::Upsert) => self.standing.seat = true,
                (Kind::Seat, Op::Delete) => self.standing.seat = false,
                (Kind::CollabMember, Op::Upsert) => {
                    self.standing.membership = c.data.as_ref().and_then(|d| {
                        Some(Membership {
                            collaborator: d.get("collaborator")?.as_str()?.to_string(),
                            read_only: d.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                            modules: Modules::default(),
                        })
                    });
                    self.sync_modules();
                }
                (Kind::CollabMember, Op::Delete) => self.standing.membership = None,
                _ => {}
            }
        }
        let after = &self.standing;
        let was = visible(&before, c.kind, &c.collaborators_before);
        let is = visible(after, c.kind, &c.collaborators_after);
        let mut out = Vec::new();
        let (seq, kind, id) = (c.seq, c.kind.as_str().to_string(), c.record.clone());
        match (c.op, is, was) {
            (Op::Upsert, true, _) => {
                let data = shape(after, c.kind, c.data.clone().unwrap_or(Value::Null));
                out.push(Step::Send(WireChange::Upsert { seq, kind, id, data }))
            }
            (Op::Upsert, false, true) => out.push(Step::Send(WireChange::Remove { seq, kind, id })),
            (Op::Delete, _, true) => out.push(Step::Send(WireChange::Delete { seq, kind, id })),
            _ => {}
        }
        let own = |s: &Standing| s.membership.as_ref().map(|m| m.collaborator.clone());
        let modules = |s: &Standing| s.membership.as_ref().map(|m| m.modules).unwrap_or_default();
        // A seat lost, or (without a seat) a membership lost or moved, or a module lost.
        let narrowed = !after.seat
            && (before.seat
                || own(&before).is_some() && own(&before) != own(after)
                || modules(&before).lost_in(modules(after)));
        if narrowed {
            // Kinds that belong to no collaborator and are still visible (the event, a
            // module's data) are kept whole — unless they now come with fewer fields: those
            // are purged and sent again, shaped.
            let still = |k: &Kind| visible(after, *k, &[]);
            let reshaped: Vec<String> = if before.seat {
                Kind::ALL.into_iter().filter(|k| k.shaped()).filter(still).map(|k| k.to_string()).collect()
            } else {
                Vec::new()
            };
            let keep_kinds =
                Kind::ALL.into_iter().filter(still).map(|k| k.to_string()).filter(|k| !reshaped.contains(k)).collect();
            // The person's own records stay while they may still see them.
            let mut keep: Vec<String> = own(after).into_iter().collect();
            if modules(after).has(Module::Labor) {
                keep.push(crate::kind::person_scope(&self.account));
            }
            out.push(Step::Send(WireChange::Narrow { seq: c.seq, keep, keep_kinds }));
            if !reshaped.is_empty() {
                out.push(Step::Reshape { seq: c.seq, kinds: reshaped, standing: after.clone() });
            }
        }
        // Losing a seat while keeping a membership widens nothing: those records are held.
        // A seat granted, or (without a seat) a membership granted or moved, or a module granted.
        let widened = !before.seat
            && (after.seat
                || own(after).is_some() && own(after) != own(&before)
                || modules(after).lost_in(modules(&before)));
        if widened {
            out.push(Step::Widen { seq: c.seq, before, after: after.clone() });
        }
        out
    }
}

impl View {
    /// Turns this view (current standing) back into the standing it had before `changes`
    /// (entries after a client's cursor that [touch](View::touched_by) this view, in seq
    /// order), so that replaying them narrows and widens exactly as the live stream did.
    pub fn rewind(&mut self, changes: &[Change]) {
        for c in changes.iter().rev() {
            if !self.touched_by(c) {
                continue;
            }
            if c.kind == Kind::ModuleGrant
                && let Some((collaborator, module)) = grant_of(c)
            {
                // A grant is created or deleted, never changed: before a create the module
                // was not there; before a delete it was.
                let m = self.grants.entry(collaborator).or_default();
                *m = if c.op == Op::Upsert && c.collaborators_before.is_empty() {
                    m.without(module)
                } else {
                    m.with(module)
                };
            }
            if c.subject.as_deref() == Some(self.account.as_str()) {
                match (c.kind, c.op) {
                    (Kind::Seat, Op::Upsert) => self.standing.seat = false,
                    (Kind::Seat, Op::Delete) => self.standing.seat = true,
                    (Kind::CollabMember, _) => {
                        self.standing.membership = c.collaborators_before.first().map(|collaborator| Membership {
                            collaborator: collaborator.clone(),
                            ..Default::default()
                        });
                    }
                    _ => {}
                }
            }
            self.sync_modules();
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
    kind: Kind,
    id: String,
    data: Value,
}

impl Engine {
    /// `account`'s standing in `event` and the records it may see, read in one transaction
    /// together with the event's head seq. A person with no standing gets "not found".
    pub async fn snapshot(&self, account: &str, event: &str) -> Result<Snapshot> {
        self.read_view(account, event, true).await
    }

    /// The current records of `event` visible under `after` but not under `before` (and,
    /// for a seat granted, those `before` received with fewer fields).
    pub async fn widened(&self, event: &str, before: &Standing, after: &Standing) -> Result<Vec<Record>> {
        let fuller = !before.seat && after.seat;
        self.records_for(event, &Kind::ALL, after, |kind, of| !visible(before, kind, of) || fuller && kind.shaped())
            .await
    }

    /// The current records of `kinds` in `event` as `standing` receives them.
    pub async fn reshaped(&self, event: &str, kinds: &[String], standing: &Standing) -> Result<Vec<Record>> {
        let kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| kinds.iter().any(|x| k == &x.as_str())).collect();
        self.records_for(event, &kinds, standing, |_, _| true).await
    }

    /// The records of `kinds` in `event` visible under `s` that `also` picks, shaped for `s`.
    async fn records_for(
        &self,
        event: &str,
        kinds: &[Kind],
        s: &Standing,
        also: impl Fn(Kind, &[String]) -> bool,
    ) -> Result<Vec<Record>> {
        let mut sql = String::new();
        for kind in kinds {
            sql.push_str(&format!("{};\n", record_query(*kind)));
        }
        let mut rows = self.store.run(&sql, json!({ "e": event })).await?;
        let mut out = Vec::new();
        for i in 0..kinds.len() {
            for r in rows.all::<Row>(i)? {
                let owners = r.kind.owners(&r.id, &r.data);
                if visible(s, r.kind, &owners) && also(r.kind, &owners) {
                    let data = shape(s, r.kind, r.data);
                    out.push(Record { kind: r.kind.to_string(), id: r.id, data });
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
             LET $role = IF $org != NONE { (SELECT VALUE role FROM type::record('org_member', $org + '|' + $p))[0] } ELSE { NONE };
             LET $grants = (SELECT collaborator, module FROM module_grant WHERE event = $e);\n",
        );
        let kinds: &[Kind] = if with_records { &Kind::ALL } else { &[] };
        for kind in kinds {
            sql.push_str(&format!("LET $r_{kind} = ({});\n", record_query(*kind)));
        }
        let lists: Vec<String> = kinds.iter().map(|k| format!("$r_{k}")).collect();
        sql.push_str(&format!(
            "RETURN {{ head: $head, org: $org, seat: $seat, member: $member, role: $role, grants: $grants, records: array::flatten([{}]) }};\nCOMMIT TRANSACTION;",
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
            grants: Vec<G>,
            #[serde(default)]
            records: Vec<Row>,
        }
        #[derive(Deserialize)]
        struct G {
            collaborator: String,
            module: Module,
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
        let mut grants = Grants::new();
        for g in out.grants {
            let m = grants.entry(g.collaborator).or_default();
            *m = m.with(g.module);
        }
        let membership = out.member.map(|m| Membership {
            modules: grants.get(&m.collaborator).copied().unwrap_or_default(),
            collaborator: m.collaborator,
            read_only: m.read_only,
        });
        let standing = Standing { person: account.into(), seat: !out.seat.is_empty(), org_role: out.role, membership };
        if decide(&standing, Action::Read, Target::EventInfo) == Decision::Hidden {
            return Err(Error::not_found("event"));
        }
        let head = out.head;
        let mut records = Vec::new();
        for r in out.records {
            let owners = r.kind.owners(&r.id, &r.data);
            if visible(&standing, r.kind, &owners) {
                let data = shape(&standing, r.kind, r.data);
                records.push(Record { kind: r.kind.to_string(), id: r.id, data });
            }
        }
        Ok(Snapshot { view: View { account: account.into(), standing, grants }, cursor: head, records })
    }
}

/// Every record of one kind in an event, shaped as `{kind, id, data}`.
fn record_query(kind: Kind) -> String {
    let key = if kind == Kind::Event { "record::id(id) = $e" } else { "event = $e" };
    format!(
        "SELECT '{kind}' AS kind, record::id(id) AS id, object::extend(object::remove($this, 'id'), {{ id: record::id(id) }}) AS data FROM {kind} WHERE {key}"
    )
}
