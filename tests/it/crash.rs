//! Crashes: the server, a process of its own on SurrealKV, killed with SIGKILL while a device
//! pushes numbered batches and HTTP writes are in flight, and started again on the same files.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use tests::{Received, SyncClient, phone::Phone, stage, surreal::ChildNode};

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
    let mut count: HashMap<String, usize> = HashMap::new();
    for t in pm.strings(&tasks, "title").await {
        *count.entry(t).or_default() += 1;
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
    let head = tests::assert_gap_free(&dir.path().join("db"), &s.event).await;
    assert!(head as u64 >= n, "every device mutation has its seq");
}

/// How many of its writes the phone has not heard back about.
async fn pending(phone: &mut Phone) -> u64 {
    let status: Value = serde_json::from_str(&phone.run("status").await[0]).unwrap();
    status["pending"].as_u64().unwrap()
}

/// The titles `dev K` among `titles`, as numbers, counted.
fn dev_numbers(titles: &[String]) -> HashMap<u64, usize> {
    let mut count = HashMap::new();
    for t in titles {
        if let Some(k) = t.strip_prefix("dev ").and_then(|k| k.parse().ok()) {
            *count.entry(k).or_default() += 1;
        }
    }
    count
}

/// Reads `wrote K` lines until `confirmed` more writes were confirmed to the app.
async fn confirmations(phone: &mut Phone, count: usize, into: &mut std::collections::BTreeSet<u64>) {
    for _ in 0..count {
        let line = phone.line().await.expect("the phone writes");
        let k = line.strip_prefix("wrote ").unwrap_or_else(|| panic!("a write was refused: {line}"));
        into.insert(k.parse().unwrap());
    }
}

/// A phone (the mobile bridge's client, in a process of its own) is killed with SIGKILL
/// four times while it writes offline, each time right after the app was told of a write,
/// as the next one is being kept; then three more times while it syncs what it made, with
/// the server's own writes coming in: before the first answer, as the first answers are
/// taken, and with about half of them taken. Every write the app was told of is held after each
/// restart; once synced, the server holds each exactly once and the phone holds what the
/// server shows its person.
#[tokio::test]
async fn a_phone_killed_mid_write_and_mid_sync_keeps_every_confirmed_edit_and_sends_each_once() {
    let bin = env!("CARGO_BIN_EXE_backops-test-device");
    let srv = tests::TestServer::start().await;
    let s = stage(&srv).await;
    let data = tempfile::tempdir().unwrap();
    let mut phone = Phone::start(bin, data.path()).await;
    phone.go_online(&s.vic.token, &srv.base, &s.event).await;
    assert_eq!(phone.run(&format!("synced {}", s.event)).await, ["synced"]);
    phone.run("disconnect").await;

    // Offline: killed while writing.
    let mut confirmed = std::collections::BTreeSet::new();
    let mut next = 1u64;
    for stop_after in [1usize, 7, 40, 800] {
        phone.send(&format!("write {} {} {next} {}", s.event, s.audio, next + 999));
        confirmations(&mut phone, stop_after, &mut confirmed).await;
        phone.kill();
        // The app opens again and signs in with the token it kept; it stays offline.
        phone = Phone::start(bin, data.path()).await;
        phone.run(&format!("sign_in {}", s.vic.token)).await;
        let held = dev_numbers(&phone.titles(&s.event).await);
        for k in &confirmed {
            assert_eq!(held.get(k), Some(&1), "confirmed write {k} held once after the kill");
        }
        // The write in flight at the kill is kept whole or not at all.
        let in_flight = next + stop_after as u64;
        assert!(held.keys().all(|k| confirmed.contains(k) || *k == in_flight), "{held:?}");
        if held.contains_key(&in_flight) {
            confirmed.insert(in_flight);
        }
        next = in_flight + 1;
    }
    // Killed while syncing, with the server's own writes coming in: before the first answer,
    // as the first answers are taken, and with about half of them taken.
    let mut unanswered = Vec::new();
    for round in 0..3 {
        let writes: Vec<_> = (0..10)
            .map(|i| {
                let (api, path) = (s.pm.api.clone(), format!("/v1/events/{}/tasks", s.event));
                let body = json!({ "title": format!("server {round}-{i}"), "collaborator": s.audio });
                tokio::spawn(async move { api.post(&path, body).await.ok() })
            })
            .collect();
        let before = pending(&mut phone).await;
        phone.go_online(&s.vic.token, &srv.base, &s.event).await;
        match round {
            0 => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => {
                let below = if round == 1 { before } else { before / 2 + 1 };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while pending(&mut phone).await >= below {
                    assert!(tokio::time::Instant::now() < deadline, "the phone syncs");
                }
            }
        }
        phone.kill();
        for w in writes {
            w.await.unwrap();
        }
        phone = Phone::start(bin, data.path()).await;
        let held = dev_numbers(&phone.titles(&s.event).await);
        for k in &confirmed {
            assert_eq!(held.get(k), Some(&1), "confirmed write {k} held once after a kill mid-sync");
        }
        unanswered.push((before, pending(&mut phone).await));
    }
    phone.go_online(&s.vic.token, &srv.base, &s.event).await;
    assert_eq!(phone.run(&format!("synced {}", s.event)).await, ["synced"]);

    let on_server = s.pm.api.strings(&format!("/v1/events/{}/tasks?collaborator={}", s.event, s.audio), "title").await;
    let applied = dev_numbers(&on_server);
    for k in &confirmed {
        assert_eq!(applied.get(k), Some(&1), "write {k} applied exactly once");
    }
    assert_eq!(applied.len(), confirmed.len(), "nothing applied that the phone did not keep");
    let mut mine = phone.titles(&s.event).await;
    let mut theirs = on_server.clone();
    mine.sort();
    theirs.sort();
    assert_eq!(mine, theirs, "the phone holds what the server shows its person");
    eprintln!(
        "7 kills of the phone: {} writes kept and applied once, {} tasks in all; unanswered before and after each kill mid-sync: {unanswered:?}",
        confirmed.len(),
        theirs.len()
    );
}

/// Four phones (two of one person, two of others, each the mobile bridge's client in a
/// process of its own, all four set up with the same device name) write 500 tasks each while
/// connected, and the server (SurrealKV, a
/// process of its own) is killed with SIGKILL three times as they sync, each time once a
/// phone is back online, and started again on the same files and address. The phones
/// reconnect by themselves. Then: every write the apps were told of is applied exactly
/// once, each phone holds exactly what the server shows its person, and the log is gap-free.
#[tokio::test]
async fn a_server_killed_while_four_phones_sync_loses_nothing_and_every_phone_ends_as_the_server() {
    let node_bin = env!("CARGO_BIN_EXE_backops-test-node");
    let bin = env!("CARGO_BIN_EXE_backops-test-device");
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::embedded(node_bin, dir.path()).await;
    let port = node.port();
    let s = stage(&node.server).await;
    let people = [(&s.vic, &s.audio), (&s.vic, &s.audio), (&s.cara, &s.client), (&s.pm, &s.audio)];
    let data: Vec<_> = people.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut phones = Vec::new();
    for ((who, _), d) in people.iter().zip(&data) {
        let mut phone = Phone::start(bin, d.path()).await;
        phone.go_online(&who.token, &node.server.base, &s.event).await;
        assert_eq!(phone.run(&format!("synced {}", s.event)).await, ["synced"]);
        phones.push(phone);
    }
    const EACH: u64 = 500;
    for (i, (phone, (_, collab))) in phones.iter_mut().zip(&people).enumerate() {
        let from = i as u64 * 10_000 + 1;
        phone.send(&format!("write {} {collab} {from} {}", s.event, from + EACH - 1));
    }
    // The first kill lands while the phones write and push; the next ones once the phones,
    // reconnected by themselves, have pushed more through the restarted server.
    let tasks = format!("/v1/events/{}/tasks", s.event);
    let mut applied_at_kill = Vec::new();
    for round in 0..3u64 {
        let pm = node.server.anonymous().with_token(&s.pm.token);
        let count = || async { pm.get(&tasks).await.ok().as_array().unwrap().len() };
        match round {
            0 => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => {
                let before = *applied_at_kill.last().unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while count().await <= before {
                    assert!(tokio::time::Instant::now() < deadline, "the phones push again");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let at = count().await;
        node.kill();
        applied_at_kill.push(at);
        node = ChildNode::embedded_at(node_bin, dir.path(), port).await;
    }
    // Every phone finished writing (each `wrote K` is a write the app was told of).
    let mut confirmed = Vec::new();
    for p in phones.iter_mut() {
        let mut mine = std::collections::BTreeSet::new();
        confirmations(p, EACH as usize, &mut mine).await;
        assert_eq!(p.line().await.as_deref(), Some("done"));
        confirmed.push(mine);
    }
    for p in phones.iter_mut() {
        assert_eq!(p.run(&format!("synced {}", s.event)).await, ["synced"]);
    }

    let pm = node.server.anonymous().with_token(&s.pm.token);
    let all = pm.strings(&format!("/v1/events/{}/tasks", s.event), "title").await;
    let applied = dev_numbers(&all);
    for p in phones.iter_mut() {
        let refused = p.run("rejections").await;
        assert!(refused.is_empty(), "{refused:?}");
    }
    let missing: Vec<u64> = confirmed.iter().flatten().filter(|k| applied.get(k) != Some(&1)).copied().collect();
    if !missing.is_empty() {
        let held = dev_numbers(&phones[0].titles(&s.event).await);
        let st = phones[0].run("status").await;
        panic!(
            "{} of {} writes not applied exactly once: {:?}…; the server holds {} of them; phone 0 holds {} ({st:?}); kills at {applied_at_kill:?}",
            missing.len(),
            4 * EACH,
            &missing[..missing.len().min(20)],
            applied.len(),
            held.len()
        );
    }
    assert_eq!(applied.len(), 4 * EACH as usize);
    for (p, (who, _)) in phones.iter_mut().zip(&people) {
        let api = node.server.anonymous().with_token(&who.token);
        let mut theirs = api.strings(&format!("/v1/events/{}/tasks", s.event), "title").await;
        let mut mine = p.titles(&s.event).await;
        theirs.sort();
        mine.sort();
        assert_eq!(mine.len(), theirs.len(), "{} holds what the server shows them", who.email);
        assert_eq!(mine, theirs);
    }
    drop(phones);
    node.kill();
    tests::assert_gap_free(&dir.path().join("db"), &s.event).await;
    eprintln!(
        "3 kills of the server with 4 phones syncing; tasks held at each kill: {applied_at_kill:?} of {}",
        4 * EACH
    );
}
