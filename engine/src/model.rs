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
