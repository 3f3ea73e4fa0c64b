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
use serde_json::{Value, json};

use crate::{Engine, Error, Result, time};

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
}

/// Who caused a change: the device and its client-generated mutation id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    pub device: String,
    pub mutation: String,
}

/// One entry of an event's change log. It carries what access needs to judge it without
/// another query: the kind, the record, and the collaborators it belonged to before and
/// after the change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub event: String,
    pub seq: i64,
    /// The record's table: `task`, `activity`, `file_meta`, `advance`, `collaborator`,
    /// `collab_member`, `seat`, `event`.
    pub kind: String,
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

#[derive(Clone)]
enum WriteOp {
    Create(Value),
    Replace(Value),
    Delete,
}

/// One record write inside a commit.
#[derive(Clone)]
pub(crate) struct Write {
    kind: &'static str,
    id: String,
    op: WriteOp,
    before: Vec<String>,
    after: Vec<String>,
    subject: Option<String>,
    origin: Option<Origin>,
}

/// A record's stored form: no `id` (it is the record key) and no nulls (absent optional
/// fields are NONE in SurrealDB).
pub(crate) fn stored<T: Serialize>(record: &T) -> Result<Value> {
    let mut v = serde_json::to_value(record)?;
    if let Some(m) = v.as_object_mut() {
        m.remove("id");
        m.retain(|_, x| !x.is_null());
    }
    Ok(v)
}

impl Write {
    /// Creates a record; fails the whole commit if the key exists.
    pub fn create<T: Serialize>(kind: &'static str, id: &str, record: &T, collaborators: Vec<String>) -> Result<Write> {
        Ok(Write {
            kind,
            id: id.into(),
            op: WriteOp::Create(stored(record)?),
            before: Vec::new(),
            after: collaborators,
            subject: None,
            origin: None,
        })
    }

    /// Replaces an existing record; fails the whole commit if it is gone.
    pub fn replace<T: Serialize>(
        kind: &'static str,
        id: &str,
        record: &T,
        before: Vec<String>,
        after: Vec<String>,
    ) -> Result<Write> {
        Ok(Write {
            kind,
            id: id.into(),
            op: WriteOp::Replace(stored(record)?),
            before,
            after,
            subject: None,
            origin: None,
        })
    }

    /// Deletes an existing record; fails the whole commit if it is gone.
    pub fn delete(kind: &'static str, id: &str, before: Vec<String>) -> Write {
        Write { kind, id: id.into(), op: WriteOp::Delete, before, after: Vec::new(), subject: None, origin: None }
    }

    /// The record key this write touches and the record after it (None: deleted).
    pub(crate) fn planned(&self) -> ((String, String), Option<Value>) {
        let after = match &self.op {
            WriteOp::Create(c) | WriteOp::Replace(c) => Some(with_id(c, &self.id)),
            WriteOp::Delete => None,
        };
        ((self.kind.to_string(), self.id.clone()), after)
    }

    /// Marks the write as changing `person`'s access to the event (a seat, a membership).
    pub fn about(mut self, person: &str) -> Write {
        self.subject = Some(person.into());
        self
    }
}

/// Commit requests waiting for one event's committer; callers wait when it is full.
const COMMIT_QUEUE_MAX: usize = 1024;

pub(crate) struct CommitRequest {
    writes: Vec<Write>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Change>>>,
}

/// The message a commit throws when a record it must change is gone.
const MISSING: &str = "backops:record_missing";

impl Engine {
    /// Applies `writes` to `event` in one transaction together with their change entries.
    /// Returns the entries, with their seqs, in order.
    /// The entries carry this handle's origin (see [`Engine::for_mutation`]). On a batch
    /// handle (see [`Engine::apply_mutations`]) the writes are collected instead, to be
    /// committed together with the rest of the batch.
    pub(crate) async fn commit(&self, event: &str, mut writes: Vec<Write>) -> Result<Vec<Change>> {
        let origin = self.origin.as_ref().map(|o| o.origin.clone());
        for w in &mut writes {
            w.origin = origin.clone();
        }
        if let Some(batch) = &self.batch {
            batch.collect(self.origin.as_ref().map_or(0, |o| o.index), writes);
            return Ok(Vec::new());
        }
        let entries = self.commit_writes(event, writes).await?;
        if let (Some(o), Some(last)) = (&self.origin, entries.last()) {
            o.last_seq.store(last.seq, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(entries)
    }

    /// Writes `writes` and their change entries in one transaction; the entries carry each
    /// write's own origin.
    ///
    /// Commits of one event go through one committer task per event (group commit): callers
    /// that arrive while a transaction is running are gathered into the next one, so the
    /// event's throughput does not stop at the disk's commit rate and writers of one process
    /// never conflict on the event's counter. If a gathered transaction fails, each caller's
    /// writes are committed on their own, so one caller's refusal is never another's.
    pub(crate) async fn commit_writes(&self, event: &str, writes: Vec<Write>) -> Result<Vec<Change>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.committer(event);
        if let Err(tokio::sync::mpsc::error::SendError(req)) = queue.send(CommitRequest { writes, reply }).await {
            return self.commit_now(event, req.writes).await;
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
        let engine = Engine { committers: Default::default(), origin: None, batch: None, ..self.clone() };
        tokio::spawn(engine.run_committer(event.to_string(), rx));
        map.insert(event.to_string(), tx.clone());
        tx
    }

    async fn run_committer(self, event: String, mut queue: tokio::sync::mpsc::Receiver<CommitRequest>) {
        while let Some(first) = queue.recv().await {
            let mut group = vec![first];
            let mut writes = group[0].writes.len();
            while writes < COMMIT_WRITES_MAX / 2 {
                match queue.try_recv() {
                    Ok(r) => {
                        writes += r.writes.len();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            if group.len() == 1 {
                let r = group.remove(0);
                let _ = r.reply.send(self.commit_now(&event, r.writes).await);
                continue;
            }
            let all: Vec<Write> = group.iter().flat_map(|r| r.writes.iter().cloned()).collect();
            match self.commit_now(&event, all).await {
                Ok(mut entries) => {
                    for r in group {
                        let rest = entries.split_off(r.writes.len().min(entries.len()));
                        let _ = r.reply.send(Ok(std::mem::replace(&mut entries, rest)));
                    }
                }
                Err(_) => {
                    for r in group {
                        let _ = r.reply.send(self.commit_now(&event, r.writes).await);
                    }
                }
            }
        }
    }

    /// One transaction: the counter, the records and their change entries.
    async fn commit_now(&self, event: &str, writes: Vec<Write>) -> Result<Vec<Change>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        if writes.len() > COMMIT_WRITES_MAX {
            return Err(Error::invalid(format!("one commit may change at most {COMMIT_WRITES_MAX} records")));
        }
        let at = time::now();
        let count = writes.len() as i64;
        let mut sql = String::from(
            "BEGIN TRANSACTION;
             LET $n = (UPSERT type::record('event_seq', $event) SET n = (n ?? 0) + $count RETURN VALUE n)[0];\n",
        );
        let mut vars = serde_json::Map::new();
        vars.insert("event".into(), json!(event));
        vars.insert("count".into(), json!(count));
        let mut entries = Vec::with_capacity(writes.len());
        for (i, w) in writes.into_iter().enumerate() {
            let (k, id, c, l) = (format!("k{i}"), format!("id{i}"), format!("c{i}"), format!("l{i}"));
            vars.insert(k.clone(), json!(w.kind));
            vars.insert(id.clone(), json!(w.id));
            let (op, data) = match w.op {
                WriteOp::Create(content) => {
                    sql.push_str(&format!("CREATE type::record(${k}, ${id}) CONTENT ${c};\n"));
                    let data = with_id(&content, &w.id);
                    vars.insert(c, content);
                    (Op::Upsert, Some(data))
                }
                WriteOp::Replace(content) => {
                    sql.push_str(&format!(
                        "IF array::len(UPDATE type::record(${k}, ${id}) CONTENT ${c}) = 0 {{ THROW '{MISSING}' }};\n"
                    ));
                    let data = with_id(&content, &w.id);
                    vars.insert(c, content);
                    (Op::Upsert, Some(data))
                }
                WriteOp::Delete => {
                    sql.push_str(&format!(
                        "IF array::len(DELETE type::record(${k}, ${id}) RETURN BEFORE) = 0 {{ THROW '{MISSING}' }};\n"
                    ));
                    (Op::Delete, None)
                }
            };
            let entry = Change {
                event: event.into(),
                seq: 0,
                kind: w.kind.into(),
                record: w.id,
                op,
                collaborators_before: w.before,
                collaborators_after: w.after,
                subject: w.subject,
                data,
                origin: w.origin,
                at: at.clone(),
            };
            let mut content = serde_json::to_value(&entry)?;
            if let Some(m) = content.as_object_mut() {
                m.remove("seq");
            }
            vars.insert(l.clone(), content);
            sql.push_str(&format!(
                "CREATE type::record('change', [$event, $n - $count + {next}]) CONTENT object::extend(${l}, {{ seq: $n - $count + {next} }});\n",
                next = i + 1
            ));
            entries.push(entry);
        }
        sql.push_str("RETURN $n;\nCOMMIT TRANSACTION;");
        let mut rows = self.store.run(&sql, Value::Object(vars)).await.map_err(|e| match e {
            Error::Internal(m) if m.contains(MISSING) => Error::not_found("record"),
            other => other,
        })?;
        let last: i64 = rows.last_value()?.ok_or_else(|| Error::Internal("commit returned no seq".into()))?;
        let first = last - count + 1;
        for (i, e) in entries.iter_mut().enumerate() {
            e.seq = first + i as i64;
        }
        // Nobody listening is fine: the feed also polls.
        let _ = self.commits.send((event.to_string(), last));
        let keep = self.config.log_retention.max(1);
        if last - self.log_floor(event).await? > keep + (keep / 10).max(1) {
            self.trim_log(event, last - keep).await?;
        }
        Ok(entries)
    }

    /// Changes of `event` after `after`, in seq order, at most `limit` (bounded by
    /// [`READ_CHANGES_MAX`]). Not access-filtered: the feed filters per client.
    pub async fn changes_since(&self, event: &str, after: i64, limit: usize) -> Result<Vec<Change>> {
        self.store
            .run(
                // A key range ([event, seq] keys sort by event, then seq): the read touches only
                // the entries it returns, however long the log of this and other events is.
                "SELECT * OMIT id FROM change:[$e, $from]..=[$e, $top] LIMIT $limit",
                json!({ "e": event, "from": after.saturating_add(1), "top": i64::MAX, "limit": limit.min(READ_CHANGES_MAX) }),
            )
            .await?
            .all(0)
    }

    /// Changes of `event` after `after` that alter `person`'s own access, in seq order.
    pub async fn changes_about(&self, event: &str, after: i64, person: &str) -> Result<Vec<Change>> {
        self.store
            .run(
                "SELECT * OMIT id FROM change:[$e, $from]..=[$e, $top] WHERE subject = $p",
                json!({ "e": event, "from": after.saturating_add(1), "top": i64::MAX, "p": person }),
            )
            .await?
            .all(0)
    }

    /// The highest seq of `event` whose entry is no longer retained (0: nothing trimmed).
    /// A cursor below it cannot be resumed.
    pub async fn log_floor(&self, event: &str) -> Result<i64> {
        Ok(self
            .store
            .run("SELECT VALUE floor FROM type::record('event_seq', $e)", json!({ "e": event }))
            .await?
            .value(0)?
            .unwrap_or(0))
    }

    /// Drops the entries of `event` up to `upto` and records the new floor.
    async fn trim_log(&self, event: &str, upto: i64) -> Result<()> {
        self.store
            .run(
                "BEGIN TRANSACTION;
                 DELETE change:[$e, 0]..=[$e, $upto];
                 UPDATE type::record('event_seq', $e) SET floor = math::max([floor ?? 0, $upto]);
                 COMMIT TRANSACTION;",
                json!({ "e": event, "upto": upto }),
            )
            .await?;
        tracing::debug!(event, upto, "change log trimmed");
        Ok(())
    }

    /// The seq of the last committed change of `event` (0 when there is none).
    pub async fn head(&self, event: &str) -> Result<i64> {
        Ok(self
            .store
            .run("SELECT VALUE n FROM type::record('event_seq', $e)", json!({ "e": event }))
            .await?
            .value(0)?
            .unwrap_or(0))
    }
}

fn with_id(content: &Value, id: &str) -> Value {
    let mut v = content.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("id".into(), json!(id));
    }
    v
}
