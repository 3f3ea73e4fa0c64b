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
    assert!(
        e.list_tasks(&f.owner, &f.event, ListFilter::default(), &Default::default()).await.unwrap().items.is_empty()
    );
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
    let f = fixture_with("mem://", |c| c.log_entries_max = 10).await;
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

fn numbered(
    n: u64,
    op: engine::protocol::MutationOp,
    record: Option<&str>,
    fields: serde_json::Value,
) -> engine::protocol::Mutation {
    serde_json::from_value(serde_json::json!({
        "id": format!("m-{n}"), "n": n, "kind": "task", "op": op, "record": record, "fields": fields,
    }))
    .unwrap()
}

fn code(r: &engine::protocol::MutationResult) -> String {
    match r {
        engine::protocol::MutationResult::Rejected { code, .. } => code.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A device's refused mutation is answered as refused when it is retried after the log of its
/// time was trimmed (it used to be answered "accepted", and the edit vanished unheard); once
/// refusals are past their keeping time, the retry is answered `expired`, never accepted.
#[tokio::test]
async fn a_refusal_outlives_the_trimmed_log_and_is_never_forgotten_as_an_acceptance() {
    use engine::protocol::MutationOp::{Create, Update};
    for (kept, answer) in [(std::time::Duration::from_secs(3600), "not_found"), (std::time::Duration::ZERO, "expired")]
    {
        let f = fixture_with("mem://", |c| {
            c.log_entries_max = 10;
            c.refusals_kept = kept;
        })
        .await;
        let e = &f.engine;
        let ms = [
            numbered(1, Create, None, serde_json::json!({ "title": "Accepted" })),
            numbered(2, Update, Some("no-such-task"), serde_json::json!({ "title": "Refused" })),
        ];
        let first = e.apply_mutations(&f.owner, &f.event, "tablet", &ms).await.results;
        assert!(matches!(first[0], engine::protocol::MutationResult::Accepted { .. }), "{first:?}");
        assert_eq!(code(&first[1]), "not_found");
        // The log moves far past the refusal and is trimmed.
        for i in 0..40 {
            e.create_task(&f.owner, &f.event, task(format!("t{i}"))).await.unwrap();
        }
        assert!(e.log_floor(&f.event).await.unwrap() > 5, "the log was trimmed");
        // The tablet never heard the answers and retries both.
        let again = e.apply_mutations(&f.owner, &f.event, "tablet", &ms).await.results;
        assert_eq!(code(&again[1]), answer, "kept {kept:?}");
        if answer == "expired" {
            assert_eq!(code(&again[0]), "expired", "an answer no longer known is never an acceptance");
        } else {
            assert!(matches!(again[0], engine::protocol::MutationResult::Accepted { .. }), "{again:?}");
        }
    }
}

/// A push to an event the account has no standing in (or to none at all) is refused whole,
/// and nothing of it is stored: pushing cannot fill the disk.
#[tokio::test]
async fn a_push_without_standing_is_refused_and_stores_nothing() {
    use engine::protocol::MutationOp::Create;
    let f = fixture("mem://").await;
    let e = &f.engine;
    let stranger = tests::proven(
        e,
        engine::NewAccount {
            email: "stranger@example.test".into(),
            name: "Stranger".into(),
            password: "a long password".into(),
        },
    )
    .await
    .id;
    let ms: Vec<_> =
        (1..=50).map(|n| numbered(n, Create, None, serde_json::json!({ "title": "x".repeat(1000) }))).collect();
    for event in [f.event.as_str(), "no-such-event"] {
        let pushed = e.apply_mutations(&stranger, event, "tablet", &ms).await;
        assert!(pushed.failed.is_none());
        assert_eq!(pushed.results.len(), 50);
        assert!(pushed.results.iter().all(|r| code(r) == "not_found"));
    }
    let mut rows = e
        .store()
        .run(
            "RETURN array::len((SELECT id FROM refused)); RETURN array::len((SELECT id FROM mark));",
            serde_json::json!({}),
        )
        .await
        .unwrap();
    let (refused, marks): (Option<i64>, Option<i64>) = (rows.value(0).unwrap(), rows.value(1).unwrap());
    assert_eq!((refused.unwrap_or(0), marks.unwrap_or(0)), (0, 0), "nothing stored for the stranger's pushes");
}
