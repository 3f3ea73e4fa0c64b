//! The one integration-test binary: scenarios against the real server, and engine-level
//! checks of the store and the change log.

mod access;
mod access_cache;
mod assets;
mod bad_input;
mod bridge;
mod changes;
mod conflicts;
mod crash;
mod dashboard;
mod device;
mod disk;
mod email;
mod files;
mod frontgate;
mod fuzz;
mod getting_set_up;
mod http_bounds;
mod labor;
mod layout;
mod link;
mod nodes;
mod protocol;
mod quotas;
mod rules;
mod sign_ins;
mod simulation;
mod store;
mod sync;
mod tokens;
