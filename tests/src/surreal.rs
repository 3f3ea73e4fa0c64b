//! A real SurrealDB server for the multi-node tests: the `surreal` binary built from
//! `tests/surrealdb-server` (SurrealDB 3.3.5, the version the engine pins), started on a free
//! loopback port with its data in memory, and killed when dropped. Sync nodes reach it over
//! `ws://` as they would a SurrealDB cluster.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use engine::RemoteAuth;

/// How long the server may take to answer `is-ready`.
const READY_MAX: Duration = Duration::from_secs(30);

/// The command that builds the binary, as `.ci/run` runs it.
pub const BUILD: &str = "CARGO_TARGET_DIR=$HOME/.cache/backops/surrealdb-server \
     cargo build --release --locked --manifest-path tests/surrealdb-server/Cargo.toml";

pub struct SurrealServer {
    child: Child,
    /// `ws://127.0.0.1:PORT`.
    pub url: String,
    /// The root user it was started with.
    pub auth: RemoteAuth,
    /// Where it keeps its data (`memory`, or `surrealkv://PATH`).
    storage: String,
}

/// Where the binary is: `BACKOPS_SURREAL_BIN`, else where [`BUILD`] puts it, else the
/// crate's own target directory.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BACKOPS_SURREAL_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cached = home.join(".cache/backops/surrealdb-server/release/surreal");
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("surrealdb-server/target/release/surreal");
    [cached, local.clone()].into_iter().find(|p| p.is_file()).unwrap_or(local)
}

impl SurrealServer {
    /// Starts a server in memory and waits until it is ready.
    pub async fn start() -> SurrealServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let auth = RemoteAuth { username: "root".into(), password: "root-test-password".into() };
        Self::launch(port, auth, "memory".into()).await
    }

    /// Starts a server keeping its data in SurrealKV under `dir`, so that it can be killed
    /// and started again on the same files ([`SurrealServer::kill`], [`SurrealServer::restart`]).
    pub async fn start_on_disk(dir: &std::path::Path) -> SurrealServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let auth = RemoteAuth { username: "root".into(), password: "root-test-password".into() };
        Self::launch(port, auth, format!("surrealkv://{}", dir.join("surreal").display())).await
    }

    /// Kills the server with SIGKILL, mid-whatever it was doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and storage, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        let port: u16 = self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        let again = Self::launch(port, self.auth.clone(), self.storage.clone()).await;
        // The new process takes the place of the old one (whose drop kills nothing more).
        *self = again;
    }

    async fn launch(port: u16, auth: RemoteAuth, storage: String) -> SurrealServer {
        let bin = binary();
        assert!(
            bin.is_file(),
            "the multi-node tests need the SurrealDB server binary at {}: build it with `{BUILD}` \
             (.ci/run does), or set BACKOPS_SURREAL_BIN",
            bin.display()
        );
        let child = Command::new(&bin)
            .args(["start", "--no-banner", "--log", "warn", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--username", &auth.username, "--password", &auth.password, &storage])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let server = SurrealServer { child, url: format!("ws://127.0.0.1:{port}"), auth, storage };
        let deadline = tokio::time::Instant::now() + READY_MAX;
        loop {
            let probe = bin.clone();
            let endpoint = format!("http://127.0.0.1:{port}");
            let ready = tokio::task::spawn_blocking(move || {
                Command::new(probe)
                    .args(["is-ready", "--endpoint", &endpoint])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .await
            .unwrap_or(false);
            if ready {
                return server;
            }
            assert!(tokio::time::Instant::now() < deadline, "SurrealDB did not become ready on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A sync node's configuration for this server: the test configuration with the
    /// database at `ws://` (each node keeps its own data directory for files).
    pub fn node_config(&self, data_dir: &std::path::Path) -> server::Config {
        node_config(data_dir, &self.url, &self.auth)
    }

    /// Starts a sync node on this server.
    pub async fn node(&self) -> crate::TestServer {
        self.node_with(|_| {}).await
    }

    /// Starts a sync node on this server, its configuration adjusted by `adjust`.
    pub async fn node_with(&self, adjust: impl FnOnce(&mut server::Config)) -> crate::TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = self.node_config(dir.path());
        adjust(&mut config);
        crate::TestServer::start_config(config, Some(dir)).await
    }

    /// Starts a sync node on this server in a process of its own (`bin`, the
    /// `backops-test-node` binary), so a test can kill it with SIGKILL.
    pub async fn spawn_node(&self, bin: &str) -> ChildNode {
        ChildNode::spawn(bin, &self.url, Some(&self.auth)).await
    }
}

impl ChildNode {
    /// A server in a process of its own (`bin`, the `backops-test-node` binary) on its
    /// embedded default, SurrealKV in `dir`: killed with SIGKILL, started again on the same
    /// files.
    pub async fn embedded(bin: &str, dir: &std::path::Path) -> ChildNode {
        ChildNode::spawn(bin, &format!("surrealkv://{}", dir.join("db").display()), None).await
    }

    /// [`ChildNode::embedded`] listening on `port` of 127.0.0.1 (a restart on the address the
    /// devices know).
    pub async fn embedded_at(bin: &str, dir: &std::path::Path, port: u16) -> ChildNode {
        let mut command = Command::new(bin);
        command.env(NODE_PORT, port.to_string());
        ChildNode::start(command, &format!("surrealkv://{}", dir.join("db").display()), None).await
    }

    /// [`ChildNode::embedded`] on a small disk: its database and files in `dir` there, keeping
    /// `reserve` bytes free (the disk guard's reserve; 0: none).
    pub async fn on_disk(bin: &str, disk: &crate::disk::SmallDisk, dir: &std::path::Path, reserve: u64) -> ChildNode {
        let mut command = disk.command(bin);
        command.env(NODE_DATA_DIR, dir).env(NODE_DISK_RESERVE, reserve.to_string());
        ChildNode::start(command, &format!("surrealkv://{}", dir.join("db").display()), None).await
    }

    async fn spawn(bin: &str, url: &str, auth: Option<&RemoteAuth>) -> ChildNode {
        ChildNode::start(Command::new(bin), url, auth).await
    }

    async fn start(mut command: Command, url: &str, auth: Option<&RemoteAuth>) -> ChildNode {
        let mail = tempfile::tempdir().expect("mail dir");
        command.env(NODE_DATABASE_URL, url).env(NODE_MAIL_DIR, mail.path());
        if let Some(auth) = auth {
            command.env(NODE_DATABASE_USER, &auth.username).env(NODE_DATABASE_PASSWORD, &auth.password);
        }
        let mut child = command
            .env("BACKOPS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the node binary ({command:?}): {e}"));
        let out = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).map(|_| line)
        })
        .await
        .expect("reading the node's address")
        .expect("the node's address");
        let mut server = crate::TestServer::attach(line.trim());
        server.config.mail.dir = Some(mail.path().to_path_buf());
        server.mailbox = Some(mail.path().to_path_buf());
        let node = ChildNode { child, server, _mail: mail };
        let api = node.server.anonymous();
        let deadline = tokio::time::Instant::now() + READY_MAX;
        loop {
            if let Ok(r) = api.try_send(reqwest::Method::GET, "/v1/health", None).await
                && r.status == 200
            {
                return node;
            }
            assert!(tokio::time::Instant::now() < deadline, "the child node did not become healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sync node's configuration over the SurrealDB server at `url`: nodes say they are alive
/// every 100 ms and a node silent for 1 s counts as crashed, so the tests see a crash soon.
fn node_config(data_dir: &std::path::Path, url: &str, auth: &RemoteAuth) -> server::Config {
    let mut c = crate::test_config(data_dir);
    c.database_url = url.to_string();
    c.database_auth = Some(RemoteAuth { username: auth.username.clone(), password: auth.password.clone() });
    c.node_timing =
        server::devices::NodeTiming { heartbeat: Duration::from_millis(100), silent_max: Duration::from_secs(1) };
    c
}

/// The database of a node in a child process ([`serve_node_process`]); set in the child.
pub const NODE_DATABASE_URL: &str = "BACKOPS_TEST_NODE_DATABASE_URL";
const NODE_DATABASE_USER: &str = "BACKOPS_TEST_NODE_DATABASE_USER";
/// The loopback port the node listens on, when not a free one.
const NODE_PORT: &str = "BACKOPS_TEST_NODE_PORT";
/// The node's data directory (files), when not a directory of its own.
const NODE_DATA_DIR: &str = "BACKOPS_TEST_NODE_DATA_DIR";
/// Where a child node writes its mail.
const NODE_MAIL_DIR: &str = "BACKOPS_TEST_NODE_MAIL_DIR";
/// The disk guard's reserve in bytes, when not the test configuration's.
const NODE_DISK_RESERVE: &str = "BACKOPS_TEST_NODE_DISK_RESERVE";
const NODE_DATABASE_PASSWORD: &str = "BACKOPS_TEST_NODE_DATABASE_PASSWORD";

/// A sync node in a child process; killed (SIGKILL) when dropped.
pub struct ChildNode {
    child: Child,
    /// A handle on it (its engine is in the other process).
    pub server: crate::TestServer,
    /// Where it writes its mail (the codes that prove an email), read by the harness.
    _mail: tempfile::TempDir,
}

impl ChildNode {
    /// Its process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.server.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the base URL")
    }

    /// Kills the node at once (SIGKILL): no drain, no goodbye, whatever it was doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `backops-test-node` binary: a sync node with the test configuration over the
/// SurrealDB server its parent names, on a free loopback port (printed first, as its base
/// URL), serving until its stdin closes or it is killed.
pub async fn serve_node_process() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os(NODE_DATA_DIR).map(std::path::PathBuf::from).unwrap_or_else(|| temp.path().into());
    let url = var(NODE_DATABASE_URL);
    let mut config = match std::env::var(NODE_DATABASE_USER) {
        Ok(username) => node_config(&dir, &url, &RemoteAuth { username, password: var(NODE_DATABASE_PASSWORD) }),
        // Embedded (SurrealKV): the test configuration on that store.
        Err(_) => {
            let mut c = crate::test_config(&dir);
            c.database_url = url;
            c
        }
    };
    if let Some(mail) = std::env::var_os(NODE_MAIL_DIR) {
        config.mail.dir = Some(mail.into());
    }
    if let Some(reserve) = std::env::var(NODE_DISK_RESERVE).ok().and_then(|r| r.parse().ok()) {
        config.engine.disk_reserve_bytes = reserve;
    }
    let port = std::env::var(NODE_PORT).ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    crate::bench::serve_on_until_stdin_closes(port, config).await;
}
