//! Domain records as the engine stores and returns them.
//!
//! Ids are UUID v7 strings (time-ordered) unless a record's key is composite on purpose.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::access::OrgRole;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Personal,
    Team,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub kind: OrgKind,
    pub created_by: String,
    pub created_at: String,
}

/// An organization as one person reaches it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgWithRole {
    #[serde(flatten)]
    pub org: Org,
    pub role: OrgRole,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgMember {
    pub person: String,
    pub email: String,
    pub name: String,
    pub role: OrgRole,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    Card,
    BankAccount,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethod {
    pub kind: PaymentKind,
    /// The payment provider's token for the card or account; the number itself never
    /// reaches BackOps. Stored, but never shown back: answers carry only kind and last four.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider_token: String,
    pub last4: String,
}

/// A billing address. Required fields default to empty when absent so that the engine can
/// answer with the rule ("a zip code is required") rather than a parse error.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BillingAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zip: String,
    #[serde(default)]
    pub country: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Billing {
    pub payment_method: Option<PaymentMethod>,
    pub address: Option<BillingAddress>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LicenseKind {
    OrgPro,
    EventPro,
    OrgStandard,
}

impl LicenseKind {
    /// Org Standard is platform access for supporting staff; it cannot create events.
    pub fn allows_event_creation(self) -> bool {
        !matches!(self, LicenseKind::OrgStandard)
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    Pending,
    Active,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct License {
    pub id: String,
    pub org: String,
    pub kind: LicenseKind,
    pub quantity: i64,
    pub status: LicenseStatus,
    pub purchased_by: String,
    pub created_at: String,
    pub activate_at: String,
    #[serde(default)]
    pub activated_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub org: String,
    pub name: String,
    pub license: String,
    pub default_collaborator: String,
    pub created_by: String,
    pub created_at: String,
    /// Whether people download photos with their location and camera metadata (off: they
    /// get the copy without it; the uploader's own device keeps the original either way).
    #[serde(default)]
    pub keep_photo_location: bool,
    /// Set when the caller's standing came from the write path's access cache: the facts
    /// its commit must still match.
    #[serde(skip)]
    pub(crate) basis: Option<std::sync::Arc<crate::cache::Basis>>,
}

/// The caller's own standing in an event, as shown to them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MyAccess {
    pub seat: bool,
    pub org_role: Option<OrgRole>,
    pub collaborator: Option<String>,
    pub read_only: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventView {
    #[serde(flatten)]
    pub event: Event,
    pub access: MyAccess,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seat {
    pub event: String,
    pub slot: i64,
    pub person: String,
    pub assigned_by: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seats {
    /// The organization's total active Event Pro quantity: the same on every event.
    pub limit: i64,
    pub used: i64,
    pub seats: Vec<Seat>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Collaborator {
    pub id: String,
    pub event: String,
    pub name: String,
    pub read_only: bool,
    pub created_at: String,
}

/// When a device last synced an event, as the sync servers recorded it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceSeen {
    pub account: String,
    pub device: String,
    /// The change log position it had been sent up to.
    pub cursor: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// The server that wrote it last had it connected.
    #[serde(default)]
    pub live: bool,
}

/// Someone taking part in an event, by name: what a dashboard shows beside an account id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollabMember {
    pub event: String,
    pub collaborator: String,
    pub person: String,
    pub read_only: bool,
    pub invited_by: String,
    pub created_at: String,
}

/// The answer to an invitation: the person is a member now, or will be when an account
/// with that email signs up.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Invitation {
    Member { person: String, collaborator: String, read_only: bool },
    Pending { email: String, collaborator: String, read_only: bool },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Todo,
    Active,
    InReview,
    Done,
    Archived,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    pub status: TaskStatus,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub due: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Per-field edit stamps (hybrid logical clocks): the last edit of each field wins,
    /// whichever reached the server first. Absent for fields never edited.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Activity {
    pub id: String,
    pub event: String,
    pub title: String,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub area: Option<String>,
    pub collaborators: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Per-field edit stamps (hybrid logical clocks): the last edit of each field wins,
    /// whichever reached the server first. Absent for fields never edited.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    pub id: String,
    pub event: String,
    /// The folder: files live in their collaborator's folder.
    pub collaborator: String,
    pub name: String,
    pub size: i64,
    pub content_hash: String,
    #[serde(default)]
    pub media_type: Option<String>,
    pub uploaded_by: String,
    pub created_at: String,
    /// What the server made of the content (images): its fields sit in the record itself.
    #[serde(flatten)]
    pub preview: Preview,
}

/// What the server made of an image's content when its upload finished.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preview {
    /// Longest side ("256", "1024") → the thumbnail's content hash.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub thumbnails: std::collections::BTreeMap<String, String>,
    /// The upright image's size, for images that decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// What others download when it differs from the upload: the photo without its
    /// location and camera metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_hash: Option<String>,
    /// The photo may carry location or camera metadata that could not be taken out (its
    /// structure is not understood): only its uploader downloads it, unless the event keeps
    /// photo locations. Thumbnails, re-encoded without metadata, are still everyone's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original_withheld: bool,
    /// Why an image has no thumbnails (unsupported format, too large, corrupt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_note: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdvanceStatus {
    NotStarted,
    NeedsReview,
    Done,
    Archived,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Advance {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub title: String,
    pub answers: Value,
    pub status: AdvanceStatus,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Per-field edit stamps (hybrid logical clocks): the last edit of each field wins,
    /// whichever reached the server first. Absent for fields never edited.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stamps: std::collections::BTreeMap<String, String>,
}

/// The Dashboard tab: counts derived from the other four tabs of one collaborator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TaskCounts {
    pub todo: i64,
    pub active: i64,
    pub in_review: i64,
    pub done: i64,
    pub archived: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AdvanceCounts {
    pub not_started: i64,
    pub needs_review: i64,
    pub done: i64,
    pub archived: i64,
}

// ---- field modules ----

pub use crate::access::Module;

/// A field module granted to a collaborator. Key: `<event>|<collaborator>|<module>`; a
/// revoke deletes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModuleGrant {
    pub id: String,
    pub event: String,
    pub collaborator: String,
    pub module: Module,
    pub granted_by: String,
    pub created_at: String,
}

/// An area of the site a credential may admit into. Key: `<event>|<code>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    pub event: String,
    /// Short and stable (`GA`, `VIP`, `BACKSTAGE`): credentials and gates name zones by it.
    pub code: String,
    pub name: String,
    pub created_at: String,
}

/// A gate: its lanes admit into one zone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Gate {
    pub id: String,
    pub event: String,
    pub name: String,
    /// The code of the zone its lanes admit into.
    pub zone: String,
    pub lanes: Vec<String>,
    /// The gate's local time offset from UTC, in minutes: a credential's valid days are
    /// days of the site's calendar, not of UTC.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    pub created_at: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    Issued,
    Revoked,
}

/// A wristband or badge. Key: `<event>|<uid>` (a uid is unique in its event). Credentials
/// are never deleted: a revoked one still explains the scans made with it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub event: String,
    /// What the scanner reads (barcode, QR, NFC uid).
    pub uid: String,
    /// The credential's type (`ga`, `vip`, `crew`, `artist`, …).
    pub kind: String,
    /// Codes of the zones it admits into.
    pub zones: Vec<String>,
    /// The days it is valid on (`YYYY-MM-DD`, the site's calendar); empty: every day.
    #[serde(default)]
    pub valid_days: Vec<String>,
    /// What a gate shows: the holder's display name.
    pub holder_name: String,
    pub status: CredentialStatus,
    /// Contact details and notes: the event team's only, never sent to gate devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The server's clock when it was last revoked: an admission stamped later was made on
    /// a device that had not heard of the revocation yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_stamp: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The fields of a credential a gate device receives: what a decision needs and what the
/// lane shows. Everything else (contact details, notes) stays with the event team.
pub const GATE_CREDENTIAL_FIELDS: &[&str] =
    &["id", "event", "uid", "kind", "zones", "valid_days", "holder_name", "status", "created_at", "updated_at"];

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Entry,
    Exit,
}

/// What a lane decided, on the device, from its replica.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScanDecision {
    Admit,
    /// The credential does not admit into the gate's zone.
    WrongZone,
    /// Not valid today (the site's calendar).
    WrongDay,
    Revoked,
    /// Admitted before with no exit scan since: re-entry needs an exit scan.
    AlreadyInside,
    /// No credential with this uid in the event.
    Unknown,
    /// An exit scan of a known credential.
    Exit,
}

/// One scan at a lane, admitted or not: immutable once made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Scan {
    pub id: String,
    pub event: String,
    /// The uid scanned (a credential's, or one the event does not know).
    pub credential: String,
    pub gate: String,
    pub lane: String,
    pub direction: Direction,
    pub decision: ScanDecision,
    pub device: String,
    /// The device's clock when the scan was made.
    pub device_time: String,
    /// The device's hybrid logical clock: the order of scans across devices.
    pub hlc: String,
    pub scanned_by: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScanFlagCode {
    /// Admitted while already inside from an earlier admission with no exit between: two
    /// gates that could not talk admitted the same credential.
    DuplicateEntry,
    /// Admitted after the credential was revoked, by a device that had not heard yet.
    AdmittedWhileRevoked,
}

/// What the server found wrong with a scan. Key: `<scan>|<code>`. The scan itself is never
/// changed; a `duplicate_entry` is withdrawn (deleted) if a late exit scan shows the
/// admission was a re-entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScanFlag {
    pub id: String,
    pub event: String,
    pub scan: String,
    pub credential: String,
    pub gate: String,
    pub code: ScanFlagCode,
    /// For a duplicate entry: the admission it duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<String>,
    pub raised_at: String,
}

// ---- crew time (labor) ----

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PunchKind {
    In,
    Out,
    MealStart,
    MealEnd,
}

/// Where a phone was when it punched, if the crew member allowed it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

/// A clock punch: made on a phone (offline too), never edited. Its id is the client's, so
/// the same punch sent twice is stored once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Punch {
    pub id: String,
    pub event: String,
    pub person: String,
    pub kind: PunchKind,
    pub device: String,
    /// The phone's clock when the punch was made: what the timecard counts.
    pub device_time: String,
    pub hlc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<Gps>,
}

/// How an event's timecards are built. Key: the event id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LaborRules {
    pub id: String,
    pub event: String,
    /// A shift is paid at least this many hours.
    pub minimum_call_hours: f64,
    /// Hours of a day worked past this are overtime.
    pub overtime_after_hours: f64,
    /// A stretch of work this long with no meal started earns a meal penalty.
    pub meal_penalty_after_hours: f64,
    /// The site's offset from UTC: a shift belongs to the local day it starts on.
    pub utc_offset_minutes: i32,
    pub updated_at: String,
}

impl LaborRules {
    /// The rules of an event that has set none.
    pub fn default_for(event: &str) -> LaborRules {
        LaborRules {
            id: event.into(),
            event: event.into(),
            minimum_call_hours: 4.0,
            overtime_after_hours: 8.0,
            meal_penalty_after_hours: 6.0,
            utc_offset_minutes: 0,
            updated_at: String::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimecardStatus {
    Open,
    Approved,
}

/// Something on a timecard for a person to look at: a missing punch, a punch that came
/// after its period was locked. Exceptions are not errors: the punches are all kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimecardException {
    /// `missing_out`, `missing_in`, `missing_meal_end`, `missing_meal_start`,
    /// `meal_off_clock`, `period_locked`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punch: Option<String>,
}

/// One person's day, built by the server from their punches. Key:
/// `<event>|<person>|<day>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Timecard {
    pub id: String,
    pub event: String,
    pub person: String,
    /// The local day its shifts started on (`YYYY-MM-DD`).
    pub day: String,
    /// The punches it counts, in time order.
    pub punches: Vec<String>,
    pub worked_hours: f64,
    /// Worked hours, each complete shift raised to the minimum call.
    pub paid_hours: f64,
    pub overtime_hours: f64,
    pub meal_penalties: i64,
    pub exceptions: Vec<TimecardException>,
    pub status: TimecardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    pub updated_at: String,
}

/// Days whose timecards are closed: a punch that arrives for them is kept and shown as an
/// exception, never counted. Key: `<event>|<first_day>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LaborPeriod {
    pub id: String,
    pub event: String,
    pub first_day: String,
    pub last_day: String,
    pub locked_by: String,
    pub locked_at: String,
}

// ---- gear custody (assets) ----

/// A piece of gear with a tag. Key: `<event>|<tag>` (a tag is unique in its event).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Asset {
    pub id: String,
    pub event: String,
    /// What the desk scans: a barcode or an asset tag.
    pub tag: String,
    /// `radio`, `cart`, `forklift`, …
    pub kind: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CustodyAction {
    CheckOut,
    CheckIn,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Ok,
    Damaged,
}

/// One move of an asset's custody, made at a desk (offline too): never changed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustodyMove {
    pub id: String,
    pub event: String,
    /// The asset's tag.
    pub asset: String,
    pub action: CustodyAction,
    /// Check-out: who takes it (an account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Check-out: when it is due back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Check-in: the state it came back in, and a note when damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub device: String,
    pub device_time: String,
    pub hlc: String,
    /// Who worked the desk.
    pub recorded_by: String,
}

/// A check-out made while the asset was already out (two desks that could not talk): kept,
/// and flagged on the later by clock. Key: `<move>|double_checkout`; kept equal to what the
/// moves say (a late check-in between withdraws it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustodyFlag {
    pub id: String,
    pub event: String,
    pub asset: String,
    /// The check-out flagged.
    pub custody: String,
    /// The check-out it came after, with no check-in between.
    pub earlier: String,
    pub raised_at: String,
}

/// Where an asset is, from its moves: who holds it and until when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssetState {
    pub asset: Asset,
    /// Out with this person, if out.
    pub holder: Option<String>,
    pub due_at: Option<String>,
    /// Out past its due time.
    pub overdue: bool,
    /// How it came back the last time (None: never checked in).
    pub last_condition: Option<Condition>,
}
