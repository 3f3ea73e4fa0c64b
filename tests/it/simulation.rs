//! Seeded simulation of devices that go offline, edit the same records, lose connections
//! in the middle of a push, see the server restart and their access change — against the
//! real server over real WebSockets.
//!
//! The field takes part: Audio's members are lanes (the gate module), punch the clock (the
//! labor module) and hand out radios (the assets module); the office grants and revokes
//! Client's gate module; lanes scan a few credentials at two gates and desks check two radios
//! out and in, online and offline, so the same credential is admitted at gates — and the same
//! radio handed out at desks — that could not talk.
//!
//! Every step: no device holds a record of a collaborator its person never had access to, nor
//! a gate record without ever having had the gate module, nor anyone else's punches.
//! At quiesce: every replica equals the server's view for its person; every mutation a
//! device made (scans included) was applied exactly once or refused (and the device was
//! told); the duplicate entries and double check-outs flagged are exactly those the scans and
//! custody moves hold, in clock order;
//! nothing waits in any outbox.
//!
//! `SEED=n` replays one run (the operations and their order are the seed's; wall-clock
//! timing inside the server may differ, the outcome does not). `SIM_SEEDS`, `SIM_FIRST` and
//! `SIM_STEPS` set how many runs, from which seed, and how long; CI runs the defaults. A longer soak:
//! `SIM_SEEDS=200 SIM_STEPS=150 cargo test -p tests --test it simulation -- --nocapture`.

use std::collections::{BTreeSet, HashMap, HashSet};

use engine::{
    device::{LocalWrite, Notice},
    model::{Direction, PunchKind, Scan, ScanFlag, ScanFlagCode},
    protocol::MutationOp,
};
use serde_json::{Value, json};
use tests::{Stage, TestServer, User, device::Device, stage};

/// SplitMix64: small, and the same sequence on every platform and build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct SimDevice {
    dev: Device,
    /// The person's account id.
    account: String,
}

struct World {
    srv: Option<TestServer>,
    config: server::Config,
    s: Stage,
    dee: User,
    devices: Vec<SimDevice>,
    /// The event's collaborators: prod (the default), audio, client.
    collaborators: Vec<String>,
    /// What each person was ever allowed: a seat, or collaborators, or the gate module.
    ever_seat: HashSet<String>,
    ever: HashMap<String, HashSet<String>>,
    ever_gate: HashSet<String>,
    /// Whether Client has the gate module now.
    client_gate: bool,
    scans: usize,
    punches: usize,
    moves: usize,
    /// Where Dee is a member now (moved around by the office).
    dee_in: Option<String>,
    vic_seat: bool,
    /// Every mutation a device made, by device: (device, mutation id).
    made: Vec<(String, String)>,
    /// Mutations refused, as the devices were told.
    refused: HashSet<(String, String)>,
    restarts: usize,
    log: Vec<String>,
}

impl World {
    fn srv(&self) -> &TestServer {
        self.srv.as_ref().expect("server running")
    }

    fn api(&self, who: &User) -> tests::Api {
        self.srv().anonymous().with_token(&who.token)
    }

    async fn head(&self) -> i64 {
        self.srv().engine.as_ref().expect("engine").head(&self.s.event).await.expect("head")
    }

    fn tell(&mut self) {
        for d in &mut self.devices {
            let name = d.dev.replica.device().to_string();
            while let Ok(n) = d.dev.notices.try_recv() {
                if let Notice::Rejected(r) = n {
                    self.refused.insert((name.clone(), r.mutation));
                }
            }
        }
    }
}

const CREDENTIALS: &[&str] = &["W-1", "W-2", "W-3"];
const RADIOS: &[&str] = &["R-1", "R-2"];
const WORDS: &[&str] = &["Rig", "Cable", "Stage", "Gate", "Catering", "Lights", "Truss", "Backline"];
const STATUSES: &[&str] = &["todo", "active", "in_review", "done"];

fn task_fields(rng: &mut Rng, step: usize) -> Value {
    let mut f = serde_json::Map::new();
    if rng.chance(60) {
        f.insert("title".into(), json!(format!("{} {step}", WORDS[rng.below(WORDS.len())])));
    }
    if rng.chance(50) {
        f.insert("status".into(), json!(STATUSES[rng.below(STATUSES.len())]));
    }
    if rng.chance(30) {
        f.insert("due".into(), json!(format!("2026-07-{:02}", 1 + rng.below(28))));
    }
    if f.is_empty() {
        f.insert("status".into(), json!("active"));
    }
    Value::Object(f)
}

async fn setup(seed: u64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tests::test_config(dir.path());
    config.database_url = format!("surrealkv://{}", dir.path().join("db").display());
    // The directory lives as long as the process: the server restarts on it.
    std::mem::forget(dir);
    let srv = TestServer::start_config(config.clone(), None).await;
    let s = stage(&srv).await;
    let dee = srv.sign_up("Dee").await;
    let collaborators = vec![s.prod.clone(), s.audio.clone(), s.client.clone()];
    s.pm.api
        .post(&format!("/v1/events/{}/collaborators/{}/members", s.event, s.audio), json!({ "email": dee.email }))
        .await
        .ok();
    for (i, c) in collaborators.iter().enumerate() {
        tests::task(&s, &s.pm, c, &format!("Seed {i}")).await;
    }
    // A front gate: two gates, a few credentials (so lanes meet the same ones), Audio's
    // members as lanes.
    let base = format!("/v1/events/{}", s.event);
    s.pm.api.post(&format!("{base}/zones"), json!({ "code": "GA", "name": "Field" })).await.ok();
    for name in ["North", "South"] {
        s.pm.api.post(&format!("{base}/gates"), json!({ "name": name, "zone": "GA", "lanes": ["1"] })).await.ok();
    }
    for uid in CREDENTIALS {
        let c = json!({ "uid": uid, "kind": "ga", "holder_name": uid, "zones": ["GA"], "notes": "office only" });
        s.pm.api.post(&format!("{base}/credentials"), c).await.ok();
    }
    s.pm.api.put(&format!("{base}/collaborators/{}/modules/gate", s.audio), json!({})).await.ok();
    s.pm.api.put(&format!("{base}/collaborators/{}/modules/labor", s.audio), json!({})).await.ok();
    s.pm.api.put(&format!("{base}/collaborators/{}/modules/assets", s.audio), json!({})).await.ok();
    for tag in RADIOS {
        s.pm.api.post(&format!("{base}/assets"), json!({ "tag": tag, "kind": "radio" })).await.ok();
    }
    let mut devices = Vec::new();
    for (who, name) in [(&s.pm, "pm-tablet"), (&s.vic, "vic-phone"), (&s.cara, "cara-phone"), (&dee, "dee-phone")] {
        let dev = Device::open("mem://", &format!("{name}-{seed}"), &who.token).await;
        dev.replica.subscribe(&s.event).await.unwrap();
        devices.push(SimDevice { dev, account: who.id.clone() });
    }
    let ever = HashMap::from([
        (s.vic.id.clone(), HashSet::from([s.audio.clone()])),
        (s.cara.id.clone(), HashSet::from([s.client.clone()])),
        (dee.id.clone(), HashSet::from([s.audio.clone()])),
        (s.pm.id.clone(), HashSet::new()),
    ]);
    let dee_in = Some(s.audio.clone());
    let ever_gate = HashSet::from([s.vic.id.clone(), dee.id.clone(), s.pm.id.clone()]);
    World {
        ever_gate,
        client_gate: false,
        scans: 0,
        punches: 0,
        moves: 0,
        srv: Some(srv),
        config,
        ever_seat: HashSet::from([s.pm.id.clone()]),
        ever,
        s,
        dee,
        devices,
        collaborators,
        dee_in,
        vic_seat: false,
        made: Vec::new(),
        refused: HashSet::new(),
        restarts: 0,
        log: Vec::new(),
    }
}

/// No device holds a record of a collaborator its person never had access to (or, without
/// ever holding a seat, a record only seat holders see).
async fn check_no_leak(w: &World, step: usize) {
    for d in &w.devices {
        let seat = w.ever_seat.contains(&d.account);
        let allowed = &w.ever[&d.account];
        let gate = w.ever_gate.contains(&d.account);
        for kind in engine::Kind::ALL.map(engine::Kind::as_str) {
            for r in d.dev.replica.records(&w.s.event, kind).await.unwrap() {
                if seat || r.kind == "event" {
                    continue;
                }
                if engine::Kind::parse(&r.kind).is_some_and(engine::Kind::personal) {
                    assert_eq!(
                        r.data["person"],
                        d.account.as_str(),
                        "step {step}: {} holds another person's {}",
                        d.dev.replica.device(),
                        r.kind
                    );
                    continue;
                }
                if r.kind.starts_with("labor_") {
                    continue;
                }
                // A module's records: only for someone who ever had the module (only Audio has
                // the assets module, so Audio's members past and present).
                let module = if ASSET_KINDS.contains(&r.kind.as_str()) {
                    Some(("assets", w.ever[&d.account].contains(&w.s.audio)))
                } else if GATE_KINDS.contains(&r.kind.as_str()) {
                    assert!(r.data.get("notes").is_none(), "step {step}: a lane holds a credential's notes");
                    Some(("gate", gate))
                } else {
                    None
                };
                if let Some((name, ever)) = module {
                    let device = d.dev.replica.device();
                    assert!(
                        ever,
                        "step {step}: {device} holds {} {} without ever having the {name} module",
                        r.kind, r.id
                    );
                    continue;
                }
                let of = tests::owners(&r.kind, &r.id, &r.data);
                assert!(
                    of.iter().any(|c| allowed.contains(c)),
                    "step {step}: {} holds {} {} of {of:?}, never allowed ({allowed:?})\n{}",
                    d.dev.replica.device(),
                    r.kind,
                    r.id,
                    w.log.join("\n")
                );
            }
        }
    }
}

const GATE_KINDS: &[&str] = &["zone", "gate", "credential", "scan", "scan_flag"];
const ASSET_KINDS: &[&str] = &["asset", "custody", "custody_flag"];

async fn step(w: &mut World, rng: &mut Rng, n: usize) {
    let roll = rng.below(100);
    let i = rng.below(w.devices.len());
    let event = w.s.event.clone();
    match roll {
        // A lane scans, online or not.
        0..=19 => {
            // The first device from `i` on that is a lane now.
            let mut lane = None;
            for k in 0..w.devices.len() {
                let j = (i + k) % w.devices.len();
                if let Ok(gates) = w.devices[j].dev.replica.gates(&event).await
                    && !gates.is_empty()
                {
                    lane = Some((j, gates));
                    break;
                }
            }
            let Some((j, gates)) = lane else { return };
            let d = &mut w.devices[j];
            // A third of the time the device is a desk instead (Audio has assets): a radio
            // goes out to someone or comes back.
            if rng.chance(33) {
                let tag = RADIOS[rng.below(RADIOS.len())];
                let name = d.dev.replica.device().to_string();
                let holder = d.account.clone();
                let fields = if rng.chance(55) {
                    let due = engine::time::format(chrono::Utc::now() + chrono::Duration::hours(1));
                    json!({ "asset": tag, "action": "check_out", "holder": holder, "due_at": due })
                } else {
                    json!({ "asset": tag, "action": "check_in", "condition": "ok" })
                };
                let w_ =
                    LocalWrite { kind: "custody".into(), op: MutationOp::Create, record: None, fields: fields.clone() };
                match d.dev.replica.write(&event, w_).await {
                    Ok(done) => {
                        w.made.push((name.clone(), done.mutation));
                        w.moves += 1;
                        w.log.push(format!("{n}: {name} moved {tag}: {}", fields["action"]));
                    }
                    Err(e) => w.log.push(format!("{n}: {name} custody refused locally: {}", e.code())),
                }
                return;
            }
            // Half the rest the lane's person punches the clock instead (Audio has labor).
            if rng.chance(50) {
                let kinds = [PunchKind::In, PunchKind::Out, PunchKind::MealStart, PunchKind::MealEnd];
                let kind = kinds[rng.below(kinds.len())];
                let name = d.dev.replica.device().to_string();
                match d
                    .dev
                    .replica
                    .write(
                        &event,
                        LocalWrite {
                            kind: "punch".into(),
                            op: MutationOp::Create,
                            record: None,
                            fields: json!({ "kind": kind }),
                        },
                    )
                    .await
                {
                    Ok(done) => {
                        w.made.push((name.clone(), done.mutation));
                        w.punches += 1;
                        w.log.push(format!("{n}: {name} punched {kind:?}"));
                    }
                    Err(e) => w.log.push(format!("{n}: {name} punch refused locally: {}", e.code())),
                }
                return;
            }
            let g = &gates[rng.below(gates.len())];
            let uid = CREDENTIALS[rng.below(CREDENTIALS.len())];
            let direction = if rng.chance(30) { Direction::Exit } else { Direction::Entry };
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let name = d.dev.replica.device().to_string();
            match d.dev.replica.scan(&event, uid, &g.id, &g.lanes[0], direction).await {
                Ok(o) => {
                    w.made.push((name.clone(), o.mutation));
                    w.scans += 1;
                    w.log.push(format!("{n}: {name} scanned {uid} at {}: {:?}", g.name, o.scan.decision));
                }
                Err(e) => w.log.push(format!("{n}: {name} scan refused locally: {}", e.code())),
            }
        }
        // A local write, online or not.
        20..=34 => {
            let d = &mut w.devices[i];
            if d.dev.replica.standing(&event).await.is_err() {
                return;
            }
            let held = d.dev.replica.tasks(&event, Default::default()).await.unwrap();
            let write = if held.is_empty() || rng.chance(30) {
                let mut fields = json!({ "title": format!("{} {n}", WORDS[rng.below(WORDS.len())]) });
                if rng.chance(50) {
                    fields["collaborator"] = json!(w.collaborators[rng.below(3)]);
                }
                LocalWrite { kind: "task".into(), op: MutationOp::Create, record: None, fields }
            } else {
                let t = &held[rng.below(held.len())];
                if rng.chance(8) {
                    LocalWrite {
                        kind: "task".into(),
                        op: MutationOp::Delete,
                        record: Some(t.id.clone()),
                        fields: Value::Null,
                    }
                } else {
                    let mut fields = task_fields(rng, n);
                    if rng.chance(10) {
                        fields["collaborator"] = json!(w.collaborators[rng.below(3)]);
                    }
                    LocalWrite { kind: "task".into(), op: MutationOp::Update, record: Some(t.id.clone()), fields }
                }
            };
            // Edits on different devices are stamped in the order the simulation makes them.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let name = d.dev.replica.device().to_string();
            match d.dev.replica.write(&event, write.clone()).await {
                Ok(done) => {
                    w.made.push((name.clone(), done.mutation));
                    w.log.push(format!("{n}: {name} wrote {:?} {:?} {}", write.op, write.record, write.fields));
                }
                Err(e) => w.log.push(format!("{n}: {name} refused locally: {}", e.code())),
            }
        }
        // The network comes and goes.
        35..=49 => {
            let srv = w.srv.as_ref().expect("server");
            let d = &mut w.devices[i].dev;
            if d.online() {
                d.drop_connection().await;
                w.log.push(format!("{n}: {} offline", d.replica.device()));
            } else {
                d.connect(srv).await;
                w.log.push(format!("{n}: {} online", d.replica.device()));
            }
        }
        // Some syncing.
        50..=71 => {
            let d = &mut w.devices[i].dev;
            if d.online() {
                d.round().await;
                w.log.push(format!("{n}: {} round", d.replica.device()));
            }
        }
        // A push whose answer is lost with the connection.
        72..=76 => {
            let d = &mut w.devices[i].dev;
            if d.online() && d.push_then_drop().await {
                w.log.push(format!("{n}: {} pushed and dropped", d.replica.device()));
            }
        }
        // The office changes access or moves records.
        77..=91 => office(w, rng, n).await,
        // The office edits a task directly.
        92..=97 => {
            let api = w.api(&w.s.pm);
            let all = api.get(&format!("/v1/events/{event}/tasks")).await.ok();
            let all = all.as_array().unwrap();
            if !all.is_empty() {
                let t = &all[rng.below(all.len())];
                let fields = task_fields(rng, n);
                let r =
                    api.patch(&format!("/v1/events/{event}/tasks/{}", t["id"].as_str().unwrap()), fields.clone()).await;
                edited(&r);
                w.log.push(format!("{n}: office edited {} {fields} ({})", t["id"], r.status));
            }
        }
        // The server restarts.
        _ => {
            if w.restarts < 2 {
                w.restarts += 1;
                let srv = w.srv.take().expect("server");
                srv.stop().await.expect("stop");
                for d in &mut w.devices {
                    d.dev.drop_connection().await;
                }
                w.srv = Some(TestServer::start_config(w.config.clone(), None).await);
                w.log.push(format!("{n}: server restarted"));
            }
        }
    }
    w.tell();
}

/// An office edit of a task it listed a moment ago: done, or the task is gone meanwhile (a
/// device's push still being applied after its connection dropped deleted it).
fn edited(r: &tests::Reply) {
    assert!(r.status == 200 || r.status == 404, "office edit: {} {}", r.status, r.body);
}

async fn office(w: &mut World, rng: &mut Rng, n: usize) {
    let event = w.s.event.clone();
    let api = w.api(&w.s.pm);
    match rng.below(5) {
        4 => {
            // Client gets the gate module, or loses it.
            let path = format!("/v1/events/{event}/collaborators/{}/modules/gate", w.s.client);
            if w.client_gate {
                api.delete(&path).await.ok();
            } else {
                api.put(&path, json!({})).await.ok();
                w.ever_gate.insert(w.s.cara.id.clone());
                if w.dee_in.as_deref() == Some(w.s.client.as_str()) {
                    w.ever_gate.insert(w.dee.id.clone());
                }
            }
            w.client_gate = !w.client_gate;
            w.log.push(format!("{n}: office set client's gate module to {}", w.client_gate));
        }
        0 => {
            // Move a task to another collaborator.
            let all = api.get(&format!("/v1/events/{event}/tasks")).await.ok();
            let all = all.as_array().unwrap();
            if !all.is_empty() {
                let t = &all[rng.below(all.len())];
                let to = w.collaborators[rng.below(3)].clone();
                let r = api
                    .patch(
                        &format!("/v1/events/{event}/tasks/{}", t["id"].as_str().unwrap()),
                        json!({ "collaborator": to }),
                    )
                    .await;
                edited(&r);
                w.log.push(format!("{n}: office moved {} to {to} ({})", t["id"], r.status));
            }
        }
        1 => {
            // Dee moves between collaborators, or loses her place.
            let base = format!("/v1/events/{event}/collaborators");
            if let Some(c) = w.dee_in.take() {
                api.delete(&format!("{base}/{c}/members/{}", w.dee.id)).await.ok();
                w.log.push(format!("{n}: office removed dee from {c}"));
            }
            if rng.chance(70) {
                let to = w.collaborators[1 + rng.below(2)].clone();
                w.ever.get_mut(&w.dee.id).unwrap().insert(to.clone());
                if to == w.s.audio || w.client_gate {
                    w.ever_gate.insert(w.dee.id.clone());
                }
                api.post(&format!("{base}/{to}/members"), json!({ "email": w.dee.email })).await.ok();
                w.log.push(format!("{n}: office put dee in {to}"));
                w.dee_in = Some(to);
            }
        }
        2 => {
            // Vic gets the second seat, or gives it back.
            if w.vic_seat {
                api.delete(&format!("/v1/events/{event}/seats/{}", w.s.vic.id)).await.ok();
                w.log.push(format!("{n}: office released vic's seat"));
            } else {
                w.ever_seat.insert(w.s.vic.id.clone());
                api.post(&format!("/v1/events/{event}/seats"), json!({ "email": w.s.vic.email })).await.ok();
                w.log.push(format!("{n}: office gave vic a seat"));
            }
            w.vic_seat = !w.vic_seat;
        }
        _ => {
            // A collaborator turns read-only, or writable again.
            let c = w.collaborators[1 + rng.below(2)].clone();
            let read_only = rng.chance(50);
            api.patch(&format!("/v1/events/{event}/collaborators/{c}"), json!({ "read_only": read_only })).await.ok();
            w.log.push(format!("{n}: office set {c} read_only={read_only}"));
        }
    }
}

/// Brings every device online and syncs them all until nothing moves.
async fn quiesce(w: &mut World) {
    for _ in 0..3 {
        for d in &mut w.devices {
            if !d.dev.online() {
                d.dev.connect(w.srv.as_ref().unwrap()).await;
            }
        }
        let head = w.head().await;
        let heads = HashMap::from([(w.s.event.clone(), head)]);
        let srv = w.srv.as_ref().unwrap();
        for d in &mut w.devices {
            // A person without access to the event has no cursor to reach.
            let following = srv.engine.as_ref().unwrap().view(&d.account, &w.s.event).await.is_ok();
            let want = if following { heads.clone() } else { HashMap::new() };
            d.dev.sync(&want).await;
            if !following {
                // Heard the refusal: a round more lets it arrive.
                d.dev.round().await;
            }
        }
        w.tell();
        if w.head().await == head {
            break;
        }
    }
}

async fn check_quiesced(w: &World) {
    let engine = w.srv().engine.as_ref().unwrap();
    for d in &w.devices {
        let mut held = Vec::new();
        for kind in engine::Kind::ALL.map(engine::Kind::as_str) {
            for r in d.dev.replica.records(&w.s.event, kind).await.unwrap() {
                held.push((r.kind, r.id, r.data));
            }
        }
        held.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut want: Vec<(String, String, Value)> = match engine.snapshot(&d.account, &w.s.event).await {
            Ok(s) => s.records.into_iter().map(|r| (r.kind, r.id, r.data)).collect(),
            Err(_) => Vec::new(),
        };
        want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        if held != want {
            let extra: Vec<_> = held.iter().filter(|h| !want.contains(h)).collect();
            let missing: Vec<_> = want.iter().filter(|x| !held.contains(x)).collect();
            panic!(
                "{} does not hold the server's view\nheld but not the server's: {extra:#?}\nthe server's but not held: {missing:#?}\n{}",
                d.dev.replica.device(),
                w.log.join("\n")
            );
        }
        let status = d.dev.replica.status();
        assert_eq!(status.pending, 0, "{} still has changes to send", d.dev.replica.device());
        assert!(!d.dev.replica.has_unseen_accepted().await);
    }
    // Every mutation was applied exactly once, or refused and the device told.
    let log = engine.changes_since(&w.s.event, 0, engine::changes::READ_CHANGES_MAX).await.unwrap();
    let mut applied: HashMap<(String, String), usize> = HashMap::new();
    // A scan's mutation may also write the flags it raises or withdraws, a punch's the
    // timecards it changes: those entries carry its origin too, but are not applications of it.
    for c in log.iter().filter(|c| !matches!(c.kind.as_str(), "scan_flag" | "timecard" | "custody_flag")) {
        if let Some(o) = &c.origin {
            *applied.entry((o.device.clone(), o.mutation.clone())).or_default() += 1;
        }
    }
    for m in &w.made {
        let times = applied.get(m).copied().unwrap_or(0);
        let refused = w.refused.contains(m);
        assert!(
            (times == 1 && !refused) || (times == 0 && refused),
            "mutation {m:?} applied {times} times, refused: {refused}\n{}",
            w.log.join("\n")
        );
    }
    let made: BTreeSet<&(String, String)> = w.made.iter().collect();
    assert!(applied.keys().all(|k| made.contains(k)), "the log holds a mutation no device made");

    // The duplicate entries flagged are exactly those the scans hold, by clock.
    let pm = &w.s.pm.id;
    // Every row in one page (the lists page at PAGE_MAX rows at most; a run makes far fewer).
    let all = engine::paging::PageAsk { after: None, limit: Some(engine::paging::PAGE_MAX) };
    let scans: Vec<Scan> = engine.list_scans(pm, &w.s.event, Default::default(), &all).await.unwrap().items;
    let mut want = BTreeSet::new();
    for uid in CREDENTIALS {
        let of: Vec<&Scan> = scans.iter().filter(|s| s.credential == *uid).collect();
        want.extend(engine::frontgate::duplicate_entries(&of).into_iter().map(|(dup, _)| dup));
    }
    let flags: Vec<ScanFlag> = engine.list_scan_flags(pm, &w.s.event, &all).await.unwrap().items;
    let flagged: BTreeSet<String> =
        flags.into_iter().filter(|f| f.code == ScanFlagCode::DuplicateEntry).map(|f| f.scan).collect();
    assert_eq!(flagged, want, "duplicate entries flagged vs held by the scans\n{}", w.log.join("\n"));
    let dups = want.len();
    // And so are the double check-outs.
    let mut want = BTreeSet::new();
    for tag in RADIOS {
        let moves = engine.custody_history(pm, &w.s.event, tag).await.unwrap();
        let refs: Vec<&engine::model::CustodyMove> = moves.iter().collect();
        want.extend(engine::assets::double_checkouts(&refs).into_iter().map(|(dup, _)| dup));
    }
    let flagged: BTreeSet<String> =
        engine.list_custody_flags(pm, &w.s.event, &all).await.unwrap().items.into_iter().map(|f| f.custody).collect();
    assert_eq!(flagged, want, "double check-outs flagged vs held by the moves\n{}", w.log.join("\n"));
    let doubles = want.len();
    let punches = engine.list_punches(pm, &w.s.event, Default::default(), &all).await.unwrap().items;
    println!(
        "  {} scans made, {} on the server, {dups} duplicate entries flagged; {} punches made, {} on the server; {} custody moves, {doubles} double check-outs",
        w.scans,
        scans.len(),
        w.punches,
        punches.len(),
        w.moves,
    );
}

async fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut w = setup(seed).await;
    for n in 0..steps {
        step(&mut w, &mut rng, n).await;
        check_no_leak(&w, n).await;
    }
    quiesce(&mut w).await;
    check_no_leak(&w, steps).await;
    check_quiesced(&w).await;
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation_over_many_seeds() {
    let steps = env("SIM_STEPS", 60) as usize;
    let seeds: Vec<u64> = match std::env::var("SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let first = env("SIM_FIRST", 1);
            (first..first + env("SIM_SEEDS", 16)).collect()
        }
    };
    for seed in seeds {
        println!("simulation seed {seed} ({steps} steps)");
        let run = tokio::spawn(run(seed, steps));
        if let Err(e) = run.await {
            panic!(
                "simulation failed with SEED={seed} (replay: SEED={seed} cargo test -p tests --test it simulation): {e}"
            );
        }
    }
}
