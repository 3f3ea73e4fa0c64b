//! Planning writes: the one place the rules of a pushable operation are written.
//!
//! An operation (create a task, answer an advance, record a scan…) is planned by ONE
//! function over a small [`Facts`] interface: what the writer's standing is, what a record
//! looks like now, whether a collaborator exists. The server answers those facts from
//! SurrealDB (with the earlier mutations of a pushed batch laid over them), the device from
//! its in-memory mirror. The planner returns a [`Planned`]: the record as the operation
//! leaves it, the [`Write`]s that make it so, and what must happen once they are committed.
//! It commits nothing: the caller does, once, with the preconditions the facts were decided
//! on (the event's access version on the server, see [`crate::cache`]; each write's own
//! existence conditions, checked by the commit's transaction).
//!
//! Architecture invariant: planning is pure. Nothing under `plan/` reaches a database, a
//! clock or the network except through [`Facts`]; the time of the edit is a fact too.

pub mod field;
pub mod labor;
pub mod tabs;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Error, Result,
    access::{Action, Decision, Standing, Target, decide, require},
    kind::Kind,
    model::{Event, Preview},
    protocol::MutationOp,
};

/// What a planner may ask about the world. Every answer is as of the writer's view: the
/// server's database with the batch's earlier writes laid over it, or the device's replica.
#[allow(async_fn_in_trait)]
pub trait Facts {
    /// The event written in.
    fn event(&self) -> &Event;
    /// The writer's standing in it.
    fn standing(&self) -> &Standing;
    /// The writer's account.
    fn actor(&self) -> &str {
        &self.standing().person
    }
    /// The device the write comes from (`server` for the HTTP API).
    fn device(&self) -> &str;
    /// The edit's hybrid logical clock stamp (per-field last-writer-wins).
    fn stamp(&self) -> &str;
    /// The time of the write, RFC 3339 UTC with milliseconds.
    fn now(&self) -> &str;
    /// A record of the event as it is now (None: there is none, or it is of another event).
    async fn record(&self, kind: Kind, id: &str) -> Result<Option<Value>>;
    /// The records of `kind` in the event whose `field` is `value` (a credential's scans).
    async fn records_where(&self, kind: Kind, field: &'static str, value: &str) -> Result<Vec<Value>>;
    /// Whether the event has the collaborator `id`.
    async fn collaborator_exists(&self, id: &str) -> Result<bool>;
    /// Whether `id` is a BackOps account; None where that cannot be known (a device).
    async fn account_exists(&self, id: &str) -> Result<Option<bool>>;
    /// The writer's finished upload of the file `id`: an error when there is none. None
    /// where uploads are not known (a device, which keeps the bytes itself).
    async fn finished_upload(&self, id: &str) -> Result<Option<FinishedUpload>>;
    /// How many judgements of the subject `key` (see [`judged_key`]) have been committed: a
    /// plan judged on the subject's records commits only if that number has not moved since
    /// (see [`Write::judged_on`]). Always 0 on a device, which judges nothing for others.
    async fn judgement(&self, key: &str) -> Result<i64>;
}

/// The subject of a judgement: the records of one credential (its scans and their flags),
/// of one person (their punches and timecards) or of one asset (its moves and their flags).
pub fn judged_key(kind: Kind, subject: &str) -> String {
    format!("{}|{subject}", kind.as_str())
}

/// The subject of the event's labor settings (its rules and locked periods): every punch
/// depends on them, and each change of them is judged on them.
pub fn labor_key(event: &str) -> String {
    judged_key(Kind::LaborRules, event)
}

/// What the server knows of a finished upload, for the file record made from it.
#[derive(Clone, Debug)]
pub struct FinishedUpload {
    pub id: String,
    pub size: i64,
    pub sha256: String,
    pub media_type: Option<String>,
    pub preview: Preview,
}

/// Who caused a change: the device and its client-generated mutation id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    pub device: String,
    pub mutation: String,
}

/// What to do once a plan's writes are committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The upload became a file record: it is no longer an open upload.
    UploadAdded(String),
}

/// A planned operation: the record as it leaves it, the writes, and what follows the commit.
#[derive(Clone, Debug)]
pub struct Planned<T> {
    pub record: T,
    pub writes: Vec<Write>,
    pub effects: Vec<Effect>,
}

impl<T> Planned<T> {
    pub fn new(record: T, writes: Vec<Write>) -> Planned<T> {
        Planned { record, writes, effects: Vec::new() }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Planned<U> {
        Planned { record: f(self.record), writes: self.writes, effects: self.effects }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WriteOp {
    Create(Value),
    Replace(Value),
    Delete,
}

/// One record write inside a commit. Its op is also its precondition: a create fails the
/// commit if the key exists, a replace or delete if the record is gone.
#[derive(Clone, Debug)]
pub struct Write {
    pub(crate) kind: Kind,
    pub(crate) id: String,
    pub(crate) op: WriteOp,
    pub(crate) before: Vec<String>,
    pub(crate) after: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) origin: Option<Origin>,
    /// Set on the last write of a client mutation: the key of its `applied` record, created
    /// in the same transaction, so the mutation can never be applied twice.
    pub(crate) applied: Option<Value>,
    /// Set on the last write of a pushed batch of numbered mutations: the device's mark moves
    /// past them in the same transaction (see `engine/src/mutations.rs`).
    pub(crate) mark: Option<MarkSpec>,
    /// The judgements this write was decided on: each subject's key and how many judgements
    /// of it had been committed. The commit fails (`judged_meanwhile`) if any of them moved,
    /// on any node, and the caller plans again on fresh facts; for those it [`Judged::counts`]
    /// it counts one more.
    pub(crate) judged: Vec<Judged>,
}

/// What a commit records of a device's numbered mutations `lo..=hi`: its mark (key
/// `[event, account, device]`) moves to `hi` — the commit fails with `already_applied` if
/// the mark had reached `lo` — and the refusals among them are recorded (`refused`, each
/// `{ k: [event, account, device, n], code, message }`).
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct MarkSpec {
    pub key: Value,
    pub lo: u64,
    pub hi: u64,
    pub refused: Vec<Value>,
}

/// A judgement a write was decided on (see [`Write::judged_on`], [`Write::checked_against`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    /// The subject (see [`judged_key`]).
    pub key: String,
    /// How many judgements of it had been committed when the write was planned.
    pub seen: i64,
    /// Whether the write is itself a judgement of the subject (counted), or only depends on
    /// it (checked: a punch depends on the labor rules it was timed with).
    pub counts: bool,
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
    fn new(kind: Kind, id: &str, op: WriteOp, before: Vec<String>, after: Vec<String>) -> Write {
        Write {
            kind,
            id: id.into(),
            op,
            before,
            after,
            subject: None,
            origin: None,
            applied: None,
            mark: None,
            judged: Vec::new(),
        }
    }

    /// Creates a record; fails the whole commit if the key exists.
    pub fn create<T: Serialize>(kind: Kind, id: &str, record: &T, owners: Vec<String>) -> Result<Write> {
        Ok(Write::new(kind, id, WriteOp::Create(stored(record)?), Vec::new(), owners))
    }

    /// Replaces an existing record; fails the whole commit if it is gone.
    pub fn replace<T: Serialize>(
        kind: Kind,
        id: &str,
        record: &T,
        before: Vec<String>,
        after: Vec<String>,
    ) -> Result<Write> {
        Ok(Write::new(kind, id, WriteOp::Replace(stored(record)?), before, after))
    }

    /// Deletes an existing record; fails the whole commit if it is gone.
    pub fn delete(kind: Kind, id: &str, before: Vec<String>) -> Write {
        Write::new(kind, id, WriteOp::Delete, before, Vec::new())
    }

    /// Marks the write as a judgement of the subject `key`, decided on its judgement `seen`
    /// (see [`Facts::judgement`]): it commits only if that is still the count, and counts one
    /// more.
    pub fn judged_on(mut self, key: &str, seen: i64) -> Write {
        self.judged.push(Judged { key: key.to_string(), seen, counts: true });
        self
    }

    /// Marks the write as depending on the judgement `seen` of the subject `key` without
    /// being one: it commits only if that is still the count.
    pub fn checked_against(mut self, key: &str, seen: i64) -> Write {
        self.judged.push(Judged { key: key.to_string(), seen, counts: false });
        self
    }

    /// Marks the write as changing `person`'s access to the event (a seat, a membership).
    pub fn about(mut self, person: &str) -> Write {
        self.subject = Some(person.into());
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The record after the write, with its id (None: deleted).
    pub fn after(&self) -> Option<Value> {
        match &self.op {
            WriteOp::Create(c) | WriteOp::Replace(c) => Some(with_id(c, &self.id)),
            WriteOp::Delete => None,
        }
    }
}

pub(crate) fn with_id(content: &Value, id: &str) -> Value {
    let mut v = content.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("id".into(), json!(id));
    }
    v
}

/// Decodes the fields of a mutation or a body into `T`; a misfit is the client's error.
pub fn fields<T: serde::de::DeserializeOwned>(kind: Kind, op: MutationOp, fields: &Value) -> Result<T> {
    let v = if fields.is_null() { json!({}) } else { fields.clone() };
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("fields do not fit a {kind} {op:?}: {e}")))
}

/// A stored record, decoded.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(data: Value) -> Result<T> {
    serde_json::from_value(data).map_err(|e| Error::Internal(format!("a stored record does not decode: {e}")))
}

/// A record of the event, decoded (None: there is none).
pub(crate) async fn load<T: serde::de::DeserializeOwned>(f: &impl Facts, kind: Kind, id: &str) -> Result<Option<T>> {
    f.record(kind, id).await?.map(typed).transpose()
}

/// The records of `kind` in the event whose `field` is `value`, decoded.
pub(crate) async fn load_where<T: serde::de::DeserializeOwned>(
    f: &impl Facts,
    kind: Kind,
    field: &'static str,
    value: &str,
) -> Result<Vec<T>> {
    f.records_where(kind, field, value).await?.into_iter().map(typed).collect()
}

/// `decide` for the writer, turned into the error they may see.
pub(crate) fn allow(f: &impl Facts, action: Action, target: Target<'_>, what: &'static str) -> Result<()> {
    require(decide(f.standing(), action, target), what)
}

/// Whether the writer is on the event team (may do setup).
pub(crate) fn team(f: &impl Facts) -> bool {
    decide(f.standing(), Action::Write, Target::Setup) == Decision::Allow
}

/// One pushed mutation, as it reaches a planner: which record, what to do, with what.
#[derive(Clone, Copy, Debug)]
pub struct Push<'a> {
    pub kind: Kind,
    pub op: MutationOp,
    /// The record to update or delete; on create, an optional client-chosen UUID.
    pub record: Option<&'a str>,
    pub fields: &'a Value,
}

impl Push<'_> {
    /// The fields of a create, with the client-chosen id among them.
    pub(crate) fn create_fields(&self) -> Value {
        let mut v = if self.fields.is_null() { json!({}) } else { self.fields.clone() };
        if let (Some(r), Some(o)) = (self.record, v.as_object_mut()) {
            o.insert("id".into(), Value::String(r.to_string()));
        }
        v
    }

    pub(crate) fn target(&self) -> Result<&str> {
        self.record.ok_or_else(|| Error::invalid("record is required to update or delete"))
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let v = if self.op == MutationOp::Create { self.create_fields() } else { self.fields.clone() };
        fields(self.kind, self.op, &v)
    }
}

/// A plan of a tab record as the push dispatch answers it: the record's id and its data
/// after (null when deleted).
pub(crate) fn as_pushed<T: Serialize>(p: Planned<T>) -> Result<Planned<(String, Value)>> {
    let v = serde_json::to_value(&p.record)?;
    let id = v.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(p.map(|_| (id, v)))
}

/// The push of a tab record (tasks, activities, files, advances): the same planners as the
/// HTTP API's, on the server and on the device alike. None: `kind` is not a tab record's.
pub async fn tab_push(f: &impl Facts, m: Push<'_>) -> Option<Result<Planned<(String, Value)>>> {
    use MutationOp::{Create, Delete, Update};
    let planned = async {
        if !m.kind.pushable(m.op) {
            return Err(m.kind.refuse(m.op));
        }
        match (m.kind, m.op) {
            (Kind::Task, Create) => as_pushed(tabs::create_task(f, m.decode()?).await?),
            (Kind::Task, Update) => as_pushed(tabs::update_task(f, m.target()?, m.decode()?).await?),
            (Kind::Task, Delete) => deleted(tabs::delete_task(f, m.target()?).await?),
            (Kind::Activity, Create) => as_pushed(tabs::create_activity(f, m.decode()?).await?),
            (Kind::Activity, Update) => as_pushed(tabs::update_activity(f, m.target()?, m.decode()?).await?),
            (Kind::Activity, Delete) => deleted(tabs::delete_activity(f, m.target()?).await?),
            (Kind::FileMeta, Create) => as_pushed(tabs::add_file(f, m.decode()?).await?),
            (Kind::FileMeta, Delete) => deleted(tabs::delete_file(f, m.target()?).await?),
            (Kind::Advance, Create) => as_pushed(tabs::create_advance(f, m.decode()?).await?),
            (Kind::Advance, Update) => as_pushed(tabs::update_advance(f, m.target()?, m.decode()?).await?),
            (Kind::Advance, Delete) => deleted(tabs::delete_advance(f, m.target()?).await?),
            (kind, op) => Err(kind.refuse(op)),
        }
    };
    match m.kind {
        Kind::Task | Kind::Activity | Kind::FileMeta | Kind::Advance => Some(planned.await),
        _ => None,
    }
}

/// Who plans a field record: the server records what a device decided, a device decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Device,
}

/// Plans one mutation of `kind` (a table name as the client sent it) on `side`: the tabs'
/// planners are the same on both sides; a field record is decided by the device and
/// recorded by the server.
pub async fn mutation(
    f: &impl Facts,
    side: Side,
    kind: &str,
    op: MutationOp,
    record: Option<&str>,
    fields: &Value,
) -> Result<Planned<(String, Value)>> {
    let Some(kind) = Kind::parse(kind) else { return Err(crate::kind::not_pushable(kind, op)) };
    let push = Push { kind, op, record, fields };
    if let Some(p) = tab_push(f, push).await {
        return p;
    }
    let field = match side {
        Side::Server => field::server_push(f, push).await,
        Side::Device => field::device_push(f, push).await,
    };
    field.unwrap_or_else(|| Err(kind.refuse(op)))
}

fn deleted(p: Planned<String>) -> Result<Planned<(String, Value)>> {
    Ok(p.map(|id| (id, Value::Null)))
}

#[cfg(test)]
mod tests;
