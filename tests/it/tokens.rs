//! Token sources: the generated secret that survives restarts, and RS256 tokens from an
//! external identity provider.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use tests::{TestServer, test_config};

const IDP_PRIVATE: &str = include_str!("../fixtures/idp-test-private.pem");
const IDP_PUBLIC: &str = include_str!("../fixtures/idp-test-public.pem");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn idp_token(claims: serde_json::Value) -> String {
    encode(&Header::new(Algorithm::RS256), &claims, &EncodingKey::from_rsa_pem(IDP_PRIVATE.as_bytes()).unwrap())
        .unwrap()
}

#[tokio::test]
async fn generated_secret_is_kept_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.jwt_secret = None;
    config.database_url = format!("surrealkv://{}", dir.path().join("db").display());

    let srv = TestServer::start_config(config.clone(), None).await;
    let u = srv.sign_up("Dee").await;
    srv.stop().await.unwrap();
    let secret = std::fs::read_to_string(dir.path().join("jwt-secret")).unwrap();
    assert!(secret.len() >= 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret is readable by its owner only");
    }

    // After a restart on the same data directory, the token and the account still work.
    let srv = TestServer::start_config(config, None).await;
    let me = srv.anonymous().with_token(&u.token).get("/v1/me").await.ok();
    assert_eq!(me["id"], u.id.as_str());
    assert_eq!(std::fs::read_to_string(dir.path().join("jwt-secret")).unwrap(), secret);
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn external_identity_provider_tokens() {
    let srv = TestServer::start_with(|c| {
        c.jwt_public_key_pem = Some(IDP_PUBLIC.into());
        c.jwt_issuer = Some("https://idp.example.test".into());
        c.jwt_audience = Some("backops".into());
    })
    .await;
    let anon = srv.anonymous();
    let good = json!({ "sub": "idp|42", "email": "Rita@Example.test", "email_verified": true, "name": "Rita",
                       "iss": "https://idp.example.test", "aud": "backops", "iat": now(), "exp": now() + 600 });

    // First arrival creates the account and its personal organization.
    let rita = anon.with_token(&idp_token(good.clone()));
    let me = rita.get("/v1/me").await.ok();
    assert_eq!((me["email"].clone(), me["name"].clone()), (json!("rita@example.test"), json!("Rita")));
    let orgs = rita.get("/v1/orgs").await.ok();
    assert_eq!(orgs[0]["kind"], "personal");
    // The same person again is the same account.
    assert_eq!(rita.get("/v1/me").await.ok()["id"], me["id"]);
    // The provider's token opens a sign-in of the device's own, renewable and revocable.
    let signed = anon
        .post("/v1/sessions", json!({ "identity_token": idp_token(good.clone()), "device_name": "Rita's tablet" }))
        .await
        .ok();
    assert_eq!(signed["account"]["id"], me["id"]);
    let own = anon.with_token(signed["token"].as_str().unwrap());
    assert_eq!(own.get("/v1/me/sessions").await.ok()[0]["name"], "Rita's tablet");
    anon.post("/v1/sessions/refresh", json!({ "refresh_token": signed["refresh_token"] })).await.ok();
    // Not with an expired one, nor with both a password and a token.
    let mut stale = good.clone();
    stale["exp"] = json!(now() - 600);
    anon.post("/v1/sessions", json!({ "identity_token": idp_token(stale) })).await.err(401, "token_expired");
    anon.post(
        "/v1/sessions",
        json!({ "identity_token": idp_token(good.clone()), "email": "rita@example.test", "password": "x" }),
    )
    .await
    .err(400, "invalid_body");
    // Such an account has no password to log in with.
    anon.post("/v1/sessions", json!({ "email": "rita@example.test", "password": "" }))
        .await
        .err(401, "bad_credentials");

    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://evil.example.test");
    anon.with_token(&idp_token(wrong_issuer)).get("/v1/me").await.err(401, "invalid_token");
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("someone-else");
    anon.with_token(&idp_token(wrong_audience)).get("/v1/me").await.err(401, "invalid_token");
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 600);
    anon.with_token(&idp_token(expired)).get("/v1/me").await.err(401, "token_expired");
    let mut no_email = good.clone();
    no_email.as_object_mut().unwrap().remove("email");
    anon.with_token(&idp_token(no_email)).get("/v1/me").await.err(401, "invalid_token");

    // The provider must say it verified the email.
    for verified in [json!(false), json!("false"), json!(null)] {
        let mut unverified = good.clone();
        unverified["sub"] = json!("idp|43");
        unverified["email"] = json!("sam@example.test");
        unverified["email_verified"] = verified;
        anon.with_token(&idp_token(unverified)).get("/v1/me").await.err(401, "invalid_token");
    }
    let mut unverified = good.clone();
    unverified.as_object_mut().unwrap().remove("email_verified");
    unverified["sub"] = json!("idp|44");
    anon.with_token(&idp_token(unverified)).get("/v1/me").await.err(401, "invalid_token");

    // An email alone never hands a provider's person an account made another way: not a
    // password account's, and not another subject's of the same address.
    let vic = srv.sign_up("Vic").await;
    let mut claims_vic = good.clone();
    claims_vic["sub"] = json!("idp|45");
    claims_vic["email"] = json!(vic.email);
    anon.with_token(&idp_token(claims_vic)).get("/v1/me").await.err(401, "invalid_token");
    vic.api.get("/v1/me").await.ok();
    let mut other_subject = good.clone();
    other_subject["sub"] = json!("idp|46");
    anon.with_token(&idp_token(other_subject)).get("/v1/me").await.err(401, "invalid_token");
    // The subject is the person: a changed email at the provider keeps the account.
    let mut new_email = good.clone();
    new_email["email"] = json!("rita.new@example.test");
    assert_eq!(anon.with_token(&idp_token(new_email)).get("/v1/me").await.ok()["id"], me["id"]);

    // Without a configured key, the same RS256 token is refused.
    let plain = TestServer::start().await;
    plain.anonymous().with_token(&idp_token(good)).get("/v1/me").await.err(401, "invalid_token");

    // A key without its issuer and audience refuses to start.
    for (iss, aud) in [(None, Some("backops")), (Some("https://idp.example.test"), None), (None, None)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.jwt_public_key_pem = Some(IDP_PUBLIC.into());
        config.jwt_issuer = iss.map(String::from);
        config.jwt_audience = aud.map(String::from);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let err = server::prepare(&config, rx).await.expect_err("refused to start");
        assert!(err.to_string().contains("issuer and audience"), "{err}");
    }
}

/// Tokens forged in the known ways are refused over HTTP and at the socket's hello, and the
/// server never fetches a key a token points to. The deployment's own tokens are taken within
/// five seconds of clock skew and not beyond.
#[tokio::test]
async fn forged_tokens_are_refused() {
    // A listener a `jku` header points to: a server that follows it would connect here.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jku = format!("http://{}/keys.json", trap.local_addr().unwrap());
    let srv = TestServer::start_with(|c| {
        c.jwt_public_key_pem = Some(IDP_PUBLIC.into());
        c.jwt_issuer = Some("https://idp.example.test".into());
        c.jwt_audience = Some("backops".into());
    })
    .await;
    let vic = srv.sign_up("Vic").await;
    let ours = |claims: serde_json::Value| {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(tests::TEST_SECRET.as_bytes()))
            .unwrap()
    };
    let claims =
        |exp: u64| json!({ "sub": vic.id, "iss": server::auth::ISSUER, "iat": now(), "exp": exp, "sid": vic.sign_in });
    let idp = json!({ "sub": "idp|7", "email": "eve@example.test", "email_verified": true, "iss": "https://idp.example.test",
                      "aud": "backops", "iat": now(), "exp": now() + 600 });
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };

    let mut forged: Vec<(&str, String)> = Vec::new();
    // `alg: none`, with and without a signature.
    let unsigned = format!("{}.{}", b64(json!({ "alg": "none", "typ": "JWT" })), b64(claims(now() + 600)));
    forged.push(("alg none", format!("{unsigned}.")));
    forged.push(("alg none, signed", format!("{unsigned}.c2ln")));
    // Algorithm confusion: HS256 keyed with the identity provider's public key.
    forged.push((
        "HS256 keyed with the RS256 public key",
        encode(&Header::new(Algorithm::HS256), &idp, &EncodingKey::from_secret(IDP_PUBLIC.as_bytes())).unwrap(),
    ));
    // Another deployment's token for the same account.
    forged.push((
        "another deployment's secret",
        encode(
            &Header::new(Algorithm::HS256),
            &claims(now() + 600),
            &EncodingKey::from_secret(b"another-deployment-another-secret-0123456789"),
        )
        .unwrap(),
    ));
    // Signed with the attacker's own key, which the token names and links (`kid`, `jku`).
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("attacker".into());
    header.jku = Some(jku.clone());
    let attacker = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/attacker-test-private.pem")).unwrap();
    forged.push(("the attacker's key, named and linked", encode(&header, &idp, &attacker).unwrap()));
    // Claims changed under the identity provider's real signature.
    let signed = idp_token(idp.clone());
    let parts: Vec<&str> = signed.split('.').collect();
    let mut tampered = idp.clone();
    tampered["email"] = json!("admin@example.test");
    forged.push(("claims changed under a real signature", format!("{}.{}.{}", parts[0], b64(tampered), parts[2])));
    // Other algorithms, even with a valid-looking body.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        forged.push((
            "an algorithm not accepted",
            encode(&Header::new(alg), &claims(now() + 600), &EncodingKey::from_secret(tests::TEST_SECRET.as_bytes()))
                .unwrap(),
        ));
    }
    // The deployment's own key, wrong in its claims.
    let mut other_issuer = claims(now() + 600);
    other_issuer["iss"] = json!("someone-else");
    forged.push(("another issuer", ours(other_issuer)));
    let mut no_sub = claims(now() + 600);
    no_sub.as_object_mut().unwrap().remove("sub");
    forged.push(("no subject", ours(no_sub)));
    let mut ghost = claims(now() + 600);
    ghost["sub"] = json!("account-that-does-not-exist");
    forged.push(("an account that does not exist", ours(ghost)));
    // The identity provider's tokens without the audience or issuer the deployment names.
    for claim in ["aud", "iss"] {
        let mut without = idp.clone();
        without.as_object_mut().unwrap().remove(claim);
        forged.push((claim, idp_token(without)));
    }
    // Oversized, and not a token at all.
    forged.push(("oversized", format!("{}.{}.x", "a".repeat(9_000), "b")));
    forged.push(("garbage", "not.a.token".into()));

    for (what, token) in &forged {
        let r = srv.anonymous().with_token(token).get("/v1/me").await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.err(401, "invalid_token");
        let mut c = tests::SyncClient::raw(&srv).await;
        c.send(json!({ "type": "hello", "protocol": 2, "token": token, "device": "forger" })).await;
        assert_eq!(c.closed().await.0, 4003, "{what}: the socket's hello");
    }

    // Clock skew: a token that expired 2 s ago is taken (five seconds of leeway), one that
    // expired 30 s ago is not.
    let skewed = ours(claims(now() - 2));
    srv.anonymous().with_token(&skewed).get("/v1/me").await.ok();
    let expired = ours(claims(now() - 30));
    srv.anonymous().with_token(&expired).get("/v1/me").await.err(401, "token_expired");
    // And the real ones still work.
    vic.api.get("/v1/me").await.ok();
    srv.anonymous().with_token(&idp_token(idp)).get("/v1/me").await.ok();
    // Nothing ever asked the linked key's address.
    let asked = tokio::time::timeout(std::time::Duration::from_millis(50), trap.accept()).await;
    assert!(asked.is_err(), "the server followed a token's jku");
}

/// Sign-ins and sign-ups are rate limited: a password is not guessed faster than the limit
/// from anywhere (failed sign-ins count against the account), and one address cannot spend the
/// server's password hashing at will. Past a limit: 429 `too_many_attempts` with
/// `Retry-After`, and nothing else is affected.
#[tokio::test]
async fn sign_ins_and_sign_ups_are_rate_limited() {
    let srv = TestServer::start_with(|c| {
        let plenty = server::attempts::Rate { burst: 1_000, per_minute: 1_000 };
        c.attempts.sign_ins_per_address = plenty;
        c.attempts.failures_per_account = server::attempts::Rate { burst: 3, per_minute: 1 };
        c.attempts.sign_ups_per_address = server::attempts::Rate { burst: 4, per_minute: 1 };
    })
    .await;
    let vic = srv.sign_up("Vic").await;
    let rita = srv.sign_up("Rita").await;
    let http = reqwest::Client::new();
    let log_in = |email: &str, password: &str| {
        http.post(format!("{}/v1/sessions", srv.base)).json(&json!({ "email": email, "password": password })).send()
    };
    // Three wrong guesses are answered as such; then the account is locked for a while, even
    // for the right password.
    for _ in 0..3 {
        assert_eq!(log_in(&vic.email, "guess").await.unwrap().status(), 401);
    }
    let locked = log_in(&vic.email, "correct horse battery").await.unwrap();
    assert_eq!(locked.status(), 429);
    let wait: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = locked.json().await.unwrap();
    assert_eq!(body["code"], "too_many_attempts");
    // The same email written differently is the same account.
    assert_eq!(log_in(&vic.email.to_uppercase(), "guess").await.unwrap().status(), 429);
    // Another account is not affected, nor are signed-in sessions.
    assert_eq!(log_in(&rita.email, "correct horse battery").await.unwrap().status(), 200);
    vic.api.get("/v1/me").await.ok();

    // Sign-ups from one address: two more fit the burst of four, the next waits.
    srv.sign_up("Sam").await;
    srv.sign_up("Tess").await;
    let r = srv
        .anonymous()
        .post(
            "/v1/accounts",
            json!({ "email": "uma@example.test", "name": "Uma", "password": "correct horse battery" }),
        )
        .await;
    r.err(429, "too_many_attempts");

    // Sign-ins from one address, whatever their outcome, on a server that allows two.
    let tight = TestServer::start_with(|c| {
        c.attempts.sign_ins_per_address = server::attempts::Rate { burst: 2, per_minute: 1 };
    })
    .await;
    let ann = tight.sign_up("Ann").await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = http
            .post(format!("{}/v1/sessions", tight.base))
            .json(&json!({ "email": ann.email, "password": "correct horse battery" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429]);
}

/// Behind a trusted reverse proxy, each client is counted by the address the proxy forwards
/// (`X-Forwarded-For`), so a crew behind one proxy is not one address; from anyone else the
/// header is ignored, so it cannot be used to escape the limit.
#[tokio::test]
async fn the_address_limit_counts_clients_behind_a_trusted_proxy() {
    let two = server::attempts::Rate { burst: 2, per_minute: 1 };
    let attempt = |base: String, forwarded: &'static str| async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/sessions"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "email": "nobody@example.test", "password": "wrong" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // The test's requests come from 127.0.0.1: the proxy.
    let proxied = TestServer::start_with(|c| {
        c.attempts.sign_ins_per_address = two;
        c.attempts.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut seen = Vec::new();
    for forwarded in ["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "203.0.113.9, 10.0.0.2", "127.0.0.1, 10.0.0.3"] {
        seen.push(attempt(proxied.base.clone(), forwarded).await);
    }
    // 10.0.0.1 twice, then limited; 10.0.0.2 is another client (a spoofed entry before it
    // changes nothing: the proxy appends the address it saw); 10.0.0.3 is yet another.
    assert_eq!(seen, vec![401, 401, 429, 401, 401, 401]);
    assert_eq!(attempt(proxied.base.clone(), "10.0.0.2").await, 429);

    // Without a trusted proxy the header is ignored: every request is 127.0.0.1.
    let direct = TestServer::start_with(|c| c.attempts.sign_ins_per_address = two).await;
    let mut seen = Vec::new();
    for forwarded in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        seen.push(attempt(direct.base.clone(), forwarded).await);
    }
    assert_eq!(seen, vec![401, 401, 429]);
}
