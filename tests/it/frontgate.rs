//! Field modules and the front gate through every door: the HTTP API of the event team, the
//! feed as a gate member receives it (frame by frame), and lanes as device engines deciding
//! offline and reconciling.

use std::collections::HashMap;

use engine::model::{Direction, ScanDecision};
use serde_json::{Value, json};
use tests::{Stage, SyncClient, TestServer, device::Device, fresh, stage};

/// The event's head as the server has it now.
async fn heads(srv: &TestServer, s: &Stage) -> HashMap<String, i64> {
    let (_, head) = fresh(srv, &s.pm.token, &s.event).await;
    [(s.event.clone(), head)].into()
}

/// A front gate for the stage: zones GA and VIP, gates A and B (two lanes each, GA), and
/// credentials W-1..W-n with contact details; `audio` (Vic) is granted the gate module.
/// Returns (gate A, gate B).
async fn front_gate(s: &Stage, credentials: usize) -> (String, String) {
    let ev = &s.event;
    let api = &s.pm.api;
    for (code, name) in [("GA", "General admission"), ("VIP", "VIP deck")] {
        api.post(&format!("/v1/events/{ev}/zones"), json!({ "code": code, "name": name })).await.ok();
    }
    let mut gates = tests::gates(api, ev, "GA", &["Gate A", "Gate B"], 2).await;
    let mut csv = String::from("uid,kind,holder_name,zones,holder_email,notes\n");
    for i in 1..=credentials {
        csv.push_str(&format!("W-{i},ga,Guest {i},GA,guest{i}@example.com,private note {i}\n"));
    }
    let report = api
        .raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", csv.into())
        .await
        .ok();
    assert_eq!(report["created"], credentials);
    api.put(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio), json!({})).await.ok();
    (gates.remove(0), gates.remove(0))
}

fn kinds(held: &[(String, String)], kind: &str) -> usize {
    held.iter().filter(|(k, _)| k == kind).count()
}

/// Every record of `kind` in the frames a client received.
fn received<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for m in log {
        for r in m["records"].as_array().into_iter().flatten().chain(m["changes"].as_array().into_iter().flatten()) {
            if r["kind"] == kind && r.get("data").is_some() {
                out.push(&r["data"]);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_gate_member_receives_only_what_a_decision_needs_and_loses_it_on_revoke() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    front_gate(&s, 3).await;

    let mut vic = SyncClient::connect(&srv, &s.vic.token).await;
    vic.subscribe(&ev, None).await;
    let mut cara = SyncClient::connect(&srv, &s.cara.token).await;
    cara.subscribe(&ev, None).await;
    let held = vic.held(&ev);
    assert_eq!((kinds(&held, "credential"), kinds(&held, "gate"), kinds(&held, "zone")), (3, 2, 2));
    assert_eq!(kinds(&held, "module_grant"), 1, "a member sees their collaborator's grants");
    // A live credential, then a revocation: both reach the lane, filtered.
    s.pm.api
        .post(
            &format!("/v1/events/{ev}/credentials"),
            json!({ "uid": "VIP-1", "kind": "vip", "holder_name": "Star", "zones": ["GA", "VIP"],
                    "holder_email": "star@example.com", "holder_phone": "+1 555 0100", "notes": "rider" }),
        )
        .await
        .ok();
    let revoked =
        s.pm.api.patch(&format!("/v1/events/{ev}/credentials/W-2"), json!({ "status": "revoked" })).await.ok();
    assert!(revoked["revoked_stamp"].is_string() && revoked["holder_email"] == "guest2@example.com");
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    vic.sync_to(&ev, head).await;
    cara.sync_to(&ev, head).await;

    // Frame by frame: the gate fields, never a contact detail or a note.
    let creds = received(&vic.log, "credential");
    assert_eq!(creds.len(), 5, "three in the snapshot, one created, one revoked");
    for c in &creds {
        let mut fields: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(
            fields,
            ["created_at", "event", "holder_name", "id", "kind", "status", "uid", "updated_at", "valid_days", "zones"],
            "{c}"
        );
    }
    let everything: String = vic.log.iter().map(Value::to_string).collect();
    for secret in ["@example.com", "private note", "+1 555", "rider", "revoked_stamp"] {
        assert!(!everything.contains(secret), "a gate member received {secret:?}");
    }
    assert_eq!(vic.replica[&ev][&("credential".to_string(), format!("{ev}|W-2"))]["status"], "revoked");
    // A collaborator without the module receives nothing of the gate.
    assert!(received(&cara.log, "credential").is_empty() && received(&cara.log, "gate").is_empty());
    // The event team gets all of it.
    let full = s.pm.api.get(&format!("/v1/events/{ev}/credentials/VIP-1")).await.ok();
    assert_eq!(full["holder_phone"], "+1 555 0100");
    let lane_view = s.vic.api.get(&format!("/v1/events/{ev}/credentials/VIP-1")).await.ok();
    assert!(lane_view.get("holder_phone").is_none() && lane_view["holder_name"] == "Star");
    s.cara.api.get(&format!("/v1/events/{ev}/credentials/VIP-1")).await.err(404, "not_found");
    s.cara.api.get(&format!("/v1/events/{ev}/gates")).await.err(404, "not_found");

    // Revoking the module removes the gate's data from the lane, through the feed.
    s.pm.api.delete(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio)).await.ok();
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    vic.sync_to(&ev, head).await;
    let held = vic.held(&ev);
    for kind in ["credential", "gate", "zone", "module_grant"] {
        assert_eq!(kinds(&held, kind), 0, "{kind} left on the lane after the revoke");
    }
    assert!(kinds(&held, "collaborator") > 0, "the member's own tabs stay");
    assert_eq!(fresh(&srv, &s.vic.token, &ev).await.0, held, "what a fresh snapshot would give");
    s.vic.api.get(&format!("/v1/events/{ev}/credentials")).await.err(404, "not_found");
}

#[tokio::test]
async fn a_lane_offline_when_the_module_was_granted_gets_the_gate_on_resume() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    let mut vic = SyncClient::connect(&srv, &s.vic.token).await;
    vic.subscribe(&ev, None).await;
    vic.disconnect().await;
    front_gate(&s, 4).await;
    // Resumed from a cursor before the grant: the view is rewound, the grant widens it.
    vic.reconnect(&srv, &s.vic.token).await;
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    vic.sync_to(&ev, head).await;
    assert_eq!(vic.held(&ev), fresh(&srv, &s.vic.token, &ev).await.0);
    assert_eq!(kinds(&vic.held(&ev), "credential"), 4);
    // Revoked while offline: the resume narrows.
    vic.disconnect().await;
    s.pm.api.delete(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio)).await.ok();
    vic.reconnect(&srv, &s.vic.token).await;
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    vic.sync_to(&ev, head).await;
    assert_eq!(kinds(&vic.held(&ev), "credential"), 0);
    assert_eq!(vic.held(&ev), fresh(&srv, &s.vic.token, &ev).await.0);
}

async fn lane(srv: &TestServer, s: &Stage, name: &str) -> Device {
    let mut d = Device::open("mem://", name, &s.vic.token).await;
    d.replica.subscribe(&s.event).await.unwrap();
    d.connect(srv).await;
    d.sync(&heads(srv, s).await).await;
    d
}

async fn flags(s: &Stage) -> Vec<(String, String)> {
    let f = s.pm.api.get(&format!("/v1/events/{}/scan-flags", s.event)).await.ok();
    let mut v: Vec<(String, String)> = f
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["credential"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn lanes_decide_offline_and_the_server_flags_what_they_could_not_know() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    let (gate_a, gate_b) = front_gate(&s, 5).await;
    let mut a = lane(&srv, &s, "lane-a1").await;
    let mut b = lane(&srv, &s, "lane-b1").await;
    assert_eq!(a.replica.credential_count(&ev).await.unwrap(), 5);

    // Online: an admission at A is known at B within one round of each.
    let first = a.replica.scan(&ev, "W-1", &gate_a, "1", Direction::Entry).await.unwrap();
    assert_eq!(first.scan.decision, ScanDecision::Admit);
    assert_eq!(first.credential.as_ref().map(|c| c.holder_name.as_str()), Some("Guest 1"));
    a.sync(&heads(&srv, &s).await).await;
    b.sync(&heads(&srv, &s).await).await;
    let again = b.replica.scan(&ev, "W-1", &gate_b, "2", Direction::Entry).await.unwrap();
    assert_eq!(again.scan.decision, ScanDecision::AlreadyInside);
    assert_eq!(again.admitted_at_gate.as_deref(), Some("Gate A"));
    assert_eq!(again.admitted_by.map(|s| s.id), Some(first.scan.id.clone()));
    // Out, and back in.
    assert_eq!(
        b.replica.scan(&ev, "W-1", &gate_b, "2", Direction::Exit).await.unwrap().scan.decision,
        ScanDecision::Exit
    );
    assert_eq!(
        b.replica.scan(&ev, "W-1", &gate_b, "2", Direction::Entry).await.unwrap().scan.decision,
        ScanDecision::Admit
    );
    // What a lane decides from what it holds.
    let unknown = a.replica.scan(&ev, "NOPE-9", &gate_a, "1", Direction::Entry).await.unwrap();
    assert_eq!((unknown.scan.decision, unknown.credential), (ScanDecision::Unknown, None));

    // The network goes at both gates. Both admit W-2; meanwhile W-3 is revoked, and B, which
    // has not heard, admits it.
    a.drop_connection().await;
    b.drop_connection().await;
    s.pm.api.patch(&format!("/v1/events/{ev}/credentials/W-3"), json!({ "status": "revoked" })).await.ok();
    let at_b = b.replica.scan(&ev, "W-2", &gate_b, "1", Direction::Entry).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let at_a = a.replica.scan(&ev, "W-2", &gate_a, "1", Direction::Entry).await.unwrap();
    assert_eq!((at_a.scan.decision, at_b.scan.decision), (ScanDecision::Admit, ScanDecision::Admit));
    assert_eq!(
        b.replica.scan(&ev, "W-3", &gate_b, "1", Direction::Entry).await.unwrap().scan.decision,
        ScanDecision::Admit
    );
    assert_eq!(a.replica.status().pending, 2, "the unknown uid's scan and W-2's");

    // The later admission by clock (A's) reaches the server first; B's second. The flag goes
    // on A's all the same, and every scan is kept.
    a.connect(&srv).await;
    a.sync(&heads(&srv, &s).await).await;
    b.connect(&srv).await;
    b.sync(&heads(&srv, &s).await).await;
    assert_eq!(
        flags(&s).await,
        vec![
            ("admitted_while_revoked".to_string(), "W-3".to_string()),
            ("duplicate_entry".to_string(), "W-2".to_string())
        ]
    );
    let dup = s.pm.api.get(&format!("/v1/events/{ev}/scan-flags")).await.ok();
    let dup = dup.as_array().unwrap().iter().find(|f| f["code"] == "duplicate_entry").unwrap().clone();
    assert_eq!(
        (dup["scan"].as_str(), dup["earlier"].as_str()),
        (Some(at_a.scan.id.as_str()), Some(at_b.scan.id.as_str()))
    );
    let w2 = s.pm.api.get(&format!("/v1/events/{ev}/scans?credential=W-2")).await.ok();
    assert_eq!(w2.as_array().unwrap().len(), 2, "both admissions are kept");
    let scans = s.pm.api.get(&format!("/v1/events/{ev}/scans")).await.ok();
    assert_eq!(scans.as_array().unwrap().len(), 8, "every scan, admitted or not, once");
    let device_of = |id: &str| scans.as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["device"].clone();
    let device = device_of(&at_b.scan.id);
    assert_eq!(device.as_str(), Some(b.replica.device()), "the device is the one that pushed");
    assert!(b.replica.device().starts_with("lane-b1:"), "the lane's name and a mark of its installation");

    // The flags reach the lanes through the feed; resent pushes change nothing.
    a.sync(&heads(&srv, &s).await).await;
    let on_a: Vec<String> = a.replica.scan_flags(&ev).await.unwrap().into_iter().map(|f| f.credential).collect();
    assert_eq!(on_a.len(), 2, "{on_a:?}");
    let status = a.replica.gate_status(&ev).await.unwrap();
    let gate_a_status = status.iter().find(|g| g.gate == gate_a).unwrap();
    assert_eq!((gate_a_status.admitted, gate_a_status.refused, gate_a_status.flagged), (2, 1, 1));
    // W-2 is inside now (two admissions, no exit): a third gate scan says so.
    let third = a.replica.scan(&ev, "W-2", &gate_a, "2", Direction::Entry).await.unwrap();
    assert_eq!(third.scan.decision, ScanDecision::AlreadyInside);
}

#[tokio::test]
async fn the_gate_refuses_bad_input_clearly() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    let (gate_a, _) = front_gate(&s, 2).await;
    let api = &s.pm.api;

    // Import: every malformed line reported by number; nothing imported.
    let csv =
        "uid,kind,holder_name,zones\nX-1,ga,Ok,GA\nX-2,ga,,GA\nX-3,ga,Moon,MOON\nW-1,ga,Again,GA\nX-1,ga,Twice,GA\n";
    let r =
        api.raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", csv.into()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str(), r.body["malformed"].as_u64()),
        (422, Some("import_rejected"), Some(3))
    );
    let lines: Vec<u64> = r.body["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4, 6]);
    api.get(&format!("/v1/events/{ev}/credentials/X-1")).await.err(404, "not_found");
    let bad_header = api
        .raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", b"id,name\n".to_vec())
        .await;
    assert_eq!((bad_header.status, bad_header.body["errors"][0]["line"].as_u64()), (422, Some(1)));
    let not_utf8 = api
        .raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", vec![0xff, 0xfe])
        .await;
    assert_eq!(not_utf8.status, 400);
    // The same file twice changes nothing the second time.
    let again = "uid,kind,holder_name,zones,holder_email,notes\nW-1,ga,Guest 1,GA,guest1@example.com,private note 1\nW-9,vip,New,VIP,,\n";
    let rep = api
        .raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", again.into())
        .await
        .ok();
    assert_eq!(
        (rep["created"].as_u64(), rep["unchanged"].as_u64(), rep["updated"].as_u64()),
        (Some(1), Some(1), Some(0))
    );
    // Only the event team manages the gate.
    s.vic
        .api
        .raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", again.into())
        .await
        .err(403, "not_permitted");
    s.vic
        .api
        .post(&format!("/v1/events/{ev}/zones"), json!({ "code": "X", "name": "X" }))
        .await
        .err(403, "not_permitted");

    // Credentials, zones, gates, modules.
    let cred = |uid: &str, zones: Value| json!({ "uid": uid, "kind": "ga", "holder_name": "N", "zones": zones });
    api.post(&format!("/v1/events/{ev}/credentials"), cred("W-1", json!(["GA"]))).await.err(409, "credential_exists");
    api.post(&format!("/v1/events/{ev}/credentials"), cred("has space", json!(["GA"]))).await.err(422, "invalid_input");
    api.post(&format!("/v1/events/{ev}/credentials"), cred("Z-1", json!(["MOON"]))).await.err(422, "unknown_zone");
    api.post(&format!("/v1/events/{ev}/zones"), json!({ "code": "GA", "name": "Again" })).await.err(409, "zone_exists");
    api.post(&format!("/v1/events/{ev}/gates"), json!({ "name": "G", "zone": "MOON", "lanes": ["1"] }))
        .await
        .err(422, "unknown_zone");
    api.post(&format!("/v1/events/{ev}/gates"), json!({ "name": "G", "zone": "GA", "lanes": [] }))
        .await
        .err(422, "invalid_input");
    api.put(&format!("/v1/events/{ev}/collaborators/{}/modules/catering", s.audio), json!({}))
        .await
        .err(422, "invalid_input");
    api.put(&format!("/v1/events/{ev}/collaborators/nobody/modules/gate"), json!({})).await.err(404, "not_found");
    api.patch(&format!("/v1/events/{ev}/credentials/NOPE"), json!({ "status": "revoked" })).await.err(404, "not_found");

    // Scans: at a lane the gate does not have, for another event's gate, from someone
    // without the module — refused on the device, and on the server for a forged push.
    let a = lane(&srv, &s, "lane-a1").await;
    let e = a.replica.scan(&ev, "W-1", &gate_a, "9", Direction::Entry).await.unwrap_err();
    assert_eq!(e.code(), "unknown_lane");
    let e = a.replica.scan(&ev, "W-1", "no-such-gate", "1", Direction::Entry).await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let other = {
        let org = s.pm.personal_org().await;
        let lic = s.pm.api.get(&format!("/v1/orgs/{org}/licenses")).await.ok()[0]["id"].as_str().unwrap().to_string();
        s.pm.create_event(&org, &lic, "Other").await.0
    };
    let e = a.replica.scan(&other, "W-1", &gate_a, "1", Direction::Entry).await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert_eq!(a.replica.status().pending, 0, "a refused scan leaves nothing to send");
    let mut cara = Device::open("mem://", "cara-phone", &s.cara.token).await;
    cara.replica.subscribe(&ev).await.unwrap();
    cara.connect(&srv).await;
    cara.sync(&heads(&srv, &s).await).await;
    assert_eq!(cara.replica.scan(&ev, "W-1", &gate_a, "1", Direction::Entry).await.unwrap_err().code(), "not_found");
    let mut forged = SyncClient::connect(&srv, &s.cara.token).await;
    let scan = json!({ "credential": "W-1", "gate": gate_a, "lane": "1", "decision": "admit", "device_time": "2026-07-04T18:00:00Z" });
    forged
        .send(json!({ "type": "push", "event": ev, "mutations": [
            { "id": "m1", "kind": "scan", "op": "create", "fields": scan },
        ]}))
        .await;
    let ack = forged.next_of("ack").await;
    assert_eq!(
        (ack["results"][0]["status"].as_str(), ack["results"][0]["code"].as_str()),
        (Some("rejected"), Some("not_found"))
    );
    // A lane's scan of another event's gate over the socket: the gate is not found there.
    let mut vic = SyncClient::connect(&srv, &s.vic.token).await;
    vic.send(json!({ "type": "push", "event": ev, "mutations": [
        { "id": "m2", "kind": "scan", "op": "create", "fields": scan },
        { "id": "m3", "kind": "scan", "op": "create", "fields": { "credential": "W-1", "gate": gate_a, "lane": "1", "decision": "teleport", "device_time": "2026-07-04T18:00:00Z" } },
        { "id": "m4", "kind": "scan", "op": "update", "record": "x", "fields": {} },
    ]})).await;
    let ack = vic.next_of("ack").await;
    let codes: Vec<&str> = ack["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(codes, ["accepted", "rejected", "rejected"]);
    let mut other_event = SyncClient::connect(&srv, &s.pm.token).await;
    other_event
        .send(json!({ "type": "push", "event": other, "mutations": [
            { "id": "m5", "kind": "scan", "op": "create", "fields": scan },
        ]}))
        .await;
    let ack = other_event.next_of("ack").await;
    assert_eq!(ack["results"][0]["code"], "not_found");
}

#[tokio::test]
async fn a_seat_lost_with_the_gate_kept_leaves_only_the_gate_fields() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    front_gate(&s, 2).await;
    let mut vic = SyncClient::connect(&srv, &s.vic.token).await;
    vic.subscribe(&ev, None).await;
    let email =
        |c: &SyncClient| c.replica[&ev][&("credential".to_string(), format!("{ev}|W-1"))].get("holder_email").cloned();
    assert_eq!(email(&vic), None);
    // A seat: the lane's credentials come again, whole.
    s.pm.api.post(&format!("/v1/events/{ev}/seats"), json!({ "email": s.vic.email })).await.ok();
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    vic.sync_to(&ev, head).await;
    assert_eq!(email(&vic), Some(json!("guest1@example.com")));
    // The seat goes, the gate module stays: the contact details must go too.
    s.pm.api.delete(&format!("/v1/events/{ev}/seats/{}", s.vic.id)).await.ok();
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    vic.sync_to(&ev, head).await;
    assert_eq!(email(&vic), None);
    assert_eq!(kinds(&vic.held(&ev), "credential"), 2);
    let mine: Vec<(String, String, Value)> =
        vic.replica[&ev].iter().map(|((k, id), d)| (k.clone(), id.clone(), d.clone())).collect();
    let mut again = SyncClient::connect(&srv, &s.vic.token).await;
    again.subscribe(&ev, None).await;
    let theirs: Vec<(String, String, Value)> =
        again.replica[&ev].iter().map(|((k, id), d)| (k.clone(), id.clone(), d.clone())).collect();
    assert_eq!(mine, theirs, "the lane holds what a fresh snapshot gives, field for field");
}
