//! An event and what hangs on it: the caller's access view, Event Pro seats, collaborators
//! and their members, invitations, the devices that synced it and the people in it.

use serde::{Deserialize, Serialize};

use super::OrgRole;

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
    /// Seats given to people who have not proven their email yet: they take no slot until
    /// then.
    #[serde(default)]
    pub pending: Vec<PendingSeat>,
}

/// A seat waiting for its person to prove their email.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingSeat {
    pub event: String,
    pub person: String,
    pub email: String,
    pub assigned_by: String,
    pub created_at: String,
}

/// What assigning a seat did: a seat taken, or one waiting for the person's email.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Assigned {
    Seat(Seat),
    Pending(PendingSeat),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Collaborator {
    pub id: String,
    pub event: String,
    pub name: String,
    pub read_only: bool,
    pub created_at: String,
}

/// How many sessions a device has following an event on one sync node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceSessions {
    pub node: String,
    pub account: String,
    pub device: String,
    pub sessions: u32,
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
