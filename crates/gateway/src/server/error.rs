//! Every way a request can fail, as one enum that renders itself as Segment-style JSON.
//! Messages name the problem and the field, never a value from the request.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::filter::Rejection;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No write key, or one no tenant has.
    #[error("missing or unknown write key")]
    Unauthorized,
    /// The body on the wire is over the request limit.
    #[error("request body exceeds {limit_kb} KB")]
    BodyTooLarge {
        /// The limit.
        limit_kb: usize,
    },
    /// The gzip body inflates past the request limit (inflation stops there).
    #[error("decompressed request body exceeds {limit_kb} KB")]
    DecompressedTooLarge {
        /// The limit.
        limit_kb: usize,
    },
    /// `Content-Encoding: gzip` but not gzip data.
    #[error("request body is not valid gzip")]
    BadGzip,
    /// The whole body did not arrive within the read deadline.
    #[error("request body did not arrive within {deadline_ms} ms")]
    BodyTimeout {
        /// The deadline (`gateway.request_read_timeout_ms`).
        deadline_ms: u64,
    },
    /// The body ended before its declared length (or its last chunk): the client stopped sending.
    #[error("request body ended before its declared length")]
    IncompleteBody,
    /// The body's framing (chunked transfer coding) is not valid HTTP/1.1.
    #[error("request body framing is malformed (invalid chunked encoding)")]
    MalformedFraming,
    /// More messages in one request than the write key's rate limit ever admits at once.
    #[error("request has more messages than the rate limit admits at once ({limit}); split it")]
    TooManyMessages {
        /// The rate limit's burst: the most messages one request may carry.
        limit: u32,
    },
    /// An encoding other than gzip or identity.
    #[error("content-encoding must be gzip or identity")]
    UnsupportedEncoding,
    /// A media type that is not JSON.
    #[error("content-type must be application/json or text/plain")]
    UnsupportedMediaType,
    /// A declared charset other than UTF-8 (JSON on the wire is UTF-8, RFC 8259).
    #[error("content-type charset must be utf-8")]
    UnsupportedCharset,
    /// The body is not the JSON shape the endpoint takes.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// The one message of a single-message endpoint was refused for what the client sent.
    #[error("message rejected: {0}")]
    InvalidMessage(Rejection),
    /// The message's `type` does not match the endpoint it was posted to.
    #[error("message type does not match the endpoint /v1/{endpoint}")]
    TypeMismatch {
        /// The endpoint's message type.
        endpoint: &'static str,
    },
    /// The write key sent more than its rate allows.
    #[error("rate limit exceeded for this write key")]
    RateLimited {
        /// Seconds until the request would be admitted.
        retry_after_seconds: u64,
    },
    /// Kafka did not acknowledge the messages: nothing of the request counts as accepted.
    #[error("messages could not be stored now; retry later")]
    Unavailable {
        /// Seconds the client should wait.
        retry_after_seconds: u64,
    },
    /// The gateway is shutting down.
    #[error("the gateway is shutting down; retry later")]
    ShuttingDown,
    /// No route has this path.
    #[error("no such endpoint")]
    NotFound,
    /// The path exists, the method does not (`Allow` lists the ones that do).
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// A path parameter is not valid percent-encoded UTF-8.
    #[error("malformed request path: `{0}` is not valid utf-8")]
    MalformedPath(&'static str),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BodyTooLarge { .. }
            | ApiError::DecompressedTooLarge { .. }
            | ApiError::BadGzip
            | ApiError::MalformedBody(_)
            | ApiError::InvalidMessage(_)
            | ApiError::TypeMismatch { .. }
            | ApiError::IncompleteBody
            | ApiError::MalformedFraming
            | ApiError::TooManyMessages { .. }
            | ApiError::MalformedPath(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedEncoding
            | ApiError::UnsupportedMediaType
            | ApiError::UnsupportedCharset => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// A stable snake_case code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::DecompressedTooLarge { .. } => "decompressed_body_too_large",
            ApiError::BadGzip => "bad_gzip",
            // The 408's code predates the 400s below; kept for clients that match on it.
            ApiError::BodyTimeout { .. } => "body_unreadable",
            ApiError::IncompleteBody => "incomplete_body",
            ApiError::MalformedFraming => "malformed_framing",
            ApiError::TooManyMessages { .. } => "too_many_messages",
            ApiError::UnsupportedEncoding => "unsupported_content_encoding",
            ApiError::UnsupportedMediaType => "unsupported_content_type",
            ApiError::UnsupportedCharset => "unsupported_charset",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::InvalidMessage(rejection) => rejection.reason.as_str(),
            ApiError::TypeMismatch { .. } => "type_mismatch",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::MalformedPath(_) => "malformed_path",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "success": false,
            "error": { "code": self.code(), "message": self.to_string() },
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"veil\""),
                );
            }
            ApiError::RateLimited {
                retry_after_seconds,
            }
            | ApiError::Unavailable {
                retry_after_seconds,
            } => {
                let value = HeaderValue::from(retry_after_seconds);
                headers.insert(header::RETRY_AFTER, value.clone());
                // analytics.js reads this one on 429.
                headers.insert("x-ratelimit-reset", value);
            }
            ApiError::ShuttingDown => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
