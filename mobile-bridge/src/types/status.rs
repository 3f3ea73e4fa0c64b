//! Where the device stands: the events it follows and their collaborators, the sync status,
//! the changes the server refused and the receipt of a local write.

use engine::device;

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
