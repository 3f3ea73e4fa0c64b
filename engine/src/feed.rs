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

/// The kinds of which `s` may receive some record (a catch-up reads the log's pages of
/// these only, until the access changes).
pub fn kinds_seen(s: &Standing) -> Vec<Kind> {
    let collaborators: Vec<String> = s.membership.iter().map(|m| m.collaborator.clone()).collect();
    let pick = |kind: Kind, of: &[String]| visible(s, kind, of);
    Kind::ALL.into_iter().filter(|k| cover(*k, &s.person, &collaborators, &pick) != Cover::Nothing).collect()
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

    /// Whether `c` can change what this view may see: its person's seat, membership or
    /// role in the owning organization, or a module grant (a collaborator's access).
    pub fn touched_by(&self, c: &Change) -> bool {
        c.subject.as_deref() == Some(self.account.as_str()) || c.kind == Kind::ModuleGrant
    }

    /// The membership's modules, from the grants.
    fn sync_modules(&mut self) {
        if let Some(m) = &mut self.standing.membership {
            m.modules = self.grants.get(&m.collaborator).copied().unwrap_or_default();
        }
    }

    /// Follows the access `c` changes (if any): the standing after it.
    fn follow(&mut self, c: &Change) {
        if c.kind == Kind::ModuleGrant
            && let Some((collaborator, module)) = grant_of(c)
        {
            let m = self.grants.entry(collaborator).or_default();
            *m = if c.op == Op::Upsert { m.with(module) } else { m.without(module) };
            self.sync_modules();
        }
        if c.subject.as_deref() != Some(self.account.as_str()) {
            return;
        }
        match (c.kind, c.op) {
            (_, Op::Role) => self.standing.org_role = role_of(c, "after"),
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

    /// Judges one change. A change whose subject is this view's person (or a module grant)
    /// first updates the standing, then the record itself is judged with the standing before
    /// (for what the client may hold) and after (for what it may receive).
    pub fn step(&mut self, c: &Change) -> Vec<Step> {
        let before = self.standing.clone();
        self.follow(c);
        let after = &self.standing;
        let mut out = Vec::new();
        if c.op != Op::Role {
            let was = visible(&before, c.kind, &c.collaborators_before);
            let is = visible(after, c.kind, &c.collaborators_after);
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
        }
        let own = |s: &Standing| s.membership.as_ref().map(|m| m.collaborator.clone());
        let modules = |s: &Standing| s.membership.as_ref().map(|m| m.modules).unwrap_or_default();
        let manages = |s: &Standing| s.org_role.is_some_and(crate::access::OrgRole::manages);
        // A seat lost, or (without a seat) a membership lost or moved, a module lost, or the
        // organization's management lost.
        let narrowed = !after.seat
            && (before.seat
                || own(&before).is_some() && own(&before) != own(after)
                || modules(&before).lost_in(modules(after))
                || manages(&before) && !manages(after));
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
        // A seat granted, or (without a seat) a membership granted or moved, a module granted,
        // or the organization's management granted.
        let widened = !before.seat
            && (after.seat
                || own(after).is_some() && own(after) != own(&before)
                || modules(after).lost_in(modules(&before))
                || manages(after) && !manages(&before));
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
                    (_, Op::Role) => self.standing.org_role = role_of(c, "before"),
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

/// The role a [`Op::Role`] entry names (`which`: "before" or "after").
fn role_of(c: &Change, which: &str) -> Option<crate::access::OrgRole> {
    serde_json::from_value(c.data.as_ref()?.get(which)?.clone()).ok()
}

/// Whether everything `a` may receive, `b` may receive too, with at least the same fields.
///
/// Asked of every owner a record can have that tells two standings of one person apart:
/// none, each one's collaborator, a collaborator neither belongs to, and the person's own
/// scope; `access::decide` answers each.
pub fn within(a: &Standing, b: &Standing) -> bool {
    let mut scopes: Vec<Vec<String>> = vec![Vec::new(), vec!["\u{0}another collaborator".to_string()]];
    for s in [a, b] {
        scopes.extend(s.membership.as_ref().map(|m| vec![m.collaborator.clone()]));
        scopes.push(vec![crate::kind::person_scope(&s.person)]);
    }
    Kind::ALL
        .into_iter()
        .all(|k| scopes.iter().all(|o| !visible(a, k, o) || visible(b, k, o) && !(k.shaped() && a.seat && !b.seat)))
}

/// How a subscription from a cursor starts (see [`resume`]).
#[derive(Clone, Debug)]
pub enum Resume {
    /// Replay the log from the cursor with this view: its standing at the cursor.
    Replay(View),
    /// The person could see something after the cursor that they may not see now: a replay
    /// would send it. The client gets `resync` and a fresh snapshot.
    Narrowed,
}

/// Whether a client of `current` (the person's view at the event's head) may resume from a
/// cursor, given `about`: the entries between the cursor and that head that
/// [touch](View::touched_by) the view, in seq order.
///
/// A replay judges each entry with the standing the person had at its point in the stream,
/// and a widening sends the records as they are now. Both are safe exactly when no standing
/// the replay passes through allows more than the current one: then everything it sends is
/// allowed now. Otherwise the person lost access after the cursor, and what they could see
/// in between is not theirs to receive any more.
pub fn resume(current: &View, about: &[Change]) -> Resume {
    let mut view = current.clone();
    view.rewind(about);
    let start = view.clone();
    if !within(&view.standing, &current.standing) {
        return Resume::Narrowed;
    }
    for c in about {
        view.follow(c);
        if !within(&view.standing, &current.standing) {
            return Resume::Narrowed;
        }
    }
    Resume::Replay(start)
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

/// Which of an event's records of one kind a read for one standing must cover: the narrowest
/// indexed read that still holds every record the access function could pick (a superset;
/// each row is then judged on its own).
#[derive(Clone, Debug, PartialEq)]
enum Cover {
    Nothing,
    All,
    /// The records of these collaborators (their places in the read's list of
    /// collaborators, `$c0`, `$c1`, …), through the index of the kind's owner field.
    Collaborators(Vec<usize>),
    /// The person's own records.
    Person,
}

/// A collaborator that stands for every collaborator a standing is not a member of: access
/// treats them all alike.
const ANOTHER: &str = "\u{0}another collaborator";

/// What a read of `kind` must cover to find every record `pick` takes, for a person whose
/// collaborators (now, or before an access change) are `collaborators`.
fn cover(kind: Kind, person: &str, collaborators: &[String], pick: &impl Fn(Kind, &[String]) -> bool) -> Cover {
    use crate::kind::{Owners, person_scope};
    match kind.info().owners {
        Owners::Event if pick(kind, &[]) => Cover::All,
        Owners::Event => Cover::Nothing,
        Owners::Person(_) => {
            if pick(kind, &[person_scope("\u{0}another person")]) || pick(kind, &[]) {
                Cover::All
            } else if pick(kind, &[person_scope(person)]) {
                Cover::Person
            } else {
                Cover::Nothing
            }
        }
        Owners::Itself | Owners::Field(_) | Owners::Tags(_) => {
            // A record of no collaborator, or of one the person is not in, that could be
            // picked: only a read of all of them finds it.
            if pick(kind, &[ANOTHER.to_string()]) || pick(kind, &[]) {
                return Cover::All;
            }
            let mine: Vec<usize> =
                (0..collaborators.len()).filter(|&i| pick(kind, std::slice::from_ref(&collaborators[i]))).collect();
            if mine.is_empty() { Cover::Nothing } else { Cover::Collaborators(mine) }
        }
    }
}

/// The query of one kind's records in `$e` that `cover` names, shaped as `{kind, id, data}`
/// (`$p`: the person; `$c0`, `$c1`, …: the collaborators), or none for nothing.
fn cover_query(kind: Kind, cover: &Cover) -> Option<String> {
    use crate::kind::Owners;
    let select = format!(
        "SELECT '{kind}' AS kind, record::id(id) AS id, object::extend(object::remove($this, 'id'), {{ id: record::id(id) }}) AS data"
    );
    match cover {
        Cover::Nothing => None,
        Cover::All => Some(record_query(kind)),
        Cover::Person => Some(match kind.info().owners {
            Owners::Person(f) => format!("{select} FROM {kind} WHERE event = $e AND {f} = $p"),
            _ => record_query(kind),
        }),
        Cover::Collaborators(cs) => {
            let one = |i: &usize| match kind.info().owners {
                Owners::Itself => format!("{select} FROM type::record('{kind}', $c{i}) WHERE event = $e"),
                Owners::Field(f) => format!("{select} FROM {kind} WHERE event = $e AND {f} = $c{i}"),
                // Through the index of the array's elements; the event is checked on the rows.
                Owners::Tags(f) => format!("{select} FROM {kind} WHERE $c{i} IN {f}"),
                _ => record_query(kind),
            };
            match cs.as_slice() {
                [] => None,
                [i] => Some(one(i)),
                _ => Some(format!(
                    "array::concat({})",
                    cs.iter().map(|i| format!("({})", one(i))).collect::<Vec<_>>().join(", ")
                )),
            }
        }
    }
}

/// The reads of `kinds` for one standing (kinds with nothing to read are left out), and the
/// parameters they take besides `$e` and `$p`.
fn covered_reads(
    kinds: &[Kind],
    person: &str,
    collaborators: &[String],
    pick: &impl Fn(Kind, &[String]) -> bool,
) -> (Vec<(Kind, String)>, serde_json::Map<String, Value>) {
    let params = collaborators.iter().enumerate().map(|(i, c)| (format!("c{i}"), json!(c))).collect();
    let reads = kinds
        .iter()
        .filter_map(|k| cover_query(*k, &cover(*k, person, collaborators, pick)).map(|q| (*k, q)))
        .collect();
    (reads, params)
}

impl Engine {
    /// `account`'s standing in `event` and the records it may see, read in one transaction
    /// together with the event's head seq. A person with no standing gets "not found".
    ///
    /// The records are read by the person's scopes (their collaborators, the modules
    /// granted, their own records, the event's setup for a seat holder) through indexes,
    /// never the whole event to filter: the standing is read first, and the records' read
    /// reads it again in its transaction — if it moved meanwhile, the read is made again for
    /// the new one.
    pub async fn snapshot(&self, account: &str, event: &str) -> Result<Snapshot> {
        let mut guess = self.read_view(account, event, Reads::None).await?.view.standing;
        for _ in 0..3 {
            let snap = self.read_view(account, event, Reads::For(&guess)).await?;
            if snap.view.standing == guess {
                return Ok(snap);
            }
            guess = snap.view.standing;
        }
        // Access keeps moving: every record of the event, judged row by row.
        self.read_view(account, event, Reads::Everything).await
    }

    /// The current records of `kinds` in `event` visible under `after` but not under
    /// `before` (and, for a seat granted, those `before` received with fewer fields).
    pub async fn widened(
        &self,
        event: &str,
        kinds: &[Kind],
        before: &Standing,
        after: &Standing,
    ) -> Result<Vec<Record>> {
        let fuller = !before.seat && after.seat;
        let mut collaborators: Vec<String> = Vec::new();
        for s in [after, before] {
            if let Some(m) = &s.membership
                && !collaborators.contains(&m.collaborator)
            {
                collaborators.push(m.collaborator.clone());
            }
        }
        self.records_for(event, kinds, after, &collaborators, |kind, of| {
            !visible(before, kind, of) || fuller && kind.shaped()
        })
        .await
    }

    /// The current records of `kinds` in `event` as `standing` receives them.
    pub async fn reshaped(&self, event: &str, kinds: &[String], standing: &Standing) -> Result<Vec<Record>> {
        let kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| kinds.iter().any(|x| k == &x.as_str())).collect();
        let collaborators: Vec<String> = standing.membership.iter().map(|m| m.collaborator.clone()).collect();
        self.records_for(event, &kinds, standing, &collaborators, |_, _| true).await
    }

    /// The records of `kinds` in `event` visible under `s` that `also` picks, shaped for `s`,
    /// read by the scopes that can hold them (`collaborators`: the person's, now and before).
    async fn records_for(
        &self,
        event: &str,
        kinds: &[Kind],
        s: &Standing,
        collaborators: &[String],
        also: impl Fn(Kind, &[String]) -> bool,
    ) -> Result<Vec<Record>> {
        let pick = |kind: Kind, of: &[String]| visible(s, kind, of) && also(kind, of);
        let (reads, mut params) = covered_reads(kinds, &s.person, collaborators, &pick);
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        // A read of several scopes is an expression, not a statement.
        let sql: String = reads
            .iter()
            .map(|(_, q)| if q.starts_with("SELECT") { format!("{q};\n") } else { format!("RETURN {q};\n") })
            .collect();
        params.insert("e".into(), json!(event));
        params.insert("p".into(), json!(s.person));
        let mut rows = self.store.run(&sql, Value::Object(params)).await?;
        let mut out = Vec::new();
        for i in 0..reads.len() {
            for r in rows.all::<Row>(i)? {
                let owners = r.kind.owners(&r.id, &r.data);
                if in_event(&r, event) && pick(r.kind, &owners) {
                    let data = shape(s, r.kind, r.data);
                    out.push(Record { kind: r.kind.to_string(), id: r.id, data });
                }
            }
        }
        Ok(out)
    }

    /// `account`'s current view of `event` and the event's head, without records.
    pub async fn view(&self, account: &str, event: &str) -> Result<(View, i64)> {
        let s = self.read_view(account, event, Reads::None).await?;
        Ok((s.view, s.cursor))
    }

    async fn read_view(&self, account: &str, event: &str, reads: Reads<'_>) -> Result<Snapshot> {
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
        let mut params = serde_json::Map::new();
        let lists: Vec<String> = match reads {
            Reads::None => Vec::new(),
            Reads::Everything => Kind::ALL
                .iter()
                .map(|kind| {
                    sql.push_str(&format!("LET $r_{kind} = ({});\n", record_query(*kind)));
                    format!("$r_{kind}")
                })
                .collect(),
            Reads::For(s) => {
                let collaborators: Vec<String> = s.membership.iter().map(|m| m.collaborator.clone()).collect();
                let pick = |kind: Kind, of: &[String]| visible(s, kind, of);
                let (covered, p) = covered_reads(&Kind::ALL, account, &collaborators, &pick);
                params = p;
                covered
                    .into_iter()
                    .map(|(kind, q)| {
                        sql.push_str(&format!("LET $r_{kind} = ({q});\n"));
                        format!("$r_{kind}")
                    })
                    .collect()
            }
        };
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
        params.insert("e".into(), json!(event));
        params.insert("p".into(), json!(account));
        let out: Out = self
            .store
            .run(&sql, Value::Object(params))
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
            if in_event(&r, event) && visible(&standing, r.kind, &owners) {
                let data = shape(&standing, r.kind, r.data);
                records.push(Record { kind: r.kind.to_string(), id: r.id, data });
            }
        }
        Ok(Snapshot { view: View { account: account.into(), standing, grants }, cursor: head, records })
    }
}

/// Which records a [`Engine::read_view`] reads besides the standing.
#[derive(Clone, Copy)]
enum Reads<'a> {
    None,
    /// What this standing may see, by its scopes.
    For(&'a Standing),
    Everything,
}

/// Whether a row read by a scope is of `event` (a read by a collaborator's tags is not
/// limited to the event in the database).
fn in_event(r: &Row, event: &str) -> bool {
    r.kind == Kind::Event || r.data.get("event").and_then(Value::as_str).is_none_or(|e| e == event)
}

/// Every record of one kind in an event, shaped as `{kind, id, data}`.
fn record_query(kind: Kind) -> String {
    let key = if kind == Kind::Event { "record::id(id) = $e" } else { "event = $e" };
    format!(
        "SELECT '{kind}' AS kind, record::id(id) AS id, object::extend(object::remove($this, 'id'), {{ id: record::id(id) }}) AS data FROM {kind} WHERE {key}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(person: &str, collaborator: &str) -> View {
        let membership =
            Membership { collaborator: collaborator.into(), read_only: false, modules: Modules::default() };
        let standing = Standing { person: person.into(), membership: Some(membership), ..Default::default() };
        View { account: person.into(), standing, grants: Grants::new() }
    }

    fn change(seq: i64, kind: Kind, record: &str, op: Op, before: &[&str], after: &[&str]) -> Change {
        Change {
            event: "e".into(),
            seq,
            kind,
            record: record.into(),
            op,
            collaborators_before: before.iter().map(|s| s.to_string()).collect(),
            collaborators_after: after.iter().map(|s| s.to_string()).collect(),
            subject: None,
            data: (op == Op::Upsert).then(|| json!({ "id": record, "title": "Load in" })),
            origin: None,
            at: "2026-07-04T12:00:00.000Z".into(),
        }
    }

    fn sent(steps: &[Step]) -> Vec<(&'static str, i64, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send(WireChange::Upsert { seq, id, .. }) => Some(("upsert", *seq, id.clone())),
                Step::Send(WireChange::Delete { seq, id, .. }) => Some(("delete", *seq, id.clone())),
                Step::Send(WireChange::Remove { seq, id, .. }) => Some(("remove", *seq, id.clone())),
                Step::Send(WireChange::Narrow { seq, .. }) => Some(("narrow", *seq, String::new())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_member_receives_their_collaborators_records_and_loses_one_that_moves_away() {
        let mut v = member("p", "c1");
        let mine = v.step(&change(1, Kind::Task, "t1", Op::Upsert, &[], &["c1"]));
        assert_eq!(sent(&mine), [("upsert", 1, "t1".to_string())]);
        let other = v.step(&change(2, Kind::Task, "t2", Op::Upsert, &[], &["c2"]));
        assert!(other.is_empty(), "another collaborator's task is never sent: {other:?}");
        let moved = v.step(&change(3, Kind::Task, "t1", Op::Upsert, &["c1"], &["c2"]));
        assert_eq!(sent(&moved), [("remove", 3, "t1".to_string())]);
        let gone = v.step(&change(4, Kind::Task, "t2", Op::Delete, &["c2"], &[]));
        assert!(gone.is_empty(), "a delete of what the member never saw is not sent: {gone:?}");
        let deleted = v.step(&change(5, Kind::Task, "t3", Op::Delete, &["c1"], &[]));
        assert_eq!(sent(&deleted), [("delete", 5, "t3".to_string())]);
    }

    #[test]
    fn a_seat_granted_widens_and_a_seat_lost_narrows_at_its_seq() {
        let mut v = member("p", "c1");
        let mut seat = change(7, Kind::Seat, "e|1", Op::Upsert, &[], &[]);
        seat.subject = Some("p".into());
        let steps = v.step(&seat);
        assert!(v.standing.seat);
        assert!(
            steps.iter().any(|s| matches!(s, Step::Widen { seq: 7, before, after } if !before.seat && after.seat)),
            "{steps:?}"
        );
        assert!(!v.step(&change(8, Kind::Task, "t2", Op::Upsert, &[], &["c2"])).is_empty(), "a seat sees every task");

        let mut lost = change(9, Kind::Seat, "e|1", Op::Delete, &[], &[]);
        lost.subject = Some("p".into());
        let steps = v.step(&lost);
        assert!(!v.standing.seat);
        let narrow = steps.iter().find_map(|s| match s {
            Step::Send(WireChange::Narrow { seq, keep, .. }) => Some((*seq, keep.clone())),
            _ => None,
        });
        assert_eq!(narrow, Some((9, vec!["c1".to_string()])), "the member keeps their own collaborator's records");
        assert!(!steps.iter().any(|s| matches!(s, Step::Widen { .. })), "losing a seat widens nothing");
    }

    #[test]
    fn another_persons_access_change_leaves_the_view_alone() {
        let mut v = member("p", "c1");
        let mut seat = change(3, Kind::Seat, "e|1", Op::Upsert, &[], &[]);
        seat.subject = Some("q".into());
        assert!(!v.touched_by(&seat));
        v.step(&seat);
        assert!(!v.standing.seat);
    }

    #[test]
    fn a_module_grant_opens_its_data_to_the_collaborators_members_and_its_revocation_narrows() {
        let mut v = member("p", "c1");
        let credential = change(2, Kind::Credential, "e|W1", Op::Upsert, &[], &[]);
        assert!(v.clone().step(&credential).is_empty(), "no gate module, no credentials");
        let grant = change(3, Kind::ModuleGrant, "e|c1|gate", Op::Upsert, &[], &["c1"]);
        assert!(v.touched_by(&grant));
        let steps = v.step(&grant);
        assert!(v.standing.membership.as_ref().unwrap().modules.has(Module::Gate));
        assert!(steps.iter().any(|s| matches!(s, Step::Widen { seq: 3, .. })), "{steps:?}");
        let received = v.step(&credential);
        let Some(Step::Send(WireChange::Upsert { data, .. })) = received.first() else { panic!("{received:?}") };
        assert!(data.get("title").is_none(), "a gate member gets the credential shaped: {data}");

        let revoke = change(4, Kind::ModuleGrant, "e|c1|gate", Op::Delete, &["c1"], &[]);
        let steps = v.step(&revoke);
        let keep_kinds = steps.iter().find_map(|s| match s {
            Step::Send(WireChange::Narrow { keep_kinds, .. }) => Some(keep_kinds.clone()),
            _ => None,
        });
        let keep_kinds = keep_kinds.expect("a module lost narrows");
        assert!(!keep_kinds.contains(&"credential".to_string()), "credentials go with the module: {keep_kinds:?}");
        assert!(keep_kinds.contains(&"event".to_string()), "the event itself stays: {keep_kinds:?}");
    }

    fn about(mut c: Change, person: &str) -> Change {
        c.subject = Some(person.into());
        c
    }

    fn role(seq: i64, person: &str, before: Option<&str>, after: Option<&str>) -> Change {
        let mut c = change(seq, Kind::Event, "o|p", Op::Role, &[], &[]);
        c.subject = Some(person.into());
        c.data = Some(json!({ "before": before, "after": after }));
        c
    }

    #[test]
    fn an_org_role_lost_narrows_to_what_is_left_and_a_role_granted_widens() {
        let mut v = member("p", "c1");
        v.standing.org_role = Some(crate::access::OrgRole::Admin);
        let seat = change(2, Kind::Seat, "e|1", Op::Upsert, &[], &[]);
        assert!(!v.clone().step(&seat).is_empty(), "an admin receives the seats");
        let steps = v.step(&role(3, "p", Some("admin"), Some("member")));
        assert_eq!(v.standing.org_role, Some(crate::access::OrgRole::Member));
        let narrow = steps.iter().find_map(|s| match s {
            Step::Send(WireChange::Narrow { keep, keep_kinds, .. }) => Some((keep.clone(), keep_kinds.clone())),
            _ => None,
        });
        let (keep, keep_kinds) = narrow.expect("a demotion narrows");
        assert_eq!(keep, ["c1"]);
        assert!(!keep_kinds.contains(&"seat".to_string()) && keep_kinds.contains(&"event".to_string()));
        assert!(v.clone().step(&seat).is_empty(), "seats stop");
        assert!(
            steps.iter().all(|s| matches!(s, Step::Send(WireChange::Narrow { .. }))),
            "the note itself is not sent"
        );

        let steps = v.step(&role(4, "p", Some("member"), Some("owner")));
        assert!(steps.iter().any(|s| matches!(s, Step::Widen { seq: 4, .. })), "{steps:?}");
        assert!(v.step(&role(5, "q", Some("owner"), None)).is_empty(), "another person's role");
    }

    #[test]
    fn a_resume_replays_only_when_nothing_was_lost_since_the_cursor() {
        // Now: a member of c1 with no seat.
        let now = member("p", "c1");
        let seat = |seq, op| about(change(seq, Kind::Seat, "e|1", op, &[], &[]), "p");
        // Granted and released after the cursor: a replay would pass through the seat.
        assert!(matches!(resume(&now, &[seat(5, Op::Upsert), seat(9, Op::Delete)]), Resume::Narrowed));
        // Released after the cursor: the cursor's standing had the seat.
        assert!(matches!(resume(&now, &[seat(9, Op::Delete)]), Resume::Narrowed));
        // Nothing about the person: replay from the same standing.
        let Resume::Replay(v) = resume(&now, &[]) else { panic!() };
        assert_eq!(v.standing, now.standing);
        // Only widened since the cursor: replayed from the narrower standing.
        let mut seated = now.clone();
        seated.standing.seat = true;
        let Resume::Replay(v) = resume(&seated, &[seat(5, Op::Upsert)]) else { panic!() };
        assert!(!v.standing.seat);

        // A module revoked after the cursor.
        let grant =
            |seq, op, before: &[&str], after: &[&str]| change(seq, Kind::ModuleGrant, "e|c1|gate", op, before, after);
        assert!(matches!(
            resume(&now, &[grant(4, Op::Upsert, &[], &["c1"]), grant(6, Op::Delete, &["c1"], &[])]),
            Resume::Narrowed
        ));
        // Another collaborator's module granted and revoked: nothing of the person's.
        let other =
            |seq, op, before: &[&str], after: &[&str]| change(seq, Kind::ModuleGrant, "e|c2|gate", op, before, after);
        assert!(matches!(
            resume(&now, &[other(4, Op::Upsert, &[], &["c2"]), other(6, Op::Delete, &["c2"], &[])]),
            Resume::Replay(_)
        ));

        // Moved from c0 to c1 after the cursor: the cursor's standing saw c0.
        let mut moved = change(7, Kind::CollabMember, "e|p", Op::Upsert, &["c0"], &["c1"]);
        moved.subject = Some("p".into());
        moved.data = Some(json!({ "collaborator": "c1" }));
        assert!(matches!(resume(&now, &[moved]), Resume::Narrowed));

        // An admin role lost after the cursor.
        assert!(matches!(resume(&now, &[role(8, "p", Some("admin"), Some("member"))]), Resume::Narrowed));
        let Resume::Replay(v) = resume(&now, &[role(8, "p", None, Some("member"))]) else { panic!() };
        assert_eq!(v.standing.org_role, None);
    }

    #[test]
    fn within_compares_what_two_standings_receive() {
        let m1 = member("p", "c1").standing;
        let m2 = member("p", "c2").standing;
        let seat = Standing { seat: true, ..m1.clone() };
        assert!(within(&m1, &m1) && within(&m1, &seat));
        assert!(!within(&seat, &m1) && !within(&m1, &m2));
        let gate = Standing {
            membership: Some(Membership {
                modules: Modules::default().with(Module::Gate),
                ..m1.membership.clone().unwrap()
            }),
            ..m1.clone()
        };
        assert!(within(&m1, &gate) && !within(&gate, &m1) && within(&gate, &seat));
        let admin = Standing { org_role: Some(crate::access::OrgRole::Admin), ..m1.clone() };
        assert!(within(&m1, &admin) && !within(&admin, &m1));
        assert!(within(&Standing { person: "p".into(), ..Default::default() }, &m1));
    }
}
