//! What the load generators share: a real server in a child process of the benchmark itself
//! (so its memory and CPU are measured apart from the clients), and readings of a process.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Set in the child: the store it serves on (`mem` or `surrealkv`).
pub const SERVE_ENV: &str = "BACKOPS_BENCH_SERVE";
/// Set in the child when the parent chose its data directory (to measure it on disk).
const DIR_ENV: &str = "BACKOPS_BENCH_DIR";

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`); `pid` may be `self`.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Starts this very benchmark again as a server on `store`; returns it and its base URL.
/// The child stops when its stdin closes (when the returned `Child` is dropped or killed).
pub fn spawn_server(store: &str) -> (Child, String) {
    spawn(store, None)
}

/// [`spawn_server`] with its data (database and files) in `dir`.
pub fn spawn_server_in(store: &str, dir: &std::path::Path) -> (Child, String) {
    spawn(store, Some(dir))
}

fn spawn(store: &str, dir: Option<&std::path::Path>) -> (Child, String) {
    let mut command = Command::new(std::env::current_exe().expect("exe"));
    if let Some(dir) = dir {
        command.env(DIR_ENV, dir);
    }
    let mut child = command
        .env(SERVE_ENV, store)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("base url");
    (child, line.trim().to_string())
}

/// Child mode: when [`SERVE_ENV`] is set, serves (with the test configuration adjusted by
/// `adjust`) until stdin closes, printing the base URL first, and returns true.
pub async fn serve_if_child(adjust: impl FnOnce(&mut server::Config)) -> bool {
    let Ok(store) = std::env::var(SERVE_ENV) else { return false };
    let temp = tempfile::tempdir().expect("dir");
    let dir = std::env::var_os(DIR_ENV).map(std::path::PathBuf::from).unwrap_or_else(|| temp.path().to_path_buf());
    let mut config = crate::test_config(&dir);
    if store == "surrealkv" {
        config.database_url = format!("surrealkv://{}", dir.join("db").display());
    }
    adjust(&mut config);
    serve_until_stdin_closes(config).await;
    true
}

/// Serves `config` on a free loopback port, printing the base URL first, until stdin closes
/// (the parent holds it: its end, or death, stops this server).
pub async fn serve_until_stdin_closes(config: server::Config) {
    serve_on_until_stdin_closes(0, config).await
}

/// [`serve_until_stdin_closes`] on `port` of 127.0.0.1 (0: a free one).
pub async fn serve_on_until_stdin_closes(port: u16, config: server::Config) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("http://{}", listener.local_addr().expect("addr"));
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        })
        .await;
    };
    server::run(listener, config, stdin_closed).await.expect("server");
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Client sockets with small buffers, as many load clients share one machine.
fn small_buffers() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
}

/// A load client's socket.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A load client: connects to the sync socket at `url`, says hello with `token`, subscribes
/// to `event` and waits for the end of its snapshot. (No schema check of every frame, unlike
/// [`crate::SyncClient`]: the load generator must not spend the cores it measures.)
pub async fn follow(url: &str, token: &str, event: &str) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(small_buffers()), false).await.expect("connect");
    let hello =
        json!({ "type": "hello", "protocol": engine::protocol::PROTOCOL_VERSION, "token": token, "device": "load" });
    ws.send(Message::Text(hello.to_string().into())).await.expect("hello");
    ws.send(Message::Text(json!({ "type": "subscribe", "event": event }).to_string().into())).await.expect("sub");
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("closed during snapshot") };
        let v: Value = serde_json::from_str(&t).expect("json");
        if v["type"] == "snapshot" && v["last"] == true {
            return ws;
        }
    }
}

/// Collaborators of a load generator's event.
pub const COLLABORATORS: usize = 20;

/// A load generator's people: an event with [`COLLABORATORS`] collaborators and `clients`
/// accounts, about 5% of them Event Pro seat holders and the rest members of the
/// collaborators in turn (client `i` of collaborator `i % COLLABORATORS`).
pub struct Crowd {
    pub owner: crate::User,
    pub event: String,
    pub collaborators: Vec<String>,
    /// Each client's token, in order.
    pub tokens: Vec<String>,
    /// Clients `0..seats` hold seats.
    pub seats: usize,
    /// How many members each collaborator has.
    pub members: Vec<u64>,
}

impl Crowd {
    /// Signs up the owner and the clients through `srv` and sets the event up.
    pub async fn gather(srv: &crate::TestServer, clients: usize) -> Crowd {
        let seats = (clients / 20).max(1);
        let owner = srv.sign_up("Owner").await;
        let org = owner.personal_org().await;
        let license = owner.ready_org(&org, seats as i64 + 1).await;
        let (event, _) = owner.create_event(&org, &license, "Load").await;
        let mut collaborators = Vec::new();
        for i in 0..COLLABORATORS {
            let path = format!("/v1/events/{event}/collaborators");
            let c = owner.api.post(&path, json!({ "name": format!("C{i}") })).await.ok();
            collaborators.push(c["id"].as_str().expect("collaborator id").to_string());
        }
        let mut tokens = Vec::with_capacity(clients);
        for i in 0..clients {
            let u = srv.sign_up(&format!("p{i}")).await;
            let path = match i < seats {
                true => format!("/v1/events/{event}/seats"),
                false => format!("/v1/events/{event}/collaborators/{}/members", collaborators[i % COLLABORATORS]),
            };
            owner.api.post(&path, json!({ "email": u.email })).await.ok();
            tokens.push(u.token);
        }
        let members =
            (0..COLLABORATORS).map(|k| (seats..clients).filter(|i| i % COLLABORATORS == k).count() as u64).collect();
        Crowd { owner, event, collaborators, tokens, seats, members }
    }

    /// The clients that receive a task of collaborator `k`: every seat holder and its members.
    pub fn audience(&self, k: usize) -> u64 {
        self.seats as u64 + self.members[k]
    }
}
