//! The embedded device engine: a replica on the device, offline writes in a durable outbox,
//! and reconcile with a real server over a real WebSocket.

use std::collections::HashMap;

use engine::{
    ListFilter,
    device::{LocalWrite, Notice},
    protocol::MutationOp,
};
use serde_json::{Value, json};
use tests::{Stage, TestServer, device::Device, fresh, stage, task};

fn create_task(title: &str) -> LocalWrite {
    LocalWrite { kind: "task".into(), op: MutationOp::Create, record: None, fields: json!({ "title": title }) }
}

fn update_task(id: &str, fields: Value) -> LocalWrite {
    LocalWrite { kind: "task".into(), op: MutationOp::Update, record: Some(id.into()), fields }
}

/// The event's head as the server has it now.
async fn heads(srv: &TestServer, s: &Stage) -> HashMap<String, i64> {
    let (_, head) = fresh(srv, &s.pm.token, &s.event).await;
    [(s.event.clone(), head)].into()
}

/// What a fresh snapshot gives `token`, as (kind, id, data) sorted.
async fn server_view(srv: &TestServer, token: &str, event: &str) -> Vec<(String, String, Value)> {
    let mut c = tests::SyncClient::connect(srv, token).await;
    c.subscribe(event, None).await;
    c.settle(event).await;
    let mut v: Vec<(String, String, Value)> =
        c.replica[event].iter().map(|((k, id), d)| (k.clone(), id.clone(), d.clone())).collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

/// What the device holds, the same way.
async fn device_view(d: &Device, event: &str) -> Vec<(String, String, Value)> {
    let mut v = Vec::new();
    for kind in engine::Kind::ALL.map(engine::Kind::as_str) {
        for r in d.replica.records(event, kind).await.unwrap() {
            v.push((r.kind, r.id, r.data));
        }
    }
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

async fn titles(d: &Device, event: &str) -> Vec<String> {
    let mut t: Vec<String> =
        d.replica.tasks(event, ListFilter::default()).await.unwrap().into_iter().map(|t| t.title).collect();
    t.sort();
    t
}

/// A replica on disk (so it can be reopened), named `name` and signed in with `token`,
/// subscribed to the stage's event and synced. The directory lives as long as the first value.
async fn synced_on_disk(srv: &TestServer, s: &Stage, name: &str, token: &str) -> (tempfile::TempDir, String, Device) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("replica").display());
    let mut d = Device::open(&url, name, token).await;
    d.replica.subscribe(&s.event).await.unwrap();
    d.connect(srv).await;
    d.sync(&heads(srv, s).await).await;
    (dir, url, d)
}

/// Creates `count` tasks through the server's engine as one seeding device's numbered push
/// (counters from `first`); `fields(i)` gives the i-th task's fields.
async fn seed_tasks(srv: &TestServer, s: &Stage, first: u64, count: u64, fields: impl Fn(u64) -> Value) {
    let engine = srv.engine.clone().expect("embedded server");
    let ms: Vec<engine::protocol::Mutation> = (0..count)
        .map(|i| engine::protocol::Mutation {
            id: format!("seed-{}", first + i),
            n: Some(first + i),
            kind: "task".into(),
            op: MutationOp::Create,
            record: None,
            fields: fields(i),
            hlc: None,
        })
        .collect();
    let results = engine.apply_mutations(&s.pm.id, &s.event, "seeder", &ms).await.results;
    assert!(results.iter().all(|r| matches!(r, engine::protocol::MutationResult::Accepted { .. })));
}

/// How many documents of `table` the (closed) replica at `url` stores.
async fn stored_count(url: &str, table: &str) -> i64 {
    let store = engine::Store::connect(url, None).await.unwrap();
    let sql = format!("RETURN count(SELECT 1 FROM {table})");
    store.run(&sql, Value::Null).await.unwrap().value::<i64>(0).unwrap().unwrap_or(0)
}

#[tokio::test]
async fn offline_writes_survive_a_restart_and_reconcile_once() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    task(&s, &s.pm, &s.audio, "Line array").await;
    let (_dir, url, mut phone) = synced_on_disk(&srv, &s, "vic-phone", &s.vic.token).await;
    assert_eq!(titles(&phone, &s.event).await, vec!["Line array"]);
    assert!(phone.replica.status().online);

    // The network goes; work goes on.
    phone.drop_connection().await;
    assert!(!phone.replica.status().online);
    let a = phone.replica.write(&s.event, create_task("Rig check")).await.unwrap();
    phone.replica.write(&s.event, update_task(&a.record.id, json!({ "status": "active" }))).await.unwrap();
    phone.replica.write(&s.event, create_task("Cable run")).await.unwrap();
    assert_eq!(titles(&phone, &s.event).await, vec!["Cable run", "Line array", "Rig check"]);
    assert_eq!(phone.replica.status().pending, 3);
    // The other tabs answer offline too; the dashboard counts what the device holds.
    let board = phone.replica.dashboard(&s.event, None).await.unwrap();
    assert_eq!((board.collaborator.as_str(), board.tasks.todo, board.tasks.active), (s.audio.as_str(), 2, 1));
    assert!(phone.replica.activities(&s.event, ListFilter::default()).await.unwrap().is_empty());
    let (ev, access) = phone.replica.event(&s.event).await.unwrap();
    assert_eq!(
        (ev.id.as_str(), access.seat, access.collaborator.as_deref()),
        (s.event.as_str(), false, Some(s.audio.as_str()))
    );
    // A write the device can judge is refused on the spot, and changes nothing.
    let bad = phone.replica.write(&s.event, create_task("   ")).await.unwrap_err();
    assert_eq!(bad.code(), "invalid_input");
    let other = LocalWrite {
        kind: "task".into(),
        op: MutationOp::Create,
        record: None,
        fields: json!({ "title": "Not mine", "collaborator": s.client }),
    };
    assert_eq!(phone.replica.write(&s.event, other).await.unwrap_err().code(), "not_found");
    assert_eq!(phone.replica.status().pending, 3);

    // The process dies; the phone restarts: the outbox and the local records are intact.
    drop(phone);
    let mut phone = Device::open(&url, "vic-phone", &s.vic.token).await;
    assert_eq!(phone.replica.status().pending, 3);
    assert_eq!(titles(&phone, &s.event).await, vec!["Cable run", "Line array", "Rig check"]);

    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    let status = phone.replica.status();
    assert_eq!((status.pending, status.online), (0, true));
    assert!(status.last_sync.is_some() && status.last_error.is_none());
    // The server has each write once, and the device holds exactly what it may see.
    let on_server = s.pm.api.get(&format!("/v1/events/{}/tasks?collaborator={}", s.event, s.audio)).await.ok();
    let mut names: Vec<(String, String)> = on_server
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["title"].as_str().unwrap().to_string(), t["status"].as_str().unwrap().to_string()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("Cable run".to_string(), "todo".to_string()),
            ("Line array".to_string(), "todo".to_string()),
            ("Rig check".to_string(), "active".to_string())
        ]
    );
    assert_eq!(device_view(&phone, &s.event).await, server_view(&srv, &s.vic.token, &s.event).await);

    // Restarted again with nothing left to send: its next mutation is numbered above every
    // earlier one, so the server applies it rather than taking it for a retry.
    drop(phone);
    let mut phone = Device::open(&url, "vic-phone", &s.vic.token).await;
    phone.replica.write(&s.event, create_task("Follow spot")).await.unwrap();
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    assert_eq!(phone.replica.status().pending, 0);
    let on_server = s.pm.api.get(&format!("/v1/events/{}/tasks?collaborator={}", s.event, s.audio)).await.ok();
    assert!(on_server.as_array().unwrap().iter().any(|t| t["title"] == "Follow spot"), "{on_server}");
    assert_eq!(device_view(&phone, &s.event).await, server_view(&srv, &s.vic.token, &s.event).await);
}

#[tokio::test]
async fn a_connection_dropped_mid_push_applies_each_mutation_once() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let mut phone = Device::open("mem://", "vic-phone", &s.vic.token).await;
    phone.replica.subscribe(&s.event).await.unwrap();
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    phone.drop_connection().await;
    for i in 0..30 {
        phone.replica.write(&s.event, create_task(&format!("Offline {i}"))).await.unwrap();
    }
    let (_, head0) = fresh(&srv, &s.pm.token, &s.event).await;
    // Twice: the push leaves, the connection dies before the answer.
    for _ in 0..2 {
        phone.connect(&srv).await;
        assert!(phone.push_then_drop().await);
    }
    phone.connect(&srv).await;
    let h = heads(&srv, &s).await;
    phone.sync(&h).await;
    let (held, head) = fresh(&srv, &s.pm.token, &s.event).await;
    assert_eq!(held.iter().filter(|(k, _)| k == "task").count(), 30);
    assert_eq!(head - head0, 30, "thirty changes for thirty mutations, however often they were sent");
    phone.sync(&heads(&srv, &s).await).await;
    assert_eq!(phone.replica.status().pending, 0);
    assert_eq!(device_view(&phone, &s.event).await, server_view(&srv, &s.vic.token, &s.event).await);
}

#[tokio::test]
async fn concurrent_offline_edits_converge_field_by_field() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let id = task(&s, &s.pm, &s.audio, "Line array").await;
    let mut phone = Device::open("mem://", "vic-phone", &s.vic.token).await;
    let mut tablet = Device::open("mem://", "pm-tablet", &s.pm.token).await;
    for d in [&mut phone, &mut tablet] {
        d.replica.subscribe(&s.event).await.unwrap();
        d.connect(&srv).await;
        d.sync(&heads(&srv, &s).await).await;
        d.drop_connection().await;
    }
    // Offline, the phone edits first (title, due), the tablet later (title, status).
    phone
        .replica
        .write(&s.event, update_task(&id, json!({ "title": "Phone title", "due": "2026-07-04" })))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    tablet
        .replica
        .write(&s.event, update_task(&id, json!({ "title": "Tablet title", "status": "done" })))
        .await
        .unwrap();
    assert_eq!(titles(&phone, &s.event).await, vec!["Phone title"]);

    // The later edit reaches the server first; the earlier one second.
    tablet.connect(&srv).await;
    tablet.sync(&heads(&srv, &s).await).await;
    phone.connect(&srv).await;
    let h = heads(&srv, &s).await;
    phone.sync(&h).await;
    let h = heads(&srv, &s).await;
    tablet.sync(&h).await;
    phone.sync(&h).await;

    for d in [&phone, &tablet] {
        let t = d.replica.tasks(&s.event, ListFilter::default()).await.unwrap();
        let t = t.iter().find(|t| t.id == id).unwrap();
        assert_eq!(
            (t.title.as_str(), t.due.as_deref(), t.status),
            ("Tablet title", Some("2026-07-04"), engine::model::TaskStatus::Done),
            "{}",
            d.replica.device()
        );
    }
    assert_eq!(device_view(&phone, &s.event).await, server_view(&srv, &s.vic.token, &s.event).await);
    assert_eq!(device_view(&tablet, &s.event).await, server_view(&srv, &s.pm.token, &s.event).await);
}

#[tokio::test]
async fn a_refused_write_rolls_back_and_the_app_hears_why() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let id = task(&s, &s.pm, &s.audio, "Line array").await;
    let mut phone = Device::open("mem://", "vic-phone", &s.vic.token).await;
    let mut heard = phone.replica.notices();
    phone.replica.subscribe(&s.event).await.unwrap();
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    phone.drop_connection().await;

    // Offline, Vic edits; meanwhile the office makes Audio read-only.
    phone.replica.write(&s.event, update_task(&id, json!({ "title": "Vic's title" }))).await.unwrap();
    let made = phone.replica.write(&s.event, create_task("Vic's task")).await.unwrap();
    assert_eq!(titles(&phone, &s.event).await, vec!["Vic's task", "Vic's title"]);
    s.pm.api
        .patch(&format!("/v1/events/{}/collaborators/{}", s.event, s.audio), json!({ "read_only": true }))
        .await
        .ok();

    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    // Both were refused at apply time; the device shows the server's truth again.
    assert_eq!(titles(&phone, &s.event).await, vec!["Line array"]);
    assert_eq!(phone.replica.status().pending, 0);
    let rejections = phone.replica.rejections().await.unwrap();
    assert_eq!(rejections.len(), 2);
    assert!(rejections.iter().all(|r| r.code == "read_only"), "{rejections:?}");
    assert!(rejections.iter().any(|r| r.record == made.record.id));
    let mut told = Vec::new();
    while let Ok(n) = heard.try_recv() {
        if let Notice::Rejected(r) = n {
            told.push(r.code);
        }
    }
    assert_eq!(told, vec!["read_only", "read_only"]);
    // Now the device knows: the next write is refused on the spot.
    let e = phone.replica.write(&s.event, create_task("Again")).await.unwrap_err();
    assert_eq!(e.code(), "read_only");
    assert_eq!(device_view(&phone, &s.event).await, server_view(&srv, &s.vic.token, &s.event).await);
}

#[tokio::test]
async fn lost_visibility_purges_the_device() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let moved = task(&s, &s.pm, &s.audio, "Moves away").await;
    task(&s, &s.pm, &s.audio, "Stays").await;
    let mut phone = Device::open("mem://", "vic-phone", &s.vic.token).await;
    phone.replica.subscribe(&s.event).await.unwrap();
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    assert_eq!(titles(&phone, &s.event).await, vec!["Moves away", "Stays"]);

    // A record moved to another collaborator leaves the device.
    s.pm.api.patch(&format!("/v1/events/{}/tasks/{moved}", s.event), json!({ "collaborator": s.client })).await.ok();
    phone.sync(&heads(&srv, &s).await).await;
    assert_eq!(titles(&phone, &s.event).await, vec!["Stays"]);

    // Offline, Vic writes; meanwhile Vic is removed from Audio, so the event is gone for him.
    phone.drop_connection().await;
    phone.replica.write(&s.event, create_task("Made offline")).await.unwrap();
    s.pm.api.delete(&format!("/v1/events/{}/collaborators/{}/members/{}", s.event, s.audio, s.vic.id)).await.ok();
    phone.connect(&srv).await;
    // The subscription is refused: the device drops everything of the event, and the
    // offline write comes back as a rejection the app can show.
    let deadline = tokio::time::Instant::now() + tests::WAIT_MAX;
    while !phone.replica.rejections().await.unwrap().iter().any(|r| r.code == "access_revoked") {
        phone.sync(&HashMap::new()).await;
        assert!(tokio::time::Instant::now() < deadline, "never told");
    }
    assert!(device_view(&phone, &s.event).await.is_empty());
    assert_eq!(phone.replica.status().pending, 0);
    assert_eq!(phone.replica.write(&s.event, create_task("More")).await.unwrap_err().code(), "not_found");
    // Nothing of another collaborator ever reached the device.
    assert!(!phone.frames.iter().any(|f| f.to_string().contains(&s.client) && f["type"] == "snapshot"));
}

/// The replica keeps most rows many to a document (pages) and later changes in an overlay of
/// deltas. A replica written before pages existed — every row its own document — opens with
/// the same records, moved into pages; changes after that (an edit, a delete) survive a
/// restart exactly as the server has them. So does the layout in between (pages, and an
/// overlay of one document per row).
#[tokio::test]
async fn a_replica_of_the_earlier_layout_is_moved_into_pages_on_open() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    seed_tasks(
        &srv,
        &s,
        1,
        600,
        |i| json!({ "title": format!("Cue {i}"), "collaborator": if i % 2 == 0 { &s.audio } else { &s.client } }),
    )
    .await;
    let (_dir, url, tablet) = synced_on_disk(&srv, &s, "pm-tablet", &s.pm.token).await;
    let before = device_view(&tablet, &s.event).await;
    assert!(before.len() > 600, "{} records", before.len());
    drop(tablet);

    // Back to the earlier layout: every row its own `rec` document, no pages, schema 1.
    {
        let store = engine::Store::connect(&url, None).await.unwrap();
        #[derive(serde::Deserialize)]
        struct Page {
            key: (String, i64, i64),
            rows: String,
        }
        let pages: Vec<Page> =
            store.run("SELECT record::id(id) AS key, rows FROM page", Value::Null).await.unwrap().all(0).unwrap();
        assert!(pages.len() >= 2, "a synced replica keeps its rows in pages");
        let mut rows = Vec::new();
        for p in pages {
            for mut r in serde_json::from_str::<Vec<Value>>(&p.rows).unwrap() {
                r["event"] = json!(p.key.0);
                r["id"] = json!([p.key.0, r["kind"], r["rid"]]);
                rows.push(r);
            }
        }
        store
            .run(
                "INSERT INTO rec $rows RETURN NONE; REMOVE TABLE page; REMOVE TABLE delta;
                 UPDATE sub SET pages = NONE; DELETE schema_migration WHERE version >= 2;",
                json!({ "rows": rows }),
            )
            .await
            .unwrap();
    }
    let mut tablet = Device::open(&url, "pm-tablet", &s.pm.token).await;
    assert_eq!(device_view(&tablet, &s.event).await, before, "the same records after the move");

    // Changes after the move, then a restart: the replica still equals the server's view.
    let first = before.iter().find(|(k, _, _)| k == "task").unwrap().1.clone();
    let path = format!("/v1/events/{}/tasks", s.event);
    s.pm.api.patch(&format!("{path}/{first}"), json!({ "title": "Cue renamed" })).await.ok();
    let second = before.iter().filter(|(k, _, _)| k == "task").nth(1).unwrap().1.clone();
    s.pm.api.delete(&format!("{path}/{second}")).await.ok();
    tablet.connect(&srv).await;
    tablet.sync(&heads(&srv, &s).await).await;
    let view = server_view(&srv, &s.pm.token, &s.event).await;
    assert_eq!(device_view(&tablet, &s.event).await, view);
    drop(tablet);
    let tablet = Device::open(&url, "pm-tablet", &s.pm.token).await;
    assert_eq!(device_view(&tablet, &s.event).await, view, "the overlay's edit and delete survive a restart");
    drop(tablet);

    // The layout in between: pages, and an overlay of one `rec` document per row (each naming
    // the generation of the pages it was written over), without deltas.
    assert!(stored_count(&url, "delta").await > 0, "the edit and the delete are in deltas");
    {
        let store = engine::Store::connect(&url, None).await.unwrap();
        #[derive(serde::Deserialize)]
        struct Delta {
            key: (String, i64),
            pg: i64,
            rows: String,
        }
        let mut deltas: Vec<Delta> =
            store.run("SELECT record::id(id) AS key, pg, rows FROM delta", Value::Null).await.unwrap().all(0).unwrap();
        deltas.sort_by_key(|d| d.key.1);
        let mut rows: HashMap<Value, Value> = HashMap::new();
        for d in deltas {
            for mut r in serde_json::from_str::<Vec<Value>>(&d.rows).unwrap() {
                let id = json!([d.key.0, r["kind"], r["rid"]]);
                r["event"] = json!(d.key.0);
                r["id"] = id.clone();
                r["pg"] = json!(d.pg);
                rows.insert(id, r);
            }
        }
        store
            .run(
                "INSERT INTO rec $rows RETURN NONE; REMOVE TABLE delta; DELETE schema_migration WHERE version >= 3;",
                json!({ "rows": rows.into_values().collect::<Vec<_>>() }),
            )
            .await
            .unwrap();
    }
    let tablet = Device::open(&url, "pm-tablet", &s.pm.token).await;
    assert_eq!(device_view(&tablet, &s.event).await, view, "the overlay of the layout in between is read");
    drop(tablet);
    // Its rows were compacted into pages at that open, and are swept by the next at the latest.
    let tablet = Device::open(&url, "pm-tablet", &s.pm.token).await;
    assert_eq!(device_view(&tablet, &s.event).await, view);
    drop(tablet);
    assert_eq!(stored_count(&url, "rec").await, 0, "no row is left in the earlier overlay");
    assert!(stored_count(&url, "page").await >= 2, "the rows are in pages");
}

/// Mutations a sync has taken leave the outbox by a watermark stored with the changes, not by
/// deleting their documents one by one in the sync. Documents the watermark covers are never
/// read back — as after a crash before they were swept — and are swept.
#[tokio::test]
async fn a_synced_outbox_is_let_go_by_its_watermark() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let (_dir, url, mut phone) = synced_on_disk(&srv, &s, "vic-phone", &s.vic.token).await;
    phone.drop_connection().await;
    for i in 0..40 {
        phone.replica.write(&s.event, create_task(&format!("Cue {i}"))).await.unwrap();
    }
    drop(phone);
    let entries: Vec<Value> = {
        let store = engine::Store::connect(&url, None).await.unwrap();
        store.run("SELECT * OMIT id FROM outbox", Value::Null).await.unwrap().all(0).unwrap()
    };
    assert_eq!(entries.len(), 40);

    let mut phone = Device::open(&url, "vic-phone", &s.vic.token).await;
    assert_eq!(phone.replica.status().pending, 40);
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    let view = server_view(&srv, &s.vic.token, &s.event).await;
    assert_eq!(device_view(&phone, &s.event).await, view);
    drop(phone);

    // Every entry back in the store, as if the app had been killed before they were swept.
    {
        let store = engine::Store::connect(&url, None).await.unwrap();
        store
            .run(
                "DELETE outbox; FOR $o IN $entries { CREATE type::record('outbox', $o.n) CONTENT $o RETURN NONE; };",
                json!({ "entries": entries }),
            )
            .await
            .unwrap();
    }
    let phone = Device::open(&url, "vic-phone", &s.vic.token).await;
    assert_eq!(phone.replica.status().pending, 0, "done mutations are not read back");
    assert_eq!(device_view(&phone, &s.event).await, view);
    phone.replica.settle().await;
    drop(phone);
    assert_eq!(stored_count(&url, "outbox").await, 0, "the done entries were swept");
}

/// A narrowing of access purges the replica's pages too, in the transaction that applies it:
/// after a restart, nothing the person lost is back.
#[tokio::test]
async fn a_narrowing_survives_a_restart() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let (ev, api) = (&s.event, &s.pm.api);
    task(&s, &s.pm, &s.audio, "Line array").await;
    api.post(&format!("/v1/events/{ev}/zones"), json!({ "code": "GA", "name": "General admission" })).await.ok();
    let csv = "uid,kind,holder_name,zones\nW-1,ga,Guest 1,GA\nW-2,ga,Guest 2,GA\nW-3,ga,Guest 3,GA\n";
    let import = format!("/v1/events/{ev}/credentials/import");
    assert_eq!(api.raw(reqwest::Method::POST, &import, "text/csv", csv.into()).await.ok()["created"], 3);
    api.put(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio), json!({})).await.ok();
    let (_dir, url, mut phone) = synced_on_disk(&srv, &s, "vic-phone", &s.vic.token).await;
    let credentials = |view: &[(String, String, Value)]| view.iter().filter(|(k, _, _)| k == "credential").count();
    assert_eq!(credentials(&device_view(&phone, ev).await), 3, "the gate module brings the credentials");

    api.delete(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio)).await.ok();
    phone.sync(&heads(&srv, &s).await).await;
    assert!(phone.frames.iter().any(|f| f["type"] == "changes" && f.to_string().contains("\"narrow\"")));
    let view = server_view(&srv, &s.vic.token, ev).await;
    assert_eq!(credentials(&view), 0);
    assert_eq!(device_view(&phone, ev).await, view);
    drop(phone);
    let phone = Device::open(&url, "vic-phone", &s.vic.token).await;
    assert_eq!(device_view(&phone, ev).await, view, "nothing purged came back after a restart");
    assert_eq!(titles(&phone, ev).await, vec!["Line array"]);
}

/// A tab read a page at a time walks the whole tab in the tab's order, once each, whatever
/// changes between pages; a cursor that is not one is refused.
#[tokio::test]
async fn a_tab_is_read_a_page_at_a_time() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    for i in 0..25 {
        task(&s, &s.pm, &s.audio, &format!("Cue {i:02}")).await;
    }
    let mut phone = Device::open("mem://", "vic-phone", &s.vic.token).await;
    phone.replica.subscribe(&s.event).await.unwrap();
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    let whole: Vec<String> =
        phone.replica.tasks(&s.event, ListFilter::default()).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(whole.len(), 25);

    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let page = phone.replica.tasks_page(&s.event, ListFilter::default(), after.as_deref(), 10).await.unwrap();
        sizes.push(page.items.len());
        walked.extend(page.items.into_iter().map(|t| t.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(walked, whole, "the pages are the tab, in its order");

    // The record a page ended on is deleted before the next page is read: the next page
    // still starts right after it.
    let first = phone.replica.tasks_page(&s.event, ListFilter::default(), None, 10).await.unwrap();
    let boundary = first.items.last().unwrap().id.clone();
    s.pm.api.delete(&format!("/v1/events/{}/tasks/{boundary}", s.event)).await.ok();
    phone.sync(&heads(&srv, &s).await).await;
    let second = phone.replica.tasks_page(&s.event, ListFilter::default(), first.next.as_deref(), 10).await.unwrap();
    let ids: Vec<String> = second.items.into_iter().map(|t| t.id).collect();
    assert_eq!(ids, whole[10..20]);
    let of_audio = ListFilter { collaborator: Some(s.audio.clone()) };
    assert_eq!(phone.replica.tasks_page(&s.event, of_audio, None, 100).await.unwrap().items.len(), 24);
    let bad = phone.replica.tasks_page(&s.event, ListFilter::default(), Some("nonsense"), 10).await.unwrap_err();
    assert_eq!(bad.code(), "invalid_input");
}

/// Changes arriving after the snapshot go to the overlay, one document each; once it holds
/// more than 2,000 rows and half the event's, the next heartbeat's answer rewrites the event's
/// rows as pages and empties it — and the replica reopens the same.
#[tokio::test]
async fn a_grown_overlay_is_compacted_into_pages_at_a_heartbeat() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let (_dir, url, mut tablet) = synced_on_disk(&srv, &s, "pm-tablet", &s.pm.token).await;
    for batch in 0..5u64 {
        seed_tasks(&srv, &s, batch * 1000 + 1, 450, |i| json!({ "title": format!("Cue {batch}-{i}") })).await;
    }
    tablet.sync(&heads(&srv, &s).await).await;
    let view = server_view(&srv, &s.pm.token, &s.event).await;
    assert_eq!(device_view(&tablet, &s.event).await, view);
    drop(tablet);
    // An overlay row written over older pages (as one the background sweep has not reached
    // yet) is superseded: it must not win over the pages when the replica opens.
    {
        let store = engine::Store::connect(&url, None).await.unwrap();
        let (kind, id, _) = view.iter().find(|(k, _, _)| k == "task").unwrap();
        // Numbered after every delta, so only its generation can tell it is stale.
        let rows = json!([{ "kind": kind, "rid": id, "data": { "id": id, "title": "Stale" }, "collaborators": [] }]);
        store
            .run(
                "CREATE type::record('delta', [$e, $k]) CONTENT { pg: 1, rows: $rows }",
                json!({ "e": s.event, "k": 1_000_000_000, "rows": rows.to_string() }),
            )
            .await
            .unwrap();
    }
    // Reopened (which also sweeps superseded rows the background sweep had not), it holds
    // the same.
    let tablet = Device::open(&url, "pm-tablet", &s.pm.token).await;
    assert_eq!(device_view(&tablet, &s.event).await, view, "the replica reopens as it was");
    drop(tablet);
    assert_eq!(stored_count(&url, "delta").await, 0, "the overlay was emptied into pages");
    assert!(stored_count(&url, "page").await >= 5, "2,250 rows in pages of 500");
}
