//! How soon a sync node delivers a commit made through another node, over one real SurrealDB
//! server (`ws://`): task writes through node A's HTTP API at a steady rate, one client
//! following the event on node B (it learns of A's commits through its heads poller) and one
//! on node A (woken by its own commit), each measuring write → client latency.
//!
//! Needs the SurrealDB server binary (see `tests::surreal::BUILD`). Both nodes and the load
//! run in this process, on the same two cores as the database server.
//!
//! Run: `cargo bench -p benches --bench nodes -- [WRITES] [WRITES_PER_S]` (defaults 1000 100).
//! All traffic stays on 127.0.0.1; every loop is bounded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tests::{Received, SyncClient, quantile, stage, surreal::SurrealServer};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Reads `client`'s frames until it has seen `writes` tasks titled `t <send time µs>`;
/// returns their latencies, sorted.
async fn latencies(mut client: SyncClient, writes: usize) -> Vec<Duration> {
    let mut seen = Vec::with_capacity(writes);
    while seen.len() < writes {
        let Received::Message(m) = client.recv().await else { panic!("the client was closed") };
        let at = now_us();
        for c in m["changes"].as_array().into_iter().flatten() {
            if let Some(sent) = c["data"]["title"].as_str().and_then(|t| t.strip_prefix("t ")?.parse::<u64>().ok()) {
                seen.push(Duration::from_micros(at.saturating_sub(sent)));
            }
        }
    }
    seen.sort();
    seen
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let writes: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100).max(1);
    let db = SurrealServer::start().await;
    let (a, b) = (db.node().await, db.node().await);
    let s = stage(&a).await;
    println!("nodes: {writes} task writes through node A at {rate}/s; clients on node B and on node A");

    let mut readers = Vec::new();
    for node in [&b, &a] {
        let mut c = SyncClient::connect(node, &s.pm.token).await;
        c.subscribe(&s.event, None).await;
        readers.push(tokio::spawn(latencies(c, writes)));
    }
    let api = a.anonymous().with_token(&s.pm.token);
    let path = format!("/v1/events/{}/tasks", s.event);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let started = std::time::Instant::now();
    for _ in 0..writes {
        tick.tick().await;
        api.post(&path, json!({ "collaborator": s.prod, "title": format!("t {}", now_us()) })).await.ok();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("written: {writes} in {secs:.2} s ({:.0}/s)", writes as f64 / secs);
    for (name, reader) in ["other node (B)", "same node (A)"].into_iter().zip(readers) {
        let l = reader.await.expect("reader");
        let ms = |q: f64| quantile(&l, q).as_secs_f64() * 1000.0;
        println!(
            "write → client on {name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            ms(0.5),
            ms(0.99),
            ms(1.0),
            l.len()
        );
    }
}
