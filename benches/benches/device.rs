//! The device engine against the real server over loopback.
//!
//! 1. Reconcile: a seat holder's tablet makes M task creates offline (local write rate), then
//!    connects and pushes them; measured from connect until every one is accepted and the
//!    replica has caught up with the server (M / seconds).
//! 2. Initial sync: the server holds R more tasks; a fresh replica subscribes and takes the
//!    whole event (records / seconds until the snapshot is stored).
//! 3. Local reads: on that replica, a tab of 10,000 records and a tab of 500, read repeatedly
//!    with no network (p50 / p99).
//! 4. Reopening that replica (an app start: its rows are read into memory).
//!
//! Run: `cargo bench -p benches --bench device -- [MUTATIONS] [RECORDS] [mem|surrealkv]`
//! (defaults 10000 100000 surrealkv: the server and the replicas on disk, as deployed).

use std::{collections::HashMap, time::Instant};

use engine::{
    ListFilter,
    device::LocalWrite,
    protocol::{Mutation, MutationOp, MutationResult},
};
use serde_json::json;
use tests::{device::Device, quantile, stage};

// No `#[global_allocator]` here, unlike the other benches: the device engine runs inside an app
// through the bridge library, on the system allocator, and that is what this bench measures.
// (Under mimalloc, SurrealKV's 1 GiB memtable arena — its default on a machine of this size —
// is zeroed page by page whenever one is made, which cost ≈ 2 s at each close and reopen of a
// large replica and a third of the reconcile's CPU; the system allocator maps it lazily.)

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mutations: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let records: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let disk = args.get(2).is_none_or(|a| a != "mem");
    let store = tests::BenchStore::new(disk);
    let url = |name: &str| store.url(name);
    let srv = store.server().await;
    let s = stage(&srv).await;
    let engine = srv.engine.clone().expect("engine");
    let heads = |h: i64| HashMap::from([(s.event.clone(), h)]);
    println!("store: {}", if disk { "surrealkv (server and replicas on disk)" } else { "mem" });

    // 1. Reconcile.
    let mut tablet = Device::open(&url("tablet"), "bench-tablet", &s.pm.token).await;
    tablet.push_max = engine::protocol::Limits::default().push_mutations_max;
    tablet.replica.subscribe(&s.event).await.unwrap();
    tablet.connect(&srv).await;
    tablet.sync(&heads(engine.head(&s.event).await.unwrap())).await;
    tablet.drop_connection().await;
    let started = Instant::now();
    for i in 0..mutations {
        let w = LocalWrite {
            kind: "task".into(),
            op: MutationOp::Create,
            record: None,
            fields: json!({ "title": format!("Offline {i}"), "collaborator": s.audio }),
        };
        tablet.replica.write(&s.event, w).await.expect("local write");
    }
    let local = started.elapsed();
    println!(
        "local writes: {mutations} in {:.2} s = {:.0} writes/s ({:.0} µs each)",
        local.as_secs_f64(),
        mutations as f64 / local.as_secs_f64(),
        local.as_micros() as f64 / mutations as f64
    );
    let head0 = engine.head(&s.event).await.unwrap();
    let started = Instant::now();
    tablet.connect(&srv).await;
    tablet.sync(&heads(head0 + mutations as i64)).await;
    let reconcile = started.elapsed();
    assert_eq!(tablet.replica.status().pending, 0);
    assert_eq!(engine.head(&s.event).await.unwrap(), head0 + mutations as i64, "each mutation applied once");
    println!(
        "reconcile: {mutations} offline mutations accepted and caught up in {:.2} s = {:.0} mutations/s (target ≤ 2 s for 10,000)",
        reconcile.as_secs_f64(),
        mutations as f64 / reconcile.as_secs_f64()
    );
    println!("  of which the replica spent {:.2} s taking frames", tablet.handling.as_secs_f64());
    // The housekeeping the sync left for a quiet moment (compacting the overlay, sweeping
    // what that and the sync superseded): at the next heartbeat with nothing in flight, in the
    // background.
    let started = Instant::now();
    tablet.round().await;
    tablet.replica.settle().await;
    println!("  housekeeping at the next quiet heartbeat, in the background: {:.2} s", started.elapsed().as_secs_f64());

    // 2. Initial sync. The server takes the records in batches, as devices push them.
    let catering =
        s.pm.api.post(&format!("/v1/events/{}/collaborators", s.event), json!({ "name": "Catering" })).await.ok()["id"]
            .as_str()
            .unwrap()
            .to_string();
    let started = Instant::now();
    let batch = 500;
    let mut made = 0;
    while made < records {
        let n = batch.min(records - made);
        let ms: Vec<Mutation> = (made..made + n)
            .map(|i| Mutation {
                id: format!("seed-{i}"),
                n: Some(i as u64 + 1),
                kind: "task".into(),
                op: MutationOp::Create,
                record: None,
                // 10,000 in one collaborator (a large tab), 500 in another, the rest in the
                // production's.
                fields: match i {
                    0..10_000 => json!({ "title": format!("Client {i}"), "collaborator": s.client }),
                    10_000..10_500 => json!({ "title": format!("Catering {i}"), "collaborator": catering }),
                    _ => json!({ "title": format!("Task {i}") }),
                },
                hlc: None,
            })
            .collect();
        let results = engine.apply_mutations(&s.pm.id, &s.event, "seeder", &ms).await.results;
        assert!(results.iter().all(|r| matches!(r, MutationResult::Accepted { .. })));
        made += n;
    }
    println!("server seeded with {records} records in {:.1} s", started.elapsed().as_secs_f64());
    let head = engine.head(&s.event).await.unwrap();
    let total = engine.snapshot(&s.pm.id, &s.event).await.unwrap().records.len();
    let mut fresh = Device::open(&url("fresh"), "bench-fresh", &s.pm.token).await;
    fresh.replica.subscribe(&s.event).await.unwrap();
    let started = Instant::now();
    fresh.connect(&srv).await;
    fresh.sync(&heads(head)).await;
    let initial = started.elapsed();
    println!(
        "initial sync: {total} records into an empty replica in {:.2} s = {:.0} records/s (target ≥ 30,000/s)",
        initial.as_secs_f64(),
        total as f64 / initial.as_secs_f64()
    );
    println!("  of which the replica spent {:.2} s taking frames", fresh.handling.as_secs_f64());

    // 3. Local reads, no network.
    fresh.drop_connection().await;
    for (label, filter, expect) in [
        ("tab of 10,000 tasks", ListFilter { collaborator: Some(s.client.clone()) }, 10_000.min(records)),
        (
            "tab of 500 tasks",
            ListFilter { collaborator: Some(catering.clone()) },
            records.saturating_sub(10_000).min(500),
        ),
    ] {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..50 {
            let t = Instant::now();
            n = fresh.replica.tasks(&s.event, filter.clone()).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        assert_eq!(n, expect, "{label}");
        println!(
            "local read, {label} ({n} rows): p50 {:.2} ms, p99 {:.2} ms (target p99 ≤ 5 ms)",
            quantile(&times, 0.5).as_secs_f64() * 1e3,
            quantile(&times, 0.99).as_secs_f64() * 1e3
        );
    }
    // The same 10,000-row tab a page of 200 at a time, as a screen scrolls it: every page of
    // it, five times over.
    let big = ListFilter { collaborator: Some(s.client.clone()) };
    let mut times = Vec::new();
    let mut seen = 0;
    for _ in 0..5 {
        let mut after: Option<String> = None;
        seen = 0;
        loop {
            let t = Instant::now();
            let page = fresh.replica.tasks_page(&s.event, big.clone(), after.as_deref(), 200).await.unwrap();
            times.push(t.elapsed());
            seen += page.items.len();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    times.sort();
    assert_eq!(seen, 10_000.min(records), "paging walks the whole tab");
    println!(
        "local read, a page of 200 of the tab of 10,000 tasks ({} pages read): p50 {:.3} ms, p99 {:.3} ms (target p99 ≤ 5 ms)",
        times.len(),
        quantile(&times, 0.5).as_secs_f64() * 1e3,
        quantile(&times, 0.99).as_secs_f64() * 1e3
    );

    // 4. Opening the replica again (an app start): the rows are read into memory. Only on
    // disk: a replica in memory is gone with its handle.
    if disk {
        let held = fresh.replica.records(&s.event, "task").await.unwrap().len();
        drop(fresh);
        // The handle just dropped releases the store's files in the background (SurrealKV
        // finishing its writes); an app starting again finds them released. So: first wait for
        // that, timed, then open the store alone and read its documents (the ceiling), then,
        // that handle released in turn, open the replica as an app start does.
        let started = Instant::now();
        let store = engine::Store::connect(&url("fresh"), None).await.expect("store");
        let released = started.elapsed();
        let started = Instant::now();
        let docs: Vec<serde_json::Value> = store
            .run("SELECT * FROM page; SELECT * FROM delta", serde_json::Value::Null)
            .await
            .expect("read")
            .all(0)
            .expect("docs");
        let read = started.elapsed();
        drop((store, docs));
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let started = Instant::now();
        let reopened = engine::device::Replica::open(&url("fresh"), None).await.expect("reopen");
        let opened = started.elapsed();
        assert_eq!(reopened.records(&s.event, "task").await.unwrap().len(), held);
        println!(
            "reopen a replica of {total} records: {:.2} s (target ≤ 1 s; reading its documents alone: {:.2} s; \
             the handle dropped before took {:.2} s to release the store)",
            opened.as_secs_f64(),
            read.as_secs_f64(),
            released.as_secs_f64()
        );
    }
    srv.stop().await.expect("stop");
}
