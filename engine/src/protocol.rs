//! The sync protocol, version 3: every message that crosses the sync socket, in one place.
//!
//! Messages are JSON text frames tagged by `type`. This is the only module that derives
//! serde for the wire; `schemas/protocol/` mirrors it as JSON Schema and `docs/protocol.md`
//! explains it. Internal types (`Change`, records) are converted here, at the edge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks. Version 3 adds `deferred` answers (quotas).
pub const PROTOCOL_VERSION: u32 = 3;
/// The oldest version a server still answers. Version 1 clients name their mutations by id
/// only (no counter `n`): the server remembers each of their mutations with a record of its
/// own, which costs a third of a batch's write time; version 2 clients number them.
pub const PROTOCOL_OLDEST: u32 = 1;

/// Named limits a server announces in `welcome`; the policy when hit is in each doc line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Limits {
    /// Largest frame a client may send; a larger one closes the socket with
    /// [`close::FRAME_TOO_LARGE`].
    pub frame_bytes_max: usize,
    /// Most records per snapshot chunk the server sends.
    pub snapshot_chunk_records_max: usize,
    /// Most changes per `changes` frame the server sends.
    pub changes_per_frame_max: usize,
    /// Size the server aims for in the snapshot and changes frames it sends: it starts a new
    /// frame rather than grow one past this (a single larger record travels alone). Small
    /// frames keep each connection's buffers small and let live changes interleave.
    pub frame_out_bytes_target: usize,
    /// Frames the server queues for one connection; past it the connection is closed with
    /// [`close::SLOW_CONSUMER`] and its resume cursors.
    pub queue_frames_max: usize,
    /// Most events one connection may subscribe to; past it `subscribe` is refused.
    pub subscriptions_max: usize,
    /// Most mutations in one `push`; a larger push is refused whole with `batch_too_large`.
    pub push_mutations_max: usize,
    /// Interval at which the client should send `ping`; after three silent intervals the
    /// server closes with [`close::IDLE`].
    pub heartbeat_ms: u64,
    /// Messages a client may send at once; after that, `messages_per_minute`. Past it the
    /// server closes with [`close::TOO_MANY_MESSAGES`] (a device reconnecting sends its
    /// subscriptions and a few pushes: far below).
    pub messages_burst: u32,
    pub messages_per_minute: u32,
    /// Subscriptions one account may start at once; after that, `subscribes_per_minute`
    /// (each costs the server a snapshot or a catch-up). A subscribe past it waits up to a
    /// few seconds for its turn, or is refused with `rate_limited` and `retry_after_ms`.
    #[serde(default = "subscribes_burst")]
    pub subscribes_burst: u32,
    #[serde(default = "subscribes_per_minute")]
    pub subscribes_per_minute: u32,
}

fn subscribes_burst() -> u32 {
    128
}

fn subscribes_per_minute() -> u32 {
    120
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_bytes_max: 256 * 1024,
            snapshot_chunk_records_max: 500,
            changes_per_frame_max: 500,
            frame_out_bytes_target: 16 * 1024,
            queue_frames_max: 256,
            subscriptions_max: 64,
            push_mutations_max: 500,
            heartbeat_ms: 15_000,
            messages_burst: 300,
            messages_per_minute: 600,
            subscribes_burst: subscribes_burst(),
            subscribes_per_minute: subscribes_per_minute(),
        }
    }
}

/// What a client sends.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First frame of every connection.
    Hello {
        protocol: u32,
        token: String,
        device: String,
    },
    /// Follow one event, from `cursor` when the client has one (it gets the changes after
    /// it), or from nothing (it gets a snapshot first).
    Subscribe {
        event: String,
        #[serde(default)]
        cursor: Option<i64>,
    },
    Unsubscribe {
        event: String,
    },
    /// Writes made by the client, applied in order and answered one by one in `ack`.
    Push {
        event: String,
        mutations: Vec<Mutation>,
    },
    /// Keeps the connection alive; answered by `pong`.
    Ping,
    /// A fresh access token of the same sign-in (renewed over HTTP before the current one
    /// expires): the connection stays open until the new token's expiry instead. Answered
    /// by `renewed`; a token that is not valid, or of another sign-in, closes the connection
    /// with [`close::TOKEN_INVALID`].
    Renew {
        token: String,
    },
}

/// One write a client asks for. `fields` are those of the HTTP API's create and update bodies.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    /// Client-generated, unique per device (a time-ordered UUID): it names the mutation in
    /// the answer and in the change entries it causes.
    pub id: String,
    /// The device's mutation counter (protocol 2, required there): every mutation of a
    /// device gets a higher one than the last, never reused, and a push lists its mutations
    /// in increasing `n`. The server keeps, per device, account and event, the highest `n` it
    /// has applied (with the refusals among them): a mutation at or below that mark is a
    /// retry and is answered from what was recorded, never applied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub n: Option<u64>,
    /// `task`, `activity`, `file_meta`, `advance` or `scan`.
    pub kind: String,
    pub op: MutationOp,
    /// The record to update or delete; on create, an optional client-chosen UUID.
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub fields: Value,
    /// The device's hybrid logical clock when the edit was made
    /// (`0001764064800000-000000-device`): of two edits of one field, the later stamp wins,
    /// whichever reaches the server first. Without it the server stamps the edit on arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MutationOp {
    Create,
    Update,
    Delete,
}

/// The answer to one mutation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MutationResult {
    /// Applied: the record's id and the seq of its change. A retried mutation (its `n` at or
    /// below the device's mark) is answered with the record it named (empty for a create
    /// that named none) and a `seq` at or after its change's: the client's cursor passing
    /// it means the change has reached the client.
    Accepted { mutation: String, record: String, seq: i64 },
    /// Refused: a reason code and a sentence; nothing was changed.
    Rejected { mutation: String, code: String, message: String },
    /// Not judged now (protocol 3): the person or their collaborator pushed more this minute
    /// than the server's quotas allow (`code`: `quota_exceeded`). Nothing was changed; keep
    /// the mutation and push it again after `retry_after_ms` — the later mutations of the
    /// same event on this connection are deferred with it, so the order holds.
    Deferred { mutation: String, code: String, message: String, retry_after_ms: u64 },
}

/// A record as clients hold it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Record {
    pub kind: String,
    pub id: String,
    pub data: Value,
}

/// One entry of a `changes` frame.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WireChange {
    /// The record now looks like `data` (created, changed, or newly visible).
    Upsert { seq: i64, kind: String, id: String, data: Value },
    /// The record was deleted: purge it.
    Delete { seq: i64, kind: String, id: String },
    /// The record is no longer visible to this client (moved away, access narrowed): purge it.
    Remove { seq: i64, kind: String, id: String },
    /// The client's access to the event narrowed: purge every record of the event except
    /// those of a kind in `keep_kinds` and those belonging to a collaborator in `keep`.
    /// Both empty: purge the whole event.
    Narrow { seq: i64, keep: Vec<String>, keep_kinds: Vec<String> },
}

/// What the server sends.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    Welcome {
        protocol: u32,
        session: String,
        account: String,
        limits: Limits,
    },
    /// The answer to `renew`: the connection now lasts until `expires_at` (Unix seconds).
    Renewed {
        expires_at: u64,
    },
    /// One chunk of a snapshot. Chunks of one snapshot share `cursor`; the last has
    /// `last: true`, and live changes continue after `cursor`.
    Snapshot {
        event: String,
        cursor: i64,
        records: Vec<Record>,
        last: bool,
    },
    /// Changes in seq order; the client's cursor becomes `cursor` after applying them.
    /// Changes the client may not see are left out, so `cursor` may be past the last entry.
    Changes {
        event: String,
        changes: Vec<WireChange>,
        cursor: i64,
    },
    /// The answers to one `push`, in the order of its mutations.
    Ack {
        event: String,
        results: Vec<MutationResult>,
    },
    /// The cursor is older than what the server retains: a fresh snapshot follows.
    Resync {
        event: String,
        reason: String,
    },
    /// A subscription is refused (the event does not exist for this client, or a limit).
    Refused {
        event: String,
        code: RefusalCode,
        message: String,
        /// When to subscribe again (`rate_limited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Answers `ping` with the connection's cursors: every change up to them has been sent
    /// (changes the client may not see are never sent, so this is how its cursor moves).
    Pong {
        cursors: std::collections::BTreeMap<String, i64>,
    },
    /// A frame the server could not use; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// Why a subscription is refused.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The event does not exist for this client (or never did): purge it.
    NotFound,
    /// This connection already follows the event.
    AlreadySubscribed,
    /// The connection follows [`Limits::subscriptions_max`] events already.
    TooManySubscriptions,
    /// The server could not start the subscription; try again later.
    Internal,
    /// The account started more subscriptions than `subscribes_per_minute` allows; subscribe
    /// again after `retry_after_ms`.
    RateLimited,
    /// A code this build does not know (a newer server's): taken as a passing refusal.
    #[serde(other)]
    Other,
}

/// Why the server could not use a frame (the connection stays open).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A binary frame: the protocol is JSON text.
    UnsupportedFrame,
    /// The frame is not JSON.
    MalformedJson,
    /// The frame is JSON but not a message of this protocol.
    InvalidMessage,
    /// A second `hello` on one connection.
    AlreadyHello,
    /// A `push` with more than [`Limits::push_mutations_max`] mutations: nothing of it applied.
    BatchTooLarge,
    /// A code this build does not know (a newer server's).
    #[serde(other)]
    Other,
}

/// WebSocket close codes (4000–4999 are the application's).
pub mod close {
    /// The first frame was not a valid `hello`.
    pub const BAD_HELLO: u16 = 4000;
    /// The client's protocol version is not supported; the reason names the supported one.
    pub const UNSUPPORTED_VERSION: u16 = 4001;
    /// The token expired during the stream: log in again and resume from the cursor.
    pub const TOKEN_EXPIRED: u16 = 4002;
    /// The token is not valid.
    pub const TOKEN_INVALID: u16 = 4003;
    /// The token's sign-in has ended (signed out, ended from another device or by the event
    /// team, the password changed): sign in again. What the device holds, its outbox
    /// included, stays; it is pushed after the next sign-in.
    pub const SIGN_IN_ENDED: u16 = 4004;
    /// The client did not keep up; the reason carries its resume cursors as JSON.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// No frame for three heartbeat intervals.
    pub const IDLE: u16 = 4009;
    /// The client sent messages faster than `messages_burst` / `messages_per_minute` allow.
    pub const TOO_MANY_MESSAGES: u16 = 4010;
    /// A frame exceeded `frame_bytes_max`.
    pub const FRAME_TOO_LARGE: u16 = 1009;
    /// The server could not store a push (its storage is full or failing): the mutations
    /// after those its last `ack` answered were not applied. Reconnect after a pause and push
    /// them again; nothing is applied twice.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The server is shutting down: reconnect (to it or another server) and resume.
    pub const GOING_AWAY: u16 = 1001;
}
