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
    /// A stored file could not be read: a compaction, erasure or retention run replaced or
    /// deleted one the query had listed (the same request succeeds when asked again), or, if it
    /// persists, a damaged file (logged as an error).
    #[error("the stored files changed or could not be read while the query ran: retry")]
    DataChanged,
    /// A source file (tenants, allowlist, keystore) could not be read.
    #[error("cannot read {0}")]
    Source(String),
    /// Startup or serving failed.
    #[error("server: {0}")]
    Server(String),
}

impl From<datafusion::error::DataFusionError> for ReportingError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        // Its message would name a server path, and the client's request was not at fault.
        if storage_read_failed(&error) {
            return ReportingError::DataChanged;
        }
        // Engine messages name tables, columns and plan steps, and quote values in some
        // (`Cannot cast string '…'` quotes a stored pseudonym): those quotes are emptied.
        ReportingError::Query(without_quoted_values(&error.strip_backtrace()))
    }
}

/// Whether `error` comes from reading the stored files rather than from the query: a file the
/// query listed was gone, or replaced under the same name (an erasure's rewrite) so that its
/// listed size no longer held, or it is damaged.
pub(crate) fn storage_read_failed(error: &datafusion::error::DataFusionError) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    use datafusion::object_store;
    use datafusion::parquet::errors::ParquetError;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        let storage = cause.is::<object_store::Error>()
            || cause.is::<std::io::Error>()
            || cause.is::<ParquetError>()
            || matches!(
                cause.downcast_ref::<ArrowError>(),
                Some(ArrowError::ParquetError(_) | ArrowError::IoError(..))
            )
            || matches!(
                cause.downcast_ref::<DataFusionError>(),
                Some(DataFusionError::ParquetError(_) | DataFusionError::ObjectStore(_))
            );
        if storage {
            return true;
        }
        current = cause.source();
    }
    false
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
            ReportingError::DataChanged => (StatusCode::SERVICE_UNAVAILABLE, "data_changed"),
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
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
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
    use std::sync::Arc;

    use axum::response::IntoResponse;
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    use datafusion::object_store;

    use super::{ReportingError, storage_read_failed, without_quoted_values};

    fn not_found() -> DataFusionError {
        DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "/data/events/tenant=t-1/date=2026-12-03/part-x.parquet".to_owned(),
            source: "gone".into(),
        }))
    }

    #[test]
    fn a_file_gone_or_rewritten_mid_query_is_a_retryable_503_without_its_path() {
        // As the engine reports it: directly, inside context, or through an Arrow stream.
        let wrapped = [
            not_found(),
            not_found().context("scanning events"),
            DataFusionError::ArrowError(
                Box::new(ArrowError::ExternalError(Box::new(not_found()))),
                None,
            ),
            DataFusionError::Shared(Arc::new(not_found())),
            DataFusionError::IoError(std::io::Error::from(std::io::ErrorKind::NotFound)),
        ];
        for error in wrapped {
            assert!(storage_read_failed(&error), "{error}");
            let reporting = ReportingError::from(error);
            assert!(matches!(reporting, ReportingError::DataChanged));
            assert!(!reporting.to_string().contains("/data/"));
            let response = reporting.into_response();
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
        }
        // A file rewritten under its name while read (an erasure): its listed size is stale.
        let rewritten = [
            DataFusionError::ArrowError(
                Box::new(ArrowError::ParquetError(
                    "External: Src size is incorrect".to_owned(),
                )),
                None,
            ),
            DataFusionError::ObjectStore(Box::new(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: "Out of range of file".into(),
            }))
            .context("Failed to fetch metadata for file"),
            DataFusionError::IoError(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        ];
        for error in rewritten {
            assert!(storage_read_failed(&error), "{error}");
        }
        // Errors of the query itself stay the client's.
        for error in [
            DataFusionError::Plan("no field named nope".to_owned()),
            DataFusionError::Execution("division by zero".to_owned()),
            DataFusionError::ArrowError(
                Box::new(ArrowError::CastError("cannot cast".to_owned())),
                None,
            ),
        ] {
            assert!(!storage_read_failed(&error), "{error}");
            assert!(matches!(
                ReportingError::from(error),
                ReportingError::Query(_)
            ));
        }
    }

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
