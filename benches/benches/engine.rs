//! Engine micro-benchmarks: the access decision, and single writes and reads through the
//! engine on the in-memory store.
//!
//! Run: `cargo bench -p benches --bench engine`

use criterion::{Criterion, criterion_group, criterion_main};
use engine::{
    ListFilter, NewTask,
    access::{Action, Membership, Standing, Tab, Target, decide},
};

fn access(c: &mut Criterion) {
    let member = Standing {
        membership: Some(Membership { collaborator: "A".into(), read_only: false, ..Default::default() }),
        ..Default::default()
    };
    let scope = ["A".to_string()];
    c.bench_function("access/decide_member_write", |b| {
        b.iter(|| {
            decide(std::hint::black_box(&member), Action::Write, Target::Tab { tab: Tab::Tasks, collaborators: &scope })
        })
    });
}

fn writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let f = rt.block_on(tests::fixture("mem://"));
    let mut n = 0u64;
    c.bench_function("engine/create_task_mem", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(f.engine.create_task(
                &f.owner,
                &f.event,
                NewTask {
                    id: None,
                    collaborator: None,
                    title: format!("task {n}"),
                    status: None,
                    assignee: None,
                    due: None,
                },
            ))
            .expect("create")
        })
    });
    c.bench_function("engine/list_tasks_mem", |b| {
        b.iter(|| {
            rt.block_on(f.engine.list_tasks(&f.owner, &f.event, ListFilter::default(), &Default::default()))
                .expect("list")
                .items
                .len()
        })
    });
}

criterion_group!(benches, access, writes);
criterion_main!(benches);
