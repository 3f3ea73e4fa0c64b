//! Local writes: checked with the server's rules where the device knows enough, shown at
//! once, and kept in the outbox until the server answers — in one transaction.

use std::collections::HashSet;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{Outgoing, Replica, Row, mirror::Mirror, ops_of};
use crate::{
    Error, Result,
    access::{Action, Decision, Module, Standing, Tab, Target, decide},
    assets::NewMove,
    events::gate,
    feed::record_collaborators,
    frontgate::{self, NewScan},
    labor::NewPunch,
    model::{
        Activity, Advance, Asset, Credential, CustodyAction, CustodyMove, Direction, Event, Gate, Gps, Punch,
        PunchKind, Scan, Task,
    },
    protocol::{Mutation, MutationOp, Record},
    rules,
    tabs::{ActivityPatch, AdvancePatch, NewActivity, NewAdvance, NewFile, NewTask, TaskPatch},
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

/// What a local write decided: the record's id, and what it looks like after (None: gone).
struct Planned {
    id: String,
    after: Option<Value>,
}

/// What the planning of a write knows of the event.
struct Ctx<'a> {
    ev: &'a Event,
    s: &'a Standing,
    me: &'a str,
    device: &'a str,
    stamp: &'a str,
    collaborators: &'a HashSet<String>,
    /// What the device holds (a lane's decision reads its gate, the credential and the
    /// credential's scans).
    mirror: &'a Mirror,
}

impl Ctx<'_> {
    /// A collaborator the write names: visible to the person and held by the device.
    fn collaborator(&self, asked: Option<String>) -> Result<String> {
        let c = rules::collaborator_asked(&self.ev.default_collaborator, self.s, asked)?;
        self.known(&c)?;
        Ok(c)
    }

    fn tags(&self, asked: Option<Vec<String>>) -> Result<Vec<String>> {
        let tags = rules::tags_asked(&self.ev.default_collaborator, self.s, asked)?;
        tags.iter().try_for_each(|c| self.known(c))?;
        Ok(tags)
    }

    fn known(&self, c: &str) -> Result<()> {
        if self.collaborators.contains(c) { Ok(()) } else { Err(Error::not_found("collaborator")) }
    }

    fn tab(&self, action: Action, tab: Tab, collaborators: &[String], what: &'static str) -> Result<()> {
        gate(decide(self.s, action, Target::Tab { tab, collaborators }), what)
    }

    /// A record held, decoded (None: not held).
    fn held<T: DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>> {
        match self.mirror.get(&self.ev.id, kind, id) {
            Some(r) if !r.data.is_null() => typed(&r.data).map(Some),
            _ => Ok(None),
        }
    }

    /// A lane's scan, decided here from what the device holds: never by the app.
    fn scan(&self, fields: &Value) -> Result<Scan> {
        gate(decide(self.s, Action::Write, Target::Module(Module::Gate)), "event")?;
        let input: LaneScan = parse("scan", MutationOp::Create, fields)?;
        let g: Gate = self.held("gate", input.gate.trim())?.ok_or(Error::not_found("gate"))?;
        let uid = input.credential.trim();
        let credential: Option<Credential> = self.held("credential", &frontgate::credential_key(&self.ev.id, uid))?;
        let scans: Vec<Scan> = self
            .mirror
            .about(&self.ev.id, "scan", uid)
            .iter()
            .filter(|r| !r.data.is_null())
            .filter_map(|r| typed(&r.data).ok())
            .collect();
        let direction = input.direction.unwrap_or(Direction::Entry);
        let now = crate::time::now();
        let decision = frontgate::decide_scan(credential.as_ref(), &g, direction, &now, frontgate::presence(&scans));
        let scan = NewScan {
            id: input.id,
            credential: uid.into(),
            gate: g.id.clone(),
            lane: input.lane,
            direction: Some(direction),
            decision,
            device_time: now,
        };
        frontgate::build_scan(scan, &self.ev.id, &g, self.device, self.me, self.stamp)
    }
}

impl Ctx<'_> {
    /// One of the person's own punches, with the phone's clock.
    fn punch(&self, fields: &Value) -> Result<Punch> {
        let owner = Target::Personal { module: Module::Labor, owner: self.me };
        gate(decide(self.s, Action::Write, owner), "event")?;
        let input: PhonePunch = parse("punch", MutationOp::Create, fields)?;
        let punch = NewPunch { id: input.id, kind: input.kind, device_time: crate::time::now(), gps: input.gps };
        crate::labor::build_punch(punch, &self.ev.id, self.me, self.device, self.stamp)
    }
}

impl Ctx<'_> {
    /// A desk's custody move, with the device's clock. A check-out of an asset the device
    /// knows is out is refused: check it in first.
    fn custody(&self, fields: &Value) -> Result<CustodyMove> {
        gate(decide(self.s, Action::Write, Target::Module(Module::Assets)), "event")?;
        let mut input: NewMove = {
            let mut f = if fields.is_null() { json!({}) } else { fields.clone() };
            f["device_time"] = json!(crate::time::now());
            parse("custody", MutationOp::Create, &f)?
        };
        input.asset = input.asset.trim().to_string();
        let asset: Asset = self
            .held("asset", &crate::assets::asset_key(&self.ev.id, &input.asset))?
            .ok_or(Error::not_found("asset"))?;
        if input.action == CustodyAction::CheckOut {
            let moves: Vec<CustodyMove> = self
                .mirror
                .about(&self.ev.id, "custody", &asset.tag)
                .iter()
                .filter(|r| !r.data.is_null())
                .filter_map(|r| typed(&r.data).ok())
                .collect();
            let refs: Vec<&CustodyMove> = moves.iter().collect();
            let now = crate::assets::state(asset, &refs, "");
            if now.holder.is_some() {
                return Err(Error::conflict("already_checked_out", "this asset is checked out: check it in first"));
            }
        }
        crate::assets::build_move(input, &self.ev.id, self.device, self.me, self.stamp)
    }
}

/// What the app asks of a punch: which kind, and where if it may say.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhonePunch {
    #[serde(default)]
    id: Option<String>,
    kind: PunchKind,
    #[serde(default)]
    gps: Option<Gps>,
}

/// What the app asks of a lane: which credential was read, where, which way.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LaneScan {
    #[serde(default)]
    id: Option<String>,
    credential: String,
    gate: String,
    lane: String,
    #[serde(default)]
    direction: Option<Direction>,
}

/// The fields of a scan's mutation: what the lane decided, for the server to record.
fn scan_fields(scan: &Scan) -> Value {
    json!({
        "credential": scan.credential,
        "gate": scan.gate,
        "lane": scan.lane,
        "direction": scan.direction,
        "decision": scan.decision,
        "device_time": scan.device_time,
    })
}

fn parse<T: DeserializeOwned>(kind: &str, op: MutationOp, fields: &Value) -> Result<T> {
    let v = if fields.is_null() { json!({}) } else { fields.clone() };
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("fields do not fit a {kind} {op:?}: {e}")))
}

/// A record in the form the server sends it: no nulls (absent optional fields).
pub(super) fn shown<T: Serialize>(record: &T) -> Result<Value> {
    let mut v = serde_json::to_value(record)?;
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    Ok(v)
}

fn typed<T: DeserializeOwned>(data: &Value) -> Result<T> {
    serde_json::from_value(data.clone()).map_err(|e| Error::Internal(format!("a held record does not decode: {e}")))
}

fn one(c: &str) -> [String; 1] {
    [c.to_string()]
}

fn not_a_mutation(kind: &str, op: MutationOp) -> Error {
    Error::invalid(format!("{op:?} of {kind} is not a mutation this server takes"))
}

/// Applies update `fields` stamped `stamp` to the record `data` of `kind`, field by field
/// (the server's rules, [`crate::rules`]). The fields were checked when the write was made.
pub(super) fn apply_update(kind: &str, data: &Value, fields: &Value, stamp: &str, team: bool) -> Result<Value> {
    let op = MutationOp::Update;
    match kind {
        "task" => {
            let mut t: Task = typed(data)?;
            let mut p: TaskPatch = parse(kind, op, fields)?;
            p.collaborator = p.collaborator.map(|c| c.trim().to_string());
            p.assignee = p.assignee.map(|a| a.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()));
            rules::apply_task(&mut t, p, stamp)?;
            shown(&t)
        }
        "activity" => {
            let mut a: Activity = typed(data)?;
            let mut p: ActivityPatch = parse(kind, op, fields)?;
            p.collaborators = p.collaborators.map(|t| {
                let mut t: Vec<String> = t.into_iter().map(|c| c.trim().to_string()).collect();
                t.sort();
                t.dedup();
                t
            });
            rules::apply_activity(&mut a, p, stamp)?;
            shown(&a)
        }
        "advance" => {
            let mut a: Advance = typed(data)?;
            let mut p: AdvancePatch = parse(kind, op, fields)?;
            p.collaborator = p.collaborator.map(|c| c.trim().to_string());
            rules::apply_advance(&mut a, p, team, stamp)?;
            shown(&a)
        }
        _ => Err(not_a_mutation(kind, op)),
    }
}

/// The rules of one local write, as the server applies them, on what the device holds.
fn plan(ctx: &Ctx<'_>, w: &LocalWrite, current: Option<&Value>) -> Result<Planned> {
    let (kind, op) = (w.kind.as_str(), w.op);
    let ev = &ctx.ev.id;
    if op == MutationOp::Create {
        let mut fields = if w.fields.is_null() { json!({}) } else { w.fields.clone() };
        if let (Some(r), Some(m)) = (&w.record, fields.as_object_mut()) {
            m.insert("id".into(), json!(r));
        }
        let after = match kind {
            "task" => {
                let input: NewTask = parse(kind, op, &fields)?;
                let c = ctx.collaborator(input.collaborator.clone())?;
                ctx.tab(Action::Write, Tab::Tasks, &one(&c), "collaborator")?;
                let assignee = input.assignee.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(String::from);
                shown(&rules::build_task(input, ev, c, assignee, ctx.me)?)?
            }
            "activity" => {
                let input: NewActivity = parse(kind, op, &fields)?;
                let tags = ctx.tags(input.collaborators.clone())?;
                gate(decide(ctx.s, Action::Write, rules::schedule_target(&tags)), "collaborator")?;
                shown(&rules::build_activity(input, ev, tags, ctx.me)?)?
            }
            "file_meta" => {
                let input: NewFile = parse(kind, op, &fields)?;
                let c = ctx.collaborator(input.collaborator.clone())?;
                ctx.tab(Action::Write, Tab::Files, &one(&c), "collaborator")?;
                shown(&rules::build_file(input, ev, c, ctx.me)?)?
            }
            "advance" => {
                let input: NewAdvance = parse(kind, op, &fields)?;
                gate(decide(ctx.s, Action::Write, Target::Setup), "event")?;
                let c = ctx.collaborator(Some(input.collaborator.clone()))?;
                shown(&rules::build_advance(input, ev, c, ctx.me)?)?
            }
            "scan" => shown(&ctx.scan(&fields)?)?,
            "punch" => shown(&ctx.punch(&fields)?)?,
            "custody" => shown(&ctx.custody(&fields)?)?,
            _ => return Err(not_a_mutation(kind, op)),
        };
        let id = after["id"].as_str().unwrap_or_default().to_string();
        if current.is_some() {
            return Err(Error::conflict("already_exists", "that already exists"));
        }
        return Ok(Planned { id, after: Some(after) });
    }
    let id = w.record.clone().ok_or_else(|| Error::invalid("record is required to update or delete"))?;
    let what = match kind {
        "scan" => return Err(Error::invalid("a scan is never changed or deleted: make another scan")),
        "punch" => return Err(Error::invalid("a punch is never changed or deleted: punch again")),
        "custody" => return Err(Error::invalid("a custody move is never changed or deleted: make another")),
        "task" => "task",
        "activity" => "activity",
        "file_meta" => "file",
        "advance" => "advance",
        _ => return Err(not_a_mutation(kind, op)),
    };
    let data = current.ok_or(Error::not_found(what))?;
    let team = decide(ctx.s, Action::Write, Target::Setup) == Decision::Allow;
    match kind {
        "task" => {
            let t: Task = typed(data)?;
            ctx.tab(Action::Read, Tab::Tasks, &one(&t.collaborator), what)?;
            ctx.tab(Action::Write, Tab::Tasks, &one(&t.collaborator), what)?;
            if op == MutationOp::Update {
                let p: TaskPatch = parse(kind, op, &w.fields)?;
                if let Some(c) = p.collaborator {
                    let c = ctx.collaborator(Some(c))?;
                    ctx.tab(Action::Write, Tab::Tasks, &one(&c), "collaborator")?;
                }
            }
        }
        "activity" => {
            let a: Activity = typed(data)?;
            if !ctx.s.seat {
                ctx.tab(Action::Read, Tab::Schedule, &a.collaborators, what)?;
            }
            gate(decide(ctx.s, Action::Write, rules::schedule_target(&a.collaborators)), what)?;
            if op == MutationOp::Update {
                let p: ActivityPatch = parse(kind, op, &w.fields)?;
                if let Some(tags) = p.collaborators {
                    let tags = ctx.tags(Some(tags))?;
                    gate(decide(ctx.s, Action::Write, rules::schedule_target(&tags)), "collaborator")?;
                }
            }
        }
        "file_meta" => {
            let c = data["collaborator"].as_str().unwrap_or_default();
            ctx.tab(Action::Read, Tab::Files, &one(c), what)?;
            ctx.tab(Action::Write, Tab::Files, &one(c), what)?;
            if op == MutationOp::Update {
                return Err(not_a_mutation(kind, op));
            }
        }
        _ => {
            let a: Advance = typed(data)?;
            ctx.tab(Action::Read, Tab::Advances, &one(&a.collaborator), what)?;
            if op == MutationOp::Delete {
                gate(decide(ctx.s, Action::Write, Target::Setup), what)?;
            } else {
                ctx.tab(Action::Write, Tab::Advances, &one(&a.collaborator), what)?;
                let p: AdvancePatch = parse(kind, op, &w.fields)?;
                rules::check_advance_patch(&p, team)?;
                if let Some(c) = p.collaborator {
                    ctx.collaborator(Some(c))?;
                }
            }
        }
    }
    let after = match op {
        MutationOp::Delete => None,
        _ => Some(apply_update(kind, data, &w.fields, ctx.stamp, team)?),
    };
    Ok(Planned { id, after })
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
    let allowed = |d: &Value| crate::feed::visible(standing, kind, &record_collaborators(kind, id, d));
    let server = h.server.filter(|d| allowed(d));
    let mut row = stored_row(Held { server, ..h }, ops)?;
    if row.get("data").is_none_or(allowed) {
        return Some(row);
    }
    let base = server?;
    if let Some(m) = row.as_object_mut() {
        m.insert("data".into(), base.clone());
        m.insert("collaborators".into(), json!(record_collaborators(kind, id, base)));
    }
    Some(row)
}

impl Replica {
    /// Makes a write on the device: checked with the server's rules on what the device holds
    /// (a refusal changes nothing), shown at once, and kept in the outbox until the server
    /// answers — the record and the outbox entry in one transaction, so a crash loses
    /// neither.
    pub async fn write(&self, event: &str, w: LocalWrite) -> Result<Written> {
        let mut st = self.inner.state.lock().await;
        let me = st.account.clone().ok_or_else(|| {
            Error::forbidden("not_signed_in", "this device has not synced with an account yet; connect once first")
        })?;
        let s = match st.subs.get(event) {
            Some(sub) if sub.cursor.is_some() => sub.standing.clone(),
            _ => return Err(Error::not_found("event")),
        };
        let ev: Event = self.load(event, "event", event)?.ok_or(Error::not_found("event"))?;
        let collaborators: HashSet<String> = self
            .mirror()
            .kind(event, "collaborator")
            .iter()
            .filter(|r| !r.data.is_null())
            .map(|r| r.id.clone())
            .collect();
        let row = match (&w.op, &w.record) {
            (_, Some(id)) => self.row(event, &w.kind, id),
            _ => None,
        };
        let shown_now = row.as_ref().map(|r| &r.data).filter(|d| !d.is_null());
        let stamp = self.inner.clock.now().to_string();
        let planned = {
            let mirror = self.mirror();
            let device = self.inner.device.as_str();
            let ctx =
                Ctx { ev: &ev, s: &s, me: &me, device, stamp: &stamp, collaborators: &collaborators, mirror: &mirror };
            plan(&ctx, &w, shown_now)?
        };

        if w.kind == "file_meta"
            && w.op == MutationOp::Create
            && let Some(hash) = planned.after.as_ref().and_then(|a| a["content_hash"].as_str())
            && !self.holds_blob(hash)
        {
            return Err(Error::invalid(
                "a file is added with its bytes: attach it (attach_file) so the device keeps and uploads them",
            ));
        }
        let n = st.next_n;
        let mut fields = match (&w.kind[..], &planned.after) {
            // A scan carries what the lane decided, not what the app asked; a punch the
            // phone's clock.
            ("scan", Some(after)) => scan_fields(&typed(after)?),
            ("custody", Some(after)) => {
                let mut f = after.clone();
                if let Some(m) = f.as_object_mut() {
                    for k in ["id", "event", "device", "hlc", "recorded_by"] {
                        m.remove(k);
                    }
                }
                f
            }
            ("punch", Some(after)) => {
                json!({ "kind": after["kind"], "device_time": after["device_time"], "gps": after.get("gps") })
            }
            _ => w.fields.clone(),
        };
        if let Some(m) = fields.as_object_mut() {
            m.remove("id");
        }
        let out = Outgoing {
            n,
            event: event.into(),
            kind: w.kind.clone(),
            record: planned.id.clone(),
            mutation: Mutation {
                id: uuid::Uuid::now_v7().to_string(),
                kind: w.kind.clone(),
                op: w.op,
                record: Some(planned.id.clone()),
                fields,
                hlc: Some(stamp.clone()),
            },
            created: (w.op == MutationOp::Create).then(|| planned.after.clone()).flatten(),
            accepted: None,
        };
        let mut ops = ops_of(&st, event, &w.kind, &planned.id);
        ops.push(&out);
        let server = row.as_ref().and_then(Row::server);
        let (seq, generation) = row.as_ref().map_or((0, 0), |r| (r.seq, r.generation));
        let held = Held { event, kind: &w.kind, id: &planned.id, server, seq, generation };
        let stored = stored_row(held, &ops);
        self.inner
            .store
            .run(
                "BEGIN TRANSACTION;
                 IF $row { UPSERT type::record('rec', [$e, $k, $id]) CONTENT $row } ELSE { DELETE type::record('rec', [$e, $k, $id]) };
                 CREATE type::record('outbox', $n) CONTENT $out;
                 UPDATE type::record('meta', 'device') SET clock = $clock;
                 COMMIT TRANSACTION;",
                json!({ "e": event, "k": w.kind, "id": planned.id, "row": stored, "n": n, "out": out, "clock": stamp }),
            )
            .await?;
        let mutation = out.mutation.id.clone();
        {
            let mut mirror = self.mirror_mut();
            match &stored {
                Some(r) => mirror.put(event, r),
                None => mirror.del(event, &w.kind, &planned.id),
            }
        }
        st.outbox.insert(n, out);
        st.next_n += 1;
        self.refresh_status(&st, |_| {});
        drop(st);
        self.changed(event, [w.kind.clone()].into());
        Ok(Written {
            mutation,
            record: Record { kind: w.kind, id: planned.id, data: planned.after.unwrap_or(Value::Null) },
        })
    }
}

/// A held row's record, decoded; None for a row deleted on the device or one that does not
/// decode as `T`.
pub(super) fn typed_row<T: DeserializeOwned>(r: &Row) -> Option<T> {
    if r.data.is_null() { None } else { T::deserialize(&r.data).ok() }
}
