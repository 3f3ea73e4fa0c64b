//! The wire protocol's JSON Schema in `schemas/protocol/` is generated from the one protocol
//! module; this test fails when the committed files are stale. Every message the sync tests
//! receive is validated against the committed server schema by the harness.
//!
//! Refresh: `UPDATE_SCHEMAS=1 cargo test -p tests --test it protocol`

use engine::protocol::{ClientMessage, ServerMessage};

#[test]
fn committed_schemas_match_the_protocol_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/protocol");
    for (name, schema) in
        [("client", schemars::schema_for!(ClientMessage)), ("server", schemars::schema_for!(ServerMessage))]
    {
        let path = dir.join(format!("{name}.schema.json"));
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run UPDATE_SCHEMAS=1 cargo test -p tests --test it protocol",
            path.display()
        );
    }
}

#[test]
fn the_schema_rejects_what_the_protocol_does_not_allow() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/protocol/server.schema.json")).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(v.is_valid(&serde_json::json!({ "type": "pong", "cursors": { "e": 3 } })));
    assert!(!v.is_valid(&serde_json::json!({ "type": "pong" })));
    assert!(!v.is_valid(
        &serde_json::json!({ "type": "changes", "event": "e", "cursor": 1, "changes": [{ "op": "explode", "seq": 1 }] })
    ));
    assert!(!v.is_valid(&serde_json::json!({ "type": "welcome" })));
}
