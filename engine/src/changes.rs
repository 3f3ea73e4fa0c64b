//! The change log: the one write path for everything inside an event.
//!
//! Every accepted write to an event's records goes through [`Engine::commit`], which in ONE
//! SurrealDB transaction bumps the event's counter, writes the records, and appends one
//! change entry per record with the next `seq`. Because the counter lives in the database
//! and is bumped inside the same transaction, seqs are gap-free and commit-ordered for every
//! reader, whatever the concurrency and however many servers share the database: two
//! transactions that bump the same counter conflict, and the loser is retried.
//!
//! Architecture invariant: no event-scoped record is written any other way.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{
    Engine, Error, Result,
    kind::Kind,
    plan::{Write, WriteOp, with_id},
    time,
};

/// Most record writes one commit may carry.
pub const COMMIT_WRITES_MAX: usize = 10_000;
/// Most changes one read of the log returns.
pub const READ_CHANGES_MAX: usize = 10_000;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The record now looks like `data` (created or changed).
    Upsert,
    /// The record is gone.
    Delete,
    /// The `subject`'s role in the organization that owns the event changed: `data` is
    /// `{before, after}` (`owner`, `admin`, `member` or null). Writes no record of the event;
    /// the entry is there so that every feed of the event, on every node, hears of it at its
    /// point in the stream (the feed's `View::step`).
    Role,
}

pub use crate::plan::Origin;

/// One entry of an event's change log. It carries what access needs to judge it without
/// another query: the kind, the record, and the collaborators it belonged to before and
/// after the change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Change {
    /// Not stored in the log's pages (their key names the event): filled in on reading.
    #[serde(default)]
    pub event: String,
    /// Not stored in the log's pages (`first` and the entry's place give it).
    #[serde(default)]
    pub seq: i64,
    /// The record's kind (see [`crate::kind`]).
    pub kind: Kind,
    /// The changed record's key within its table.
    pub record: String,
    pub op: Op,
    pub collaborators_before: Vec<String>,
    pub collaborators_after: Vec<String>,
    /// The person whose access to the event this change alters (seats, memberships).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The record after the change (upserts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub at: String,
}

/// The key of the record that says a client mutation was applied: one per event, account,
/// device and mutation id.
pub(crate) fn applied_key(event: &str, actor: &str, origin: &Origin) -> Value {
    json!([event, actor, origin.device, origin.mutation])
}

/// A mutation found applied already: what it changed, and the seq of its change.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct Applied {
    pub mutation: String,
    pub record: String,
    pub seq: i64,
}

/// Commit requests waiting for one event's committer; callers wait when it is full.
const COMMIT_QUEUE_MAX: usize = 1024;

pub(crate) struct CommitRequest {
    writes: Vec<Write>,
    basis: Option<i64>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Change>>>,
}

/// The message a commit throws when a record it must change is gone.
const MISSING: &str = "backops:record_missing";
/// The message a commit throws when the access facts its decisions used are out of date.
const STALE: &str = "backops:stale_access";
/// The message a commit throws when a device's mark reached a mutation it would apply.
const ALREADY_APPLIED: &str = "backops:already_applied";
/// The message a commit throws when a judged write's subject was judged since its planning.
const JUDGED_MEANWHILE: &str = "backops:judged_meanwhile";

/// Most entries one page of the log holds: a larger commit writes several pages.
pub const LOG_PAGE_ENTRIES_MAX: usize = 500;

/// Moves a device's mark `$m` (a [`crate::plan::MarkSpec`]) to `$m.hi`, noting the head
/// `$mark_seq`, and records the refusals among its mutations; throws `already_applied` if the
/// mark had reached `$m.lo`. In a commit, and alone for pushes of which nothing commits.
macro_rules! mark_statements {
    () => {
        "IF ((SELECT VALUE n FROM type::record('mark', $m.key))[0] ?? 0) >= $m.lo { THROW 'backops:already_applied' };
    UPSERT type::record('mark', $m.key) SET n = $m.hi, seq = $mark_seq, at = $at RETURN NONE;
    FOR $r IN $m.refused {
        CREATE type::record('refused', $r.k) CONTENT { event: $event, code: $r.code, message: $r.message, seq: $mark_seq, at: $at } RETURN NONE;
    };"
    };
}
pub(crate) use mark_statements;

/// The one statement text of every commit: the counter (and the access version, checked
/// against the version the writer's decisions were based on); the judgements the writes were
/// decided on, checked and counted; the record writes — creates of records nothing else in
/// the commit touches in one `INSERT` per table, the rest one by one in order; the log's
/// page(s) of this commit's entries; and what remembers the client mutations applied.
/// Values come as parameters, so the text never changes.
const COMMIT_SQL: &str = concat!(
    "BEGIN TRANSACTION;
LET $row = (UPSERT type::record('event_seq', $event) SET n = (n ?? 0) + $count, access = (access ?? 0) + $bump RETURN n, access)[0];
IF $basis_min != NONE AND ($basis_min != $row.access - $bump OR $basis_max != $row.access - $bump) { THROW 'backops:stale_access' };
LET $base = $row.n - $count;
-- Decided on the subject's judgement n: it must still be n (else another node or writer
-- judged the subject meanwhile), and a judgement makes it n + 1. In write order: a later
-- write of the commit may have been decided on an earlier one's count.
FOR $j IN $judged {
    IF ((SELECT VALUE n FROM type::record('judged', [$event, $j.k]))[0] ?? 0) != $j.n {
        THROW 'backops:judged_meanwhile'
    };
    IF $j.b {
        UPSERT type::record('judged', [$event, $j.k]) SET n = $j.n + 1 RETURN NONE;
    };
};
-- An existing key fails the INSERT, and with it the commit, as a CREATE would.
FOR $b IN $inserts {
    LET $table = $b.t;
    INSERT INTO $table $b.rows RETURN NONE;
};
FOR $w IN $writes {
    IF $w.op = 'create' {
        CREATE type::record($w.k, $w.id) CONTENT $w.c RETURN NONE;
    } ELSE IF $w.op = 'replace' {
        IF array::len(UPDATE type::record($w.k, $w.id) CONTENT $w.c RETURN VALUE id) = 0 { THROW 'backops:record_missing' };
    } ELSE {
        IF array::len(DELETE type::record($w.k, $w.id) RETURN BEFORE) = 0 { THROW 'backops:record_missing' };
    };
};
FOR $p IN $pages {
    CREATE type::record('change', [$event, $base + $p.last]) CONTENT { first: $base + $p.first, entries: $p.entries, about: $p.about, kinds: $p.kinds, at: $at } RETURN NONE;
};
-- Fails the transaction if the mutation was applied before (`already_applied`).
FOR $a IN $applied {
    CREATE type::record('applied', $a.k) CONTENT { event: $event, seq: $base + $a.i, record: $a.id, at: $at } RETURN NONE;
};
FOR $m IN $marks {
    LET $mark_seq = $row.n;
    ",
    mark_statements!(),
    "
};
RETURN $row;
COMMIT TRANSACTION;"
);

/// How often one node looks at an event's oldest log pages for entries past their time.
const TRIM_LOOK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// Pages one look reads at most.
const TRIM_LOOK_PAGES: usize = 256;

/// Which pages a read of the log takes (see [`Engine::log_pages`]).
enum Pages {
    /// The first n.
    First(usize),
    /// Every one with an entry that alters someone's access (`about`).
    AlteringAccess,
}

/// Pages of the log a catch-up looks at in one read ([`Engine::changes_for`]).
const SKIM_PAGES: usize = 256;

/// What [`Engine::changes_for`] read: the changes it kept, the seq it covered, and the first
/// seq of the first page it found (a log trimmed past the cursor starts later).
#[derive(Debug)]
pub struct Covered {
    pub changes: Vec<Change>,
    pub through: i64,
    pub first: Option<i64>,
}

/// One page of the log as stored: entries `first..` in order (without their `event` and
/// `seq`, which the key and `first` give).
#[derive(Deserialize)]
struct Page {
    first: i64,
    entries: Entries,
}

/// A page's entries: the JSON text of the list — SurrealDB stores a string for a fraction of
/// what it costs to store the same records as nested values — or, in pages written before,
/// the list itself.
#[derive(Deserialize)]
#[serde(untagged)]
enum Entries {
    Text(String),
    List(Vec<Change>),
}

impl Page {
    /// The page's entries, each with its event and seq.
    fn into_changes(self, event: &str) -> Result<Vec<Change>> {
        let mut entries = match self.entries {
            Entries::Text(t) => serde_json::from_str::<Vec<Change>>(&t)?,
            Entries::List(l) => l,
        };
        for (i, c) in entries.iter_mut().enumerate() {
            c.seq = self.first + i as i64;
            c.event = event.to_string();
        }
        Ok(entries)
    }
}

impl Engine {
    /// Applies `writes` to `event` in one transaction together with their change entries,
    /// decided on fresh reads. Returns the entries, with their seqs, in order.
    pub(crate) async fn commit(&self, event: &str, writes: Vec<Write>) -> Result<Vec<Change>> {
        self.commit_on(event, None, writes).await
    }

    /// [`Engine::commit`] of writes decided with facts from the write path's access cache
    /// (`ev` comes from [`Engine::standing_for_write`]).
    pub(crate) async fn commit_as(&self, ev: &crate::model::Event, writes: Vec<Write>) -> Result<Vec<Change>> {
        self.commit_on(&ev.id, ev.basis.clone(), writes).await
    }

    /// Commits writes decided on `basis` (None: on fresh reads). The commit fails in its
    /// transaction if the event's access changed since those facts were read; it is then
    /// retried with fresh facts when the writer's own standing is the same (the same facts
    /// decide the same way), and refused otherwise.
    pub(crate) async fn commit_on(
        &self,
        event: &str,
        basis: Option<std::sync::Arc<crate::cache::Basis>>,
        writes: Vec<Write>,
    ) -> Result<Vec<Change>> {
        let mut version = basis.as_ref().map(|b| b.version);
        let mut attempts = 0;
        loop {
            match self.commit_writes_on(event, version, writes.clone()).await {
                Err(Error::StaleAccess) if attempts < 3 => {
                    attempts += 1;
                    let Some(b) = &basis else { return Err(Error::StaleAccess) };
                    self.shared.access.forget(event);
                    let (fresh, standing) = self.standing_for_write(&b.actor, event).await?;
                    if standing != b.standing {
                        return Err(Error::conflict(
                            "access_changed",
                            "your access to this event changed while the request ran; try again",
                        ));
                    }
                    version = fresh.basis.as_ref().map(|b| b.version);
                }
                other => return other,
            }
        }
    }

    /// Writes `writes` and their change entries in one transaction; the entries carry each
    /// write's own origin.
    ///
    /// Commits of one event go through one committer task per event (group commit): callers
    /// that arrive while a transaction is running are gathered into the next one, so the
    /// event's throughput does not stop at the disk's commit rate and writers of one process
    /// never conflict on the event's counter. If a gathered transaction fails, each caller's
    /// writes are committed on their own, so one caller's refusal is never another's.
    pub(crate) async fn commit_writes_on(
        &self,
        event: &str,
        basis: Option<i64>,
        writes: Vec<Write>,
    ) -> Result<Vec<Change>> {
        // Nothing is begun while the disk is within its reserve (see `crate::disk`).
        self.store.guard().check()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.committer(event);
        if let Err(tokio::sync::mpsc::error::SendError(req)) = queue.send(CommitRequest { writes, basis, reply }).await
        {
            return self.commit_now(event, &[req.basis], req.writes).await;
        }
        answer.await.map_err(|_| Error::Internal("the committer stopped".into()))?
    }

    fn committer(&self, event: &str) -> tokio::sync::mpsc::Sender<CommitRequest> {
        let mut map = self.committers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(event).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = tokio::sync::mpsc::channel(COMMIT_QUEUE_MAX);
        // The task's handle does not share the committers map, so it ends when the engine's
        // last handle is gone (the map, and with it the queue's sender, is dropped).
        let engine = Engine { committers: Default::default(), ..self.clone() };
        tokio::spawn(engine.run_committer(event.to_string(), rx));
        map.insert(event.to_string(), tx.clone());
        tx
    }

    async fn run_committer(self, event: String, mut queue: tokio::sync::mpsc::Receiver<CommitRequest>) {
        // A request that changes access is committed on its own, so no other request of its
        // transaction was decided on the facts it changes.
        let mut held: Option<CommitRequest> = None;
        loop {
            let first = match held.take() {
                Some(r) => r,
                None => match queue.recv().await {
                    Some(r) => r,
                    None => return,
                },
            };
            let mut group = vec![first];
            let mut writes = group[0].writes.len();
            if !changes_access(&group[0].writes) {
                while writes < COMMIT_WRITES_MAX / 2 {
                    match queue.try_recv() {
                        Ok(r) if changes_access(&r.writes) => {
                            held = Some(r);
                            break;
                        }
                        Ok(r) => {
                            writes += r.writes.len();
                            group.push(r);
                        }
                        Err(_) => break,
                    }
                }
            }
            if group.len() == 1 {
                let r = group.remove(0);
                let _ = r.reply.send(self.commit_now(&event, &[r.basis], r.writes).await);
                continue;
            }
            let bases: Vec<Option<i64>> = group.iter().map(|r| r.basis).collect();
            let all: Vec<Write> = group.iter().flat_map(|r| r.writes.iter().cloned()).collect();
            match self.commit_now(&event, &bases, all).await {
                Ok(mut entries) => {
                    for r in group {
                        let rest = entries.split_off(r.writes.len().min(entries.len()));
                        let _ = r.reply.send(Ok(std::mem::replace(&mut entries, rest)));
                    }
                }
                Err(_) => {
                    for r in group {
                        let _ = r.reply.send(self.commit_now(&event, &[r.basis], r.writes).await);
                    }
                }
            }
        }
    }

    /// One transaction: the counter, the records and their change entries. `bases` are the
    /// access versions the writers' decisions were based on (None: decided on fresh reads).
    async fn commit_now(&self, event: &str, bases: &[Option<i64>], writes: Vec<Write>) -> Result<Vec<Change>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        if writes.len() > COMMIT_WRITES_MAX {
            return Err(Error::invalid(format!("one commit may change at most {COMMIT_WRITES_MAX} records")));
        }
        let at = time::now();
        let count = writes.len() as i64;
        let bump = i64::from(changes_access(&writes));
        let known: Vec<i64> = bases.iter().flatten().copied().collect();
        // How often each record is written: a create of a record written once goes into its
        // table's bulk INSERT; order matters only between writes of the same record.
        let mut touched: HashMap<(Kind, &str), usize> = HashMap::new();
        for w in &writes {
            *touched.entry((w.kind, w.id.as_str())).or_default() += 1;
        }
        let alone: Vec<bool> = writes.iter().map(|w| touched[&(w.kind, w.id.as_str())] == 1).collect();
        drop(touched);
        let mut inserts: Vec<(Kind, Vec<Value>)> = Vec::new();
        let mut planned = Vec::new();
        let mut judged = Vec::new();
        let mut applied = Vec::new();
        let mut marks = Vec::new();
        let mut logged = Vec::with_capacity(writes.len());
        let mut entries = Vec::with_capacity(writes.len());
        for (i, (w, alone)) in writes.into_iter().zip(alone).enumerate() {
            judged.extend(w.judged.iter().map(|j| json!({ "k": j.key, "n": j.seen, "b": j.counts })));
            if let Some(a) = w.applied {
                applied.push(json!({ "k": a, "i": i + 1, "id": w.id }));
            }
            if let Some(m) = w.mark {
                marks.push(json!(m));
            }
            let (op, data) = match w.op {
                WriteOp::Create(content) => {
                    let data = with_id(&content, &w.id);
                    if alone {
                        match inserts.iter_mut().find(|(k, _)| *k == w.kind) {
                            Some((_, rows)) => rows.push(data.clone()),
                            None => inserts.push((w.kind, vec![data.clone()])),
                        }
                    } else {
                        planned.push(json!({ "op": "create", "k": w.kind.as_str(), "id": w.id, "c": content }));
                    }
                    (Op::Upsert, Some(data))
                }
                WriteOp::Replace(content) => {
                    let data = with_id(&content, &w.id);
                    planned.push(json!({ "op": "replace", "k": w.kind.as_str(), "id": w.id, "c": content }));
                    (Op::Upsert, Some(data))
                }
                WriteOp::Delete => {
                    planned.push(json!({ "op": "delete", "k": w.kind.as_str(), "id": w.id }));
                    (Op::Delete, None)
                }
            };
            let entry = Change {
                event: event.into(),
                seq: 0,
                kind: w.kind,
                record: w.id,
                op,
                collaborators_before: w.before,
                collaborators_after: w.after,
                subject: w.subject,
                data,
                origin: w.origin,
                at: at.clone(),
            };
            let mut l = serde_json::to_value(&entry)?;
            if let Some(m) = l.as_object_mut() {
                m.remove("seq");
                m.remove("event");
            }
            logged.push(l);
            entries.push(entry);
        }
        // The log's pages: runs of at most LOG_PAGE_ENTRIES_MAX entries, each keyed by the
        // seq of its last entry; `about` lists the offsets of entries that alter someone's
        // access, so a read for those skips the pages without any; `kinds` the kinds of its
        // entries, so a catch-up skips the pages of kinds its view never receives.
        let mut pages = Vec::new();
        let mut from = 0;
        for chunk in logged.chunks(LOG_PAGE_ENTRIES_MAX) {
            let about: Vec<usize> = (0..chunk.len()).filter(|&o| alters_access(&entries[from + o])).collect();
            let mut p =
                json!({ "first": from + 1, "last": from + chunk.len(), "entries": serde_json::to_string(chunk)? });
            if !about.is_empty() {
                p["about"] = json!(about);
            }
            let mut kinds: Vec<&str> = entries[from..from + chunk.len()].iter().map(|e| e.kind.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            p["kinds"] = json!(kinds);
            pages.push(p);
            from += chunk.len();
        }
        let inserts: Vec<Value> =
            inserts.into_iter().map(|(k, rows)| json!({ "t": k.as_str(), "rows": rows })).collect();
        let mut vars = json!({
            "event": event, "count": count, "bump": bump, "at": at, "judged": judged, "inserts": inserts,
            "writes": planned, "pages": pages, "applied": applied, "marks": marks,
        });
        // Unbound parameters are NONE: a commit decided on fresh reads checks nothing.
        if let (Some(lo), Some(hi), Some(m)) = (known.iter().min(), known.iter().max(), vars.as_object_mut()) {
            m.insert("basis_min".into(), json!(lo));
            m.insert("basis_max".into(), json!(hi));
        }
        let mut rows = self.store.run(COMMIT_SQL, vars).await.map_err(|e| match e {
            Error::Internal(m) if m.contains(MISSING) => Error::not_found("record"),
            Error::Internal(m) if m.contains(STALE) => Error::StaleAccess,
            Error::Internal(m) if m.contains(ALREADY_APPLIED) => {
                Error::Conflict { code: "already_applied", message: "this mutation was applied already".into() }
            }
            Error::Internal(m) if m.contains(JUDGED_MEANWHILE) => Error::conflict(
                "judged_meanwhile",
                "another record about the same subject was judged at the same moment; try again",
            ),
            other => other,
        })?;
        #[derive(Deserialize)]
        struct Row {
            n: i64,
            access: i64,
        }
        let row: Row = rows.last_value()?.ok_or_else(|| Error::Internal("commit returned no seq".into()))?;
        let first = row.n - count + 1;
        for (i, e) in entries.iter_mut().enumerate() {
            e.seq = first + i as i64;
        }
        // One commit's entries are one contiguous run of seqs ending at the new head.
        debug_assert!(first >= 1 && entries.last().is_none_or(|e| e.seq == row.n), "seqs of a commit are contiguous");
        // Cached access facts of the event older than its version are out of date (a bump
        // by this commit, or by another server).
        self.shared.access.seen(event, row.access);
        // Nobody listening is fine: the feed also polls.
        let _ = self.commits.send((event.to_string(), row.n));
        let keep = self.config.log_entries_max.max(1);
        let floor = self.known_floor(event).await?;
        if row.n - floor > keep + (keep / 10).max(1) {
            self.trim_log(event, row.n - keep).await?;
        } else if self.trim_due(event, self.config.log_retention) {
            let upto = self.log_older_than(event, self.config.log_retention).await?;
            if upto > floor {
                self.trim_log(event, upto).await?;
            }
        }
        Ok(entries)
    }

    /// Changes of `event` after `after`, in seq order, at most `limit` (bounded by
    /// [`READ_CHANGES_MAX`]). Not access-filtered: the feed filters per client.
    pub async fn changes_since(&self, event: &str, after: i64, limit: usize) -> Result<Vec<Change>> {
        let limit = limit.min(READ_CHANGES_MAX);
        let mut out: Vec<Change> = Vec::new();
        let mut from = after.saturating_add(1);
        // Pages are read a few at a time (a page holds 1 to LOG_PAGE_ENTRIES_MAX entries), more
        // each round, until the read has `limit` entries or the log ends.
        let mut pages = 4;
        while out.len() < limit {
            let read = self.log_pages(event, from, Pages::First(pages)).await?;
            let Some(last) = read.last().and_then(|p| p.last()).map(|c| c.seq) else { break };
            let got = read.len();
            out.extend(read.into_iter().flatten().filter(|c| c.seq > after));
            if got < pages {
                break;
            }
            from = last + 1;
            pages = (pages * 4).min(limit - out.len().min(limit)).max(1);
        }
        out.truncate(limit);
        // The log is gap-free and commit-ordered: what one read returns is a run of
        // consecutive seqs of this event, after the cursor asked for.
        debug_assert!(out.first().is_none_or(|c| c.seq > after), "a read starts after its cursor");
        debug_assert!(
            out.windows(2).all(|w| w[1].seq == w[0].seq + 1),
            "a read of the log is a run of consecutive seqs"
        );
        Ok(out)
    }

    /// Changes of `event` after `after` of the pages holding one of `kinds` or an entry that
    /// alters someone's access, at most about `limit` (whole pages), and the seq the read
    /// covered: a catch-up for a view that receives only `kinds` (until its access changes,
    /// which ends the read) skips the rest without reading their entries. Pages written
    /// before pages named their kinds are read whole.
    pub async fn changes_for(&self, event: &str, after: i64, limit: usize, kinds: &[Kind]) -> Result<Covered> {
        #[derive(Deserialize)]
        struct Skim {
            first: i64,
            last: i64,
            #[serde(default)]
            about: Option<Value>,
            #[serde(default)]
            entries: Option<Entries>,
        }
        let read: Vec<Skim> = self
            .store
            .run(
                "SELECT first, record::id(id)[1] AS last, about,
                    IF about != NONE OR kinds = NONE OR kinds CONTAINSANY $kinds { entries } ELSE { NONE } AS entries
                 FROM change:[$e, $from]..=[$e, $top] LIMIT $pages",
                json!({ "e": event, "from": after.saturating_add(1), "top": i64::MAX, "pages": SKIM_PAGES,
                        "kinds": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>() }),
            )
            .await?
            .all(0)?;
        let mut out = Covered { changes: Vec::new(), through: after, first: read.first().map(|p| p.first) };
        for page in read {
            let alters = page.about.is_some();
            if let Some(entries) = page.entries {
                let changes = Page { first: page.first, entries }.into_changes(event)?;
                out.changes.extend(changes.into_iter().filter(|c| c.seq > after));
            }
            out.through = page.last;
            // Access changed: the view's kinds may be others from here on.
            if alters || out.changes.len() >= limit.min(READ_CHANGES_MAX) {
                break;
            }
        }
        Ok(out)
    }

    /// Which pages of an event's log a read takes, from seq `from` on (by key range: a page is
    /// keyed by its last seq, so the first page returned holds `from` if it is still retained).
    async fn log_pages(&self, event: &str, from: i64, which: Pages) -> Result<Vec<Vec<Change>>> {
        let (sql, pages) = match which {
            Pages::First(n) => ("SELECT first, entries FROM change:[$e, $from]..=[$e, $top] LIMIT $pages", n),
            Pages::AlteringAccess => {
                ("SELECT first, entries FROM change:[$e, $from]..=[$e, $top] WHERE about != NONE", 0)
            }
        };
        let read: Vec<Page> =
            self.store.run(sql, json!({ "e": event, "from": from, "top": i64::MAX, "pages": pages })).await?.all(0)?;
        read.into_iter().map(|p| p.into_changes(event)).collect()
    }

    /// Changes of `event` after `after` that alter `person`'s own access (and every module
    /// grant, which alters a collaborator's), in seq order.
    pub async fn changes_about(&self, event: &str, after: i64, person: &str) -> Result<Vec<Change>> {
        let pages = self.log_pages(event, after.saturating_add(1), Pages::AlteringAccess).await?;
        Ok(pages
            .into_iter()
            .flatten()
            .filter(|c| c.seq > after && (c.subject.as_deref() == Some(person) || c.kind == Kind::ModuleGrant))
            .collect())
    }

    /// Whether the log of `event` is due to be looked at for entries past their time (at
    /// most every [`TRIM_LOOK_INTERVAL`] per event on each node, or every tenth of the time
    /// entries are kept when that is shorter).
    fn trim_due(&self, event: &str, kept: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let interval = TRIM_LOOK_INTERVAL.min(kept / 10);
        let mut looked = self.shared.trims_looked.lock().unwrap_or_else(|e| e.into_inner());
        match looked.get(event) {
            Some(at) if now.duration_since(*at) < interval => false,
            _ => {
                looked.insert(event.to_string(), now);
                true
            }
        }
    }

    /// The last seq of the oldest pages of `event`'s log committed more than `kept` ago (0:
    /// none), looking at [`TRIM_LOOK_PAGES`] pages at most: a log far past its time is
    /// trimmed in steps, one at each look.
    async fn log_older_than(&self, event: &str, kept: std::time::Duration) -> Result<i64> {
        #[derive(Deserialize)]
        struct Old {
            last: i64,
            #[serde(default)]
            at: Option<String>,
            /// Pages written before they carried their time: their entries say it.
            #[serde(default)]
            entries: Option<Entries>,
        }
        let cutoff = crate::time::format(
            chrono::Utc::now() - chrono::TimeDelta::from_std(kept).unwrap_or(chrono::TimeDelta::MAX),
        );
        let pages: Vec<Old> = self
            .store
            .run(
                "SELECT record::id(id)[1] AS last, at, IF at = NONE { entries } ELSE { NONE } AS entries
                 FROM change:[$e, 0]..=[$e, $top] LIMIT $n",
                json!({ "e": event, "top": i64::MAX, "n": TRIM_LOOK_PAGES }),
            )
            .await?
            .all(0)?;
        let mut upto = 0;
        for p in pages {
            let at = match (p.at, p.entries) {
                (Some(at), _) => at,
                (None, Some(Entries::Text(t))) => {
                    serde_json::from_str::<Vec<Change>>(&t)?.last().map(|c| c.at.clone()).unwrap_or_default()
                }
                (None, Some(Entries::List(l))) => l.last().map(|c| c.at.clone()).unwrap_or_default(),
                (None, None) => String::new(),
            };
            if at >= cutoff {
                break;
            }
            upto = p.last;
        }
        Ok(upto)
    }

    /// The highest seq of `event` whose entry is no longer retained (0: nothing trimmed).
    /// A cursor below it cannot be resumed.
    pub async fn log_floor(&self, event: &str) -> Result<i64> {
        self.event_seq(event, "floor").await
    }

    /// The floor as this process last knew it (read once per event; trims by other servers
    /// only make this process trim again, which is harmless).
    async fn known_floor(&self, event: &str) -> Result<i64> {
        if let Some(f) = self.shared.floors.lock().unwrap_or_else(|e| e.into_inner()).get(event) {
            return Ok(*f);
        }
        let f = self.log_floor(event).await?;
        self.shared.floors.lock().unwrap_or_else(|e| e.into_inner()).insert(event.to_string(), f);
        Ok(f)
    }

    /// Drops the pages of `event`'s log that end at or before `upto` and records the new
    /// floor: the last seq of the last page dropped (a page that straddles `upto` is kept
    /// whole, so every entry after the floor is still there).
    async fn trim_log(&self, event: &str, upto: i64) -> Result<()> {
        let floor: Option<i64> = self
            .store
            .run(
                "BEGIN TRANSACTION;
                 LET $gone = (DELETE change:[$e, 0]..=[$e, $upto] RETURN VALUE record::id($before.id)[1]);
                 LET $floor = math::max(array::concat($gone, [0]));
                 DELETE applied:[$e, '']..[$e, $top] WHERE seq <= $floor;
                 -- Refusals outlive the log: a device retrying after a long night must hear
                 -- the refusal, never an acceptance. Past their keeping time they go, and
                 -- the device's mark remembers up to which counter answers were forgotten.
                 LET $old = (DELETE refused:[$e, '']..[$e, $top] WHERE seq <= $floor AND at < $keep_since
                     RETURN VALUE record::id($before.id));
                 FOR $k IN $old {
                     UPDATE type::record('mark', [$k[0], $k[1], $k[2]]) SET forgot = math::max([forgot ?? 0, $k[3]]) RETURN NONE;
                 };
                 UPDATE type::record('event_seq', $e) SET floor = math::max([floor ?? 0, $floor]);
                 RETURN $floor;
                 COMMIT TRANSACTION;",
                json!({ "e": event, "upto": upto, "top": "\u{10FFFF}",
                        "keep_since": crate::time::format(chrono::Utc::now() - chrono::TimeDelta::from_std(self.config.refusals_kept).unwrap_or(chrono::TimeDelta::MAX)) }),
            )
            .await?
            .last_value()?;
        // Remembered as trimmed up to `upto` even if a page straddling it kept the floor lower:
        // the next trim comes after as many commits again, not at the next one.
        let mut floors = self.shared.floors.lock().unwrap_or_else(|e| e.into_inner());
        let f = floors.entry(event.to_string()).or_insert(0);
        *f = (*f).max(upto);
        tracing::debug!(event, upto, floor = floor.unwrap_or(0), "change log trimmed");
        Ok(())
    }

    /// The seq of the last committed change of `event` (0 when there is none).
    pub async fn head(&self, event: &str) -> Result<i64> {
        self.event_seq(event, "n").await
    }

    /// The heads of `events` in ONE read, by key (an event with no commit yet is left out):
    /// how a sync node learns of the commits other nodes made to the events it follows,
    /// without a query per event.
    pub async fn heads(&self, events: &[String]) -> Result<Vec<(String, i64)>> {
        #[derive(Deserialize)]
        struct Head {
            event: String,
            n: i64,
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let heads: Vec<Head> = self
            .store
            .run(
                "LET $ids = $events.map(|$e| type::record('event_seq', $e)); \
                 SELECT record::id(id) AS event, n FROM $ids WHERE n != NONE;",
                json!({ "events": events }),
            )
            .await?
            .all(1)?;
        Ok(heads.into_iter().map(|h| (h.event, h.n)).collect())
    }

    /// One counter of the event's `event_seq` record (0 when absent). `field` is a constant.
    async fn event_seq(&self, event: &str, field: &'static str) -> Result<i64> {
        let sql = format!("SELECT VALUE {field} FROM type::record('event_seq', $e)");
        Ok(self.store.run(&sql, json!({ "e": event })).await?.value::<Option<i64>>(0)?.flatten().unwrap_or(0))
    }
}

/// Whether a change alters someone's access: it names its subject, or grants a module (which
/// alters a collaborator's). See [`Engine::changes_about`].
fn alters_access(c: &Change) -> bool {
    c.subject.is_some() || c.kind == Kind::ModuleGrant
}

/// Whether committing `writes` can change who may do what in the event.
fn changes_access(writes: &[Write]) -> bool {
    writes.iter().any(|w| w.kind.changes_access())
}
