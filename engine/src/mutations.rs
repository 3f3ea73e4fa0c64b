//! Client mutations pushed over the sync socket, applied through the very operations the
//! HTTP API uses, so every rule and access check is the same.
//!
//! Each mutation is applied at most once. A device numbers its mutations (`n`, protocol 2):
//! the commit that applies some of them moves the device's mark for the event (one record per
//! device, account and event: the highest `n` applied, and the head it left) and records the
//! refusals among them. A mutation at or below the mark is a retry whose answer was lost, and
//! is answered from those records without being planned again. A mutation without `n`
//! (protocol 1) is remembered by a record of its own, as before.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Engine, Error, Result,
    changes::{Applied, Origin, applied_key},
    hlc::Hlc,
    kind::Kind,
    plan::{self, Facts, MarkSpec, Planned, Write},
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

/// The longest record id a mutation may name (ids the server and devices make are UUIDs).
pub const RECORD_ID_LEN_MAX: usize = 128;

fn refuse_id(m: &Mutation) -> Option<MutationResult> {
    let id = (m.id.is_empty() || m.id.chars().count() > MUTATION_ID_LEN_MAX)
        .then(|| format!("a mutation id is 1 to {MUTATION_ID_LEN_MAX} characters"));
    let n = (m.n == Some(0) || m.n.is_some_and(|n| n > i64::MAX as u64))
        .then(|| "a mutation's n is a counter from 1 to 2^63 - 1".to_string());
    // The store takes no empty record id: named here, it is the input's fault, not the
    // server's (found by `tests/it/fuzz.rs`).
    let record = m
        .record
        .as_deref()
        .is_some_and(|r| r.is_empty() || r.chars().count() > RECORD_ID_LEN_MAX)
        .then(|| format!("a record id is 1 to {RECORD_ID_LEN_MAX} characters"));
    id.or(n).or(record).map(|message| MutationResult::Rejected {
        mutation: m.id.chars().take(MUTATION_ID_LEN_MAX).collect(),
        code: "invalid_input".into(),
        message,
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

/// A numbered mutation refused when it was planned, recorded with the commit that moves the
/// device's mark past it, so a retry hears the same refusal.
#[derive(Clone, Debug)]
struct Refusal {
    n: u64,
    code: String,
    message: String,
}

impl Refusal {
    fn of(m: &Mutation, r: &MutationResult) -> Option<Refusal> {
        match (m.n, r) {
            (Some(n), MutationResult::Rejected { code, message, .. }) => {
                Some(Refusal { n, code: code.clone(), message: message.clone() })
            }
            _ => None,
        }
    }
}

/// The key of a device's mark for an event: one per event, account and device.
fn mark_key(event: &str, actor: &str, device: &str) -> Value {
    json!([event, actor, device])
}

/// What the commit records to remember the numbered mutations `lo..=hi` of one device (and
/// the refusals among them): the mark moves to `hi`, and the commit fails with
/// `already_applied` if the mark had reached `lo` meanwhile.
fn mark_of(event: &str, actor: &str, device: &str, lo: u64, hi: u64, refused: &[Refusal]) -> MarkSpec {
    let key = mark_key(event, actor, device);
    let refused = refused
        .iter()
        .map(|r| json!({ "k": [event, actor, device, r.n], "code": r.code, "message": r.message }))
        .collect();
    MarkSpec { key, lo, hi, refused }
}

/// Marks `writes` as one client mutation's: each carries its origin; a mutation without a
/// counter also gets its own `applied` record on its last write, created in the commit's
/// transaction (which throws if it exists).
fn attribute(writes: &mut [Write], event: &str, actor: &str, m: &Mutation, origin: &Origin) {
    for w in writes.iter_mut() {
        w.origin = Some(origin.clone());
    }
    if m.n.is_none()
        && let Some(last) = writes.last_mut()
    {
        last.applied = Some(applied_key(event, actor, origin));
    }
}

/// What a push came to.
#[derive(Debug)]
pub struct Pushed {
    /// The answers, in order, to the push's first mutations: to all of them, unless the
    /// server failed.
    pub results: Vec<MutationResult>,
    /// The server's own failure that stopped the push (its storage full or failing): the
    /// mutations after `results` were not judged, nothing of them was applied or recorded,
    /// and the device pushes them again later. Such a failure is never an answer: a device
    /// takes a rejection as final and lets the edit go.
    pub failed: Option<Error>,
}

/// A device's mark for one event: the highest counter applied and the head its commit left,
/// and up to which counter the answers were forgotten (refusals kept past their time).
#[derive(Clone, Copy, Debug, Deserialize)]
struct Mark {
    n: u64,
    seq: i64,
    #[serde(default)]
    forgot: Option<u64>,
}

/// The answer to a retry of a mutation whose answer is no longer kept: never an acceptance,
/// which would let the edit vanish unheard.
fn expired(m: &Mutation) -> MutationResult {
    MutationResult::Rejected {
        mutation: m.id.clone(),
        code: "expired".into(),
        message: "this change was pushed long ago and its answer is no longer kept; check the record and make the change again if it is missing".into(),
    }
}

/// Ids longer than this are left to their planner (which refuses them) rather than read with
/// the batch's records.
const PREFETCH_ID_LEN_MAX: usize = 128;
impl Engine {
    /// Whose pushes to `event` `actor`'s count with, for the server's quotas: the
    /// collaborator they are a member of, or the event team (seat holders and the owning
    /// organization's managers); none when they have no standing in the event (such a push
    /// is refused whole and costs nothing).
    pub async fn push_scope(&self, actor: &str, event: &str) -> Result<Option<String>> {
        match self.standing_for_write(actor, event).await {
            Ok((ev, s)) => Ok(Some(match (&s.membership, s.seat) {
                (Some(m), false) => format!("{}|{}", ev.id, m.collaborator),
                _ => format!("{}|team", ev.id),
            })),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Applies a batch of one device's mutations in order, committing all accepted ones in
    /// ONE transaction (group commit): mutations are planned one after another — each sees
    /// the effects of the earlier ones — and a refused mutation simply contributes nothing.
    /// If the batch cannot commit whole (a concurrent change got in the way), its mutations
    /// are applied one by one instead, so each still gets its own answer.
    ///
    /// Each mutation is applied at most once (see the module's documentation): a mutation
    /// the server has seen (a retry after a lost answer) is answered as it was the first
    /// time, changing nothing.
    pub async fn apply_mutations(&self, actor: &str, event: &str, device: &str, ms: &[Mutation]) -> Pushed {
        let origin = |m: &Mutation| Origin { device: device.into(), mutation: m.id.clone() };
        let stopped = |e: Error| {
            tracing::warn!(error = ?e, "a push stopped on the server's own failure; the device pushes it again");
            Pushed { results: Vec::new(), failed: Some(e) }
        };
        let (mark, done) = match self.answered(event, actor, device, ms).await {
            Ok(found) => found,
            Err(e) => return stopped(e),
        };
        // Field records are judged one at a time per event (see `Engine::judging`): the lock is
        // held from planning to commit, and let go before a fallback applies one by one.
        let judging = match ms.iter().any(judged) {
            true => Some(self.judging(event).await),
            false => None,
        };
        // The writer's standing, read once: nothing a device pushes changes seats or memberships.
        let standing = match ms.iter().any(|m| !done.contains_key(&m.id)) {
            true => match self.standing(actor, event).await {
                Err(e) if e.is_server_side() => return stopped(e),
                found => Some(found),
            },
            false => None,
        };
        // No standing in the event at all (or no such event): every mutation is refused and
        // nothing is recorded, so pushes to events one cannot see cost no storage.
        if let Some(Err(e @ Error::NotFound { .. })) = &standing {
            drop(judging);
            let results =
                ms.iter().map(|m| done.get(&m.id).cloned().unwrap_or_else(|| rejected(m, e.clone()))).collect();
            return Pushed { results, failed: None };
        }
        let overlay = Overlay::default();
        // The records the batch names, read at once rather than one by one as each is planned.
        let named: Vec<(Kind, String)> = ms
            .iter()
            .filter(|m| !done.contains_key(&m.id))
            .filter_map(|m| Some((Kind::parse(&m.kind)?, m.record.clone()?)))
            .filter(|(_, id)| !id.trim().is_empty() && id.len() <= PREFETCH_ID_LEN_MAX)
            .collect();
        if named.len() > 1 {
            // Only a shortcut: what it cannot read (an id the store does not take) each
            // planner reads, and judges, on its own.
            match self.prefetch(event, &named).await {
                Ok(found) => overlay.keep_stored(found),
                Err(e @ (Error::DatabaseUnavailable | Error::Unavailable(_))) => return stopped(e),
                Err(e) => tracing::debug!(error = ?e, "reading a batch's records at once failed"),
            }
        }
        let mut planned: Vec<std::result::Result<String, MutationResult>> = Vec::with_capacity(ms.len());
        let mut taken: Vec<(usize, Write)> = Vec::new();
        let mut effects = Vec::new();
        // The numbered mutations this batch decides: their range and refusals.
        let mut counted: Option<(u64, u64)> = None;
        let mut refused = Vec::new();
        let mut last_n = mark.map(|k| k.n);
        let mut failed = None;
        for (index, m) in ms.iter().enumerate() {
            if let Some(answer) = done.get(&m.id) {
                planned.push(Err(answer.clone()));
                continue;
            }
            let hlc = match check(m) {
                Ok(hlc) => hlc,
                Err(refusal) => {
                    planned.push(Err(refusal));
                    continue;
                }
            };
            let counted_before = counted;
            if let Some(n) = m.n {
                if last_n.is_some_and(|last| n <= last) {
                    let message = "a push lists a device's mutations in increasing n, each above the last";
                    planned.push(Err(rejected(m, Error::invalid(message))));
                    continue;
                }
                last_n = Some(n);
                counted = Some(counted.map_or((n, n), |(lo, _)| (lo, n)));
            }
            let found = match &standing {
                Some(Ok(found)) => found.clone(),
                Some(Err(e)) => {
                    let r = rejected(m, e.clone());
                    refused.extend(Refusal::of(m, &r));
                    planned.push(Err(r));
                    continue;
                }
                None => unreachable!("a mutation to plan means the standing was read"),
            };
            let f = DbFacts::new(self, found, device, hlc.as_ref(), Some(&overlay));
            match plan_push(&f, m).await {
                Ok(p) => {
                    overlay.lay(&p.writes);
                    let mut writes = p.writes;
                    attribute(&mut writes, event, actor, m, &origin(m));
                    taken.extend(writes.into_iter().map(|w| (index, w)));
                    effects.extend(p.effects);
                    planned.push(Ok(p.record.0));
                }
                // The server's own failure: this mutation and the rest are not judged now.
                Err(err) if err.is_server_side() => {
                    counted = counted_before;
                    failed = Some(err);
                    break;
                }
                Err(err) => {
                    let r = rejected(m, err);
                    refused.extend(Refusal::of(m, &r));
                    planned.push(Err(r));
                }
            }
        }
        if let Some((lo, hi)) = counted {
            let mark = mark_of(event, actor, device, lo, hi, &refused);
            match taken.last_mut() {
                Some((_, last)) => last.mark = Some(mark),
                // Nothing to commit: the refusals are recorded on their own.
                None if !refused.is_empty() => self.record_refusals(event, mark).await,
                None => {}
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
                    return self.apply_one_by_one(actor, event, device, &ms[..planned.len()], failed).await;
                }
            }
        }
        drop(judging);
        if let Err(e) = self.after_commit(effects).await {
            tracing::warn!(error = ?e, "a committed batch's follow-up failed");
        }
        let results = planned
            .into_iter()
            .zip(ms)
            .zip(seqs)
            .map(|((p, m), seq)| match p {
                Ok(record) => MutationResult::Accepted { mutation: m.id.clone(), record, seq },
                Err(r) => r,
            })
            .collect();
        Pushed { results, failed }
    }

    /// The fallback of a batch that could not commit whole: each mutation in its own commit.
    /// A numbered mutation refused here is recorded with the next one that commits, or on its
    /// own after the last. The server's own failure stops it there (`failed` is the one that
    /// stopped the batch's planning after `ms`, if any).
    async fn apply_one_by_one(
        &self,
        actor: &str,
        event: &str,
        device: &str,
        ms: &[Mutation],
        mut failed: Option<Error>,
    ) -> Pushed {
        let mut out = Vec::with_capacity(ms.len());
        let mut unrecorded: Vec<Refusal> = Vec::new();
        for m in ms {
            let (r, fresh) = match self.apply_one(actor, event, device, m, &unrecorded).await {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::warn!(error = ?e, "a push stopped on the server's own failure; the device pushes it again");
                    failed = Some(e);
                    break;
                }
            };
            match &r {
                MutationResult::Accepted { .. } if fresh && m.n.is_some() => unrecorded.clear(),
                MutationResult::Rejected { .. } if fresh => unrecorded.extend(Refusal::of(m, &r)),
                _ => {}
            }
            out.push(r);
        }
        if let (Some(lo), Some(hi)) = (unrecorded.first().map(|r| r.n), unrecorded.last().map(|r| r.n)) {
            self.record_refusals(event, mark_of(event, actor, device, lo, hi, &unrecorded)).await;
        }
        Pushed { results: out, failed }
    }

    /// Records the refusals of a device's numbered mutations that no commit carried (none of
    /// them wrote anything): its mark moves over them, so a retry is answered as they were,
    /// not judged again. A failure is logged and leaves a retry to be judged afresh, which
    /// still applies nothing twice.
    async fn record_refusals(&self, event: &str, mark: MarkSpec) {
        const SQL: &str = concat!(
            "BEGIN TRANSACTION;
            LET $mark_seq = (SELECT VALUE n FROM type::record('event_seq', $event))[0] ?? 0;
            ",
            crate::changes::mark_statements!(),
            "
            COMMIT TRANSACTION;"
        );
        let vars = json!({
            "event": event,
            "at": crate::time::now(),
            "m": mark,
        });
        if let Err(e) = self.store.run(SQL, vars).await {
            tracing::info!(error = ?e, "refusals of a push could not be recorded; a retry is judged again");
        }
    }

    /// Applies one mutation of `actor`'s device and answers it, at most once (see
    /// [`Engine::apply_mutations`]). A refusal carries the engine's code and sentence, which
    /// never reveal what the actor may not see.
    /// The server's own failure is an error, not an answer (see [`Pushed::failed`]).
    pub async fn apply_mutation(&self, actor: &str, event: &str, device: &str, m: &Mutation) -> Result<MutationResult> {
        Ok(self.apply_one(actor, event, device, m, &[]).await?.0)
    }

    /// [`Engine::apply_mutation`], recording `unrecorded` refusals of the device's earlier
    /// numbered mutations with its commit. Also says whether the answer was decided now
    /// (false: it was answered from what an earlier commit recorded).
    async fn apply_one(
        &self,
        actor: &str,
        event: &str,
        device: &str,
        m: &Mutation,
        unrecorded: &[Refusal],
    ) -> Result<(MutationResult, bool)> {
        let hlc = match check(m) {
            Ok(hlc) => hlc,
            Err(refusal) => return Ok((refusal, true)),
        };
        // A failed lookup is not fatal: the commit itself refuses a second application.
        if let Ok(Some(a)) = self.answered_one(event, actor, device, m).await {
            return Ok((a, false));
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
                attribute(&mut writes, event, actor, m, &origin);
                if let (Some(n), Some(last)) = (m.n, writes.last_mut()) {
                    let lo = unrecorded.first().map_or(n, |r| r.n.min(n));
                    last.mark = Some(mark_of(event, actor, device, lo, n, unrecorded));
                }
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
            Ok((record, seq)) => Ok((MutationResult::Accepted { mutation: m.id.clone(), record, seq }, true)),
            // Applied meanwhile through another connection of the device.
            Err(err @ Error::Conflict { code: "already_applied", .. }) => {
                match self.answered_one(event, actor, device, m).await? {
                    Some(a) => Ok((a, false)),
                    None => Ok((rejected(m, err), true)),
                }
            }
            Err(err) if err.is_server_side() => Err(err),
            Err(err) => Ok((rejected(m, err), true)),
        }
    }

    async fn answered_one(
        &self,
        event: &str,
        actor: &str,
        device: &str,
        m: &Mutation,
    ) -> Result<Option<MutationResult>> {
        Ok(self.answered(event, actor, device, std::slice::from_ref(m)).await?.1.remove(&m.id))
    }

    /// The device's mark for `event`, and the answers to those of `ms` the server has seen
    /// before, by mutation id: numbered ones at or below the mark from the mark and its
    /// recorded refusals, the others from their own `applied` records. Before a device's
    /// first numbered commit for an event there is no mark, and its numbered mutations are
    /// looked up by id too: they may have been applied by a build of the app that did not
    /// number them.
    async fn answered(
        &self,
        event: &str,
        actor: &str,
        device: &str,
        ms: &[Mutation],
    ) -> Result<(Option<Mark>, HashMap<String, MutationResult>)> {
        let valid: Vec<&Mutation> = ms.iter().filter(|m| refuse_id(m).is_none()).collect();
        let mut answers = HashMap::new();
        if valid.is_empty() {
            return Ok((None, answers));
        }
        let mark: Option<Mark> = match valid.iter().any(|m| m.n.is_some()) {
            true => self
                .store
                .run(
                    "SELECT n, seq, forgot FROM type::record('mark', $k)",
                    json!({ "k": mark_key(event, actor, device) }),
                )
                .await?
                .first(0)?,
            false => None,
        };
        if let Some(mark) = mark {
            let seen: Vec<&Mutation> = valid.iter().copied().filter(|m| m.n.is_some_and(|n| n <= mark.n)).collect();
            if !seen.is_empty() {
                #[derive(Deserialize)]
                struct Refused {
                    n: u64,
                    code: String,
                    message: String,
                }
                let keys: Vec<Value> = seen.iter().map(|m| json!([event, actor, device, m.n])).collect();
                let refused: Vec<Refused> = self
                    .store
                    .run(
                        "SELECT id[3] AS n, code, message FROM $keys.map(|$k| type::record('refused', $k))",
                        json!({ "keys": keys }),
                    )
                    .await?
                    .all(0)?;
                let refused: HashMap<u64, Refused> = refused.into_iter().map(|r| (r.n, r)).collect();
                for m in seen {
                    let answer = match m.n.and_then(|n| refused.get(&n)) {
                        Some(r) => MutationResult::Rejected {
                            mutation: m.id.clone(),
                            code: r.code.clone(),
                            message: r.message.clone(),
                        },
                        None if m.n.is_some_and(|n| mark.forgot.is_some_and(|f| n <= f)) => expired(m),
                        None => MutationResult::Accepted {
                            mutation: m.id.clone(),
                            record: m.record.clone().unwrap_or_default(),
                            seq: mark.seq,
                        },
                    };
                    answers.insert(m.id.clone(), answer);
                }
            }
        }
        let by_id: Vec<Value> = valid
            .iter()
            .filter(|m| m.n.is_none() || mark.is_none())
            .map(|m| applied_key(event, actor, &Origin { device: device.into(), mutation: m.id.clone() }))
            .collect();
        if !by_id.is_empty() {
            let found: Vec<Applied> = self
                .store
                .run(
                    "SELECT id[3] AS mutation, record, seq FROM $keys.map(|$k| type::record('applied', $k))",
                    json!({ "keys": by_id }),
                )
                .await?
                .all(0)?;
            answers.extend(found.iter().map(|a| (a.mutation.clone(), accepted_before(a))));
        }
        Ok((mark, answers))
    }
}
