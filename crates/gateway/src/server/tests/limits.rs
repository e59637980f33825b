//! Bounded answers and final refusals: the rejection list, the burst, and the JSON error format
//! for wrong methods, unknown paths and malformed path parameters.

use super::*;

fn junk_batch(items: usize) -> String {
    format!("{{\"batch\":[{}]}}", vec!["1"; items].join(","))
}

#[tokio::test]
async fn a_batch_of_junk_lists_at_most_100_rejections_and_counts_them_all() {
    let harness = harness();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
    gzip.write_all(junk_batch(50_000).as_bytes()).expect("gzip");
    let request = Request::post("/v1/batch")
        .header(header::AUTHORIZATION, basic("wk_test_baseline"))
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip.finish().expect("gzip")))
        .expect("request");
    let (status, _, bytes) = send_raw(&harness, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.len() < 16 * 1024, "answer of {} bytes", bytes.len());
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["rejectedCount"], 50_000);
    let listed = answer["rejected"].as_array().expect("list");
    assert_eq!(listed.len(), 100);
    assert_eq!(
        (listed[0]["index"].as_u64(), listed[99]["index"].as_u64()),
        (Some(0), Some(99))
    );
    assert!(
        listed.iter().all(|item| item["reason"].is_string()),
        "{answer}"
    );

    // A small batch lists every rejection, as before, and counts them too.
    let body = json!({"batch": [track("Document Opened"), track("Nope"), track("Nor This")]});
    let (status, answer, _) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            answer["accepted"].as_u64(),
            answer["rejectedCount"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        answer["rejected"][1],
        json!({"index": 2, "reason": "event_not_allowlisted", "field": null})
    );
}

#[tokio::test]
async fn a_batch_larger_than_the_burst_is_a_final_400_not_a_429() {
    let harness = harness_with(GatewayConfig {
        rate_limit_per_second: 10,
        rate_limit_burst: 20,
        ..GatewayConfig::default()
    });
    let (status, answer, headers) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), junk_batch(21)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_messages");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("(20)")),
        "{answer}"
    );
    assert!(
        !headers.contains_key(header::RETRY_AFTER),
        "nothing to wait for"
    );
    assert!(harness.publisher.records().is_empty());
    // It took nothing from the budget: a batch of the full burst is still admitted, and only
    // then is the key over its rate (a 429 a client may wait out).
    let (status, answer, _) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), junk_batch(20)),
    )
    .await;
    assert_eq!(
        (status, answer["rejectedCount"].as_u64()),
        (StatusCode::OK, Some(20))
    );
    let (status, answer, headers) = send(
        &harness,
        post("/v1/batch", Some("wk_test_baseline"), junk_batch(1)),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn wrong_methods_and_bad_paths_get_the_json_error_format() {
    let harness = harness();
    for (method, path) in [
        ("GET", "/v1/track"),
        ("PUT", "/v1/batch"),
        ("DELETE", "/v1/t"),
        ("POST", "/v1/projects/wk_test_baseline/settings"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let (status, answer, headers) = send(&harness, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(answer["success"], false);
        assert_eq!(
            answer["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
        assert!(headers.contains_key(header::ALLOW), "{method} {path}");
    }

    let request = Request::get("/v1/projects/%00%ff/settings")
        .body(Body::empty())
        .expect("request");
    let (status, headers, bytes) = send_raw(&harness, request).await;
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(answer["error"]["code"], "malformed_path");
    assert!(
        !text.contains("%ff") && !text.contains("%00") && !text.contains("\\u0000"),
        "{text}"
    );

    let request = Request::get("/v2/track")
        .body(Body::empty())
        .expect("request");
    let (status, answer, _) = send(&harness, request).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}
