//! Sign-ins that last a show day: access tokens renewed by rotating refresh tokens, a
//! replayed refresh token ending its sign-in, the list of one's sign-ins, signing out (one
//! device, another, everywhere), a password change, and the event team signing out a lost
//! tablet. An ended sign-in's HTTP calls get 401 at once and its sockets close with 4004.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{SyncClient, TestServer, User, stage};

async fn renew(srv: &TestServer, refresh: &str) -> tests::Reply {
    srv.anonymous().post("/v1/sessions/refresh", json!({ "refresh_token": refresh })).await
}

/// Signs `u` in again on a device named `device`: its tokens and sign-in id.
async fn sign_in(srv: &TestServer, u: &User, device: &str) -> Value {
    srv.device_sign_in(u, Some(device)).await
}

#[tokio::test]
async fn a_sign_in_is_renewed_by_a_refresh_token_that_changes_every_time() {
    let srv = TestServer::start().await;
    let vic = srv.sign_up("Vic").await;

    // Each renewal gives a new access token and a new refresh token, for the same sign-in.
    let first = renew(&srv, &vic.refresh_token).await.ok();
    assert_eq!(first["session"], vic.sign_in.as_str());
    assert_eq!(first["account"]["id"], vic.id.as_str());
    let second_refresh = first["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, vic.refresh_token);
    let token = first["token"].as_str().unwrap();
    let me = srv.anonymous().with_token(token).get("/v1/me").await.ok();
    assert_eq!(me["id"], vic.id.as_str());
    let second = renew(&srv, &second_refresh).await.ok();
    let third_refresh = second["refresh_token"].as_str().unwrap().to_string();

    // Bad refresh tokens: one answer for all, and they end nothing.
    for bad in ["", "no-dot", "x.y", &format!("{}.{}", vic.sign_in, "0".repeat(64)), &"a".repeat(300)] {
        renew(&srv, bad).await.err(401, "sign_in_ended");
    }
    let third = renew(&srv, &third_refresh).await.ok();
    let fourth_refresh = third["refresh_token"].as_str().unwrap().to_string();

    // The refresh token spent two renewals ago, replayed (stolen): the sign-in ends, for the
    // thief and for the device alike, and its access tokens are refused at once.
    renew(&srv, &second_refresh).await.err(401, "sign_in_ended");
    renew(&srv, &fourth_refresh).await.err(401, "sign_in_ended");
    let latest = third["token"].as_str().unwrap();
    srv.anonymous().with_token(latest).get("/v1/me").await.err(401, "sign_in_ended");
    vic.api.get("/v1/me").await.err(401, "sign_in_ended");
    let mut c = SyncClient::raw(&srv).await;
    c.send(json!({ "type": "hello", "protocol": 2, "token": latest, "device": "phone" })).await;
    assert_eq!(c.closed().await.0, 4004);

    // Signing in again opens a new sign-in; the ended one is no longer listed.
    let again = sign_in(&srv, &vic, "Vic's phone").await;
    let api = srv.anonymous().with_token(again["token"].as_str().unwrap());
    let listed = api.get("/v1/me/sessions").await.ok();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [again["session"].as_str().unwrap()]);
    assert_eq!(listed[0]["name"], "Vic's phone");
    assert_eq!(listed[0]["current"], true);
    assert!(!listed.to_string().contains("refresh"), "no token or hash is listed: {listed}");
}

/// The answer to a renewal lost on the venue's Wi-Fi: the device retries with the refresh
/// token it still holds. Within the grace that is taken (once more), not ended as a replay.
#[tokio::test]
async fn a_renewal_whose_answer_was_lost_is_retried_without_ending_the_sign_in() {
    let srv = TestServer::start().await;
    let vic = srv.sign_up("Vic").await;
    let lost = renew(&srv, &vic.refresh_token).await.ok();
    let retried = renew(&srv, &vic.refresh_token).await.ok();
    assert_eq!(retried["session"], vic.sign_in.as_str());
    // The answer that never arrived is spent; the retry's answer is the one that works.
    let next = renew(&srv, retried["refresh_token"].as_str().unwrap()).await.ok();
    srv.anonymous().with_token(next["token"].as_str().unwrap()).get("/v1/me").await.ok();
    // The lost one presented later is a replay.
    renew(&srv, lost["refresh_token"].as_str().unwrap()).await.err(401, "sign_in_ended");
    srv.anonymous().with_token(next["token"].as_str().unwrap()).get("/v1/me").await.err(401, "sign_in_ended");
}

#[tokio::test]
async fn signing_out_ends_a_sign_in_at_once_on_http_and_the_socket() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let vic = &s.vic;
    let tablet = sign_in(&srv, vic, "gate tablet").await;
    let tablet_token = tablet["token"].as_str().unwrap().to_string();
    let tablet_api = srv.anonymous().with_token(&tablet_token);
    let phone = sign_in(&srv, vic, "phone").await;
    let phone_api = srv.anonymous().with_token(phone["token"].as_str().unwrap());

    let listed = vic.api.get("/v1/me/sessions").await.ok();
    assert_eq!(listed.as_array().unwrap().len(), 3, "sign-up, tablet, phone: {listed}");

    // Vic ends the tablet's sign-in from the phone: the tablet's open socket closes with 4004
    // at once, its HTTP calls get 401, its refresh token renews nothing.
    let mut socket = SyncClient::connect_device(&srv, &tablet_token, "gate-tablet").await;
    socket.subscribe(&s.event, None).await;
    let asked = Instant::now();
    phone_api.delete(&format!("/v1/me/sessions/{}", tablet["session"].as_str().unwrap())).await.ok();
    let (code, reason) = socket.closed().await;
    let took = asked.elapsed();
    assert_eq!(code, 4004, "{reason}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    tablet_api.get("/v1/me").await.err(401, "sign_in_ended");
    renew(&srv, tablet["refresh_token"].as_str().unwrap()).await.err(401, "sign_in_ended");
    // Another person's sign-in is not found, and stays.
    s.pm.api.delete(&format!("/v1/me/sessions/{}", phone["session"].as_str().unwrap())).await.err(404, "not_found");
    phone_api.get("/v1/me").await.ok();

    // Signing out on the phone ends that sign-in only.
    phone_api.delete("/v1/me/sessions/current").await.ok();
    phone_api.get("/v1/me").await.err(401, "sign_in_ended");
    vic.api.get("/v1/me").await.ok();

    // Signing out everywhere ends them all, the asking one included.
    let other = sign_in(&srv, vic, "laptop").await;
    let ended = vic.api.delete("/v1/me/sessions").await.ok();
    assert_eq!(ended["ended"], 2);
    vic.api.get("/v1/me").await.err(401, "sign_in_ended");
    srv.anonymous().with_token(other["token"].as_str().unwrap()).get("/v1/me").await.err(401, "sign_in_ended");
}

#[tokio::test]
async fn a_password_change_ends_every_other_sign_in() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let vic = &s.vic;
    let tablet = sign_in(&srv, vic, "tablet").await;
    let mut socket = SyncClient::connect_device(&srv, tablet["token"].as_str().unwrap(), "tablet").await;
    socket.subscribe(&s.event, None).await;

    // A wrong current password changes nothing.
    vic.api
        .put("/v1/me/password", json!({ "current_password": "wrong password", "new_password": "a new password" }))
        .await
        .err(403, "wrong_password");
    vic.api
        .put("/v1/me/password", json!({ "current_password": "correct horse battery", "new_password": "short" }))
        .await
        .err(422, "invalid_input");
    srv.anonymous().with_token(tablet["token"].as_str().unwrap()).get("/v1/me").await.ok();

    let changed = vic
        .api
        .put(
            "/v1/me/password",
            json!({ "current_password": "correct horse battery", "new_password": "a new password" }),
        )
        .await
        .ok();
    assert_eq!(changed["ended"], 1);
    assert_eq!(socket.closed().await.0, 4004);
    srv.anonymous().with_token(tablet["token"].as_str().unwrap()).get("/v1/me").await.err(401, "sign_in_ended");
    // The asking device stays signed in; the new password signs in, the old one does not.
    vic.api.get("/v1/me").await.ok();
    srv.anonymous()
        .post("/v1/sessions", json!({ "email": vic.email, "password": "correct horse battery" }))
        .await
        .err(401, "bad_credentials");
    srv.anonymous().post("/v1/sessions", json!({ "email": vic.email, "password": "a new password" })).await.ok();
}

/// A gate tablet is lost: a seat holder of the event signs it out from the devices that
/// synced the event. Nobody else may, and nobody sees a person's other devices.
#[tokio::test]
async fn the_event_team_signs_out_a_lost_tablet() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = &s.event;
    let tablet = sign_in(&srv, &s.vic, "gate B tablet").await;
    let home = sign_in(&srv, &s.vic, "home laptop").await;
    let mut socket = SyncClient::connect_device(&srv, tablet["token"].as_str().unwrap(), "gate-b:7a1f").await;
    socket.subscribe(ev, None).await;

    let path = format!("/v1/events/{ev}/people/{}/sessions", s.vic.id);
    let listed = s.pm.api.get(&path).await.ok();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gate B tablet"], "only the devices that synced this event");
    assert_eq!(listed[0]["device"], "gate-b:7a1f");

    // A member of a collaborator, an outsider: no.
    s.cara.api.get(&path).await.err(403, "not_permitted");
    let outsider = srv.sign_up("Olga").await;
    outsider.api.get(&path).await.err(404, "not_found");
    let one = format!("{path}/{}", tablet["session"].as_str().unwrap());
    outsider.api.delete(&one).await.err(404, "not_found");
    s.cara.api.delete(&one).await.err(403, "not_permitted");
    // A sign-in that never synced this event is not the team's to end.
    s.pm.api.delete(&format!("{path}/{}", home["session"].as_str().unwrap())).await.err(404, "not_found");

    let asked = Instant::now();
    s.pm.api.delete(&one).await.ok();
    assert_eq!(socket.closed().await.0, 4004);
    assert!(asked.elapsed() < Duration::from_secs(1));
    srv.anonymous().with_token(tablet["token"].as_str().unwrap()).get("/v1/me").await.err(401, "sign_in_ended");
    srv.anonymous().with_token(home["token"].as_str().unwrap()).get("/v1/me").await.ok();
}

/// An open socket lives past its first access token when the device hands it a renewed
/// one; a token of another sign-in is refused.
#[tokio::test]
async fn a_socket_takes_a_renewed_token_and_stays_open() {
    let srv = TestServer::start_with(|c| c.token_ttl = Duration::from_secs(3)).await;
    let s = stage(&srv).await;
    let tablet = sign_in(&srv, &s.vic, "tablet").await;
    let mut c = SyncClient::connect(&srv, tablet["token"].as_str().unwrap()).await;
    c.subscribe(&s.event, None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let renewed = renew(&srv, tablet["refresh_token"].as_str().unwrap()).await.ok();
    c.send(json!({ "type": "renew", "token": renewed["token"] })).await;
    let answer = c.next_of("renewed").await;
    assert_eq!(answer["expires_at"], renewed["expires_at"]);
    // Past the first token's expiry the session still serves.
    let first_expiry = std::time::UNIX_EPOCH + Duration::from_secs(tablet["expires_at"].as_u64().unwrap());
    let wait = first_expiry.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    tests::task(&s, &s.pm, &s.audio, "After the first token").await;
    loop {
        let m = c.next_of("changes").await;
        if m.to_string().contains("After the first token") {
            break;
        }
    }
    // Another person's token: the connection closes as invalid.
    c.send(json!({ "type": "renew", "token": s.cara.token })).await;
    assert_eq!(c.closed().await.0, 4003);
}

/// A sign-in not renewed for its idle lifetime ends by itself (30 days by default; a
/// second here).
#[tokio::test]
async fn a_sign_in_unused_for_its_idle_lifetime_ends() {
    let srv = TestServer::start_with(|c| c.engine.sign_in_idle = Duration::from_secs(1)).await;
    let vic = srv.sign_up("Vic").await;
    let renewed = renew(&srv, &vic.refresh_token).await.ok();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    renew(&srv, renewed["refresh_token"].as_str().unwrap()).await.err(401, "sign_in_ended");
    srv.anonymous().with_token(renewed["token"].as_str().unwrap()).get("/v1/me").await.err(401, "sign_in_ended");
    assert!(vic.api.get("/v1/me/sessions").await.status == 401);
}

/// Password hashing runs behind a bounded queue: a flood of sign-ins past it is answered
/// 503 `busy` with `Retry-After` at once instead of queuing argon2's memory without end,
/// and the node signs people in again as soon as the flood stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_ins_past_the_hashing_queue_is_told_to_come_back() {
    let srv = TestServer::start_with(|c| {
        c.engine.password_hashing = engine::PasswordHashing::Standard;
        c.password_gate = server::gate::PasswordGateLimits { running: 1, waiting_per_address: 1, waiting_max: 8 };
    })
    .await;
    let vic = srv.sign_up("Vic").await;
    let http = reqwest::Client::new();
    let flood: Vec<_> = (0..24)
        .map(|i| {
            let req = http
                .post(format!("{}/v1/sessions", srv.base))
                .json(&json!({ "email": format!("guess{i}@example.test"), "password": "wrong password" }));
            tokio::spawn(async move { req.send().await.unwrap() })
        })
        .collect();
    let (mut busy, mut refused) = (0, 0);
    for r in flood {
        let r = r.await.unwrap();
        match r.status().as_u16() {
            503 => {
                assert_eq!(r.headers()["retry-after"], "1");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["code"], "busy");
                busy += 1;
            }
            401 => refused += 1,
            other => panic!("unexpected {other}: {}", r.text().await.unwrap()),
        }
    }
    assert!(busy > 0 && refused >= 2, "{busy} told to come back, {refused} checked");
    // A renewal costs no password hash: it is never busy.
    renew(&srv, &vic.refresh_token).await.ok();
    sign_in(&srv, &vic, "after the flood").await;
}

/// The per-address sign-in limit is a setting; renewals are not counted against it.
#[tokio::test]
async fn renewals_are_not_counted_against_the_sign_in_limit() {
    let srv = TestServer::start_with(|c| {
        c.attempts.sign_ins_per_address = server::attempts::Rate { burst: 2, per_minute: 1 };
    })
    .await;
    let vic = srv.sign_up("Vic").await;
    sign_in(&srv, &vic, "one").await;
    sign_in(&srv, &vic, "two").await;
    let third = srv
        .anonymous()
        .post("/v1/sessions", json!({ "email": vic.email, "password": "correct horse battery" }))
        .await
        .err(429, "too_many_attempts");
    assert!(third["message"].as_str().unwrap().contains("try again"));
    let mut refresh = vic.refresh_token.clone();
    for _ in 0..10 {
        refresh = renew(&srv, &refresh).await.ok()["refresh_token"].as_str().unwrap().to_string();
    }
}

/// Turns at password checks go round the addresses: a flood of guesses from one address
/// delays an honest sign-in from another by about one check, and never turns it away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_does_not_turn_away_a_sign_in_from_another() {
    let srv = TestServer::start_with(|c| {
        c.engine.password_hashing = engine::PasswordHashing::Standard;
        c.password_gate = server::gate::PasswordGateLimits { running: 1, waiting_per_address: 2, waiting_max: 16 };
    })
    .await;
    let vic = srv.sign_up("Vic").await;
    let flooder =
        reqwest::Client::builder().local_address("127.0.0.1".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let flood: Vec<_> = (0..16)
        .map(|i| {
            let (http, base, stop, busy) = (flooder.clone(), srv.base.clone(), stop.clone(), busy.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/v1/sessions"))
                        .json(&json!({ "email": format!("nobody{i}@example.test"), "password": "guess" }))
                        .send()
                        .await
                        .unwrap();
                    if r.status() == 503 {
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let honest =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    for _ in 0..3 {
        let r = honest
            .post(format!("{}/v1/sessions", srv.base))
            .json(&json!({ "email": vic.email, "password": "correct horse battery" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the honest sign-in got its turn: {}", r.text().await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    assert!(busy.load(std::sync::atomic::Ordering::Relaxed) > 0, "the flood itself was turned away");
}
