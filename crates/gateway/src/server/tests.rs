//! The HTTP layer driven with `oneshot` over an in-memory publisher.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use veil_config::{TenantsFile, TopicsConfig};

use super::*;
use crate::allowlist::Allowlist;
use crate::pseudonym::KeyStore;
use crate::sink::MemoryPublisher;

const TENANTS: &str = "version: 1
tenants:
  - id: t-1000
    write_keys: [wk_test_baseline]
    tier: baseline
    region: eu
  - id: t-2000
    write_keys: [wk_test_enhanced]
    tier: enhanced
    consent: { by: customer admin, at: 2026-10-01T09:00:00Z }
    region: us
";

struct Harness {
    router: Router,
    publisher: MemoryPublisher,
    gateway: Arc<Gateway>,
    _keys: tempfile::TempDir,
}

fn harness_with(config: GatewayConfig) -> Harness {
    let policy = Allowlist::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../allowlist.yaml"
    )))
    .expect("the repository's allowlist is valid")
    .compile();
    let keys = tempfile::tempdir().expect("tempdir");
    let publisher = MemoryPublisher::default();
    let gateway = Arc::new(Gateway::new(
        config,
        Arc::new(policy),
        TenantsFile::parse(TENANTS)
            .expect("tenants")
            .write_key_index(),
        KeyStore::open(keys.path()).expect("keystore"),
        &TopicsConfig::default(),
        Arc::new(publisher.clone()),
    ));
    Harness {
        router: app(gateway.clone()),
        publisher,
        gateway,
        _keys: keys,
    }
}

fn harness() -> Harness {
    harness_with(GatewayConfig::default())
}

fn basic(key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{key}:")))
}

fn track(event: &str) -> Value {
    json!({
        "type": "track", "event": event, "userId": "u-000123", "messageId": "m-1",
        "timestamp": "2026-11-20T08:00:00.000Z",
        "properties": {"feature": "preview", "document_name": "Merger Agreement.docx", "duration_ms": 12},
        "context": {"ip": "10.1.2.3", "app": {"name": "DMS Web", "version": "2026.11"},
                    "traits": {"email": "alice@hartwell.example"}}
    })
}

async fn send(
    harness: &Harness,
    request: Request<Body>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let (status, headers, bytes) = send_raw(harness, request).await;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value, headers)
}

/// The status, headers and raw bytes of an answer (for when its size matters).
async fn send_raw(
    harness: &Harness,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = harness
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn post(path: &str, key: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, basic(key));
    }
    builder.body(body.into()).expect("request")
}

fn sanitized(harness: &Harness) -> Vec<Value> {
    harness
        .publisher
        .records()
        .into_iter()
        .filter(|record| record.topic.starts_with("veil.sanitized."))
        .map(|record| serde_json::from_slice(&record.payload).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn a_batch_is_filtered_published_and_acknowledged() {
    let harness = harness();
    let body = json!({"batch": [track("Document Opened"), track("Exported Matter List")],
                      "context": {"locale": "de-DE"}, "sentAt": "2026-11-20T08:00:00.000Z"});
    let (status, answer, _) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["reason"], "event_not_allowlisted");
    assert_eq!(answer["rejected"][0]["index"], 1);

    let records = harness.publisher.records();
    let events = sanitized(&harness);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["tenant"], "t-1000");
    assert_eq!(event["event"], "Document Opened");
    assert_eq!(
        event["fields"]["context.locale"], "de-DE",
        "batch context merged"
    );
    assert_eq!(event["fields"]["properties.feature"], "preview");
    assert_eq!(
        records[0].topic.as_ref(),
        "veil.sanitized.eu",
        "the tenant's region"
    );
    let key = std::str::from_utf8(&records[0].key).expect("ascii key");
    assert_eq!(
        key,
        format!(
            "t-1000/{}",
            event["pseudonyms"]["userId"].as_str().expect("pseudonym")
        )
    );
    let everything = format!("{records:?}");
    for forbidden in ["Merger", "10.1.2.3", "alice@", "u-000123"] {
        assert!(
            !everything.contains(forbidden),
            "{forbidden} left the gateway"
        );
    }
    // The audit record names reasons, fields and the event, never values.
    let audit: Value =
        serde_json::from_slice(&records.last().expect("audit").payload).expect("JSON");
    assert_eq!(
        records.last().map(|r| r.topic.as_ref()),
        Some("veil.rejections")
    );
    assert_eq!(audit["tenant"], "t-1000");
    // The refused event's name is the client's own words (it could name a matter): withheld.
    assert_eq!(
        audit["rejected"][0],
        json!({"reason": "event_not_allowlisted", "field": null, "event": null, "count": 1})
    );
    let dropped: Vec<&str> = audit["dropped"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        dropped.contains(&"properties.document_name") && dropped.contains(&"context.ip"),
        "{dropped:?}"
    );
}

#[tokio::test]
async fn browser_short_paths_take_the_write_key_from_a_text_plain_body() {
    let harness = harness();
    let mut message = track("Document Opened");
    message.as_object_mut().expect("object").remove("type");
    message["writeKey"] = json!("wk_test_enhanced");
    // What `fetch` sends for a string body: a UTF-8 label is accepted, quoted or not.
    let request = Request::post("/v1/t")
        .header(header::CONTENT_TYPE, "text/plain;charset=\"UTF-8\"")
        .body(Body::from(message.to_string()))
        .expect("request");
    let (status, answer, _) = send(&harness, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let events = sanitized(&harness);
    assert_eq!(events[0]["type"], "track", "the endpoint's type filled in");
    assert_eq!(events[0]["tenant"], "t-2000");
    assert_eq!(events[0]["tier"], "enhanced");
    assert_eq!(
        harness.publisher.records()[0].topic.as_ref(),
        "veil.sanitized.us"
    );

    // A message of another type posted to a single-type endpoint is refused.
    let (status, answer, _) = send(
        &harness,
        post(
            "/v1/identify",
            Some("wk_test_baseline"),
            track("Document Opened").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "wrong_type");
}

#[tokio::test]
async fn unknown_or_missing_write_keys_are_401() {
    let harness = harness();
    for key in [None, Some("wk_test_baselinf"), Some("")] {
        let (status, answer, headers) = send(
            &harness,
            post("/v1/track", key, track("Document Opened").to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer["error"]["code"], "unauthorized");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }
    assert!(harness.publisher.records().is_empty());
}

#[tokio::test]
async fn a_leading_byte_order_mark_is_ignored_and_nowhere_else() {
    let harness = harness();
    let message = track("Document Opened").to_string();
    let batch = format!("{{\"batch\":[{message}]}}");
    let mut gzipped = GzEncoder::new(Vec::new(), Compression::fast());
    gzipped
        .write_all(format!("\u{feff}{batch}").as_bytes())
        .expect("gzip");
    let gzipped = gzipped.finish().expect("gzip");
    let accepted = [
        post(
            "/v1/track",
            Some("wk_test_baseline"),
            format!("\u{feff}{message}"),
        ),
        post(
            "/v1/batch",
            Some("wk_test_baseline"),
            format!("\u{feff}{batch}"),
        ),
        Request::post("/v1/batch")
            .header(header::AUTHORIZATION, basic("wk_test_baseline"))
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(gzipped))
            .expect("request"),
    ];
    for request in accepted {
        let (status, answer, _) = send(&harness, request).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let events = sanitized(&harness);
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|event| event["event"] == "Document Opened")
    );

    // Only at the very start: after whitespace, or twice, it is not JSON.
    for body in [
        format!(" \u{feff}{message}"),
        format!("\u{feff}\u{feff}{message}"),
    ] {
        let (status, answer, _) =
            send(&harness, post("/v1/track", Some("wk_test_baseline"), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"]["code"], "malformed_json");
    }
    assert_eq!(sanitized(&harness).len(), 3, "nothing more published");
}

#[tokio::test]
async fn bad_bodies_get_a_named_400_and_nothing_is_published() {
    let harness = harness();
    let valid = track("Document Opened").to_string();
    let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
    bomb.write_all(&vec![b' '; 64 * 1024 * 1024]).expect("gzip");
    let bomb = bomb.finish().expect("gzip");
    assert!(
        bomb.len() < 200 * 1024,
        "a small body that inflates to 64 MiB"
    );
    let huge = format!("{{\"batch\":[{}]}}", vec![valid.as_str(); 1600].join(","));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post(
                "/v1/track",
                Some("wk_test_baseline"),
                valid[..valid.len() / 2].to_owned(),
            ),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            post(
                "/v1/batch",
                Some("wk_test_baseline"),
                "{\"batch\": [".to_owned(),
            ),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            post("/v1/batch", Some("wk_test_baseline"), valid.clone()),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            post(
                "/v1/track",
                Some("wk_test_baseline"),
                r#"{"type":"track","event":"Document Opened","userId":"a","userId":"b"}"#
                    .to_owned(),
            ),
            StatusCode::BAD_REQUEST,
            "duplicate_key",
        ),
        (
            post(
                "/v1/track",
                Some("wk_test_baseline"),
                r#"{"type":"track","event":"Document Opened"}"#.to_owned(),
            ),
            StatusCode::BAD_REQUEST,
            "missing_identity",
        ),
        (
            post(
                "/v1/track",
                Some("wk_test_baseline"),
                r#"{"type":"track","userId":"u"}"#.to_owned(),
            ),
            StatusCode::BAD_REQUEST,
            "missing_event",
        ),
        (
            post("/v1/batch", Some("wk_test_baseline"), huge),
            StatusCode::BAD_REQUEST,
            "body_too_large",
        ),
        (
            Request::post("/v1/batch")
                .header(header::AUTHORIZATION, basic("wk_test_baseline"))
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from(bomb))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "decompressed_body_too_large",
        ),
        (
            Request::post("/v1/batch")
                .header(header::AUTHORIZATION, basic("wk_test_baseline"))
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from(valid.clone()))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "bad_gzip",
        ),
        (
            Request::post("/v1/batch")
                .header(header::AUTHORIZATION, basic("wk_test_baseline"))
                .header(header::CONTENT_ENCODING, "br")
                .body(Body::from(valid.clone()))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
        ),
        (
            Request::post("/v1/track")
                .header(header::AUTHORIZATION, basic("wk_test_baseline"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(valid.clone()))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
        ),
        (
            // JSON on the wire is UTF-8: bytes declared as another charset are not read as it.
            Request::post("/v1/track")
                .header(header::AUTHORIZATION, basic("wk_test_baseline"))
                .header(header::CONTENT_TYPE, "application/json; charset=ISO-8859-1")
                .body(Body::from(valid.clone()))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_charset",
        ),
    ];
    for (request, expected_status, expected_code) in cases {
        let (status, answer, _) = send(&harness, request).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (expected_status, Some(expected_code)),
            "{answer}"
        );
        let text = answer.to_string();
        for value in ["Merger", "alice@", "u-000123"] {
            assert!(!text.contains(value), "the error echoes no value: {text}");
        }
    }
    assert!(harness.publisher.records().is_empty());
    // The server still serves.
    let (status, _, _) = send(&harness, post("/v1/track", Some("wk_test_baseline"), valid)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn gzip_bodies_are_accepted() {
    let harness = harness();
    let body = json!({"batch": [track("Document Opened"), track("Document Saved")]}).to_string();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(body.as_bytes()).expect("gzip");
    let request = Request::post("/v1/batch")
        .header(header::AUTHORIZATION, basic("wk_test_baseline"))
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip.finish().expect("gzip")))
        .expect("request");
    let (status, answer, _) = send(&harness, request).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (StatusCode::OK, Some(2))
    );
}

#[tokio::test]
async fn an_outage_is_503_with_retry_after_and_nothing_counts_as_accepted() {
    let harness = harness();
    harness.publisher.set_down(true);
    let body = json!({"batch": [track("Document Opened")]}).to_string();
    let (status, answer, headers) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], "unavailable");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    let (status, _, _) = send(
        &harness,
        Request::get("/readyz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    harness.publisher.set_down(false);
    let (status, _, _) = send(&harness, post("/v1/batch", Some("wk_test_baseline"), body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sanitized(&harness).len(), 1);
}

#[tokio::test]
async fn backpressure_answers_503_with_retry_after_and_publishes_nothing_until_lifted() {
    let harness = harness();
    harness.gateway.set_backpressure(true);
    let body = json!({"batch": [track("Document Opened")]}).to_string();
    let (status, answer, headers) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], "unavailable");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(harness.publisher.records().is_empty());
    harness.gateway.set_backpressure(false);
    let (status, _, _) = send(&harness, post("/v1/batch", Some("wk_test_baseline"), body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sanitized(&harness).len(), 1);
}

#[tokio::test]
async fn a_write_key_over_its_rate_gets_429_with_retry_after() {
    let harness = harness_with(GatewayConfig {
        rate_limit_per_second: 10,
        rate_limit_burst: 10,
        ..GatewayConfig::default()
    });
    let batch = |n: usize| json!({"batch": vec![track("Document Opened"); n]}).to_string();
    let (status, _, _) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), batch(8)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer, headers) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), batch(8)),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer["error"]["code"], "rate_limited");
    assert!(
        headers[header::RETRY_AFTER]
            .to_str()
            .expect("ascii")
            .parse::<u64>()
            .expect("seconds")
            >= 1
    );
    // Another write key has its own budget.
    let (status, _, _) = send(
        &harness,
        post("/v1/batch", Some("wk_test_enhanced"), batch(8)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_accepted_rejected_and_dropped_by_name() {
    let harness = harness();
    let body = json!({"batch": [track("Document Opened"), track("Nope")]}).to_string();
    let (status, _, _) = send(&harness, post("/v1/batch", Some("wk_test_baseline"), body)).await;
    assert_eq!(status, StatusCode::OK);
    let response = harness
        .router
        .clone()
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    assert!(
        text.contains("veil_gateway_messages_accepted_total{region=\"eu\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("veil_gateway_messages_rejected_total{reason=\"event_not_allowlisted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "veil_gateway_fields_dropped_total{field=\"context.ip\",reason=\"not_allowlisted\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("veil_gateway_produce_latency_seconds_count 1"),
        "{text}"
    );
    assert!(!text.contains("10.1.2.3") && !text.contains("Merger"));
    assert_eq!(harness.gateway.metrics().render(), text);
}

#[tokio::test]
async fn cors_preflight_is_answered_for_browsers() {
    let harness = harness();
    let request = Request::options("/v1/t")
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .expect("request");
    let response = harness
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("answer");
    assert!(response.status().is_success());
    assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn analytics_js_loads_its_settings_from_the_gateway() {
    let harness = harness();
    let request = Request::get("/v1/projects/wk_test_baseline/settings")
        .header(header::HOST, "veil.example:8088")
        .body(Body::empty())
        .expect("request");
    let (status, settings, _) = send(&harness, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        settings["integrations"]["Segment.io"]["apiHost"],
        "veil.example:8088/v1"
    );
    assert_eq!(settings["integrations"]["Segment.io"]["protocol"], "http");
    assert_eq!(
        settings["integrations"].as_object().map(|o| o.len()),
        Some(1),
        "no other destination"
    );
    let request = Request::get("/v1/projects/wk_unknown_key/settings")
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = send(&harness, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

mod limits;
mod wire;
