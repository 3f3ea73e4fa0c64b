//! The planners judged on facts held in memory: no database, no runtime (a planner over such
//! facts never waits, so one poll finishes it).

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use serde_json::{Value, json};

use super::*;
use crate::{
    access::{Membership, Modules},
    model::{LaborPeriod, PunchKind, Timecard, TimecardStatus},
    rules::labor::tests::punch,
};

/// Facts held in memory: an event with collaborators `c1`, `c2`, and the records given.
struct Held {
    ev: Event,
    standing: Standing,
    records: BTreeMap<(Kind, String), Value>,
    collaborators: BTreeSet<String>,
}

fn event() -> Event {
    serde_json::from_value(json!({
        "id": "e", "org": "o", "name": "Harbour Fest", "license": "l", "default_collaborator": "c1",
        "created_by": "lead", "created_at": "2026-07-01T09:00:00.000Z",
    }))
    .unwrap()
}

impl Held {
    fn new(standing: Standing) -> Held {
        let collaborators = ["c1", "c2"].map(String::from).into();
        Held { ev: event(), standing, records: BTreeMap::new(), collaborators }
    }

    fn with(mut self, kind: Kind, record: Value) -> Held {
        self.records.insert((kind, record["id"].as_str().unwrap().to_string()), record);
        self
    }

    /// Plans one mutation on `side` (one poll: nothing here waits).
    fn plan(
        &self,
        side: Side,
        kind: &str,
        op: MutationOp,
        record: Option<&str>,
        fields: Value,
    ) -> Result<Planned<(String, Value)>> {
        once(mutation(self, side, kind, op, record, &fields))
    }
}

fn once<F: Future>(f: F) -> F::Output {
    match pin!(f).as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a planner waited on facts held in memory"),
    }
}

impl Facts for Held {
    fn event(&self) -> &Event {
        &self.ev
    }
    fn standing(&self) -> &Standing {
        &self.standing
    }
    fn device(&self) -> &str {
        "phone-1"
    }
    fn stamp(&self) -> &str {
        "0001783000000000-000000-phone-1"
    }
    fn now(&self) -> &str {
        "2026-07-04T12:00:00.000Z"
    }
    async fn record(&self, kind: Kind, id: &str) -> Result<Option<Value>> {
        Ok(self.records.get(&(kind, id.to_string())).cloned())
    }
    async fn records_where(&self, kind: Kind, field: &'static str, value: &str) -> Result<Vec<Value>> {
        Ok(self.records.iter().filter(|((k, _), v)| *k == kind && v[field] == value).map(|(_, v)| v.clone()).collect())
    }
    async fn collaborator_exists(&self, id: &str) -> Result<bool> {
        Ok(self.collaborators.contains(id))
    }
    async fn account_exists(&self, id: &str) -> Result<Option<bool>> {
        Ok(Some(id.starts_with("acct-")))
    }
    async fn finished_upload(&self, _id: &str) -> Result<Option<FinishedUpload>> {
        Ok(None)
    }

    async fn judgement(&self, _key: &str) -> Result<i64> {
        Ok(0)
    }
}

fn seat() -> Standing {
    Standing { person: "lead".into(), seat: true, ..Default::default() }
}

fn member(collaborator: &str, read_only: bool) -> Standing {
    let membership = Membership { collaborator: collaborator.into(), read_only, modules: Modules::default() };
    Standing { person: "crew".into(), membership: Some(membership), ..Default::default() }
}

fn task(id: &str, collaborator: &str) -> Value {
    json!({
        "id": id, "event": "e", "collaborator": collaborator, "title": "Load in", "status": "todo",
        "created_by": "lead", "created_at": "2026-07-04T10:00:00.000Z", "updated_at": "2026-07-04T10:00:00.000Z",
    })
}

fn code(r: Result<Planned<(String, Value)>>) -> String {
    r.err().map(|e| e.code().to_string()).unwrap_or_else(|| "planned".into())
}

#[test]
fn a_members_new_task_goes_to_their_collaborator_and_names_it_as_owner() {
    let f = Held::new(member("c2", false));
    for side in [Side::Server, Side::Device] {
        let p = f.plan(side, "task", MutationOp::Create, None, json!({ "title": " Rig check " })).unwrap();
        let (id, after) = &p.record;
        assert_eq!((after["collaborator"].as_str(), after["title"].as_str()), (Some("c2"), Some("Rig check")));
        assert_eq!(p.writes.len(), 1);
        let w = &p.writes[0];
        assert_eq!(
            (w.kind(), w.id(), w.after.clone(), w.op.clone()),
            (Kind::Task, id.as_str(), vec!["c2".to_string()], w.op.clone())
        );
        assert!(matches!(w.op, WriteOp::Create(_)), "a create fails the commit if the key exists");
    }
}

#[test]
fn moving_a_task_needs_the_right_to_write_on_both_sides_of_the_move() {
    let f = Held::new(member("c1", false)).with(Kind::Task, task("t1", "c1")).with(Kind::Task, task("t2", "c2"));
    let to_c2 = json!({ "collaborator": "c2" });
    // A member may not move their task to a collaborator they cannot see (it is hidden).
    assert_eq!(code(f.plan(Side::Server, "task", MutationOp::Update, Some("t1"), to_c2.clone())), "not_found");
    // Nor touch another collaborator's task, which is "not found" exactly like a missing one.
    assert_eq!(
        code(f.plan(Side::Device, "task", MutationOp::Update, Some("t2"), json!({ "title": "x" }))),
        "not_found"
    );
    assert_eq!(
        code(f.plan(Side::Device, "task", MutationOp::Update, Some("t9"), json!({ "title": "x" }))),
        "not_found"
    );

    let lead = Held { standing: seat(), ..f };
    let p = lead.plan(Side::Server, "task", MutationOp::Update, Some("t1"), to_c2).unwrap();
    let w = &p.writes[0];
    assert_eq!((w.before.clone(), w.after.clone()), (vec!["c1".to_string()], vec!["c2".to_string()]));
    assert_eq!(p.record.1["stamps"]["collaborator"], lead.stamp(), "the edit carries its clock for last-writer-wins");
    assert_eq!(
        code(lead.plan(Side::Server, "task", MutationOp::Update, Some("t1"), json!({ "collaborator": "c7" }))),
        "not_found",
        "a collaborator the event does not have"
    );
}

#[test]
fn read_only_members_read_but_never_write() {
    let f = Held::new(member("c1", true)).with(Kind::Task, task("t1", "c1"));
    assert_eq!(
        code(f.plan(Side::Device, "task", MutationOp::Update, Some("t1"), json!({ "title": "x" }))),
        "read_only"
    );
    assert_eq!(code(f.plan(Side::Server, "task", MutationOp::Delete, Some("t1"), Value::Null)), "read_only");
    assert_eq!(code(f.plan(Side::Server, "task", MutationOp::Create, None, json!({ "title": "x" }))), "read_only");
}

#[test]
fn what_may_not_be_pushed_is_refused_by_the_kinds_table() {
    let f = Held::new(seat());
    let refusal = |kind: &str, op, record: Option<&str>, fields: Value| {
        let e = f.plan(Side::Server, kind, op, record, fields).expect_err("refused");
        (e.code(), e.to_string())
    };
    for (kind, op) in
        [("seat", MutationOp::Create), ("nonsense", MutationOp::Create), ("file_meta", MutationOp::Update)]
    {
        let (code, message) = refusal(kind, op, Some("x"), json!({}));
        assert_eq!(code, "invalid_input");
        assert!(message.contains("is not a mutation this server takes"), "{kind} {op:?}: {message}");
    }
    let (code, message) = refusal("scan", MutationOp::Update, Some("s1"), json!({}));
    assert_eq!(code, "invalid_input");
    assert!(!message.contains("is not a mutation"), "an append-only kind says why: {message}");
    let (code, message) = refusal("task", MutationOp::Create, None, json!({ "title": "x", "colour": "red" }));
    assert_eq!(code, "invalid_input", "fields that do not fit are the client's error: {message}");
}

#[test]
fn an_unknown_assignee_is_refused_where_accounts_are_known() {
    let f = Held::new(seat());
    let asked = json!({ "title": "Rig check", "assignee": "someone" });
    assert_eq!(code(f.plan(Side::Server, "task", MutationOp::Create, None, asked.clone())), "unknown_assignee");
    let ok = f.plan(Side::Server, "task", MutationOp::Create, None, json!({ "title": "Rig", "assignee": "acct-7" }));
    assert_eq!(ok.unwrap().record.1["assignee"], "acct-7");
}

/// A scan id a lane chose.
const S2: &str = "0190f1a2-7c3e-7d4a-9b1c-2d3e4f5a6b7c";

fn gate_member() -> Standing {
    let membership = Membership {
        collaborator: "c2".into(),
        read_only: false,
        modules: Modules::default().with(crate::access::Module::Gate),
    };
    Standing { person: "gate".into(), membership: Some(membership), ..Default::default() }
}

fn admission(id: &str, gate: &str, hlc: &str) -> Value {
    json!({
        "id": id, "event": "e", "credential": "W1", "gate": gate, "lane": "1", "direction": "entry", "decision": "admit",
        "device": "lane", "device_time": "2026-07-04T11:00:00.000Z", "hlc": hlc, "scanned_by": "gate",
    })
}

#[test]
fn a_second_admission_of_one_credential_is_flagged_against_the_first() {
    let g = |id: &str| json!({ "id": id, "event": "e", "name": id, "zone": "GA", "lanes": ["1"], "created_at": "2026-07-01T09:00:00.000Z" });
    let f = Held::new(gate_member())
        .with(Kind::Gate, g("north"))
        .with(Kind::Gate, g("south"))
        .with(Kind::Scan, admission("s1", "north", "0001782999000000-000000-lane-a"));
    let asked = json!({
        "credential": "W1", "gate": "south", "lane": "1", "direction": "entry", "decision": "admit",
        "device_time": "2026-07-04T11:01:00.000Z",
    });
    let p = f.plan(Side::Server, "scan", MutationOp::Create, Some(S2), asked).unwrap();
    let kinds: Vec<Kind> = p.writes.iter().map(Write::kind).collect();
    assert_eq!(kinds, [Kind::Scan, Kind::ScanFlag], "the scan and its flag commit together");
    assert_eq!(
        p.writes[0].judged,
        vec![crate::plan::Judged { key: "scan|W1".into(), seen: 0, counts: true }],
        "decided on the credential's judgement"
    );
    let flag = p.writes[1].after().unwrap();
    assert_eq!(
        (flag["scan"].as_str(), flag["earlier"].as_str(), flag["code"].as_str()),
        (Some(S2), Some("s1"), Some("duplicate_entry"))
    );

    let outsider = Held { standing: member("c2", false), ..f };
    let asked = json!({ "credential": "W1", "gate": "south", "lane": "1", "decision": "admit", "device_time": "2026-07-04T11:01:00.000Z" });
    assert_eq!(
        code(outsider.plan(Side::Server, "scan", MutationOp::Create, None, asked)),
        "not_found",
        "no gate module"
    );
}

#[test]
fn a_locked_day_keeps_its_counts_and_shows_the_late_punch() {
    let r = crate::model::LaborRules { utc_offset_minutes: -300, ..crate::model::LaborRules::default_for("e") };
    let first = crate::rules::labor::build_timecards(
        "e",
        "p",
        &[punch("a", PunchKind::In, "2026-07-04T13:00:00Z"), punch("b", PunchKind::Out, "2026-07-04T21:00:00Z")],
        &r,
    );
    let mut stored = first.clone();
    stored[0].status = TimecardStatus::Approved;
    let period = LaborPeriod {
        id: "e|2026-07-01".into(),
        event: "e".into(),
        first_day: "2026-07-01".into(),
        last_day: "2026-07-04".into(),
        locked_by: "o".into(),
        locked_at: String::new(),
    };
    let later = crate::rules::labor::build_timecards(
        "e",
        "p",
        &[
            punch("a", PunchKind::In, "2026-07-04T13:00:00Z"),
            punch("b", PunchKind::Out, "2026-07-04T21:00:00Z"),
            punch("c", PunchKind::In, "2026-07-04T22:00:00Z"),
        ],
        &r,
    );
    let writes =
        field::timecard_writes(&stored, later.clone(), std::slice::from_ref(&period), "p", "2026-07-04T12:00:00.000Z")
            .unwrap();
    assert_eq!(writes.len(), 1);
    let after = writes[0].after();
    let after: Timecard = serde_json::from_value(after.unwrap()).unwrap();
    assert_eq!((after.worked_hours, after.status), (8.0, TimecardStatus::Approved));
    assert_eq!(after.exceptions.len(), 1);
    assert_eq!((after.exceptions[0].code.as_str(), after.exceptions[0].punch.as_deref()), ("period_locked", Some("c")));
    // Unlocked, the same punch is counted and the approval goes.
    let writes = field::timecard_writes(&stored, later, &[], "p", "2026-07-04T12:00:00.000Z").unwrap();
    let after = writes[0].after();
    let after: Timecard = serde_json::from_value(after.unwrap()).unwrap();
    assert_eq!((after.status, after.exceptions[0].code.as_str()), (TimecardStatus::Open, "missing_out"));
}
