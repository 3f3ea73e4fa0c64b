//! The device replica: what a crew phone or gate tablet holds of the events it follows, in
//! its own SurrealDB, so it keeps working with no network and reconciles when it is back.
//!
//! - It holds the permission-filtered records the server sent (snapshots and changes) and
//!   each subscription's cursor; local reads answer the tabs from it alone.
//! - A local write is checked with the server's own rules wherever the device knows enough
//!   (access, read-only, fields — [`crate::rules`]), applied at once, and appended to a
//!   durable outbox in ONE transaction.
//! - Records with unsent edits keep the server's version beside the one shown. Whenever the
//!   server's version changes, or an edit is accepted or refused, the shown version is
//!   rebuilt: the server's, then the unsent edits in order, each field only where the edit's
//!   clock wins (per-field last-writer-wins, like the server).
//!
//! No transport lives here. A link (the mobile bridge's WebSocket client, or a test's) asks
//! the replica what to send ([`Replica::hello`], [`Replica::on_welcome`],
//! [`Replica::next_push`]) and hands it what arrives ([`Replica::handle`]).

mod apply;
mod assets;
pub mod files;
mod frontgate;
mod labor;
mod mirror;
mod pages;
mod signin;
mod write;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast};

pub use apply::PUSHES_IN_FLIGHT;
pub use frontgate::{GateStatus, ScanOutcome};
pub use signin::SignInTokens;
pub use write::{LocalWrite, Written};

use crate::{
    Error, Result,
    access::{Membership, Standing},
    hlc::{Clock, Hlc},
    model::{Activity, Advance, AdvanceStatus, Dashboard, Event, FileMeta, MyAccess, Task, TaskStatus},
    protocol::{Mutation, Record},
    store::{Migration, Store},
    tabs::ListFilter,
    time,
};

/// The replica's schema, in order. Append only.
pub const DEVICE_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "replica", sql: include_str!("../../../schemas/surreal/device/0001_replica.surql") },
    Migration { version: 2, name: "pages", sql: include_str!("../../../schemas/surreal/device/0002_pages.surql") },
    Migration { version: 3, name: "deltas", sql: include_str!("../../../schemas/surreal/device/0003_deltas.surql") },
];

/// Snapshot records a replica buffers before it stores them (one transaction).
pub const SNAPSHOT_BATCH_RECORDS: usize = 2_000;
/// Free space a device keeps on the file systems of its replica and files (see
/// [`crate::disk`]): below it, local edits are refused with `storage_unavailable` and frames
/// from the server wait on the server, so what the outbox holds is never squeezed.
pub const DISK_RESERVE: u64 = 16 * 1024 * 1024;
/// Rejections kept for the app to show.
pub const REJECTIONS_KEPT: usize = 100;
/// Most records one local read returns (like the server's lists).
pub const READ_ROWS_MAX: usize = crate::paging::PAGE_MAX;
/// The upper end of key ranges over text: above every id and kind.
const TOP: &str = "\u{10FFFF}";

/// One page of a tab read from the replica.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TabPage<T> {
    pub items: Vec<T>,
    /// Where the next page starts (pass it as `after`); none after the last page.
    pub next: Option<String>,
}

/// What the app shows about syncing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// Connected to a server and past its welcome.
    pub online: bool,
    /// Local changes the server has not accepted or refused yet.
    pub pending: usize,
    /// When the server last answered this device (an ack, or a heartbeat with its cursors).
    pub last_sync: Option<String>,
    /// The last thing that went wrong with the link, in words for people.
    pub last_error: Option<String>,
}

/// A mutation the server refused: the device rolled its record back to the server's version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub event: String,
    pub mutation: String,
    pub kind: String,
    pub record: String,
    /// The server's reason code (`read_only`, `not_found`, `not_permitted`, …), or
    /// `access_revoked` when the device lost access to the event before it could send it.
    pub code: String,
    pub message: String,
    pub at: String,
}

/// What a listener hears.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// Records of `event` changed (from the server or locally): kinds that changed.
    Changed {
        event: String,
        kinds: Vec<String>,
    },
    Status(SyncStatus),
    Rejected(Rejection),
}

/// Notices buffered for a slow listener before it misses some (it can always re-read).
const NOTICES_MAX: usize = 1024;

/// A handle on one device's replica; cheap to clone.
#[derive(Clone, Debug)]
pub struct Replica {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    device: String,
    clock: Clock,
    /// Everything that changes the replica is done under this lock, in order.
    state: Mutex<State>,
    /// The stored rows in memory, for reads (see [`mirror`]).
    mirror: std::sync::RwLock<mirror::Mirror>,
    status: std::sync::Mutex<SyncStatus>,
    notices: broadcast::Sender<Notice>,
    /// File bytes (see [`files`]), when the replica was opened with a file directory.
    files: Option<files::Blobs>,
    /// Housekeeping running in the background (see [`Replica::settle`]).
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("device", &self.device).finish()
    }
}

#[derive(Default)]
struct State {
    account: Option<String>,
    subs: BTreeMap<String, Sub>,
    /// Unsent, sent and accepted-but-not-yet-seen mutations, by n.
    outbox: Outbox,
    next_n: u64,
    next_rejection: u64,
    /// Rows written to each event's overlay since its pages were (see `pages.rs`).
    overlay: HashMap<String, usize>,
    /// The generation of each event's current pages (see `pages::current`).
    pages_gen: HashMap<String, i64>,
    /// The number of the next delta (see `pages::delta`).
    next_delta: i64,
    /// The current connection, if any.
    link: Option<Link>,
}

#[derive(Default)]
struct Link {
    /// Events subscribed on this connection (pushes go only to those).
    subscribed: HashSet<String>,
    /// Events unsubscribed locally that the server still streams: to tell it.
    unsubscribed: Vec<String>,
    /// The pushes waiting for their acks, oldest first: event and outbox numbers.
    in_flight: Vec<(String, Vec<u64>)>,
    /// Pushes wait until then: the server deferred some for its quotas.
    hold_until: Option<std::time::Instant>,
}

#[derive(Clone, Debug, Default)]
struct Sub {
    cursor: Option<i64>,
    /// The person's standing as the replica's records say it.
    standing: Standing,
    /// The snapshot being received.
    snapshot: Option<Incoming>,
    /// The server refused the subscription (the person lost the event): nothing of it is
    /// held, and its unanswered mutations are pushed only to learn their fate.
    lost: bool,
}

/// A snapshot being received: its cursor, the generation its rows carry, and records not
/// stored yet (they are stored in batches: one transaction per chunk would cost a disk sync
/// for every 16 KiB).
#[derive(Clone, Debug)]
struct Incoming {
    cursor: i64,
    generation: i64,
    records: Vec<Record>,
    /// Pages of this snapshot stored so far.
    pages: usize,
}

/// One of the device's mutations, as the outbox keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Outgoing {
    n: u64,
    event: String,
    kind: String,
    record: String,
    mutation: Mutation,
    /// For a create: the record as the device made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<Value>,
    /// The seq the server accepted it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted: Option<i64>,
}

/// A stored record row.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(super) struct Row {
    kind: String,
    #[serde(rename = "rid")]
    id: String,
    /// Null for a record the device deleted and the server has not confirmed.
    #[serde(default)]
    data: Value,
    /// Who the shown version belongs to.
    #[serde(default)]
    collaborators: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<Value>,
    /// Who the server's version belongs to (rows with unsent edits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    base_of: Vec<String>,
    #[serde(default)]
    seq: i64,
    #[serde(default, rename = "gen")]
    generation: i64,
}

impl Row {
    /// The server's version of the record, if the device has one.
    pub(super) fn server(&self) -> Option<&Value> {
        if self.pending { self.base.as_ref() } else { Some(&self.data).filter(|d| !d.is_null()) }
    }
}

#[derive(Deserialize)]
struct Meta {
    device: String,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    clock: Option<String>,
    /// The counter of the device's last mutation (see [`next_counter`]).
    #[serde(default)]
    last_n: Option<u64>,
    /// Outbox entries at or below this are done (see [`Outbox::leaving`]).
    #[serde(default)]
    outbox_done: Option<u64>,
}

/// The counter of the device's next mutation. Counters only grow, across restarts and an
/// emptied outbox (the last one is kept with the clock): the server applies a device's
/// mutations at or below the highest counter it has seen from it never again. A replica that
/// has made none yet starts from the time in microseconds, so a replica made anew under the
/// name of an earlier one (the app reinstalled) starts above every counter that one used.
fn next_counter(outbox_last: Option<u64>, last_n: Option<u64>) -> u64 {
    let start = last_n.map_or_else(|| u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1), |n| n + 1);
    outbox_last.map_or(start, |n| start.max(n + 1))
}

/// Characters of the installation mark a named device's id ends with (`:` and 8 hex digits).
const INSTALL_MARK_LEN: usize = 9;

/// The id a new replica takes: its name and a mark of this installation (`gate-b-3:1f0c9a2e`),
/// or a fresh UUID when unnamed. The server records which of a device's numbered mutations it
/// applied by this id, and every replica numbers its own from 1: two replicas given one name
/// (a tablet replaced at its lane while the old one still holds scans, two phones set up
/// alike) would otherwise have each other's mutations answered as retries and never applied.
/// It is also the device's clock's node, which breaks ties between equal stamps.
fn device_id(name: Option<&str>) -> Result<String> {
    let Some(name) = name else { return Ok(format!("d-{}", uuid::Uuid::now_v7().simple())) };
    let max = crate::hlc::NODE_LEN_MAX - INSTALL_MARK_LEN;
    if name.is_empty() || name.len() > max || !crate::hlc::valid_node(name) {
        return Err(Error::invalid(format!("a device name is 1 to {max} characters of A-Z a-z 0-9 _ . : -")));
    }
    Ok(format!("{name}:{}", &uuid::Uuid::new_v4().simple().to_string()[..INSTALL_MARK_LEN - 1]))
}

/// Whether the stored device id `id` is the device named `name` (replicas made before ids
/// carried an installation mark are their name alone).
fn named(id: &str, name: &str) -> bool {
    id == name
        || id
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|mark| mark.len() == INSTALL_MARK_LEN - 1 && mark.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Replica {
    /// Opens (or creates) the replica at `url` (`surrealkv://PATH` on devices, `mem://` in
    /// tests). `device` names the device the first time; later opens keep the stored name,
    /// and a different one is refused (the outbox and the server's applied mutations are
    /// keyed by it). Without one a fresh name is made.
    pub async fn open(url: &str, device: Option<&str>) -> Result<Replica> {
        Self::open_with_files(url, device, None).await
    }

    /// [`Replica::open`], keeping file bytes (photos taken here, thumbnails and originals
    /// fetched) in `files.dir`.
    pub async fn open_with_files(
        url: &str,
        device: Option<&str>,
        files: Option<files::FilesConfig>,
    ) -> Result<Replica> {
        let store = Store::connect(url, None).await?;
        if let Some(f) = &files {
            store.guard().watch(&f.dir);
        }
        store.guard().set_reserve(DISK_RESERVE);
        let files = files.as_ref().map(files::Blobs::open).transpose()?;
        store.migrate_with(DEVICE_MIGRATIONS).await?;
        let meta: Option<Meta> =
            store.run("SELECT * FROM type::record('meta', 'device')", Value::Null).await?.first(0)?;
        let (device, account, clock, last_n, outbox_done) = match meta {
            Some(m) => {
                if device.is_some_and(|d| !named(&m.device, d)) {
                    return Err(Error::Config(format!(
                        "this replica belongs to device {}; open it without another device name",
                        m.device
                    )));
                }
                (m.device, m.account, m.clock, m.last_n, m.outbox_done.unwrap_or(0))
            }
            None => {
                let d = device_id(device)?;
                store.run("CREATE type::record('meta', 'device') CONTENT { device: $d }", json!({ "d": d })).await?;
                (d, None, None, None, 0)
            }
        };
        let clock_ = Clock::new(&device);
        if let Some(c) = clock.as_deref().and_then(|c| Hlc::parse(c).ok()) {
            clock_.observe(&c);
        }
        let mut rows = store
            .run(
                "SELECT record::id(id) AS event, cursor, pages FROM sub;
                 SELECT * OMIT id FROM outbox ORDER BY n;
                 SELECT VALUE n FROM rejection ORDER BY n DESC LIMIT 1;",
                Value::Null,
            )
            .await?;
        #[derive(Deserialize)]
        struct S {
            event: String,
            #[serde(default)]
            cursor: Option<i64>,
            /// The generation of the event's current pages.
            #[serde(default)]
            pages: Option<i64>,
        }
        let subs: Vec<S> = rows.all(0)?;
        let mut outbox: Vec<Outgoing> = rows.all(1)?;
        let last_rejection: Option<u64> = rows.value(2)?;
        let stored_done = outbox.iter().take_while(|o| o.n <= outbox_done).count();
        let last_stored = outbox.last().map(|o| o.n);
        outbox.drain(..stored_done);
        let stored = pages::read(&store).await?;
        let replica = Replica {
            inner: Arc::new(Inner {
                store,
                device,
                clock: clock_,
                state: Mutex::new(State::default()),
                status: Default::default(),
                notices: broadcast::channel(NOTICES_MAX).0,
                mirror: Default::default(),
                files,
                background: Default::default(),
            }),
        };
        let current: HashMap<String, i64> = subs.iter().filter_map(|s| Some((s.event.clone(), s.pages?))).collect();
        let loaded = pages::load(&mut replica.mirror_mut(), stored, &current)?;
        {
            let mut st = replica.inner.state.lock().await;
            st.account = account;
            st.next_n = next_counter(last_stored, last_n);
            st.next_rejection = last_rejection.map_or(1, |n| n + 1);
            st.outbox = outbox.into_iter().collect();
            st.outbox.done = outbox_done;
            if stored_done == 0 {
                st.outbox.swept = outbox_done;
            }
            st.pages_gen = current;
            st.next_delta = loaded.next_delta;
            replica.tidy_after_open(&mut st, loaded).await?;
            replica.sweep_outbox(&mut st);
            for s in subs {
                let standing = replica.standing_from_records(&st, &s.event)?;
                st.subs.insert(s.event, Sub { cursor: s.cursor, standing, ..Default::default() });
            }
            replica.refresh_status(&st, |_| {});
        }
        // Bytes left by a write that never committed (the app was killed in between).
        replica.sweep_files();
        Ok(replica)
    }

    /// Deletes, in the background, the stored outbox entries its watermark covers (see
    /// [`Outbox::leaving`]). A failure leaves them to the next open: they are never read again.
    fn sweep_outbox(&self, st: &mut State) {
        let (from, to) = (st.outbox.swept + 1, st.outbox.done);
        if to < from {
            return;
        }
        st.outbox.swept = to;
        let store = self.inner.store.clone();
        self.in_background("sweeping done outbox entries", async move {
            // Numbers, so the range can be written into the statement.
            store.run(&format!("DELETE outbox:{from}..={to} RETURN NONE;"), Value::Null).await.map(drop)
        });
    }

    /// Runs housekeeping that nothing waits for (deleting superseded documents one by one is
    /// slow) in the background. A failure is logged; every such sweep is finished by the next
    /// open if not before.
    fn in_background(&self, what: &'static str, work: impl Future<Output = Result<()>> + Send + 'static) {
        let task = tokio::spawn(async move {
            if let Err(e) = work.await {
                tracing::warn!(error = ?e, "{what} failed; the next open retries");
            }
        });
        let mut tasks = self.inner.background.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Waits for the housekeeping running in the background (sweeps of documents compactions
    /// and syncs superseded) — before the app is suspended, say. Nothing else depends on it:
    /// what a replica closed before leaves is swept when it opens again.
    pub async fn settle(&self) {
        let tasks = std::mem::take(&mut *self.inner.background.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }

    /// This replica's device id: the name it was first opened with and a mark of this
    /// installation (see [`device_id`]).
    pub fn device(&self) -> &str {
        &self.inner.device
    }

    /// The account whose data the replica holds (known after the first connection).
    pub async fn account(&self) -> Option<String> {
        self.inner.state.lock().await.account.clone()
    }

    pub fn status(&self) -> SyncStatus {
        self.inner.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes, status and rejections as they happen.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// Follows `event`: its snapshot arrives on the next connection (or now, if connected:
    /// the link sends what [`Replica::resubscribe`] returns).
    pub async fn subscribe(&self, event: &str) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        if st.subs.contains_key(event) {
            return Ok(());
        }
        if st.subs.len() >= crate::protocol::Limits::default().subscriptions_max {
            return Err(Error::rule("too_many_subscriptions", "this device follows as many events as it may"));
        }
        self.inner.store.run("UPSERT type::record('sub', $e) CONTENT {}", json!({ "e": event })).await?;
        st.subs.insert(event.into(), Sub::default());
        Ok(())
    }

    /// Stops following `event` and forgets its records (the link tells the server with its
    /// next [`Replica::resubscribe`]). Refused while the device still has changes of that
    /// event to send: nothing made offline is thrown away.
    pub async fn unsubscribe(&self, event: &str) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        let pending = st.outbox.values().filter(|o| o.event == event && o.accepted.is_none()).count();
        if pending > 0 {
            return Err(Error::conflict(
                "changes_pending",
                format!("{pending} changes of this event are not synced yet; connect first"),
            ));
        }
        self.inner
            .store
            .run(
                "BEGIN TRANSACTION;
                 DELETE rec:[$e, '']..[$e, $top];
                 DELETE delta:[$e, 0]..=[$e, $gen_top];
                 DELETE page:[$e, 0]..=[$e, $gen_top];
                 DELETE type::record('sub', $e);
                 DELETE outbox WHERE event = $e;
                 COMMIT TRANSACTION;",
                pages::bounds(event),
            )
            .await?;
        self.mirror_mut().clear(event);
        st.subs.remove(event);
        st.pages_gen.remove(event);
        st.overlay.remove(event);
        st.outbox.retain(|o| o.event != event);
        if let Some(l) = &mut st.link
            && l.subscribed.remove(event)
        {
            l.unsubscribed.push(event.into());
        }
        Ok(())
    }

    /// The events followed and their cursors.
    pub async fn subscriptions(&self) -> Vec<(String, Option<i64>)> {
        self.inner.state.lock().await.subs.iter().map(|(e, s)| (e.clone(), s.cursor)).collect()
    }

    /// Whether some accepted mutation's change has not reached the replica yet (its record
    /// still shows the device's version until it does).
    pub async fn has_unseen_accepted(&self) -> bool {
        self.inner.state.lock().await.outbox.values().any(|o| o.accepted.is_some())
    }

    /// Mutations the server refused, newest first (at most [`REJECTIONS_KEPT`]).
    pub async fn rejections(&self) -> Result<Vec<Rejection>> {
        self.inner
            .store
            .run(&format!("SELECT * OMIT id, n FROM rejection ORDER BY n DESC LIMIT {REJECTIONS_KEPT}"), Value::Null)
            .await?
            .all(0)
    }

    // ---- local reads ----

    /// Every record of `kind` the device holds for `event`, as the app sees them.
    pub async fn records(&self, event: &str, kind: &str) -> Result<Vec<Record>> {
        let rows = self.mirror().kind(event, kind);
        Ok(rows
            .into_iter()
            .filter(|r| !r.data.is_null())
            .take(READ_ROWS_MAX)
            .map(|r| Record { kind: r.kind.clone(), id: r.id.clone(), data: r.data.clone() })
            .collect())
    }

    async fn typed<T: DeserializeOwned>(&self, event: &str, kind: &str, filter: &ListFilter) -> Result<Vec<T>> {
        let rows = match &filter.collaborator {
            Some(c) => self.mirror().tab(event, kind, c),
            None => self.mirror().kind(event, kind),
        };
        rows.iter()
            .filter(|r| !r.data.is_null())
            .take(READ_ROWS_MAX)
            .map(|r| {
                T::deserialize(&r.data).map_err(|e| Error::Internal(format!("a held record does not decode: {e}")))
            })
            .collect()
    }

    /// `kind`'s records held, decoded, ordered by `key`; "not found" for an event not
    /// followed or not synced yet.
    async fn tab<T: DeserializeOwned>(
        &self,
        event: &str,
        kind: &str,
        filter: ListFilter,
        key: for<'a> fn(&'a T) -> (&'a str, &'a str),
    ) -> Result<Vec<T>> {
        self.standing(event).await?;
        let mut v: Vec<T> = self.typed(event, kind, &filter).await?;
        v.sort_by(|a, b| key(a).cmp(&key(b)));
        Ok(v)
    }

    /// One page of a tab: up to `limit` records (1 to [`READ_ROWS_MAX`]) in the tab's order,
    /// after the place `after` names (the `next` of the page before; none: from the start).
    /// Reads and decodes only the page, whatever the tab's size.
    async fn tab_page<T: DeserializeOwned>(
        &self,
        event: &str,
        kind: &str,
        filter: &ListFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<TabPage<T>> {
        self.standing(event).await?;
        let after = after
            .map(|a| a.split_once(' ').map(|(o, id)| (o.to_string(), id.to_string())))
            .map(|p| p.ok_or_else(|| Error::invalid("after is the next of an earlier page")))
            .transpose()?;
        let limit = limit.clamp(1, READ_ROWS_MAX);
        let rows = self.mirror().page(event, kind, filter.collaborator.as_deref(), after.as_ref(), limit + 1);
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next = rows.last().filter(|_| more).map(|r| {
            let (order, id) = mirror::order_of(r);
            format!("{order} {id}")
        });
        let items = rows
            .iter()
            .map(|r| {
                T::deserialize(&r.data).map_err(|e| Error::Internal(format!("a held record does not decode: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(TabPage { items, next })
    }

    /// A page of the Tasks tab (see [`Replica::tasks`]), by creation: for screens that show a
    /// few dozen rows of a tab of thousands.
    pub async fn tasks_page(
        &self,
        event: &str,
        filter: ListFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<TabPage<Task>> {
        self.tab_page(event, "task", &filter, after, limit).await
    }

    /// A page of the Schedule tab, by start.
    pub async fn activities_page(
        &self,
        event: &str,
        filter: ListFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<TabPage<Activity>> {
        self.tab_page(event, "activity", &filter, after, limit).await
    }

    /// The Tasks tab: the tasks held (a member holds their collaborator's; a seat holder the
    /// whole event's, or one collaborator's with a filter), by creation.
    pub async fn tasks(&self, event: &str, filter: ListFilter) -> Result<Vec<Task>> {
        self.tab(event, "task", filter, |t: &Task| (&t.created_at, &t.id)).await
    }

    /// The Schedule tab, by start.
    pub async fn activities(&self, event: &str, filter: ListFilter) -> Result<Vec<Activity>> {
        self.tab(event, "activity", filter, |a: &Activity| (&a.starts_at, &a.id)).await
    }

    /// The Files tab, by creation.
    pub async fn files(&self, event: &str, filter: ListFilter) -> Result<Vec<FileMeta>> {
        self.tab(event, "file_meta", filter, |f: &FileMeta| (&f.created_at, &f.id)).await
    }

    /// The Advances tab, by creation.
    pub async fn advances(&self, event: &str, filter: ListFilter) -> Result<Vec<Advance>> {
        self.tab(event, "advance", filter, |a: &Advance| (&a.created_at, &a.id)).await
    }

    /// The event as the device holds it, with the person's access.
    pub async fn event(&self, event: &str) -> Result<(Event, MyAccess)> {
        let s = self.standing(event).await?;
        let ev: Event = self.load(event, "event", event)?.ok_or(Error::not_found("event"))?;
        let access = MyAccess {
            seat: s.seat,
            org_role: None,
            collaborator: s.membership.as_ref().map(|m| m.collaborator.clone()),
            read_only: !s.seat && s.membership.as_ref().is_some_and(|m| m.read_only),
        };
        Ok((ev, access))
    }

    /// The Dashboard tab of one collaborator (the person's own when not given), counted from
    /// the records held.
    pub async fn dashboard(&self, event: &str, collaborator: Option<String>) -> Result<Dashboard> {
        let s = self.standing(event).await?;
        let (ev, _) = self.event(event).await?;
        let c = crate::rules::collaborator_asked(&ev.default_collaborator, &s, collaborator)?;
        let collab: Value = self.load(event, "collaborator", &c)?.ok_or(Error::not_found("collaborator"))?;
        let only = ListFilter { collaborator: Some(c.clone()) };
        let mut d = Dashboard {
            collaborator: c.clone(),
            name: collab["name"].as_str().unwrap_or_default().into(),
            read_only: !s.seat && s.membership.as_ref().is_some_and(|m| m.read_only),
            ..Default::default()
        };
        for t in self.tasks(event, only.clone()).await? {
            *match t.status {
                TaskStatus::Todo => &mut d.tasks.todo,
                TaskStatus::Active => &mut d.tasks.active,
                TaskStatus::InReview => &mut d.tasks.in_review,
                TaskStatus::Done => &mut d.tasks.done,
                TaskStatus::Archived => &mut d.tasks.archived,
            } += 1;
        }
        for a in self.advances(event, only.clone()).await? {
            *match a.status {
                AdvanceStatus::NotStarted => &mut d.advances.not_started,
                AdvanceStatus::NeedsReview => &mut d.advances.needs_review,
                AdvanceStatus::Done => &mut d.advances.done,
                AdvanceStatus::Archived => &mut d.advances.archived,
            } += 1;
        }
        let now = time::now();
        for a in self.activities(event, only.clone()).await? {
            d.activities += 1;
            d.upcoming_activities += i64::from(a.ends_at >= now);
        }
        for f in self.files(event, only).await? {
            d.files += 1;
            d.files_bytes += f.size;
        }
        Ok(d)
    }

    /// The person's standing in `event` as the replica knows it; "not found" for an event
    /// not followed or not synced yet.
    pub async fn standing(&self, event: &str) -> Result<Standing> {
        let st = self.inner.state.lock().await;
        match st.subs.get(event) {
            Some(s) if s.cursor.is_some() => Ok(s.standing.clone()),
            _ => Err(Error::not_found("event")),
        }
    }

    fn mirror(&self) -> std::sync::RwLockReadGuard<'_, mirror::Mirror> {
        self.inner.mirror.read().unwrap_or_else(|e| e.into_inner())
    }

    fn mirror_mut(&self) -> std::sync::RwLockWriteGuard<'_, mirror::Mirror> {
        self.inner.mirror.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A held record as shown, decoded (None: not held, or deleted on the device).
    fn load<T: DeserializeOwned>(&self, event: &str, kind: &str, id: &str) -> Result<Option<T>> {
        match self.mirror().get(event, kind, id) {
            Some(r) if !r.data.is_null() => T::deserialize(&r.data)
                .map(Some)
                .map_err(|e| Error::Internal(format!("a held record does not decode: {e}"))),
            _ => Ok(None),
        }
    }

    fn row(&self, event: &str, kind: &str, id: &str) -> Option<Row> {
        self.mirror().get(event, kind, id).map(|r| (*r).clone())
    }

    /// The standing the replica's records give `account` in `event`: a seat record naming
    /// them, their membership record, its collaborator's read-only flag and module grants. (Organization
    /// roles do not travel to devices; they matter only for managing seats, which needs the
    /// server anyway.)
    fn standing_from_records(&self, st: &State, event: &str) -> Result<Standing> {
        let Some(me) = st.account.as_deref() else { return Ok(Standing::default()) };
        let seat = self.mirror().kind(event, "seat").iter().any(|r| r.data["person"].as_str() == Some(me));
        let mut membership = None;
        if let Some(m) = self.load::<Value>(event, "collab_member", &format!("{event}|{me}"))?
            && let Some(c) = m["collaborator"].as_str()
        {
            let collab: Option<Value> = self.load(event, "collaborator", c)?;
            let read_only = m["read_only"].as_bool().unwrap_or(false)
                || collab.is_some_and(|c| c["read_only"].as_bool().unwrap_or(false));
            let modules = self
                .mirror()
                .tab(event, "module_grant", c)
                .iter()
                .filter_map(|g| g.data["module"].as_str().and_then(crate::access::Module::parse))
                .collect();
            membership = Some(Membership { collaborator: c.into(), read_only, modules });
        }
        Ok(Standing { person: me.into(), seat, org_role: None, membership })
    }

    /// Recomputes the status from the state, lets `adjust` change it, and tells listeners
    /// when it changed.
    fn refresh_status(&self, st: &State, adjust: impl FnOnce(&mut SyncStatus)) {
        let mut status = self.inner.status.lock().unwrap_or_else(|e| e.into_inner());
        let before = status.clone();
        status.online = st.link.is_some();
        status.pending = st.outbox.unanswered();
        adjust(&mut status);
        if *status != before {
            let _ = self.inner.notices.send(Notice::Status(status.clone()));
        }
    }

    fn changed(&self, event: &str, kinds: HashSet<String>) {
        if kinds.contains("file_meta") {
            // A file deleted or out of reach takes its bytes with it.
            self.sweep_files();
        }
        if !kinds.is_empty() {
            let mut kinds: Vec<String> = kinds.into_iter().collect();
            kinds.sort();
            let _ = self.inner.notices.send(Notice::Changed { event: event.into(), kinds });
        }
    }
}

/// The outbox: mutations by n, with what the hot paths ask of it kept at hand — each record's
/// mutations, and how many are unanswered — so a phone with thousands of offline edits writes
/// and syncs as fast as one with a few. Read through `Deref`; changed only through its methods.
#[derive(Default)]
struct Outbox {
    by_n: BTreeMap<u64, Outgoing>,
    /// (event, kind, record) → the ns of its mutations.
    by_record: HashMap<(String, String, String), std::collections::BTreeSet<u64>>,
    unanswered: usize,
    /// The stored watermark: entries at or below it are done, whether or not their documents
    /// are deleted yet (see [`Outbox::leaving`]).
    done: u64,
    /// Stored entries at or below this are deleted.
    swept: u64,
}

impl std::ops::Deref for Outbox {
    type Target = BTreeMap<u64, Outgoing>;

    fn deref(&self) -> &Self::Target {
        &self.by_n
    }
}

impl FromIterator<Outgoing> for Outbox {
    fn from_iter<I: IntoIterator<Item = Outgoing>>(iter: I) -> Self {
        let mut o = Outbox::default();
        for out in iter {
            o.insert(out);
        }
        o
    }
}

impl Outbox {
    fn key(o: &Outgoing) -> (String, String, String) {
        (o.event.clone(), o.kind.clone(), o.record.clone())
    }

    fn insert(&mut self, o: Outgoing) {
        if let Some(old) = self.remove(&o.n) {
            tracing::error!(n = old.n, "an outbox number was used twice");
        }
        self.unanswered += usize::from(o.accepted.is_none());
        self.by_record.entry(Self::key(&o)).or_default().insert(o.n);
        self.by_n.insert(o.n, o);
    }

    fn remove(&mut self, n: &u64) -> Option<Outgoing> {
        let o = self.by_n.remove(n)?;
        self.unanswered -= usize::from(o.accepted.is_none());
        let key = Self::key(&o);
        if let Some(ns) = self.by_record.get_mut(&key) {
            ns.remove(n);
            if ns.is_empty() {
                self.by_record.remove(&key);
            }
        }
        Some(o)
    }

    /// Marks mutation `n` accepted at `seq`.
    fn accept(&mut self, n: u64, seq: i64) {
        if let Some(o) = self.by_n.get_mut(&n) {
            self.unanswered -= usize::from(o.accepted.is_none());
            o.accepted = Some(seq);
        }
    }

    fn retain(&mut self, keep: impl Fn(&Outgoing) -> bool) {
        let gone: Vec<u64> = self.by_n.values().filter(|o| !keep(o)).map(|o| o.n).collect();
        for n in gone {
            self.remove(&n);
        }
    }

    /// The mutations of one record, in order.
    fn of_record(&self, event: &str, kind: &str, id: &str) -> Vec<&Outgoing> {
        self.by_record
            .get(&(event.to_string(), kind.to_string(), id.to_string()))
            .map(|ns| ns.iter().filter_map(|n| self.by_n.get(n)).collect())
            .unwrap_or_default()
    }

    /// Mutations not answered yet.
    fn unanswered(&self) -> usize {
        self.unanswered
    }

    /// For entries `done` about to leave (`next_n`: the device's next counter): the watermark
    /// to store with them, if it moves — below every entry that stays — and those of them
    /// above it, whose documents are deleted one by one. Syncing a large outbox thus writes one
    /// number per transaction instead of deleting thousands of documents (see
    /// [`Replica::sweep_outbox`]). Sound because an entry leaves memory only once what its
    /// answer changed is stored.
    fn leaving(&self, done: &[u64], next_n: u64) -> (Vec<u64>, Option<u64>) {
        let going: HashSet<u64> = done.iter().copied().collect();
        let below = self.by_n.keys().find(|n| !going.contains(n)).map_or(next_n, |n| *n);
        let mark = below.saturating_sub(1).max(self.done);
        let explicit = done.iter().copied().filter(|n| *n > mark).collect();
        (explicit, (mark > self.done).then_some(mark))
    }
}

/// Pending mutations of one record, in order.
fn ops_of<'a>(st: &'a State, event: &str, kind: &str, id: &str) -> Vec<&'a Outgoing> {
    st.outbox.of_record(event, kind, id)
}

/// The outbox of `event` by record, each record's mutations in order.
fn ops_index<'a>(st: &'a State, event: &str) -> HashMap<(String, String), Vec<&'a Outgoing>> {
    let mut m: HashMap<(String, String), Vec<&Outgoing>> = HashMap::new();
    for o in st.outbox.values().filter(|o| o.event == event) {
        m.entry((o.kind.clone(), o.record.clone())).or_default().push(o);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Outgoing {
        Outgoing {
            n,
            event: "e".into(),
            kind: "task".into(),
            record: format!("t{n}"),
            mutation: Mutation {
                id: format!("m{n}"),
                n: Some(n),
                kind: "task".into(),
                op: crate::protocol::MutationOp::Create,
                record: None,
                fields: json!({}),
                hlc: None,
            },
            created: None,
            accepted: None,
        }
    }

    /// The watermark only ever covers entries that are done: it stops below the first entry
    /// that stays, whatever leaves above it.
    #[test]
    fn the_outbox_watermark_stops_below_the_first_entry_that_stays() {
        let mut o: Outbox = (10..=15).map(entry).collect();
        // A prefix leaves: the watermark moves over it, nothing is deleted one by one.
        assert_eq!(o.leaving(&[10, 11, 12], 16), (vec![], Some(12)));
        // Entries above one that stays are deleted one by one; the watermark stays below it.
        assert_eq!(o.leaving(&[11, 12], 16), (vec![11, 12], Some(9)));
        assert_eq!(o.leaving(&[10, 12], 16), (vec![12], Some(10)));
        // Everything leaves: up to the last counter used.
        assert_eq!(o.leaving(&[10, 11, 12, 13, 14, 15], 16), (vec![], Some(15)));
        // Never backwards.
        o.done = 12;
        for n in 10..=12 {
            o.remove(&n);
        }
        assert_eq!(o.leaving(&[14], 16), (vec![14], None));
        assert_eq!(o.leaving(&[13], 16), (vec![], Some(13)));
        let empty = Outbox { done: 20, ..Default::default() };
        assert_eq!(empty.leaving(&[], 16), (vec![], None));
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn a_named_device_gets_a_mark_of_its_installation() {
        let (a, b) = (device_id(Some("gate-b-3")).unwrap(), device_id(Some("gate-b-3")).unwrap());
        assert_ne!(a, b, "two installations given one name");
        assert!(a.starts_with("gate-b-3:") && a.len() == "gate-b-3".len() + INSTALL_MARK_LEN, "{a}");
        assert!(crate::hlc::valid_node(&a));
        assert!(named(&a, "gate-b-3") && named("gate-b-3", "gate-b-3"), "this one, or one made before marks");
        assert!(!named(&a, "gate-b") && !named("gate-b-3:x", "gate-b-3"));
        assert!(device_id(Some(&"x".repeat(56))).is_err() && device_id(Some("")).is_err());
        assert!(device_id(Some(&"x".repeat(55))).is_ok());
        assert!(device_id(None).unwrap().starts_with("d-"));
    }
}
