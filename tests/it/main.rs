//! The one integration-test binary: every scenario runs against the real server.

mod bad_input;
mod getting_set_up;
mod rules;
mod store;
mod tokens;
