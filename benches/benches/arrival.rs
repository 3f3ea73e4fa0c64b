//! Festival arrival: G gates × L lanes as device engines, each kept connected by the mobile
//! bridge's link as the app does, against the real server over loopback.
//!
//! 1. Setup: C credentials imported; every lane holds them.
//! 2. Sustained: R scans/s at random lanes for S seconds, each of a credential not seen yet;
//!    propagation = time from the scan until every other online lane holds it (p50 / p99).
//! 3. Burst: B scans in one second, the same measure.
//! 4. Partition: gate 0 goes offline for O seconds while scans go on everywhere at R/s; every
//!    tenth scan at the offline gate is of a credential an online gate admitted during the
//!    partition (an injected duplicate). Then gate 0 comes back: reconcile time (until its
//!    lanes' outboxes are empty), and duplicates flagged by the server vs injected.
//!
//! Run: `cargo bench -p benches --bench arrival -- [CREDENTIALS] [RATE] [SECONDS] [BURST] [OFFLINE_S] [GATES] [LANES]`
//! (defaults 20000 8 60 100 600 8 4: the festival; the server on SurrealKV, the lanes
//! on mem).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use engine::{
    device::{Notice, Replica},
    model::{Direction, ScanDecision},
};
use mobile_bridge::Link;
use serde_json::json;
use tests::{TestServer, quantile, stage};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A scan on its way to the other lanes.
struct Probe {
    uid: String,
    sent: Instant,
    waiting: HashSet<usize>,
    phase: &'static str,
}

type Probes = Arc<Mutex<Vec<Probe>>>;
type Seen = Arc<Mutex<HashMap<&'static str, Vec<Duration>>>>;

struct Lane {
    gate: String,
    lane: String,
    replica: Replica,
    link: Option<Link>,
}

/// Listens to one lane: whenever scans arrive, the probes it was waiting for are checked.
fn watch(i: usize, replica: Replica, event: String, probes: Probes, seen: Seen) {
    let mut notices = replica.notices();
    tokio::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(Notice::Changed { kinds, .. }) if kinds.iter().any(|k| k == "scan") => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
            let wanted: Vec<String> = {
                let p = probes.lock().unwrap();
                p.iter().filter(|p| p.waiting.contains(&i)).map(|p| p.uid.clone()).collect()
            };
            for uid in wanted {
                let held = replica.scans(&event, Some(&uid), None, 1).await.map(|s| !s.is_empty()).unwrap_or(false);
                if held {
                    let mut p = probes.lock().unwrap();
                    if let Some(probe) = p.iter_mut().find(|p| p.uid == uid && p.waiting.contains(&i)) {
                        probe.waiting.remove(&i);
                        if probe.waiting.is_empty() {
                            seen.lock().unwrap().entry(probe.phase).or_default().push(probe.sent.elapsed());
                        }
                    }
                    p.retain(|p| !p.waiting.is_empty());
                }
            }
        }
    });
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (credentials, rate, seconds, burst, offline_s, gates, lanes_per) =
        (arg(0, 20_000), arg(1, 8), arg(2, 60), arg(3, 100), arg(4, 600), arg(5, 8), arg(6, 4));
    let dir = tempfile::tempdir().expect("dir");
    let mut config = tests::test_config(dir.path());
    config.database_url = format!("surrealkv://{}", dir.path().join("server").display());
    let srv = TestServer::start_config(config, None).await;
    let s = stage(&srv).await;
    let engine = srv.engine.clone().expect("engine");
    let ev = s.event.clone();
    let api = &s.pm.api;
    println!(
        "{gates} gates × {lanes_per} lanes, {credentials} credentials, {rate} scans/s for {seconds} s, burst {burst}, partition {offline_s} s"
    );
    api.post(&format!("/v1/events/{ev}/zones"), json!({ "code": "GA", "name": "Festival" })).await.ok();
    let lane_names: Vec<String> = (1..=lanes_per).map(|l| l.to_string()).collect();
    let mut gate_ids = Vec::new();
    for g in 0..gates {
        let made = api
            .post(
                &format!("/v1/events/{ev}/gates"),
                json!({ "name": format!("Gate {g}"), "zone": "GA", "lanes": lane_names }),
            )
            .await
            .ok();
        gate_ids.push(made["id"].as_str().unwrap().to_string());
    }
    let mut csv = String::from("uid,kind,holder_name,zones\n");
    for i in 0..credentials {
        csv.push_str(&format!("W-{i:06},ga,Guest {i},GA\n"));
    }
    let started = Instant::now();
    api.raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", csv.into_bytes())
        .await
        .ok();
    let imported = started.elapsed();
    api.put(&format!("/v1/events/{ev}/collaborators/{}/modules/gate", s.audio), json!({})).await.ok();

    // Every lane, connected by a link, takes the credentials.
    let probes: Probes = Default::default();
    let seen: Seen = Default::default();
    let mut lanes = Vec::new();
    let started = Instant::now();
    for (g, gate) in gate_ids.iter().enumerate() {
        for l in &lane_names {
            let replica = Replica::open("mem://", Some(&format!("gate{g}-lane{l}"))).await.expect("replica");
            replica.subscribe(&ev).await.unwrap();
            let link = Link::start(replica.clone(), &srv.sync_url(), &s.vic.token);
            watch(lanes.len(), replica.clone(), ev.clone(), probes.clone(), seen.clone());
            lanes.push(Lane { gate: gate.clone(), lane: l.clone(), replica, link: Some(link) });
        }
    }
    for lane in &lanes {
        while lane.replica.credential_count(&ev).await.unwrap_or(0) < credentials as usize {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "setup: import {:.2} s; all {} lanes ready (holding every credential) {:.1} s after they started",
        imported.as_secs_f64(),
        lanes.len(),
        started.elapsed().as_secs_f64()
    );

    let mut next_uid = 0usize;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let offline_gate = gate_ids[0].clone();
    let online_lanes =
        |lanes: &Vec<Lane>| -> Vec<usize> { (0..lanes.len()).filter(|i| lanes[*i].link.is_some()).collect() };

    // One scan at lane `i` of `uid`; a probe waits for every other online lane.
    async fn scan(lanes: &[Lane], i: usize, ev: &str, uid: &str, probes: &Probes, phase: &'static str) -> ScanDecision {
        let lane = &lanes[i];
        let waiting: HashSet<usize> = (0..lanes.len()).filter(|j| *j != i && lanes[*j].link.is_some()).collect();
        let sent = Instant::now();
        let outcome = lane.replica.scan(ev, uid, &lane.gate, &lane.lane, Direction::Entry).await.expect("scan");
        if lane.link.is_some() {
            probes.lock().unwrap().push(Probe { uid: uid.to_string(), sent, waiting, phase });
            if let Some(l) = &lane.link {
                l.wake();
            }
        }
        outcome.scan.decision
    }

    // 2. Sustained.
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tick = tokio::time::interval(period);
    while Instant::now() < until {
        tick.tick().await;
        let on = online_lanes(&lanes);
        let uid = format!("W-{next_uid:06}");
        next_uid += 1;
        scan(&lanes, on[rand(on.len())], &ev, &uid, &probes, "sustained").await;
    }
    // 3. Burst.
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / burst.max(1) as f64));
    for _ in 0..burst {
        tick.tick().await;
        let on = online_lanes(&lanes);
        let uid = format!("W-{next_uid:06}");
        next_uid += 1;
        scan(&lanes, on[rand(on.len())], &ev, &uid, &probes, "burst").await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = |phase: &str, seen: &Seen| {
        let mut v = seen.lock().unwrap().get(phase).cloned().unwrap_or_default();
        v.sort();
        println!(
            "propagation gate → every other lane, {phase}: {} scans, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 ≤ 1 s)",
            v.len(),
            ms(quantile(&v, 0.5)),
            ms(quantile(&v, 0.99)),
            ms(v.last().copied().unwrap_or_default())
        );
    };
    report("sustained", &seen);
    report("burst", &seen);
    probes.lock().unwrap().clear();

    // 4. The partition.
    let off: Vec<usize> = (0..lanes.len()).filter(|i| lanes[*i].gate == offline_gate).collect();
    for i in &off {
        if let Some(l) = lanes[*i].link.take() {
            l.stop().await;
        }
    }
    let mut admitted_online: Vec<String> = Vec::new();
    let mut injected = 0;
    let mut offline_scans = 0;
    let until = Instant::now() + Duration::from_secs(offline_s);
    let mut tick = tokio::time::interval(period);
    let mut n = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let i = rand(lanes.len());
        let offline = lanes[i].link.is_none();
        let uid = if offline && n.is_multiple_of(10) && !admitted_online.is_empty() {
            injected += 1;
            admitted_online.remove(0)
        } else {
            next_uid += 1;
            format!("W-{:06}", next_uid - 1)
        };
        let decision = scan(&lanes, i, &ev, &uid, &probes, "partition").await;
        if offline {
            offline_scans += 1;
        } else if decision == ScanDecision::Admit {
            admitted_online.push(uid);
        }
    }
    let pending: usize = off.iter().map(|i| lanes[*i].replica.status().pending).sum();
    let started = Instant::now();
    for i in &off {
        lanes[*i].link = Some(Link::start(lanes[*i].replica.clone(), &srv.sync_url(), &s.vic.token));
    }
    for i in &off {
        while lanes[*i].replica.status().pending > 0 || lanes[*i].replica.has_unseen_accepted().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let reconcile = started.elapsed();
    println!(
        "partition: gate 0 ({} lanes) offline {offline_s} s, {offline_scans} scans made there; back online, {pending} queued scans reconciled in {:.2} s",
        off.len(),
        reconcile.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ask = engine::paging::PageAsk { after: None, limit: Some(engine::paging::PAGE_MAX) };
    let flags = engine.list_scan_flags(&s.pm.id, &ev, &ask).await.unwrap().items;
    let dups = flags.iter().filter(|f| f.code == engine::model::ScanFlagCode::DuplicateEntry).count();
    let scans = engine.list_scans(&s.pm.id, &ev, Default::default(), &ask).await.unwrap().items.len();
    println!("duplicates: {injected} injected, {dups} flagged by the server ({scans} scans on the first page)");
    for lane in &mut lanes {
        if let Some(l) = lane.link.take() {
            l.stop().await;
        }
    }
    srv.stop().await.expect("stop");
}
