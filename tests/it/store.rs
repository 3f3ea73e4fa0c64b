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
