//! The shared harness of the integration tests: a real server on `127.0.0.1:0` over a real
//! (embedded, in-memory) SurrealDB, and a small HTTP client that speaks its JSON.

use std::time::Duration;

/// Whose a record is (its collaborators, or its person's scope), by the engine's kind table.
pub fn owners(kind: &str, id: &str, data: &Value) -> Vec<String> {
    engine::Kind::parse(kind).map(|k| k.owners(id, data)).unwrap_or_default()
}

pub mod bench;
pub mod device;
pub mod disk;
pub mod files;
pub mod mail;
pub mod phone;
pub mod surreal;

use engine::{Engine, EngineConfig, NewAccount, NewEvent, PasswordHashing, PurchaseInput, model::*};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

/// The code a message from the server carries: the 8 digits its subject starts with.
pub fn code_in(message: &str) -> Option<String> {
    let subject = message.lines().find(|l| l.starts_with("Subject:"))?;
    let code: String = subject["Subject:".len()..].trim().chars().take_while(char::is_ascii_digit).collect();
    (code.len() == 8).then_some(code)
}

/// The HS256 secret test servers sign with, so tests can forge and expire tokens.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// License activation delay of test servers.
pub const TEST_ACTIVATION_DELAY: Duration = Duration::from_millis(50);
/// A token for account `sub`'s sign-in `sid` signed with `secret` (HS256), expiring at `exp`
/// (Unix seconds).
pub fn signed_token(sub: &str, sid: &str, secret: &str, exp: u64) -> String {
    let iat = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({ "sub": sub, "iss": "backops", "iat": iat, "exp": exp, "sid": sid });
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).unwrap()
}

/// How long a test waits for something asynchronous before it fails.
pub const WAIT_MAX: Duration = Duration::from_secs(10);

/// The change log of `event` read from a stopped node's SurrealKV files at `db`, by an
/// engine in this process: asserts every seq from 1 to the head, once, in order; returns the
/// head.
pub async fn assert_gap_free(db: &std::path::Path, event: &str) -> i64 {
    let engine = Engine::open(&format!("surrealkv://{}", db.display()), None, Default::default())
        .await
        .expect("the node's files open");
    let head = engine.head(event).await.unwrap();
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|last| *last < head) {
        let after = seqs.last().copied().unwrap_or(0);
        let read = engine.changes_since(event, after, 1_000).await.unwrap();
        assert!(!read.is_empty(), "the log ends at {after}, below the head {head}");
        seqs.extend(read.iter().map(|c| c.seq));
    }
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "a gap-free log");
    head
}

/// Where a benchmark keeps its databases: SurrealKV files in a directory of its own, or
/// memory.
pub struct BenchStore {
    pub disk: bool,
    dir: tempfile::TempDir,
}

impl BenchStore {
    pub fn new(disk: bool) -> BenchStore {
        BenchStore { disk, dir: tempfile::tempdir().expect("dir") }
    }

    /// The database URL of the store named `name`.
    pub fn url(&self, name: &str) -> String {
        if self.disk { format!("surrealkv://{}", self.dir.path().join(name).display()) } else { "mem://".into() }
    }

    /// The real server on the store `server`.
    pub async fn server(&self) -> TestServer {
        let mut config = test_config(self.dir.path());
        config.database_url = self.url("server");
        TestServer::start_config(config, None).await
    }
}

/// The `q` quantile (0 to 1) of durations sorted ascending; zero for none (benchmarks).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

pub struct TestServer {
    pub base: String,
    pub config: server::Config,
    /// The server's engine, for checks a client cannot make (None for an attached server).
    /// Dropped with the server, so a restart can open the same database.
    pub engine: Option<Engine>,
    /// The server's file storage, for its upkeep ([`server::files::Files::collect`]).
    pub files: Option<std::sync::Arc<server::files::Files>>,
    /// Where the harness reads the mail the server sent (its mail directory, or the maildir
    /// of the SMTP server it sends to).
    pub mailbox: Option<std::path::PathBuf>,
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
    // The harness's people hold one access token for a whole run (a soak runs 30 minutes);
    // renewal has tests of its own, with lifetimes of seconds.
    c.token_ttl = Duration::from_secs(12 * 3600);
    // The mail the server sends (codes that prove an email) as files the harness reads.
    c.mail.dir = Some(data_dir.join("mail"));
    // Tests sign many people up and in from one address; the limits have their own test.
    let plenty = server::attempts::Rate { burst: 100_000, per_minute: 100_000 };
    c.attempts = server::attempts::AttemptLimits {
        sign_ins_per_address: plenty,
        failures_per_account: plenty,
        sign_ups_per_address: plenty,
        trusted_proxies: Vec::new(),
    };
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
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state = server::prepare(&config, stop_rx).await.expect("server state");
        let engine = Some(state.engine.clone());
        let files = Some(state.files.clone());
        let serving = config.clone();
        let handle = tokio::spawn(async move {
            server::serve(listener, &serving, state, stop_tx, async {
                let _ = rx.await;
            })
            .await
        });
        let mut server = TestServer {
            base,
            mailbox: config.mail.dir.clone(),
            config,
            engine,
            files,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        };
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

    /// A handle on a server already listening at `base` (e.g. one in another process, so a
    /// load generator measures the server apart from its clients). It has a test
    /// configuration of its own; `stop` and drop leave that server running.
    pub fn attach(base: &str) -> TestServer {
        let config = test_config(std::path::Path::new("."));
        TestServer {
            base: base.trim_end_matches('/').to_string(),
            config,
            engine: None,
            files: None,
            mailbox: None,
            shutdown: None,
            handle: None,
            _dir: None,
        }
    }

    /// Stops the server and waits until it has shut down; returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), server::Error> {
        self.engine = None;
        self.files = None;
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

    /// Signs up a new person named `name` (email `<name>@example.test`) and proves the email
    /// with the code the server mailed, as a newcomer does.
    pub async fn sign_up(&self, name: &str) -> User {
        let user = self.sign_up_unproven(name).await;
        let code = self.mailed_code(&user.email).await;
        let me = user.api.post("/v1/me/email/proof", json!({ "code": code })).await.ok();
        assert_eq!(me["email_proven"], true, "{me}");
        user
    }

    /// The code in the newest message the server mailed to `email` (from its mail directory),
    /// waiting for it; the message is taken out.
    pub async fn mailed_code(&self, email: &str) -> String {
        let dir = self.mailbox.clone().expect("a server whose mail the harness can read");
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let mut found: Vec<(std::time::SystemTime, std::path::PathBuf, String)> = Vec::new();
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                let to_them = text.lines().any(|l| l.starts_with("To:") && l.contains(email));
                if to_them {
                    let at = entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                    found.push((at, path, text));
                }
            }
            found.sort();
            if let Some((_, path, text)) = found.pop() {
                let _ = std::fs::remove_file(path);
                return code_in(&text).unwrap_or_else(|| panic!("no code in the message to {email}:\n{text}"));
            }
            assert!(tokio::time::Instant::now() < deadline, "no mail to {email} in {}", dir.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `u` signed in afresh (a new sign-in), for servers whose access tokens outlive
    /// nothing much.
    pub async fn signed_in(&self, u: &User) -> Api {
        let r = self.device_sign_in(u, None).await;
        self.anonymous().with_token(r["token"].as_str().expect("token"))
    }

    /// Signs `u` in afresh with their password, on a device named `device` if given: the
    /// answer of `POST /v1/sessions` (tokens, the sign-in's id, the account).
    pub async fn device_sign_in(&self, u: &User, device: Option<&str>) -> Value {
        let mut body = json!({ "email": u.email, "password": "correct horse battery" });
        if let Some(d) = device {
            body["device_name"] = json!(d);
        }
        self.anonymous().post("/v1/sessions", body).await.ok()
    }

    /// Signs up a new person named `name` without proving the email.
    pub async fn sign_up_unproven(&self, name: &str) -> User {
        let email = format!("{}@example.test", name.to_lowercase());
        let r = self
            .anonymous()
            .post("/v1/accounts", json!({ "email": email, "name": name, "password": "correct horse battery" }))
            .await
            .ok();
        let token = r["token"].as_str().expect("token").to_string();
        User {
            id: r["account"]["id"].as_str().expect("account id").to_string(),
            sign_in: r["session"].as_str().expect("sign-in id").to_string(),
            refresh_token: r["refresh_token"].as_str().expect("refresh token").to_string(),
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
    /// The access token of the sign-in made at sign-up, its id, and the refresh token that
    /// renews it.
    pub token: String,
    pub sign_in: String,
    pub refresh_token: String,
    pub api: Api,
}

impl User {
    /// A token of this user's sign-in expiring at `exp` (Unix seconds), signed as the test
    /// servers sign.
    pub fn token_until(&self, exp: u64) -> String {
        signed_token(&self.id, &self.sign_in, TEST_SECRET, exp)
    }

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
    /// A request with this client's token, for headers and bodies of one's own.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

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

    /// `GET path` (a list page, which must succeed): its rows and the path of the next page,
    /// from the `Link: <…>; rel="next"` header.
    pub async fn page(&self, path: &str) -> (Vec<Value>, Option<String>) {
        let mut req = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let next = resp.headers().get(reqwest::header::LINK).map(|l| {
            let l = l.to_str().expect("a Link header of text");
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l.trim_start_matches('<').split('>').next().expect("a link").to_string()
        });
        let reply = Self::reply(resp).await.expect("reply");
        let rows = reply.ok().as_array().unwrap_or_else(|| panic!("GET {path} is not a list")).clone();
        (rows, next)
    }

    /// Every row of a paged list, following its `next` links; and how many pages it took.
    pub async fn all_pages(&self, path: &str) -> (Vec<Value>, usize) {
        let (mut rows, mut next) = self.page(path).await;
        let mut pages = 1;
        while let Some(p) = next {
            let (more, after) = self.page(&p).await;
            rows.extend(more);
            next = after;
            pages += 1;
            assert!(pages < 10_000, "a list that never ends");
        }
        (rows, pages)
    }

    /// `GET path` (a JSON list, which must succeed; every page of it), each item's text
    /// `field`.
    pub async fn strings(&self, path: &str, field: &str) -> Vec<String> {
        let (items, _) = self.all_pages(path).await;
        items.iter().map(|v| v[field].as_str().unwrap_or_else(|| panic!("no {field} in {v}")).to_string()).collect()
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

// ---- a staffed event ----

/// A staffed event: `pm` holds a seat; `vic` is a member of `audio`, `cara` of `client`.
pub struct Stage {
    pub pm: User,
    pub vic: User,
    pub cara: User,
    pub event: String,
    pub prod: String,
    pub audio: String,
    pub client: String,
}

pub async fn stage(srv: &TestServer) -> Stage {
    let pm = srv.sign_up("Pm").await;
    let org = pm.personal_org().await;
    let license = pm.ready_org(&org, 2).await;
    let (event, prod) = pm.create_event(&org, &license, "Live").await;
    let mk = |name: &'static str| {
        let api = pm.api.clone();
        let path = format!("/v1/events/{event}/collaborators");
        async move { api.post(&path, json!({ "name": name })).await.ok()["id"].as_str().unwrap().to_string() }
    };
    let audio = mk("Audio").await;
    let client = mk("Client").await;
    let vic = srv.sign_up("Vic").await;
    let cara = srv.sign_up("Cara").await;
    for (who, c) in [(&vic, &audio), (&cara, &client)] {
        pm.api.post(&format!("/v1/events/{event}/collaborators/{c}/members"), json!({ "email": who.email })).await.ok();
    }
    Stage { pm, vic, cara, event, prod, audio, client }
}

/// Creates gates named `names` in `zone`, each with `lanes` lanes (`"1"`, `"2"`, …); returns
/// their ids.
pub async fn gates(api: &Api, event: &str, zone: &str, names: &[&str], lanes: usize) -> Vec<String> {
    let lanes: Vec<String> = (1..=lanes).map(|l| l.to_string()).collect();
    let mut ids = Vec::new();
    for name in names {
        let g = api
            .post(&format!("/v1/events/{event}/gates"), json!({ "name": name, "zone": zone, "lanes": lanes }))
            .await
            .ok();
        ids.push(g["id"].as_str().expect("gate id").to_string());
    }
    ids
}

/// Creates a task through the HTTP API; returns its id.
pub async fn task(s: &Stage, who: &User, collab: &str, title: &str) -> String {
    let t = who
        .api
        .post(&format!("/v1/events/{}/tasks", s.event), json!({ "collaborator": collab, "title": title }))
        .await
        .ok();
    t["id"].as_str().unwrap().to_string()
}

// ---- engine-level fixture (no server) ----

/// Signs `a` up through the engine and proves its email with the code the engine made for
/// it (what the server mails).
pub async fn proven(engine: &Engine, a: NewAccount) -> Account {
    let id = engine.sign_up(a).await.expect("sign up").id;
    let code = engine.new_email_code(&id).await.expect("a code").code;
    engine.prove_email(&id, &code).await.expect("the email proven")
}

/// An engine with one account owning an event, ready for work: for engine-level tests and
/// the benchmarks.
pub struct Fixture {
    pub engine: Engine,
    pub owner: String,
    pub event: String,
}

/// Opens an engine on `url` and prepares an event owned by a fresh account.
pub async fn fixture(url: &str) -> Fixture {
    fixture_with(url, |_| {}).await
}

/// [`fixture`] with an engine configuration adjusted by `adjust`.
pub async fn fixture_with(url: &str, adjust: impl FnOnce(&mut EngineConfig)) -> Fixture {
    let mut config = EngineConfig {
        license_activation_delay: Duration::ZERO,
        password_hashing: PasswordHashing::Fast,
        ..EngineConfig::default()
    };
    adjust(&mut config);
    let engine = Engine::open(url, None, config).await.expect("open");
    let owner = proven(
        &engine,
        NewAccount { email: "bench@example.test".into(), name: "Bench".into(), password: "benchmark pass".into() },
    )
    .await
    .id;
    let org = engine.list_orgs(&owner).await.expect("orgs")[0].org.id.clone();
    engine
        .set_payment_method(
            &owner,
            &org,
            PaymentMethod { kind: PaymentKind::Card, provider_token: "tok".into(), last4: "4242".into() },
        )
        .await
        .expect("card");
    engine
        .set_billing_address(
            &owner,
            &org,
            BillingAddress {
                name: None,
                line1: "1 Bench St".into(),
                line2: None,
                city: "Austin".into(),
                region: None,
                zip: "78701".into(),
                country: "US".into(),
            },
        )
        .await
        .expect("address");
    let license = engine
        .purchase_license(&owner, &org, PurchaseInput { kind: LicenseKind::EventPro, quantity: 5 })
        .await
        .expect("purchase")
        .id;
    let event = loop {
        match engine
            .create_event(
                &owner,
                &org,
                NewEvent {
                    name: "Bench Fest".into(),
                    default_collaborator_name: "Prod".into(),
                    license: license.clone(),
                },
            )
            .await
        {
            Ok(ev) => break ev.event.id,
            Err(engine::Error::Rule { .. }) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("create event: {e:?}"),
        }
    };
    Fixture { engine, owner, event }
}

// ---- sync socket client ----

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// What a sync client received: a message, or the close frame that ended the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Message(Value),
    Closed { code: u16, reason: String },
}

/// A real WebSocket client of `/v1/sync` that keeps a replica the way a device would.
pub struct SyncClient {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Every message received, in order.
    pub log: Vec<Value>,
    /// The records held, per event: (kind, id) → data.
    pub replica: std::collections::HashMap<String, std::collections::BTreeMap<(String, String), Value>>,
    pub cursors: std::collections::HashMap<String, i64>,
    /// `frame_out_bytes_target` announced in `welcome`.
    frame_target: Option<usize>,
    /// The device id said in `hello`.
    device: String,
}

impl TestServer {
    pub fn sync_url(&self) -> String {
        format!("{}/v1/sync", self.base.replace("http://", "ws://"))
    }
}

impl SyncClient {
    /// Connects without saying anything.
    pub async fn raw(srv: &TestServer) -> SyncClient {
        let (ws, _) = tokio_tungstenite::connect_async(srv.sync_url()).await.expect("connect");
        SyncClient {
            ws,
            log: Vec::new(),
            replica: Default::default(),
            cursors: Default::default(),
            frame_target: None,
            device: "test-device".into(),
        }
    }

    /// Connects, says hello with `token` and waits for the welcome.
    pub async fn connect(srv: &TestServer, token: &str) -> SyncClient {
        Self::connect_device(srv, token, "test-device").await
    }

    /// [`SyncClient::connect`] as the device `device`.
    pub async fn connect_device(srv: &TestServer, token: &str, device: &str) -> SyncClient {
        let mut c = Self::raw(srv).await;
        c.device = device.into();
        c.hello(token).await;
        c
    }

    async fn hello(&mut self, token: &str) {
        let device = self.device.clone();
        self.send(json!({ "type": "hello", "protocol": 1, "token": token, "device": device })).await;
        match self.recv().await {
            Received::Message(m) if m["type"] == "welcome" => {}
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Drops the connection (the replica and cursors stay).
    pub async fn disconnect(&mut self) {
        let _ = self.ws.close(None).await;
    }

    /// A new connection that keeps this client's replica and cursors, as a device does
    /// after a dropped connection; resubscribes to every event from its cursor.
    pub async fn reconnect(&mut self, srv: &TestServer, token: &str) {
        let (ws, _) = tokio_tungstenite::connect_async(srv.sync_url()).await.expect("connect");
        self.ws = ws;
        self.hello(token).await;
        let cursors: Vec<(String, i64)> = self.cursors.iter().map(|(e, c)| (e.clone(), *c)).collect();
        for (event, cursor) in cursors {
            self.send(json!({ "type": "subscribe", "event": event, "cursor": cursor })).await;
        }
    }

    /// A new connection that keeps this client's replica and cursors, saying hello only (the
    /// caller subscribes from the cursor it chooses).
    pub async fn reconnect_without_subscribing(&mut self, srv: &TestServer, token: &str) {
        let (ws, _) = tokio_tungstenite::connect_async(srv.sync_url()).await.expect("connect");
        self.ws = ws;
        self.hello(token).await;
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    /// Sends a message to a server that may have let the connection go: whether it left.
    pub async fn try_send(&mut self, v: Value) -> bool {
        self.ws.send(Message::Text(v.to_string().into())).await.is_ok()
    }

    pub async fn send_text(&mut self, t: String) {
        self.ws.send(Message::Text(t.into())).await.expect("send");
    }

    /// The next message (or the close), waiting at most [`WAIT_MAX`]; applies it to the replica.
    pub async fn recv(&mut self) -> Received {
        loop {
            let next = tokio::time::timeout(WAIT_MAX, self.ws.next()).await.expect("nothing received in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent JSON");
                    if let Some(e) = server_schema().iter_errors(&v).next() {
                        panic!("a server message breaks schemas/protocol/server.schema.json: {e} in {v}");
                    }
                    if v["type"] == "welcome" {
                        self.frame_target = v["limits"]["frame_out_bytes_target"].as_u64().map(|b| b as usize);
                    }
                    // Frames of several records stay near the announced size (the envelope
                    // around the records is small).
                    let items = v["records"].as_array().or(v["changes"].as_array()).map_or(0, Vec::len);
                    if let Some(target) = self.frame_target
                        && items > 1
                    {
                        assert!(t.len() <= target + 256, "a frame of {items} items is {} bytes", t.len());
                    }
                    self.apply(&v);
                    self.log.push(v.clone());
                    return Received::Message(v);
                }
                Some(Ok(Message::Close(f))) => {
                    let (code, reason) =
                        f.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                    return Received::Closed { code, reason };
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Received::Closed { code: 1006, reason: e.to_string() },
                None => return Received::Closed { code: 1006, reason: "ended".into() },
            }
        }
    }

    /// Waits for the close frame, skipping messages.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Received::Closed { code, reason } = self.recv().await {
                return (code, reason);
            }
        }
    }

    /// The next message of `type`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            match self.recv().await {
                Received::Message(m) if m["type"] == kind => return m,
                Received::Message(_) => continue,
                Received::Closed { code, reason } => panic!("closed ({code} {reason}) while waiting for {kind}"),
            }
        }
    }

    /// Reads on until the subscription to `event` is at the head, for an event nobody writes
    /// to meanwhile: once two pongs a moment apart name the same cursor (every change up to
    /// a pong's cursor came before it). A snapshot may be one shared by sessions of the same
    /// access, a few entries behind, with the rest following it as changes.
    pub async fn settle(&mut self, event: &str) {
        let mut last = -1;
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            self.send(json!({ "type": "ping" })).await;
            let at = self.next_of("pong").await["cursors"][event].as_i64().unwrap_or(-1);
            if at == last && at >= self.cursors.get(event).copied().unwrap_or(0) {
                self.cursors.insert(event.to_string(), at);
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "never settled at the head of {event}");
            last = at;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Subscribes (from `cursor` when given) and waits until the snapshot is complete or
    /// the catch-up reached the event's head `until`.
    pub async fn subscribe(&mut self, event: &str, cursor: Option<i64>) {
        self.send(json!({ "type": "subscribe", "event": event, "cursor": cursor })).await;
        if cursor.is_none() {
            loop {
                let m = self.next_of("snapshot").await;
                if m["last"] == true {
                    return;
                }
            }
        }
    }

    /// Pings until the server says every change of `event` up to `seq` has been sent; the
    /// replica then reflects `seq`.
    pub async fn sync_to(&mut self, event: &str, seq: i64) {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            self.send(json!({ "type": "ping" })).await;
            let pong = self.next_of("pong").await;
            if pong["cursors"][event].as_i64().unwrap_or(-1) >= seq {
                self.cursors.insert(event.to_string(), seq.max(self.cursors.get(event).copied().unwrap_or(0)));
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "never reached {seq} on {event}: {pong}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The records held for `event`, as sorted (kind, id) pairs.
    pub fn held(&self, event: &str) -> Vec<(String, String)> {
        self.replica.get(event).map(|r| r.keys().cloned().collect()).unwrap_or_default()
    }

    fn apply(&mut self, m: &Value) {
        let event = m["event"].as_str().unwrap_or_default().to_string();
        match m["type"].as_str() {
            Some("snapshot") => {
                let r = self.replica.entry(event.clone()).or_default();
                for rec in m["records"].as_array().into_iter().flatten() {
                    r.insert(key(rec), rec["data"].clone());
                }
                self.cursors.insert(event, m["cursor"].as_i64().unwrap_or(0));
            }
            // A fresh snapshot follows: it replaces what is held.
            Some("resync") => {
                self.replica.remove(&event);
            }
            Some("changes") => {
                let r = self.replica.entry(event.clone()).or_default();
                for c in m["changes"].as_array().into_iter().flatten() {
                    match c["op"].as_str() {
                        Some("upsert") => {
                            r.insert(key(c), c["data"].clone());
                        }
                        Some("delete") | Some("remove") => {
                            r.remove(&key(c));
                        }
                        Some("narrow") => {
                            let keep: Vec<String> = serde_json::from_value(c["keep"].clone()).unwrap_or_default();
                            let kinds: Vec<String> =
                                serde_json::from_value(c["keep_kinds"].clone()).unwrap_or_default();
                            r.retain(|(kind, id), data| {
                                kinds.contains(kind) || owners(kind, id, data).iter().any(|x| keep.contains(x))
                            });
                        }
                        other => panic!("unknown change op {other:?}"),
                    }
                }
                self.cursors.insert(event, m["cursor"].as_i64().unwrap_or(0));
            }
            _ => {}
        }
    }
}

/// The committed JSON Schema of every server message, compiled once.
fn server_schema() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(include_str!("../../schemas/protocol/server.schema.json"))
            .expect("server schema is JSON");
        jsonschema::validator_for(&schema).expect("server schema compiles")
    })
}

fn key(v: &Value) -> (String, String) {
    (v["kind"].as_str().unwrap_or_default().to_string(), v["id"].as_str().unwrap_or_default().to_string())
}

/// The records `frames` carry (snapshot records, upserts), each as (kind, id, data).
pub fn carried(frames: &[Value]) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for m in frames {
        let items = m["records"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(m["changes"].as_array().into_iter().flatten().filter(|c| c["op"] == "upsert"));
        for r in items {
            let (kind, id) = key(r);
            out.push((kind, id, r["data"].clone()));
        }
    }
    out
}

/// Asserts that every record `frames` carry is one `account` may receive now, with no field
/// more than they may receive: judged by the engine's access function on the person's
/// standing in `event` as the database has it (none: nothing may reach them).
pub async fn assert_allowed_now(engine: &Engine, account: &str, event: &str, frames: &[Value]) {
    let standing = match engine.view(account, event).await {
        Ok((view, _)) => Some(view.standing),
        Err(engine::Error::NotFound { .. }) => None,
        Err(e) => panic!("reading {account}'s standing: {e:?}"),
    };
    for (kind, id, data) in carried(frames) {
        let k = engine::Kind::parse(&kind).unwrap_or_else(|| panic!("unknown kind {kind}"));
        let allowed = standing.as_ref().is_some_and(|s| {
            engine::feed::visible(s, k, &k.owners(&id, &data)) && engine::feed::shape(s, k, data.clone()) == data
        });
        assert!(allowed, "{account} was sent {kind} {id} ({data}), which their standing {standing:?} does not allow");
    }
}

/// What `token`'s holder gets of `event` from a fresh subscription once it is at the head —
/// its snapshot (which may be one shared by sessions of the same access, a few entries
/// behind) and the changes after it — and that cursor. For an event nobody writes to
/// meanwhile.
pub async fn fresh(srv: &TestServer, token: &str, event: &str) -> (Vec<(String, String)>, i64) {
    let mut c = SyncClient::connect(srv, token).await;
    c.send(json!({ "type": "subscribe", "event": event })).await;
    loop {
        match c.recv().await {
            Received::Message(m) if m["type"] == "snapshot" && m["last"] == true => break,
            Received::Message(m) if m["type"] == "refused" => return (Vec::new(), 0),
            Received::Message(_) => {}
            Received::Closed { code, reason } => panic!("closed {code} {reason}"),
        }
    }
    c.settle(event).await;
    (c.held(event), c.cursors[event])
}
