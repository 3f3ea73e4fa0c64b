//! How soon a sync node delivers a commit made through another node, over one real SurrealDB
//! server (`ws://`): task writes through node A's HTTP API at a steady rate, one client
//! following the event on node B (it learns of A's commits through its heads poller) and one
//! on node A (woken by its own commit), each measuring write → client latency.
//!
//! Needs the SurrealDB server binary (see `tests::surreal::BUILD`). Both nodes and the load
//! run in this process, on the same two cores as the database server.
//!
//! Run: `cargo bench -p benches --bench nodes -- [WRITES] [WRITES_PER_S]` (defaults 1000 100).
//!
//! `split`: the fan-out workload on 1, 2 and 3 sync nodes over one SurrealDB server, in one
//! run. Each node is a process of its own (this binary again), so the nodes' CPU is measured
//! apart from the load's. CLIENTS clients (5% seat holders, the rest members of 20
//! collaborators) are spread round-robin over the nodes; WRITERS HTTP writers, also spread
//! over the nodes, write tasks at WRITES_PER_S for SECONDS. Reports writes/s, write → client
//! latency for clients on the writer's node and on another node, and the CPU per write of
//! the nodes (all together) and of the database server.
//!
//! Run: `cargo bench -p benches --bench nodes -- split [CLIENTS] [WRITES_PER_S] [SECONDS] [WRITERS]`
//! (defaults 300 200 10 12).
//!
//! `poller`: what following many events costs a node. Node B (a process of its own) follows
//! EVENTS events (clients of 50 subscriptions each) while nothing is written: its CPU and the
//! database server's over SECONDS are the heads poller's. Then 200 writes at 20/s, spread over
//! the events through node A: write → client latency on node B.
//!
//! Run: `cargo bench -p benches --bench nodes -- poller [EVENTS] [SECONDS]` (defaults 500 10).
//! All traffic stays on 127.0.0.1; every loop is bounded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tests::{
    Received, SyncClient,
    bench::{COLLABORATORS, Crowd, Ws, cpu_secs, follow},
    quantile, stage,
    surreal::{NODE_DATABASE_URL, SurrealServer},
};

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
    // A node of the split workload, started by the run below.
    if std::env::var_os(NODE_DATABASE_URL).is_some() {
        tests::surreal::serve_node_process().await;
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().map(String::as_str) == Some("split") {
        let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
        let (clients, rate, secs, writers) = (arg(1, 300) as usize, arg(2, 200), arg(3, 10), arg(4, 12));
        println!("split: {clients} clients, {rate} writes/s for {secs} s by {writers} writers, on 1, 2 and 3 nodes");
        for nodes in 1..=3 {
            split(nodes, clients, rate, secs, writers).await;
        }
        return;
    }
    if args.first().map(String::as_str) == Some("poller") {
        let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
        poller(arg(1, 500) as usize, arg(2, 10)).await;
        return;
    }
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

/// Write → client latencies (µs), of deliveries on the writer's node and on another.
#[derive(Default)]
struct Latencies {
    same: Mutex<Vec<u64>>,
    other: Mutex<Vec<u64>>,
    deliveries: AtomicU64,
}

/// Reads a client on node `node` until `stop`: each task titled `t:<writer node>:<µs>`.
fn read(
    ws: Ws,
    node: usize,
    lat: Arc<Latencies>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (_tx, mut rx) = ws.split();
        let mut stop = stop;
        let (mut same, mut other) = (Vec::new(), Vec::new());
        loop {
            let msg = tokio::select! {
                _ = stop.changed() => break,
                m = rx.next() => match m {
                    Some(Ok(m)) => m,
                    _ => break,
                },
            };
            let tokio_tungstenite::tungstenite::Message::Text(t) = msg else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
            let at = now_us();
            for c in v["changes"].as_array().into_iter().flatten() {
                let Some(title) = c["data"]["title"].as_str() else { continue };
                let mut parts = title.strip_prefix("t:").unwrap_or_default().split(':');
                let (Some(Ok(w)), Some(Ok(sent))) =
                    (parts.next().map(str::parse::<usize>), parts.next().map(str::parse::<u64>))
                else {
                    continue;
                };
                if w == node { &mut same } else { &mut other }.push(at.saturating_sub(sent));
                lat.deliveries.fetch_add(1, Ordering::Relaxed);
            }
        }
        lat.same.lock().unwrap().extend(same);
        lat.other.lock().unwrap().extend(other);
    })
}

/// The fan-out workload on `nodes` sync nodes (child processes) over one fresh SurrealDB server.
async fn split(nodes: usize, clients: usize, rate: u64, secs: u64, writers: u64) {
    let db = SurrealServer::start().await;
    let exe = std::env::current_exe().expect("exe").display().to_string();
    let mut children = Vec::new();
    for _ in 0..nodes {
        children.push(db.spawn_node(&exe).await);
    }
    let front = &children[0].server;
    let crowd = Crowd::gather(front, clients).await;
    let lat = Arc::new(Latencies::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for (i, token) in crowd.tokens.iter().enumerate() {
        let node = i % nodes;
        let ws = follow(&children[node].server.sync_url(), token, &crowd.event).await;
        readers.push(read(ws, node, lat.clone(), stopped.clone()));
    }
    let audience: Vec<u64> = (0..COLLABORATORS).map(|k| crowd.audience(k)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pids: Vec<u32> = children.iter().map(|c| c.pid()).collect();
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let (nodes_cpu0, db_cpu0) = (cpu(&pids), cpu_secs(db.pid()));
    let (sent, expected) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let total = rate * secs;
    let mut handles = Vec::new();
    // Each write goes to the next collaborator, whichever node it is written through.
    let next = Arc::new(AtomicU64::new(0));
    for w in 0..writers {
        let node = w as usize % nodes;
        let api = children[node].server.anonymous().with_token(&crowd.owner.token);
        let (event, collabs, audience) = (crowd.event.clone(), crowd.collaborators.clone(), audience.clone());
        let (sent, expected, next) = (sent.clone(), expected.clone(), next.clone());
        let per = rate as f64 / writers as f64;
        handles.push(tokio::spawn(async move {
            for i in 0..total / writers {
                tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / per)).into()).await;
                let k = next.fetch_add(1, Ordering::Relaxed) as usize % COLLABORATORS;
                let title = format!("t:{node}:{}", now_us());
                let r = api
                    .post(&format!("/v1/events/{event}/tasks"), json!({ "collaborator": collabs[k], "title": title }))
                    .await;
                if r.status == 201 {
                    sent.fetch_add(1, Ordering::Relaxed);
                    expected.fetch_add(audience[k], Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("writer");
    }
    let write_secs = started.elapsed().as_secs_f64();
    let want = expected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while lat.deliveries.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (nodes_cpu, db_cpu) = (cpu(&pids) - nodes_cpu0, cpu_secs(db.pid()) - db_cpu0);
    let _ = stop.send(true);
    for r in readers {
        let _ = r.await;
    }
    let writes = sent.load(Ordering::Relaxed);
    let q = |v: &Mutex<Vec<u64>>| {
        let mut v = v.lock().unwrap().clone();
        v.sort_unstable();
        if v.is_empty() {
            return "—".to_string();
        }
        let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
        format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)", at(0.5), at(0.99), at(1.0), v.len())
    };
    println!(
        "{nodes} node(s): {writes} writes in {write_secs:.2} s ({:.0}/s of {rate} offered); {}/{want} deliveries",
        writes as f64 / write_secs,
        lat.deliveries.load(Ordering::Relaxed),
    );
    println!("  write → client on the writer's node: {}", q(&lat.same));
    println!("  write → client on another node:      {}", q(&lat.other));
    println!(
        "  CPU per write: nodes {:.2} ms (all {nodes} together), database server {:.2} ms",
        nodes_cpu * 1000.0 / writes.max(1) as f64,
        db_cpu * 1000.0 / writes.max(1) as f64,
    );
}

/// Subscriptions per poller client (the socket allows 64).
const EVENTS_PER_CLIENT: usize = 50;

/// A client following `events` (each from its snapshot's end).
async fn follow_many(url: &str, token: &str, events: &[String]) -> Ws {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let hello = json!({ "type": "hello", "protocol": 1, "token": token, "device": "poller" });
    ws.send(Message::Text(hello.to_string().into())).await.expect("hello");
    for e in events {
        ws.send(Message::Text(json!({ "type": "subscribe", "event": e }).to_string().into())).await.expect("sub");
    }
    let mut done = 0;
    while done < events.len() {
        let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("closed during snapshots") };
        let v: Value = serde_json::from_str(&t).expect("json");
        if v["type"] == "snapshot" && v["last"] == true {
            done += 1;
        }
    }
    ws
}

async fn poller(events: usize, secs: u64) {
    let db = SurrealServer::start().await;
    let exe = std::env::current_exe().expect("exe").display().to_string();
    let (a, b) = (db.spawn_node(&exe).await, db.spawn_node(&exe).await);
    let owner = a.server.sign_up("Owner").await;
    let org = owner.personal_org().await;
    let license = owner.ready_org(&org, 1).await;
    let mut ids = Vec::new();
    let mut firsts = Vec::new();
    for i in 0..events {
        let (ev, collab) = owner.create_event(&org, &license, &format!("Show {i}")).await;
        ids.push(ev);
        firsts.push(collab);
    }
    let lat = Arc::new(Latencies::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for chunk in ids.chunks(EVENTS_PER_CLIENT) {
        let ws = follow_many(&b.server.sync_url(), &owner.token, chunk).await;
        readers.push(read(ws, 1, lat.clone(), stopped.clone()));
    }
    println!("poller: node B follows {events} events ({} clients); nothing written for {secs} s", readers.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b0, a0, d0) = (cpu_secs(b.pid()), cpu_secs(a.pid()), cpu_secs(db.pid()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let per_s = |x: f64| x * 1000.0 / secs as f64;
    println!(
        "  idle CPU: node B (following) {:.1} ms/s, node A (following nothing) {:.1} ms/s, database server {:.1} ms/s",
        per_s(cpu_secs(b.pid()) - b0),
        per_s(cpu_secs(a.pid()) - a0),
        per_s(cpu_secs(db.pid()) - d0),
    );
    let api = a.server.anonymous().with_token(&owner.token);
    const WRITES: usize = 200;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..WRITES {
        tick.tick().await;
        let (ev, collab) = (&ids[i * 7 % events], &firsts[i * 7 % events]);
        api.post(
            &format!("/v1/events/{ev}/tasks"),
            json!({ "collaborator": collab, "title": format!("t:0:{}", now_us()) }),
        )
        .await
        .ok();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (lat.deliveries.load(Ordering::Relaxed) as usize) < WRITES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    for r in readers {
        let _ = r.await;
    }
    let mut l = lat.other.lock().unwrap().clone();
    l.sort_unstable();
    let at = |p: f64| l.get(((l.len().max(1) as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "  {WRITES} writes at 20/s over the events through node A → node B: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        l.len()
    );
}
