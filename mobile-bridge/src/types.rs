//! The records the app sees and sends: typed mirrors of the engine's, for Kotlin, Swift and
//! Python. Times are RFC 3339 text, as on the wire. Inputs turn into the fields of a pushed
//! mutation (the HTTP API's bodies); the engine checks them.

use engine::{device, model as m};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::BackOpsError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    Active,
    InReview,
    Done,
    Archived,
}

impl From<m::TaskStatus> for TaskStatus {
    fn from(s: m::TaskStatus) -> Self {
        match s {
            m::TaskStatus::Todo => TaskStatus::Todo,
            m::TaskStatus::Active => TaskStatus::Active,
            m::TaskStatus::InReview => TaskStatus::InReview,
            m::TaskStatus::Done => TaskStatus::Done,
            m::TaskStatus::Archived => TaskStatus::Archived,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum AdvanceStatus {
    NotStarted,
    NeedsReview,
    Done,
    Archived,
}

impl From<m::AdvanceStatus> for AdvanceStatus {
    fn from(s: m::AdvanceStatus) -> Self {
        match s {
            m::AdvanceStatus::NotStarted => AdvanceStatus::NotStarted,
            m::AdvanceStatus::NeedsReview => AdvanceStatus::NeedsReview,
            m::AdvanceStatus::Done => AdvanceStatus::Done,
            m::AdvanceStatus::Archived => AdvanceStatus::Archived,
        }
    }
}

/// An event the device follows, with the person's access to it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct EventInfo {
    pub id: String,
    pub org: String,
    pub name: String,
    pub default_collaborator: String,
    /// Holds an Event Pro seat: sees and edits the whole event.
    pub seat: bool,
    /// The collaborator whose five tabs the person has, if a member.
    pub collaborator: Option<String>,
    /// Sees the tabs but may not change them.
    pub read_only: bool,
}

/// A collaborator (a vendor, a department) of the event.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Collaborator {
    pub id: String,
    pub name: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Task {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    pub status: TaskStatus,
    pub assignee: Option<String>,
    pub due: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<m::Task> for Task {
    fn from(t: m::Task) -> Self {
        Task {
            id: t.id,
            event: t.event,
            collaborator: t.collaborator,
            title: t.title,
            status: t.status.into(),
            assignee: t.assignee,
            due: t.due,
            created_by: t.created_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// An entry of the Schedule tab.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Activity {
    pub id: String,
    pub event: String,
    pub title: String,
    pub starts_at: String,
    pub ends_at: String,
    pub area: Option<String>,
    pub collaborators: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<m::Activity> for Activity {
    fn from(a: m::Activity) -> Self {
        Activity {
            id: a.id,
            event: a.event,
            title: a.title,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            area: a.area,
            collaborators: a.collaborators,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An entry of the Files tab (the file's record; its bytes travel separately).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FileInfo {
    pub id: String,
    pub event: String,
    /// The folder: the collaborator the file belongs to.
    pub collaborator: String,
    pub name: String,
    pub size: i64,
    pub content_hash: String,
    pub media_type: Option<String>,
    pub uploaded_by: String,
    pub created_at: String,
    /// The sizes of its thumbnails (256, 1024), for images the server previewed.
    pub thumbnail_sizes: Vec<u32>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Why an image has no thumbnails (unsupported format, corrupt, too large).
    pub preview_note: Option<String>,
}

impl From<m::FileMeta> for FileInfo {
    fn from(f: m::FileMeta) -> Self {
        FileInfo {
            id: f.id,
            event: f.event,
            collaborator: f.collaborator,
            name: f.name,
            size: f.size,
            content_hash: f.content_hash,
            media_type: f.media_type,
            uploaded_by: f.uploaded_by,
            created_at: f.created_at,
            thumbnail_sizes: f.preview.thumbnails.keys().filter_map(|k| k.parse().ok()).collect(),
            width: f.preview.width,
            height: f.preview.height,
            preview_note: f.preview.preview_note,
        }
    }
}

/// How far the upload of one of the device's files got.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct UploadProgress {
    pub file: String,
    pub name: String,
    pub bytes_sent: u64,
    pub bytes_total: u64,
    /// Every byte is on the server (the record follows with the next push).
    pub done: bool,
    /// The last failure, while it retries.
    pub error: Option<String>,
}

impl From<engine::device::files::UploadState> for UploadProgress {
    fn from(u: engine::device::files::UploadState) -> Self {
        UploadProgress {
            file: u.file,
            name: u.name,
            bytes_sent: u.sent,
            bytes_total: u.total,
            done: u.done,
            error: u.error,
        }
    }
}

/// Bytes of file contents on the device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FileStorage {
    pub held_bytes: u64,
    pub budget_bytes: u64,
}

/// What [`crate::BackOpsClient::attach_file`] may be told of a file.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct AttachOptions {
    /// A UUID for the file (chosen here when absent).
    #[uniffi(default)]
    pub id: Option<String>,
    /// The folder; the person's own collaborator when absent.
    #[uniffi(default)]
    pub collaborator: Option<String>,
    /// The file's name; the source file's own name when absent.
    #[uniffi(default)]
    pub name: Option<String>,
    /// Recognized from the first bytes when absent (JPEG, PNG, WebP, HEIC, PDF).
    #[uniffi(default)]
    pub media_type: Option<String>,
}

/// An advance (a form a collaborator answers before the show).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Advance {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    /// The answers, a JSON object.
    pub answers_json: String,
    pub status: AdvanceStatus,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<m::Advance> for Advance {
    fn from(a: m::Advance) -> Self {
        Advance {
            id: a.id,
            event: a.event,
            collaborator: a.collaborator,
            title: a.title,
            answers_json: a.answers.to_string(),
            status: a.status.into(),
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TaskCounts {
    pub todo: i64,
    pub active: i64,
    pub in_review: i64,
    pub done: i64,
    pub archived: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AdvanceCounts {
    pub not_started: i64,
    pub needs_review: i64,
    pub done: i64,
    pub archived: i64,
}

/// The Dashboard tab of one collaborator, counted on the device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Dashboard {
    pub collaborator: String,
    pub name: String,
    pub read_only: bool,
    pub tasks: TaskCounts,
    pub activities: i64,
    pub upcoming_activities: i64,
    pub files: i64,
    pub files_bytes: i64,
    pub advances: AdvanceCounts,
}

impl From<m::Dashboard> for Dashboard {
    fn from(d: m::Dashboard) -> Self {
        let (t, a) = (d.tasks, d.advances);
        Dashboard {
            collaborator: d.collaborator,
            name: d.name,
            read_only: d.read_only,
            tasks: TaskCounts {
                todo: t.todo,
                active: t.active,
                in_review: t.in_review,
                done: t.done,
                archived: t.archived,
            },
            activities: d.activities,
            upcoming_activities: d.upcoming_activities,
            files: d.files,
            files_bytes: d.files_bytes,
            advances: AdvanceCounts {
                not_started: a.not_started,
                needs_review: a.needs_review,
                done: a.done,
                archived: a.archived,
            },
        }
    }
}

/// What the app shows about syncing.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// Connected and welcomed by the server.
    pub online: bool,
    /// Local changes the server has not answered yet.
    pub pending: u64,
    /// When the server last answered this device (RFC 3339).
    pub last_sync: Option<String>,
    /// The last thing that went wrong with the connection, in words for people.
    pub last_error: Option<String>,
}

impl From<device::SyncStatus> for SyncStatus {
    fn from(s: device::SyncStatus) -> Self {
        SyncStatus { online: s.online, pending: s.pending as u64, last_sync: s.last_sync, last_error: s.last_error }
    }
}

/// A local change the server refused; the device has rolled its record back.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Rejection {
    pub event: String,
    /// The mutation the write returned in its [`Receipt`].
    pub mutation: String,
    pub kind: String,
    pub record: String,
    /// `read_only`, `not_found`, `not_permitted`, `access_revoked`, …
    pub code: String,
    pub message: String,
    pub at: String,
}

impl From<device::Rejection> for Rejection {
    fn from(r: device::Rejection) -> Self {
        Rejection {
            event: r.event,
            mutation: r.mutation,
            kind: r.kind,
            record: r.record,
            code: r.code,
            message: r.message,
            at: r.at,
        }
    }
}

/// A local write as made: shown at once, sent when online.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Receipt {
    /// Names the change in a later [`Rejection`].
    pub mutation: String,
    /// The record written (on create: its new id).
    pub record: String,
}

// ---- inputs ----

#[derive(Clone, Debug, Serialize, uniffi::Record)]
pub struct NewTask {
    pub title: String,
    /// Defaults to the person's own collaborator (a seat holder's: the event's default).
    #[uniffi(default)]
    pub collaborator: Option<String>,
    #[uniffi(default)]
    pub status: Option<TaskStatus>,
    #[uniffi(default)]
    pub assignee: Option<String>,
    /// RFC 3339.
    #[uniffi(default)]
    pub due: Option<String>,
    /// A UUID for the new record; one is made when absent.
    #[uniffi(default)]
    pub id: Option<String>,
}

/// Fields to change; absent fields stay. `clear_*` empties an optional field.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct TaskPatch {
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub status: Option<TaskStatus>,
    /// Moves the task to another collaborator (seat holders).
    #[uniffi(default)]
    pub collaborator: Option<String>,
    #[uniffi(default)]
    pub assignee: Option<String>,
    #[uniffi(default)]
    pub clear_assignee: bool,
    #[uniffi(default)]
    pub due: Option<String>,
    #[uniffi(default)]
    pub clear_due: bool,
}

#[derive(Clone, Debug, Serialize, uniffi::Record)]
pub struct NewActivity {
    pub title: String,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    #[uniffi(default)]
    pub area: Option<String>,
    /// Defaults to the person's own collaborator.
    #[uniffi(default)]
    pub collaborators: Option<Vec<String>>,
    #[uniffi(default)]
    pub id: Option<String>,
}

#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct ActivityPatch {
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub starts_at: Option<String>,
    #[uniffi(default)]
    pub ends_at: Option<String>,
    #[uniffi(default)]
    pub area: Option<String>,
    #[uniffi(default)]
    pub clear_area: bool,
    #[uniffi(default)]
    pub collaborators: Option<Vec<String>>,
}

#[derive(Clone, Debug, uniffi::Record)]
pub struct NewAdvance {
    pub collaborator: String,
    pub title: String,
    /// A JSON object.
    #[uniffi(default)]
    pub answers_json: Option<String>,
    #[uniffi(default)]
    pub id: Option<String>,
}

/// Answering an advance: new answers (a JSON object) and/or a status.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct AdvancePatch {
    #[uniffi(default)]
    pub answers_json: Option<String>,
    #[uniffi(default)]
    pub status: Option<AdvanceStatus>,
    #[uniffi(default)]
    pub title: Option<String>,
    #[uniffi(default)]
    pub collaborator: Option<String>,
}

/// The fields of a create: the input's fields that are set.
pub(crate) fn fields(input: &impl Serialize) -> Result<Value, BackOpsError> {
    let mut v = serde_json::to_value(input).map_err(BackOpsError::storage)?;
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    Ok(v)
}

/// An advance's answers from the app's JSON text: an object, or a clear error.
pub(crate) fn answers(text: &str) -> Result<Value, BackOpsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(BackOpsError::invalid("answers must be a JSON object")),
    }
}

impl TaskPatch {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = Map::new();
        put(&mut o, "title", &self.title);
        put(&mut o, "status", &self.status);
        put(&mut o, "collaborator", &self.collaborator);
        put(&mut o, "assignee", &self.assignee);
        put(&mut o, "due", &self.due);
        clear(&mut o, "assignee", self.clear_assignee, self.assignee.is_some())?;
        clear(&mut o, "due", self.clear_due, self.due.is_some())?;
        Ok(Value::Object(o))
    }
}

impl ActivityPatch {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = Map::new();
        put(&mut o, "title", &self.title);
        put(&mut o, "starts_at", &self.starts_at);
        put(&mut o, "ends_at", &self.ends_at);
        put(&mut o, "area", &self.area);
        put(&mut o, "collaborators", &self.collaborators);
        clear(&mut o, "area", self.clear_area, self.area.is_some())?;
        Ok(Value::Object(o))
    }
}

impl NewAdvance {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = json!({ "collaborator": self.collaborator, "title": self.title });
        if let Some(a) = &self.answers_json {
            o["answers"] = answers(a)?;
        }
        if let Some(id) = &self.id {
            o["id"] = json!(id);
        }
        Ok(o)
    }
}

impl AdvancePatch {
    pub(crate) fn fields(&self) -> Result<Value, BackOpsError> {
        let mut o = Map::new();
        put(&mut o, "title", &self.title);
        put(&mut o, "collaborator", &self.collaborator);
        put(&mut o, "status", &self.status);
        if let Some(a) = &self.answers_json {
            o.insert("answers".into(), answers(a)?);
        }
        Ok(Value::Object(o))
    }
}

fn put<T: Serialize>(o: &mut Map<String, Value>, name: &str, v: &Option<T>) {
    if let Some(v) = v {
        o.insert(name.into(), json!(v));
    }
}

fn clear(o: &mut Map<String, Value>, name: &str, yes: bool, set: bool) -> Result<(), BackOpsError> {
    match (yes, set) {
        (true, true) => Err(BackOpsError::invalid(format!("{name} cannot be both set and cleared"))),
        (true, false) => {
            o.insert(name.into(), Value::Null);
            Ok(())
        }
        _ => Ok(()),
    }
}

// ---- the front gate ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Direction {
    Entry,
    Exit,
}

impl From<Direction> for m::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Entry => m::Direction::Entry,
            Direction::Exit => m::Direction::Exit,
        }
    }
}

impl From<m::Direction> for Direction {
    fn from(d: m::Direction) -> Self {
        match d {
            m::Direction::Entry => Direction::Entry,
            m::Direction::Exit => Direction::Exit,
        }
    }
}

/// What the lane decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ScanDecision {
    Admit,
    WrongZone,
    WrongDay,
    Revoked,
    AlreadyInside,
    Unknown,
    Exit,
}

impl From<m::ScanDecision> for ScanDecision {
    fn from(d: m::ScanDecision) -> Self {
        match d {
            m::ScanDecision::Admit => ScanDecision::Admit,
            m::ScanDecision::WrongZone => ScanDecision::WrongZone,
            m::ScanDecision::WrongDay => ScanDecision::WrongDay,
            m::ScanDecision::Revoked => ScanDecision::Revoked,
            m::ScanDecision::AlreadyInside => ScanDecision::AlreadyInside,
            m::ScanDecision::Unknown => ScanDecision::Unknown,
            m::ScanDecision::Exit => ScanDecision::Exit,
        }
    }
}

/// A gate and its lanes.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct GateInfo {
    pub id: String,
    pub name: String,
    /// The code of the zone it admits into.
    pub zone: String,
    pub lanes: Vec<String>,
}

impl From<m::Gate> for GateInfo {
    fn from(g: m::Gate) -> Self {
        GateInfo { id: g.id, name: g.name, zone: g.zone, lanes: g.lanes }
    }
}

/// A credential as a lane sees it: what the decision needs and the holder's display name.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CredentialInfo {
    pub uid: String,
    pub kind: String,
    pub holder_name: String,
    pub zones: Vec<String>,
    pub valid_days: Vec<String>,
    pub revoked: bool,
}

impl From<m::Credential> for CredentialInfo {
    fn from(c: m::Credential) -> Self {
        CredentialInfo {
            uid: c.uid,
            kind: c.kind,
            holder_name: c.holder_name,
            zones: c.zones,
            valid_days: c.valid_days,
            revoked: c.status == m::CredentialStatus::Revoked,
        }
    }
}

/// One scan, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Scan {
    pub id: String,
    pub credential: String,
    pub gate: String,
    pub lane: String,
    pub direction: Direction,
    pub decision: ScanDecision,
    pub device: String,
    pub device_time: String,
}

impl From<m::Scan> for Scan {
    fn from(s: m::Scan) -> Self {
        Scan {
            id: s.id,
            credential: s.credential,
            gate: s.gate,
            lane: s.lane,
            direction: s.direction.into(),
            decision: s.decision.into(),
            device: s.device,
            device_time: s.device_time,
        }
    }
}

/// What a lane shows after a scan: the decision, who it is, and for "already inside" where
/// and when they came in.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ScanResult {
    pub scan: Scan,
    pub credential: Option<CredentialInfo>,
    pub admitted_at_gate: Option<String>,
    pub admitted_at_time: Option<String>,
}

impl From<device::ScanOutcome> for ScanResult {
    fn from(o: device::ScanOutcome) -> Self {
        ScanResult {
            admitted_at_time: o.admitted_by.map(|s| s.device_time),
            admitted_at_gate: o.admitted_at_gate,
            credential: o.credential.map(Into::into),
            scan: o.scan.into(),
        }
    }
}

/// Something the server found wrong with a scan: `duplicate_entry` or
/// `admitted_while_revoked`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ScanFlag {
    pub id: String,
    pub scan: String,
    pub credential: String,
    pub gate: String,
    pub code: String,
    /// For a duplicate entry: the earlier admission.
    pub earlier: Option<String>,
    pub raised_at: String,
}

impl From<m::ScanFlag> for ScanFlag {
    fn from(f: m::ScanFlag) -> Self {
        let code = match f.code {
            m::ScanFlagCode::DuplicateEntry => "duplicate_entry",
            m::ScanFlagCode::AdmittedWhileRevoked => "admitted_while_revoked",
        };
        ScanFlag {
            id: f.id,
            scan: f.scan,
            credential: f.credential,
            gate: f.gate,
            code: code.into(),
            earlier: f.earlier,
            raised_at: f.raised_at,
        }
    }
}

/// One gate's counts, from what the device holds.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct GateStatus {
    pub gate: String,
    pub name: String,
    pub admitted: u64,
    pub exits: u64,
    pub refused: u64,
    pub flagged: u64,
    pub last_scan: Option<String>,
}

impl From<device::GateStatus> for GateStatus {
    fn from(s: device::GateStatus) -> Self {
        GateStatus {
            gate: s.gate,
            name: s.name,
            admitted: s.admitted,
            exits: s.exits,
            refused: s.refused,
            flagged: s.flagged,
            last_scan: s.last_scan,
        }
    }
}

// ---- crew time ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum PunchKind {
    In,
    Out,
    MealStart,
    MealEnd,
}

impl From<PunchKind> for m::PunchKind {
    fn from(k: PunchKind) -> Self {
        match k {
            PunchKind::In => m::PunchKind::In,
            PunchKind::Out => m::PunchKind::Out,
            PunchKind::MealStart => m::PunchKind::MealStart,
            PunchKind::MealEnd => m::PunchKind::MealEnd,
        }
    }
}

impl From<m::PunchKind> for PunchKind {
    fn from(k: m::PunchKind) -> Self {
        match k {
            m::PunchKind::In => PunchKind::In,
            m::PunchKind::Out => PunchKind::Out,
            m::PunchKind::MealStart => PunchKind::MealStart,
            m::PunchKind::MealEnd => PunchKind::MealEnd,
        }
    }
}

/// Where the phone was, if the crew member lets it say.
#[derive(Clone, Copy, Debug, PartialEq, uniffi::Record)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Punch {
    pub id: String,
    pub kind: PunchKind,
    pub device_time: String,
    pub location: Option<Location>,
}

impl From<m::Punch> for Punch {
    fn from(p: m::Punch) -> Self {
        Punch {
            id: p.id,
            kind: p.kind.into(),
            device_time: p.device_time,
            location: p.gps.map(|g| Location { lat: g.lat, lon: g.lon, accuracy_m: g.accuracy_m }),
        }
    }
}

/// Something on a timecard to look at (a missing punch, a punch after the period closed).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TimecardException {
    pub code: String,
    pub message: String,
    pub punch: Option<String>,
}

/// One person's day, as the server built it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Timecard {
    pub person: String,
    pub day: String,
    pub worked_hours: f64,
    pub paid_hours: f64,
    pub overtime_hours: f64,
    pub meal_penalties: i64,
    pub exceptions: Vec<TimecardException>,
    pub approved: bool,
}

impl From<m::Timecard> for Timecard {
    fn from(t: m::Timecard) -> Self {
        Timecard {
            person: t.person,
            day: t.day,
            worked_hours: t.worked_hours,
            paid_hours: t.paid_hours,
            overtime_hours: t.overtime_hours,
            meal_penalties: t.meal_penalties,
            exceptions: t
                .exceptions
                .into_iter()
                .map(|e| TimecardException { code: e.code, message: e.message, punch: e.punch })
                .collect(),
            approved: t.status == m::TimecardStatus::Approved,
        }
    }
}

// ---- gear custody ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Condition {
    Ok,
    Damaged,
}

impl From<Condition> for m::Condition {
    fn from(c: Condition) -> Self {
        match c {
            Condition::Ok => m::Condition::Ok,
            Condition::Damaged => m::Condition::Damaged,
        }
    }
}

impl From<m::Condition> for Condition {
    fn from(c: m::Condition) -> Self {
        match c {
            m::Condition::Ok => Condition::Ok,
            m::Condition::Damaged => Condition::Damaged,
        }
    }
}

/// An asset and where it is now.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AssetInfo {
    pub tag: String,
    pub kind: String,
    pub name: String,
    /// Out with this person, if out.
    pub holder: Option<String>,
    pub due_at: Option<String>,
    pub overdue: bool,
    pub last_condition: Option<Condition>,
}

impl From<m::AssetState> for AssetInfo {
    fn from(s: m::AssetState) -> Self {
        AssetInfo {
            tag: s.asset.tag,
            kind: s.asset.kind,
            name: s.asset.name,
            holder: s.holder,
            due_at: s.due_at,
            overdue: s.overdue,
            last_condition: s.last_condition.map(Into::into),
        }
    }
}

/// One move of an asset's custody.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CustodyMove {
    pub id: String,
    pub asset: String,
    pub checked_out: bool,
    pub holder: Option<String>,
    pub due_at: Option<String>,
    pub condition: Option<Condition>,
    pub note: Option<String>,
    pub device_time: String,
}

impl From<m::CustodyMove> for CustodyMove {
    fn from(c: m::CustodyMove) -> Self {
        CustodyMove {
            id: c.id,
            asset: c.asset,
            checked_out: c.action == m::CustodyAction::CheckOut,
            holder: c.holder,
            due_at: c.due_at,
            condition: c.condition.map(Into::into),
            note: c.note,
            device_time: c.device_time,
        }
    }
}
