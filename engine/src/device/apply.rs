//! What the replica sends and what it does with what arrives.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use serde_json::{Value, json};

use super::{
    Incoming, Link, Notice, Rejection, Replica, Row, State, ops_index, ops_of,
    pages::{self, fresh_gen, pages_of},
    write::{Held, allowed_row, stored_row},
};
use crate::{
    Error, Result,
    hlc::Hlc,
    protocol::{
        ClientMessage, Mutation, MutationResult, PROTOCOL_VERSION, Record, RefusalCode, ServerMessage, WireChange,
    },
    time,
};

/// Pushes a connection keeps waiting for their answers: two, so the server applies one
/// while the device takes the answer and changes of the other.
pub const PUSHES_IN_FLIGHT: usize = 2;

/// Row changes of one event in one transaction (see [`pages::overlay_vars`]): the rows
/// stored, and tombstones of rows removed (they may be in a page), go to the overlay as one
/// delta (`$delta`); a narrowing rewrites the event's pages (`$compact`). With `$cursor`, the
/// subscription's cursor moves to it in the same transaction. Outbox entries leave: `$done`
/// moves the watermark over most of them, and `$drop` deletes the others (see
/// `Outbox::leaving`).
const ROWS_SQL: &str = concat!(
    "BEGIN TRANSACTION;\n",
    super::pages::delta_statement!(),
    "\n",
    super::pages::compact_statements!(),
    "
IF $cursor != NONE { UPSERT type::record('sub', $e) SET cursor = math::max([cursor ?? 0, $cursor]) };
IF $done { UPDATE type::record('meta', 'device') SET outbox_done = math::max([outbox_done ?? 0, $done]) };
DELETE ($drop ?? []).map(|$n| type::record('outbox', $n));
COMMIT TRANSACTION;"
);

/// Housekeeping (compactions, and sweeps of what they and syncs leave behind) waits for a
/// heartbeat's answer with nothing in flight and nothing unanswered — it competes with the sync
/// for the same cores and the same store — unless this many rows (or done outbox entries) wait.
pub const HOUSEKEEPING_BACKLOG: usize = 50_000;

/// The code of a mutation the device could not send because the person lost the event.
pub const ACCESS_REVOKED: &str = "access_revoked";

fn all_kinds() -> HashSet<String> {
    crate::kind::Kind::ALL.iter().map(|k| k.to_string()).collect()
}

/// The numbers of the accepted mutations of `event`, for the caller to take out of the outbox.
fn accepted_of(st: &State, event: &str) -> Vec<u64> {
    st.outbox.values().filter(|o| o.event == event && o.accepted.is_some()).map(|o| o.n).collect()
}

/// `ROWS_SQL`'s `$drop` and `$done` for outbox entries `done` leaving; returns the watermark to
/// keep in memory once stored.
fn leaving_vars(st: &State, vars: &mut Value, done: &[u64]) -> Option<u64> {
    let (explicit, mark) = st.outbox.leaving(done, st.next_n);
    vars["drop"] = json!(explicit);
    if let Some(m) = mark {
        vars["done"] = json!(m);
    }
    mark
}

impl Replica {
    /// The first frame of a connection.
    pub fn hello(&self, token: &str) -> ClientMessage {
        ClientMessage::Hello { protocol: PROTOCOL_VERSION, token: token.into(), device: self.inner.device.clone() }
    }

    /// Takes frames that arrived together, in order: consecutive `changes` of one event are
    /// stored as one (one transaction instead of one per frame). Returns the frames to send.
    pub async fn handle_all(&self, msgs: Vec<ServerMessage>) -> Result<Vec<ClientMessage>> {
        // On a full disk, frames that would be stored are not taken at all: the server keeps
        // them, and the link asks again later from the same cursor.
        if msgs.iter().any(|m| {
            matches!(m, ServerMessage::Snapshot { .. } | ServerMessage::Changes { .. } | ServerMessage::Ack { .. })
        }) {
            self.inner.store.guard().check()?;
        }
        let mut out = Vec::new();
        let mut pending: Option<(String, Vec<WireChange>, i64)> = None;
        for m in msgs {
            match (m, &mut pending) {
                (ServerMessage::Changes { event, changes, cursor }, Some((e, all, c))) if *e == event => {
                    all.extend(changes);
                    *c = cursor;
                }
                (ServerMessage::Changes { event, changes, cursor }, _) => {
                    if let Some((e, all, c)) = pending.take() {
                        self.on_changes(&e, all, c).await?;
                    }
                    pending = Some((event, changes, cursor));
                }
                (other, _) => {
                    if let Some((e, all, c)) = pending.take() {
                        self.on_changes(&e, all, c).await?;
                    }
                    out.extend(self.handle(other).await?);
                }
            }
        }
        if let Some((e, all, c)) = pending.take() {
            self.on_changes(&e, all, c).await?;
        }
        Ok(out)
    }

    /// Takes one frame from the server; returns the frames to send in answer.
    pub async fn handle(&self, msg: ServerMessage) -> Result<Vec<ClientMessage>> {
        match msg {
            ServerMessage::Welcome { account, .. } => return self.on_welcome(&account).await,
            ServerMessage::Snapshot { event, cursor, records, last } => {
                self.on_snapshot(&event, cursor, records, last).await?
            }
            ServerMessage::Changes { event, changes, cursor } => self.on_changes(&event, changes, cursor).await?,
            ServerMessage::Ack { event, results } => self.on_ack(&event, results).await?,
            ServerMessage::Pong { cursors } => self.on_pong(cursors).await?,
            ServerMessage::Resync { event, .. } => {
                if let Some(s) = self.inner.state.lock().await.subs.get_mut(&event) {
                    s.snapshot = None;
                }
            }
            ServerMessage::Refused { event, code, message, .. } => self.on_refused(&event, code, &message).await?,
            // The link's business (it renews the connection's token).
            ServerMessage::Renewed { .. } => {}
            ServerMessage::Error { message, .. } => {
                let st = self.inner.state.lock().await;
                self.refresh_status(&st, |s| s.last_error = Some(message));
            }
        }
        Ok(Vec::new())
    }

    /// A connection is up (its welcome named `account`): the subscriptions to send.
    /// A replica holds one account's data; another account's welcome is refused while the
    /// device still has changes of the first to send, and otherwise starts the replica over.
    async fn on_welcome(&self, account: &str) -> Result<Vec<ClientMessage>> {
        let mut st = self.inner.state.lock().await;
        if st.account.as_deref() != Some(account) {
            if st.account.is_some() {
                if !st.outbox.is_empty() {
                    let message = "this device holds changes of another account that are not synced yet; sign in as that account first";
                    self.refresh_status(&st, |s| s.last_error = Some(message.into()));
                    return Err(Error::conflict("other_account", message));
                }
                self.inner
                    .store
                    .run(
                        "BEGIN TRANSACTION; DELETE rec; DELETE delta; DELETE page; UPDATE sub SET cursor = NONE, pages = NONE; DELETE rejection; COMMIT TRANSACTION;",
                        Value::Null,
                    )
                    .await?;
                self.mirror_mut().clear_all();
                st.pages_gen.clear();
                st.overlay.clear();
                for s in st.subs.values_mut() {
                    *s = Default::default();
                }
            }
            self.inner
                .store
                .run("UPDATE type::record('meta', 'device') SET account = $a", json!({ "a": account }))
                .await?;
            st.account = Some(account.into());
        }
        st.link = Some(Link::default());
        let out = Self::subscribes(&mut st);
        self.refresh_status(&st, |s| s.last_error = None);
        Ok(out)
    }

    /// Subscriptions not yet sent on the current connection (one added while online, or one
    /// the server refused: the person had no access), after the unsubscriptions not sent yet. A link calls this with each heartbeat,
    /// so access granted later brings the event back without a reconnect.
    pub async fn resubscribe(&self) -> Vec<ClientMessage> {
        Self::subscribes(&mut *self.inner.state.lock().await)
    }

    fn subscribes(st: &mut State) -> Vec<ClientMessage> {
        let Some(link) = st.link.as_mut() else { return Vec::new() };
        let mut out: Vec<ClientMessage> =
            link.unsubscribed.drain(..).map(|event| ClientMessage::Unsubscribe { event }).collect();
        for (event, sub) in &st.subs {
            if link.subscribed.insert(event.clone()) {
                out.push(ClientMessage::Subscribe { event: event.clone(), cursor: sub.cursor });
            }
        }
        out
    }

    /// The connection is gone (`error` says why, for the app, when it was not asked for).
    /// A push that was not answered will be sent again: the server applies each mutation
    /// at most once, so that is harmless.
    pub async fn disconnected(&self, error: Option<String>) {
        let mut st = self.inner.state.lock().await;
        st.link = None;
        self.refresh_status(&st, |s| {
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    /// The next push to send, while fewer than [`PUSHES_IN_FLIGHT`] wait for their answer:
    /// the oldest mutations not sent on this connection, of one event, at most `max` and
    /// about `max_bytes` of JSON.
    /// Until when pushes wait because the server deferred some (its quotas).
    pub async fn push_hold(&self) -> Option<std::time::Instant> {
        let st = self.inner.state.lock().await;
        st.link.as_ref()?.hold_until.filter(|h| std::time::Instant::now() < *h)
    }

    pub async fn next_push(&self, max: usize, max_bytes: usize) -> Option<ClientMessage> {
        let mut st = self.inner.state.lock().await;
        let link = st.link.as_ref()?;
        if link.in_flight.len() >= PUSHES_IN_FLIGHT || link.hold_until.is_some_and(|h| std::time::Instant::now() < h) {
            return None;
        }
        let sent: HashSet<u64> = link.in_flight.iter().flat_map(|(_, ns)| ns.iter().copied()).collect();
        // A lost event's mutations are still pushed, to learn which were applied.
        let ready =
            |e: &str| st.subs.get(e).is_some_and(|s| s.lost || (s.cursor.is_some() && link.subscribed.contains(e)));
        // A file's record (and what follows it of the same file) waits for its bytes.
        let waiting: HashSet<&str> =
            st.outbox.values().filter(|o| self.awaits_upload(&st, o)).map(|o| o.record.as_str()).collect();
        let unsent = |o: &&super::Outgoing| {
            o.accepted.is_none()
                && !sent.contains(&o.n)
                && !(o.kind == "file_meta" && waiting.contains(o.record.as_str()))
        };
        let event = st.outbox.values().filter(unsent).find(|o| ready(&o.event))?.event.clone();
        let (mut ns, mut mutations, mut bytes) = (Vec::new(), Vec::new(), 0);
        for o in st.outbox.values().filter(unsent).filter(|o| o.event == event) {
            let size = serde_json::to_vec(&o.mutation).map_or(0, |v| v.len());
            if ns.len() >= max.max(1) || (!ns.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            ns.push(o.n);
            // Mutations stored by a build that did not number them carry their outbox place.
            mutations.push(Mutation { n: Some(o.n), ..o.mutation.clone() });
        }
        if let Some(l) = st.link.as_mut() {
            l.in_flight.push((event.clone(), ns));
        }
        Some(ClientMessage::Push { event, mutations })
    }

    fn observe(&self, data: &Value) {
        if let Some(stamps) = data.get("stamps").and_then(Value::as_object)
            && let Some(latest) = stamps.values().filter_map(|s| s.as_str()).filter_map(|s| Hlc::parse(s).ok()).max()
        {
            self.inner.clock.observe(&latest);
        }
    }

    async fn on_snapshot(&self, event: &str, cursor: i64, records: Vec<Record>, last: bool) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        let fresh = fresh_gen(&st, event);
        let Some(sub) = st.subs.get_mut(event) else { return Ok(()) };
        sub.lost = false;
        let incoming = match &mut sub.snapshot {
            Some(i) if i.cursor == cursor => i,
            _ => sub.snapshot.insert(Incoming { cursor, generation: fresh, records: Vec::new(), pages: 0 }),
        };
        incoming.records.extend(records);
        let generation = incoming.generation;
        if !last && incoming.records.len() < super::SNAPSHOT_BATCH_RECORDS {
            return Ok(());
        }
        let records = std::mem::take(&mut incoming.records);
        let from = incoming.pages;
        let mut kinds = HashSet::new();
        let mut rows = Vec::with_capacity(records.len());
        let index = ops_index(&st, event);
        for r in &records {
            self.observe(&r.data);
            kinds.insert(r.kind.clone());
            let ops = index.get(&(r.kind.clone(), r.id.clone())).map(Vec::as_slice).unwrap_or_default();
            let held = Held { event, kind: &r.kind, id: &r.id, server: Some(&r.data), seq: cursor, generation };
            rows.extend(stored_row(held, ops));
        }
        drop(index);
        let decoded: Vec<Row> = rows.into_iter().map(serde_json::from_value).collect::<std::result::Result<_, _>>()?;
        if !decoded.is_empty() {
            // The snapshot's rows are stored as pages of its own generation, which becomes the
            // event's only when the last chunk is in: until then the replica reopens as it was.
            let pages = pages_of(&decoded, from)?;
            if let Some(i) = st.subs.get_mut(event).and_then(|s| s.snapshot.as_mut()) {
                i.pages += pages.len();
            }
            self.inner
                .store
                .run(
                    "FOR $p IN $pages { CREATE type::record('page', [$e, $gen, $p.n]) CONTENT { rows: $p.rows } RETURN NONE; };",
                    json!({ "e": event, "gen": generation, "pages": pages }),
                )
                .await?;
            let mut mirror = self.mirror_mut();
            for r in decoded {
                mirror.put_row(event, Arc::new(r));
            }
        }
        if last {
            // What the snapshot no longer holds is gone, except the device's own unsent
            // work, which loses its server version instead.
            let stale = {
                let mut mirror = self.mirror_mut();
                mirror.sweep(event, generation);
                mirror.older(event, generation)
            };
            let mut overlay: Vec<Value> = Vec::new();
            {
                let mut mirror = self.mirror_mut();
                for (kind, id) in stale {
                    let ops = ops_of(&st, event, &kind, &id);
                    let held = Held { event, kind: &kind, id: &id, server: None, seq: cursor, generation };
                    match stored_row(held, &ops) {
                        Some(row) => mirror.put(event, &row),
                        None => mirror.del(event, &kind, &id),
                    }
                }
                // Rows with unsent edits stay in the overlay, as the mirror has them now (made
                // or restored since their page was written).
                for r in mirror.event_rows(event).into_iter().filter(|r| r.pending) {
                    overlay.push(serde_json::to_value(&*r)?);
                }
            }
            let mut vars = pages::bounds(event);
            vars["gen"] = json!(generation);
            vars["cursor"] = json!(cursor);
            if let Some(d) = pages::delta(&mut st, &overlay, generation)? {
                vars["delta"] = d;
            }
            // The overlay of earlier generations is superseded by the new pages (and swept
            // after); rows with unsent edits are written again over them, as a delta.
            self.inner
                .store
                .run(
                    concat!(
                        "BEGIN TRANSACTION;
                         DELETE page:[$e, 0]..[$e, $gen];
                         DELETE page:[$e, $gen + 1]..=[$e, $gen_top];\n",
                        pages::delta_statement!(),
                        "\nUPSERT type::record('sub', $e) SET cursor = $cursor, pages = $gen;
                         COMMIT TRANSACTION;"
                    ),
                    vars,
                )
                .await?;
            self.pages_made(&mut st, event, generation);
            st.overlay.insert(event.to_string(), overlay.len());
            if let Some(sub) = st.subs.get_mut(event) {
                sub.cursor = Some(cursor);
                sub.snapshot = None;
            }
            self.after_cursor(&mut st, event, true).await?;
            kinds = all_kinds();
        }
        drop(st);
        self.changed(event, kinds);
        Ok(())
    }

    async fn on_changes(&self, event: &str, changes: Vec<WireChange>, cursor: i64) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        match st.subs.get(event) {
            // A frame of an earlier subscription of the event (unsubscribed since, and maybe
            // followed again: its snapshot will come) or of one never made.
            None => return Ok(()),
            Some(sub) if sub.cursor.is_none() && sub.snapshot.is_none() => return Ok(()),
            Some(_) => {}
        }
        let mut ops = Vec::with_capacity(changes.len());
        let mut kinds = HashSet::new();
        let mut access = false;
        // The frame's last seq per record: a mutation accepted at or below it is reflected.
        let mut last: HashMap<(String, String), i64> = HashMap::new();
        {
            let of = |kind: &str, id: &str| ops_of(&st, event, kind, id);
            for c in changes {
                match c {
                    WireChange::Upsert { seq, kind, id, data } => {
                        self.observe(&data);
                        access |= crate::kind::Kind::parse(&kind).is_some_and(crate::kind::Kind::changes_access);
                        let held = Held { event, kind: &kind, id: &id, server: Some(&data), seq, generation: 0 };
                        ops.push(json!({ "put": stored_row(held, &of(&kind, &id)) }));
                        last.insert((kind.clone(), id), seq);
                        kinds.insert(kind);
                    }
                    WireChange::Delete { seq, kind, id } | WireChange::Remove { seq, kind, id } => {
                        access |= crate::kind::Kind::parse(&kind).is_some_and(crate::kind::Kind::changes_access);
                        let held = Held { event, kind: &kind, id: &id, server: None, seq, generation: 0 };
                        match stored_row(held, &of(&kind, &id)) {
                            Some(row) => ops.push(json!({ "put": row })),
                            None => ops.push(json!({ "del": { "kind": kind, "id": id } })),
                        }
                        last.insert((kind.clone(), id), seq);
                        kinds.insert(kind);
                    }
                    WireChange::Narrow { keep, keep_kinds, .. } => {
                        access = true;
                        kinds = all_kinds();
                        ops.push(json!({ "narrow": { "keep": keep, "keep_kinds": keep_kinds } }));
                    }
                }
            }
        }
        let moved = st.subs.get(event).and_then(|s| s.cursor).unwrap_or(0).max(cursor);
        // Mutations the stream now reflects leave the outbox in the same transaction. Memory
        // follows only once it is stored: a failed store leaves the cursor where it was.
        let (drop_ns, stale) = self.reflected(&st, event, moved, &last);
        let mut vars = pages::overlay_vars(&mut st, event, &ops)?;
        vars["cursor"] = json!(cursor);
        let mark = leaving_vars(&st, &mut vars, &drop_ns);
        // A narrowing rewrites the event's pages in the same transaction: nothing it purges
        // may survive in a page.
        let narrows = ops.iter().any(|o| o.get("narrow").is_some());
        let generation = fresh_gen(&st, event);
        if narrows {
            vars["compact"] = pages::compaction(&pages::rows_after(&self.mirror(), event, &ops), generation)?;
        }
        self.inner.store.run(ROWS_SQL, vars).await?;
        if let Some(sub) = st.subs.get_mut(event) {
            sub.cursor = Some(moved);
        }
        self.forget(&mut st, &drop_ns, mark);
        self.mirror_mut().apply(event, &ops);
        match narrows {
            true => self.pages_made(&mut st, event, generation),
            false => self.overlay_grew(&mut st, event, ops.len()),
        }
        self.rebuild(&mut st, event, stale, Vec::new()).await?;
        self.after_cursor(&mut st, event, access).await?;
        drop(st);
        self.changed(event, kinds);
        Ok(())
    }

    async fn on_ack(&self, event: &str, results: Vec<MutationResult>) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        // The answer is to the oldest push in flight for this event (a connection answers
        // its pushes in order).
        let pushed = match st.link.as_mut() {
            Some(l) => l.in_flight.iter().position(|(e, _)| e == event).map(|i| l.in_flight.remove(i).1),
            None => None,
        };
        let now = time::now();
        let lost = st.subs.get(event).is_some_and(|s| s.lost);
        let by_id: HashMap<String, u64> = match pushed {
            Some(ns) => ns.iter().filter_map(|n| st.outbox.get(n)).map(|o| (o.mutation.id.clone(), o.n)).collect(),
            None => st.outbox.values().filter(|o| o.event == event).map(|o| (o.mutation.id.clone(), o.n)).collect(),
        };
        let mut rejected = Vec::new();
        for r in results {
            let id = match &r {
                MutationResult::Accepted { mutation, .. }
                | MutationResult::Rejected { mutation, .. }
                | MutationResult::Deferred { mutation, .. } => mutation,
            };
            let Some(&n) = by_id.get(id) else { continue };
            match r {
                MutationResult::Accepted { seq, .. } => {
                    // Kept in memory only: after a restart the mutation is pushed again and
                    // answered the same (the server applies it at most once).
                    st.outbox.accept(n, seq);
                }
                // Stays in the outbox; pushes wait as long as the server asked.
                MutationResult::Deferred { retry_after_ms, .. } => {
                    if let Some(l) = st.link.as_mut() {
                        let until = std::time::Instant::now() + std::time::Duration::from_millis(retry_after_ms);
                        l.hold_until = Some(l.hold_until.map_or(until, |h| h.max(until)));
                    }
                }
                MutationResult::Rejected { mut code, mut message, .. } => {
                    if lost && code == "not_found" {
                        code = ACCESS_REVOKED.into();
                        message = "your access to this event was removed while this device was offline".into();
                    }
                    if let Some(o) = st.outbox.get(&n) {
                        rejected.push((
                            n,
                            Rejection {
                                event: event.into(),
                                mutation: o.mutation.id.clone(),
                                kind: o.kind.clone(),
                                record: o.record.clone(),
                                code,
                                message,
                                at: now.clone(),
                            },
                        ));
                    }
                }
            }
        }
        self.record_answers(&mut st, &rejected).await?;
        if lost {
            // Nothing of the event is held: an accepted mutation is done at once.
            let done = accepted_of(&st, event);
            self.put_rows(&mut st, event, Vec::new(), &done).await?;
        }
        self.after_cursor(&mut st, event, false).await?;
        self.refresh_status(&st, |s| s.last_sync = Some(now));
        drop(st);
        self.tell_rejected(rejected.into_iter().map(|(_, r)| r).collect());
        Ok(())
    }

    /// Persists rejections (the mutation leaves the outbox, in memory once stored; the app's
    /// list gains it), and rebuilds the rejected records from the server's version and what is
    /// still unsent.
    pub(super) async fn record_answers(&self, st: &mut State, rejected: &[(u64, Rejection)]) -> Result<()> {
        if rejected.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::new();
        for (_, r) in rejected {
            let n = st.next_rejection;
            st.next_rejection += 1;
            rows.push(json!({ "n": n, "r": r }));
        }
        self.inner
            .store
            .run(
                "BEGIN TRANSACTION;
                 FOR $n IN $rejected { DELETE type::record('outbox', $n); };
                 FOR $r IN $rows { CREATE type::record('rejection', $r.n) CONTENT object::extend($r.r, { n: $r.n }) RETURN NONE; };
                 DELETE rejection WHERE n <= $oldest;
                 COMMIT TRANSACTION;",
                json!({
                    "rejected": rejected.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                    "rows": rows,
                    "oldest": st.next_rejection.saturating_sub(1 + super::REJECTIONS_KEPT as u64),
                }),
            )
            .await?;
        for (n, _) in rejected {
            st.outbox.remove(n);
        }
        let mut by_event: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (_, r) in rejected {
            by_event.entry(r.event.clone()).or_default().push((r.kind.clone(), r.record.clone()));
        }
        for (event, records) in by_event {
            self.rebuild(st, &event, records, Vec::new()).await?;
        }
        Ok(())
    }

    pub(super) fn tell_rejected(&self, rejected: Vec<Rejection>) {
        let mut events = HashSet::new();
        for r in rejected {
            events.insert((r.event.clone(), r.kind.clone()));
            let _ = self.inner.notices.send(Notice::Rejected(r));
        }
        for (event, kind) in events {
            self.changed(&event, [kind].into());
        }
    }

    /// Rebuilds the stored rows of `records` from the server's version and the outbox, as the
    /// person's standing allows: a server version it no longer allows is forgotten, and a
    /// record it does not allow is not kept.
    async fn rebuild(&self, st: &mut State, event: &str, records: Vec<(String, String)>, done: Vec<u64>) -> Result<()> {
        let standing = st.subs.get(event).map(|s| s.standing.clone()).unwrap_or_default();
        let mut restore = Vec::new();
        for (kind, id) in records {
            let row: Option<Row> = self.row(event, &kind, &id);
            let (server, seq, generation) = match &row {
                Some(r) => (r.server().cloned(), r.seq, r.generation),
                None => (None, 0, 0),
            };
            // Without the mutations leaving in the same transaction.
            let ops: Vec<_> = ops_of(st, event, &kind, &id).into_iter().filter(|o| !done.contains(&o.n)).collect();
            let held = Held { event, kind: &kind, id: &id, server: server.as_ref(), seq, generation };
            let stored = allowed_row(&standing, held, &ops);
            restore.push((kind.clone(), id.clone(), stored));
        }
        self.put_rows(st, event, restore, &done).await
    }

    /// Stores (or removes) rows, and takes outbox entries `done` out of the outbox, in one
    /// transaction.
    async fn put_rows(
        &self,
        st: &mut State,
        event: &str,
        rows: Vec<(String, String, Option<Value>)>,
        done: &[u64],
    ) -> Result<()> {
        if rows.is_empty() && done.is_empty() {
            return Ok(());
        }
        let ops: Vec<Value> = rows
            .into_iter()
            .map(|(kind, id, row)| match row {
                Some(r) => json!({ "put": r }),
                None => json!({ "del": { "kind": kind, "id": id } }),
            })
            .collect();
        let mut vars = pages::overlay_vars(st, event, &ops)?;
        let mark = leaving_vars(st, &mut vars, done);
        self.inner.store.run(ROWS_SQL, vars).await?;
        self.forget(st, done, mark);
        self.mirror_mut().apply(event, &ops);
        Ok(())
    }

    async fn on_pong(&self, cursors: BTreeMap<String, i64>) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        for (event, c) in cursors {
            let Some(sub) = st.subs.get_mut(&event) else { continue };
            if sub.snapshot.is_some() || sub.cursor.is_none_or(|have| have >= c) {
                continue;
            }
            sub.cursor = Some(c);
            self.inner
                .store
                .run("UPSERT type::record('sub', $e) SET cursor = $c", json!({ "e": event, "c": c }))
                .await?;
            self.after_cursor(&mut st, &event, false).await?;
        }
        // A heartbeat's answer with nothing in flight is a quiet moment: overlays grown past
        // their bound are compacted now rather than in the middle of a sync, and done outbox
        // entries swept.
        let quiet = st.link.as_ref().is_none_or(|l| l.in_flight.is_empty()) && st.outbox.unanswered() == 0;
        self.compact_due(&mut st, quiet).await?;
        if quiet || st.outbox.done.saturating_sub(st.outbox.swept) > HOUSEKEEPING_BACKLOG as u64 {
            self.sweep_outbox(&mut st);
        }
        self.refresh_status(&st, |s| s.last_sync = Some(time::now()));
        Ok(())
    }

    async fn on_refused(&self, event: &str, code: RefusalCode, message: &str) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        if let Some(l) = st.link.as_mut()
            && code != RefusalCode::AlreadySubscribed
        {
            l.subscribed.remove(event);
        }
        if code != RefusalCode::NotFound {
            self.refresh_status(&st, |s| s.last_error = Some(message.into()));
            return Ok(());
        }
        // The person lost the event (or it is gone): nothing of it may stay on the device.
        // Unanswered mutations stay in the outbox and are still pushed: the server answers
        // those it applied before (their answers may have been lost with a connection) and
        // refuses the others, which are then reported as `access_revoked`.
        let seen = accepted_of(&st, event);
        self.inner
            .store
            .run(
                "BEGIN TRANSACTION;
                 DELETE rec:[$e, '']..[$e, $top];
                 DELETE delta:[$e, 0]..=[$e, $gen_top];
                 DELETE page:[$e, 0]..=[$e, $gen_top];
                 FOR $n IN $seen { DELETE type::record('outbox', $n); };
                 UPSERT type::record('sub', $e) SET cursor = NONE, pages = NONE;
                 COMMIT TRANSACTION;",
                {
                    let mut vars = pages::bounds(event);
                    vars["seen"] = json!(seen);
                    vars
                },
            )
            .await?;
        self.forget(&mut st, &seen, None);
        self.mirror_mut().clear(event);
        st.pages_gen.remove(event);
        st.overlay.remove(event);
        if let Some(s) = st.subs.get_mut(event) {
            *s = super::Sub { lost: true, ..Default::default() };
        }
        self.refresh_status(&st, |_| {});
        drop(st);
        self.changed(event, all_kinds());
        Ok(())
    }

    /// Takes out of the outbox (in memory) the mutations of `event` accepted at or below its
    /// cursor: the stream reflects them now. Returns their numbers, and the records whose
    /// stored row still shows one of them (the frame did not carry the record at or past the
    /// mutation's seq: its change was not visible to the device), to rebuild.
    fn reflected(
        &self,
        st: &State,
        event: &str,
        cursor: i64,
        last: &HashMap<(String, String), i64>,
    ) -> (Vec<u64>, Vec<(String, String)>) {
        let done: Vec<&super::Outgoing> =
            st.outbox.values().filter(|o| o.event == event && o.accepted.is_some_and(|a| a <= cursor)).collect();
        let mut stale: Vec<(String, String)> = done
            .iter()
            .filter(|o| last.get(&(o.kind.clone(), o.record.clone())).is_none_or(|seq| Some(*seq) < o.accepted))
            .map(|o| (o.kind.clone(), o.record.clone()))
            .collect();
        stale.sort();
        stale.dedup();
        (done.iter().map(|o| o.n).collect(), stale)
    }

    /// Takes mutations out of the outbox in memory, once stored as gone (with the watermark
    /// `mark`, if it moved).
    fn forget(&self, st: &mut State, done: &[u64], mark: Option<u64>) {
        for n in done {
            st.outbox.remove(n);
        }
        if let Some(m) = mark {
            st.outbox.done = m;
        }
        if !done.is_empty() {
            self.refresh_status(st, |_| {});
        }
    }

    /// After the cursor of `event` moved outside a changes frame (an ack, a pong): the
    /// mutations it now reflects leave the outbox. If the person's access may have changed,
    /// the standing is read again and the device's own unsent records it no longer allows
    /// are purged (the server answers their mutations with refusals).
    async fn after_cursor(&self, st: &mut State, event: &str, access: bool) -> Result<()> {
        let cursor = st.subs.get(event).and_then(|s| s.cursor).unwrap_or(0);
        let (done, stale) = self.reflected(st, event, cursor, &HashMap::new());
        if !done.is_empty() {
            self.rebuild(st, event, stale, done).await?;
        }
        if access {
            let standing = self.standing_from_records(st, event)?;
            if let Some(s) = st.subs.get_mut(event) {
                s.standing = standing;
            }
            let mine: Vec<(String, String)> = ops_index(st, event).into_keys().collect();
            self.rebuild(st, event, mine, Vec::new()).await?;
        }
        Ok(())
    }
}
