//! Bad input gets a clear JSON error with the right status, and changes nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::json;
use tests::{TEST_SECRET, TestServer};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn sign(secret: &str, claims: serde_json::Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn billing_gaps_are_named() {
    let srv = TestServer::start().await;
    let u = srv.sign_up("Ana").await;
    let org = u.personal_org().await;
    let buy = json!({ "kind": "event_pro", "quantity": 1 });

    // Nothing on file: both gaps are named.
    let e = u.api.post(&format!("/v1/orgs/{org}/licenses"), buy.clone()).await.err(422, "billing_incomplete");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("payment method") && m.contains("zip"), "{m}");

    // An address without a zip is refused, whether the field is missing or blank.
    let addr = json!({ "line1": "1 Main St", "city": "Austin", "country": "US" });
    let e = u.api.put(&format!("/v1/orgs/{org}/billing/address"), addr.clone()).await.err(422, "missing_zip");
    assert!(e["message"].as_str().unwrap().contains("zip"));
    let mut blank = addr.clone();
    blank["zip"] = json!("   ");
    u.api.put(&format!("/v1/orgs/{org}/billing/address"), blank).await.err(422, "missing_zip");

    // A card alone is not enough: the zip is still named.
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/payment-method"),
            json!({ "kind": "card", "provider_token": "tok_x", "last4": "1881" }),
        )
        .await
        .ok();
    let e = u.api.post(&format!("/v1/orgs/{org}/licenses"), buy.clone()).await.err(422, "billing_incomplete");
    let m = e["message"].as_str().unwrap();
    assert!(m.contains("zip") && !m.contains("payment method"), "{m}");
    assert_eq!(u.api.get(&format!("/v1/orgs/{org}/licenses")).await.ok(), json!([]), "nothing was bought");

    // Card numbers never get in: not as an extra field, not disguised as a token.
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/payment-method"),
            json!({ "kind": "card", "provider_token": "tok_x", "last4": "4242", "number": "4242424242424242" }),
        )
        .await
        .err(400, "invalid_body");
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/payment-method"),
            json!({ "kind": "card", "provider_token": "4242 4242 4242 4242", "last4": "4242" }),
        )
        .await
        .err(422, "invalid_input");
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/payment-method"),
            json!({ "kind": "card", "provider_token": "tok", "last4": "42a2" }),
        )
        .await
        .err(422, "invalid_input");
    let billing = u.api.get(&format!("/v1/orgs/{org}/billing")).await.ok();
    assert_eq!(billing["payment_method"]["last4"], "1881", "refused updates changed nothing");
    assert!(!billing.to_string().contains("4242424242424242"));
    assert!(!billing.to_string().contains("tok_x"), "the provider token is not shown back: {billing}");

    // Quantity is bounded.
    u.api
        .put(
            &format!("/v1/orgs/{org}/billing/address"),
            json!({ "line1": "1 Main St", "city": "Austin", "zip": "78701", "country": "US" }),
        )
        .await
        .ok();
    for q in [0, -3, 1_000_000] {
        u.api
            .post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "event_pro", "quantity": q }))
            .await
            .err(422, "invalid_input");
    }
    u.api
        .post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "gold", "quantity": 1 }))
        .await
        .err(400, "invalid_body");
}

#[tokio::test]
async fn malformed_bodies_and_requests() {
    let srv = TestServer::start().await;
    let u = srv.sign_up("Ben").await;
    let anon = srv.anonymous();

    anon.raw(Method::POST, "/v1/accounts", "application/json", b"{\"email\": \"x@y.z\", ".to_vec())
        .await
        .err(400, "malformed_json");
    anon.raw(Method::POST, "/v1/accounts", "application/json", b"\xff\xfe garbage".to_vec())
        .await
        .err(400, "malformed_json");
    anon.raw(Method::POST, "/v1/accounts", "text/plain", b"{}".to_vec()).await.err(415, "unsupported_media_type");
    anon.post("/v1/accounts", json!({ "email": "x@y.z" })).await.err(400, "invalid_body");
    anon.post("/v1/accounts", json!([1, 2, 3])).await.err(400, "invalid_body");
    anon.post("/v1/accounts", json!({ "email": "not-an-email", "name": "X", "password": "long enough" }))
        .await
        .err(422, "invalid_input");
    anon.post("/v1/accounts", json!({ "email": "a@b.co", "name": "X", "password": "short" }))
        .await
        .err(422, "invalid_input");
    anon.post("/v1/accounts", json!({ "email": u.email.to_uppercase(), "name": "X", "password": "long enough" }))
        .await
        .err(409, "email_taken");

    // Oversized body: refused before it is parsed, with a JSON error.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(srv.config.body_limit_bytes + 1));
    u.api.raw(Method::POST, "/v1/orgs", "application/json", big.into_bytes()).await.err(413, "body_too_large");
    // Names are bounded too, well below the body limit.
    u.api.post("/v1/orgs", json!({ "name": "x".repeat(201) })).await.err(422, "invalid_input");
    u.api.post("/v1/orgs", json!({ "name": "   " })).await.err(422, "invalid_input");
    assert_eq!(u.api.get("/v1/orgs").await.ok().as_array().unwrap().len(), 1, "no organization was created");

    anon.get("/v1/nowhere").await.err(404, "not_found");
    anon.raw(Method::PUT, "/v1/health", "application/json", b"{}".to_vec()).await.err(405, "method_not_allowed");
}

#[tokio::test]
async fn tokens_are_verified() {
    let srv = TestServer::start().await;
    let u = srv.sign_up("Cy").await;
    let anon = srv.anonymous();

    anon.get("/v1/orgs").await.err(401, "unauthenticated");
    anon.with_token("").get("/v1/orgs").await.err(401, "unauthenticated");
    anon.with_token("not.a.jwt").get("/v1/orgs").await.err(401, "invalid_token");

    let expired = sign(
        TEST_SECRET,
        json!({ "sub": u.id, "iss": "backops", "iat": now() - 7200, "exp": now() - 3600, "sid": u.sign_in }),
    );
    anon.with_token(&expired).get("/v1/orgs").await.err(401, "token_expired");

    let forged = sign(
        "another-secret-another-secret-another-secret",
        json!({ "sub": u.id, "iss": "backops", "iat": now(), "exp": now() + 3600 }),
    );
    anon.with_token(&forged).get("/v1/orgs").await.err(401, "invalid_token");

    let no_issuer = sign(TEST_SECRET, json!({ "sub": u.id, "iat": now(), "exp": now() + 3600 }));
    anon.with_token(&no_issuer).get("/v1/orgs").await.err(401, "invalid_token");

    let ghost =
        sign(TEST_SECRET, json!({ "sub": "no-such-account", "iss": "backops", "iat": now(), "exp": now() + 3600 }));
    anon.with_token(&ghost).get("/v1/orgs").await.err(401, "invalid_token");

    // `alg: none` and RS256 without a configured key are refused.
    let none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        base64url(&json!({ "sub": u.id, "iss": "backops", "exp": now() + 3600 }).to_string())
    );
    anon.with_token(&none).get("/v1/orgs").await.err(401, "invalid_token");

    // Login: wrong password and unknown email look the same.
    let a = anon
        .post("/v1/sessions", json!({ "email": u.email, "password": "wrong password" }))
        .await
        .err(401, "bad_credentials");
    let b = anon
        .post("/v1/sessions", json!({ "email": "nobody@example.test", "password": "wrong password" }))
        .await
        .err(401, "bad_credentials");
    assert_eq!(a, b);
    let ok = anon.post("/v1/sessions", json!({ "email": u.email, "password": "correct horse battery" })).await.ok();
    anon.with_token(ok["token"].as_str().unwrap()).get("/v1/me").await.ok();
}

fn base64url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn other_tenants_ids_are_not_found() {
    let srv = TestServer::start().await;
    let alice = srv.sign_up("Alice").await;
    let bob = srv.sign_up("Bob").await;
    let a_org = alice.personal_org().await;
    let b_org = bob.personal_org().await;
    let a_license = alice.ready_org(&a_org, 1).await;
    let b_license = bob.ready_org(&b_org, 1).await;
    let (a_event, a_collab) = alice.create_event(&a_org, &a_license, "Alice Fest").await;
    let task = alice.api.post(&format!("/v1/events/{a_event}/tasks"), json!({ "title": "Secret" })).await.ok();
    let task = task["id"].as_str().unwrap();

    // Bob probes Alice's organization, event and records: all "not found", no details.
    for path in [
        format!("/v1/orgs/{a_org}"),
        format!("/v1/orgs/{a_org}/billing"),
        format!("/v1/orgs/{a_org}/licenses"),
        format!("/v1/orgs/{a_org}/members"),
        format!("/v1/events/{a_event}"),
        format!("/v1/events/{a_event}/tasks"),
        format!("/v1/events/{a_event}/seats"),
        format!("/v1/events/{a_event}/collaborators"),
        format!("/v1/events/{a_event}/dashboard?collaborator={a_collab}"),
    ] {
        let e = bob.api.get(&path).await.err(404, "not_found");
        assert!(!e.to_string().contains("Alice"), "{path}: {e}");
    }
    bob.api
        .patch(&format!("/v1/events/{a_event}/tasks/{task}"), json!({ "title": "mine" }))
        .await
        .err(404, "not_found");
    bob.api.delete(&format!("/v1/events/{a_event}/tasks/{task}")).await.err(404, "not_found");
    bob.api
        .post(&format!("/v1/orgs/{a_org}/licenses"), json!({ "kind": "event_pro", "quantity": 5 }))
        .await
        .err(404, "not_found");
    // Alice's task is not reachable through Bob's own event either.
    let (b_event, _) = bob.create_event(&b_org, &b_license, "Bob Fest").await;
    bob.api
        .patch(&format!("/v1/events/{b_event}/tasks/{task}"), json!({ "title": "mine" }))
        .await
        .err(404, "not_found");
    // Nor can Bob put records into Alice's collaborator through his event.
    bob.api
        .post(&format!("/v1/events/{b_event}/tasks"), json!({ "collaborator": a_collab, "title": "x" }))
        .await
        .err(404, "not_found");

    // Licenses: an unknown id, and Bob's license used in Alice's organization.
    let ev = |license: &str| json!({ "name": "E", "default_collaborator_name": "P", "license": license });
    alice.api.post(&format!("/v1/orgs/{a_org}/events"), ev("no-such-license")).await.err(404, "not_found");
    let e = alice.api.post(&format!("/v1/orgs/{a_org}/events"), ev(&b_license)).await.err(404, "not_found");
    assert_eq!(e["message"], "license not found");
    let still = alice.api.get(&format!("/v1/events/{a_event}/tasks")).await.ok();
    assert_eq!(still[0]["title"], "Secret");
}

/// Every list pages: `limit` rows `after` the cursor of the page before, the next page named
/// by a `Link` header, nothing repeated or skipped — even with rows written between pages —
/// and the list's own filters kept from page to page. A cursor that is not one is refused.
#[tokio::test]
async fn lists_page_with_a_next_link_and_never_stop_silently() {
    let srv = TestServer::start().await;
    let s = tests::stage(&srv).await;
    let ev = &s.event;
    let mut made = Vec::new();
    for i in 0..25 {
        made.push(tests::task(&s, &s.pm, &s.audio, &format!("Truss {i}")).await);
    }
    for i in 0..5 {
        tests::task(&s, &s.pm, &s.client, &format!("Client {i}")).await;
    }
    // Vic sees Audio's tasks only; ten at a time is three pages.
    let (first, next) = s.vic.api.page(&format!("/v1/events/{ev}/tasks?limit=10")).await;
    assert_eq!(first.len(), 10);
    let next = next.expect("a next page");
    assert!(next.starts_with(&format!("/v1/events/{ev}/tasks?limit=10&after=")), "{next}");
    // A row written between pages comes in a later page, once.
    made.push(tests::task(&s, &s.pm, &s.audio, "Truss late").await);
    let (rest, pages) = s.vic.api.all_pages(&next).await;
    assert_eq!(pages, 2);
    let mut ids: Vec<String> = first.iter().chain(&rest).map(|t| t["id"].as_str().unwrap().to_string()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no row twice");
    made.sort();
    assert_eq!(ids, made, "every task of Audio, and only Audio's");
    // The filter travels with the link: the seat holder's Client pages hold Client's tasks.
    let (client, pages) = s.pm.api.all_pages(&format!("/v1/events/{ev}/tasks?collaborator={}&limit=2", s.client)).await;
    assert_eq!((client.len(), pages), (5, 3));
    assert!(client.iter().all(|t| t["collaborator"] == s.client.as_str()));
    // A whole list in one page has no link.
    let (all, next) = s.pm.api.page(&format!("/v1/events/{ev}/tasks")).await;
    assert_eq!((all.len(), next), (31, None));

    let bad = s.pm.api.get(&format!("/v1/events/{ev}/tasks?after=not-a-cursor")).await.err(422, "invalid_input");
    assert!(bad["message"].as_str().unwrap().contains("after"), "{bad}");
    s.pm.api.get(&format!("/v1/events/{ev}/tasks?limit=0")).await.err(422, "invalid_input");
    s.pm.api.get(&format!("/v1/events/{ev}/tasks?limit=10001")).await.err(422, "invalid_input");
    // A cursor of one list is no cursor of another's order.
    let scans_cursor = next_after(&s.pm.api.page(&format!("/v1/events/{ev}/tasks?limit=1")).await.1.unwrap());
    s.pm.api.get(&format!("/v1/events/{ev}/timecards?after={scans_cursor}")).await.err(422, "invalid_input");
}

fn next_after(link: &str) -> String {
    link.split("after=").nth(1).unwrap().split('&').next().unwrap().to_string()
}
