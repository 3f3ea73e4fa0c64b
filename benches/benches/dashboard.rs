//! The web dashboard at a festival's size, in a real browser: the server in a child process
//! on SurrealKV, an event holding CREDENTIALS credentials, SCANS scans (admissions and exits
//! in turn at 8 gates, as a day's arrival leaves them), TASKS tasks over 20 collaborators,
//! and a seat holder's page in Debian's Chromium (headless, playwright-core) opened LOADS
//! times, each in a fresh browser context (the first counts the snapshot's frames; the
//! others, which capture nothing, are timed):
//!
//! 1. From navigation to the board shown live (the snapshot whole, the feed live, the tasks
//!    drawn), the snapshot's size on the wire, and the page's JavaScript heap once loaded.
//! 2. The Field tab drawn from those records (admissions per gate per minute over the scans).
//! 3. SAMPLES tasks created through the HTTP API, one after another: from the request to the
//!    card on the open page.
//!
//! Run: `cargo bench -p benches --bench dashboard -- [CREDENTIALS] [SCANS] [TASKS] [LOADS] [SAMPLES]`
//! (defaults 20000 60000 500 6 20); `FRAME_KIB=n` sets the server's outgoing frame target. Needs `npm ci` in server/dashboard and Chromium
//! (`BACKOPS_CHROMIUM`, default /usr/bin/chromium). All traffic stays on 127.0.0.1.

use std::{path::Path, time::Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{SyncClient, TestServer, bench};
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GATES: usize = 8;
const PUSH_MAX: usize = 500;

fn at(ms_ago: i64) -> String {
    engine::time::format(chrono::Utc::now() - chrono::Duration::milliseconds(ms_ago))
}

#[tokio::main]
async fn main() {
    // FRAME_KIB: the server's target size of an outgoing frame (default 16), to compare.
    let frame_kib: Option<usize> = std::env::var("FRAME_KIB").ok().and_then(|v| v.parse().ok());
    if bench::serve_if_child(|c| {
        if let Some(k) = frame_kib {
            c.sync.frame_out_bytes_target = k * 1024;
        }
    })
    .await
    {
        return;
    }
    let args: Vec<usize> =
        std::env::args().skip(1).filter(|a| !a.starts_with("--")).filter_map(|a| a.parse().ok()).collect();
    let credentials = args.first().copied().unwrap_or(20_000).max(1);
    let scans = args.get(1).copied().unwrap_or(60_000);
    let tasks = args.get(2).copied().unwrap_or(500);
    let loads = args.get(3).copied().unwrap_or(6).max(2);
    let samples = args.get(4).copied().unwrap_or(20).max(1);
    println!(
        "dashboard: {credentials} credentials, {scans} scans, {tasks} tasks; {loads} loads, {samples} live samples"
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let chromium = std::env::var("BACKOPS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(root.join("server/dashboard/node_modules/playwright-core").is_dir(), "run `npm ci` in server/dashboard");

    let (mut child, base) = bench::spawn_server("surrealkv");
    let pid = child.id().to_string();
    let srv = TestServer::attach(&base);
    let office = srv.sign_up("Office").await;
    let org = office.personal_org().await;
    let license = office.ready_org(&org, 2).await;
    let (event, _) = office.create_event(&org, &license, "Harbor Fest").await;
    let api = &office.api;
    let t0 = Instant::now();

    let mut collaborators = Vec::new();
    for i in 0..20 {
        let c = api
            .post(&format!("/v1/events/{event}/collaborators"), json!({ "name": format!("Vendor {i:02}") }))
            .await
            .ok();
        collaborators.push(c["id"].as_str().unwrap().to_string());
    }
    let statuses = ["todo", "active", "in_review", "done"];
    for i in 0..tasks {
        api.post(
            &format!("/v1/events/{event}/tasks"),
            json!({ "collaborator": collaborators[i % 20], "title": format!("Task {i:04}"), "status": statuses[i % 4] }),
        )
        .await
        .ok();
    }
    api.post(&format!("/v1/events/{event}/zones"), json!({ "code": "GA", "name": "General admission" })).await.ok();
    let mut gates = Vec::new();
    for g in 0..GATES {
        let r = api
            .post(
                &format!("/v1/events/{event}/gates"),
                json!({ "name": format!("Gate {g}"), "zone": "GA", "lanes": ["1", "2", "3", "4"] }),
            )
            .await
            .ok();
        gates.push(r["id"].as_str().unwrap().to_string());
    }
    let mut csv = String::from("uid,kind,holder_name,zones\n");
    for i in 0..credentials {
        csv.push_str(&format!("W-{i},ga,Guest {i},GA\n"));
    }
    api.raw(reqwest::Method::POST, &format!("/v1/events/{event}/credentials/import"), "text/csv", csv.into())
        .await
        .ok();

    // The day's scans: each credential admitted, out, admitted again…, oldest first, the
    // last of them in the past half hour.
    let mut lane = SyncClient::connect_device(&srv, &office.token, "bench-lane").await;
    let span_ms = 10 * 3600 * 1000i64;
    let mut batch = Vec::new();
    for k in 0..scans {
        let (c, round) = (k % credentials, k / credentials);
        let entry = round % 2 == 0;
        let ago = span_ms - (span_ms * k as i64 / scans.max(1) as i64);
        batch.push(json!({ "id": format!("s-{k}"), "kind": "scan", "op": "create",
            "fields": { "credential": format!("W-{c}"), "gate": gates[k % GATES], "lane": "1",
                        "direction": if entry { "entry" } else { "exit" },
                        "decision": if entry { "admit" } else { "exit" }, "device_time": at(ago) } }));
        if batch.len() == PUSH_MAX || k + 1 == scans {
            lane.send(json!({ "type": "push", "event": event, "mutations": std::mem::take(&mut batch) })).await;
            let ack = lane.next_of("ack").await;
            let refused: Vec<&Value> =
                ack["results"].as_array().unwrap().iter().filter(|r| r["status"] != "accepted").collect();
            assert!(refused.is_empty(), "{:?}", refused.first());
        }
    }
    lane.disconnect().await;
    println!(
        "staged in {:.1} s; server RSS {} MiB",
        t0.elapsed().as_secs_f64(),
        bench::status_kib(&pid, "VmRSS:") / 1024
    );

    // The same snapshot to a bare WebSocket client that only counts frames: the server's
    // and the wire's share of a page's load, without the browser.
    let mut bare = Vec::new();
    for _ in 0..3 {
        bare.push(bare_snapshot(&srv, &office.token, &event).await);
    }
    bare.sort_by(f64::total_cmp);
    let bare_runs = bare.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", ");

    let setup = json!({
        "base": base,
        "event": event,
        "session": { "token": office.token, "expires_at": 4_000_000_000u64,
                     "account": { "id": office.id, "email": office.email, "name": "Office" } },
        "token": office.token,
        "collaborator": collaborators[0],
        "gates": GATES,
        "loads": loads,
        "samples": samples,
        "chromium": chromium,
        "dashboard_dir": root.join("server/dashboard"),
    });
    let out = std::process::Command::new("node")
        .arg(root.join("benches/browser/dashboard_load.mjs"))
        .env("BACKOPS_BENCH", setup.to_string())
        .output()
        .expect("node runs");
    let said = String::from_utf8_lossy(&out.stdout);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser run failed:\n{said}");
    let result: Value = said
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ").and_then(|j| serde_json::from_str(j).ok()))
        .expect("a RESULT line");
    let med = |k: &str| -> f64 {
        let mut v: Vec<f64> = result[k].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let runs = |k: &str| -> String {
        result[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("{:.0}", v.as_f64().unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("records in the snapshot: {}", result["records"]);
    println!(
        "snapshot on the wire: {:.1} MiB in {} frames",
        result["snapshot_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        result["snapshot_frames"]
    );
    println!(
        "navigation → board live (loads 2…, nothing captured): median {:.0} ms ({})",
        med("load_ms"),
        runs("load_ms")
    );
    println!("navigation → last snapshot frame received (first load, frames captured): {} ms", runs("snapshot_ms"));
    println!("the same snapshot to a bare WebSocket client: median {:.0} ms ({bare_runs})", bare[1]);
    println!("Field tab drawn: median {:.0} ms ({})", med("field_ms"), runs("field_ms"));
    println!("JS heap after load: median {:.0} MiB ({})", med("heap_mib"), runs("heap_mib"));
    let mut live: Vec<f64> = result["live_ms"].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
    live.sort_by(f64::total_cmp);
    let q = |p: f64| live[((live.len() as f64 - 1.0) * p).round() as usize];
    println!("API task → card on the loaded page: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms", q(0.5), q(0.95), q(1.0));
    println!(
        "server RSS after: {} MiB (peak {} MiB)",
        bench::status_kib(&pid, "VmRSS:") / 1024,
        bench::status_kib(&pid, "VmHWM:") / 1024
    );
    let _ = child.kill();
}

/// Milliseconds from connecting to the last snapshot frame, for a client that parses nothing.
async fn bare_snapshot(srv: &TestServer, token: &str, event: &str) -> f64 {
    let url = format!("{}/v1/sync", srv.base.replacen("http", "ws", 1));
    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let hello = json!({ "type": "hello", "protocol": 1, "token": token, "device": "bench-bare" });
    ws.send(Message::Text(hello.to_string().into())).await.expect("hello");
    ws.send(Message::Text(json!({ "type": "subscribe", "event": event }).to_string().into())).await.expect("subscribe");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with(r#"{"type":"snapshot""#) && t.ends_with(r#""last":true}"#) => {
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("closed during the snapshot: {other:?}"),
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let _ = ws.close(None).await;
    ms
}
