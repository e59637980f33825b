//! The official Segment SDKs against `veil gateway` on a real port and a real Kafka-API broker
//! (tansu) on loopback: the Python and Node.js server SDKs, and the browser SDK (analytics.js,
//! `@segment/analytics-next`) in headless Chromium. Each SDK's calls are all accepted; exactly
//! the messages the dry run (`veil filter`) lets through arrive in Kafka, keyed and partitioned by
//! the user's pseudonym; and no forbidden value reaches the sanitized topic, the audit topic or
//! the gateway's logs.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::gateway::{GatewayProcess, dry_run_accepted};
use support::traffic::{
    forbidden_values, gen_events, send_with_browser_sdk, send_with_node_sdk, send_with_python_sdk,
};
use support::{Broker, read_topics};
use veil_gateway::sink::partition_for;

const PARTITIONS: u32 = 3;
const SANITIZED_TOPIC: &str = "veil.sanitized.us";

/// What arrived in the sanitized topic.
struct Arrivals {
    /// Message ids, each seen once.
    ids: BTreeSet<String>,
    /// Records holding more than one message (a batch packed per partition).
    packed_records: usize,
    /// Every record's payload, for searching.
    text: String,
}

/// Reads the sanitized topic to its end, checking every message's tenant, tier, record key and
/// partition, and that no message id arrives twice.
fn arrivals(broker: &Broker) -> Arrivals {
    let records = read_topics(
        &broker.bootstrap(),
        &[SANITIZED_TOPIC.to_owned()],
        Duration::from_secs(30),
    );
    let mut arrived = Arrivals {
        ids: BTreeSet::new(),
        packed_records: 0,
        text: String::new(),
    };
    for (_, partition, key, payload) in &records {
        // A batch's messages for one partition travel as one record, one message a line.
        let lines: Vec<&[u8]> = payload.split(|byte| *byte == b'\n').collect();
        if lines.len() > 1 {
            arrived.packed_records += 1;
            assert_eq!(key, b"t-1000", "a packed record is keyed by its tenant");
        }
        for line in &lines {
            let message: Value = serde_json::from_slice(line).expect("sanitized JSON");
            assert_eq!(message["tenant"], "t-1000");
            assert_eq!(message["tier"], "baseline");
            let user = message["pseudonyms"]["userId"]
                .as_str()
                .or(message["pseudonyms"]["anonymousId"].as_str())
                .expect("a user or anonymous pseudonym");
            let own_key = format!("t-1000/{user}");
            if lines.len() == 1 {
                assert_eq!(key, own_key.as_bytes(), "keyed by the user's pseudonym");
            }
            assert_eq!(
                *partition,
                partition_for(own_key.as_bytes(), PARTITIONS as i32),
                "in the partition of the user's key, packed or not"
            );
            let id = message["messageId"].as_str().expect("id").to_owned();
            assert!(arrived.ids.insert(id), "a message arrived twice");
        }
        arrived.text.push_str(&String::from_utf8_lossy(payload));
        arrived.text.push('\n');
    }
    arrived
}

/// Asserts that none of `forbidden` occurs in `text`; a failure says how many did, not which
/// (test output is logged like anything else).
fn assert_none_in(text: &str, forbidden: &BTreeSet<String>, place: &str) {
    let leaked = forbidden
        .iter()
        .filter(|value| text.contains(value.as_str()))
        .count();
    assert_eq!(leaked, 0, "{leaked} forbidden values reached {place}");
}

/// Sends `input` with `send` to a fresh gateway and broker, checks that exactly the dry run's
/// messages arrive sanitized, and returns the broker, the arrivals and the gateway's logs.
fn run_sdk(
    input: &[u8],
    send: impl FnOnce(&str) -> Value,
    expected_summary: Value,
) -> (Broker, Arrivals, String) {
    let broker = Broker::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let gateway = GatewayProcess::start(&broker.bootstrap(), keys.path(), PARTITIONS);
    assert_eq!(send(&gateway.url()), expected_summary);

    let sent = support::traffic::messages(input).len();
    let expected = dry_run_accepted(input, keys.path());
    assert!(
        expected.len() * 3 > sent * 2,
        "most of the traffic is allowlisted"
    );
    let arrived = arrivals(&broker);
    assert_eq!(
        arrived.ids, expected,
        "exactly the messages the policy lets through arrived"
    );
    let forbidden = forbidden_values(input);
    assert!(
        forbidden.len() * 2 > sent,
        "the traffic plants forbidden values"
    );
    assert_none_in(&arrived.text, &forbidden, "the sanitized topic");

    let logs = gateway.stop();
    assert!(
        logs.contains("\"message\":\"gateway listening\""),
        "JSON logs: {logs}"
    );
    assert_none_in(&logs, &forbidden, "the gateway's logs");
    (broker, arrived, logs)
}

#[test]
fn official_python_sdk_traffic_arrives_sanitized_in_kafka() {
    let input = gen_events(1500, 11);
    let (broker, arrived, _) = run_sdk(
        &input,
        |host| send_with_python_sdk(host, "wk_demo_t1000", &input),
        json!({"calls": 1500, "failed_batches": 0}),
    );
    assert!(
        arrived.packed_records > 0,
        "the SDK's batches were packed per partition"
    );

    // The audit trail: rejected events and dropped fields by name, never values.
    let audit = read_topics(
        &broker.bootstrap(),
        &["veil.rejections".to_owned()],
        Duration::from_secs(10),
    );
    assert!(!audit.is_empty(), "audit records were written");
    let audit_text: String = audit
        .iter()
        .map(|(_, _, _, payload)| String::from_utf8_lossy(payload).into_owned())
        .collect();
    assert!(
        audit_text.contains("\"field\":\"context.ip\""),
        "dropped fields are named"
    );
    assert!(audit_text.contains("properties.document_name"));
    assert_none_in(&audit_text, &forbidden_values(&input), "the audit topic");
}

#[test]
fn official_node_sdk_traffic_arrives_sanitized_in_kafka() {
    let input = gen_events(1500, 12);
    let (_, arrived, _) = run_sdk(
        &input,
        |host| send_with_node_sdk(host, "wk_demo_t1000", &input),
        json!({"calls": 1500, "failed_batches": 0}),
    );
    assert!(
        arrived.packed_records > 0,
        "the SDK's batches were packed per partition"
    );
}

#[test]
fn official_browser_sdk_in_headless_chromium_arrives_sanitized_in_kafka() {
    // analytics.js sends one request per call, so fewer messages keep the test quick.
    let input = gen_events(300, 13);
    let (_, arrived, _) = run_sdk(
        &input,
        |host| send_with_browser_sdk(host, "wk_demo_t1000", &input),
        json!({"calls": 300, "delivered": 300}),
    );
    // What the browser adds on its own never leaves either: the page's URL (which carries the
    // write key in its query here), its title, and the browser's user agent.
    for (what, added) in [
        ("the page's file name", "index.html"),
        ("the write key in the page's URL", "wk_demo_t1000"),
        ("the page's title", "Veil SDK test"),
        ("the browser's user agent", "HeadlessChrome"),
    ] {
        assert!(
            !arrived.text.contains(added),
            "{what} reached the sanitized topic"
        );
    }
    // And what it adds that the allowlist names arrives: its library name, on every message.
    assert_eq!(
        arrived
            .text
            .matches("\"context.library.name\":\"analytics.js\"")
            .count(),
        arrived.ids.len(),
        "the browser SDK's own library field is kept"
    );
}
