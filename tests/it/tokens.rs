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
    let good = json!({ "sub": "idp|42", "email": "Rita@Example.test", "name": "Rita", "iss": "https://idp.example.test",
                       "aud": "backops", "iat": now(), "exp": now() + 600 });

    // First arrival creates the account and its personal organization.
    let rita = anon.with_token(&idp_token(good.clone()));
    let me = rita.get("/v1/me").await.ok();
    assert_eq!((me["email"].clone(), me["name"].clone()), (json!("rita@example.test"), json!("Rita")));
    let orgs = rita.get("/v1/orgs").await.ok();
    assert_eq!(orgs[0]["kind"], "personal");
    // The same person again is the same account.
    assert_eq!(rita.get("/v1/me").await.ok()["id"], me["id"]);
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

    // Without a configured key, the same RS256 token is refused.
    let plain = TestServer::start().await;
    plain.anonymous().with_token(&idp_token(good)).get("/v1/me").await.err(401, "invalid_token");
}
