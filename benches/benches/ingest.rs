//! Accepted mutations per second into the change log, on SurrealKV (fsync on every commit):
//! one mutation per transaction versus pushed batches committed together (group commit).
//!
//! Run: `cargo bench -p benches --bench ingest -- [MUTATIONS] [BATCH]` (defaults 10000 500)

use std::time::Instant;

use engine::protocol::{Mutation, MutationOp, MutationResult};
use serde_json::json;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn task(i: usize) -> Mutation {
    Mutation {
        id: format!("m{i}"),
        kind: "task".into(),
        op: MutationOp::Create,
        record: None,
        fields: json!({ "title": format!("task {i}") }),
        hlc: None,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let batch: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    let f = tests::fixture(&url).await;
    let head0 = f.engine.head(&f.event).await.expect("head");

    let single = (total / 10).max(1);
    let started = Instant::now();
    for i in 0..single {
        let r = f.engine.apply_mutation(&f.owner, &f.event, "bench", &task(i)).await;
        assert!(matches!(r, MutationResult::Accepted { .. }), "{r:?}");
    }
    let one_by_one = single as f64 / started.elapsed().as_secs_f64();
    println!(
        "one mutation per transaction: {single} in {:.2} s = {one_by_one:.0} mutations/s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut accepted = 0;
    for chunk in (0..total).collect::<Vec<_>>().chunks(batch) {
        let ms: Vec<Mutation> = chunk.iter().map(|i| task(single + i)).collect();
        let results = f.engine.apply_mutations(&f.owner, &f.event, "bench", &ms).await;
        accepted += results.iter().filter(|r| matches!(r, MutationResult::Accepted { .. })).count();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "batches of {batch}: {accepted} of {total} accepted in {secs:.2} s = {:.0} mutations/s",
        accepted as f64 / secs
    );
    let head = f.engine.head(&f.event).await.expect("head");
    assert_eq!(head - head0, (single + accepted) as i64, "every accepted mutation has its seq");
}
