//! Reading a request body within Segment's limits: the bytes on the wire and, for gzip, the
//! inflated bytes, both at most 500 KB. A gzip bomb is cut off at the limit, never inflated whole.

use std::io::{ErrorKind, Read};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use flate2::read::MultiGzDecoder;

use super::error::ApiError;

/// Segment's limit for one request, after decompression.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// Checks `Content-Type` (JSON, or text/plain as browsers send to avoid a preflight) and
/// `Content-Encoding`; returns whether the body is gzip.
pub(crate) fn check_headers(headers: &HeaderMap) -> Result<bool, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_REQUEST_BYTES as u64) {
        // Refused before reading a byte of it.
        return Err(ApiError::BodyTooLarge {
            limit_kb: MAX_REQUEST_BYTES / 1024,
        });
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type
            .to_str()
            .map_err(|_| ApiError::UnsupportedMediaType)?;
        let mut parts = content_type.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        if !matches!(essence.as_str(), "application/json" | "text/plain" | "") {
            return Err(ApiError::UnsupportedMediaType);
        }
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("charset") && !is_utf8_label(value) {
                return Err(ApiError::UnsupportedCharset);
            }
        }
    }
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(false),
        Some(value) => match value.to_str().map(|v| v.trim().to_ascii_lowercase()) {
            Ok(encoding) if encoding == "gzip" || encoding == "x-gzip" => Ok(true),
            Ok(encoding) if encoding == "identity" || encoding.is_empty() => Ok(false),
            _ => Err(ApiError::UnsupportedEncoding),
        },
    }
}

/// Whether a `charset` value names UTF-8 (or US-ASCII, its subset), quoted or not.
fn is_utf8_label(value: &str) -> bool {
    let label = value.trim().trim_matches('"');
    ["utf-8", "utf8", "us-ascii"]
        .iter()
        .any(|utf8| label.eq_ignore_ascii_case(utf8))
}

/// Reads the whole body, at most [`MAX_REQUEST_BYTES`] of it, within `deadline` from the call
/// (one deadline for the whole body, not an idle timeout between its chunks).
pub(crate) async fn read_body(body: Body, deadline: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_REQUEST_BYTES)).await {
        Err(_elapsed) => Err(ApiError::BodyTimeout {
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        }),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(read_error(&error)),
    }
}

/// What a failed body read says about the client: over the limit, malformed chunked framing,
/// or a body that ended early (the client closed or reset its side). None is the server's fault.
fn read_error(error: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut source = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return ApiError::BodyTooLarge {
                limit_kb: MAX_REQUEST_BYTES / 1024,
            };
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::InvalidInput | ErrorKind::InvalidData => ApiError::MalformedFraming,
                _ => ApiError::IncompleteBody,
            };
        }
        source = current.source();
    }
    ApiError::IncompleteBody
}

/// Inflates a gzip body, stopping as soon as it passes [`MAX_REQUEST_BYTES`].
pub(crate) fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut inflated =
        Vec::with_capacity(compressed.len().saturating_mul(4).min(MAX_REQUEST_BYTES));
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX) + 1;
    MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|_| ApiError::BadGzip)?;
    if inflated.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::DecompressedTooLarge {
            limit_kb: MAX_REQUEST_BYTES / 1024,
        });
    }
    Ok(inflated)
}
