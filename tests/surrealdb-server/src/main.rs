//! The `surreal` command (`start`, `is-ready`, …) with the community composer: what the
//! upstream binary is, built here with only the in-memory and SurrealKV storage engines.

// The server's futures are deep: their layout needs more than the default query depth.
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
