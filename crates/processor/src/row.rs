//! A decoded sanitized message with the parts the processor partitions and deduplicates on.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veil_sanitized::{SCHEMA_VERSION, SanitizedMessage};

/// Why a Kafka record is not a storable sanitized message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the sanitized-message contract (the parser's position-only description).
    #[error("not a sanitized message: {0}")]
    Contract(String),
    /// A contract version this processor does not read.
    #[error("unsupported schema version")]
    Version,
    /// `timestamp` or `receivedAt` is not RFC 3339.
    #[error("field {0} is not an RFC 3339 date-time")]
    Time(&'static str),
    /// The tenant id is not usable as a partition value.
    #[error("field tenant is not a valid tenant id")]
    Tenant,
}

/// One message ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The message.
    pub message: SanitizedMessage,
    /// `timestamp` in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    /// `receivedAt` in milliseconds since the Unix epoch (UTC).
    pub received_ms: i64,
    /// The partition day of `timestamp`, `YYYY-MM-DD` (late events land in their own day).
    pub date: String,
}

/// Parses an RFC 3339 date-time into milliseconds since the Unix epoch and its UTC day
/// (`YYYY-MM-DD`); `field` names it in the error.
pub fn parse_time(text: &str, field: &'static str) -> Result<(i64, String), DecodeError> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| DecodeError::Time(field))?;
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| DecodeError::Time(field))?;
    let utc = at.to_offset(time::UtcOffset::UTC);
    let date = format!(
        "{:04}-{:02}-{:02}",
        utc.year(),
        u8::from(utc.month()),
        utc.day()
    );
    Ok((ms, date))
}

impl Row {
    /// Decodes one Kafka record's payload.
    pub fn decode(payload: &[u8]) -> Result<Row, DecodeError> {
        let message: SanitizedMessage = serde_json::from_slice(payload).map_err(|error| {
            // serde's data errors can quote input ("unknown variant `x`"); keep position only.
            DecodeError::Contract(format!(
                "invalid at line {} column {}",
                error.line(),
                error.column()
            ))
        })?;
        if message.schema != SCHEMA_VERSION {
            return Err(DecodeError::Version);
        }
        if !veil_sanitized::is_valid_tenant(&message.tenant) {
            return Err(DecodeError::Tenant);
        }
        let (timestamp_ms, date) = parse_time(&message.timestamp, "timestamp")?;
        let (received_ms, _) = parse_time(&message.received_at, "receivedAt")?;
        Ok(Row {
            message,
            timestamp_ms,
            received_ms,
            date,
        })
    }
}
