//! Signing in at venue scale, against the real server (a child process, so its memory and CPU
//! are its own) with the production password hashing (argon2id's defaults) and the default
//! limits:
//!
//! 1. Doors: CREW people sign in from one address (a venue's NAT) spread over SPREAD
//!    seconds, each retrying as told on 503 `busy` and 429 (`Retry-After`). Reported: when
//!    the last one got in, sign-in latency p50/p99 (first try to success), how often the
//!    server said busy, the server's peak RSS and CPU.
//! 2. Guessing: 4 addresses (127.0.0.1–4) × 60 concurrent clients send wrong passwords for
//!    GUESS seconds — half to one real account, half to made-up ones — while an honest
//!    client signs a different person in every 250 ms from a fifth address. Reported: the
//!    server's RSS (sampled every 100 ms) against its bound, the honest sign-ins' p50/p99 and
//!    how many were told busy, and how many wrong passwords for the one account were
//!    actually checked (the per-account limit).
//!
//! 3. Quota: a tablet back online pushes BACKLOG task creates over its socket (protocol 3,
//!    batches of 500, two in flight, as the device link does) under the default push
//!    quotas, pushing deferred ones again when told. Reported: when all were applied, how
//!    many answers were `deferred`, and the pace after the burst.
//!
//! Run: `cargo bench -p benches --bench signins -- [CREW] [SPREAD] [GUESS] [BACKLOG]`
//! (defaults 2000 60 30 8000). All traffic stays on 127.0.0.1–5; every loop is bounded by
//! time or count.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tests::bench::{cpu_secs, serve_if_child, spawn_server, status_kib};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "correct horse battery";

fn client(from: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::V4(from)).build().expect("client")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    ms(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// The wait a 429 or 503 asks for.
fn retry_after(r: &reqwest::Response) -> Duration {
    let secs = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok()).unwrap_or(1);
    Duration::from_secs(secs)
}

/// Signs `email` in until it works (or 10 minutes pass), as an app does: waits as told on
/// 429 and 503. Returns the time from the first try, and how often it was told to wait.
async fn sign_in(http: &reqwest::Client, base: &str, email: &str) -> (Duration, u32, u32) {
    let started = Instant::now();
    let (mut busy, mut limited) = (0, 0);
    while started.elapsed() < Duration::from_secs(600) {
        let r = http
            .post(format!("{base}/v1/sessions"))
            .json(&json!({ "email": email, "password": PASSWORD, "device_name": "crew phone" }))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => return (started.elapsed(), busy, limited),
            Ok(r) if r.status() == 503 || r.status() == 429 => {
                if r.status() == 503 {
                    busy += 1
                } else {
                    limited += 1
                }
                // Spread out the retries of many phones told the same.
                let jitter = Duration::from_millis(rand_ms(500));
                tokio::time::sleep(retry_after(&r) + jitter).await;
            }
            Ok(r) => panic!("sign-in of {email}: {} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{email} never signed in");
}

fn rand_ms(max: u64) -> u64 {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
    n % max.max(1)
}

/// Signs up `n` people (e-mails `crew{i}@example.test`), retrying when told to wait.
async fn sign_up(base: &str, n: usize) {
    let http = client(Ipv4Addr::LOCALHOST);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, base, next) = (http.clone(), base.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return;
                }
                loop {
                    let r = http
                        .post(format!("{base}/v1/accounts"))
                        .json(&json!({ "email": format!("crew{i}@example.test"), "name": format!("Crew {i}"), "password": PASSWORD }))
                        .send()
                        .await
                        .expect("sign-up");
                    match r.status().as_u16() {
                        201 => break,
                        503 | 429 => tokio::time::sleep(retry_after(&r)).await,
                        s => panic!("sign-up {i}: {s}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sign-ups");
    }
}

#[tokio::main]
async fn main() {
    // The server: production hashing and sign-in limits; sign-ups unlimited for the setup.
    if serve_if_child(|c| {
        c.engine.password_hashing = engine::PasswordHashing::Standard;
        let defaults = server::attempts::AttemptLimits::default();
        c.attempts.sign_ins_per_address = defaults.sign_ins_per_address;
        c.attempts.failures_per_account = defaults.failures_per_account;
    })
    .await
    {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (crew, spread, guess, backlog) = (arg(0, 2000) as usize, arg(1, 60), arg(2, 30), arg(3, 8000));
    let (child, base) = spawn_server("mem");
    let pid = child.id();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("server pid {pid}, {cores} cores; signing up {crew} crew…");
    let t0 = Instant::now();
    sign_up(&base, crew + 200).await;
    println!(
        "signed up {} in {:.1} s; RSS {} KiB",
        crew + 200,
        t0.elapsed().as_secs_f64(),
        status_kib(&pid.to_string(), "VmRSS:")
    );

    // 1. Doors.
    let cpu0 = cpu_secs(pid);
    let http = client(Ipv4Addr::LOCALHOST);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..crew {
        let at = Duration::from_secs_f64(spread as f64 * i as f64 / crew as f64);
        let (http, base) = (http.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((started + at).into()).await;
            let (took, busy, limited) = sign_in(&http, &base, &format!("crew{i}@example.test")).await;
            (took, busy, limited, started.elapsed())
        }));
    }
    let (mut lat, mut busy, mut limited, mut last) = (Vec::new(), 0, 0, Duration::ZERO);
    for t in tasks {
        let (took, b, l, done) = t.await.expect("crew");
        lat.push(took);
        busy += b;
        limited += l;
        last = last.max(done);
    }
    lat.sort();
    println!(
        "doors: {crew} sign-ins from one address over {spread} s: all in after {:.1} s; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; told busy {busy} times, rate-limited {limited} times; server CPU {:.1} s; peak RSS {} KiB",
        last.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        cpu_secs(pid) - cpu0,
        status_kib(&pid.to_string(), "VmHWM:"),
    );

    // 2. Guessing, beside an honest client.
    let rss_before = status_kib(&pid.to_string(), "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let (checked_one, told_busy, told_limited) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flooders = Vec::new();
    for a in 1..=4u8 {
        let http = client(Ipv4Addr::new(127, 0, 0, a));
        for k in 0..60 {
            let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
            let (checked_one, told_busy, told_limited) = (checked_one.clone(), told_busy.clone(), told_limited.clone());
            flooders.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let target = k % 2 == 0;
                    let email = if target {
                        "crew0@example.test".to_string()
                    } else {
                        format!("nobody{a}-{k}-{i}@example.test")
                    };
                    let r = http
                        .post(format!("{base}/v1/sessions"))
                        .json(&json!({ "email": email, "password": format!("guess {i}") }))
                        .send()
                        .await;
                    match r.map(|r| r.status().as_u16()) {
                        Ok(401) if target => {
                            checked_one.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(503) => {
                            told_busy.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(429) => {
                            told_limited.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }));
        }
    }
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(&pid.to_string(), "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let honest = client(Ipv4Addr::new(127, 0, 0, 5));
    let (mut honest_lat, mut honest_busy) = (Vec::new(), 0);
    let flood_started = Instant::now();
    let cpu1 = cpu_secs(pid);
    let mut next = crew;
    while flood_started.elapsed() < Duration::from_secs(guess) && next < crew + 200 {
        let (took, b, _) = sign_in(&honest, &base, &format!("crew{next}@example.test")).await;
        next += 1;
        honest_lat.push(took);
        honest_busy += b;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    let peak = sampler.await.unwrap_or(0);
    honest_lat.sort();
    let minutes = flood_started.elapsed().as_secs_f64() / 60.0;
    println!(
        "guessing: 4 addresses x 60 clients for {:.0} s: RSS before {rss_before} KiB, peak {peak} KiB (+{} KiB); honest sign-ins {} : p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, told busy {honest_busy} times; flood told busy {} times, rate-limited {} times; wrong passwords checked for the one account: {} (limit: 10 at once + 5 a minute = {:.0}); server CPU {:.1} s",
        flood_started.elapsed().as_secs_f64(),
        peak.saturating_sub(rss_before),
        honest_lat.len(),
        pct(&honest_lat, 0.5),
        pct(&honest_lat, 0.99),
        pct(&honest_lat, 1.0),
        told_busy.load(Ordering::Relaxed),
        told_limited.load(Ordering::Relaxed),
        checked_one.load(Ordering::Relaxed),
        10.0 + 5.0 * minutes,
        cpu_secs(pid) - cpu1,
    );
    quota(&base, backlog).await;
    drop(child);
}

/// Part 3: a backlog pushed under the default quotas (see the module's note).
async fn quota(base: &str, backlog: u64) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let http = client(Ipv4Addr::LOCALHOST);
    let signed: serde_json::Value = http
        .post(format!("{base}/v1/sessions"))
        .json(&json!({ "email": "crew1@example.test", "password": PASSWORD }))
        .send()
        .await
        .expect("sign-in")
        .json()
        .await
        .expect("json");
    let token = signed["token"].as_str().expect("token").to_string();
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth(&token);
    let org: serde_json::Value =
        auth(http.get(format!("{base}/v1/orgs"))).send().await.expect("orgs").json().await.expect("json");
    let org = org[0]["id"].as_str().expect("org").to_string();
    auth(http.put(format!("{base}/v1/orgs/{org}/billing/payment-method")))
        .json(&json!({ "kind": "card", "provider_token": "tok", "last4": "4242" }))
        .send()
        .await
        .expect("card");
    auth(http.put(format!("{base}/v1/orgs/{org}/billing/address")))
        .json(&json!({ "line1": "1 Dock Rd", "city": "Austin", "zip": "78701", "country": "US" }))
        .send()
        .await
        .expect("address");
    let lic: serde_json::Value = auth(http.post(format!("{base}/v1/orgs/{org}/licenses")))
        .json(&json!({ "kind": "event_pro", "quantity": 1 }))
        .send()
        .await
        .expect("license")
        .json()
        .await
        .expect("json");
    let event = loop {
        let r = auth(http.post(format!("{base}/v1/orgs/{org}/events")))
            .json(&json!({ "name": "Quota Fest", "default_collaborator_name": "Prod", "license": lic["id"] }))
            .send()
            .await
            .expect("event");
        if r.status() == 201 {
            break r.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ws_url = format!("{}/v1/sync", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("socket");
    let hello = json!({ "type": "hello", "protocol": 3, "token": token, "device": "quota-tablet" });
    ws.send(Message::Text(hello.to_string().into())).await.expect("hello");
    let batch = |from: u64| {
        let ms: Vec<serde_json::Value> = (from..(from + 500).min(backlog + 1))
            .map(|n| json!({ "id": format!("b-{n}"), "n": n, "kind": "task", "op": "create", "fields": { "title": format!("Backlog {n}") } }))
            .collect();
        json!({ "type": "push", "event": event, "mutations": ms }).to_string()
    };
    let started = Instant::now();
    let (mut next, mut in_flight, mut applied, mut deferred) = (1u64, std::collections::VecDeque::new(), 0u64, 0u64);
    let mut burst_done: Option<Duration> = None;
    let mut hold_until = Instant::now();
    while applied < backlog && started.elapsed() < Duration::from_secs(600) {
        while in_flight.len() < 2 && next <= backlog && Instant::now() >= hold_until {
            ws.send(Message::Text(batch(next).into())).await.expect("push");
            in_flight.push_back(next);
            next += 500;
        }
        let frame = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
        let Ok(Some(Ok(Message::Text(t)))) = frame else { continue };
        let v: serde_json::Value = serde_json::from_str(&t).expect("json");
        if v["type"] != "ack" {
            continue;
        }
        let from = in_flight.pop_front().expect("an ack answers a push");
        let results = v["results"].as_array().expect("results");
        let ok = results.iter().filter(|r| r["status"] == "accepted").count() as u64;
        applied += ok;
        if ok == 0 && results.iter().any(|r| r["status"] == "deferred") {
            deferred += results.len() as u64;
            burst_done.get_or_insert(started.elapsed());
            let wait = results[0]["retry_after_ms"].as_u64().unwrap_or(1000);
            hold_until = hold_until.max(Instant::now() + Duration::from_millis(wait));
            // Pushed again from the earliest deferred batch, in order (a later one in flight
            // is deferred behind it).
            next = next.min(from);
        }
    }
    let all = started.elapsed();
    let after =
        burst_done.map_or(0.0, |b| (applied as f64 - 5000.0).max(0.0) / (all - b).as_secs_f64().max(0.001) * 60.0);
    println!(
        "quota: {applied} of {backlog} mutations applied after {:.1} s; {deferred} answers deferred; after the 5,000 burst about {:.0} a minute (default quota 2,000)",
        all.as_secs_f64(),
        after,
    );
}
