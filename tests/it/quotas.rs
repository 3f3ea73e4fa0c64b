//! Push quotas: one person, and one collaborator's people together, push at most so many
//! mutations (and bytes) a minute. Past it a push is deferred whole — nothing applied, the
//! later pushes of the event held back with it so the order holds — and the client pushes
//! again after the advice; a client of an older protocol is told to reconnect later.

use std::time::Duration;

use engine::{ListFilter, device::LocalWrite, device::Replica, protocol::MutationOp};
use mobile_bridge::Link;
use serde_json::{Value, json};
use server::attempts::Rate;
use tests::{SyncClient, TestServer, stage};

fn mutation(n: u64, audio: &str) -> Value {
    json!({ "id": format!("q-{n}"), "n": n, "kind": "task", "op": "create",
            "fields": { "collaborator": audio, "title": format!("Pushed {n}") } })
}

async fn hello3(srv: &TestServer, token: &str, device: &str) -> SyncClient {
    let mut c = SyncClient::raw(srv).await;
    c.send(json!({ "type": "hello", "protocol": 3, "token": token, "device": device })).await;
    assert_eq!(c.next_of("welcome").await["protocol"], 3);
    c
}

async fn ack(c: &mut SyncClient, event: &str, ns: std::ops::RangeInclusive<u64>, audio: &str) -> Vec<Value> {
    let ms: Vec<Value> = ns.map(|n| mutation(n, audio)).collect();
    c.send(json!({ "type": "push", "event": event, "mutations": ms })).await;
    c.next_of("ack").await["results"].as_array().unwrap().clone()
}

async fn titles(srv: &TestServer, s: &tests::Stage) -> Vec<String> {
    let tasks = srv.signed_in(&s.pm).await.get(&format!("/v1/events/{}/tasks", s.event)).await.ok();
    let mut t: Vec<String> =
        tasks.as_array().unwrap().iter().filter_map(|t| t["title"].as_str().map(String::from)).collect();
    t.sort();
    t
}

#[tokio::test]
async fn a_push_past_the_quota_is_deferred_whole_and_applied_later_in_order() {
    let srv = TestServer::start_with(|c| c.quotas.mutations_per_account = Rate { burst: 3, per_minute: 600 }).await;
    let s = stage(&srv).await;
    let mut c = hello3(&srv, &s.vic.token, "vic-tablet").await;
    let first = ack(&mut c, &s.event, 1..=3, &s.audio).await;
    assert!(first.iter().all(|r| r["status"] == "accepted"), "{first:?}");
    let over = ack(&mut c, &s.event, 4..=6, &s.audio).await;
    for r in &over {
        assert_eq!((r["status"].as_str(), r["code"].as_str()), (Some("deferred"), Some("quota_exceeded")), "{r}");
        assert!(r["retry_after_ms"].as_u64().unwrap() >= 100, "{r}");
    }
    // A later push waits behind the deferred one, even with room for it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let behind = ack(&mut c, &s.event, 7..=7, &s.audio).await;
    assert_eq!(behind[0]["status"], "deferred", "{behind:?}");
    assert_eq!(titles(&srv, &s).await, ["Pushed 1", "Pushed 2", "Pushed 3"]);
    // After the advice, the deferred push and then the next are applied.
    tokio::time::sleep(Duration::from_millis(over[0]["retry_after_ms"].as_u64().unwrap())).await;
    let again = ack(&mut c, &s.event, 4..=6, &s.audio).await;
    assert!(again.iter().all(|r| r["status"] == "accepted"), "{again:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let last = ack(&mut c, &s.event, 7..=7, &s.audio).await;
    assert_eq!(last[0]["status"], "accepted", "{last:?}");
    let all: Vec<String> = (1..=7).map(|n| format!("Pushed {n}")).collect();
    assert_eq!(titles(&srv, &s).await, all);
}

#[tokio::test]
async fn a_collaborators_people_share_its_quota_and_an_older_client_is_told_to_come_back() {
    let srv = TestServer::start_with(|c| {
        c.quotas.mutations_per_collaborator = Rate { burst: 4, per_minute: 1 };
    })
    .await;
    let s = stage(&srv).await;
    let ada = srv.sign_up("Ada").await;
    s.pm.api
        .post(&format!("/v1/events/{}/collaborators/{}/members", s.event, s.audio), json!({ "email": ada.email }))
        .await
        .ok();
    let mut vic = hello3(&srv, &s.vic.token, "vic-phone").await;
    assert!(ack(&mut vic, &s.event, 1..=3, &s.audio).await.iter().all(|r| r["status"] == "accepted"));
    let mut other = hello3(&srv, &ada.token, "ada-phone").await;
    let deferred = ack(&mut other, &s.event, 1..=2, &s.audio).await;
    assert!(deferred.iter().all(|r| r["status"] == "deferred"), "{deferred:?}");
    // The event team is another scope: pm is not held back by Audio's pushes.
    let mut pm = hello3(&srv, &s.pm.token, "office").await;
    assert!(ack(&mut pm, &s.event, 1..=1, &s.audio).await.iter().all(|r| r["status"] == "accepted"));
    // Protocol 1 knows no `deferred`: its connection closes with 1013, nothing applied.
    let mut old = SyncClient::connect(&srv, &ada.token).await;
    old.send(json!({ "type": "push", "event": s.event, "mutations": [
        { "id": "old-1", "kind": "task", "op": "create", "fields": { "collaborator": s.audio, "title": "From an old app" } },
        { "id": "old-2", "kind": "task", "op": "create", "fields": { "collaborator": s.audio, "title": "From an old app, 2" } }
    ] }))
    .await;
    let (code, reason) = old.closed().await;
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.starts_with("quota_exceeded"), "{reason}");
    assert!(!titles(&srv, &s).await.contains(&"From an old app".to_string()));
}

/// A tablet back online with more in its outbox than the quota lets through at once: its
/// link pushes what it may, waits as told, and gets everything applied, in order, none
/// refused, without dropping its connection.
#[tokio::test]
async fn a_device_over_the_quota_drains_its_outbox_as_told() {
    // Pushes of three at most (two in flight), four a burst: most pushes are deferred.
    let srv = TestServer::start_with(|c| {
        c.quotas.mutations_per_account = Rate { burst: 4, per_minute: 600 };
        c.sync.push_mutations_max = 3;
    })
    .await;
    let s = stage(&srv).await;
    let tablet = Replica::open("mem://", Some("gate-c")).await.unwrap();
    tablet.subscribe(&s.event).await.unwrap();
    // Synced once, then offline for the writes.
    let link = Link::start(tablet.clone(), &srv.sync_url(), &s.vic.token);
    let deadline = tokio::time::Instant::now() + tests::WAIT_MAX;
    while tablet.tasks(&s.event, ListFilter::default()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    link.stop().await;
    for i in 0..12 {
        let w = LocalWrite {
            kind: "task".into(),
            op: MutationOp::Create,
            record: None,
            fields: json!({ "title": format!("Offline {i:02}"), "collaborator": s.audio }),
        };
        tablet.write(&s.event, w).await.unwrap();
    }
    let mut notices = tablet.notices();
    let started = std::time::Instant::now();
    let link = Link::start(tablet.clone(), &srv.sync_url(), &s.vic.token);
    let deadline = tokio::time::Instant::now() + tests::WAIT_MAX;
    while tablet.status().pending > 0 || !tablet.status().online {
        assert!(tokio::time::Instant::now() < deadline, "the outbox never drained: {:?}", tablet.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut went_offline = false;
    while let Ok(n) = notices.try_recv() {
        match n {
            engine::device::Notice::Rejected(r) => panic!("refused: {r:?}"),
            engine::device::Notice::Status(st) => went_offline |= !st.online && st.last_error.is_some(),
            _ => {}
        }
    }
    assert!(!went_offline, "the connection held");
    // Twelve mutations at four a burst and ten a second: held back for a second or more
    // (unthrottled, they take milliseconds).
    assert!(started.elapsed() >= Duration::from_millis(800), "the quota held pushes back");
    let expected: Vec<String> = (0..12).map(|i| format!("Offline {i:02}")).collect();
    assert_eq!(titles(&srv, &s).await, expected);
    let held: Vec<String> =
        tablet.tasks(&s.event, ListFilter::default()).await.unwrap().into_iter().map(|t| t.title).collect();
    assert_eq!(held.len(), 12);
    link.stop().await;
}

/// Bytes count too: a person's pushes are bounded by their size a minute, whatever their
/// number.
#[tokio::test]
async fn the_bytes_a_person_pushes_are_bounded_too() {
    let srv = TestServer::start_with(|c| c.quotas.bytes_per_account = Rate { burst: 1_000, per_minute: 60 }).await;
    let s = stage(&srv).await;
    let mut c = hello3(&srv, &s.vic.token, "vic-laptop").await;
    let big = |n: u64| {
        json!({ "id": format!("b-{n}"), "n": n, "kind": "task", "op": "create",
                "fields": { "collaborator": s.audio, "title": format!("Big {n} {}", "x".repeat(190)) } })
    };
    c.send(json!({ "type": "push", "event": s.event, "mutations": [big(1), big(2)] })).await;
    let first = c.next_of("ack").await;
    assert!(first["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{first}");
    c.send(json!({ "type": "push", "event": s.event, "mutations": [big(3)] })).await;
    let second = c.next_of("ack").await;
    assert_eq!(second["results"][0]["status"], "deferred", "{second}");
    assert_eq!(second["results"][0]["code"], "quota_exceeded");
}
