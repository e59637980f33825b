//! Who sees what: the auth matrix (401/403, one tenant's token against another's data, path and
//! parameter tricks, the login cookie), the OpenAPI document covering every route, the vendor's
//! SQL endpoint, and the service on a real port.

mod reporting_support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use reporting_support::*;
use serde_json::Value;

fn small_dataset() -> Vec<Event> {
    let mut events = Vec::new();
    for (tenant, epoch) in [("t-1000", "2026-11"), ("t-1001", "stable")] {
        for user in 0..7 {
            events.push(Event {
                tenant,
                epoch: epoch.to_owned(),
                user,
                date: "2026-11-03".to_owned(),
                event: "Document Opened",
                feature: Some("search"),
                app: "DMS Web",
                version: "2026.11",
                os: "Windows",
            });
        }
    }
    events
}

const TENANT_1000: [&str; 4] = [
    "/tenants/t-1000",
    "/api/tenants/t-1000/activity",
    "/api/tenants/t-1000/breakdowns",
    "/api/tenants/t-1000/comparison",
];
const TENANT_1001: [&str; 4] = [
    "/tenants/t-1001",
    "/api/tenants/t-1001/activity",
    "/api/tenants/t-1001/breakdowns",
    "/api/tenants/t-1001/comparison",
];
const VENDOR_ONLY: [&str; 4] = ["/license", "/api/license", "/api/license.csv", "/sql"];
const REVIEWER_ONLY: [&str; 6] = [
    "/review",
    "/api/review/allowlist",
    "/api/review/digests",
    "/api/review/rejections",
    "/api/review/tenants",
    "/api/review/keys",
];

async fn sql(
    state: &veil_reporting::AppState,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut request = Request::post("/api/sql").header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(
        state,
        request.body(Body::from(body.to_owned())).expect("request"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_sees_its_views_and_nothing_else() {
    let fixture = Fixture::new();
    fixture.store_events(&small_dataset());
    let state = fixture.state();
    let all: Vec<&str> = TENANT_1000
        .iter()
        .chain(&TENANT_1001)
        .chain(&VENDOR_ONLY)
        .chain(&REVIEWER_ONLY)
        .copied()
        .collect();
    for path in &all {
        assert_eq!(
            get(&state, path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path} without a token"
        );
        assert_eq!(
            get(&state, path, Some("not-a-token")).await.0,
            StatusCode::UNAUTHORIZED,
            "{path} with a bad token"
        );
        assert_eq!(
            get(&state, path, Some(&T1000[..T1000.len() - 1])).await.0,
            StatusCode::UNAUTHORIZED,
            "{path} with a prefix of a token"
        );
    }
    let expect = |token: &str, path: &str| -> StatusCode {
        let allowed = match token {
            T1000 => TENANT_1000.contains(&path),
            T1001 => TENANT_1001.contains(&path),
            VENDOR => {
                TENANT_1000.contains(&path)
                    || TENANT_1001.contains(&path)
                    || VENDOR_ONLY.contains(&path)
            }
            _ => REVIEWER_ONLY.contains(&path),
        };
        if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        }
    };
    for token in [T1000, T1001, VENDOR, REVIEWER] {
        for path in &all {
            let (status, body) = get(&state, path, Some(token)).await;
            assert_eq!(status, expect(token, path), "{path} as {token}: {body}");
            if status == StatusCode::FORBIDDEN {
                assert!(!body.contains("search"), "a refusal carries no data");
            }
        }
    }
    // SQL is the vendor's only.
    for token in [T1000, T1001, REVIEWER] {
        assert_eq!(
            sql(&state, Some(token), r#"{"query":"SELECT 1"}"#).await.0,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        sql(&state, None, r#"{"query":"SELECT 1"}"#).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_token_never_reaches_another_tenant() {
    let fixture = Fixture::new();
    fixture.store_events(&small_dataset());
    let state = fixture.state();
    let t1001_users = pseudonym("t-1001", 0);
    for path in [
        "/api/tenants/t-1001/activity",
        "/api/tenants/t-1001/activity?tenant=t-1000",
        "/api/tenants/t-1000/activity?tenant=t-1001",
        "/api/tenants/t-1000/activity?month=2026-11&tenant=t-1001",
        "/api/tenants/T-1001/activity",
        "/api/tenants/t-1000%2F..%2Ft-1001/activity",
        "/api/tenants/t-1000/../t-1001/activity",
        "/api/tenants/..%2Ft-1001/activity",
        "/api/tenants/t-1001%00/activity",
        "/api/tenants/t-1001/breakdowns?month=2026-11",
        "/tenants/t-1001?month=2026-11",
        "/tenants/t-1000?tenant=t-1001",
        "/api/license?tenant=t-1000",
        "/api/tenants/t-9999/activity",
    ] {
        let (status, body) = get(&state, path, Some(T1000)).await;
        assert!(
            matches!(status.as_u16(), 400 | 403 | 404),
            "{path}: {status}"
        );
        assert!(
            !body.contains("t-1001\"") && !body.contains(&t1001_users),
            "{path} leaks: {body}"
        );
    }
    // A tenant id the viewer may see but nobody has: the tenant's own view is never confused.
    let (status, body) = get(
        &state,
        "/api/tenants/t-1000/activity?month=2026-11",
        Some(T1000),
    )
    .await;
    assert_eq!(status, 200);
    let value: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(value["tenant"], "t-1000");
    // The vendor asking for a tenant that does not exist gets 404, a tenant gets 403 (no probing).
    assert_eq!(
        get(&state, "/api/tenants/t-9999/activity", Some(VENDOR))
            .await
            .0,
        404
    );
    assert_eq!(
        get(&state, "/api/tenants/t-9999/activity", Some(T1000))
            .await
            .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_cookie_is_http_only_and_scoped_like_the_token() {
    let fixture = Fixture::new();
    fixture.store_events(&small_dataset());
    let state = fixture.state();
    let response = send(
        &state,
        Request::get(format!("/login?token={T1000}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(response.0, StatusCode::SEE_OTHER);
    let raw = veil_reporting::app(state.clone());
    let answer = tower::ServiceExt::oneshot(
        raw,
        Request::get(format!("/login?token={T1000}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .expect("answer");
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(
        answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/tenants/t-1000")
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let with_cookie = |path: &str| {
        Request::get(path)
            .header("cookie", format!("theme=dark; {pair}"))
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(send(&state, with_cookie("/tenants/t-1000")).await.0, 200);
    assert_eq!(send(&state, with_cookie("/tenants/t-1001")).await.0, 403);
    assert_eq!(send(&state, with_cookie("/license")).await.0, 403);
    // A bearer header wins over the cookie.
    let mixed = Request::get("/license")
        .header("cookie", format!("veil_report_token={VENDOR}"))
        .header("authorization", format!("Bearer {T1000}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&state, mixed).await.0, 403);
    let (status, page) = send(
        &state,
        Request::get("/login?token=wrong")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!page.contains("wrong"), "the page never echoes a token");
    // Every answer carries the no-outside-resources policy.
    let answer = tower::ServiceExt::oneshot(
        veil_reporting::app(state.clone()),
        with_cookie("/tenants/t-1000"),
    )
    .await
    .expect("answer");
    let csp = answer
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_a_valid_token_is_sent_to_sign_in() {
    let fixture = Fixture::new();
    fixture.store_events(&small_dataset());
    let state = fixture.state();
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let request = |path: &str, accept: Option<&str>, cookie: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("veil_report_token={cookie}"));
        }
        request.body(Body::empty()).expect("request")
    };
    for path in ["/tenants/t-1000", "/license", "/review", "/sql"] {
        for cookie in [None, Some("expired-or-wrong")] {
            let answer = tower::ServiceExt::oneshot(
                veil_reporting::app(state.clone()),
                request(path, Some(browser), cookie),
            )
            .await
            .expect("answer");
            assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(
                answer
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok()),
                Some("/login"),
                "{path}"
            );
        }
        // Not a browser: the 401 with its JSON error, as before.
        let (status, body) = send(&state, request(path, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let error: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(error["error"]["code"], "unauthorized");
        let (status, _) = send(&state, request(path, Some("application/json"), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // The API stays an API, whatever the client accepts; a signed-in browser that may not see
    // a page still gets its 403.
    let (status, _) = send(&state, request("/api/license", Some(browser), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&state, request("/license", Some(browser), Some(T1000))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let fixture = Fixture::new();
    fixture.store_events(&small_dataset());
    let state = fixture.state();
    let (status, body) = get(&state, "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).expect("json");
    let paths = document["paths"].as_object().expect("paths");
    // Every route the router serves (kept in step with `veil_reporting::app` by this list) is
    // documented with its method...
    for (method, path) in [
        ("get", "/"),
        ("get", "/login"),
        ("get", "/logout"),
        ("get", "/healthz"),
        ("get", "/api/openapi.json"),
        ("get", "/tenants/{tenant}"),
        ("get", "/license"),
        ("get", "/review"),
        ("get", "/sql"),
        ("get", "/api/tenants/{tenant}/activity"),
        ("get", "/api/tenants/{tenant}/breakdowns"),
        ("get", "/api/tenants/{tenant}/comparison"),
        ("get", "/api/license"),
        ("get", "/api/license.csv"),
        ("get", "/api/review/allowlist"),
        ("get", "/api/review/digests"),
        ("get", "/api/review/rejections"),
        ("get", "/api/review/tenants"),
        ("get", "/api/review/keys"),
        ("post", "/api/sql"),
    ] {
        assert!(
            paths.get(path).and_then(|item| item.get(method)).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    // ...and every documented route is served (not the fallback 404).
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            let concrete = path.replace("{tenant}", "t-1000");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("authorization", format!("Bearer {VENDOR}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"query":"SELECT 1"}"#))
                .expect("request");
            let (status, body) = send(&state, request).await;
            assert!(
                !body.contains("route not found"),
                "{method} {path}: {status}"
            );
        }
    }
    assert_eq!(get(&state, "/api/nothing-here", Some(VENDOR)).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_sql_endpoint_reads_only_within_limits() {
    let mut fixture = Fixture::new();
    fixture.config.sql_row_limit = 5;
    fixture.config.sql_timeout_ms = 300;
    let events = small_dataset();
    fixture.store_events(&events);
    let state = fixture.state();
    let (status, body) = sql(&state, Some(VENDOR), r#"{"query":"SELECT tenant, count(*) AS n, count(DISTINCT \"userId\") AS users FROM events GROUP BY tenant ORDER BY tenant"}"#).await;
    assert_eq!(status, 200, "{body}");
    let result: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        result["columns"],
        serde_json::json!(["tenant", "n", "users"])
    );
    assert_eq!(
        result["rows"],
        serde_json::json!([["t-1000", 7, 7], ["t-1001", 7, 7]])
    );
    assert_eq!(result["truncated"], false);
    let (_, body) = sql(
        &state,
        Some(VENDOR),
        r#"{"query":"SELECT message_id FROM events"}"#,
    )
    .await;
    let result: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(result["rows"].as_array().map(Vec::len), Some(5));
    assert_eq!(result["truncated"], true);
    for refused in [
        "DROP TABLE events",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "COPY (SELECT * FROM events) TO '/tmp/out.parquet'",
        "SELECT 1; DROP TABLE events",
        "INSERT INTO events SELECT * FROM events",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let (status, body) = sql(
            &state,
            Some(VENDOR),
            &serde_json::json!({"query": refused}).to_string(),
        )
        .await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(body.contains("query_refused"), "{body}");
    }
    let (status, _) = sql(
        &state,
        Some(VENDOR),
        r#"{"query":"SELECT * FROM '/etc/passwd'"}"#,
    )
    .await;
    assert_eq!(status, 400, "no file can be named as a table");
    let (status, body) = sql(
        &state,
        Some(VENDOR),
        r#"{"query":"SELECT count(*) FROM generate_series(1, 100000000000)"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    let (status, _) = sql(&state, Some(VENDOR), r#"{"sql":"SELECT 1"}"#).await;
    assert_eq!(status, 400);
    // A size-growing call is refused before it runs.
    let (status, body) = sql(
        &state,
        Some(VENDOR),
        r#"{"query":"SELECT repeat('a', 2147483647)"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Turned off (as `veil up` does with its in-memory broker), it runs nothing.
    fixture.config.sql = false;
    let state = fixture.state();
    let (status, body) = sql(&state, Some(VENDOR), r#"{"query":"SELECT 1"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("raw SQL is off"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_real_port_until_shutdown() {
    let fixture = Fixture::new();
    fixture.store_events(&small_dataset());
    let state = fixture.state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(veil_reporting::serve_on(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let license = client
        .get(format!("http://{address}/api/license?month=2026-11"))
        .bearer_auth(VENDOR)
        .send()
        .await
        .expect("license");
    assert_eq!(license.status(), 200);
    let body: Value = license.json().await.expect("json");
    assert!(body["rows"].as_array().is_some_and(|rows| !rows.is_empty()));
    let refused = client
        .get(format!("http://{address}/api/license"))
        .bearer_auth(T1000)
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 403);
    stop.send(()).expect("stop");
    server.await.expect("join").expect("clean shutdown");
}
