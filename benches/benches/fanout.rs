//! Load generator for the sync feed, against the real server over loopback.
//!
//! N WebSocket clients follow one event — about 5% Event Pro seat holders, the rest spread
//! over 20 collaborators — while task writes go through the HTTP API at W per second for S
//! seconds. Every task's title carries its send time, so each client measures write → client
//! latency. Reports latency p50/p99/max, deliveries/s, and process RSS per idle connection;
//! then the same number of clients fed by a raw tokio-tungstenite broadcast of pre-serialized
//! frames, as the ceiling.
//!
//! Run: `cargo bench -p benches --bench fanout -- CLIENTS WRITES_PER_S SECONDS [mem|surrealkv]`
//! (defaults 1000 1000 10 surrealkv). All traffic stays on 127.0.0.1; every loop is bounded.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::TestServer;
use tokio_tungstenite::tungstenite::Message;

const COLLABORATORS: usize = 20;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Default)]
struct Stats {
    latencies_us: Mutex<Vec<u64>>,
    deliveries: AtomicU64,
}

/// Client sockets with small buffers, so that RSS per connection is mostly the server's.
fn small_buffers() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn follow(url: &str, token: &str, event: &str) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(small_buffers()), false).await.expect("connect");
    let hello = json!({ "type": "hello", "protocol": 1, "token": token, "device": "load" });
    ws.send(Message::Text(hello.to_string().into())).await.expect("hello");
    ws.send(Message::Text(json!({ "type": "subscribe", "event": event }).to_string().into())).await.expect("sub");
    // Wait for the end of the snapshot.
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("closed during snapshot") };
        let v: Value = serde_json::from_str(&t).expect("json");
        if v["type"] == "snapshot" && v["last"] == true {
            return ws;
        }
    }
}

fn read_latencies(mut ws: Ws, stats: Arc<Stats>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut mine = Vec::new();
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            let Message::Text(t) = msg else { continue };
            let v: Value = match serde_json::from_str(&t) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let at = now_us();
            for c in v["changes"].as_array().into_iter().flatten() {
                if let Some(sent) =
                    c["data"]["title"].as_str().and_then(|t| t.strip_prefix("t:")).and_then(|s| s.parse::<u64>().ok())
                {
                    mine.push(at.saturating_sub(sent));
                    stats.deliveries.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        stats.latencies_us.lock().unwrap().extend(mine);
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let store = args.get(3).cloned().unwrap_or_else(|| "surrealkv".into());
    let seats = (clients / 20).max(1);
    println!("fanout: {clients} clients ({seats} seat holders), {rate} writes/s for {secs} s, store {store}");

    let dir = tempfile::tempdir().expect("dir");
    let srv = TestServer::start_with(|c| {
        if store == "surrealkv" {
            c.database_url = format!("surrealkv://{}", dir.path().join("db").display());
        }
        c.sync.queue_frames_max = 4096;
    })
    .await;
    let owner = srv.sign_up("Owner").await;
    let org = owner.personal_org().await;
    let license = owner.ready_org(&org, seats as i64 + 1).await;
    let (event, _) = owner.create_event(&org, &license, "Load").await;
    let mut collabs = Vec::new();
    for i in 0..COLLABORATORS {
        let c =
            owner.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": format!("C{i}") })).await.ok();
        collabs.push(c["id"].as_str().unwrap().to_string());
    }
    let setup = Instant::now();
    let mut tokens = Vec::with_capacity(clients);
    for i in 0..clients {
        let u = srv.sign_up(&format!("p{i}")).await;
        if i < seats {
            owner.api.post(&format!("/v1/events/{event}/seats"), json!({ "email": u.email })).await.ok();
        } else {
            let c = &collabs[i % COLLABORATORS];
            owner
                .api
                .post(&format!("/v1/events/{event}/collaborators/{c}/members"), json!({ "email": u.email }))
                .await
                .ok();
        }
        tokens.push(u.token);
    }
    println!("setup: {clients} accounts in {:.1} s", setup.elapsed().as_secs_f64());

    let rss_before = rss_kib();
    let url = srv.sync_url();
    let mut sockets = Vec::with_capacity(clients);
    for t in &tokens {
        sockets.push(follow(&url, t, &event).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib();
    let per_conn = (rss_idle.saturating_sub(rss_before)) as f64 / clients as f64;
    println!(
        "rss: {rss_before} KiB before, {rss_idle} KiB with {clients} idle subscribed connections: {per_conn:.1} KiB per connection (server and client sides, one process)"
    );

    let stats = Arc::new(Stats::default());
    let readers: Vec<_> = sockets.into_iter().map(|ws| read_latencies(ws, stats.clone())).collect();

    // Writers: a few HTTP clients share the offered rate; ticks that fall behind are skipped.
    let writers = 8u64;
    let total = rate * secs;
    let sent = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let api = owner.api.clone();
        let event = event.clone();
        let collabs = collabs.clone();
        let (sent, expected) = (sent.clone(), expected.clone());
        let per = rate as f64 / writers as f64;
        // Members of collaborator k: clients i >= seats with i % COLLABORATORS == k.
        let members: Vec<u64> =
            (0..COLLABORATORS).map(|k| (seats..clients).filter(|i| i % COLLABORATORS == k).count() as u64).collect();
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while i < total / writers {
                let due = started + Duration::from_secs_f64(i as f64 / per);
                tokio::time::sleep_until(due.into()).await;
                let k = ((w + i * writers) as usize) % COLLABORATORS;
                let c = &collabs[k];
                let r = api
                    .post(
                        &format!("/v1/events/{event}/tasks"),
                        json!({ "collaborator": c, "title": format!("t:{}", now_us()) }),
                    )
                    .await;
                if r.status == 201 {
                    sent.fetch_add(1, Ordering::Relaxed);
                    expected.fetch_add(seats as u64 + members[k], Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for h in handles {
        h.await.expect("writer");
    }
    let write_secs = started.elapsed().as_secs_f64();
    let want = expected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.deliveries.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered_secs = started.elapsed().as_secs_f64();
    let delivered = stats.deliveries.load(Ordering::Relaxed);
    drop(srv);
    for r in readers {
        let _ = r.await;
    }
    let mut lat = stats.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let writes = sent.load(Ordering::Relaxed);
    println!(
        "backops: {writes} writes in {write_secs:.2} s ({:.0}/s); {delivered}/{want} deliveries in {delivered_secs:.2} s ({:.0}/s)",
        writes as f64 / write_secs,
        delivered as f64 / delivered_secs
    );
    println!(
        "latency write→client: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.50) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );

    raw_broadcast(clients, want.max(1)).await;
}

/// The ceiling: a bare tokio-tungstenite server that sends pre-serialized frames to every
/// client, `deliveries` deliveries in all, as fast as the clients take them.
async fn raw_broadcast(clients: usize, deliveries: u64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let frames = (deliveries / clients as u64).max(1);
    let (tx, _) = tokio::sync::broadcast::channel::<tokio_tungstenite::tungstenite::Utf8Bytes>(frames as usize + 1);
    let accepted = Arc::new(AtomicU64::new(0));
    {
        let tx = tx.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            for _ in 0..clients {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let mut rx = tx.subscribe();
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                    while let Ok(f) = rx.recv().await {
                        if ws.send(Message::Text(f)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let got = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await.expect("connect");
        let got = got.clone();
        readers.push(tokio::spawn(async move {
            let mut n = 0;
            while n < frames {
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => {
                        n += 1;
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
        }));
    }
    while accepted.load(Ordering::Relaxed) < clients as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let frame = json!({ "type": "changes", "event": "e", "cursor": 1, "changes": [
        { "op": "upsert", "seq": 1, "kind": "task", "id": "01a2", "data": { "title": "t:0", "status": "todo" } } ] })
    .to_string();
    let started = Instant::now();
    for _ in 0..frames {
        let _ = tx.send(tokio_tungstenite::tungstenite::Utf8Bytes::from(frame.clone()));
    }
    for r in readers {
        let _ = r.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = got.load(Ordering::Relaxed);
    println!("raw broadcast: {n} deliveries to {clients} clients in {secs:.2} s ({:.0}/s)", n as f64 / secs);
}
