//! What the pipeline's tests feed it: a small policy and a sanitized message under it.

use veil_policy::Allowlist;

use crate::columns::TableLayout;

const POLICY: &str = r#"
version: 1
common:
  userId: { pseudonymize: user, reason: "r" }
track:
  fields:
    properties.duration_ms: { keep: integer, reason: "r" }
  events:
    Document Opened: { reason: "r" }
"#;

/// The layout of the test policy (a pseudonymized user and one kept integer).
pub(super) fn layout() -> TableLayout {
    TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile())
}

/// A sanitized message of the test policy with message id `id`.
pub(super) fn message(id: &str) -> String {
    format!(
        r#"{{"schema":1,"tenant":"t-1","tier":"baseline","policy":"sha256:0000000000000000000000000000000000000000000000000000000000000000","keyEpoch":"2026-11","type":"track","messageId":"{id}","timestamp":"2026-11-22T10:00:00.000Z","receivedAt":"2026-11-23T10:00:00.000Z","event":"Document Opened","fields":{{"properties.duration_ms":12}},"pseudonyms":{{"userId":"AAAAAAAAAAAAAAAAAAAAAA"}}}}"#
    )
}
