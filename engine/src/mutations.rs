//! Client mutations pushed over the sync socket, applied through the very operations the
//! HTTP API uses, so every rule and access check is the same.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    ActivityPatch, AdvancePatch, Engine, Error, NewActivity, NewAdvance, NewFile, NewScan, NewTask, Result, TaskPatch,
    access::Standing,
    changes::{Applied, Origin, Write, applied_key},
    hlc::Hlc,
    model::{Collaborator, Event},
    protocol::{Mutation, MutationOp, MutationResult},
};

/// A standing read once for a batch: (actor, event, what was read).
type KeptStanding = (String, String, (Event, Standing));

/// The writes planned by a batch of mutations, and what they make the records look like, so
/// that a later mutation of the batch sees an earlier one's effect before anything commits.
#[derive(Default)]
pub(crate) struct Batch {
    writes: Mutex<Vec<(usize, Write)>>,
    overlay: Mutex<HashMap<(String, String), Option<Value>>>,
    standing: Mutex<Option<KeptStanding>>,
    collaborators: Mutex<HashMap<(String, String), Option<Collaborator>>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batch")
    }
}

impl Batch {
    pub(crate) fn collect(&self, index: usize, writes: Vec<Write>) {
        let mut overlay = self.overlay.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        for w in writes {
            let (key, after) = w.planned();
            overlay.insert(key, after);
            all.push((index, w));
        }
    }

    /// `Some(record or None if deleted)` when the batch has planned a write to it.
    pub(crate) fn planned(&self, kind: &str, id: &str) -> Option<Option<Value>> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner()).get(&(kind.to_string(), id.to_string())).cloned()
    }

    /// Every record of `kind` the batch has planned to write: its id and what it will be
    /// (None: deleted).
    pub(crate) fn planned_of(&self, kind: &str) -> Vec<(String, Option<Value>)> {
        let overlay = self.overlay.lock().unwrap_or_else(|e| e.into_inner());
        overlay.iter().filter(|((k, _), _)| k == kind).map(|((_, id), v)| (id.clone(), v.clone())).collect()
    }

    pub(crate) fn standing(&self, actor: &str, event: &str) -> Option<(Event, Standing)> {
        let s = self.standing.lock().unwrap_or_else(|e| e.into_inner());
        s.as_ref().filter(|(a, e, _)| a == actor && e == event).map(|(_, _, found)| found.clone())
    }

    pub(crate) fn keep_standing(&self, actor: &str, event: &str, found: (Event, Standing)) {
        *self.standing.lock().unwrap_or_else(|e| e.into_inner()) = Some((actor.into(), event.into(), found));
    }

    pub(crate) fn collaborator(&self, event: &str, id: &str) -> Option<Option<Collaborator>> {
        let c = self.collaborators.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&(event.to_string(), id.to_string())).cloned()
    }

    pub(crate) fn keep_collaborator(&self, event: &str, id: &str, found: Option<Collaborator>) {
        let mut c = self.collaborators.lock().unwrap_or_else(|e| e.into_inner());
        c.insert((event.to_string(), id.to_string()), found);
    }

    fn take(&self) -> Vec<(usize, Write)> {
        std::mem::take(&mut *self.writes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Longest accepted mutation id.
pub const MUTATION_ID_LEN_MAX: usize = 64;

fn fields<T: DeserializeOwned>(m: &Mutation) -> Result<T> {
    let v = if m.fields.is_null() { Value::Object(Default::default()) } else { m.fields.clone() };
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("fields do not fit a {} {:?}: {e}", m.kind, m.op)))
}

/// The answer to a mutation applied before: the same acceptance as the first time.
fn accepted_before(a: &Applied) -> MutationResult {
    MutationResult::Accepted { mutation: a.mutation.clone(), record: a.record.clone(), seq: a.seq }
}

/// The checks every mutation passes before it is planned: its id, and its stamp if any.
fn check(m: &Mutation) -> std::result::Result<Option<Hlc>, MutationResult> {
    if let Some(refusal) = refuse_id(m) {
        return Err(refusal);
    }
    m.hlc.as_deref().map(Hlc::parse).transpose().map_err(|e| rejected(m, e))
}

fn refuse_id(m: &Mutation) -> Option<MutationResult> {
    (m.id.is_empty() || m.id.len() > MUTATION_ID_LEN_MAX).then(|| MutationResult::Rejected {
        mutation: m.id.chars().take(MUTATION_ID_LEN_MAX).collect(),
        code: "invalid_input".into(),
        message: format!("a mutation id is 1 to {MUTATION_ID_LEN_MAX} characters"),
    })
}

fn rejected(m: &Mutation, err: Error) -> MutationResult {
    if let Error::Internal(detail) = &err {
        tracing::error!(%detail, "mutation failed");
    }
    MutationResult::Rejected { mutation: m.id.clone(), code: err.code().into(), message: err.to_string() }
}

fn target(m: &Mutation) -> Result<&str> {
    m.record.as_deref().ok_or_else(|| Error::invalid("record is required to update or delete"))
}

impl Engine {
    /// Applies a batch of one device's mutations in order, committing all accepted ones in
    /// ONE transaction (group commit): mutations are planned one after another — each sees
    /// the effects of the earlier ones — and a refused mutation simply contributes nothing.
    /// If the batch cannot commit whole (a concurrent change got in the way), its mutations
    /// are applied one by one instead, so each still gets its own answer.
    ///
    /// Each mutation is applied at most once: the commit records it by event, account,
    /// device and mutation id, and a mutation found recorded (a retry after a lost answer)
    /// is answered as it was accepted the first time, changing nothing.
    pub async fn apply_mutations(
        &self,
        actor: &str,
        event: &str,
        device: &str,
        ms: &[Mutation],
    ) -> Vec<MutationResult> {
        let origin = |m: &Mutation| Origin { device: device.into(), mutation: m.id.clone() };
        let done = match self.applied(event, actor, device, ms).await {
            Ok(done) => done,
            Err(e) => return ms.iter().map(|m| rejected(m, e.clone())).collect(),
        };
        // Scans and punches are judged one at a time per event (see `Engine::field_lock`): the
        // lock is held from planning to commit, and let go before a fallback applies one by one.
        let scan_lock =
            ms.iter().any(|m| matches!(m.kind.as_str(), "scan" | "punch" | "custody")).then(|| self.field_lock(event));
        let scans_held = match &scan_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let batch = Arc::new(Batch::default());
        let mut planned = Vec::with_capacity(ms.len());
        for (index, m) in ms.iter().enumerate() {
            if let Some(a) = done.get(&m.id) {
                planned.push(Err(accepted_before(a)));
                continue;
            }
            let hlc = match check(m) {
                Ok(hlc) => hlc,
                Err(refusal) => {
                    planned.push(Err(refusal));
                    continue;
                }
            };
            let e = Engine { batch: Some(batch.clone()), ..self.for_mutation(actor, origin(m), hlc, index) };
            planned.push(e.dispatch(actor, event, m).await.map_err(|err| rejected(m, err)));
        }
        let mut taken = batch.take();
        // The last write of each mutation records it as applied.
        for i in 0..taken.len() {
            if taken.get(i + 1).is_none_or(|(next, _)| *next != taken[i].0) {
                let m = &ms[taken[i].0];
                taken[i].1.mark_applied(applied_key(event, actor, &origin(m)));
            }
        }
        let (indexes, writes): (Vec<usize>, Vec<Write>) = taken.into_iter().unzip();
        let mut seqs = vec![0; ms.len()];
        if !writes.is_empty() {
            match self.commit_writes_on(event, None, writes).await {
                Ok(entries) => {
                    for (i, e) in indexes.iter().zip(entries) {
                        seqs[*i] = seqs[*i].max(e.seq);
                    }
                }
                Err(e) => {
                    drop(scans_held);
                    tracing::info!(error = ?e, "a batch could not commit whole; applying its mutations one by one");
                    let mut out = Vec::with_capacity(ms.len());
                    for m in ms {
                        out.push(self.apply_mutation(actor, event, device, m).await);
                    }
                    return out;
                }
            }
        }
        planned
            .into_iter()
            .zip(ms)
            .zip(seqs)
            .map(|((p, m), seq)| match p {
                Ok(record) => MutationResult::Accepted { mutation: m.id.clone(), record, seq },
                Err(r) => r,
            })
            .collect()
    }

    /// Applies one mutation of `actor`'s device and answers it, at most once (see
    /// [`Engine::apply_mutations`]). A refusal carries the engine's code and sentence, which
    /// never reveal what the actor may not see.
    pub async fn apply_mutation(&self, actor: &str, event: &str, device: &str, m: &Mutation) -> MutationResult {
        let hlc = match check(m) {
            Ok(hlc) => hlc,
            Err(refusal) => return refusal,
        };
        // A failed lookup is not fatal: the commit itself refuses a second application.
        if let Ok(Some(a)) = self.applied_one(event, actor, device, m).await {
            return accepted_before(&a);
        }
        let e = self.for_mutation(actor, Origin { device: device.into(), mutation: m.id.clone() }, hlc, 0);
        match e.dispatch(actor, event, m).await {
            Ok(record) => MutationResult::Accepted { mutation: m.id.clone(), record, seq: e.last_seq() },
            // Applied meanwhile through another connection of the device.
            Err(err @ Error::Conflict { code: "already_applied", .. }) => {
                match self.applied_one(event, actor, device, m).await {
                    Ok(Some(a)) => accepted_before(&a),
                    Ok(None) => rejected(m, err),
                    Err(lookup) => rejected(m, lookup),
                }
            }
            Err(err) => rejected(m, err),
        }
    }

    async fn applied_one(&self, event: &str, actor: &str, device: &str, m: &Mutation) -> Result<Option<Applied>> {
        Ok(self.applied(event, actor, device, std::slice::from_ref(m)).await?.remove(&m.id))
    }

    /// Which of `ms` were applied before, by mutation id.
    async fn applied(
        &self,
        event: &str,
        actor: &str,
        device: &str,
        ms: &[Mutation],
    ) -> Result<HashMap<String, Applied>> {
        let keys: Vec<Value> = ms
            .iter()
            .filter(|m| refuse_id(m).is_none())
            .map(|m| applied_key(event, actor, &Origin { device: device.into(), mutation: m.id.clone() }))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let found: Vec<Applied> = self
            .store
            .run(
                "SELECT id[3] AS mutation, record, seq FROM $keys.map(|$k| type::record('applied', $k))",
                serde_json::json!({ "keys": keys }),
            )
            .await?
            .all(0)?;
        Ok(found.into_iter().map(|a| (a.mutation.clone(), a)).collect())
    }

    async fn dispatch(&self, actor: &str, event: &str, m: &Mutation) -> Result<String> {
        let with_id = |mut v: Value| {
            if let (Some(r), Some(o)) = (&m.record, v.as_object_mut()) {
                o.insert("id".into(), Value::String(r.clone()));
            }
            v
        };
        let create = Mutation { fields: with_id(m.fields.clone()), ..m.clone() };
        match (m.kind.as_str(), m.op) {
            ("task", MutationOp::Create) => Ok(self.create_task(actor, event, fields::<NewTask>(&create)?).await?.id),
            ("task", MutationOp::Update) => {
                Ok(self.update_task(actor, event, target(m)?, fields::<TaskPatch>(m)?).await?.id)
            }
            ("task", MutationOp::Delete) => {
                self.delete_task(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("activity", MutationOp::Create) => {
                Ok(self.create_activity(actor, event, fields::<NewActivity>(&create)?).await?.id)
            }
            ("activity", MutationOp::Update) => {
                Ok(self.update_activity(actor, event, target(m)?, fields::<ActivityPatch>(m)?).await?.id)
            }
            ("activity", MutationOp::Delete) => {
                self.delete_activity(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("file_meta", MutationOp::Create) => Ok(self.add_file(actor, event, fields::<NewFile>(&create)?).await?.id),
            ("file_meta", MutationOp::Delete) => {
                self.delete_file(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("advance", MutationOp::Create) => {
                Ok(self.create_advance(actor, event, fields::<NewAdvance>(&create)?).await?.id)
            }
            ("advance", MutationOp::Update) => {
                Ok(self.update_advance(actor, event, target(m)?, fields::<AdvancePatch>(m)?).await?.id)
            }
            ("advance", MutationOp::Delete) => {
                self.delete_advance(actor, event, target(m)?).await.map(|()| target(m).unwrap_or_default().into())
            }
            ("scan", MutationOp::Create) => Ok(self.record_scan(actor, event, fields::<NewScan>(&create)?).await?.id),
            ("custody", MutationOp::Create) => {
                Ok(self.record_custody(actor, event, fields::<crate::assets::NewMove>(&create)?).await?.id)
            }
            ("punch", MutationOp::Create) => {
                Ok(self.record_punch(actor, event, fields::<crate::labor::NewPunch>(&create)?).await?.id)
            }
            (kind, op) => Err(Error::invalid(format!("{op:?} of {kind} is not a mutation this server takes"))),
        }
    }
}
