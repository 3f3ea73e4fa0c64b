//! The front gate against the real server over loopback.
//!
//! 1. Bulk import: C credentials in one CSV request (time until the server answers).
//! 2. Lanes: L lane devices (gate members) subscribe at once; time until every one holds all
//!    C credentials.
//! 3. Gate decision on a lane with the C credentials in its replica: S scans of random uids,
//!    each decided from the replica and recorded durably in the outbox (p50 / p99), with no
//!    network.
//!
//! Run: `cargo bench -p benches --bench gate -- [CREDENTIALS] [LANES] [SCANS] [mem|surrealkv]`
//! (defaults 100000 32 2000 surrealkv: the server and the lane that scans on disk; the other
//! lanes on mem).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use engine::model::{Direction, ScanDecision};
use serde_json::json;
use tests::{TestServer, device::Device, quantile, stage};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let credentials: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let lanes: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32).max(1);
    let scans: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2_000).max(1);
    let disk = args.get(3).is_none_or(|a| a != "mem");
    let store = tests::BenchStore::new(disk);
    let url = |name: &str| store.url(name);
    let srv = store.server().await;
    let s = stage(&srv).await;
    let engine = srv.engine.clone().expect("engine");
    let ev = s.event.clone();
    println!(
        "store: {}; {credentials} credentials, {lanes} lanes, {scans} scans",
        if disk { "surrealkv" } else { "mem" }
    );
    let api = &s.pm.api;
    api.post(&format!("/v1/events/{ev}/zones"), json!({ "code": "GA", "name": "General admission" })).await.ok();
    let gate = api
        .post(
            &format!("/v1/events/{ev}/gates"),
            json!({ "name": "Gate A", "zone": "GA", "lanes": ["1", "2", "3", "4"] }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.put(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio), json!({})).await.ok();

    // 1. Bulk import.
    let mut csv = String::from("uid,kind,holder_name,zones,holder_email\n");
    for i in 0..credentials {
        csv.push_str(&format!("W-{i:06},ga,Guest {i},GA,guest{i}@example.com\n"));
    }
    let bytes = csv.len();
    let started = Instant::now();
    let report = api
        .raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", csv.into_bytes())
        .await
        .ok();
    let import = started.elapsed();
    assert_eq!(report["created"].as_u64(), Some(credentials as u64), "{report}");
    println!(
        "bulk import: {credentials} credentials ({:.1} MiB of CSV) in one request: {:.2} s",
        bytes as f64 / (1 << 20) as f64,
        import.as_secs_f64()
    );

    // 2. Every lane takes them.
    let head = engine.head(&ev).await.unwrap();
    let heads = HashMap::from([(ev.clone(), head)]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..lanes {
        let (srv_url, token, heads, ev) = (srv.base.clone(), s.vic.token.clone(), heads.clone(), ev.clone());
        let replica_url = if i == 0 { url("lane-0") } else { "mem://".to_string() };
        tasks.push(tokio::spawn(async move {
            let srv = TestServer::attach(&srv_url);
            let mut lane = Device::open(&replica_url, &format!("lane-{i}"), &token).await;
            lane.replica.subscribe(&ev).await.unwrap();
            lane.connect(&srv).await;
            lane.sync(&heads).await;
            let took = Instant::now();
            (lane, took)
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.push(t.await.expect("lane"));
    }
    let all = held.iter().map(|(_, t)| *t).max().unwrap().duration_since(started);
    for (lane, _) in &held {
        assert_eq!(lane.replica.credential_count(&ev).await.unwrap(), credentials);
    }
    println!("all {lanes} lanes hold the {credentials} credentials {:.2} s after they subscribed", all.as_secs_f64());
    println!("import to the last lane ready: {:.2} s", (import + all).as_secs_f64());

    // 3. Decisions at one lane, offline.
    let (mut lane, _) = held.swap_remove(0);
    drop(held);
    lane.drop_connection().await;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut times = Vec::with_capacity(scans);
    let mut admitted = 0;
    for _ in 0..scans {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let uid = format!("W-{:06}", x % credentials as u64);
        let t = Instant::now();
        let outcome = lane.replica.scan(&ev, &uid, &gate, "1", Direction::Entry).await.expect("scan");
        times.push(t.elapsed());
        admitted += usize::from(outcome.scan.decision == ScanDecision::Admit);
    }
    times.sort();
    println!(
        "gate decision + durable scan record, {credentials} credentials in the replica ({}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 ≤ 5 ms; {admitted} admitted)",
        if disk { "surrealkv" } else { "mem" },
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.99)),
        ms(*times.last().unwrap())
    );
    let mut looks = Vec::with_capacity(scans);
    for i in 0..scans {
        let uid = format!("W-{:06}", (i * 7919) % credentials);
        let t = Instant::now();
        let c = lane.replica.credential(&ev, &uid).await.expect("lookup");
        looks.push(t.elapsed());
        assert!(c.is_some());
    }
    looks.sort();
    println!(
        "credential lookup alone (what the decision reads): p50 {:.3} ms, p99 {:.3} ms",
        ms(quantile(&looks, 0.5)),
        ms(quantile(&looks, 0.99))
    );
    drop(lane);
    srv.stop().await.expect("stop");
}
