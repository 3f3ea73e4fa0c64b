//! The crew app's door to the engine: the device replica ([`engine::device::Replica`]) and
//! the link that keeps it connected to a sync server ([`link::Link`]).
//!
//! The UniFFI surface for Kotlin and Swift builds on these two.

pub mod link;

pub use link::Link;
