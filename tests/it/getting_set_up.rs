//! The getting-set-up path, walked as a new user would, end to end over HTTP.

use serde_json::json;
use tests::TestServer;

#[tokio::test]
async fn new_user_sets_up_and_staffs_an_event() {
    let srv = TestServer::start().await;

    // Sign up: the account lands in its personal organization.
    let maya = srv.sign_up("Maya").await;
    let orgs = maya.api.get("/v1/orgs").await.ok();
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["kind"], "personal");
    assert_eq!(orgs[0]["role"], "owner");
    let me = maya.api.get("/v1/me").await.ok();
    assert_eq!(me["email"], "maya@example.test");
    assert!(me.get("password_hash").is_none(), "no password hash leaves the server");

    // A team organization, shared with a colleague as admin.
    let team = maya.api.post("/v1/orgs", json!({ "name": "Riverside Productions" })).await.ok();
    let org = team["id"].as_str().unwrap().to_string();
    assert_eq!(team["kind"], "team");
    let leo = srv.sign_up("Leo").await;
    maya.api.post(&format!("/v1/orgs/{org}/members"), json!({ "email": leo.email, "role": "admin" })).await.ok();
    let leo_orgs = leo.api.get("/v1/orgs").await.ok();
    let kinds: Vec<_> = leo_orgs.as_array().unwrap().iter().map(|o| (o["kind"].clone(), o["role"].clone())).collect();
    assert_eq!(kinds, vec![(json!("personal"), json!("owner")), (json!("team"), json!("admin"))]);

    // Billing: a card (token and last four only) and an address with a zip code.
    let b = maya
        .api
        .put(
            &format!("/v1/orgs/{org}/billing/payment-method"),
            json!({ "kind": "card", "provider_token": "tok_1Nv0", "last4": "4242" }),
        )
        .await
        .ok();
    assert_eq!(b["payment_method"]["last4"], "4242");
    maya.api
        .put(
            &format!("/v1/orgs/{org}/billing/address"),
            json!({ "line1": "12 Dock Road", "city": "Austin", "region": "TX", "zip": "78701", "country": "US" }),
        )
        .await
        .ok();

    // Purchase: two Event Pro slots, pending until the activation step.
    let lic =
        maya.api.post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "event_pro", "quantity": 2 })).await.ok();
    assert_eq!(lic["status"], "pending");
    let license = lic["id"].as_str().unwrap().to_string();
    maya.wait_license_active(&org, &license).await;

    // Create the event: its default collaborator comes with it, and the creator takes a seat.
    let ev = maya
        .api
        .post(
            &format!("/v1/orgs/{org}/events"),
            json!({ "name": "Harbor Fest", "default_collaborator_name": "Riverside", "license": license }),
        )
        .await
        .ok();
    let event = ev["id"].as_str().unwrap().to_string();
    assert_eq!(ev["access"]["seat"], true);
    let collabs = maya.api.get(&format!("/v1/events/{event}/collaborators")).await.ok();
    assert_eq!(collabs.as_array().unwrap().len(), 1);
    assert_eq!(collabs[0]["name"], "Riverside");
    assert_eq!(collabs[0]["id"], ev["default_collaborator"]);
    // Both names can change later.
    maya.api.patch(&format!("/v1/events/{event}"), json!({ "name": "Harbor Fest 2027" })).await.ok();
    let default_collab = ev["default_collaborator"].as_str().unwrap().to_string();
    maya.api
        .patch(&format!("/v1/events/{event}/collaborators/{default_collab}"), json!({ "name": "Riverside Prod." }))
        .await
        .ok();
    assert_eq!(maya.api.get(&format!("/v1/events/{event}")).await.ok()["name"], "Harbor Fest 2027");

    // Seats: 2 slots. Maya holds one; a freelancer from outside the organization takes the
    // other; a third person is one too many.
    let sam = srv.sign_up("Sam").await;
    let seat = maya.api.post(&format!("/v1/events/{event}/seats"), json!({ "email": sam.email })).await.ok();
    assert_eq!(seat["person"], sam.id.as_str());
    let seats = maya.api.get(&format!("/v1/events/{event}/seats")).await.ok();
    assert_eq!((seats["limit"].as_i64(), seats["used"].as_i64()), (Some(2), Some(2)));
    let kim = srv.sign_up("Kim").await;
    let full = maya.api.post(&format!("/v1/events/{event}/seats"), json!({ "email": kim.email })).await;
    let body = full.err(409, "seats_exhausted");
    assert!(body["message"].as_str().unwrap().contains('2'), "the error names the limit: {body}");
    // The outsider with a seat sees the whole event.
    let sam_view = sam.api.get(&format!("/v1/events/{event}")).await.ok();
    assert_eq!(sam_view["access"]["seat"], true);
    assert!(sam.api.get("/v1/orgs").await.ok().as_array().unwrap().iter().all(|o| o["id"] != org.as_str()));

    // Collaborators: a vendor with free access, and a read-only client.
    let audio = maya.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": "Loud Audio" })).await.ok();
    let audio = audio["id"].as_str().unwrap().to_string();
    let client = maya.api.post(&format!("/v1/events/{event}/collaborators"), json!({ "name": "Client" })).await.ok();
    let client = client["id"].as_str().unwrap().to_string();
    let vic = srv.sign_up("Vic").await;
    let inv = maya
        .api
        .post(&format!("/v1/events/{event}/collaborators/{audio}/members"), json!({ "email": vic.email }))
        .await
        .ok();
    assert_eq!(inv["status"], "member");
    let cara = srv.sign_up("Cara").await;
    maya.api
        .post(&format!("/v1/events/{event}/collaborators/{client}/members"), json!({ "email": cara.email }))
        .await
        .ok();
    maya.api.patch(&format!("/v1/events/{event}/collaborators/{client}"), json!({ "read_only": true })).await.ok();

    // The event team fills the tabs of several collaborators.
    for (c, title) in
        [(&audio, "Deliver line array"), (&client, "Approve stage plot"), (&default_collab, "Book cranes")]
    {
        maya.api.post(&format!("/v1/events/{event}/tasks"), json!({ "collaborator": c, "title": title })).await.ok();
    }
    maya.api
        .post(
            &format!("/v1/events/{event}/activities"),
            json!({ "title": "Load-in", "starts_at": "2027-07-04T08:00:00Z", "ends_at": "2027-07-04T12:00:00+02:00",
                    "area": "Main stage", "collaborators": [audio, default_collab] }),
        )
        .await
        .ok();
    maya.api
        .post(
            &format!("/v1/events/{event}/activities"),
            json!({ "title": "Client walkthrough", "starts_at": "2027-07-03T15:00:00Z", "ends_at": "2027-07-03T16:00:00Z",
                    "collaborators": [client] }),
        )
        .await
        .ok();
    let rider = [&b"%PDF-1.7\n"[..], &[1u8; 1191]].concat();
    for c in [&audio, &client] {
        tests::files::upload_file(&maya.api, &event, c, "rider.pdf", &rider).await;
        maya.api
            .post(&format!("/v1/events/{event}/advances"), json!({ "collaborator": c, "title": "Tech rider" }))
            .await
            .ok();
    }

    // The free-access vendor sees exactly their collaborator's five tabs.
    let vev = vic.api.get(&format!("/v1/events/{event}")).await.ok();
    assert_eq!((vev["access"]["seat"].clone(), vev["access"]["collaborator"].clone()), (json!(false), json!(audio)));
    let tasks = vic.api.get(&format!("/v1/events/{event}/tasks")).await.ok();
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    assert_eq!(tasks[0]["title"], "Deliver line array");
    let acts = vic.api.get(&format!("/v1/events/{event}/activities")).await.ok();
    assert_eq!(acts.as_array().unwrap().iter().map(|a| a["title"].clone()).collect::<Vec<_>>(), vec![json!("Load-in")]);
    assert_eq!(acts[0]["ends_at"], "2027-07-04T10:00:00.000Z", "times are normalized to UTC");
    let files = vic.api.get(&format!("/v1/events/{event}/files")).await.ok();
    assert!(files.as_array().unwrap().iter().all(|f| f["collaborator"] == audio.as_str()));
    assert_eq!(files.as_array().unwrap().len(), 1);
    let advances = vic.api.get(&format!("/v1/events/{event}/advances")).await.ok();
    assert_eq!(advances.as_array().unwrap().len(), 1);
    let dash = vic.api.get(&format!("/v1/events/{event}/dashboard")).await.ok();
    assert_eq!(dash["name"], "Loud Audio");
    assert_eq!(
        (dash["tasks"]["todo"].as_i64(), dash["activities"].as_i64(), dash["files"].as_i64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(dash["advances"]["not_started"], 1);
    let collabs = vic.api.get(&format!("/v1/events/{event}/collaborators")).await.ok();
    assert_eq!(collabs.as_array().unwrap().len(), 1, "a member sees only their own collaborator");
    // Anything of another collaborator is not found, not forbidden.
    vic.api.get(&format!("/v1/events/{event}/tasks?collaborator={client}")).await.err(404, "not_found");
    vic.api.get(&format!("/v1/events/{event}/dashboard?collaborator={client}")).await.err(404, "not_found");
    vic.api.get(&format!("/v1/events/{event}/seats")).await.err(403, "not_permitted");
    // And they work in it: a task of their own, an answered advance.
    let t = vic.api.post(&format!("/v1/events/{event}/tasks"), json!({ "title": "Send power specs" })).await.ok();
    assert_eq!(t["collaborator"], audio.as_str());
    let adv = &advances[0];
    let answered = vic
        .api
        .patch(
            &format!("/v1/events/{event}/advances/{}", adv["id"].as_str().unwrap()),
            json!({ "answers": { "power": "3x 63A" } }),
        )
        .await
        .ok();
    assert_eq!(answered["status"], "needs_review");

    // The read-only client reads its tabs but every write is refused.
    let ctasks = cara.api.get(&format!("/v1/events/{event}/tasks")).await.ok();
    assert_eq!(ctasks.as_array().unwrap().len(), 1);
    assert_eq!(ctasks[0]["title"], "Approve stage plot");
    cara.api.post(&format!("/v1/events/{event}/tasks"), json!({ "title": "Sneaky" })).await.err(403, "read_only");
    let ctask = ctasks[0]["id"].as_str().unwrap();
    cara.api
        .patch(&format!("/v1/events/{event}/tasks/{ctask}"), json!({ "status": "done" }))
        .await
        .err(403, "read_only");
    assert_eq!(cara.api.get(&format!("/v1/events/{event}/dashboard")).await.ok()["read_only"], true);
    let after = maya.api.get(&format!("/v1/events/{event}/tasks?collaborator={client}")).await.ok();
    assert_eq!(after[0]["status"], "todo", "the refused write changed nothing");

    // Releasing a seat frees it for someone else.
    maya.api.delete(&format!("/v1/events/{event}/seats/{}", sam.id)).await.ok();
    sam.api.get(&format!("/v1/events/{event}")).await.err(404, "not_found");
    maya.api.post(&format!("/v1/events/{event}/seats"), json!({ "email": kim.email })).await.ok();
}
