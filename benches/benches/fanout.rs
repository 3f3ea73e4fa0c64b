//! Load generator for the sync feed, against the real server over loopback.
//!
//! The server runs in a child process (this same binary, started with
//! `BACKOPS_FANOUT_SERVE=mem|surrealkv`), so its memory and CPU are measured apart from the
//! clients'. N WebSocket clients follow one event — about 5% Event Pro seat holders, the rest
//! spread over 20 collaborators — and ping at the announced heartbeat like real devices.
//!
//! 1. Sustained: task writes through the HTTP API at W per second for S seconds, shared by
//!    WRITERS concurrent HTTP clients (default 64).
//!    Every task's title carries its send time, so each client measures write → client
//!    latency (p50/p99/max); reports achieved writes/s, deliveries/s and the server's CPU.
//!    With PACED > 0 the writes are pushed instead, as one device does: PACED task creates in
//!    one push every 200 ms over a seat holder's sync socket, for S seconds (WRITES_PER_S and
//!    WRITERS are then unused).
//! 2. Burst: one seat holder pushes B task creates over its sync socket in batches; reports
//!    how fast the server delivers them to every client that may see them (records/s).
//! 3. Ceiling: a bare tokio-tungstenite server (in this process) broadcasting pre-serialized
//!    frames of one change to N clients.
//!
//! Idle memory: the server process's RSS growth per subscribed connection.
//!
//! Run: `cargo bench -p benches --bench fanout -- CLIENTS WRITES_PER_S SECONDS [mem|surrealkv] [BURST] [WRITERS] [PACED]`
//! (defaults 1000 1000 10 surrealkv 20000 64 0). All traffic stays on 127.0.0.1; every loop is bounded.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{
    TestServer,
    bench::{COLLABORATORS, Ws, cpu_secs, follow},
};
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Clients ping this often (the server's heartbeat is 15 s; it closes after three silent ones).
const PING_EVERY: Duration = Duration::from_secs(10);

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
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
    /// Deliveries of burst records (titles `b:`).
    burst: AtomicU64,
    /// When the last delivery arrived (µs since the epoch).
    last_us: AtomicU64,
}

/// Reads one client's frames until `stop`, pinging at the heartbeat.
fn read_latencies(ws: Ws, stats: Arc<Stats>, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut tx, mut rx) = ws.split();
        let mut stop = stop;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut mine = Vec::new();
        loop {
            let msg = tokio::select! {
                _ = stop.changed() => break,
                _ = ping.tick() => {
                    if tx.send(Message::Text(r#"{"type":"ping"}"#.into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                m = rx.next() => match m {
                    Some(Ok(m)) => m,
                    _ => break,
                },
            };
            let Message::Text(t) = msg else { continue };
            let v: Value = match serde_json::from_str(&t) {
                Ok(v) => v,
                Err(_) => continue,
            };
            let at = now_us();
            for c in v["changes"].as_array().into_iter().flatten() {
                let Some(title) = c["data"]["title"].as_str() else { continue };
                if let Some(sent) = title.strip_prefix("t:").and_then(|s| s.parse::<u64>().ok()) {
                    mine.push(at.saturating_sub(sent));
                    stats.deliveries.fetch_add(1, Ordering::Relaxed);
                    stats.last_us.fetch_max(at, Ordering::Relaxed);
                } else if title.starts_with("b:") {
                    stats.burst.fetch_add(1, Ordering::Relaxed);
                    stats.last_us.fetch_max(at, Ordering::Relaxed);
                }
            }
        }
        stats.latencies_us.lock().unwrap().extend(mine);
    })
}

#[tokio::main]
async fn main() {
    let served = tests::bench::serve_if_child(|config| {
        config.sync.queue_frames_max = 4096;
        // For A/B runs of the frame size (e.g. 1048576: frames bounded by record counts only).
        if let Some(bytes) = std::env::var("BACKOPS_FANOUT_FRAME_TARGET").ok().and_then(|v| v.parse().ok()) {
            config.sync.frame_out_bytes_target = bytes;
        }
    })
    .await;
    if served {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let store = args.get(3).cloned().unwrap_or_else(|| "surrealkv".into());
    let burst: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let writers: u64 = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(64);
    let paced: u64 = args.get(6).and_then(|a| a.parse().ok()).unwrap_or(0);
    let seats = (clients / 20).max(1);
    println!(
        "fanout: {clients} clients ({seats} seat holders), {} for {secs} s, burst {burst}, store {store}",
        if paced > 0 {
            format!("one device pushing {paced} every 200 ms")
        } else {
            format!("{rate} writes/s by {writers} writers")
        }
    );

    let (mut child, base) = tests::bench::spawn_server(&store);
    let pid = child.id().to_string();
    let srv = TestServer::attach(&base);
    let setup = Instant::now();
    let crowd = tests::bench::Crowd::gather(&srv, clients).await;
    println!("setup: {clients} accounts in {:.1} s", setup.elapsed().as_secs_f64());
    let tests::bench::Crowd { owner, event, collaborators: collabs, tokens, members, .. } = &crowd;
    let (event, collabs, members) = (event.clone(), collabs.clone(), members.clone());

    // Idle memory of the server per subscribed connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = tests::bench::status_kib(&pid, "VmRSS:");
    let own_before = tests::bench::status_kib("self", "VmRSS:");
    let url = srv.sync_url();
    let mut sockets = Vec::with_capacity(clients);
    for t in tokens {
        sockets.push(follow(&url, t, &event).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = tests::bench::status_kib(&pid, "VmRSS:");
    let own_idle = tests::bench::status_kib("self", "VmRSS:");
    println!(
        "server rss: {rss_before} KiB before, {rss_idle} KiB with {clients} idle subscribed connections: {:.1} KiB per connection (clients: {:.1} KiB each)",
        rss_idle.saturating_sub(rss_before) as f64 / clients as f64,
        own_idle.saturating_sub(own_before) as f64 / clients as f64,
    );

    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = sockets.into_iter().map(|ws| read_latencies(ws, stats.clone(), stopped.clone())).collect();

    // 1. Sustained writes: a few HTTP clients share the offered rate; late ticks are not skipped.
    // Many concurrent writers, like many devices: with few, each waiting for its fsynced
    // commit, the generator itself caps the rate near WRITERS / (request latency).
    let writers = writers.max(1);
    let total = rate * secs;
    let sent = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_secs(child.id());
    let started = Instant::now();
    let started_us = now_us();
    let mut handles = Vec::new();
    // Mutation numbers of the seat holder's device ("load"), shared by the paced pushes and
    // the burst: each push's numbers follow the last.
    let mut n0 = 0u64;
    if paced > 0 {
        let pusher = follow(&url, &owner.token, &event).await;
        let (mut out, mut acks) = pusher.split();
        // When each push went, for its ack: push → ack is the server's apply and commit; the
        // rest of write → client is the fan-out.
        let pushed_at = Arc::new(Mutex::new(std::collections::VecDeque::<Instant>::new()));
        let acked = Arc::new(Mutex::new(Vec::<f64>::new()));
        let (at, ack_ms) = (pushed_at.clone(), acked.clone());
        let drain = tokio::spawn(async move {
            while let Some(Ok(m)) = acks.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"ack\"")
                    && serde_json::from_str::<Value>(&t).is_ok_and(|v| v["type"] == "ack")
                    && let Some(sent) = at.lock().unwrap().pop_front()
                {
                    ack_ms.lock().unwrap().push(sent.elapsed().as_secs_f64() * 1000.0);
                }
            }
        });
        let every = Duration::from_millis(200);
        let pushes = secs * 1000 / 200;
        let audience: Vec<u64> = (0..COLLABORATORS).map(|k| crowd.audience(k)).collect();
        for i in 0..pushes {
            tokio::time::sleep_until((started + every * i as u32).into()).await;
            let mutations: Vec<Value> = (n0..n0 + paced)
                .map(|j| {
                    let k = (j as usize) % COLLABORATORS;
                    expected.fetch_add(audience[k], Ordering::Relaxed);
                    json!({ "id": format!("p{j}"), "n": j + 1, "kind": "task", "op": "create",
                            "fields": { "collaborator": collabs[k], "title": format!("t:{}", now_us()) } })
                })
                .collect();
            n0 += paced;
            sent.fetch_add(paced, Ordering::Relaxed);
            let push = json!({ "type": "push", "event": event, "mutations": mutations });
            pushed_at.lock().unwrap().push_back(Instant::now());
            out.send(Message::Text(push.to_string().into())).await.expect("push");
        }
        // The last acks, then push → ack.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pushed_at.lock().unwrap().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut a = acked.lock().unwrap().clone();
        a.sort_by(f64::total_cmp);
        let q = |p: f64| a.get(((a.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN);
        println!("paced: {} pushes of {paced}; push → ack p50 {:.1} ms, p99 {:.1} ms", a.len(), q(0.5), q(0.99));
        handles.push(drain);
    }
    for w in 0..if paced > 0 { 0 } else { writers } {
        let api = owner.api.clone();
        let event = event.clone();
        let collabs = collabs.clone();
        let audience: Vec<u64> = (0..COLLABORATORS).map(|k| crowd.audience(k)).collect();
        let (sent, expected) = (sent.clone(), expected.clone());
        let per = rate as f64 / writers as f64;
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
                    expected.fetch_add(audience[k], Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let drain = if paced > 0 { handles.pop() } else { None };
    for h in handles {
        h.await.expect("writer");
    }
    let write_secs = started.elapsed().as_secs_f64();
    let cpu_writes = cpu_secs(child.id()) - cpu0;
    let want = expected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.deliveries.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = stats.deliveries.load(Ordering::Relaxed);
    if let Some(d) = drain {
        d.abort();
    }
    let span_secs = (stats.last_us.load(Ordering::Relaxed).saturating_sub(started_us)) as f64 / 1e6;
    let writes = sent.load(Ordering::Relaxed);
    println!(
        "sustained: {writes} writes in {write_secs:.2} s ({:.0}/s of {rate} offered); {delivered}/{want} deliveries, the last {span_secs:.2} s after the start ({:.0}/s); server CPU {:.2} s ({:.2} ms per write)",
        writes as f64 / write_secs,
        delivered as f64 / span_secs.max(1e-9),
        cpu_writes,
        cpu_writes * 1000.0 / writes.max(1) as f64,
    );

    // 2. Burst: pushes over one seat holder's socket, as a device reconnecting with its outbox.
    let burst_want = burst_deliveries(burst, crowd.seats as u64, &members);
    if burst > 0 {
        let mut pusher = follow(&url, &owner.token, &event).await;
        let cpu0 = cpu_secs(child.id());
        let b0 = stats.burst.load(Ordering::Relaxed);
        let started = Instant::now();
        let started_us = now_us();
        let batch = 500u64;
        let mut i = 0u64;
        // As the device engine does: up to PUSHES_IN_FLIGHT pushes wait for their acks, so
        // the server applies one while the answer of the other travels.
        let mut in_flight = std::collections::VecDeque::new();
        while i < burst || !in_flight.is_empty() {
            if i < burst && in_flight.len() < engine::device::PUSHES_IN_FLIGHT {
                let n = batch.min(burst - i);
                let mutations: Vec<Value> = (i..i + n)
                    .map(|j| {
                        json!({ "id": format!("b{j}"), "n": n0 + j + 1, "kind": "task", "op": "create",
                                "fields": { "collaborator": collabs[(j as usize) % COLLABORATORS], "title": format!("b:{j}") } })
                    })
                    .collect();
                let push = json!({ "type": "push", "event": event, "mutations": mutations });
                pusher.send(Message::Text(push.to_string().into())).await.expect("push");
                in_flight.push_back(n);
                i += n;
                continue;
            }
            // Wait for the oldest push's ack (the pusher also receives its own changes).
            let Some(Ok(Message::Text(t))) = pusher.next().await else { panic!("pusher closed") };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "ack" {
                let n = in_flight.pop_front().expect("an ack answers a push");
                let ok = v["results"].as_array().map_or(0, |r| r.iter().filter(|r| r["status"] == "accepted").count());
                assert_eq!(ok as u64, n, "every pushed mutation accepted: {v}");
            }
        }
        let push_secs = started.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.burst.load(Ordering::Relaxed) - b0 < burst_want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = stats.burst.load(Ordering::Relaxed) - b0;
        let span = (stats.last_us.load(Ordering::Relaxed).saturating_sub(started_us)) as f64 / 1e6;
        println!(
            "burst: {burst} mutations pushed in {push_secs:.2} s ({:.0}/s); {got}/{burst_want} record deliveries in {span:.2} s ({:.0}/s); server CPU {:.2} s",
            burst as f64 / push_secs,
            got as f64 / span.max(1e-9),
            cpu_secs(child.id()) - cpu0,
        );
    }

    let _ = stop.send(true);
    for r in readers {
        let _ = r.await;
    }
    let mut lat = stats.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    println!(
        "latency write→client: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        percentile(&lat, 0.50) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        lat.len()
    );
    drop(child.stdin.take());
    let _ = child.wait();

    raw_broadcast(clients, want.max(burst_want).max(1)).await;
}

/// Record deliveries a burst of `burst` creates spread round-robin over the collaborators
/// should make: every seat holder sees each, members see their collaborator's.
fn burst_deliveries(burst: u64, seats: u64, members: &[u64]) -> u64 {
    (0..burst).map(|j| seats + members[(j as usize) % COLLABORATORS]).sum()
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
