//! The server's side of the one write path: the [`Facts`] a planner asks, answered from
//! SurrealDB, and the commit of what it planned.
//!
//! An HTTP write is `facts → plan → commit_plan`: its facts come from the write path's
//! access cache (the commit checks the event's access version, see [`crate::cache`]). A
//! pushed batch ([`crate::mutations`]) plans every mutation on facts with an [`Overlay`] of
//! the batch's earlier writes, then commits them all at once. Which of the two a write is
//! shows in its facts, never in the engine handle.

use std::{collections::HashMap, sync::Mutex};

use serde_json::{Value, json};

use crate::{
    Engine, Result,
    access::Standing,
    changes::Change,
    hlc::Hlc,
    kind::Kind,
    model::Event,
    plan::{Effect, Facts, FinishedUpload, Planned, Write},
    time,
};

/// The records a pushed batch has planned so far, and the collaborators it looked up: later
/// mutations of the batch see the earlier ones' effects before anything commits.
#[derive(Default)]
pub(crate) struct Overlay {
    records: Mutex<HashMap<(Kind, String), Option<Value>>>,
    /// The stored records the batch's mutations name, read for the whole batch at once
    /// ([`Engine::prefetch`]): none where absent.
    stored: Mutex<HashMap<(Kind, String), Option<Value>>>,
    collaborators: Mutex<HashMap<String, bool>>,
    /// Judgements the batch has planned, by subject: the commit counts them in order.
    judged: Mutex<HashMap<String, i64>>,
}

impl Overlay {
    /// Lays planned writes over what the batch sees.
    pub(crate) fn lay(&self, writes: &[Write]) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        for w in writes {
            records.insert((w.kind(), w.id().to_string()), w.after());
            for j in w.judged.iter().filter(|j| j.counts) {
                *judged.entry(j.key.clone()).or_default() += 1;
            }
        }
    }

    fn judged(&self, key: &str) -> i64 {
        self.judged.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }

    /// Keeps what a batch read of the stored records found.
    pub(crate) fn keep_stored(&self, found: HashMap<(Kind, String), Option<Value>>) {
        self.stored.lock().unwrap_or_else(|e| e.into_inner()).extend(found);
    }

    fn stored(&self, kind: Kind, id: &str) -> Option<Option<Value>> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner()).get(&(kind, id.to_string())).cloned()
    }

    fn planned(&self, kind: Kind, id: &str) -> Option<Option<Value>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).get(&(kind, id.to_string())).cloned()
    }

    fn planned_of(&self, kind: Kind) -> Vec<(String, Option<Value>)> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.iter().filter(|((k, _), _)| *k == kind).map(|((_, id), v)| (id.clone(), v.clone())).collect()
    }
}

/// How many times a judged write is planned again when other judgements of its subject keep
/// committing first; past it the caller hears `judged_meanwhile` and may retry.
pub(crate) const JUDGED_ATTEMPTS_MAX: usize = 8;

/// Whether a commit failed because its subject was judged by another write since planning.
pub(crate) fn judged_meanwhile(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Conflict { code: "judged_meanwhile", .. })
}

/// Plans (`$plan`, an expression over the facts `$f`) and commits a write judged on a
/// subject's records — a scan, a punch, a custody move — planning again on fresh facts while
/// another judgement of the same subject commits first, on this node or another: the
/// commit's own check decides, never a lock. (A macro: a closure over borrowed facts would
/// not be `Send` for every lifetime, which axum's handlers need.)
macro_rules! judged {
    ($engine:expr, $actor:expr, $event:expr, |$f:ident| $plan:expr) => {{
        let mut attempts = 0;
        loop {
            let $f = $engine.facts($actor, $event).await?;
            // Within this node, one judgement at a time per event: fewer plans to redo.
            let held = $engine.judging(&$crate::plan::Facts::event(&$f).id).await;
            let p = $plan?;
            let committed = $engine.commit_record(&$f, p).await;
            drop(held);
            match committed {
                Err(e) if $crate::write::judged_meanwhile(&e) && attempts < $crate::write::JUDGED_ATTEMPTS_MAX => {
                    attempts += 1
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use judged;

/// Facts of one write, from the database.
pub(crate) struct DbFacts<'a> {
    engine: &'a Engine,
    ev: Event,
    standing: Standing,
    device: String,
    stamp: String,
    now: String,
    /// A batch's earlier writes (None: a write on its own).
    overlay: Option<&'a Overlay>,
}

impl<'a> DbFacts<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        (ev, standing): (Event, Standing),
        device: &str,
        hlc: Option<&Hlc>,
        overlay: Option<&'a Overlay>,
    ) -> DbFacts<'a> {
        DbFacts { engine, ev, standing, device: device.into(), stamp: engine.stamp(hlc), now: time::now(), overlay }
    }
}

impl Facts for DbFacts<'_> {
    fn event(&self) -> &Event {
        &self.ev
    }

    fn standing(&self) -> &Standing {
        &self.standing
    }

    fn device(&self) -> &str {
        &self.device
    }

    fn stamp(&self) -> &str {
        &self.stamp
    }

    fn now(&self) -> &str {
        &self.now
    }

    async fn record(&self, kind: Kind, id: &str) -> Result<Option<Value>> {
        if let Some(planned) = self.overlay.and_then(|o| o.planned(kind, id)) {
            return Ok(planned.filter(|v| v.get("event").and_then(Value::as_str) == Some(self.ev.id.as_str())));
        }
        if let Some(stored) = self.overlay.and_then(|o| o.stored(kind, id)) {
            return Ok(stored);
        }
        self.engine.load(kind, &self.ev.id, id).await
    }

    async fn records_where(&self, kind: Kind, field: &'static str, value: &str) -> Result<Vec<Value>> {
        let mut rows: std::collections::BTreeMap<String, Value> = self
            .engine
            .records_where::<Value>(kind, &self.ev.id, field, value)
            .await?
            .into_iter()
            .map(|v| (v["id"].as_str().unwrap_or_default().to_string(), v))
            .collect();
        for (id, v) in self.overlay.map(|o| o.planned_of(kind)).unwrap_or_default() {
            match v {
                Some(v) if v["event"] == self.ev.id.as_str() && v[field] == value => {
                    rows.insert(id, v);
                }
                Some(_) => {}
                None => {
                    rows.remove(&id);
                }
            }
        }
        Ok(rows.into_values().collect())
    }

    async fn collaborator_exists(&self, id: &str) -> Result<bool> {
        let engine = self.engine;
        // Facts kept at the version of the writer's standing are checked again by the commit.
        if let Some(b) = &self.ev.basis {
            if let Some(exists) = engine.shared.access.collaborator(&self.ev.id, b.version, id) {
                return Ok(exists);
            }
            let exists = engine.collaborator(&self.ev.id, id).await?.is_some();
            engine.shared.access.keep_collaborator(&self.ev.id, b.version, id, exists);
            return Ok(exists);
        }
        // A batch looks each collaborator up once: no mutation creates one.
        if let Some(o) = self.overlay {
            if let Some(exists) = o.collaborators.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
                return Ok(*exists);
            }
            let exists = engine.collaborator(&self.ev.id, id).await?.is_some();
            o.collaborators.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), exists);
            return Ok(exists);
        }
        Ok(engine.collaborator(&self.ev.id, id).await?.is_some())
    }

    async fn account_exists(&self, id: &str) -> Result<Option<bool>> {
        Ok(Some(self.engine.account(id).await?.is_some()))
    }

    async fn judgement(&self, key: &str) -> Result<i64> {
        let committed = self.engine.judgement(&self.ev.id, key).await?;
        Ok(committed + self.overlay.map_or(0, |o| o.judged(key)))
    }

    async fn finished_upload(&self, id: &str) -> Result<Option<FinishedUpload>> {
        let up = self.engine.finished_upload(&self.ev.id, &self.standing.person, id).await?;
        Ok(Some(FinishedUpload {
            id: up.id,
            size: up.size,
            sha256: up.sha256,
            media_type: up.media_type.or(up.processed.media_type),
            preview: up.processed.preview,
        }))
    }
}

impl Engine {
    /// The facts of `actor`'s write in `event` through the HTTP API: their standing from the
    /// write path's access cache.
    pub(crate) async fn facts(&self, actor: &str, event: &str) -> Result<DbFacts<'_>> {
        let found = self.standing_for_write(actor, event).await?;
        Ok(DbFacts::new(self, found, "server", None, None))
    }

    /// Commits a plan decided on `f` (checked against the access version its standing was
    /// read at), then does what follows the commit. Returns the record and the entries.
    pub(crate) async fn commit_plan<T>(&self, f: &DbFacts<'_>, p: Planned<T>) -> Result<(T, Vec<Change>)> {
        if p.writes.is_empty() && p.effects.is_empty() {
            return Ok((p.record, Vec::new()));
        }
        let entries = self.commit_as(&f.ev, p.writes).await?;
        self.after_commit(p.effects).await?;
        Ok((p.record, entries))
    }

    /// [`Engine::commit_plan`], answering the record.
    pub(crate) async fn commit_record<T>(&self, f: &DbFacts<'_>, p: Planned<T>) -> Result<T> {
        Ok(self.commit_plan(f, p).await?.0)
    }

    /// What follows a committed plan.
    pub(crate) async fn after_commit(&self, effects: Vec<Effect>) -> Result<()> {
        for e in effects {
            match e {
                Effect::UploadAdded(id) => self.upload_added(&id).await?,
            }
        }
        Ok(())
    }

    /// How many judgements of the subject `key` in `event` have been committed (see
    /// [`Facts::judgement`]).
    pub(crate) async fn judgement(&self, event: &str, key: &str) -> Result<i64> {
        let n: Option<Option<i64>> = self
            .store
            .run("SELECT VALUE n FROM type::record('judged', [$e, $k])", json!({ "e": event, "k": key }))
            .await?
            .value(0)?;
        Ok(n.flatten().unwrap_or(0))
    }

    /// The lock under which this process judges the field records of `event` that are built
    /// from others (scan flags, timecards, custody flags), held from planning to commit. It
    /// spares this node plans that would be redone; correctness does not rest on it: a
    /// judged write commits only if its subject's judgement has not moved (see
    /// [`Write::judged_on`]), whichever node judged first.
    pub(crate) async fn judging(&self, event: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.shared.field_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(event.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// A record of `kind` in `event` as stored (None: none, or of another event).
    pub(crate) async fn load<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        event: &str,
        id: &str,
    ) -> Result<Option<T>> {
        self.store
            .run(
                "SELECT *, record::id(id) AS id FROM type::record($tb, $id) WHERE event = $e",
                json!({ "tb": kind.as_str(), "id": id, "e": event }),
            )
            .await?
            .first(0)
    }

    /// The stored records of `event` among `wanted`, read in one request (one statement per
    /// kind): what a pushed batch's planners will ask for one by one. Absent ones are `None`.
    pub(crate) async fn prefetch(
        &self,
        event: &str,
        wanted: &[(Kind, String)],
    ) -> Result<HashMap<(Kind, String), Option<Value>>> {
        let mut by_kind: std::collections::BTreeMap<&'static str, (Kind, Vec<&str>)> = Default::default();
        for (k, id) in wanted {
            by_kind.entry(k.as_str()).or_insert_with(|| (*k, Vec::new())).1.push(id);
        }
        let mut out: HashMap<(Kind, String), Option<Value>> =
            wanted.iter().map(|(k, id)| ((*k, id.clone()), None)).collect();
        if by_kind.is_empty() {
            return Ok(out);
        }
        let mut sql = String::new();
        let mut vars = serde_json::Map::new();
        vars.insert("e".into(), json!(event));
        for (i, (table, (_, ids))) in by_kind.iter().enumerate() {
            sql.push_str(&format!(
                "SELECT *, record::id(id) AS id FROM $ids{i}.map(|$k| type::record('{table}', $k)) WHERE event = $e;\n"
            ));
            vars.insert(format!("ids{i}"), json!(ids));
        }
        let mut rows = self.store.run(&sql, Value::Object(vars)).await?;
        for (i, (kind, _)) in by_kind.values().enumerate() {
            for v in rows.all::<Value>(i)? {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    out.insert((*kind, id.to_string()), Some(v.clone()));
                }
            }
        }
        Ok(out)
    }

    /// The records of `kind` in `event` whose `field` is `value`, as stored.
    pub(crate) async fn records_where<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        event: &str,
        field: &'static str,
        value: &str,
    ) -> Result<Vec<T>> {
        self.store
            .run(
                &format!("SELECT *, record::id(id) AS id FROM type::table($tb) WHERE event = $e AND {field} = $v"),
                json!({ "tb": kind.as_str(), "e": event, "v": value }),
            )
            .await?
            .all(0)
    }
}
