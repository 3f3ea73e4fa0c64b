//! A sync node in a process of its own, for the tests that kill one with SIGKILL: see
//! `tests::surreal::serve_node_process`.

#[tokio::main]
async fn main() {
    tests::surreal::serve_node_process().await;
}
