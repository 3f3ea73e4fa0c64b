//! Abusive clients against the real server (a child process, so its memory is its own), beside
//! an honest one:
//!
//! 1. Flood: FLOODERS clients send pings as fast as their sockets take them; each is closed at
//!    its message limit (4010) or as a slow consumer (4008) and connects again at once, for
//!    SECONDS. Meanwhile an honest seat holder receives task writes (50/s through the HTTP
//!    API); its write → client latency (p50/p99) is compared with the same run without the
//!    flood.
//! 2. Slow consumers: SLOW clients follow the event and then never read, while 200 writes/s
//!    go on for SECONDS; the server's RSS is sampled every second. At the end every slow
//!    client's socket is read to see how it was closed.
//!
//! Run: `cargo bench -p benches --bench abuse -- [SLOW] [FLOODERS] [SECONDS]` (defaults
//! 1000 50 10). All traffic stays on 127.0.0.1; every loop is bounded by time or count.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{TestServer, bench::follow};
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// Writes `rate` tasks a second for `secs` through the HTTP API, each titled with its send
/// time, round-robin over `collaborators`.
async fn write(owner: &tests::User, event: &str, collaborators: &[String], rate: u64, secs: u64) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    for i in 0..rate * secs {
        tick.tick().await;
        let body = json!({ "title": format!("t:{}", now_us()), "collaborator": collaborators[i as usize % collaborators.len()] });
        owner.api.post(&format!("/v1/events/{event}/tasks"), body).await.ok();
    }
}

/// Reads `ws` until `stop`, recording the write → client latency of every task change.
async fn honest_latencies(mut ws: tests::bench::Ws, stop: tokio::sync::watch::Receiver<bool>) -> Vec<u64> {
    let mut lat = Vec::new();
    let mut stop = stop;
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return lat,
            f = ws.next() => f,
        };
        let Some(Ok(Message::Text(t))) = frame else { return lat };
        let v: Value = serde_json::from_str(&t).expect("json");
        if v["type"] == "changes" {
            let at = now_us();
            for c in v["changes"].as_array().into_iter().flatten() {
                if let Some(sent) = c["data"]["title"].as_str().and_then(|t| t.strip_prefix("t:")?.parse::<u64>().ok())
                {
                    lat.push(at.saturating_sub(sent));
                }
            }
        }
    }
}

/// Connects, says hello and sends pings as fast as the socket takes them until closed; again
/// until `stop`. Returns (pings sent, connections closed by the server).
async fn flood(url: String, token: String, stop: tokio::sync::watch::Receiver<bool>) -> (u64, u64) {
    let (mut sent, mut closed) = (0, 0);
    while !*stop.borrow() {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else { break };
        let hello = json!({ "type": "hello", "protocol": 2, "token": token, "device": "flood" });
        if ws.send(Message::Text(hello.to_string().into())).await.is_err() {
            continue;
        }
        let ping = Message::Text(json!({ "type": "ping" }).to_string().into());
        while !*stop.borrow() && ws.send(ping.clone()).await.is_ok() {
            sent += 1;
        }
        closed += 1;
    }
    (sent, closed)
}

/// One run of the honest client beside `flooders` flooding clients; returns the latencies.
async fn honest_run(srv: &TestServer, crowd: &tests::bench::Crowd, flooders: usize, secs: u64) -> (Vec<u64>, u64, u64) {
    let url = srv.sync_url();
    let honest = follow(&url, &crowd.owner.token, &crowd.event).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(honest_latencies(honest, stopped.clone()));
    let floods: Vec<_> = (0..flooders)
        .map(|i| tokio::spawn(flood(url.clone(), crowd.tokens[i % crowd.tokens.len()].clone(), stopped.clone())))
        .collect();
    write(&crowd.owner, &crowd.event, &crowd.collaborators, 50, secs).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let (mut sent, mut closed) = (0, 0);
    for f in floods {
        let (s, c) = f.await.unwrap_or((0, 0));
        sent += s;
        closed += c;
    }
    let mut lat = reader.await.unwrap_or_default();
    lat.sort_unstable();
    (lat, sent, closed)
}

#[tokio::main]
async fn main() {
    if tests::bench::serve_if_child(|_| {}).await {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let slow: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let flooders: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    println!("abuse: {slow} slow consumers, {flooders} flooders, {secs} s each phase, store surrealkv");
    let (child, base) = tests::bench::spawn_server("surrealkv");
    let pid = child.id().to_string();
    let srv = TestServer::attach(&base);
    let crowd = tests::bench::Crowd::gather(&srv, slow.max(flooders)).await;

    // 1. The honest client alone, then beside the flood.
    let (quiet, _, _) = honest_run(&srv, &crowd, 0, secs).await;
    let (flooded, sent, closed) = honest_run(&srv, &crowd, flooders, secs).await;
    println!(
        "honest write → client, alone: p50 {:.1} ms, p99 {:.1} ms ({} samples)",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        quiet.len()
    );
    println!(
        "honest write → client, beside {flooders} flooders: p50 {:.1} ms, p99 {:.1} ms ({} samples); the flooders sent {sent} pings and were closed {closed} times",
        percentile(&flooded, 0.5),
        percentile(&flooded, 0.99),
        flooded.len()
    );

    // 2. Slow consumers.
    let url = srv.sync_url();
    let rss0 = tests::bench::status_kib(&pid, "VmRSS:");
    let mut sockets = Vec::with_capacity(slow);
    for t in crowd.tokens.iter().take(slow) {
        sockets.push(follow(&url, t, &crowd.event).await);
    }
    let rss_connected = tests::bench::status_kib(&pid, "VmRSS:");
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let (pid, samples) = (pid.clone(), samples.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => samples.lock().unwrap().push(tests::bench::status_kib(&pid, "VmRSS:")),
                    _ = stopped.changed() => return,
                }
            }
        })
    };
    let started = Instant::now();
    write(&crowd.owner, &crowd.event, &crowd.collaborators, 200, secs).await;
    let wrote = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = sampler.await;
    let samples = samples.lock().unwrap().clone();
    // How each slow client was closed: read what its socket holds, up to the close.
    let codes = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let codes = codes.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                        Ok(Some(Ok(Message::Close(Some(f))))) => {
                            if u16::from(f.code) == engine::protocol::close::SLOW_CONSUMER {
                                codes.fetch_add(1, Ordering::Relaxed);
                            }
                            return;
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => return,
                    }
                }
            })
        })
        .collect();
    for r in readers {
        let _ = r.await;
    }
    let max = samples.iter().copied().max().unwrap_or(0);
    let last = samples.last().copied().unwrap_or(0);
    println!(
        "slow consumers: {slow} connected (server RSS {rss0} → {rss_connected} KiB); {} writes in {wrote:.1} s; RSS each second (KiB): {samples:?}; max {max}, last {last}; {} of {slow} closed as slow consumers (4008)",
        200 * secs,
        codes.load(Ordering::Relaxed)
    );
    drop(child);
}
