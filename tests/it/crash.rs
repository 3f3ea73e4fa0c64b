//! Crashes: the server, a process of its own on SurrealKV, killed with SIGKILL while a device
//! pushes numbered batches and HTTP writes are in flight, and started again on the same files.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use tests::{Received, SyncClient, stage, surreal::ChildNode};

fn push(event: &str, mutations: &[Value]) -> Value {
    json!({ "type": "push", "event": event, "mutations": mutations })
}

/// Three times: a device pushes its unacknowledged mutations and 100 new ones in batches of
/// 50, 20 HTTP task creates are sent at once, and the server is killed a few milliseconds
/// later. After the restarts the device pushes again whatever it never heard back about.
/// Then: every acknowledged write is there once, every device mutation is applied exactly
/// once, no HTTP write is there twice, and the log is a gap-free run of seqs.
#[tokio::test]
async fn a_server_killed_mid_write_loses_nothing_acknowledged_and_applies_nothing_twice() {
    let bin = env!("CARGO_BIN_EXE_backops-test-node");
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::embedded(bin, dir.path()).await;
    let s = stage(&node.server).await;
    let tasks = format!("/v1/events/{}/tasks", s.event);
    let mut n = 0u64;
    let mut unacked: Vec<Value> = Vec::new();
    let (mut http_sent, mut http_acked) = (Vec::new(), Vec::new());
    let mut killed_with_pushes_unanswered = 0;
    for round in 0..3u64 {
        let mut phone = SyncClient::connect_device(&node.server, &s.vic.token, "phone").await;
        for _ in 0..100 {
            n += 1;
            unacked.push(json!({ "id": format!("m{n}"), "n": n, "kind": "task", "op": "create",
                                 "record": uuid::Uuid::now_v7().to_string(),
                                 "fields": { "title": format!("device {n}"), "collaborator": s.audio } }));
        }
        for chunk in unacked.chunks(50) {
            phone.send(push(&s.event, chunk)).await;
        }
        let pm = node.server.anonymous().with_token(&s.pm.token);
        let writers: Vec<_> = (0..20)
            .map(|i| {
                let (pm, path, title) = (pm.clone(), tasks.clone(), format!("http {round}-{i}"));
                tokio::spawn(async move {
                    let body = json!({ "title": title });
                    let ok = pm.try_send(reqwest::Method::POST, &path, Some(body)).await.is_ok_and(|r| r.status == 201);
                    (title, ok)
                })
            })
            .collect();
        // The first kill lands at once, while everything is still in flight.
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        node.kill();
        // What the device heard before the connection died.
        let mut answered = 0;
        loop {
            match phone.recv().await {
                Received::Message(m) if m["type"] == "ack" => {
                    answered += 1;
                    for r in m["results"].as_array().unwrap() {
                        assert_eq!(r["status"], "accepted", "{r}");
                        unacked.retain(|u| u["id"] != r["mutation"]);
                    }
                }
                Received::Message(_) => {}
                Received::Closed { .. } => break,
            }
        }
        if answered < unacked.len().div_ceil(50) {
            killed_with_pushes_unanswered += 1;
        }
        for w in writers {
            let (title, ok) = w.await.unwrap();
            if ok {
                http_acked.push(title.clone());
            }
            http_sent.push(title);
        }
        node = ChildNode::embedded(bin, dir.path()).await;
    }
    assert!(killed_with_pushes_unanswered > 0, "some kill must land while pushes are unanswered");

    eprintln!(
        "3 kills: {} device mutations unanswered at the end, {} of {} HTTP writes acknowledged",
        unacked.len(),
        http_acked.len(),
        http_sent.len()
    );
    // The device pushes again what it never heard back about: each is answered accepted.
    let mut phone = SyncClient::connect_device(&node.server, &s.vic.token, "phone").await;
    for chunk in unacked.chunks(50) {
        phone.send(push(&s.event, chunk)).await;
        let ack = phone.next_of("ack").await;
        assert!(ack["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{ack}");
    }

    let pm = node.server.anonymous().with_token(&s.pm.token);
    let held = pm.get(&tasks).await.ok();
    let mut count: HashMap<String, usize> = HashMap::new();
    for t in held.as_array().unwrap() {
        *count.entry(t["title"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for k in 1..=n {
        assert_eq!(count.get(&format!("device {k}")), Some(&1), "device mutation {k} applied exactly once");
    }
    for t in &http_acked {
        assert_eq!(count.get(t), Some(&1), "acknowledged HTTP write {t}");
    }
    for t in &http_sent {
        assert!(count.get(t).is_none_or(|c| *c == 1), "HTTP write {t} at most once");
    }

    // The log, read from the files once the server is gone: every seq from 1 to the head,
    // once, in order.
    node.kill();
    let engine =
        engine::Engine::open(&format!("surrealkv://{}", dir.path().join("db").display()), None, Default::default())
            .await
            .unwrap();
    let head = engine.head(&s.event).await.unwrap();
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|last| *last < head) {
        let after = seqs.last().copied().unwrap_or(0);
        let read = engine.changes_since(&s.event, after, 1_000).await.unwrap();
        assert!(!read.is_empty(), "the log ends at {after}, below the head {head}");
        seqs.extend(read.iter().map(|c| c.seq));
    }
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "a gap-free log after three kills");
    assert!(head as u64 >= n, "every device mutation has its seq");
}
