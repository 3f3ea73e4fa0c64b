//! A device for the tests: the engine's replica connected to a real server over a real
//! WebSocket, driven step by step so a scenario decides exactly when frames go and come
//! (and when a connection drops).

use std::collections::HashMap;

use engine::{
    device::Replica,
    protocol::{ClientMessage, ServerMessage},
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{TestServer, WAIT_MAX};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Mutations per push the test devices send.
pub const PUSH_MAX: usize = 200;
/// Frames that already arrived taken together, at most.
pub const BATCH_FRAMES_MAX: usize = 64;
/// Bytes of mutations per push the test devices send.
pub const PUSH_BYTES_MAX: usize = 128 * 1024;

pub struct Device {
    pub replica: Replica,
    pub token: String,
    ws: Option<Ws>,
    /// Every frame received, in order, as JSON (to check what reached the device).
    pub frames: Vec<serde_json::Value>,
    /// Most mutations per push (at most the server's `push_mutations_max`).
    pub push_max: usize,
    /// The connection was found closed while frames were being gathered.
    lost: bool,
    /// Time spent in the replica taking frames (for benchmarks).
    pub handling: std::time::Duration,
    /// What the replica told its listeners.
    pub notices: tokio::sync::broadcast::Receiver<engine::device::Notice>,
}

impl Device {
    /// Opens the replica at `url` as device `name`, to connect with `token`.
    pub async fn open(url: &str, name: &str, token: &str) -> Device {
        let replica = Replica::open(url, Some(name)).await.expect("open replica");
        let notices = replica.notices();
        Device {
            replica,
            token: token.into(),
            ws: None,
            frames: Vec::new(),
            push_max: PUSH_MAX,
            lost: false,
            handling: Default::default(),
            notices,
        }
    }

    pub fn online(&self) -> bool {
        self.ws.is_some()
    }

    /// Connects to `srv`, says hello, takes the welcome and sends the subscriptions.
    pub async fn connect(&mut self, srv: &TestServer) {
        let (ws, _) = tokio_tungstenite::connect_async(srv.sync_url()).await.expect("connect");
        self.ws = Some(ws);
        let hello = self.replica.hello(&self.token);
        self.send(&hello).await;
        let welcome = self.recv().await.expect("welcome");
        assert!(matches!(welcome, ServerMessage::Welcome { .. }), "expected welcome, got {welcome:?}");
        let subscribes = self.replica.handle(welcome).await.expect("welcome taken");
        for m in subscribes {
            self.send(&m).await;
        }
    }

    /// Drops the connection at once, whatever is in flight.
    pub async fn drop_connection(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
        self.replica.disconnected(None).await;
    }

    /// Sends `m`; a connection found dead is dropped (the replica is told).
    async fn send(&mut self, m: &ClientMessage) {
        let text = serde_json::to_string(m).expect("encode");
        let Some(ws) = self.ws.as_mut() else { return };
        if ws.send(Message::Text(text.into())).await.is_err() {
            self.ws = None;
            self.replica.disconnected(Some("connection lost".into())).await;
        }
    }

    /// The next server message; None when the connection ended (the replica is told).
    async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let ws = self.ws.as_mut()?;
            let next = tokio::time::timeout(WAIT_MAX, ws.next()).await.expect("nothing received in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(&t).expect("JSON");
                    self.frames.push(v);
                    return Some(serde_json::from_str(&t).expect("a protocol message"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    self.ws = None;
                    self.replica.disconnected(Some("connection lost".into())).await;
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// A frame that has already arrived, without waiting. A connection found closed is
    /// dropped (`lost` is set; the round tells the replica).
    fn try_recv(&mut self) -> Option<ServerMessage> {
        use futures_util::FutureExt;
        loop {
            let ws = self.ws.as_mut()?;
            match ws.next().now_or_never()? {
                Some(Ok(Message::Text(t))) => {
                    self.frames.push(serde_json::from_str(&t).expect("JSON"));
                    return Some(serde_json::from_str(&t).expect("a protocol message"));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    self.ws = None;
                    self.lost = true;
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends the next push, if any, and drops the connection before its answer arrives.
    /// Returns whether a push was sent.
    pub async fn push_then_drop(&mut self) -> bool {
        let Some(push) = self.replica.next_push(self.push_max, PUSH_BYTES_MAX).await else { return false };
        self.send(&push).await;
        self.drop_connection().await;
        true
    }

    /// Sends pushes while the replica has some to send and room in flight.
    async fn push(&mut self) {
        while self.online()
            && let Some(push) = self.replica.next_push(self.push_max, PUSH_BYTES_MAX).await
        {
            self.send(&push).await;
        }
    }

    /// One round: sends pushes (if any) and a ping, and takes every frame up to the pong,
    /// sending further pushes as answers come.
    pub async fn round(&mut self) {
        for m in self.replica.resubscribe().await {
            self.send(&m).await;
        }
        self.push().await;
        self.send(&ClientMessage::Ping).await;
        while let Some(m) = self.recv().await {
            // What already arrived is taken together (the replica stores runs of changes in
            // one transaction).
            let mut batch = vec![m];
            while batch.len() < BATCH_FRAMES_MAX
                && let Some(next) = self.try_recv()
            {
                batch.push(next);
            }
            let pong = batch.iter().any(|m| matches!(m, ServerMessage::Pong { .. }));
            let ack = batch.iter().any(|m| matches!(m, ServerMessage::Ack { .. }));
            let started = std::time::Instant::now();
            let replies = self.replica.handle_all(batch).await.expect("frames taken");
            self.handling += started.elapsed();
            for r in replies {
                self.send(&r).await;
            }
            if std::mem::take(&mut self.lost) {
                self.replica.disconnected(Some("connection lost".into())).await;
                return;
            }
            if ack {
                // Keep the server busy while this device takes what comes back.
                self.push().await;
            }
            if pong {
                return;
            }
        }
    }

    /// Rounds until every local change is answered and the replica has reached `heads`
    /// (event → seq) — or the connection drops.
    pub async fn sync(&mut self, heads: &HashMap<String, i64>) {
        let deadline = tokio::time::Instant::now() + WAIT_MAX * 3;
        while self.online() {
            self.round().await;
            let subs: HashMap<String, Option<i64>> = self.replica.subscriptions().await.into_iter().collect();
            let reached = heads.iter().all(|(e, h)| subs.get(e).copied().flatten().is_some_and(|c| c >= *h));
            let status = self.replica.status();
            if reached && status.pending == 0 && !self.replica.has_unseen_accepted().await {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "device never synced: {status:?}, {subs:?} vs {heads:?}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
