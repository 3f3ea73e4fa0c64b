//! Crew time through every door: phones punching offline (the device engine), punches pushed
//! over the socket with their own clock, the timecards the server builds, who sees whose, and
//! the event team's approval and locked periods.

use std::collections::HashMap;

use engine::model::PunchKind;
use serde_json::{Value, json};
use tests::{Stage, SyncClient, TestServer, device::Device, fresh, stage};

async fn heads(srv: &TestServer, s: &Stage) -> HashMap<String, i64> {
    let (_, head) = fresh(srv, &s.pm.token, &s.event).await;
    [(s.event.clone(), head)].into()
}

/// Grants the labor module to Audio (Vic) and Client (Cara), with rules for a site at UTC-5.
async fn crew(s: &Stage) {
    let ev = &s.event;
    for c in [&s.audio, &s.client] {
        s.pm.api.put(&format!("/v1/events/{ev}/collaborators/{c}/modules/labor"), json!({})).await.ok();
    }
    let rules = json!({ "minimum_call_hours": 4, "overtime_after_hours": 8, "meal_penalty_after_hours": 5, "utc_offset_minutes": -300 });
    let r = s.pm.api.patch(&format!("/v1/events/{ev}/labor/rules"), rules).await.ok();
    assert_eq!(r["meal_penalty_after_hours"], 5.0);
}

fn punch(id: &str, kind: &str, at: &str) -> Value {
    json!({ "id": format!("m-{id}-{}", uuid_like(at)), "kind": "punch", "op": "create", "record": id,
            "fields": { "kind": kind, "device_time": at } })
}

fn uuid_like(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A punch id (the server wants client ids to be UUIDs).
fn pid(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

async fn push(c: &mut SyncClient, event: &str, mutations: Vec<Value>) -> Vec<Value> {
    c.send(json!({ "type": "push", "event": event, "mutations": mutations })).await;
    c.next_of("ack").await["results"].as_array().unwrap().clone()
}

fn statuses(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| r["code"].as_str().or(r["status"].as_str()).unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn timecards_are_built_from_punches_and_each_person_sees_their_own() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    crew(&s).await;

    // Cara's phone sends a day of punches (its own clock): 08:00–10:00 local, then a long
    // shift 12:00–23:30 with a meal 18:00–18:30. Arrival order is not time order.
    let mut cara = SyncClient::connect(&srv, &s.cara.token).await;
    cara.subscribe(&ev, None).await;
    let day = [
        punch(&pid(2), "out", "2026-07-04T15:00:00Z"),
        punch(&pid(1), "in", "2026-07-04T13:00:00Z"),
        punch(&pid(3), "in", "2026-07-04T17:00:00Z"),
        punch(&pid(4), "meal_start", "2026-07-04T23:00:00Z"),
        punch(&pid(5), "meal_end", "2026-07-04T23:30:00Z"),
        punch(&pid(6), "out", "2026-07-05T04:30:00Z"),
    ];
    let results = push(&mut cara, &ev, day.to_vec()).await;
    assert_eq!(statuses(&results), vec!["accepted"; 6]);
    // The same punch again, in another mutation: stored once.
    let mut again = punch(&pid(1), "in", "2026-07-04T13:00:00Z");
    again["id"] = json!("resent-1");
    assert_eq!(statuses(&push(&mut cara, &ev, vec![again]).await), ["accepted"]);
    let mut clash = punch(&pid(1), "out", "2026-07-04T13:00:00Z");
    clash["id"] = json!("clash-1");
    assert_eq!(statuses(&push(&mut cara, &ev, vec![clash]).await), ["punch_exists"]);

    let cards = s.pm.api.get(&format!("/v1/events/{ev}/timecards?person={}", s.cara.id)).await.ok();
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 1, "{cards:?}");
    let c = &cards[0];
    assert_eq!(c["day"], "2026-07-04", "the late shift belongs to the day it started");
    // 2 h (paid 4, the minimum call) + 11 h (11.5 less the half-hour meal); overtime past 8;
    // no meal within 5 h of 12:00: one penalty.
    assert_eq!((c["worked_hours"].as_f64(), c["paid_hours"].as_f64()), (Some(13.0), Some(15.0)));
    assert_eq!((c["overtime_hours"].as_f64(), c["meal_penalties"].as_i64()), (Some(5.0), Some(1)));
    assert_eq!(c["punches"].as_array().unwrap().len(), 6);
    let punches = s.pm.api.get(&format!("/v1/events/{ev}/punches?person={}", s.cara.id)).await.ok();
    assert_eq!(punches.as_array().unwrap().len(), 6, "sent twice, stored once");
    let (_, head) = fresh(&srv, &s.pm.token, &ev).await;
    cara.sync_to(&ev, head).await;
    assert_eq!(cara.held(&ev).iter().filter(|(k, _)| k == "timecard").count(), 1);

    // Vic punches on his phone, offline; the shift has no clock-out yet.
    let mut phone = Device::open("mem://", "vic-phone", &s.vic.token).await;
    phone.replica.subscribe(&ev).await.unwrap();
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    phone.drop_connection().await;
    let clock_in = phone.replica.punch(&ev, PunchKind::In, None, None).await.unwrap();
    let same = phone.replica.punch(&ev, PunchKind::In, None, Some(&clock_in.id)).await.unwrap();
    assert_eq!(same, clock_in, "punching again with its id answers the punch");
    phone.replica.punch(&ev, PunchKind::MealStart, None, None).await.unwrap();
    assert_eq!(phone.replica.status().pending, 2);
    assert_eq!(phone.replica.my_punches(&ev).await.unwrap().len(), 2);
    phone.connect(&srv).await;
    phone.sync(&heads(&srv, &s).await).await;
    let mine = phone.replica.timecards(&ev).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].person, s.vic.id);
    let codes: Vec<&str> = mine[0].exceptions.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["missing_out"], "an open shift is an exception, not an error");

    // Nobody receives another person's punches or timecards; the event team sees everyone's.
    let vic_frames: String = phone.frames.iter().map(Value::to_string).collect();
    assert!(!vic_frames.contains(&s.cara.id), "Vic's phone received something of Cara's");
    let cara_frames: String = cara.log.iter().map(Value::to_string).collect();
    assert!(!cara_frames.contains(&clock_in.id), "Cara received Vic's punch");
    assert_eq!(s.vic.api.get(&format!("/v1/events/{ev}/punches")).await.ok().as_array().unwrap().len(), 2);
    s.vic.api.get(&format!("/v1/events/{ev}/punches?person={}", s.cara.id)).await.err(404, "not_found");
    let all = s.pm.api.get(&format!("/v1/events/{ev}/timecards")).await.ok();
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Approval, then a locked period: a late punch is kept and shown, never counted.
    let path = format!("/v1/events/{ev}/timecards/{}/2026-07-04/approval", s.cara.id);
    assert_eq!(s.pm.api.put(&path, json!({})).await.ok()["status"], "approved");
    s.cara.api.put(&path, json!({})).await.err(403, "not_permitted");
    let period = json!({ "first_day": "2026-07-01", "last_day": "2026-07-04" });
    s.pm.api.post(&format!("/v1/events/{ev}/labor/periods"), period.clone()).await.ok();
    s.pm.api.post(&format!("/v1/events/{ev}/labor/periods"), period).await.err(409, "period_overlaps");
    let late = push(&mut cara, &ev, vec![punch(&pid(7), "in", "2026-07-04T22:00:00Z")]).await;
    assert_eq!(statuses(&late), ["accepted"], "the punch is kept");
    let c = s.pm.api.get(&format!("/v1/events/{ev}/timecards?person={}&day=2026-07-04", s.cara.id)).await.ok();
    let c = &c[0];
    assert_eq!((c["status"].as_str(), c["worked_hours"].as_f64()), (Some("approved"), Some(13.0)));
    let late: Vec<&Value> =
        c["exceptions"].as_array().unwrap().iter().filter(|e| e["code"] == "period_locked").collect();
    assert_eq!((late.len(), late[0]["punch"].as_str()), (1, Some(pid(7).as_str())));
    assert_eq!(
        s.pm.api.get(&format!("/v1/events/{ev}/punches?person={}", s.cara.id)).await.ok().as_array().unwrap().len(),
        7
    );

    // Without the labor module: no punching, and the phone purges what it held.
    s.pm.api.delete(&format!("/v1/events/{ev}/collaborators/{}/modules/labor", s.audio)).await.ok();
    phone.sync(&heads(&srv, &s).await).await;
    assert_eq!(phone.replica.records(&ev, "punch").await.unwrap().len(), 0);
    assert_eq!(phone.replica.records(&ev, "timecard").await.unwrap().len(), 0);
    assert_eq!(phone.replica.punch(&ev, PunchKind::Out, None, None).await.unwrap_err().code(), "not_found");
    let mut vic = SyncClient::connect(&srv, &s.vic.token).await;
    let refused = push(&mut vic, &ev, vec![punch(&pid(8), "out", "2026-07-05T01:00:00Z")]).await;
    assert_eq!(statuses(&refused), ["not_found"]);
}

#[tokio::test]
async fn punches_refuse_bad_input_clearly() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    crew(&s).await;
    let mut cara = SyncClient::connect(&srv, &s.cara.token).await;
    let bad = vec![
        json!({ "id": "b1", "kind": "punch", "op": "create", "fields": { "kind": "in", "device_time": "yesterday" } }),
        json!({ "id": "b2", "kind": "punch", "op": "create", "fields": { "kind": "lunch", "device_time": "2026-07-04T13:00:00Z" } }),
        json!({ "id": "b3", "kind": "punch", "op": "create", "fields": { "kind": "in", "device_time": "2026-07-04T13:00:00Z", "gps": { "lat": 91, "lon": 0 } } }),
        json!({ "id": "b4", "kind": "punch", "op": "create", "record": "not-a-uuid", "fields": { "kind": "in", "device_time": "2026-07-04T13:00:00Z" } }),
        json!({ "id": "b5", "kind": "punch", "op": "delete", "record": pid(1) }),
        json!({ "id": "b6", "kind": "punch", "op": "create", "fields": { "kind": "in", "device_time": "2026-07-04T13:00:00Z", "gps": { "lat": 30.27, "lon": -97.74, "accuracy_m": 8 } } }),
    ];
    let results = push(&mut cara, &ev, bad).await;
    assert_eq!(
        statuses(&results),
        ["invalid_input", "invalid_input", "invalid_input", "invalid_input", "invalid_input", "accepted"]
    );
    let p = s.cara.api.get(&format!("/v1/events/{ev}/punches")).await.ok();
    assert_eq!(p[0]["gps"]["accuracy_m"], 8.0);
    let api = &s.pm.api;
    api.patch(&format!("/v1/events/{ev}/labor/rules"), json!({ "minimum_call_hours": -1 }))
        .await
        .err(422, "invalid_input");
    api.patch(&format!("/v1/events/{ev}/labor/rules"), json!({ "bonus": 1 })).await.err(400, "invalid_body");
    api.post(&format!("/v1/events/{ev}/labor/periods"), json!({ "first_day": "2026-07-05", "last_day": "2026-07-04" }))
        .await
        .err(422, "invalid_input");
    api.put(&format!("/v1/events/{ev}/timecards/{}/2026-01-01/approval", s.cara.id), json!({}))
        .await
        .err(404, "not_found");
    s.cara
        .api
        .patch(&format!("/v1/events/{ev}/labor/rules"), json!({ "minimum_call_hours": 1 }))
        .await
        .err(403, "not_permitted");
    // Someone with no labor module sees nothing of it.
    let dee = srv.sign_up("Dee").await;
    dee.api.get(&format!("/v1/events/{ev}/timecards")).await.err(404, "not_found");
}

/// The labor module granted again to a collaborator whose members are connected: every
/// member gets the module's data back (read once for all of them) and their own punches —
/// never another member's.
#[tokio::test]
async fn a_module_granted_again_gives_each_connected_member_their_own_punches_only() {
    let srv = TestServer::start().await;
    let s = stage(&srv).await;
    let ev = s.event.clone();
    crew(&s).await;
    let lee = srv.sign_up("Lee").await;
    s.pm.api
        .post(&format!("/v1/events/{ev}/collaborators/{}/members", s.audio), json!({ "email": lee.email }))
        .await
        .ok();
    let mut vic = SyncClient::connect(&srv, &s.vic.token).await;
    let mut lee_phone = SyncClient::connect(&srv, &lee.token).await;
    vic.subscribe(&ev, None).await;
    lee_phone.subscribe(&ev, None).await;
    let vic_punch = pid(21);
    let lee_punch = pid(22);
    assert_eq!(
        statuses(&push(&mut vic, &ev, vec![punch(&vic_punch, "in", "2026-07-04T13:00:00Z")]).await),
        ["accepted"]
    );
    assert_eq!(
        statuses(&push(&mut lee_phone, &ev, vec![punch(&lee_punch, "in", "2026-07-04T13:05:00Z")]).await),
        ["accepted"]
    );

    let path = format!("/v1/events/{ev}/collaborators/{}/modules/labor", s.audio);
    s.pm.api.delete(&path).await.ok();
    s.pm.api.put(&path, json!({})).await.ok();
    for (c, who) in [(&mut vic, &s.vic), (&mut lee_phone, &lee)] {
        let (want, head) = fresh(&srv, &who.token, &ev).await;
        c.sync_to(&ev, head).await;
        assert_eq!(c.held(&ev), want, "{} holds exactly what a fresh snapshot gives", who.email);
        assert!(want.iter().any(|(k, _)| k == "labor_rules"), "the module's data came back: {want:?}");
    }
    let held = |c: &SyncClient, id: &str| c.held(&ev).iter().any(|(k, i)| k == "punch" && i == id);
    assert!(held(&vic, &vic_punch) && !held(&vic, &lee_punch));
    assert!(held(&lee_phone, &lee_punch) && !held(&lee_phone, &vic_punch));
    let frames: String = vic.log.iter().map(Value::to_string).collect();
    assert!(!frames.contains(&lee_punch), "Vic's session was sent Lee's punch");
    let frames: String = lee_phone.log.iter().map(Value::to_string).collect();
    assert!(!frames.contains(&vic_punch), "Lee's session was sent Vic's punch");
}
