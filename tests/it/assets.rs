//! Gear custody through every door: desks as device engines checking gear out and in
//! (offline too), the double check-outs the server flags, overdue gear, and who may do what.

use std::collections::HashMap;

use engine::model::Condition;
use serde_json::json;
use tests::{Stage, SyncClient, TestServer, device::Device, fresh, stage};

async fn heads(srv: &TestServer, s: &Stage) -> HashMap<String, i64> {
    let (_, head) = fresh(srv, &s.pm.token, &s.event).await;
    [(s.event.clone(), head)].into()
}

async fn desk(srv: &TestServer, s: &Stage, name: &str, token: &str) -> Device {
    let mut d = Device::open("mem://", name, token).await;
    d.replica.subscribe(&s.event).await.unwrap();
    d.connect(srv).await;
    d.sync(&heads(srv, s).await).await;
    d
}

fn hours_from_now(h: i64) -> String {
    engine::time::format(chrono::Utc::now() + chrono::Duration::hours(h))
}

async fn flagged(s: &Stage) -> Vec<(String, String)> {
    let f = s.pm.api.get(&format!("/v1/events/{}/custody-flags", s.event)).await.ok();
    f.as_array()
        .unwrap()
        .iter()
        .map(|f| (f["custody"].as_str().unwrap().to_string(), f["earlier"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn desks_check_gear_out_and_in_and_the_server_flags_double_checkouts() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    let api = &s.pm.api;
    for c in [&s.audio, &s.client] {
        api.put(&format!("/v1/events/{ev}/collaborators/{c}/modules/assets"), json!({})).await.ok();
    }
    for (tag, kind) in [("R-1", "radio"), ("R-2", "radio"), ("C-1", "cart")] {
        api.post(&format!("/v1/events/{ev}/assets"), json!({ "tag": tag, "kind": kind })).await.ok();
    }
    api.post(&format!("/v1/events/{ev}/assets"), json!({ "tag": "R-1", "kind": "radio" }))
        .await
        .err(409, "asset_exists");
    let mut a = desk(&srv, &s, "desk-a", &s.vic.token).await;
    let mut b = desk(&srv, &s, "desk-b", &s.cara.token).await;
    let mut c = desk(&srv, &s, "desk-c", &s.pm.token).await;
    assert_eq!(a.replica.assets(&ev).await.unwrap().len(), 3);

    // Online: desk A checks a radio out to Cara; desk B knows, and will not hand it out again.
    a.replica.check_out(&ev, "R-1", &s.cara.id, &hours_from_now(4)).await.unwrap();
    a.sync(&heads(&srv, &s).await).await;
    b.sync(&heads(&srv, &s).await).await;
    let e = b.replica.check_out(&ev, "R-1", &s.vic.id, &hours_from_now(4)).await.unwrap_err();
    assert_eq!(e.code(), "already_checked_out");
    let mine = b.replica.assets_i_hold(&ev).await.unwrap();
    assert_eq!(mine.iter().map(|a| a.asset.tag.as_str()).collect::<Vec<_>>(), ["R-1"]);
    // Back, damaged: a note is required.
    let e = b.replica.check_in(&ev, "R-1", Condition::Damaged, None).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    b.replica.check_in(&ev, "R-1", Condition::Damaged, Some("antenna snapped")).await.unwrap();
    // A cart goes out already late.
    a.replica.check_out(&ev, "C-1", &s.vic.id, &hours_from_now(-1)).await.unwrap();

    // The network goes at every desk. A hands R-2 to Vic; C takes it back in; B then hands
    // it to Cara. B's sync comes before C's: for a while it looks like a double check-out.
    for d in [&mut a, &mut b, &mut c] {
        d.sync(&heads(&srv, &s).await).await;
        d.drop_connection().await;
    }
    let first = a.replica.check_out(&ev, "R-2", &s.vic.id, &hours_from_now(2)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    c.replica.check_in(&ev, "R-2", Condition::Ok, None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let second = b.replica.check_out(&ev, "R-2", &s.cara.id, &hours_from_now(2)).await.unwrap();
    for d in [&mut a, &mut b] {
        d.connect(&srv).await;
        d.sync(&heads(&srv, &s).await).await;
    }
    assert_eq!(flagged(&s).await, vec![(second.id.clone(), first.id.clone())], "the later check-out by clock");
    a.sync(&heads(&srv, &s).await).await;
    assert_eq!(a.replica.custody_flags(&ev).await.unwrap().len(), 1, "the flag reaches the desks");
    // The check-in made between them arrives: it was no double check-out after all.
    c.connect(&srv).await;
    c.sync(&heads(&srv, &s).await).await;
    assert!(flagged(&s).await.is_empty());
    a.sync(&heads(&srv, &s).await).await;
    assert!(a.replica.custody_flags(&ev).await.unwrap().is_empty(), "the withdrawal reaches the desks");
    // Every move is kept.
    let history = api.get(&format!("/v1/events/{ev}/assets/R-2/custody")).await.ok();
    let actions: Vec<&str> = history.as_array().unwrap().iter().map(|m| m["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["check_out", "check_in", "check_out"]);
    assert_eq!(a.replica.custody_history(&ev, "R-2").await.unwrap().len(), 3);

    // Where everything is, as the office sees it.
    let all = api.get(&format!("/v1/events/{ev}/assets")).await.ok();
    let by_tag = |tag: &str| all.as_array().unwrap().iter().find(|a| a["asset"]["tag"] == tag).unwrap().clone();
    assert_eq!((by_tag("R-1")["holder"].as_str(), by_tag("R-1")["last_condition"].as_str()), (None, Some("damaged")));
    assert_eq!(by_tag("R-2")["holder"].as_str(), Some(s.cara.id.as_str()));
    let overdue = api.get(&format!("/v1/events/{ev}/assets?overdue=true")).await.ok();
    let overdue: Vec<&str> = overdue.as_array().unwrap().iter().map(|a| a["asset"]["tag"].as_str().unwrap()).collect();
    assert_eq!(overdue, ["C-1"]);
    assert!(a.replica.assets(&ev).await.unwrap().iter().any(|x| x.asset.tag == "C-1" && x.overdue));
}

#[tokio::test]
async fn custody_refuses_bad_input_clearly() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    let api = &s.pm.api;
    api.put(&format!("/v1/events/{ev}/collaborators/{}/modules/assets", s.audio), json!({})).await.ok();
    api.post(&format!("/v1/events/{ev}/assets"), json!({ "tag": "R-1", "kind": "radio" })).await.ok();
    api.post(&format!("/v1/events/{ev}/assets"), json!({ "tag": "has space", "kind": "radio" }))
        .await
        .err(422, "invalid_input");
    s.vic
        .api
        .post(&format!("/v1/events/{ev}/assets"), json!({ "tag": "R-9", "kind": "radio" }))
        .await
        .err(403, "not_permitted");
    // From the web desk: an unknown holder, an unknown asset, a check-out without a due time.
    let out = |holder: &str| json!({ "action": "check_out", "holder": holder, "due_at": hours_from_now(2) });
    s.vic.api.post(&format!("/v1/events/{ev}/assets/R-1/custody"), out("nobody")).await.err(422, "unknown_holder");
    s.vic.api.post(&format!("/v1/events/{ev}/assets/NOPE/custody"), out(&s.vic.id)).await.err(404, "not_found");
    s.vic
        .api
        .post(&format!("/v1/events/{ev}/assets/R-1/custody"), json!({ "action": "check_out", "holder": s.vic.id }))
        .await
        .err(422, "invalid_input");
    let made = s.vic.api.post(&format!("/v1/events/{ev}/assets/R-1/custody"), out(&s.vic.id)).await.ok();
    assert_eq!(made["device"], "server");
    // Without the module: nothing of the gear, no moves — on the server and on the device.
    s.cara.api.get(&format!("/v1/events/{ev}/assets")).await.err(404, "not_found");
    s.cara.api.post(&format!("/v1/events/{ev}/assets/R-1/custody"), out(&s.cara.id)).await.err(404, "not_found");
    let mut cara = Device::open("mem://", "cara-desk", &s.cara.token).await;
    cara.replica.subscribe(&ev).await.unwrap();
    cara.connect(&srv).await;
    cara.sync(&heads(&srv, &s).await).await;
    assert_eq!(cara.replica.records(&ev, "asset").await.unwrap().len(), 0);
    assert_eq!(cara.replica.check_in(&ev, "R-1", Condition::Ok, None).await.unwrap_err().code(), "not_found");
    let mut forged = SyncClient::connect(&srv, &s.cara.token).await;
    forged
        .send(json!({ "type": "push", "event": ev, "mutations": [{ "id": "f1", "kind": "custody", "op": "create",
            "fields": { "asset": "R-1", "action": "check_in", "condition": "ok", "device_time": engine::time::now() } }] }))
        .await;
    let ack = forged.next_of("ack").await;
    assert_eq!(ack["results"][0]["code"], "not_found");
}
