//! The HTTP face of the gateway: Segment's Tracking API (`/v1/track`, …, `/v1/batch`, and the
//! short paths analytics.js posts to), health, readiness and metrics.
//!
//! [`app`] builds the router (tests drive it with `oneshot`); [`serve`] runs it on a listener
//! with read timeouts and a graceful shutdown that waits for Kafka's acknowledgements.

mod body;
mod config;
mod error;
mod ingest;
mod metrics;
mod serve;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use veil_sanitized::MessageKind;

pub use body::MAX_REQUEST_BYTES;
pub use config::GatewayConfig;
pub use error::ApiError;
pub use metrics::GatewayMetrics;
pub use serve::serve;
pub use state::Gateway;

use ingest::{Endpoint, ingest};

/// Every ingest path and what it takes. Short paths are the ones analytics.js posts to.
const ROUTES: [(&str, Endpoint); 15] = [
    ("/v1/track", Endpoint::Single(MessageKind::Track)),
    ("/v1/identify", Endpoint::Single(MessageKind::Identify)),
    ("/v1/page", Endpoint::Single(MessageKind::Page)),
    ("/v1/screen", Endpoint::Single(MessageKind::Screen)),
    ("/v1/group", Endpoint::Single(MessageKind::Group)),
    ("/v1/alias", Endpoint::Single(MessageKind::Alias)),
    ("/v1/batch", Endpoint::Batch),
    ("/v1/import", Endpoint::Batch),
    ("/v1/t", Endpoint::Single(MessageKind::Track)),
    ("/v1/i", Endpoint::Single(MessageKind::Identify)),
    ("/v1/p", Endpoint::Single(MessageKind::Page)),
    ("/v1/s", Endpoint::Single(MessageKind::Screen)),
    ("/v1/g", Endpoint::Single(MessageKind::Group)),
    ("/v1/a", Endpoint::Single(MessageKind::Alias)),
    ("/v1/b", Endpoint::Batch),
];

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(Any)
        .max_age(std::time::Duration::from_secs(86_400))
}

/// The gateway's router over shared state.
pub fn app(gateway: Arc<Gateway>) -> Router {
    let mut router = Router::new();
    for (path, endpoint) in ROUTES {
        router = router.route(
            path,
            post(
                move |State(gateway): State<Arc<Gateway>>, headers: HeaderMap, body: Body| async move {
                    let response = ingest(gateway.clone(), endpoint, headers, body).await;
                    count_status(&gateway, response)
                },
            ),
        );
    }
    let cors = cors(&gateway.config.cors_origins);
    router
        .route("/v1/projects/{write_key}/settings", get(browser_settings))
        // analytics.js reports its own telemetry here; Veil takes none of it.
        .route("/v1/m", post(|| async { StatusCode::OK }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // After every route: it applies to the routes registered before it.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound })
        .layer(cors)
        .with_state(gateway)
}

fn count_status(
    gateway: &Gateway,
    response: Result<axum::Json<serde_json::Value>, ApiError>,
) -> Response {
    let response = response.into_response();
    gateway
        .metrics
        .requests
        .get_or_create(&metrics::StatusLabels {
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// What analytics.js (analytics-next) loads from its CDN before sending anything: pointing its
/// `cdnURL` at the gateway is then the only change a web page needs. The settings send events
/// back to this gateway and enable nothing else (no device-mode destinations, no metrics).
async fn browser_settings(
    State(gateway): State<Arc<Gateway>>,
    write_key: Result<axum::extract::Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    // axum's own rejection is plain text that may quote the path; ours names the parameter only.
    let Ok(axum::extract::Path(write_key)) = write_key else {
        return ApiError::MalformedPath("write_key").into_response();
    };
    if gateway.write_keys.lookup(write_key.as_bytes()).is_none() {
        return ApiError::Unauthorized.into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| {
            host.bytes().all(|byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b':' | b'[' | b']')
            })
        })
        .unwrap_or("localhost");
    let protocol = headers
        .get("x-forwarded-proto")
        .and_then(|proto| proto.to_str().ok())
        .filter(|proto| *proto == "https")
        .unwrap_or("http");
    let settings = json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": false,
            }
        },
        "plan": {"track": {"__default": {"enabled": true}}, "identify": {"__default": {"enabled": true}}, "group": {"__default": {"enabled": true}}},
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    });
    axum::Json(settings).into_response()
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if gateway.publisher.ready().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "kafka unreachable").into_response()
    }
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gateway.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
