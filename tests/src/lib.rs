//! The shared harness of the integration tests: a real server on `127.0.0.1:0` over a real
//! (embedded, in-memory) SurrealDB, and a small HTTP client that speaks its JSON.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

/// The HS256 secret test servers sign with, so tests can forge and expire tokens.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// License activation delay of test servers.
pub const TEST_ACTIVATION_DELAY: Duration = Duration::from_millis(50);
/// How long a test waits for something asynchronous before it fails.
pub const WAIT_MAX: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub base: String,
    pub config: server::Config,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), server::Error>>>,
    _dir: Option<tempfile::TempDir>,
}

/// A server configuration for tests: in-memory database, known secret, quick activation
/// and quick password hashing.
pub fn test_config(data_dir: &std::path::Path) -> server::Config {
    let mut c = server::Config::embedded(data_dir);
    c.database_url = "mem://".into();
    c.jwt_secret = Some(TEST_SECRET.into());
    c.engine.license_activation_delay = TEST_ACTIVATION_DELAY;
    c.engine.password_hashing = engine::PasswordHashing::Fast;
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with a test configuration adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut server::Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::start_config(config, Some(dir)).await
    }

    pub async fn start_config(config: server::Config, dir: Option<tempfile::TempDir>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(listener, config.clone(), async {
            let _ = rx.await;
        }));
        let mut server = TestServer { base, config, shutdown: Some(tx), handle: Some(handle), _dir: dir };
        let api = server.anonymous();
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            if server.handle.as_ref().is_some_and(JoinHandle::is_finished) {
                let result = server.handle.take().expect("handle").await.expect("server task");
                panic!("server stopped while starting: {result:?}");
            }
            if let Ok(r) = api.try_send(reqwest::Method::GET, "/v1/health", None).await
                && r.status == 200
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server
    }

    /// Stops the server and waits until it has shut down; returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), server::Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.expect("server task"),
            None => Ok(()),
        }
    }

    pub fn anonymous(&self) -> Api {
        Api { http: reqwest::Client::new(), base: self.base.clone(), token: None }
    }

    /// Signs up a new person named `name` (email `<name>@example.test`).
    pub async fn sign_up(&self, name: &str) -> User {
        let email = format!("{}@example.test", name.to_lowercase());
        let r = self
            .anonymous()
            .post("/v1/accounts", json!({ "email": email, "name": name, "password": "correct horse battery" }))
            .await
            .ok();
        let token = r["token"].as_str().expect("token").to_string();
        User {
            id: r["account"]["id"].as_str().expect("account id").to_string(),
            email,
            api: self.anonymous().with_token(&token),
            token,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
    pub api: Api,
}

impl User {
    /// The personal organization every account gets.
    pub async fn personal_org(&self) -> String {
        let orgs = self.api.get("/v1/orgs").await.ok();
        orgs.as_array()
            .and_then(|a| a.iter().find(|o| o["kind"] == "personal"))
            .and_then(|o| o["id"].as_str())
            .expect("personal org")
            .to_string()
    }

    /// Adds a card and an address to `org`, buys `event_pro` Event Pro licenses, and waits
    /// until they are active. Returns the license id.
    pub async fn ready_org(&self, org: &str, event_pro: i64) -> String {
        self.api
            .put(
                &format!("/v1/orgs/{org}/billing/payment-method"),
                json!({ "kind": "card", "provider_token": "tok_visa_test", "last4": "4242" }),
            )
            .await
            .ok();
        self.api
            .put(
                &format!("/v1/orgs/{org}/billing/address"),
                json!({ "line1": "1 Stage Door", "city": "Austin", "zip": "78701", "country": "US" }),
            )
            .await
            .ok();
        let lic = self
            .api
            .post(&format!("/v1/orgs/{org}/licenses"), json!({ "kind": "event_pro", "quantity": event_pro }))
            .await
            .ok();
        let id = lic["id"].as_str().expect("license id").to_string();
        self.wait_license_active(org, &id).await;
        id
    }

    pub async fn wait_license_active(&self, org: &str, license: &str) {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let list = self.api.get(&format!("/v1/orgs/{org}/licenses")).await.ok();
            let status =
                list.as_array().and_then(|a| a.iter().find(|l| l["id"] == license)).map(|l| l["status"].clone());
            if status == Some(json!("active")) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "license {license} never became active");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates an event in `org` with `license`; returns (event id, default collaborator id).
    pub async fn create_event(&self, org: &str, license: &str, name: &str) -> (String, String) {
        let ev = self
            .api
            .post(
                &format!("/v1/orgs/{org}/events"),
                json!({ "name": name, "default_collaborator_name": "Production", "license": license }),
            )
            .await
            .ok();
        (ev["id"].as_str().expect("event id").into(), ev["default_collaborator"].as_str().expect("collab").into())
    }
}

/// An HTTP client bound to one server and, optionally, one bearer token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The body of a successful response; panics with the error otherwise.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "expected success, got {} {}", self.status, self.body);
        self.body
    }

    /// Asserts an error status and code, and that the body is exactly `{code, message}`.
    #[track_caller]
    pub fn err(self, status: u16, code: &str) -> Value {
        assert_eq!((self.status, self.body["code"].as_str()), (status, Some(code)), "body: {}", self.body);
        let obj = self.body.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 2, "error body has exactly code and message: {}", self.body);
        assert!(obj["message"].as_str().is_some_and(|m| !m.is_empty()), "error has a message");
        self.body
    }
}

impl Api {
    pub fn with_token(&self, token: &str) -> Api {
        Api { token: Some(token.to_string()), ..self.clone() }
    }

    pub async fn try_send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Result<Reply> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::reply(req.send().await?).await
    }

    /// Sends raw bytes with a content type: for malformed and oversized bodies.
    pub async fn raw(&self, method: reqwest::Method, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        Self::reply(req.send().await.expect("request")).await.expect("reply")
    }

    async fn reply(r: reqwest::Response) -> reqwest::Result<Reply> {
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("response is not JSON: {:?}", String::from_utf8_lossy(&bytes)))
        };
        Ok(Reply { status, body })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.try_send(reqwest::Method::GET, path, None).await.expect("request")
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.try_send(reqwest::Method::POST, path, Some(body)).await.expect("request")
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.try_send(reqwest::Method::PUT, path, Some(body)).await.expect("request")
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.try_send(reqwest::Method::PATCH, path, Some(body)).await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.try_send(reqwest::Method::DELETE, path, None).await.expect("request")
    }
}
