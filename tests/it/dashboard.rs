//! The web dashboard: the page and its assets as the server serves them, the reads only the
//! dashboard makes, and the whole page in a real browser — Debian's Chromium, headless,
//! driven by playwright-core from `tests/browser/dashboard.mjs` against this server.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use tests::{Stage, SyncClient, TestServer, files::upload_file, stage, task};

/// The repository's root and the Chromium the browser tests drive, checked to be there.
fn browser_prerequisites() -> (std::path::PathBuf, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    assert!(
        root.join("server/dashboard/node_modules/playwright-core").is_dir(),
        "the browser test drives Chromium with playwright-core: run `npm ci` in server/dashboard (.ci/run does)"
    );
    let chromium = std::env::var("BACKOPS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser test needs Chromium at {chromium}: `apt-get install chromium` (.ci/run does), or set BACKOPS_CHROMIUM"
    );
    (root, chromium)
}

/// Runs `tests/browser/<script>` with `setup` in BACKOPS_E2E; returns what it said, failing
/// when it failed.
async fn run_browser(root: &Path, script: &str, setup: Value) -> String {
    let script = root.join("tests/browser").join(script);
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .env("BACKOPS_E2E", setup.to_string())
            .output()
            .expect("node runs (Node.js 20 or later)")
    })
    .await
    .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{said}");
    assert!(run.status.success(), "the browser scenarios failed:\n{said}");
    said
}

fn at(minutes_from_now: i64) -> String {
    engine::time::format(chrono::Utc::now() + chrono::Duration::minutes(minutes_from_now))
}

#[tokio::test]
async fn the_page_is_served_from_the_binary_with_a_strict_policy() {
    let srv = TestServer::start().await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/", srv.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/app.js">"#), "{html}");
    assert!(!html.contains("<script>"), "no inline script: the policy would refuse it");

    let js = http.get(format!("{}/app.js", srv.base)).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = js.headers()["etag"].clone();
    let body = js.bytes().await.unwrap();
    assert!(body.len() > 10_000 && std::str::from_utf8(&body).unwrap().contains("/v1/sync"));
    let again = http.get(format!("{}/app.js", srv.base)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    for asset in ["/app.css", "/icon.svg"] {
        assert_eq!(http.get(format!("{}{asset}", srv.base)).send().await.unwrap().status(), 200, "{asset}");
    }
    // The API keeps its own answers: an unknown path is a JSON 404, not the page.
    let missing = http.get(format!("{}/v1/nothing-here", srv.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "not_found");
}

#[tokio::test]
async fn devices_and_names_are_shown_only_to_whom_the_event_allows() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tests::test_config(dir.path());
    config.database_url = format!("surrealkv://{}", dir.path().join("db").display());
    let srv = TestServer::start_config(config.clone(), None).await;
    let s = stage(&srv).await;
    let ev = &s.event;
    let devices = |api: tests::Api| async move { api.get(&format!("/v1/events/{ev}/devices")).await.ok() };
    let mut phone = SyncClient::connect_device(&srv, &s.vic.token, "vic-phone").await;
    phone.subscribe(ev, None).await;
    let listed = devices(s.pm.api.clone()).await;
    let d = listed.as_array().unwrap();
    assert_eq!(d.len(), 1, "{listed}");
    assert_eq!(
        (d[0]["device"].as_str(), d[0]["account"].as_str(), d[0]["sessions"].as_i64(), d[0]["connected"].as_bool()),
        (Some("vic-phone"), Some(s.vic.id.as_str()), Some(1), Some(true))
    );
    let cursor = d[0]["cursor"].as_i64().unwrap();
    assert!(cursor > 0, "{listed}");
    phone.disconnect().await;
    let deadline = tokio::time::Instant::now() + tests::WAIT_MAX;
    loop {
        let d = devices(s.pm.api.clone()).await;
        if d[0]["connected"] == false {
            assert_eq!((d[0]["device"].as_str(), d[0]["sessions"].as_i64()), (Some("vic-phone"), Some(0)));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the device never left: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The database keeps it: a restarted server lists the phone with its last sync.
    srv.stop().await.unwrap();
    let srv = TestServer::start_config(config, None).await;
    let after = devices(srv.anonymous().with_token(&s.pm.token)).await;
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");
    assert_eq!((after[0]["device"].as_str(), after[0]["connected"].as_bool()), (Some("vic-phone"), Some(false)));
    assert_eq!(after[0]["cursor"].as_i64(), Some(cursor));
    assert_eq!(after[0]["last_seen"].as_str().map(str::len), Some(24), "{after}");
    let (pm, vic) = (srv_user(&srv, &s.pm), srv_user(&srv, &s.vic));
    // Devices page like every list: a crew of phones never stops at a bound.
    for name in ["cara-phone", "cara-tablet"] {
        let mut c = SyncClient::connect_device(&srv, &s.cara.token, name).await;
        c.subscribe(ev, None).await;
        c.disconnect().await;
    }
    let (all, pages) = pm.api.all_pages(&format!("/v1/events/{ev}/devices?limit=1")).await;
    let mut names: Vec<&str> = all.iter().map(|d| d["device"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!((names, pages), (vec!["cara-phone", "cara-tablet", "vic-phone"], 3));

    // Members see neither the devices nor people outside their collaborator; strangers
    // don't learn the event exists.
    vic.api.get(&format!("/v1/events/{ev}/devices")).await.err(403, "not_permitted");
    let stranger = srv.sign_up("Stranger").await;
    stranger.api.get(&format!("/v1/events/{ev}/devices")).await.err(404, "not_found");
    stranger.api.get(&format!("/v1/events/{ev}/people")).await.err(404, "not_found");
    let names = |v: Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(pm.api.get(&format!("/v1/events/{ev}/people")).await.ok()), ["Cara", "Pm", "Vic"]);
    assert_eq!(names(vic.api.get(&format!("/v1/events/{ev}/people")).await.ok()), ["Vic"]);
}

/// The same person, speaking to `srv` (after a restart on a new port).
fn srv_user(srv: &TestServer, u: &tests::User) -> tests::User {
    tests::User {
        id: u.id.clone(),
        email: u.email.clone(),
        token: u.token.clone(),
        sign_in: u.sign_in.clone(),
        refresh_token: u.refresh_token.clone(),
        api: srv.anonymous().with_token(&u.token),
    }
}

/// What the browser scenarios start from, beyond the stage: Vic holds the second seat;
/// tasks, activities, advances and a photo in two collaborators; a front gate with scans
/// (one a duplicate entry), crew on the clock, gear out and overdue.
async fn staffed(srv: &TestServer, s: &Stage) -> Value {
    let ev = &s.event;
    let api = &s.pm.api;
    api.post(&format!("/v1/events/{ev}/seats"), json!({ "email": s.vic.email })).await.ok();

    let audio_tasks = ["Hang the PA", "Retension the truss", "Line check"];
    let client_tasks = ["Guest list for the VIP deck", "Confirm catering"];
    for (title, status) in audio_tasks.iter().zip(["todo", "active", "in_review"]) {
        let id = task(s, &s.pm, &s.audio, title).await;
        api.patch(&format!("/v1/events/{ev}/tasks/{id}"), json!({ "status": status })).await.ok();
    }
    for title in client_tasks {
        task(s, &s.pm, &s.client, title).await;
    }
    for (title, from, to, who) in [
        ("Doors open", -30, 240, json!([s.audio, s.client])),
        ("Line check on the main stage", 60, 90, json!([s.audio])),
    ] {
        api.post(
            &format!("/v1/events/{ev}/activities"),
            json!({ "title": title, "starts_at": at(from), "ends_at": at(to), "area": "Main stage", "collaborators": who }),
        )
        .await
        .ok();
    }
    api.post(
        &format!("/v1/events/{ev}/advances"),
        json!({ "collaborator": s.audio, "title": "Tech rider", "answers": { "console": "DiGiCo SD12" } }),
    )
    .await
    .ok();
    api.post(&format!("/v1/events/{ev}/advances"), json!({ "collaborator": s.client, "title": "Hospitality" }))
        .await
        .ok();
    upload_file(&s.vic.api, ev, &s.audio, "stage-left.jpg", &tests::files::jpeg(800, 600, 40)).await;

    // The front gate: two gates; five admissions at A, three at B, one of which is W-1
    // again (already inside through A): a duplicate entry.
    api.post(&format!("/v1/events/{ev}/zones"), json!({ "code": "GA", "name": "General admission" })).await.ok();
    let gates = tests::gates(api, ev, "GA", &["Gate A", "Gate B"], 2).await;
    let mut csv = String::from("uid,kind,holder_name,zones\n");
    for i in 1..=10 {
        csv.push_str(&format!("W-{i},ga,Guest {i},GA\n"));
    }
    api.raw(reqwest::Method::POST, &format!("/v1/events/{ev}/credentials/import"), "text/csv", csv.into()).await.ok();
    let mut lane = SyncClient::connect_device(srv, &s.pm.token, "gate-a-lane-1").await;
    lane.subscribe(ev, None).await;
    let scans: Vec<(&str, &str, i64)> = vec![
        ("W-1", &gates[0], -12),
        ("W-2", &gates[0], -11),
        ("W-3", &gates[0], -9),
        ("W-4", &gates[0], -6),
        ("W-5", &gates[0], -3),
        ("W-6", &gates[1], -8),
        ("W-7", &gates[1], -5),
        ("W-1", &gates[1], -2),
    ];
    let mut mutations: Vec<Value> = scans
        .iter()
        .map(|(uid, gate, m)| {
            json!({ "id": uuid::Uuid::new_v4().to_string(), "kind": "scan", "op": "create",
                    "record": uuid::Uuid::new_v4().to_string(),
                    "fields": { "credential": uid, "gate": gate, "lane": "1", "direction": "entry",
                                "decision": "admit", "device_time": at(*m) } })
        })
        .collect();
    // Crew time: the producer clocked in an hour ago.
    mutations.push(json!({ "id": uuid::Uuid::new_v4().to_string(), "kind": "punch", "op": "create",
                           "record": uuid::Uuid::new_v4().to_string(),
                           "fields": { "kind": "in", "device_time": at(-60) } }));
    lane.send(json!({ "type": "push", "event": ev, "mutations": mutations })).await;
    let ack = lane.next_of("ack").await;
    assert!(ack["results"].as_array().unwrap().iter().all(|r| r["status"] == "accepted"), "{ack}");
    lane.disconnect().await;

    // Gear: a radio an hour overdue, a radio out until tonight, a case back in.
    for (tag, kind, name) in [("R-1", "radio", "Radio 1"), ("R-2", "radio", "Radio 2"), ("C-1", "case", "Mic case")] {
        api.post(&format!("/v1/events/{ev}/assets"), json!({ "tag": tag, "kind": kind, "name": name })).await.ok();
    }
    let out = |tag: &'static str, due: i64| {
        let api = api.clone();
        let (ev, holder) = (ev.clone(), s.vic.id.clone());
        async move {
            api.post(
                &format!("/v1/events/{ev}/assets/{tag}/custody"),
                json!({ "action": "check_out", "holder": holder, "due_at": at(due) }),
            )
            .await
            .ok()
        }
    };
    out("R-1", -60).await;
    out("R-2", 240).await;
    out("C-1", 240).await;
    api.post(&format!("/v1/events/{ev}/assets/C-1/custody"), json!({ "action": "check_in", "condition": "ok" }))
        .await
        .ok();
    let flags = api.get(&format!("/v1/events/{ev}/scan-flags")).await.ok();
    assert_eq!(flags.as_array().unwrap().len(), 1, "{flags}");

    json!({
        "audio_tasks": audio_tasks,
        "client_tasks": client_tasks,
        "activity_now": "Doors open",
        "advance_review": "Tech rider",
        "admissions_per_gate": { "Gate A": 5, "Gate B": 3 },
        "crew_on_clock": 1,
        "gate_device": "gate-a-lane-1",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let (root, chromium) = browser_prerequisites();
    let dashboard = root.join("server/dashboard");

    // Codes that prove an email go through a real SMTP server; the page's newcomer reads
    // theirs from its maildir.
    let smtp = tests::mail::SmtpSink::start().await;
    let srv = smtp.server().await;
    let s = stage(&srv).await;
    let mut setup = staffed(&srv, &s).await;
    setup["maildir"] = json!(smtp.delivered());

    // The vendor's photo, larger than a chunk so that it goes up in several.
    let photos = tempfile::tempdir().unwrap();
    let photo = photos.path().join("guest-entrance.jpg");
    let bytes = tests::files::jpeg(1600, 1200, 90);
    assert!(bytes.len() > 1024 * 1024, "{}", bytes.len());
    std::fs::write(&photo, &bytes).unwrap();
    setup["photo"] = json!(photo);
    setup["photo_size"] = json!(bytes.len());
    setup["photo_sha256"] = json!(tests::files::sha256(&bytes));

    let artifacts = std::env::var("BACKOPS_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/browser-artifacts"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let person = |u: &tests::User, name: &str| json!({ "id": u.id, "email": u.email, "password": "correct horse battery", "token": u.token, "name": name });
    let extra = json!({
        "base": srv.base,
        "event": s.event,
        "audio": s.audio,
        "client": s.client,
        "pm": person(&s.pm, "Pm"),
        "vic": person(&s.vic, "Vic"),
        "cara": person(&s.cara, "Cara"),
        "artifacts": artifacts,
        "chromium": chromium,
        "dashboard_dir": dashboard,
    });
    for (k, v) in extra.as_object().unwrap() {
        setup[k] = v.clone();
    }
    let said = run_browser(&root, "dashboard.mjs", setup).await;
    assert_eq!(said.matches("ok - ").count(), 12, "every scenario ran:\n{said}");
    for shot in ["seat-holder-overview.png", "seat-holder-field.png", "free-member.png"] {
        assert!(std::fs::metadata(artifacts.join(shot)).map(|m| m.len() > 10_000).unwrap_or(false), "{shot}");
    }

    // What the pages did reached the server, once.
    let tasks = s.pm.api.get(&format!("/v1/events/{}/tasks", s.event)).await.ok();
    let titles: Vec<&str> = tasks.as_array().unwrap().iter().filter_map(|t| t["title"].as_str()).collect();
    for t in ["Print 20,000 wristbands", "Retension the truss, done offline", "Made while you were away", "Hang the PA"]
    {
        assert_eq!(titles.iter().filter(|x| **x == t).count(), 1, "{t}: {titles:?}");
    }
    assert!(!titles.contains(&"Forged") && !titles.contains(&"Renamed while offline"), "{titles:?}");
}

/// The page's sign-in across a show day (tests/browser/sign_in.mjs), against a server whose
/// access tokens last 3 s.
#[tokio::test]
async fn the_dashboard_renews_its_sign_in_and_signs_out_in_a_real_browser() {
    let (root, chromium) = browser_prerequisites();
    let smtp = tests::mail::SmtpSink::start().await;
    let srv = smtp.server_with(|c| c.token_ttl = Duration::from_secs(3)).await;
    let s = stage(&srv).await;
    let person = |u: &tests::User, name: &str| json!({ "id": u.id, "email": u.email, "password": "correct horse battery", "name": name });
    let setup = json!({
        "base": srv.base,
        "event": s.event,
        "audio": s.audio,
        "pm": person(&s.pm, "Pm"),
        "vic": person(&s.vic, "Vic"),
        "chromium": chromium,
        "dashboard_dir": root.join("server/dashboard"),
    });
    let said = run_browser(&root, "sign_in.mjs", setup).await;
    assert_eq!(said.matches("ok - ").count(), 4, "every scenario ran:\n{said}");
}
