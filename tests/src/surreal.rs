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
        let bin = binary();
        assert!(
            bin.is_file(),
            "the multi-node tests need the SurrealDB server binary at {}: build it with `{BUILD}` \
             (.ci/run does), or set BACKOPS_SURREAL_BIN",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let auth = RemoteAuth { username: "root".into(), password: "root-test-password".into() };
        let child = Command::new(&bin)
            .args(["start", "--no-banner", "--log", "warn", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--username", &auth.username, "--password", &auth.password, "memory"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let server = SurrealServer { child, url: format!("ws://127.0.0.1:{port}"), auth };
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

    /// A sync node's configuration for this server: the test configuration with the
    /// database at `ws://` (each node keeps its own data directory for files).
    pub fn node_config(&self, data_dir: &std::path::Path) -> server::Config {
        let mut c = crate::test_config(data_dir);
        c.database_url = self.url.clone();
        c.database_auth =
            Some(RemoteAuth { username: self.auth.username.clone(), password: self.auth.password.clone() });
        c
    }

    /// Starts a sync node on this server.
    pub async fn node(&self) -> crate::TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = self.node_config(dir.path());
        crate::TestServer::start_config(config, Some(dir)).await
    }
}

impl Drop for SurrealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
