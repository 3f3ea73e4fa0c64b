//! The change log: one entry per record change, numbered gap-free in commit order.

use std::collections::HashSet;

use engine::{ListFilter, NewTask, TaskPatch, changes::Op};
use tests::{fixture, fixture_with};

fn task(title: String) -> NewTask {
    NewTask { id: None, collaborator: None, title, status: None, assignee: None, due: None }
}

/// Many concurrent writers; a reader tailing the log never sees a hole, a duplicate or a
/// step back, and at the end every write is in the log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_leave_no_gap() {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let f = fixture("mem://").await;
    let start = f.engine.head(&f.event).await.unwrap();

    let reader = {
        let engine = f.engine.clone();
        let event = f.event.clone();
        tokio::spawn(async move {
            let mut cursor = start;
            let mut seen = Vec::new();
            let target = start + (WRITERS * EACH) as i64;
            let deadline = tokio::time::Instant::now() + tests::WAIT_MAX;
            while cursor < target {
                let batch = engine.changes_since(&event, cursor, 17).await.unwrap();
                for c in &batch {
                    assert_eq!(c.seq, cursor + 1, "the reader saw a hole or a repeat after {cursor}");
                    cursor = c.seq;
                    seen.push(c.clone());
                }
                assert!(tokio::time::Instant::now() < deadline, "reader stuck at {cursor}");
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let engine = f.engine.clone();
        let (owner, event) = (f.owner.clone(), f.event.clone());
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                ids.push(engine.create_task(&owner, &event, task(format!("w{w} t{i}"))).await.unwrap().id);
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), WRITERS * EACH);
    let logged: HashSet<String> = seen.iter().map(|c| c.record.clone()).collect();
    assert_eq!(logged, written, "every accepted write is in the log exactly once");
    assert_eq!(f.engine.head(&f.event).await.unwrap(), start + (WRITERS * EACH) as i64);
    // Nothing beyond the head.
    assert!(f.engine.changes_since(&f.event, start + (WRITERS * EACH) as i64, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn entries_carry_what_access_needs() {
    let f = fixture("mem://").await;
    let e = &f.engine;
    // The event's creation itself is in the log: the event, its default collaborator, the
    // creator's seat.
    let first = e.changes_since(&f.event, 0, 100).await.unwrap();
    let kinds: Vec<&str> = first.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["event", "collaborator", "seat"]);
    assert_eq!(first.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);

    let other = e.create_collaborator(&f.owner, &f.event, "Vendor").await.unwrap();
    let t = e.create_task(&f.owner, &f.event, task("Rig".into())).await.unwrap();
    let patch = TaskPatch { collaborator: Some(other.id.clone()), ..Default::default() };
    e.update_task(&f.owner, &f.event, &t.id, patch).await.unwrap();
    e.delete_task(&f.owner, &f.event, &t.id).await.unwrap();

    let log = e.changes_since(&f.event, 3, 100).await.unwrap();
    let moved = &log[2];
    assert_eq!((moved.kind.as_str(), moved.op), ("task", Op::Upsert));
    assert_eq!(moved.collaborators_before, vec![t.collaborator.clone()]);
    assert_eq!(moved.collaborators_after, vec![other.id.clone()]);
    assert_eq!(moved.data.as_ref().unwrap()["collaborator"], other.id.as_str());
    assert_eq!(moved.data.as_ref().unwrap()["id"], t.id.as_str());
    let deleted = &log[3];
    assert_eq!((deleted.op, deleted.record.as_str()), (Op::Delete, t.id.as_str()));
    assert_eq!(deleted.collaborators_before, vec![other.id.clone()]);
    assert!(deleted.data.is_none());
    assert!(e.list_tasks(&f.owner, &f.event, ListFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_missing_record_moves_nothing() {
    let f = fixture("mem://").await;
    let e = &f.engine;
    let t = e.create_task(&f.owner, &f.event, task("Gone soon".into())).await.unwrap();
    let head = e.head(&f.event).await.unwrap();
    e.delete_task(&f.owner, &f.event, &t.id).await.unwrap();
    // Deleting again finds nothing, and neither the log nor the counter moves.
    assert!(matches!(e.delete_task(&f.owner, &f.event, &t.id).await, Err(engine::Error::NotFound { .. })));
    assert_eq!(e.head(&f.event).await.unwrap(), head + 1);
    assert_eq!(e.changes_since(&f.event, head, 10).await.unwrap().len(), 1);
}

/// Retention really drops old entries, moves the floor, and keeps what is newer intact.
#[tokio::test]
async fn retention_trims_the_oldest_entries_and_records_the_floor() {
    let f = fixture_with("mem://", |c| c.log_retention = 10).await;
    let e = &f.engine;
    for i in 0..30 {
        e.create_task(&f.owner, &f.event, task(format!("t{i}"))).await.unwrap();
    }
    let head = e.head(&f.event).await.unwrap();
    let floor = e.log_floor(&f.event).await.unwrap();
    assert!(floor > 0 && head - floor <= 10 + 1 + 1, "head {head}, floor {floor}");
    let kept = e.changes_since(&f.event, 0, 1000).await.unwrap();
    assert_eq!(kept.first().map(|c| c.seq), Some(floor + 1), "nothing at or below the floor is left");
    assert_eq!(kept.last().map(|c| c.seq), Some(head));
    assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1), "what is kept has no gap");
}

/// The heads of several events come back from one read; an event never written to, or one
/// that does not exist, is left out rather than failing the read.
#[tokio::test]
async fn the_heads_of_many_events_in_one_read() {
    let f = fixture("mem://").await;
    for i in 0..3 {
        f.engine.create_task(&f.owner, &f.event, task(format!("task {i}"))).await.unwrap();
    }
    let head = f.engine.head(&f.event).await.unwrap();
    let asked = [f.event.clone(), "no-such-event".to_string()];
    assert_eq!(f.engine.heads(&asked).await.unwrap(), [(f.event.clone(), head)]);
    assert!(f.engine.heads(&[]).await.unwrap().is_empty());
}
