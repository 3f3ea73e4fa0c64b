//! Full disks: the server (a process of its own on SurrealKV) on a small tmpfs that the test
//! fills with ballast, then frees. Writes and uploads are refused with 507
//! `storage_unavailable`, a device's push is not answered (close 1013) and is applied once
//! when pushed again, reads go on, and after a restart on the same files everything
//! acknowledged is there exactly once, in a gap-free log.

use std::{collections::HashMap, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};
use tests::{Api, Stage, SyncClient, disk::SmallDisk, files, phone::Phone, stage, surreal::ChildNode};

const MIB: u64 = 1024 * 1024;

fn push(event: &str, mutations: &[Value]) -> Value {
    json!({ "type": "push", "event": event, "mutations": mutations })
}

/// The device mutations numbered `from..=to`: task creates.
fn batch(s: &Stage, from: u64, to: u64) -> Vec<Value> {
    (from..=to)
        .map(|n| {
            json!({ "id": format!("m{n}"), "n": n, "kind": "task", "op": "create",
                    "record": uuid::Uuid::now_v7().to_string(),
                    "fields": { "title": format!("device {n}"), "collaborator": s.audio } })
        })
        .collect()
}

/// Every task title the event holds, counted.
async fn titles(api: &Api, event: &str) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for t in api.strings(&format!("/v1/events/{event}/tasks"), "title").await {
        *count.entry(t).or_default() += 1;
    }
    count
}

/// A write refused for want of space: 507, `storage_unavailable`, a Retry-After.
async fn refused_for_space(api: &Api, method: Method, path: &str, body: Value) {
    let r = api.request(method, path).json(&body).send().await.expect("request");
    assert_eq!(r.status().as_u16(), 507, "{path}");
    assert!(r.headers().get("retry-after").is_some(), "a Retry-After");
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["code"], "storage_unavailable", "{body}");
    assert!(!body["message"].as_str().unwrap().contains('/'), "no path leaks: {body}");
}

/// Writes before, while and after the disk is full, with the disk guard's reserve (16 MiB of
/// a 96 MiB disk): refused while the free space is below it, taken again once it is freed.
#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_and_takes_them_again_once_space_is_freed() {
    const RESERVE: u64 = 16 * MIB;
    let bin = env!("CARGO_BIN_EXE_backops-test-node");
    let disk = SmallDisk::mount(96 * MIB);
    let dir = disk.mount.join("node");
    let mut node = ChildNode::on_disk(bin, &disk, &dir, RESERVE).await;
    let s = stage(&node.server).await;
    let tasks = format!("/v1/events/{}/tasks", s.event);
    let pm = node.server.anonymous().with_token(&s.pm.token);

    // Before: HTTP writes, a device's push, a photo.
    for i in 0..10 {
        pm.post(&tasks, json!({ "title": format!("before {i}") })).await.ok();
    }
    let mut phone = SyncClient::connect_device(&node.server, &s.vic.token, "phone").await;
    phone.send(push(&s.event, &batch(&s, 1, 20))).await;
    let ack = phone.next_of("ack").await;
    assert!(ack["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{ack}");
    let photo = files::jpeg(64, 48, 0);
    files::upload_file(&pm, &s.event, &s.audio, "before.jpg", &photo).await;
    let mut follower = SyncClient::connect(&node.server, &s.pm.token).await;
    follower.subscribe(&s.event, None).await;

    // The disk fills up to below the reserve.
    let ballast = disk.fill(RESERVE / 2);
    tokio::time::sleep(engine::disk::RECHECK + Duration::from_millis(50)).await;
    refused_for_space(&pm, Method::POST, &tasks, json!({ "title": "while full" })).await;
    let upload = json!({ "id": uuid::Uuid::new_v4().to_string(), "collaborator": s.audio, "name": "full.jpg",
                         "size": photo.len(), "sha256": files::sha256(&photo) });
    refused_for_space(&pm, Method::POST, &format!("/v1/events/{}/uploads", s.event), upload).await;
    // Reads go on, and signing in.
    let held = titles(&pm, &s.event).await;
    assert_eq!(held.len(), 30, "{held:?}");
    assert_eq!(
        node.server
            .anonymous()
            .post("/v1/sessions", json!({ "email": s.pm.email, "password": "correct horse battery" }))
            .await
            .status,
        200
    );
    // The device's push is not answered: the connection closes with 1013, nothing applied.
    phone.send(push(&s.event, &batch(&s, 21, 30))).await;
    let (code, reason) = phone.closed().await;
    assert_eq!(code, engine::protocol::close::TRY_AGAIN_LATER, "{reason}");
    assert!(reason.starts_with("storage_unavailable"), "{reason}");
    assert_eq!(titles(&pm, &s.event).await.len(), 30, "nothing of the push applied");

    // Space is freed: writes are taken again, the push is applied once.
    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(engine::disk::RECHECK + Duration::from_millis(50)).await;
    pm.post(&tasks, json!({ "title": "after" })).await.ok();
    let mut phone = SyncClient::connect_device(&node.server, &s.vic.token, "phone").await;
    phone.send(push(&s.event, &batch(&s, 21, 30))).await;
    let ack = phone.next_of("ack").await;
    assert!(ack["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{ack}");
    files::upload_file(&pm, &s.event, &s.audio, "after.jpg", &photo).await;
    // The follower, connected throughout, sees the writes made after.
    loop {
        let m = follower.next_of("changes").await;
        if m["changes"].as_array().unwrap().iter().any(|c| c["data"]["name"] == "after.jpg") {
            break;
        }
    }

    // A restart on the same files: everything acknowledged is there once.
    node.kill();
    let node = ChildNode::on_disk(bin, &disk, &dir, RESERVE).await;
    let pm = node.server.anonymous().with_token(&s.pm.token);
    let held = titles(&pm, &s.event).await;
    for t in
        (0..10).map(|i| format!("before {i}")).chain((1..=30).map(|n| format!("device {n}"))).chain(["after".into()])
    {
        assert_eq!(held.get(&t), Some(&1), "{t} once");
    }
    assert_eq!(held.len(), 41, "nothing refused was kept: {held:?}");
    let names = pm.strings(&format!("/v1/events/{}/files", s.event), "name").await;
    assert_eq!(names.len(), 2, "{names:?}");
    drop(node);
    tests::assert_gap_free(&disk.outside(&dir.join("db")), &s.event).await;
}

/// No reserve: the disk fills to its last byte under the database itself. The writes that
/// fail are refused as `storage_unavailable` (never answered as a rejection); the node then
/// writes nothing more and says so on `/v1/health` (503 `storage_failed`), even once space
/// is freed, until it is started again. After the restart nothing acknowledged is lost,
/// nothing is doubled, and writes are taken again.
///
/// Why the node stops: SurrealKV keeps a failed transaction's log bytes in its write buffer
/// and writes them out with the next one. Before the node stopped, the device's push refused
/// here and pushed again once space was freed was held twice after the restart.
#[tokio::test]
async fn a_disk_full_to_the_last_byte_loses_nothing_acknowledged() {
    let bin = env!("CARGO_BIN_EXE_backops-test-node");
    let disk = SmallDisk::mount(64 * MIB);
    let dir = disk.mount.join("node");
    let mut node = ChildNode::on_disk(bin, &disk, &dir, 0).await;
    let s = stage(&node.server).await;
    let tasks = format!("/v1/events/{}/tasks", s.event);
    let pm = node.server.anonymous().with_token(&s.pm.token);
    let mut phone = SyncClient::connect_device(&node.server, &s.vic.token, "phone").await;
    phone.send(push(&s.event, &batch(&s, 1, 20))).await;
    phone.next_of("ack").await;

    // An upload opened before the disk fills: its bytes find no room.
    let photo = files::jpeg(640, 480, 200);
    let up = files::open_upload(&pm, &s.event, &s.audio, "late.jpg", &photo).await.ok();
    let upload = up["id"].as_str().unwrap().to_string();

    let ballast = disk.fill(0);
    let (status, offset, body) = files::chunk(&pm, &upload, 0, &photo).await;
    assert_eq!((status, body["code"].as_str()), (507, Some("storage_unavailable")), "{body}");
    assert_eq!(offset, Some(0), "the offset to resume from: {body}");
    // Writes until the store refuses (the last bytes may still take a few).
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let title = format!("full {i}");
        let r = pm.try_send(Method::POST, &tasks, Some(json!({ "title": title }))).await.expect("an answer");
        match r.status {
            201 => acked.push(title),
            507 => {
                assert_eq!(r.body["code"], "storage_unavailable", "{}", r.body);
                refused.push(title);
                if refused.len() >= 5 {
                    break;
                }
            }
            other => panic!("a write on a full disk answered {other}: {}", r.body),
        }
    }
    assert_eq!(refused.len(), 5, "the full disk refused writes");
    phone.send(push(&s.event, &batch(&s, 21, 30))).await;
    let (code, reason) = phone.closed().await;
    assert_eq!(code, engine::protocol::close::TRY_AGAIN_LATER, "{reason}");

    // Space is freed; this node still writes nothing, and says why.
    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(engine::disk::RECHECK + Duration::from_millis(50)).await;
    refused_for_space(&pm, Method::POST, &tasks, json!({ "title": "after, before the restart" })).await;
    node.server.anonymous().get("/v1/health").await.err(503, "storage_failed");
    assert!(titles(&pm, &s.event).await.contains_key("device 20"), "reads go on");

    // Started again on the same files: writes are taken, the push is answered once.
    node.kill();
    let node = ChildNode::on_disk(bin, &disk, &dir, 0).await;
    let pm = node.server.anonymous().with_token(&s.pm.token);
    for i in 0..20 {
        let title = format!("after {i}");
        pm.post(&tasks, json!({ "title": title })).await.ok();
        acked.push(title);
    }
    let mut phone = SyncClient::connect_device(&node.server, &s.vic.token, "phone").await;
    phone.send(push(&s.event, &batch(&s, 21, 30))).await;
    let ack = phone.next_of("ack").await;
    assert!(ack["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{ack}");
    // The upload resumes from what it held, nothing, and finishes.
    assert_eq!(files::held(&pm, &upload).await, 0);
    let (status, _, body) = files::chunk(&pm, &upload, 0, &photo).await;
    assert_eq!(status, 200, "{body}");
    let held = titles(&pm, &s.event).await;
    let wrong: Vec<String> = acked
        .iter()
        .cloned()
        .chain((1..=30).map(|n| format!("device {n}")))
        .filter(|t| held.get(t) != Some(&1))
        .collect();
    assert!(wrong.is_empty(), "acknowledged writes and device mutations not held exactly once: {wrong:?}");
    for t in &refused {
        assert!(held.get(t).is_none_or(|c| *c == 1), "a refused write {t} at most once");
    }
    assert!(!held.contains_key("after, before the restart"));
    eprintln!(
        "{} writes taken as the disk filled, {} refused ({} of those held after the restart, from the store's log)",
        acked.len() - 20,
        refused.len(),
        refused.iter().filter(|t| held.contains_key(*t)).count()
    );
    drop(node);
    tests::assert_gap_free(&disk.outside(&dir.join("db")), &s.event).await;
}

/// A phone (the mobile bridge's client in a process of its own) whose replica is on a small
/// disk that fills up below its reserve: a new edit is refused with `storage_unavailable`
/// and nothing it kept is touched; it takes nothing more from the server meanwhile (the
/// server keeps it); once space is freed it catches up, its edits are applied exactly once,
/// and it holds what the server shows its person.
#[tokio::test]
async fn a_phone_on_a_full_disk_refuses_new_edits_and_keeps_its_outbox() {
    let bin = env!("CARGO_BIN_EXE_backops-test-device");
    let srv = tests::TestServer::start().await;
    let s = stage(&srv).await;
    let disk = SmallDisk::mount(64 * MIB);
    let dir = disk.mount.join("phone");
    let mut phone = Phone::start_on(bin, &disk, &dir).await;
    phone.go_online(&s.vic.token, &srv.base, &s.event).await;
    assert_eq!(phone.run(&format!("synced {}", s.event)).await, ["synced"]);
    phone.run("disconnect").await;
    let wrote = phone.run(&format!("write {} {} 1 20", s.event, s.audio)).await;
    assert!(wrote.iter().all(|l| l.starts_with("wrote")), "{wrote:?}");

    // The phone's disk fills up to below its reserve.
    let ballast = disk.fill(engine::device::DISK_RESERVE / 2);
    tokio::time::sleep(engine::disk::RECHECK + Duration::from_millis(50)).await;
    let refused = phone.run(&format!("write {} {} 21 22", s.event, s.audio)).await;
    assert_eq!(refused, ["refused 21 storage_unavailable", "refused 22 storage_unavailable"]);
    let held = phone.titles(&s.event).await;
    assert_eq!(held.len(), 20, "what it kept is all there: {held:?}");
    // Online, with the server's own writes coming: it takes none of them while full.
    for i in 0..5 {
        s.pm.api
            .post(
                &format!("/v1/events/{}/tasks", s.event),
                json!({ "title": format!("server {i}"), "collaborator": s.audio }),
            )
            .await
            .ok();
    }
    phone.go_online(&s.vic.token, &srv.base, &s.event).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(phone.titles(&s.event).await.len(), 20, "nothing taken while the disk is full");
    let status: Value = serde_json::from_str(&phone.run("status").await[0]).unwrap();
    assert_eq!(status["pending"], 20, "the outbox is kept: {status}");

    // Space is freed: it catches up and sends its edits, each applied once.
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(phone.run(&format!("synced {}", s.event)).await, ["synced"]);
    let again = phone.run(&format!("write {} {} 21 22", s.event, s.audio)).await;
    assert_eq!(again, ["wrote 21", "wrote 22"]);
    assert_eq!(phone.run(&format!("synced {}", s.event)).await, ["synced"]);
    let on_server = titles(&s.pm.api, &s.event).await;
    for k in 1..=22 {
        assert_eq!(on_server.get(&format!("dev {k}")), Some(&1), "dev {k} applied once");
    }
    let mut mine = phone.titles(&s.event).await;
    let mut theirs: Vec<String> = on_server.keys().cloned().collect();
    mine.sort();
    theirs.sort();
    assert_eq!(mine, theirs, "the phone holds what the server shows its person");
}
