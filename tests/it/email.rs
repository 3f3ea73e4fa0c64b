//! An email is proven before anything is granted to it: sign-up mails a code through a real
//! SMTP server; invitations, seats and organization roles given to the address wait, shown
//! as pending, until the account proves it; whoever registered the address first gains
//! nothing without its mail.

use serde_json::json;
use tests::{SyncClient, mail::SmtpSink, stage};

#[tokio::test]
async fn grants_wait_until_the_account_proves_its_email_by_a_mailed_code() {
    let smtp = SmtpSink::start().await;
    let srv = smtp.server_with(|c| c.mail.from = Some("BackOps <codes@backops.test>".into())).await;
    let s = stage(&srv).await;
    let ev = format!("/v1/events/{}", s.event);
    let org = s.pm.api.post("/v1/orgs", json!({ "name": "Touring Co" })).await.ok()["id"].as_str().unwrap().to_string();

    // Someone registers Rita's address first and cannot read her mail.
    let squatter = srv.sign_up_unproven("Rita").await;
    let me = squatter.api.get("/v1/me").await.ok();
    assert_eq!(me["email_proven"], false);
    // Everything given to the address waits, and says so to whoever gave it.
    let inv =
        s.pm.api.post(&format!("{ev}/collaborators/{}/members", s.audio), json!({ "email": squatter.email })).await;
    assert_eq!(inv.status, 201);
    assert_eq!(inv.body["status"], "pending", "{}", inv.body);
    let seat = s.pm.api.post(&format!("{ev}/seats"), json!({ "email": squatter.email })).await;
    assert_eq!((seat.status, seat.body["status"].as_str()), (202, Some("pending")), "{}", seat.body);
    let role =
        s.pm.api.post(&format!("/v1/orgs/{org}/members"), json!({ "email": squatter.email, "role": "owner" })).await;
    assert_eq!((role.status, role.body["pending"].as_bool()), (202, Some(true)), "{}", role.body);
    let seats = s.pm.api.get(&format!("{ev}/seats")).await.ok();
    assert_eq!(seats["pending"][0]["email"], squatter.email.as_str());
    assert!(seats["seats"].as_array().unwrap().iter().all(|x| x["person"] != squatter.id.as_str()));
    let members = s.pm.api.get(&format!("/v1/orgs/{org}/members")).await.ok();
    assert!(members.as_array().unwrap().iter().any(|m| m["person"] == squatter.id.as_str() && m["pending"] == true));
    // None of it reaches the account.
    squatter.api.get(&ev).await.err(404, "not_found");
    squatter.api.get(&format!("/v1/orgs/{org}")).await.err(404, "not_found");
    let mut c = SyncClient::connect(&srv, &squatter.token).await;
    c.send(json!({ "type": "subscribe", "event": s.event })).await;
    assert_eq!(c.next_of("refused").await["code"], "not_found");
    // Guessing does not get far: five wrong codes void the one sent.
    for left in (0..5).rev() {
        let r = squatter.api.post("/v1/me/email/proof", json!({ "code": "00000000" })).await;
        if left > 0 {
            r.err(422, "wrong_code");
        } else {
            r.err(422, "code_expired");
        }
    }
    squatter.api.post("/v1/me/email/code", json!({})).await.err(409, "too_soon");

    // Even the right code, read from the delivered mail, is void now: a new one is needed.
    let code = srv.mailed_code(&squatter.email).await;
    squatter.api.post("/v1/me/email/proof", json!({ "code": code })).await.err(422, "code_expired");
}

#[tokio::test]
async fn a_proven_email_receives_what_waited_for_it_at_once_and_live() {
    let smtp = SmtpSink::start().await;
    let srv = smtp.server().await;
    let s = stage(&srv).await;
    let ev = format!("/v1/events/{}", s.event);
    let org = s.pm.api.post("/v1/orgs", json!({ "name": "Touring Co" })).await.ok()["id"].as_str().unwrap().to_string();
    tests::task(&s, &s.pm, &s.audio, "Patch list").await;

    let noor = srv.sign_up_unproven("Noor").await;
    // The message, as delivered: from the server's sender, to Noor, the code in the subject.
    let code = srv.mailed_code(&noor.email).await;
    assert_eq!(code.len(), 8);
    s.pm.api.post(&format!("{ev}/collaborators/{}/members", s.audio), json!({ "email": noor.email })).await.ok();
    s.pm.api.post(&format!("{ev}/seats"), json!({ "email": noor.email })).await;
    s.pm.api.post(&format!("/v1/orgs/{org}/members"), json!({ "email": noor.email, "role": "admin" })).await;
    noor.api.get(&ev).await.err(404, "not_found");

    let wrong = if code == "12345678" { "87654321" } else { "12345678" };
    noor.api.post("/v1/me/email/proof", json!({ "code": wrong })).await.err(422, "wrong_code");
    let me = noor.api.post("/v1/me/email/proof", json!({ "code": format!(" {code} ") })).await.ok();
    assert_eq!(me["email_proven"], true);
    // Proven twice is still proven; a new code is not needed any more.
    noor.api.post("/v1/me/email/code", json!({})).await.err(409, "already_proven");

    // What waited is theirs now: the membership, the seat, the role.
    noor.api.get(&ev).await.ok();
    let seats = s.pm.api.get(&format!("{ev}/seats")).await.ok();
    assert!(seats["seats"].as_array().unwrap().iter().any(|x| x["person"] == noor.id.as_str()), "{seats}");
    assert!(seats["pending"].as_array().unwrap().is_empty());
    let members = s.pm.api.get(&format!("/v1/orgs/{org}/members")).await.ok();
    let m = members.as_array().unwrap().iter().find(|m| m["person"] == noor.id.as_str()).unwrap().clone();
    assert_eq!((m["role"].as_str(), m.get("pending")), (Some("admin"), None), "{m}");
    let mut c = SyncClient::connect(&srv, &noor.token).await;
    c.subscribe(&s.event, None).await;
    assert!(c.held(&s.event).iter().any(|(k, _)| k == "task"), "the seat's whole event arrives");

    // A later invitation to a proven address is a membership at once.
    let ben = srv.sign_up("Ben").await;
    let inv =
        s.pm.api.post(&format!("{ev}/collaborators/{}/members", s.client), json!({ "email": ben.email })).await.ok();
    assert_eq!(inv["status"], "member", "{inv}");
}
