//! The business rules, one scenario each, through the HTTP API.

use std::time::Duration;

use serde_json::json;
use tests::{TestServer, User};

async fn team(srv: &TestServer, owner: &User, name: &str) -> String {
    let _ = srv;
    owner.api.post("/v1/orgs", json!({ "name": name })).await.ok()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn organization_roles() {
    let srv = TestServer::start().await;
    let olga = srv.sign_up("Olga").await;
    let adam = srv.sign_up("Adam").await;
    let mo = srv.sign_up("Mo").await;
    let org = team(&srv, &olga, "Crew Co").await;
    let members = format!("/v1/orgs/{org}/members");

    olga.api.post(&members, json!({ "email": adam.email, "role": "admin" })).await.ok();
    olga.api.post(&members, json!({ "email": adam.email, "role": "member" })).await.err(409, "already_member");
    olga.api.post(&members, json!({ "email": "ghost@example.test", "role": "member" })).await.err(422, "no_account");
    // An admin adds members but cannot make owners.
    adam.api.post(&members, json!({ "email": mo.email, "role": "owner" })).await.err(403, "org_admin_required");
    adam.api.post(&members, json!({ "email": mo.email, "role": "member" })).await.ok();
    // A member sees the organization but manages nothing.
    mo.api.get(&format!("/v1/orgs/{org}")).await.ok();
    mo.api.get(&format!("/v1/orgs/{org}/billing")).await.err(403, "org_admin_required");
    mo.api
        .post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "event_pro", "quantity": 1 }))
        .await
        .err(403, "org_admin_required");
    mo.api
        .post(
            &format!("/v1/orgs/{org}/events"),
            json!({ "name": "E", "default_collaborator_name": "P", "license": "x" }),
        )
        .await
        .err(403, "org_admin_required");
    let listed = olga.api.get(&members).await.ok();
    let roles: Vec<_> = listed.as_array().unwrap().iter().map(|m| (m["email"].clone(), m["role"].clone())).collect();
    assert_eq!(
        roles,
        vec![
            (json!(olga.email), json!("owner")),
            (json!(adam.email), json!("admin")),
            (json!(mo.email), json!("member"))
        ]
    );

    // The last owner stays.
    olga.api.patch(&format!("{members}/{}", olga.id), json!({ "role": "admin" })).await.err(422, "last_owner");
    olga.api.delete(&format!("{members}/{}", olga.id)).await.err(422, "last_owner");
    olga.api.patch(&format!("{members}/{}", adam.id), json!({ "role": "owner" })).await.ok();
    olga.api.delete(&format!("{members}/{}", olga.id)).await.ok();
    olga.api.get(&format!("/v1/orgs/{org}")).await.err(404, "not_found");
    // Mo leaves on their own.
    mo.api.delete(&format!("{members}/{}", mo.id)).await.ok();
    assert_eq!(mo.api.get("/v1/orgs").await.ok().as_array().unwrap().len(), 1);

    // A personal organization is just its owner.
    let personal = olga.personal_org().await;
    olga.api
        .post(&format!("/v1/orgs/{personal}/members"), json!({ "email": mo.email, "role": "member" }))
        .await
        .err(422, "personal_org");
}

#[tokio::test]
async fn which_licenses_create_events() {
    let srv = TestServer::start().await;
    let u = srv.sign_up("Lia").await;
    let org = u.personal_org().await;
    let ev = |license: &str| json!({ "name": "Show", "default_collaborator_name": "Lia Prod", "license": license });

    // Billing and one Event Pro license; even so, an Org Standard license creates no event.
    u.ready_org(&org, 1).await;
    let standard =
        u.api.post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "org_standard", "quantity": 3 })).await.ok();
    let standard = standard["id"].as_str().unwrap().to_string();
    u.wait_license_active(&org, &standard).await;
    u.api.post(&format!("/v1/orgs/{org}/events"), ev(&standard)).await.err(422, "license_cannot_create_events");

    let org_pro =
        u.api.post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "org_pro", "quantity": 1 })).await.ok();
    let org_pro = org_pro["id"].as_str().unwrap().to_string();
    u.wait_license_active(&org, &org_pro).await;
    // With an Event Pro license in the organization, an Org Pro license creates events.
    let created = u.api.post(&format!("/v1/orgs/{org}/events"), ev(&org_pro)).await.ok();
    assert_eq!(created["license"], org_pro.as_str());

    // A team organization with only Org Pro: at least one Event Pro is required.
    let team_org = team(&srv, &u, "Lia Team").await;
    u.api
        .put(
            &format!("/v1/orgs/{team_org}/billing/payment-method"),
            json!({ "kind": "bank_account", "provider_token": "ba_1", "last4": "6789" }),
        )
        .await
        .ok();
    u.api
        .put(
            &format!("/v1/orgs/{team_org}/billing/address"),
            json!({ "line1": "2 Pier", "city": "Oslo", "zip": "0150", "country": "NO" }),
        )
        .await
        .ok();
    let pro =
        u.api.post(&format!("/v1/orgs/{team_org}/licenses"), json!({ "kind": "org_pro", "quantity": 1 })).await.ok();
    let pro = pro["id"].as_str().unwrap().to_string();
    u.wait_license_active(&team_org, &pro).await;
    u.api.post(&format!("/v1/orgs/{team_org}/events"), ev(&pro)).await.err(422, "event_pro_required");
    // Licenses never move: the personal org's license is unknown to the team org.
    u.api.post(&format!("/v1/orgs/{team_org}/events"), ev(&org_pro)).await.err(404, "not_found");
    let team_licenses = u.api.get(&format!("/v1/orgs/{team_org}/licenses")).await.ok();
    assert_eq!(team_licenses.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pending_license_cannot_be_used() {
    // An activation delay far longer than the test: the license stays pending throughout.
    let srv = TestServer::start_with(|c| c.engine.license_activation_delay = Duration::from_secs(3600)).await;
    let u = srv.sign_up("Pat").await;
    let org = u.personal_org().await;
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/payment-method"),
            json!({ "kind": "card", "provider_token": "tok", "last4": "0005" }),
        )
        .await
        .ok();
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/address"),
            json!({ "line1": "3 Quay", "city": "Cork", "zip": "T12", "country": "IE" }),
        )
        .await
        .ok();
    let lic = u.api.post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "event_pro", "quantity": 1 })).await.ok();
    assert_eq!(lic["status"], "pending");
    let listed = u.api.get(&format!("/v1/orgs/{org}/licenses")).await.ok();
    assert_eq!(listed[0]["status"], "pending");
    u.api
        .post(
            &format!("/v1/orgs/{org}/events"),
            json!({ "name": "Too soon", "default_collaborator_name": "P", "license": lic["id"] }),
        )
        .await
        .err(422, "event_pro_required");
}

#[tokio::test]
async fn seats_are_slots_on_every_event() {
    let srv = TestServer::start().await;
    let owner = srv.sign_up("Ola").await;
    let admin = srv.sign_up("Ari").await;
    let org = team(&srv, &owner, "Slots Inc").await;
    owner.api.post(&format!("/v1/orgs/{org}/members"), json!({ "email": admin.email, "role": "admin" })).await.ok();
    let license = owner.ready_org(&org, 2).await;
    let (e1, _) = owner.create_event(&org, &license, "Night 1").await;
    let (e2, _) = owner.create_event(&org, &license, "Night 2").await;
    let people: Vec<User> = futures_people(&srv, &["P1", "P2", "P3", "P4"]).await;

    // The same two slots on each event, staffed differently.
    owner.api.post(&format!("/v1/events/{e1}/seats"), json!({ "email": people[0].email })).await.ok();
    owner.api.post(&format!("/v1/events/{e2}/seats"), json!({ "email": people[1].email })).await.ok();
    owner
        .api
        .post(&format!("/v1/events/{e2}/seats"), json!({ "email": people[0].email }))
        .await
        .err(409, "seats_exhausted");
    owner
        .api
        .post(&format!("/v1/events/{e1}/seats"), json!({ "email": people[1].email }))
        .await
        .err(409, "seats_exhausted");
    // Releasing the creator's own seat on night 1 frees a slot there.
    owner.api.delete(&format!("/v1/events/{e1}/seats/{}", owner.id)).await.ok();
    owner
        .api
        .post(&format!("/v1/events/{e1}/seats"), json!({ "email": people[0].email }))
        .await
        .err(409, "already_seated");
    owner.api.post(&format!("/v1/events/{e1}/seats"), json!({ "email": people[2].email })).await.ok();
    owner.api.delete(&format!("/v1/events/{e1}/seats/{}", owner.id)).await.err(404, "not_found");
    owner
        .api
        .post(&format!("/v1/events/{e1}/seats"), json!({ "email": "ghost@example.test" }))
        .await
        .err(422, "no_account");

    // Buying more Event Pro raises the limit on every event at once.
    let more =
        owner.api.post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "event_pro", "quantity": 1 })).await.ok();
    owner.wait_license_active(&org, more["id"].as_str().unwrap()).await;
    for e in [&e1, &e2] {
        assert_eq!(owner.api.get(&format!("/v1/events/{e}/seats")).await.ok()["limit"], 3);
    }

    // Seats are managed by the organization's owners and admins. The admin holds no seat:
    // they manage seats but do not see the event's tabs.
    admin.api.post(&format!("/v1/events/{e1}/seats"), json!({ "email": people[3].email })).await.ok();
    admin.api.get(&format!("/v1/events/{e1}/tasks")).await.err(403, "not_permitted");
    // A seat holder from outside works the event but does not manage seats.
    people[2].api.get(&format!("/v1/events/{e1}/seats")).await.ok();
    people[2].api.delete(&format!("/v1/events/{e1}/seats/{}", people[3].id)).await.err(403, "not_permitted");
    let mine = people[2].api.get("/v1/events").await.ok();
    assert_eq!(mine.as_array().unwrap().iter().map(|e| e["id"].clone()).collect::<Vec<_>>(), vec![json!(e1)]);
    let all = owner.api.get(&format!("/v1/orgs/{org}/events")).await.ok();
    assert_eq!(all.as_array().unwrap().len(), 2);
}

async fn futures_people(srv: &TestServer, names: &[&str]) -> Vec<User> {
    let mut out = Vec::new();
    for n in names {
        out.push(srv.sign_up(n).await);
    }
    out
}

#[tokio::test]
async fn the_last_seat_goes_to_exactly_one_of_many_concurrent_requests() {
    let srv = TestServer::start().await;
    let owner = srv.sign_up("Quinn").await;
    let org = owner.personal_org().await;
    let license = owner.ready_org(&org, 2).await; // the creator holds one: one free slot
    let (event, _) = owner.create_event(&org, &license, "Rush").await;
    let people = futures_people(&srv, &["R1", "R2", "R3", "R4", "R5", "R6"]).await;
    let mut tasks = Vec::new();
    for p in &people {
        let api = owner.api.clone();
        let path = format!("/v1/events/{event}/seats");
        let body = json!({ "email": p.email });
        tasks.push(tokio::spawn(async move { api.post(&path, body).await }));
    }
    let mut won = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => won += 1,
            _ => {
                r.err(409, "seats_exhausted");
            }
        }
    }
    assert_eq!(won, 1);
    let seats = owner.api.get(&format!("/v1/events/{event}/seats")).await.ok();
    assert_eq!((seats["used"].as_i64(), seats["limit"].as_i64()), (Some(2), Some(2)));
}

#[tokio::test]
async fn collaborator_membership() {
    let srv = TestServer::start().await;
    let pm = srv.sign_up("Pam").await;
    let org = pm.personal_org().await;
    let license = pm.ready_org(&org, 1).await;
    let (event, prod) = pm.create_event(&org, &license, "Gala").await;
    let cater = pm.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": "Catering" })).await.ok();
    let cater = cater["id"].as_str().unwrap().to_string();
    let members = format!("/v1/events/{event}/collaborators/{cater}/members");

    // An invitation for someone without an account waits for their sign-up.
    let inv = pm.api.post(&members, json!({ "email": "Chef@Example.test" })).await.ok();
    assert_eq!((inv["status"].clone(), inv["email"].clone()), (json!("pending"), json!("chef@example.test")));
    let chef = srv.sign_up("Chef").await;
    let ev = chef.api.get(&format!("/v1/events/{event}")).await.ok();
    assert_eq!(ev["access"]["collaborator"], cater.as_str());

    // Free access is one collaborator per event.
    pm.api
        .post(&format!("/v1/events/{event}/collaborators/{prod}/members"), json!({ "email": chef.email }))
        .await
        .err(409, "already_member");
    pm.api.post(&members, json!({ "email": chef.email })).await.err(409, "already_member");
    // Members do not build the event.
    chef.api
        .post(&format!("/v1/events/{event}/collaborators"), json!({ "name": "Mine" }))
        .await
        .err(403, "not_permitted");
    chef.api.post(&members, json!({ "email": "x@example.test" })).await.err(403, "not_permitted");
    chef.api.patch(&format!("/v1/events/{event}"), json!({ "name": "Chef's Gala" })).await.err(403, "not_permitted");
    let listed = chef.api.get(&members).await.ok();
    assert_eq!(listed[0]["person"], chef.id.as_str());

    // Read-only for one person in the collaborator.
    chef.api.post(&format!("/v1/events/{event}/tasks"), json!({ "title": "Menu" })).await.ok();
    pm.api.patch(&format!("{members}/{}", chef.id), json!({ "read_only": true })).await.ok();
    chef.api.post(&format!("/v1/events/{event}/tasks"), json!({ "title": "Menu 2" })).await.err(403, "read_only");
    pm.api.patch(&format!("{members}/{}", chef.id), json!({ "read_only": false })).await.ok();
    chef.api.post(&format!("/v1/events/{event}/tasks"), json!({ "title": "Menu 2" })).await.ok();

    // Removed: the event disappears for them.
    pm.api.delete(&format!("{members}/{}", chef.id)).await.ok();
    chef.api.get(&format!("/v1/events/{event}")).await.err(404, "not_found");
    chef.api.get(&format!("/v1/events/{event}/tasks")).await.err(404, "not_found");
    assert_eq!(chef.api.get("/v1/events").await.ok(), json!([]));
    pm.api.delete(&format!("{members}/{}", chef.id)).await.err(404, "not_found");
}

#[tokio::test]
async fn tab_rules() {
    let srv = TestServer::start().await;
    let pm = srv.sign_up("Ivy").await;
    let org = pm.personal_org().await;
    let license = pm.ready_org(&org, 1).await;
    let (event, prod) = pm.create_event(&org, &license, "Expo").await;
    let light = pm.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": "Lighting" })).await.ok();
    let light = light["id"].as_str().unwrap().to_string();
    let gaffer = srv.sign_up("Gaffer").await;
    pm.api
        .post(&format!("/v1/events/{event}/collaborators/{light}/members"), json!({ "email": gaffer.email }))
        .await
        .ok();
    let ev = format!("/v1/events/{event}");

    // Tasks: validation, and a member cannot move a task out of their collaborator.
    gaffer
        .api
        .post(&format!("{ev}/tasks"), json!({ "title": "Rig", "due": "next week" }))
        .await
        .err(422, "invalid_input");
    gaffer
        .api
        .post(&format!("{ev}/tasks"), json!({ "title": "Rig", "assignee": "nobody" }))
        .await
        .err(422, "unknown_assignee");
    gaffer
        .api
        .post(&format!("{ev}/tasks"), json!({ "title": "Rig", "status": "blocked" }))
        .await
        .err(400, "invalid_body");
    let t = gaffer
        .api
        .post(&format!("{ev}/tasks"), json!({ "title": "Rig", "due": "2027-05-01", "assignee": gaffer.id }))
        .await
        .ok();
    let tid = t["id"].as_str().unwrap();
    gaffer.api.patch(&format!("{ev}/tasks/{tid}"), json!({ "collaborator": prod })).await.err(404, "not_found");
    let t =
        gaffer.api.patch(&format!("{ev}/tasks/{tid}"), json!({ "status": "in_review", "assignee": null })).await.ok();
    assert_eq!(t["status"], "in_review");
    assert!(t.get("assignee").is_none_or(|a| a.is_null()));
    assert_eq!(t["due"], "2027-05-01");
    // The event team moves it.
    let moved = pm.api.patch(&format!("{ev}/tasks/{tid}"), json!({ "collaborator": prod })).await.ok();
    assert_eq!(moved["collaborator"], prod.as_str());
    assert_eq!(gaffer.api.get(&format!("{ev}/tasks")).await.ok(), json!([]));
    gaffer.api.patch(&format!("{ev}/tasks/{tid}"), json!({ "title": "back" })).await.err(404, "not_found");

    // Schedule: a member's own activity defaults to their collaborator; an activity shared
    // with others is readable but not theirs to change.
    let own = gaffer
        .api
        .post(
            &format!("{ev}/activities"),
            json!({ "title": "Focus", "starts_at": "2027-05-01T20:00:00Z", "ends_at": "2027-05-01T23:00:00Z" }),
        )
        .await
        .ok();
    assert_eq!(own["collaborators"], json!([light]));
    gaffer
        .api
        .post(
            &format!("{ev}/activities"),
            json!({ "title": "Bad", "starts_at": "2027-05-02T20:00:00Z", "ends_at": "2027-05-01T23:00:00Z" }),
        )
        .await
        .err(422, "invalid_input");
    gaffer
        .api
        .post(&format!("{ev}/activities"), json!({ "title": "Both", "starts_at": "2027-05-01T20:00:00Z", "ends_at": "2027-05-01T21:00:00Z", "collaborators": [light, prod] }))
        .await
        .err(404, "not_found");
    let shared = pm
        .api
        .post(&format!("{ev}/activities"), json!({ "title": "Doors", "starts_at": "2027-05-01T19:00:00Z", "ends_at": "2027-05-01T19:30:00Z", "collaborators": [light, prod] }))
        .await
        .ok();
    let sid = shared["id"].as_str().unwrap();
    gaffer.api.patch(&format!("{ev}/activities/{sid}"), json!({ "title": "Doors!" })).await.err(403, "not_permitted");
    gaffer.api.delete(&format!("{ev}/activities/{sid}")).await.err(403, "not_permitted");
    let listed = gaffer.api.get(&format!("{ev}/activities")).await.ok();
    let titles: Vec<_> = listed.as_array().unwrap().iter().map(|a| a["title"].clone()).collect();
    assert_eq!(titles, vec![json!("Doors"), json!("Focus")], "ordered by start");

    // Advances: the team sends and reviews, the member answers; editing a done advance's
    // answers sends it back to review.
    gaffer
        .api
        .post(&format!("{ev}/advances"), json!({ "collaborator": light, "title": "Mine" }))
        .await
        .err(403, "not_permitted");
    let adv =
        pm.api.post(&format!("{ev}/advances"), json!({ "collaborator": light, "title": "Lighting plot" })).await.ok();
    assert_eq!(adv["status"], "not_started");
    let aid = adv["id"].as_str().unwrap();
    let a = gaffer.api.patch(&format!("{ev}/advances/{aid}"), json!({ "answers": { "fixtures": 48 } })).await.ok();
    assert_eq!(a["status"], "needs_review");
    gaffer
        .api
        .patch(&format!("{ev}/advances/{aid}"), json!({ "status": "done" }))
        .await
        .err(403, "review_requires_seat");
    gaffer.api.patch(&format!("{ev}/advances/{aid}"), json!({ "answers": [1, 2] })).await.err(422, "invalid_input");
    let a = pm.api.patch(&format!("{ev}/advances/{aid}"), json!({ "status": "done" })).await.ok();
    assert_eq!(a["status"], "done");
    let a = gaffer
        .api
        .patch(&format!("{ev}/advances/{aid}"), json!({ "answers": { "fixtures": 52, "hazer": true } }))
        .await
        .ok();
    assert_eq!((a["status"].clone(), a["answers"]["fixtures"].clone()), (json!("needs_review"), json!(52)));

    // Files: validated metadata in the member's folder, checked before any byte is sent.
    for bad in [
        json!({ "name": "../etc/passwd", "size": 1, "sha256": "a".repeat(64) }),
        json!({ "name": "plot.pdf", "size": 1, "sha256": "xyz" }),
        json!({ "name": "plot.pdf", "size": -1, "sha256": "a".repeat(64) }),
    ] {
        gaffer.api.post(&format!("{ev}/uploads"), bad).await.err(422, "invalid_input");
    }
    gaffer.api.post(&format!("{ev}/files"), json!({ "name": "plot.pdf" })).await.err(422, "invalid_input");
    let pdf = [&b"%PDF-1.7\n"[..], &[7u8; 2039]].concat();
    let up = gaffer
        .api
        .post(
            &format!("{ev}/uploads"),
            json!({ "name": "plot.pdf", "size": 2048, "sha256": tests::files::sha256(&pdf).to_uppercase(), "media_type": "application/pdf" }),
        )
        .await
        .ok();
    assert_eq!(tests::files::chunk(&gaffer.api, up["id"].as_str().unwrap(), 0, &pdf).await.0, 200);
    let f = gaffer.api.post(&format!("{ev}/files"), json!({ "id": up["file"], "name": "plot.pdf" })).await.ok();
    assert_eq!(f["content_hash"], tests::files::sha256(&pdf));
    assert_eq!((f["media_type"].as_str(), f["collaborator"].as_str()), (Some("application/pdf"), Some(light.as_str())));

    let d = gaffer.api.get(&format!("{ev}/dashboard")).await.ok();
    assert_eq!(
        (
            d["tasks"]["in_review"].as_i64(),
            d["activities"].as_i64(),
            d["files"].as_i64(),
            d["files_bytes"].as_i64(),
            d["advances"]["needs_review"].as_i64()
        ),
        (Some(0), Some(2), Some(1), Some(2048), Some(1))
    );
    gaffer.api.delete(&format!("{ev}/files/{}", f["id"].as_str().unwrap())).await.ok();
    assert_eq!(gaffer.api.get(&format!("{ev}/files")).await.ok(), json!([]));
}
