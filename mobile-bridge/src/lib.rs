//! The crew app's door to the engine, for Kotlin, Swift (and Python, in the tests) through
//! UniFFI: one object, [`BackOpsClient`], over the device replica
//! ([`engine::device::Replica`]) and the link that keeps it connected ([`link::Link`]), with
//! one error type, [`BackOpsError`]. No business logic lives here: the engine decides.

mod client;
mod error;
pub mod link;
pub mod transfer;
mod types;

pub use client::{BackOpsClient, SyncListener};
pub use error::BackOpsError;
pub use link::Link;
pub use types::*;

uniffi::setup_scaffolding!();
