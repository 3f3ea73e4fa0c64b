//! Local writes: checked with the server's rules where the device knows enough, shown at
//! once, and kept in the outbox until the server answers — in one transaction.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{Outgoing, Replica, Row, ops_of};
use crate::{
    Error, Result,
    access::Standing,
    kind::{Kind, not_pushable},
    model::{Activity, Advance, Event, Task},
    plan::{self, Facts, FinishedUpload, Planned},
    protocol::{Mutation, MutationOp, Record},
    rules::{self, ActivityPatch, AdvancePatch, TaskPatch},
};

/// A write made on the device: the kinds, operations and fields of a pushed mutation
/// (`fields` are those of the HTTP API's create and update bodies).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalWrite {
    /// `task`, `activity`, `file_meta` or `advance`.
    pub kind: String,
    pub op: MutationOp,
    /// The record to update or delete; on create, an optional UUID for the new record.
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub fields: Value,
}

/// A local write as made: the mutation that will carry it, and the record as shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The mutation's id: the server's answer and a [`super::Rejection`] name it.
    pub mutation: String,
    /// The record as shown after the write (`data` null for a delete).
    pub record: Record,
}

/// What a planner asks, answered from what the device holds (the mirror): the same
/// planners as the server's ([`crate::plan`]), on the replica.
struct MirrorFacts<'a> {
    replica: &'a Replica,
    /// The account the device syncs as.
    me: &'a str,
    ev: &'a Event,
    s: &'a Standing,
    device: &'a str,
    stamp: &'a str,
    now: String,
}

impl Facts for MirrorFacts<'_> {
    fn event(&self) -> &Event {
        self.ev
    }

    fn standing(&self) -> &Standing {
        self.s
    }

    fn actor(&self) -> &str {
        self.me
    }

    fn device(&self) -> &str {
        self.device
    }

    fn stamp(&self) -> &str {
        self.stamp
    }

    fn now(&self) -> &str {
        &self.now
    }

    async fn record(&self, kind: Kind, id: &str) -> Result<Option<Value>> {
        let held = self.replica.mirror().get(&self.ev.id, kind.as_str(), id);
        Ok(held.map(|r| r.data.clone()).filter(|d| !d.is_null()))
    }

    async fn records_where(&self, kind: Kind, field: &'static str, value: &str) -> Result<Vec<Value>> {
        let mirror = self.replica.mirror();
        // What an append-only record is about has an index of its own.
        let rows = match kind.info().subject {
            Some(subject) if subject == field => mirror.about(&self.ev.id, kind.as_str(), value),
            _ => mirror.kind(&self.ev.id, kind.as_str()),
        };
        Ok(rows.iter().map(|r| &r.data).filter(|d| !d.is_null() && d[field] == value).cloned().collect())
    }

    async fn collaborator_exists(&self, id: &str) -> Result<bool> {
        Ok(self.replica.mirror().get(&self.ev.id, Kind::Collaborator.as_str(), id).is_some_and(|r| !r.data.is_null()))
    }

    async fn account_exists(&self, _id: &str) -> Result<Option<bool>> {
        // A device holds no directory of accounts: the server checks when the write arrives.
        Ok(None)
    }

    async fn finished_upload(&self, _id: &str) -> Result<Option<FinishedUpload>> {
        // A device keeps the bytes itself (see `Replica::write`); the server checks the upload.
        Ok(None)
    }

    async fn judgement(&self, _key: &str) -> Result<i64> {
        Ok(0)
    }
}

/// Plans a local write with the server's planners on what the device holds.
async fn plan_local(f: &MirrorFacts<'_>, w: &LocalWrite) -> Result<Planned<(String, Value)>> {
    plan::mutation(f, plan::Side::Device, &w.kind, w.op, w.record.as_deref(), &w.fields).await
}

/// A record in the form the server sends it: no nulls (absent optional fields).
pub(super) fn shown<T: Serialize>(record: &T) -> Result<Value> {
    let mut v = serde_json::to_value(record)?;
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    Ok(v)
}

/// Replays update `fields` stamped `stamp` on the record `data` of `kind`, field by field
/// (the server's rules, [`crate::rules`]), to show the server's version with the device's
/// unsent updates on top. The fields were planned when the write was made.
pub(super) fn apply_update(kind: &str, data: &Value, fields: &Value, stamp: &str, team: bool) -> Result<Value> {
    let op = MutationOp::Update;
    let now = crate::time::now();
    match Kind::parse(kind) {
        Some(Kind::Task) => {
            let mut t: Task = plan::typed(data.clone())?;
            let mut p: TaskPatch = plan::fields(Kind::Task, op, fields)?;
            p.collaborator = p.collaborator.map(|c| c.trim().to_string());
            p.assignee = p.assignee.map(|a| a.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()));
            rules::apply_task(&mut t, p, stamp, &now)?;
            shown(&t)
        }
        Some(Kind::Activity) => {
            let mut a: Activity = plan::typed(data.clone())?;
            let mut p: ActivityPatch = plan::fields(Kind::Activity, op, fields)?;
            p.collaborators = p.collaborators.map(|t| {
                let mut t: Vec<String> = t.into_iter().map(|c| c.trim().to_string()).collect();
                t.sort();
                t.dedup();
                t
            });
            rules::apply_activity(&mut a, p, stamp, &now)?;
            shown(&a)
        }
        Some(Kind::Advance) => {
            let mut a: Advance = plan::typed(data.clone())?;
            let mut p: AdvancePatch = plan::fields(Kind::Advance, op, fields)?;
            p.collaborator = p.collaborator.map(|c| c.trim().to_string());
            rules::apply_advance(&mut a, p, team, stamp, &now)?;
            shown(&a)
        }
        _ => Err(not_pushable(kind, op)),
    }
}

/// A record as the replica holds it from the server: which one, the server's version (None:
/// the device has none), the seq it is at and the snapshot generation it came with.
#[derive(Clone, Copy)]
pub(super) struct Held<'a> {
    pub event: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
    pub server: Option<&'a Value>,
    pub seq: i64,
    pub generation: i64,
}

/// The stored row of a record: the server's version with the device's unsent mutations `ops`
/// applied. None: nothing to keep.
pub(super) fn stored_row(h: Held<'_>, ops: &[&Outgoing]) -> Option<Value> {
    let Held { event, kind, id, server, seq, generation } = h;
    let ops: Vec<&Outgoing> = ops.iter().copied().filter(|o| o.accepted.is_none_or(|a| a > seq)).collect();
    let record_collaborators =
        |kind: &str, id: &str, d: &Value| Kind::parse(kind).map(|k| k.owners(id, d)).unwrap_or_default();
    if ops.is_empty() {
        let d = server?;
        let collaborators = record_collaborators(kind, id, d);
        return Some(
            json!({ "event": event, "kind": kind, "rid": id, "data": d, "collaborators": collaborators, "seq": seq, "gen": generation }),
        );
    }
    let mut cur = server.cloned();
    for o in &ops {
        cur = match o.mutation.op {
            MutationOp::Create => cur.or_else(|| o.created.clone()),
            MutationOp::Update => cur.map(|c| {
                let stamp = o.mutation.hlc.as_deref().unwrap_or_default();
                // The write was checked when it was made; the team's parts too.
                apply_update(kind, &c, &o.mutation.fields, stamp, true).unwrap_or(c)
            }),
            MutationOp::Delete => None,
        };
    }
    let collaborators = cur.as_ref().or(server).map(|d| record_collaborators(kind, id, d)).unwrap_or_default();
    let mut row = json!({ "event": event, "kind": kind, "rid": id, "collaborators": collaborators, "pending": true, "seq": seq, "gen": generation });
    if let Some(m) = row.as_object_mut() {
        if let Some(d) = cur {
            m.insert("data".into(), d);
        }
        if let Some(b) = server {
            // Who the server's version belongs to: a narrowing keeps the row if it may
            // still hold that version (see `apply.rs`).
            m.insert("base_of".into(), json!(record_collaborators(kind, id, b)));
            m.insert("base".into(), b.clone());
        }
    }
    Some(row)
}

/// [`stored_row`] as `standing` allows it: a server version it does not allow is forgotten;
/// when the unsent mutations would show the record where the person may no longer see it
/// (their access narrowed since), the server's version is shown until the server answers.
pub(super) fn allowed_row(standing: &Standing, h: Held<'_>, ops: &[&Outgoing]) -> Option<Value> {
    let (kind, id) = (h.kind, h.id);
    let k = Kind::parse(kind)?;
    let allowed = |d: &Value| crate::feed::visible(standing, k, &k.owners(id, d));
    let server = h.server.filter(|d| allowed(d));
    let mut row = stored_row(Held { server, ..h }, ops)?;
    if row.get("data").is_none_or(allowed) {
        return Some(row);
    }
    let base = server?;
    if let Some(m) = row.as_object_mut() {
        m.insert("data".into(), base.clone());
        m.insert("collaborators".into(), json!(k.owners(id, base)));
    }
    Some(row)
}

impl Replica {
    /// Makes a write on the device: checked with the server's rules on what the device holds
    /// (a refusal changes nothing), shown at once, and kept in the outbox until the server
    /// answers — the record and the outbox entry in one transaction, so a crash loses
    /// neither.
    pub async fn write(&self, event: &str, w: LocalWrite) -> Result<Written> {
        // A full disk refuses the edit whole, before anything is shown or kept.
        self.inner.store.guard().check()?;
        let mut st = self.inner.state.lock().await;
        let me = st.account.clone().ok_or_else(|| {
            Error::forbidden("not_signed_in", "this device has not synced with an account yet; connect once first")
        })?;
        let s = match st.subs.get(event) {
            Some(sub) if sub.cursor.is_some() => sub.standing.clone(),
            _ => return Err(Error::not_found("event")),
        };
        let ev: Event = self.load(event, "event", event)?.ok_or(Error::not_found("event"))?;
        let row = match (&w.op, &w.record) {
            (_, Some(id)) => self.row(event, &w.kind, id),
            _ => None,
        };
        let stamp = self.inner.clock.now().to_string();
        let f = MirrorFacts {
            replica: self,
            me: &me,
            ev: &ev,
            s: &s,
            device: self.inner.device.as_str(),
            stamp: &stamp,
            now: crate::time::now(),
        };
        let planned = plan_local(&f, &w).await?;
        let (id, after) = planned.record;
        let after = Some(after).filter(|a| !a.is_null());
        if w.op == MutationOp::Create && row.as_ref().is_some_and(|r| !r.data.is_null()) {
            return Err(Error::conflict("already_exists", "that already exists"));
        }
        let kind = Kind::parse(&w.kind).ok_or_else(|| not_pushable(&w.kind, w.op))?;
        if kind == Kind::FileMeta
            && w.op == MutationOp::Create
            && let Some(hash) = after.as_ref().and_then(|a| a["content_hash"].as_str())
            && !self.holds_blob(hash)
        {
            return Err(Error::invalid(
                "a file is added with its bytes: attach it (attach_file) so the device keeps and uploads them",
            ));
        }
        let n = st.next_n;
        // A field record carries what the device decided (a lane's decision, the clock), not
        // what the app asked.
        let fields = match after.as_ref().and_then(|a| plan::field::pushed_fields(kind, a)) {
            Some(decided) => decided,
            None => {
                let mut f = w.fields.clone();
                if let Some(m) = f.as_object_mut() {
                    m.remove("id");
                }
                f
            }
        };
        let out = Outgoing {
            n,
            event: event.into(),
            kind: w.kind.clone(),
            record: id.clone(),
            mutation: Mutation {
                id: uuid::Uuid::now_v7().to_string(),
                n: Some(n),
                kind: w.kind.clone(),
                op: w.op,
                record: Some(id.clone()),
                fields,
                hlc: Some(stamp.clone()),
            },
            created: (w.op == MutationOp::Create).then(|| after.clone()).flatten(),
            accepted: None,
        };
        let mut ops = ops_of(&st, event, &w.kind, &id);
        ops.push(&out);
        let server = row.as_ref().and_then(Row::server);
        let (seq, generation) = row.as_ref().map_or((0, 0), |r| (r.seq, r.generation));
        let held = Held { event, kind: &w.kind, id: &id, server, seq, generation };
        let stored = stored_row(held, &ops);
        let op = match &stored {
            Some(r) => json!({ "put": r }),
            None => json!({ "del": { "kind": w.kind, "id": id } }),
        };
        let mut vars = super::pages::overlay_vars(&mut st, event, &[op])?;
        vars["n"] = json!(n);
        vars["out"] = json!(out);
        vars["clock"] = json!(stamp);
        self.inner
            .store
            .run(
                concat!(
                    "BEGIN TRANSACTION;\n",
                    super::pages::delta_statement!(),
                    "\nCREATE type::record('outbox', $n) CONTENT $out;
                     UPDATE type::record('meta', 'device') SET clock = $clock, last_n = $n;
                     COMMIT TRANSACTION;"
                ),
                vars,
            )
            .await?;
        let mutation = out.mutation.id.clone();
        {
            let mut mirror = self.mirror_mut();
            match &stored {
                Some(r) => mirror.put(event, r),
                None => mirror.del(event, &w.kind, &id),
            }
        }
        st.outbox.insert(out);
        st.next_n += 1;
        self.refresh_status(&st, |_| {});
        drop(st);
        self.changed(event, [w.kind.clone()].into());
        Ok(Written { mutation, record: Record { kind: w.kind, id, data: after.unwrap_or(Value::Null) } })
    }
}

/// A held row's record, decoded; None for a row deleted on the device or one that does not
/// decode as `T`.
pub(super) fn typed_row<T: DeserializeOwned>(r: &Row) -> Option<T> {
    if r.data.is_null() { None } else { T::deserialize(&r.data).ok() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Membership;

    fn task(collaborator: &str, title: &str) -> Value {
        json!({
            "id": "t1", "event": "e", "collaborator": collaborator, "title": title, "status": "todo",
            "created_by": "p", "created_at": "2026-07-04T10:00:00.000Z", "updated_at": "2026-07-04T10:00:00.000Z",
        })
    }

    fn op(n: u64, op: MutationOp, fields: Value, created: Option<Value>, accepted: Option<i64>) -> Outgoing {
        let mutation = Mutation {
            id: format!("m{n}"),
            n: Some(n),
            kind: "task".into(),
            op,
            record: Some("t1".into()),
            fields,
            hlc: Some(format!("{:016}-000000-phone", 1_780_000_000_000 + n)),
        };
        Outgoing { n, event: "e".into(), kind: "task".into(), record: "t1".into(), mutation, created, accepted }
    }

    fn held(server: Option<&Value>) -> Held<'_> {
        Held { event: "e", kind: "task", id: "t1", server, seq: 10, generation: 1 }
    }

    #[test]
    fn a_record_without_unsent_edits_is_the_servers() {
        let server = task("c1", "Load in");
        let row = stored_row(held(Some(&server)), &[]).unwrap();
        assert_eq!(row["data"], server);
        assert_eq!(row["collaborators"], json!(["c1"]));
        assert_eq!((row["seq"].as_i64(), row["gen"].as_i64()), (Some(10), Some(1)));
        assert!(row.get("pending").is_none() && row.get("base").is_none());
        assert_eq!(stored_row(held(None), &[]), None, "nothing held, nothing sent: no row");
    }

    #[test]
    fn unsent_edits_are_laid_over_the_servers_version_in_order() {
        let server = task("c1", "Load in");
        let rename = op(1, MutationOp::Update, json!({ "title": "Load in, dock B" }), None, None);
        let moved = op(2, MutationOp::Update, json!({ "collaborator": "c2" }), None, None);
        let row = stored_row(held(Some(&server)), &[&rename, &moved]).unwrap();
        assert_eq!(row["data"]["title"], "Load in, dock B");
        assert_eq!(row["data"]["collaborator"], "c2");
        assert_eq!(row["collaborators"], json!(["c2"]), "the row is filed where the edits put it");
        assert_eq!(row["pending"], true);
        assert_eq!(row["base"], server, "the server's version is kept for a rollback");
        assert_eq!(row["base_of"], json!(["c1"]));
    }

    #[test]
    fn an_edit_the_held_seq_already_reflects_is_not_applied_twice() {
        let server = task("c1", "Load in, dock B");
        let seen = op(1, MutationOp::Update, json!({ "title": "Load in, dock B" }), None, Some(9));
        let later = op(2, MutationOp::Update, json!({ "title": "Load in, dock C" }), None, Some(11));
        let row = stored_row(held(Some(&server)), &[&seen]).unwrap();
        assert!(row.get("pending").is_none(), "accepted at or below the held seq: the server's row: {row}");
        let row = stored_row(held(Some(&server)), &[&seen, &later]).unwrap();
        assert_eq!(row["data"]["title"], "Load in, dock C", "accepted past the held seq: still laid over");
    }

    #[test]
    fn an_offline_create_and_delete() {
        let created = task("c1", "Stage plot");
        let create = op(1, MutationOp::Create, json!({ "title": "Stage plot" }), Some(created.clone()), None);
        let row = stored_row(held(None), &[&create]).unwrap();
        assert_eq!((&row["data"], &row["pending"]), (&created, &json!(true)));
        assert!(row.get("base").is_none());

        let delete = op(2, MutationOp::Delete, Value::Null, None, None);
        let row = stored_row(held(None), &[&create, &delete]).unwrap();
        assert!(row.get("data").is_none(), "deleted before it was sent: a pending row with no data: {row}");
        assert_eq!(row["pending"], true);
    }

    #[test]
    fn an_unsent_move_out_of_the_persons_reach_shows_the_servers_version() {
        let member = Standing {
            person: "p".into(),
            membership: Some(Membership { collaborator: "c1".into(), read_only: false, modules: Default::default() }),
            ..Default::default()
        };
        let server = task("c1", "Load in");
        let moved = op(1, MutationOp::Update, json!({ "collaborator": "c2" }), None, None);
        let row = allowed_row(&member, held(Some(&server)), &[&moved]).unwrap();
        assert_eq!(row["data"], server);
        assert_eq!(row["collaborators"], json!(["c1"]));
        let elsewhere = task("c2", "Load in");
        assert_eq!(allowed_row(&member, held(Some(&elsewhere)), &[]), None, "another collaborator's: not kept");
    }
}
