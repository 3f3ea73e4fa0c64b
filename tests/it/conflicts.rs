//! Devices that were offline: every mutation applied at most once, and concurrent edits
//! resolved per field by hybrid logical clock — through the real sync socket.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tests::{SyncClient, TestServer, fresh, stage, task};

fn push(event: &str, mutations: Value) -> Value {
    json!({ "type": "push", "event": event, "mutations": mutations })
}

/// A stamp `offset_ms` from now, made by `node`.
fn hlc(offset_ms: i64, node: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    format!("{:016}-{:06}-{node}", now + offset_ms, 0)
}

/// The task as the HTTP API lists it.
async fn get_task(s: &tests::Stage, id: &str) -> Value {
    let all = s.pm.api.get(&format!("/v1/events/{}/tasks", s.event)).await.ok();
    all.as_array().unwrap().iter().find(|t| t["id"] == id).cloned().expect("task listed")
}

fn statuses(ack: &Value) -> Vec<String> {
    ack["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}{}",
                r["status"].as_str().unwrap(),
                r["code"].as_str().map(|c| format!(":{c}")).unwrap_or_default()
            )
        })
        .collect()
}

/// `phone` pushes `batch` and its connection drops before the answer; the device reconnects
/// and pushes the batch again while a second connection of the same device races it with the
/// same batch. The two answers, and the racing connection.
async fn pushed_lost_and_raced(
    srv: &TestServer,
    s: &tests::Stage,
    mut phone: SyncClient,
    batch: &[Value],
) -> (Value, Value, SyncClient) {
    phone.send(push(&s.event, json!(batch))).await;
    phone.disconnect().await;
    let mut again = SyncClient::connect_device(srv, &s.vic.token, "phone-1").await;
    let mut racer = SyncClient::connect_device(srv, &s.vic.token, "phone-1").await;
    for c in [&mut again, &mut racer] {
        c.subscribe(&s.event, None).await;
        c.send(push(&s.event, json!(batch))).await;
    }
    let a = again.next_of("ack").await;
    let b = racer.next_of("ack").await;
    (a, b, racer)
}

#[tokio::test]
async fn a_push_retried_after_a_dropped_connection_is_applied_once() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let (_, head0) = fresh(&srv, &s.pm.token, &s.event).await;

    let batch: Vec<Value> = (0..40)
        .map(|i| json!({ "id": format!("m{i}"), "kind": "task", "op": "create", "fields": { "title": format!("Offline {i}") } }))
        .collect();
    // The connection drops right after the push: the device never learns what happened. It
    // reconnects and pushes the same batch again, with a second connection of the same device
    // racing it with the same batch.
    let mut phone = SyncClient::connect_device(&srv, &s.vic.token, "phone-1").await;
    phone.subscribe(&s.event, None).await;
    let (a, b, mut racer) = pushed_lost_and_raced(&srv, &s, phone, &batch).await;
    assert_eq!(statuses(&a), vec!["accepted".to_string(); 40]);
    // Both answers name the same records at the same seqs: one application, answered twice.
    assert_eq!(a["results"], b["results"]);

    // Exactly 40 tasks and 40 change entries came of it.
    let (held, head) = fresh(&srv, &s.pm.token, &s.event).await;
    assert_eq!(held.iter().filter(|(k, _)| k == "task").count(), 40);
    assert_eq!(head - head0, 40, "one change per mutation, none applied twice");
    let seqs: Vec<i64> = a["results"].as_array().unwrap().iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > head0 && seqs[39] <= head);

    // One mutation pushed alone again, later: the same answer, nothing written.
    racer.send(push(&s.event, json!([batch[7]]))).await;
    let one = racer.next_of("ack").await;
    assert_eq!(one["results"][0], a["results"][7]);
    assert_eq!(fresh(&srv, &s.pm.token, &s.event).await.1, head);

    // The same mutation id from another device is another mutation.
    let mut tablet = SyncClient::connect_device(&srv, &s.vic.token, "tablet-2").await;
    tablet.subscribe(&s.event, None).await;
    tablet
        .send(push(&s.event, json!([{ "id": "m0", "kind": "task", "op": "create", "fields": { "title": "Tablet" } }])))
        .await;
    let t = tablet.next_of("ack").await;
    assert_eq!(statuses(&t), vec!["accepted"]);
    assert_ne!(t["results"][0]["record"], a["results"][0]["record"]);
}

/// Protocol 2: a device numbers its mutations, and the server keeps one mark per device and
/// event instead of a record per mutation. A batch retried from two connections at once is
/// applied once; a refusal inside it is heard again on retry; the records named are the same;
/// a mutation the device pushed before it numbered them (an app update in between) is not
/// applied again; counters out of order in one push are refused.
#[tokio::test]
async fn numbered_mutations_retried_are_answered_from_the_devices_mark() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ids: Vec<String> = (0..40).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let create = |i: usize, n: Option<u64>| {
        let mut m = json!({ "id": format!("m{i}"), "kind": "task", "op": "create", "record": ids[i],
                            "fields": { "title": format!("Offline {i}") } });
        if let Some(n) = n {
            m["n"] = json!(n);
        }
        m
    };
    // Before the app numbered its mutations, the phone pushed the first five.
    let mut phone = SyncClient::connect_device(&srv, &s.vic.token, "phone-1").await;
    phone.subscribe(&s.event, None).await;
    phone.send(push(&s.event, json!((0..5).map(|i| create(i, None)).collect::<Vec<_>>()))).await;
    let old = phone.next_of("ack").await;
    assert_eq!(statuses(&old), vec!["accepted"; 5]);
    let (_, head0) = fresh(&srv, &s.pm.token, &s.event).await;

    // Updated, it pushes all forty numbered; the answer is lost with the connection. One of
    // them is refused: an update of a task that does not exist.
    let mut batch: Vec<Value> = (0..40).map(|i| create(i, Some(100 + i as u64))).collect();
    batch[20] = json!({ "id": "m20", "n": 120, "kind": "task", "op": "update", "record": uuid::Uuid::now_v7().to_string(),
                        "fields": { "title": "Ghost" } });
    let (a, b, mut racer) = pushed_lost_and_raced(&srv, &s, phone, &batch).await;
    let (held, head) = fresh(&srv, &s.pm.token, &s.event).await;
    let mut expected = vec!["accepted".to_string(); 40];
    expected[20] = "rejected:not_found".into();
    for ack in [&a, &b] {
        assert_eq!(statuses(ack), expected);
        for (i, r) in ack["results"].as_array().unwrap().iter().enumerate() {
            assert_eq!(r["mutation"], format!("m{i}"));
            if i == 20 {
                assert_eq!(r["message"], a["results"][20]["message"], "the same refusal, heard again");
                continue;
            }
            assert_eq!(r["record"], ids[i], "the record the mutation named");
            let seq = r["seq"].as_i64().unwrap();
            // At or after the mutation's change, never past the head.
            assert!(seq <= head && (i < 5 || seq > head0), "mutation {i}: seq {seq}, head0 {head0}, head {head}");
        }
    }
    assert_eq!(held.iter().filter(|(k, _)| k == "task").count(), 39);
    assert_eq!(head - head0, 34, "the 34 new mutations applied once, the 5 old ones not again");

    // Pushed again alone, much later: the same answers, nothing written.
    racer.send(push(&s.event, json!([batch[7], batch[20]]))).await;
    let later = racer.next_of("ack").await;
    assert_eq!(statuses(&later), vec!["accepted", "rejected:not_found"]);
    assert_eq!(later["results"][0]["record"], ids[7]);
    assert_eq!(fresh(&srv, &s.pm.token, &s.event).await.1, head);

    // Counters go up within a push, and start at 1.
    let next = |n: u64, title: &str| json!({ "id": format!("x{n}"), "n": n, "kind": "task", "op": "create", "fields": { "title": title } });
    racer.send(push(&s.event, json!([next(300, "Later"), next(299, "Earlier"), next(0, "Zero")]))).await;
    let order = racer.next_of("ack").await;
    assert_eq!(statuses(&order), vec!["accepted", "rejected:invalid_input", "rejected:invalid_input"]);
    assert_eq!(fresh(&srv, &s.pm.token, &s.event).await.1, head + 1);

    // A push refused whole writes nothing, yet its refusal is remembered: an update of a task
    // not there yet, then (next push) the task created — a retry of the update is still
    // refused, not applied now nor answered as accepted.
    let later_task = uuid::Uuid::now_v7().to_string();
    let update = json!({ "id": "u400", "n": 400, "kind": "task", "op": "update", "record": later_task, "fields": { "title": "Too early" } });
    racer.send(push(&s.event, json!([update]))).await;
    assert_eq!(statuses(&racer.next_of("ack").await), vec!["rejected:not_found"]);
    let made = json!({ "id": "c401", "n": 401, "kind": "task", "op": "create", "record": later_task, "fields": { "title": "On time" } });
    racer.send(push(&s.event, json!([made]))).await;
    assert_eq!(statuses(&racer.next_of("ack").await), vec!["accepted"]);
    racer.send(push(&s.event, json!([update]))).await;
    assert_eq!(statuses(&racer.next_of("ack").await), vec!["rejected:not_found"], "the refusal, heard again");
    assert_eq!(get_task(&s, &later_task).await["title"], "On time");
}

#[tokio::test]
async fn concurrent_edits_are_resolved_per_field_by_clock() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let id = task(&s, &s.pm, &s.audio, "Line array").await;
    let path = format!("/v1/events/{}/tasks/{id}", s.event);

    let mut phone = SyncClient::connect_device(&srv, &s.vic.token, "phone-a").await;
    let mut tablet = SyncClient::connect_device(&srv, &s.pm.token, "tablet-b").await;
    for c in [&mut phone, &mut tablet] {
        c.subscribe(&s.event, None).await;
    }
    // Both edited offline: the phone earlier (title and status), the tablet later (title).
    let early = hlc(-10_000, "phone-a");
    let late = hlc(-5_000, "tablet-b");
    // The later edit reaches the server first.
    tablet
        .send(push(&s.event, json!([{ "id": "t1", "kind": "task", "op": "update", "record": id, "fields": { "title": "Tablet title" }, "hlc": late }])))
        .await;
    assert_eq!(statuses(&tablet.next_of("ack").await), vec!["accepted"]);
    phone
        .send(push(
            &s.event,
            json!([{ "id": "p1", "kind": "task", "op": "update", "record": id, "fields": { "title": "Phone title", "status": "active" }, "hlc": early }]),
        ))
        .await;
    let ack = phone.next_of("ack").await;
    assert_eq!(statuses(&ack), vec!["accepted"]);
    let t = get_task(&s, &id).await;
    // The later edit of the title wins although it synced first; the status, edited by the
    // phone alone, is the phone's.
    assert_eq!((t["title"].as_str(), t["status"].as_str()), (Some("Tablet title"), Some("active")));
    assert_eq!(t["stamps"]["title"], late);
    assert_eq!(t["stamps"]["status"], early);

    // Both devices converge on that record through the stream.
    let (_, head) = fresh(&srv, &s.pm.token, &s.event).await;
    for c in [&mut phone, &mut tablet] {
        c.sync_to(&s.event, head).await;
        let held = &c.replica[&s.event][&("task".to_string(), id.clone())];
        assert_eq!((held["title"].as_str(), held["status"].as_str()), (Some("Tablet title"), Some("active")));
    }

    // An edit through the HTTP API is stamped by the server on arrival: later than both.
    s.pm.api.patch(&path, json!({ "title": "Office title" })).await.ok();
    // A stamp far ahead of the server's clock does not win for the hours the clock is wrong:
    // it is replaced by the server's own, and the next office edit wins over it.
    phone
        .send(push(&s.event, json!([{ "id": "p2", "kind": "task", "op": "update", "record": id, "fields": { "title": "Future" }, "hlc": hlc(3_600_000, "phone-a") }])))
        .await;
    assert_eq!(statuses(&phone.next_of("ack").await), vec!["accepted"]);
    assert_eq!(get_task(&s, &id).await["title"], "Future");
    s.pm.api.patch(&path, json!({ "title": "Office again" })).await.ok();
    assert_eq!(get_task(&s, &id).await["title"], "Office again");

    // A malformed stamp is refused with its reason; nothing changes.
    phone
        .send(push(&s.event, json!([{ "id": "p3", "kind": "task", "op": "update", "record": id, "fields": { "title": "X" }, "hlc": "yesterday" }])))
        .await;
    assert_eq!(statuses(&phone.next_of("ack").await), vec!["rejected:invalid_input"]);

    // A delete wins over an edit made before it arrived: the edit is refused as not found.
    tablet.send(push(&s.event, json!([{ "id": "t2", "kind": "task", "op": "delete", "record": id }]))).await;
    assert_eq!(statuses(&tablet.next_of("ack").await), vec!["accepted"]);
    phone
        .send(push(&s.event, json!([{ "id": "p4", "kind": "task", "op": "update", "record": id, "fields": { "status": "done" }, "hlc": hlc(0, "phone-a") }])))
        .await;
    assert_eq!(statuses(&phone.next_of("ack").await), vec!["rejected:not_found"]);
}

#[tokio::test]
async fn a_device_id_outside_the_allowed_form_is_refused_at_hello() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    for device in ["", "has space", &"x".repeat(65)] {
        let mut c = SyncClient::raw(&srv).await;
        c.send(json!({ "type": "hello", "protocol": 1, "token": s.vic.token, "device": device })).await;
        assert_eq!(c.closed().await.0, 4000, "{device:?}");
    }
}
