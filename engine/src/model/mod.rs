//! Domain records as the engine stores and returns them.
//!
//! Ids are UUID v7 strings (time-ordered) unless a record's key is composite on purpose.
//!
//! By concern, all re-exported here: `accounts` (accounts, organizations, billing, licenses),
//! `events` (events, seats, collaborators, members, invitations, access views, devices seen),
//! `tabs` (tasks, activities, files, advances, the dashboard), `gate` (module grants and the
//! front gate), `labor` (crew time) and `assets` (gear custody).

mod accounts;
mod assets;
mod events;
mod gate;
mod labor;
mod tabs;

pub use accounts::*;
pub use assets::*;
pub use events::*;
pub use gate::*;
pub use labor::*;
pub use tabs::*;

pub use crate::access::{Module, OrgRole};

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
