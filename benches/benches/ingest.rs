//! Accepted mutations per second into the change log, on SurrealKV (fsync on every commit):
//! one mutation per transaction versus pushed batches committed together (group commit),
//! each beside its ceiling measured in the same round: the same task documents inserted raw
//! (`INSERT` into a schemaless table of a fresh SurrealKV store, the same batch size), which
//! is what SurrealDB can store here at all when a mutation costs exactly one document.
//!
//! Run: `cargo bench -p benches --bench ingest -- [MUTATIONS] [BATCH] [ROUNDS]`
//! (defaults 10000 500 3; every round on fresh stores; the medians are printed last).

use std::time::Instant;

use engine::{
    protocol::{Mutation, MutationOp, MutationResult},
    store::Store,
};
use serde_json::{Value, json};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn task(i: usize) -> Mutation {
    Mutation {
        id: format!("m{i}"),
        n: Some(i as u64 + 1),
        kind: "task".into(),
        op: MutationOp::Create,
        record: None,
        fields: json!({ "title": format!("task {i}") }),
        hlc: None,
    }
}

struct Round {
    single: f64,
    batched: f64,
    ceiling_single: f64,
    ceiling_batched: f64,
}

async fn round(total: usize, batch: usize) -> Round {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    let f = tests::fixture(&url).await;
    let head0 = f.engine.head(&f.event).await.expect("head");

    let single = (total / 10).max(1);
    let started = Instant::now();
    for i in 0..single {
        let r = f.engine.apply_mutation(&f.owner, &f.event, "bench", &task(i)).await.expect("stored");
        assert!(matches!(r, MutationResult::Accepted { .. }), "{r:?}");
    }
    let one_by_one = single as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut accepted = 0;
    for chunk in (0..total).collect::<Vec<_>>().chunks(batch) {
        let ms: Vec<Mutation> = chunk.iter().map(|i| task(single + i)).collect();
        let results = f.engine.apply_mutations(&f.owner, &f.event, "bench", &ms).await.results;
        accepted += results.iter().filter(|r| matches!(r, MutationResult::Accepted { .. })).count();
    }
    let batched = accepted as f64 / started.elapsed().as_secs_f64();
    let head = f.engine.head(&f.event).await.expect("head");
    assert_eq!(head - head0, (single + accepted) as i64, "every accepted mutation has its seq");

    // The ceiling: the very documents the engine stored, inserted raw into a fresh store.
    let docs: Vec<Value> = f
        .engine
        .store()
        .run("SELECT * OMIT id FROM task LIMIT $n", json!({ "n": total }))
        .await
        .expect("tasks")
        .all(0)
        .expect("rows");
    drop(f);
    let raw = Store::connect(&format!("surrealkv://{}", dir.path().join("raw").display()), None).await.expect("raw");
    let started = Instant::now();
    for d in docs.iter().take(single) {
        raw.run("CREATE raw_one CONTENT $d RETURN NONE", json!({ "d": d })).await.expect("create");
    }
    let ceiling_single = single as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for chunk in docs.chunks(batch) {
        raw.run("INSERT INTO raw_batch $rows RETURN NONE", json!({ "rows": chunk })).await.expect("insert");
    }
    let ceiling_batched = docs.len() as f64 / started.elapsed().as_secs_f64();
    Round { single: one_by_one, batched, ceiling_single, ceiling_batched }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let batch: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let mut all = Vec::new();
    for r in 1..=rounds {
        let x = round(total, batch).await;
        println!(
            "round {r}: one per transaction {:.0}/s (raw {:.0}/s, {:.0}%); batches of {batch} {:.0}/s (raw {:.0}/s, {:.0}%)",
            x.single,
            x.ceiling_single,
            100.0 * x.single / x.ceiling_single,
            x.batched,
            x.ceiling_batched,
            100.0 * x.batched / x.ceiling_batched
        );
        all.push(x);
    }
    let m = |f: fn(&Round) -> f64| median(all.iter().map(f).collect());
    println!(
        "median of {rounds}: one per transaction {:.0} mutations/s, raw ceiling {:.0} documents/s, ratio {:.0}%",
        m(|x| x.single),
        m(|x| x.ceiling_single),
        m(|x| 100.0 * x.single / x.ceiling_single)
    );
    println!(
        "median of {rounds}: batches of {batch} {:.0} mutations/s, raw ceiling {:.0} documents/s, ratio {:.0}%",
        m(|x| x.batched),
        m(|x| x.ceiling_batched),
        m(|x| 100.0 * x.batched / x.ceiling_batched)
    );
}
