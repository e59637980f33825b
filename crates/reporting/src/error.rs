//! One error type for every handler, answered as JSON (API) with a status and a code. Messages
//! name fields and reasons, never values, tokens or pseudonyms.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request was not answered with a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportingError {
    /// No token, or a token no viewer has.
    #[error("a valid viewer token is required")]
    Unauthorized,
    /// The token's role may not see this.
    #[error("this viewer may not see {0}")]
    Forbidden(&'static str),
    /// No such tenant or route.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A parameter is malformed (the message names the parameter).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A SQL query the endpoint does not run (not a single read-only query).
    #[error("query refused: {0}")]
    QueryRefused(String),
    /// A SQL query ran out of time.
    #[error("query timed out")]
    Timeout,
    /// The query engine failed.
    #[error("query failed: {0}")]
    Query(String),
    /// A source file (tenants, allowlist, keystore) could not be read.
    #[error("cannot read {0}")]
    Source(String),
    /// Startup or serving failed.
    #[error("server: {0}")]
    Server(String),
}

impl From<datafusion::error::DataFusionError> for ReportingError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        // Engine messages name tables, columns and plan steps, and quote values in some
        // (`Cannot cast string '…'` quotes a stored pseudonym): those quotes are emptied.
        ReportingError::Query(without_quoted_values(&error.strip_backtrace()))
    }
}

/// `message` with the text inside single quotes (SQL string values) and inside `Utf8("…")`
/// literals replaced by `…`; identifiers (in double quotes) stay, so the message still says
/// which column or table is meant.
fn without_quoted_values(message: &str) -> String {
    let mut scrubbed = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        // The earliest opening of a quoted value, and what closes it.
        let found = [("'", "'"), ("Utf8(\"", "\")"), ("Utf8View(\"", "\")")]
            .into_iter()
            .filter_map(|(opening, closing)| Some((rest.find(opening)?, opening, closing)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, opening, closing)) = found else {
            break;
        };
        scrubbed.push_str(&rest[..at]);
        scrubbed.push_str(opening);
        let inside = &rest[at + opening.len()..];
        match inside.find(closing) {
            Some(end) => {
                scrubbed.push('…');
                scrubbed.push_str(closing);
                rest = &inside[end + closing.len()..];
            }
            // An unclosed quote: everything after it goes.
            None => {
                scrubbed.push('…');
                return scrubbed;
            }
        }
    }
    scrubbed.push_str(rest);
    scrubbed
}

impl ReportingError {
    /// The HTTP status and stable machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ReportingError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ReportingError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ReportingError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ReportingError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ReportingError::QueryRefused(_) => (StatusCode::BAD_REQUEST, "query_refused"),
            ReportingError::Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ReportingError::Query(_) => (StatusCode::BAD_REQUEST, "query_failed"),
            ReportingError::Source(_) | ReportingError::Server(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for ReportingError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "report failed");
        }
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"veil-reporting\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::without_quoted_values;

    #[test]
    fn engine_messages_lose_their_quoted_values_and_keep_identifiers() {
        assert_eq!(
            without_quoted_values(
                "Arrow error: Cast error: Cannot cast string 'qdMFSznlxy6vjjkddak3oQ' to value of Int32 type"
            ),
            "Arrow error: Cast error: Cannot cast string '…' to value of Int32 type"
        );
        assert_eq!(
            without_quoted_values(
                "Filter: events.\"userId\" = Utf8(\"Zyxwq Quorran\") OR x = 'a' AND y = 'b"
            ),
            "Filter: events.\"userId\" = Utf8(\"…\") OR x = '…' AND y = '…"
        );
        assert_eq!(
            without_quoted_values("Schema error: No field named nope."),
            "Schema error: No field named nope."
        );
    }
}
