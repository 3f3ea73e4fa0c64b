//! Field modules granted to collaborators, and the front gate: zones, gates, credentials,
//! scans and the flags the server raises on them.

use serde::{Deserialize, Serialize};

use super::Module;

// ---- field modules ----

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
