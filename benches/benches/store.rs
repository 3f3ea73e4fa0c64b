//! What SurrealDB costs per statement here, behind design choices of the write path: a
//! record read and an indexed read (the reads a write used to make before its commit), and
//! writing 500 change-log entries into a SCHEMAFULL table versus the SCHEMALESS one the log
//! uses (`schemas/surreal/0002_change_log.surql`). In-memory store.
//!
//! Run: `cargo bench -p benches --bench store`

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// The field definitions a typed change log would have.
const TYPED_LOG: &str = "DEFINE TABLE typed_change SCHEMAFULL;
DEFINE FIELD event ON typed_change TYPE string;
DEFINE FIELD seq ON typed_change TYPE int;
DEFINE FIELD kind ON typed_change TYPE string;
DEFINE FIELD record ON typed_change TYPE string;
DEFINE FIELD op ON typed_change TYPE string ASSERT $value IN ['upsert', 'delete'];
DEFINE FIELD collaborators_before ON typed_change TYPE array<string>;
DEFINE FIELD collaborators_after ON typed_change TYPE array<string>;
DEFINE FIELD subject ON typed_change TYPE option<string>;
DEFINE FIELD data ON typed_change TYPE option<object> FLEXIBLE;
DEFINE FIELD at ON typed_change TYPE string;";

fn entries(event: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({ "id": [event, i], "event": event, "seq": i, "kind": "task", "record": format!("r{i}"),
                    "op": "upsert", "collaborators_before": [], "collaborators_after": ["c1"],
                    "data": { "title": "hello", "status": "todo" }, "at": "2026-01-01T00:00:00.000Z" })
        })
        .collect()
}

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let f = rt.block_on(tests::fixture("mem://"));
    let s = f.engine.store().clone();
    rt.block_on(s.run(TYPED_LOG, Value::Null)).expect("typed table");
    let vars = json!({ "e": f.event, "p": f.owner });
    c.bench_function("store/return_1", |b| b.iter(|| rt.block_on(s.run("RETURN 1", Value::Null)).map(drop).unwrap()));
    c.bench_function("store/read_record", |b| {
        b.iter(|| rt.block_on(s.run("SELECT * FROM type::record('event', $e)", vars.clone())).map(drop).unwrap())
    });
    c.bench_function("store/indexed_where", |b| {
        b.iter(|| {
            rt.block_on(s.run("SELECT VALUE slot FROM seat WHERE event = $e AND person = $p", vars.clone()))
                .map(drop)
                .unwrap()
        })
    });
    let mut k = 0;
    for table in ["typed_change", "change"] {
        c.bench_function(&format!("store/insert_500_log_entries_{table}"), |b| {
            b.iter(|| {
                k += 1;
                let rows = entries(&format!("bench-{k}"), 500);
                rt.block_on(s.run(&format!("INSERT INTO {table} $rows RETURN NONE"), json!({ "rows": rows })))
                    .map(drop)
                    .unwrap()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = store
}
criterion_main!(benches);
