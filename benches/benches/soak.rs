//! A soak: the real server (a child process on SurrealKV, so its memory is its own) under a
//! mixed workload for MINUTES, sampled every 10 s.
//!
//! The workload, all at once:
//! - 200 clients follow the event and read everything they are sent; the owner's own
//!   follower measures write → client latency (p50/p99 per window);
//! - HTTP: 20 task creates and 10 task updates a second, a dashboard read every 2 s;
//! - 10 devices each push a batch of 5 numbered mutations (3 creates, 2 updates of their
//!   own tasks) every second and wait for the ack (push → ack latency per window);
//! - 10 clients leave and come back every 10 s, resuming from their cursor;
//! - a member's new phone joins with a fresh snapshot every 30 s;
//! - a photo (about 150 KiB, with metadata to strip) is uploaded every 5 s;
//! - 50 clients follow the event and never read again (the first 13 are seat holders, who
//!   see every change): slow consumers, to be closed at the queue limit (4008) once the
//!   kernel's socket buffers are full.
//!
//! Every 10 s it prints the server's RSS, its CPU in the window, the latencies (the slowest
//! dashboard read and the new phone's snapshot too), what was done and every error; at the
//! end a summary comparing the first and last five minutes.
//!
//! Run: `cargo bench -p benches --bench soak -- [MINUTES]` (default 30). All traffic stays on
//! 127.0.0.1; every loop is bounded by the run's end.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{
    TestServer,
    bench::{Crowd, Ws, follow},
};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SAMPLE: Duration = Duration::from_secs(10);
const FOLLOWERS: usize = 200;
const SLOW: usize = 50;
const DEVICES: usize = 10;
const RETURNING: usize = 10;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// What happened in one window of [`SAMPLE`].
#[derive(Default, Clone)]
struct Window {
    /// Write → the owner's follower, µs.
    delivered: Vec<u64>,
    /// Push → ack, µs.
    acked: Vec<u64>,
    http_writes: u64,
    mutations: u64,
    reads: u64,
    read_ms: Vec<u64>,
    uploads: u64,
    upload_ms: Vec<u64>,
    returns: u64,
    joins: u64,
    join_ms: Vec<u64>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Window>>;

fn record(w: &Shared, f: impl FnOnce(&mut Window)) {
    f(&mut w.lock().unwrap())
}

fn error(w: &Shared, what: String) {
    record(w, |w| {
        if w.errors.len() < 20 {
            w.errors.push(what)
        }
    })
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// Task creates and updates through the HTTP API: `creates` and `updates` a second.
async fn http_writes(crowd: Arc<Crowd>, w: Shared, stop: watch::Receiver<bool>, creates: u64, updates: u64) {
    let path = format!("/v1/events/{}/tasks", crowd.event);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / (creates + updates)));
    let mut recent: Vec<String> = Vec::new();
    let mut i = 0u64;
    while !*stop.borrow() {
        tick.tick().await;
        i += 1;
        let update = i % (creates + updates) < updates && !recent.is_empty();
        let title = format!("t:{}", now_us());
        let reply = if update {
            let id = &recent[(i as usize * 7) % recent.len()];
            crowd.owner.api.patch(&format!("{path}/{id}"), json!({ "title": title })).await
        } else {
            let collab = &crowd.collaborators[i as usize % crowd.collaborators.len()];
            crowd.owner.api.post(&path, json!({ "title": title, "collaborator": collab })).await
        };
        if reply.status / 100 == 2 {
            if !update && let Some(id) = reply.body["id"].as_str() {
                recent.push(id.to_string());
                if recent.len() > 500 {
                    recent.remove(0);
                }
            }
            record(&w, |w| w.http_writes += 1);
        } else {
            error(&w, format!("HTTP write {}: {}", reply.status, reply.body));
        }
    }
}

/// A dashboard read every 2 s.
async fn reads(crowd: Arc<Crowd>, w: Shared, stop: watch::Receiver<bool>) {
    let path = format!("/v1/events/{}/dashboard", crowd.event);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    while !*stop.borrow() {
        tick.tick().await;
        let started = Instant::now();
        let reply = crowd.owner.api.get(&path).await;
        let ms = started.elapsed().as_millis() as u64;
        match reply.status {
            200 => record(&w, |w| {
                w.reads += 1;
                w.read_ms.push(ms)
            }),
            s => error(&w, format!("dashboard read {s}")),
        }
    }
}

/// How often the clients say `ping` (the server's heartbeat is 15 s).
const PING: Duration = Duration::from_secs(10);

fn ping() -> Message {
    Message::Text(json!({ "type": "ping" }).to_string().into())
}

/// The owner's follower: write → client latency of every task titled with its send time.
async fn owner_follower(mut ws: Ws, w: Shared, mut stop: watch::Receiver<bool>) {
    let mut heartbeat = tokio::time::interval(PING);
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return,
            _ = heartbeat.tick() => {
                let _ = ws.send(ping()).await;
                continue;
            }
            f = ws.next() => f,
        };
        let Some(Ok(Message::Text(t))) = frame else {
            error(&w, "the owner's follower was disconnected".into());
            return;
        };
        let at = now_us();
        let v: Value = serde_json::from_str(&t).unwrap_or_default();
        if v["type"] == "changes" {
            let lat: Vec<u64> = v["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["data"]["title"].as_str()?.strip_prefix("t:")?.parse::<u64>().ok())
                .map(|sent| at.saturating_sub(sent))
                .collect();
            record(&w, |w| w.delivered.extend(lat));
        }
    }
}

/// A follower that reads and drops everything until `stop`.
async fn reader(mut ws: Ws, w: Shared, mut stop: watch::Receiver<bool>) {
    let mut heartbeat = tokio::time::interval(PING);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = heartbeat.tick() => {
                let _ = ws.send(ping()).await;
            }
            f = ws.next() => match f {
                Some(Ok(Message::Close(c))) => {
                    error(&w, format!("a follower was closed: {c:?}"));
                    return;
                }
                Some(Ok(_)) => {}
                _ => {
                    error(&w, "a follower's socket failed".into());
                    return;
                }
            },
        }
    }
}

/// A slow consumer: says `ping` on time, as a phone's app does, but never reads. Returns its
/// socket at `stop`.
async fn never_reads(mut ws: Ws, mut stop: watch::Receiver<bool>) -> Ws {
    let mut heartbeat = tokio::time::interval(PING);
    loop {
        tokio::select! {
            _ = stop.changed() => return ws,
            _ = heartbeat.tick() => {
                if ws.send(ping()).await.is_err() {
                    let _ = stop.changed().await;
                    return ws;
                }
            }
        }
    }
}

/// The cursor a follower holds after reading up to now: the last `changes` cursor it saw.
async fn drain(ws: &mut Ws, event: &str, mut cursor: i64) -> i64 {
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            if v["event"] == event && v["cursor"].is_i64() {
                cursor = cursor.max(v["cursor"].as_i64().unwrap_or(cursor));
            }
        }
    }
    cursor
}

async fn hello(url: &str, token: &str, device: &str) -> Option<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    let hello =
        json!({ "type": "hello", "protocol": engine::protocol::PROTOCOL_VERSION, "token": token, "device": device });
    ws.send(Message::Text(hello.to_string().into())).await.ok()?;
    Some(ws)
}

/// Waits for the frame of `kind`, dropping others; None if the socket ends first.
async fn next_of(ws: &mut Ws, kind: &str) -> Option<Value> {
    loop {
        let Message::Text(t) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.ok()??.ok()? else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).ok()?;
        if v["type"] == kind {
            return Some(v);
        }
    }
}

/// A client that leaves and comes back every 10 s, resuming from its cursor.
async fn returning(url: String, token: String, event: String, w: Shared, stop: watch::Receiver<bool>) {
    let mut cursor = 0;
    while !*stop.borrow() {
        let Some(mut ws) = hello(&url, &token, "returning").await else {
            error(&w, "a returning client could not connect".into());
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let sub = match cursor {
            0 => json!({ "type": "subscribe", "event": event }),
            c => json!({ "type": "subscribe", "event": event, "cursor": c }),
        };
        if ws.send(Message::Text(sub.to_string().into())).await.is_err() {
            error(&w, "a returning client's subscribe failed".into());
            continue;
        }
        // Stay 8 s, then read what is left and leave.
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until && !*stop.borrow() {
            cursor = drain(&mut ws, &event, cursor).await;
        }
        let _ = ws.close(None).await;
        record(&w, |w| w.returns += 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A member's new phone joins every 30 s: connect, fresh snapshot to its end, leave.
async fn joins(url: String, crowd: Arc<Crowd>, w: Shared, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    let mut k = 0;
    while !*stop.borrow() {
        tick.tick().await;
        k += 1;
        let token = &crowd.tokens[crowd.seats + k % (crowd.tokens.len() - crowd.seats)];
        let started = Instant::now();
        let Some(mut ws) = hello(&url, token, &format!("new-phone-{k}")).await else {
            error(&w, "a new phone could not connect".into());
            continue;
        };
        let sub = json!({ "type": "subscribe", "event": crowd.event });
        let _ = ws.send(Message::Text(sub.to_string().into())).await;
        loop {
            match next_of(&mut ws, "snapshot").await {
                Some(v) if v["last"] == true => {
                    let ms = started.elapsed().as_millis() as u64;
                    record(&w, |w| {
                        w.joins += 1;
                        w.join_ms.push(ms)
                    });
                    break;
                }
                Some(_) => {}
                None => {
                    error(&w, "a new phone's snapshot did not finish".into());
                    break;
                }
            }
        }
        let _ = ws.close(None).await;
    }
}

/// A device pushing a batch of 5 numbered mutations every second and waiting for the ack.
async fn device(
    url: String,
    token: String,
    event: String,
    collaborator: String,
    i: usize,
    w: Shared,
    stop: watch::Receiver<bool>,
) {
    let name = format!("soak-device-{i}");
    let Some(mut ws) = hello(&url, &token, &name).await else {
        error(&w, format!("{name} could not connect"));
        return;
    };
    let mut n = 0u64;
    let mut mine: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !*stop.borrow() {
        tick.tick().await;
        let mut batch = Vec::new();
        for j in 0..5 {
            n += 1;
            let title = format!("{name} {n}");
            if j >= 3 && !mine.is_empty() {
                let record = &mine[(n as usize * 13) % mine.len()];
                batch.push(json!({ "id": format!("{name}-{n}"), "n": n, "kind": "task", "op": "update",
                                   "record": record, "fields": { "title": title } }));
            } else {
                let record = uuid::Uuid::now_v7().to_string();
                mine.push(record.clone());
                if mine.len() > 200 {
                    mine.remove(0);
                }
                batch.push(json!({ "id": format!("{name}-{n}"), "n": n, "kind": "task", "op": "create",
                                   "record": record, "fields": { "title": title, "collaborator": collaborator } }));
            }
        }
        let sent = Instant::now();
        let push = json!({ "type": "push", "event": event, "mutations": batch });
        if ws.send(Message::Text(push.to_string().into())).await.is_err() {
            error(&w, format!("{name}: the socket failed"));
            return;
        }
        let Some(ack) = next_of(&mut ws, "ack").await else {
            error(&w, format!("{name}: no ack"));
            return;
        };
        let us = sent.elapsed().as_micros() as u64;
        let results = ack["results"].as_array().cloned().unwrap_or_default();
        let accepted = results.iter().filter(|r| r["status"] == "accepted").count() as u64;
        if accepted != 5 {
            error(&w, format!("{name}: {} of 5 accepted: {ack}", accepted));
        }
        record(&w, |w| {
            w.acked.push(us);
            w.mutations += accepted
        });
    }
}

/// A photo uploaded every 5 s.
async fn uploads(crowd: Arc<Crowd>, w: Shared, stop: watch::Receiver<bool>) {
    let photo = tests::files::jpeg_with_metadata(800, 600, 6);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut k = 0;
    while !*stop.borrow() {
        tick.tick().await;
        k += 1;
        let collab = &crowd.collaborators[k % crowd.collaborators.len()];
        let started = Instant::now();
        let up = tests::files::open_upload(&crowd.owner.api, &crowd.event, collab, &format!("p{k}.jpg"), &photo).await;
        let Some(id) = up.body["id"].as_str() else {
            error(&w, format!("upload open {}: {}", up.status, up.body));
            continue;
        };
        let (status, _, body) = tests::files::chunk(&crowd.owner.api, id, 0, &photo).await;
        if status != 200 {
            error(&w, format!("upload {status}: {body}"));
            continue;
        }
        let added = crowd
            .owner
            .api
            .post(
                &format!("/v1/events/{}/files", crowd.event),
                json!({ "id": up.body["file"], "collaborator": collab, "name": format!("p{k}.jpg") }),
            )
            .await;
        if added.status / 100 != 2 {
            error(&w, format!("add file {}: {}", added.status, added.body));
            continue;
        }
        let ms = started.elapsed().as_millis() as u64;
        record(&w, |w| {
            w.uploads += 1;
            w.upload_ms.push(ms)
        });
    }
}

#[tokio::main]
async fn main() {
    if tests::bench::serve_if_child(|_| {}).await {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let minutes: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(30);
    let data = tempfile::tempdir().expect("data dir");
    let (child, base) = tests::bench::spawn_server_in("surrealkv", data.path());
    let pid = child.id();
    let srv = TestServer::attach(&base);
    let crowd = Arc::new(Crowd::gather(&srv, FOLLOWERS + SLOW + RETURNING).await);
    let url = srv.sync_url();
    println!(
        "soak: {minutes} min on SurrealKV; {FOLLOWERS} followers, {SLOW} slow consumers, {DEVICES} devices × 5 mutations/s, \
         20 creates + 10 updates/s over HTTP, {RETURNING} returning clients, a new phone every 30 s, a photo every 5 s"
    );

    let w: Shared = Arc::default();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(owner_follower(
        follow(&url, &crowd.owner.token, &crowd.event).await,
        w.clone(),
        stopped.clone(),
    )));
    // The slow consumers are the first clients: the seat holders among them see every change.
    let mut slow = Vec::new();
    for t in crowd.tokens.iter().take(SLOW) {
        slow.push(tokio::spawn(never_reads(follow(&url, t, &crowd.event).await, stopped.clone())));
    }
    for t in crowd.tokens.iter().skip(SLOW).take(FOLLOWERS) {
        tasks.push(tokio::spawn(reader(follow(&url, t, &crowd.event).await, w.clone(), stopped.clone())));
    }
    for t in crowd.tokens.iter().skip(SLOW + FOLLOWERS).take(RETURNING) {
        tasks.push(tokio::spawn(returning(url.clone(), t.clone(), crowd.event.clone(), w.clone(), stopped.clone())));
    }
    for i in 0..DEVICES {
        let token = crowd.owner.token.clone();
        let collab = crowd.collaborators[i % crowd.collaborators.len()].clone();
        tasks.push(tokio::spawn(device(
            url.clone(),
            token,
            crowd.event.clone(),
            collab,
            i,
            w.clone(),
            stopped.clone(),
        )));
    }
    tasks.push(tokio::spawn(http_writes(crowd.clone(), w.clone(), stopped.clone(), 20, 10)));
    tasks.push(tokio::spawn(reads(crowd.clone(), w.clone(), stopped.clone())));
    tasks.push(tokio::spawn(joins(url.clone(), crowd.clone(), w.clone(), stopped.clone())));
    tasks.push(tokio::spawn(uploads(crowd.clone(), w.clone(), stopped.clone())));

    println!(
        "{:>6} {:>8} {:>6} {:>9} {:>9} {:>8} {:>8} {:>6} {:>6} {:>5} {:>7} {:>7} {:>7} {:>8} errors",
        "t (s)",
        "RSS MiB",
        "CPU %",
        "deliv p50",
        "deliv p99",
        "ack p50",
        "ack p99",
        "writes",
        "muts",
        "reads",
        "read ms",
        "uploads",
        "join ms",
        "disk MiB"
    );
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let mut rows: Vec<(f64, u64, f64, f64)> = Vec::new();
    let mut cpu = tests::bench::cpu_secs(pid);
    let (mut errors_total, mut writes_total, mut mutations_total) = (0, 0, 0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE, SAMPLE);
    while Instant::now() < end {
        tick.tick().await;
        let mut win = std::mem::take(&mut *w.lock().unwrap());
        let rss = tests::bench::status_kib(&pid.to_string(), "VmRSS:") / 1024;
        let now_cpu = tests::bench::cpu_secs(pid);
        let cpu_pct = (now_cpu - cpu) / SAMPLE.as_secs_f64() * 100.0;
        cpu = now_cpu;
        let disk = du(data.path()) / (1024 * 1024);
        let (d50, d99) = (pct(&mut win.delivered, 0.5), pct(&mut win.delivered, 0.99));
        let (a50, a99) = (pct(&mut win.acked, 0.5), pct(&mut win.acked, 0.99));
        let t = started.elapsed().as_secs_f64();
        errors_total += win.errors.len();
        writes_total += win.http_writes;
        mutations_total += win.mutations;
        println!(
            "{t:>6.0} {rss:>8} {cpu_pct:>6.0} {d50:>9.1} {d99:>9.1} {a50:>8.1} {a99:>8.1} {:>6} {:>6} {:>5} {:>7} {:>7} {:>7} {disk:>8} {}",
            win.http_writes,
            win.mutations,
            win.reads,
            win.read_ms.iter().max().map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            win.uploads,
            win.join_ms.first().map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            win.errors.join("; ")
        );
        rows.push((t, rss, d99, a99));
    }
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }

    // How each slow consumer ended: its socket read to the end of what it holds. A server
    // that gave up on a client whose buffers are full cannot always get the close frame
    // through: it then cuts the connection (ended without a close frame).
    let (mut closed_slow, mut closed_other, mut cut, mut open) = (0, Vec::new(), 0, 0);
    for ws in slow {
        let Ok(mut ws) = ws.await else { continue };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(f)))))
                    if u16::from(f.code) == engine::protocol::close::SLOW_CONSUMER =>
                {
                    closed_slow += 1;
                    break;
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    closed_other.push(f.map_or(1005, |f| u16::from(f.code)));
                    break;
                }
                Ok(Some(Ok(_))) if Instant::now() < deadline => continue,
                Ok(None) | Ok(Some(Err(_))) => {
                    cut += 1;
                    break;
                }
                _ => {
                    open += 1;
                    break;
                }
            }
        }
    }

    let span = |from: f64, to: f64| rows.iter().filter(move |r| r.0 > from && r.0 <= to);
    let last = rows.last().map(|r| r.0).unwrap_or(0.0);
    let median = |mut v: Vec<f64>| {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let first5 = (60.0, 360.0);
    let last5 = (last - 300.0, last);
    println!(
        "summary: {} samples; RSS min {} / max {} MiB, median of minutes 1–6 {} MiB, of the last 5 {} MiB; \
         delivery p99 median per window {:.1} ms (minutes 1–6) → {:.1} ms (last 5); ack p99 {:.1} → {:.1} ms; \
         {errors_total} errors; {writes_total} writes and {mutations_total} pushed mutations; of {SLOW} slow consumers, \
         {closed_slow} closed with 4008, {} closed otherwise (codes {closed_other:?}), {cut} cut without a close frame, {open} still open",
        rows.len(),
        rows.iter().map(|r| r.1).min().unwrap_or(0),
        rows.iter().map(|r| r.1).max().unwrap_or(0),
        median(span(first5.0, first5.1).map(|r| r.1 as f64).collect()),
        median(span(last5.0, last5.1).map(|r| r.1 as f64).collect()),
        median(span(first5.0, first5.1).map(|r| r.2).collect()),
        median(span(last5.0, last5.1).map(|r| r.2).collect()),
        median(span(first5.0, first5.1).map(|r| r.3).collect()),
        median(span(last5.0, last5.1).map(|r| r.3).collect()),
        closed_other.len(),
    );
    drop(child);
}

/// Bytes of the files under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
