//! The store: URLs, migrations, and a database from a newer binary.

use engine::{Engine, EngineConfig, Error, store::MIGRATIONS};

#[tokio::test]
async fn migrations_apply_once_and_refuse_a_newer_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    let latest = MIGRATIONS.last().unwrap().version;
    {
        let e = Engine::open(&url, None, EngineConfig::default()).await.unwrap();
        assert_eq!(e.store().schema_version().await.unwrap(), latest);
        // Migrating again is a no-op.
        assert_eq!(e.store().migrate().await.unwrap(), latest);
        let mut rows =
            e.store().run("SELECT VALUE version FROM schema_migration", serde_json::Value::Null).await.unwrap();
        let versions: Vec<u32> = rows.all(0).unwrap();
        assert_eq!(versions.len(), MIGRATIONS.len(), "each migration recorded once");
        // A later binary wrote a newer schema.
        e.store()
            .run("CREATE schema_migration:future CONTENT { version: 999, name: 'future' }", serde_json::Value::Null)
            .await
            .unwrap();
    }
    // Reopening the same files with this binary refuses, naming both versions.
    match Engine::open(&url, None, EngineConfig::default()).await {
        Err(Error::SchemaTooNew { database: 999, binary }) => assert_eq!(binary, latest),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused_clearly() {
    for url in ["postgres://localhost/db", "surrealkv://", "file.db"] {
        match Engine::open(url, None, EngineConfig::default()).await {
            Err(Error::Config(m)) => assert!(m.contains("mem://") || m.contains("path"), "{url}: {m}"),
            other => panic!("{url}: expected a config error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_empty_write_result_is_an_error() {
    let e = Engine::open("mem://", None, EngineConfig::default()).await.unwrap();
    // UPDATE of a record that does not exist returns nothing: `written` must not accept it.
    let mut rows = e
        .store()
        .run("UPDATE type::record('event', 'missing') SET name = 'x' WHERE org = 'o'", serde_json::Value::Null)
        .await
        .unwrap();
    assert!(matches!(rows.written::<serde_json::Value>(0), Err(Error::Internal(_))));
}

/// A database written before the change-log migration existed (its log tables defined
/// implicitly by their first writes) takes migration 2 on open and keeps its log.
#[tokio::test]
async fn a_database_from_before_the_change_log_migration_upgrades_and_keeps_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("surrealkv://{}", dir.path().join("db").display());
    {
        let e = Engine::open(&url, None, EngineConfig::default()).await.unwrap();
        // Back to how such a database looks: migration 1 only, implicit log tables.
        e.store()
            .run(
                "REMOVE TABLE change; REMOVE TABLE event_seq; REMOVE TABLE applied; DELETE schema_migration WHERE version >= 2;
                 UPSERT type::record('event_seq', 'ev') CONTENT { n: 1 };
                 CREATE type::record('change', ['ev', 1]) CONTENT { event: 'ev', seq: 1, kind: 'task', record: 't',
                     op: 'upsert', collaborators_before: [], collaborators_after: ['c'], at: '2026-01-01T00:00:00.000Z' };
                 CREATE type::record('change', ['ev', 2]) CONTENT { event: 'ev', seq: 2, kind: 'seat', record: 's',
                     op: 'delete', collaborators_before: [], collaborators_after: [], subject: 'p1', at: '2026-01-01T00:00:01.000Z' };
                 UPSERT type::record('event_seq', 'ev') CONTENT { n: 2 };",
                serde_json::Value::Null,
            )
            .await
            .unwrap();
        assert_eq!(e.store().schema_version().await.unwrap(), 1);
    }
    let e = Engine::open(&url, None, EngineConfig::default()).await.unwrap();
    assert_eq!(e.store().schema_version().await.unwrap(), MIGRATIONS.last().unwrap().version);
    assert_eq!(e.head("ev").await.unwrap(), 2);
    // The entries written one document each became pages of one (migration 12).
    let log = e.changes_since("ev", 0, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].seq, log[0].record.as_str(), log[0].event.as_str()), (1, "t", "ev"));
    assert_eq!((log[1].seq, log[1].subject.as_deref()), (2, Some("p1")));
    assert_eq!(e.changes_since("ev", 1, 10).await.unwrap(), log[1..]);
    let about = e.changes_about("ev", 0, "p1").await.unwrap();
    assert_eq!(about, log[1..], "the seat change is found as one that alters p1's access");
    assert!(e.changes_about("ev", 0, "p2").await.unwrap().is_empty());
}

/// The device replica inserts a first snapshot in bulk and relies on this: `INSERT` with an
/// array `id` keys the record by it, so later writes by key find the same record.
#[tokio::test]
async fn a_bulk_insert_keys_records_by_their_array_id() {
    let s = engine::Store::connect("mem://", None).await.unwrap();
    s.run(
        "INSERT INTO rec $rows RETURN NONE;",
        serde_json::json!({ "rows": [{ "id": ["e", "task", "t1"], "v": 1 }, { "id": ["e", "task", "t2"], "v": 2 }] }),
    )
    .await
    .unwrap();
    s.run("UPSERT type::record('rec', ['e', 'task', 't1']) CONTENT { v: 3 };", serde_json::Value::Null).await.unwrap();
    let mut rows =
        s.run("SELECT VALUE v FROM rec:['e', 'task', '']..['e', 'task', 'z'];", serde_json::Value::Null).await.unwrap();
    let v: Vec<i64> = rows.all(0).unwrap();
    assert_eq!(v, vec![3, 2]);
}
