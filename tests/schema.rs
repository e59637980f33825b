//! The published JSON Schema in `schemas/` is generated from the Rust contract types, and what the
//! filter writes deserializes into those types (which refuse unknown fields).

use std::path::PathBuf;

use veil_sanitized::{SCHEMA_FILE, SanitizedMessage, json_schema};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(SCHEMA_FILE)
}

#[test]
fn published_schema_matches_the_rust_types() {
    let generated = serde_json::to_string_pretty(&json_schema()).expect("schema serializes") + "\n";
    if std::env::var_os("VEIL_BLESS").is_some() {
        std::fs::write(schema_path(), &generated).expect("write schema");
    }
    let published =
        std::fs::read_to_string(schema_path()).expect("schemas/ holds the published schema");
    assert_eq!(
        published, generated,
        "schema drifted from the Rust types: rerun with VEIL_BLESS=1 and review the diff"
    );
    let schema: serde_json::Value = serde_json::from_str(&published).expect("schema is JSON");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in [
        "schema",
        "tenant",
        "tier",
        "policy",
        "keyEpoch",
        "type",
        "messageId",
        "timestamp",
        "receivedAt",
    ] {
        assert!(required.contains(&field), "{field} is required");
    }
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn contract_refuses_unknown_fields() {
    let message = r#"{"schema":1,"tenant":"t","tier":"baseline","policy":"sha256:00","keyEpoch":"2026-11","type":"track","messageId":"m","timestamp":"t","receivedAt":"t","fields":{},"pseudonyms":{},"email":"x"}"#;
    assert!(serde_json::from_str::<SanitizedMessage>(message).is_err());
}
