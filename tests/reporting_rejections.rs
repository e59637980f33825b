//! The reviewer's rejections view over real rows of the rejections table, written through the
//! processor's own audit decoder, table writer and commit: counts by day, kind, reason and field
//! summed across requests and tenants exactly as the test adds them up, names only, and the view
//! closed to other roles.

mod reporting_support;

use std::collections::BTreeMap;

use reporting_support::*;
use serde_json::Value;

/// An audit record as the gateway writes it to `veil.rejections`.
fn record(
    tenant: &str,
    received_at: &str,
    rejected: &[(&str, Option<&str>, Option<&str>, u64)],
    dropped: &[(&str, &str, u64)],
) -> String {
    let rejected: Vec<Value> = rejected
        .iter()
        .map(|(reason, field, event, count)| {
            serde_json::json!({"reason": reason, "field": field, "event": event, "count": count})
        })
        .collect();
    let dropped: Vec<Value> = dropped
        .iter()
        .map(|(field, reason, count)| serde_json::json!({"field": field, "reason": reason, "count": count}))
        .collect();
    serde_json::json!({
        "schema": 1, "tenant": tenant, "region": "us", "policy": format!("sha256:{}", "c".repeat(64)),
        "receivedAt": received_at, "messages": 100, "accepted": 90,
        "rejected": rejected, "dropped": dropped,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviewer_sees_stored_rejections_and_drops_by_day_and_reason() {
    let fixture = Fixture::new();
    fixture.store_events(&[Event {
        tenant: "t-1000",
        epoch: "2026-11".to_owned(),
        user: 1,
        date: "2026-11-02".to_owned(),
        event: "App Launched",
        feature: None,
        app: "DMS Web",
        version: "2026.11",
        os: "Windows",
    }]);
    let first_day = [
        record(
            "t-1000",
            "2026-11-02T08:00:00.000Z",
            &[
                ("event_not_allowlisted", None, Some("Workspace Created"), 3),
                ("missing_identity", None, None, 1),
            ],
            &[
                ("context.ip", "not_allowlisted", 97),
                ("traits.email", "not_allowlisted", 12),
            ],
        ),
        record(
            "t-1001",
            "2026-11-02T23:59:59.999Z",
            &[("event_not_allowlisted", None, Some("Matter Opened"), 2)],
            &[("context.ip", "not_allowlisted", 40)],
        ),
    ];
    let second_day = [record(
        "t-1000",
        "2026-11-03T00:00:00.000Z",
        &[("duplicate_key", Some("userId"), None, 1)],
        &[("properties.result_count", "type_mismatch", 5)],
    )];
    // Two flushes of the rejections topic.
    store_audit_records(&fixture.data_dir(), &first_day);
    store_audit_records(&fixture.data_dir(), &second_day);
    let expected: BTreeMap<(&str, &str, &str, Option<&str>), u64> = [
        (
            (
                "2026-11-02",
                "dropped",
                "not_allowlisted",
                Some("context.ip"),
            ),
            97 + 40,
        ),
        (
            (
                "2026-11-02",
                "dropped",
                "not_allowlisted",
                Some("traits.email"),
            ),
            12,
        ),
        (
            ("2026-11-02", "rejected", "event_not_allowlisted", None),
            3 + 2,
        ),
        (("2026-11-02", "rejected", "missing_identity", None), 1),
        (
            (
                "2026-11-03",
                "dropped",
                "type_mismatch",
                Some("properties.result_count"),
            ),
            5,
        ),
        (
            ("2026-11-03", "rejected", "duplicate_key", Some("userId")),
            1,
        ),
    ]
    .into_iter()
    .collect();

    let state = fixture.state();
    let view = json(&state, "/api/review/rejections", REVIEWER).await;
    assert_eq!(view["available"], true);
    let rows = view["rows"].as_array().expect("rows");
    let found: BTreeMap<(&str, &str, &str, Option<&str>), u64> = rows
        .iter()
        .map(|row| {
            (
                (
                    row["date"].as_str().expect("date"),
                    row["kind"].as_str().expect("kind"),
                    row["reason"].as_str().expect("reason"),
                    row["field"].as_str(),
                ),
                row["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(
        found.len(),
        rows.len(),
        "one row per day, kind, reason and field"
    );
    assert_eq!(found, expected);

    let (status, page) = get(&state, "/review", Some(REVIEWER)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("dropped not_allowlisted · context.ip"),
        "the reason bars"
    );
    assert!(page.contains("137"), "context.ip drops over both tenants");
    assert!(!page.contains("has not stored gateway audit records"));

    for token in [T1000, VENDOR] {
        assert_eq!(
            get(&state, "/api/review/rejections", Some(token)).await.0,
            403
        );
    }
    assert_eq!(get(&state, "/api/review/rejections", None).await.0, 401);
}
