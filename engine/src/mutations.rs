//! Client mutations pushed over the sync socket, applied through the very operations the
//! HTTP API uses, so every rule and access check is the same.

use std::collections::HashMap;

use serde_json::Value;

use crate::{
    Engine, Error, Result,
    changes::{Applied, Origin, applied_key},
    hlc::Hlc,
    kind::Kind,
    plan::{self, Facts, Planned, Write},
    protocol::{Mutation, MutationResult},
    write::{DbFacts, JUDGED_ATTEMPTS_MAX, Overlay, judged_meanwhile},
};

/// Longest accepted mutation id.
pub const MUTATION_ID_LEN_MAX: usize = 64;

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

/// Plans one pushed mutation with the planners the HTTP API and the device use.
async fn plan_push(f: &impl Facts, m: &Mutation) -> Result<Planned<(String, Value)>> {
    plan::mutation(f, plan::Side::Server, &m.kind, m.op, m.record.as_deref(), &m.fields).await
}

/// Whether `m` makes a field record judged with the others of its event.
fn judged(m: &Mutation) -> bool {
    Kind::parse(&m.kind).is_some_and(|k| k.info().judged)
}

/// Marks `writes` as one client mutation's: each carries its origin, the last its
/// `applied` key, created in the commit's transaction (which throws if it exists).
fn attribute(writes: &mut [Write], event: &str, actor: &str, origin: &Origin) {
    for w in writes.iter_mut() {
        w.origin = Some(origin.clone());
    }
    if let Some(last) = writes.last_mut() {
        last.applied = Some(applied_key(event, actor, origin));
    }
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
        // Field records are judged one at a time per event (see `Engine::judging`): the lock is
        // held from planning to commit, and let go before a fallback applies one by one.
        let judging = match ms.iter().any(judged) {
            true => Some(self.judging(event).await),
            false => None,
        };
        // The writer's standing, read once: nothing a device pushes changes seats or memberships.
        let standing = match ms.iter().any(|m| !done.contains_key(&m.id)) {
            true => Some(self.standing(actor, event).await),
            false => None,
        };
        let overlay = Overlay::default();
        let mut planned = Vec::with_capacity(ms.len());
        let mut taken: Vec<(usize, Write)> = Vec::new();
        let mut effects = Vec::new();
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
            let found = match &standing {
                Some(Ok(found)) => found.clone(),
                Some(Err(e)) => {
                    planned.push(Err(rejected(m, e.clone())));
                    continue;
                }
                None => unreachable!("a mutation to plan means the standing was read"),
            };
            let f = DbFacts::new(self, found, device, hlc.as_ref(), Some(&overlay));
            match plan_push(&f, m).await {
                Ok(p) => {
                    overlay.lay(&p.writes);
                    let mut writes = p.writes;
                    attribute(&mut writes, event, actor, &origin(m));
                    taken.extend(writes.into_iter().map(|w| (index, w)));
                    effects.extend(p.effects);
                    planned.push(Ok(p.record.0));
                }
                Err(err) => planned.push(Err(rejected(m, err))),
            }
        }
        let (indexes, writes): (Vec<usize>, Vec<Write>) = taken.into_iter().unzip();
        let mut seqs = vec![0; ms.len()];
        if !writes.is_empty() {
            match self.commit_writes_on(event, None, writes).await {
                Ok(entries) => {
                    debug_assert_eq!(entries.len(), indexes.len(), "one entry per planned write");
                    for (i, e) in indexes.iter().zip(entries) {
                        seqs[*i] = seqs[*i].max(e.seq);
                    }
                }
                Err(e) => {
                    drop(judging);
                    tracing::info!(error = ?e, "a batch could not commit whole; applying its mutations one by one");
                    let mut out = Vec::with_capacity(ms.len());
                    for m in ms {
                        out.push(self.apply_mutation(actor, event, device, m).await);
                    }
                    return out;
                }
            }
        }
        drop(judging);
        if let Err(e) = self.after_commit(effects).await {
            tracing::warn!(error = ?e, "a committed batch's follow-up failed");
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
        let origin = Origin { device: device.into(), mutation: m.id.clone() };
        let applied = async {
            let mut attempts = 0;
            loop {
                let judging = match judged(m) {
                    true => Some(self.judging(event).await),
                    false => None,
                };
                let found = self.standing_for_write(actor, event).await?;
                let f = DbFacts::new(self, found, device, hlc.as_ref(), None);
                let p = plan_push(&f, m).await?;
                let mut writes = p.writes;
                attribute(&mut writes, event, actor, &origin);
                let entries = match self.commit_on(event, f.event().basis.clone(), writes).await {
                    // Another judgement of the same subject committed first (on any node):
                    // plan again on what it left.
                    Err(e) if judged_meanwhile(&e) && attempts < JUDGED_ATTEMPTS_MAX => {
                        attempts += 1;
                        continue;
                    }
                    other => other?,
                };
                drop(judging);
                self.after_commit(p.effects).await?;
                return Ok::<_, Error>((p.record.0, entries.last().map_or(0, |e| e.seq)));
            }
        };
        match applied.await {
            Ok((record, seq)) => MutationResult::Accepted { mutation: m.id.clone(), record, seq },
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
}
