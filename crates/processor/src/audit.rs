//! The gateway's audit records (`kafka.topics.rejections`) as rows of the rejections table:
//! one row per (kind, reason, field, event) count of a request. Names and counts only — the
//! records never carry values, and neither does the table.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use crate::row::DecodeError;
use crate::timestamp::{Day, parse_ms};

/// `rejected[]` of an audit record.
#[derive(Debug, Deserialize)]
struct RejectedCount {
    reason: String,
    field: Option<String>,
    event: Option<String>,
    count: u64,
}

/// `dropped[]` of an audit record.
#[derive(Debug, Deserialize)]
struct DroppedCount {
    field: String,
    reason: String,
    count: u64,
}

/// An audit record as the gateway writes it (schema 1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditRecord {
    schema: u32,
    tenant: String,
    region: String,
    policy: String,
    received_at: String,
    rejected: Vec<RejectedCount>,
    dropped: Vec<DroppedCount>,
}

/// `rejected` or `dropped`: a whole message refused, or one field of an accepted message.
pub const KIND_REJECTED: &str = "rejected";
/// See [`KIND_REJECTED`].
pub const KIND_DROPPED: &str = "dropped";

/// One row of the rejections table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Tenant id (the `tenant=` directory).
    pub tenant: String,
    /// UTC day of `received_ms`, `YYYY-MM-DD`.
    pub date: String,
    /// When the gateway received the request, ms since the Unix epoch.
    pub received_ms: i64,
    /// The allowlist digest the gateway applied.
    pub policy: String,
    /// The tenant's data region.
    pub region: String,
    /// [`KIND_REJECTED`] or [`KIND_DROPPED`].
    pub kind: &'static str,
    /// The reason name (`event_not_allowlisted`, `type_mismatch`, …).
    pub reason: String,
    /// The field concerned, when there is one.
    pub field: Option<String>,
    /// The event concerned, when there is one.
    pub event: Option<String>,
    /// How many messages or fields.
    pub count: i64,
}

/// Longest name a row may carry (reasons, fields and events are names, never values).
const MAX_NAME: usize = 256;

fn name(text: String) -> Result<String, DecodeError> {
    if text.len() > MAX_NAME {
        return Err(DecodeError::Contract("name too long".to_owned()));
    }
    Ok(text)
}

/// Decodes one audit record into its rows (none when it counts nothing).
pub fn decode_audit(payload: &[u8]) -> Result<Vec<AuditRow>, DecodeError> {
    let record: AuditRecord = serde_json::from_slice(payload).map_err(|error| {
        DecodeError::Contract(format!(
            "invalid at line {} column {}",
            error.line(),
            error.column()
        ))
    })?;
    if record.schema != 1 {
        return Err(DecodeError::Version);
    }
    if !veil_sanitized::is_valid_tenant(&record.tenant) {
        return Err(DecodeError::Tenant);
    }
    let received_ms = parse_ms(&record.received_at).ok_or(DecodeError::Time("receivedAt"))?;
    let date = Day::of_ms(received_ms).to_string();
    let count = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
    let policy = name(record.policy)?;
    let region = name(record.region)?;
    let row = |kind, reason, field, event, n| AuditRow {
        tenant: record.tenant.clone(),
        date: date.clone(),
        received_ms,
        policy: policy.clone(),
        region: region.clone(),
        kind,
        reason,
        field,
        event,
        count: n,
    };
    let mut rows = Vec::with_capacity(record.rejected.len() + record.dropped.len());
    for entry in record.rejected {
        let field = entry.field.map(name).transpose()?;
        let event = entry.event.map(name).transpose()?;
        rows.push(row(
            KIND_REJECTED,
            name(entry.reason)?,
            field,
            event,
            count(entry.count),
        ));
    }
    for entry in record.dropped {
        rows.push(row(
            KIND_DROPPED,
            name(entry.reason)?,
            Some(name(entry.field)?),
            None,
            count(entry.count),
        ));
    }
    Ok(rows)
}

/// The rejections table's schema.
pub fn schema() -> SchemaRef {
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("received_at", timestamp, false),
        Field::new("policy", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, true),
        Field::new("event", DataType::Utf8, true),
        Field::new("count", DataType::Int64, false),
    ]))
}

/// The rows (of one tenant and day) as one Arrow batch.
pub fn batch(rows: &[&AuditRow]) -> Result<RecordBatch, ArrowError> {
    let text = |pick: &dyn Fn(&AuditRow) -> Option<&str>| -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
        for row in rows {
            builder.append_option(pick(row));
        }
        Arc::new(builder.finish())
    };
    let mut received = TimestampMillisecondBuilder::with_capacity(rows.len());
    let mut counts = Int64Builder::with_capacity(rows.len());
    for row in rows {
        received.append_value(row.received_ms);
        counts.append_value(row.count);
    }
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(received.finish().with_timezone("UTC")),
            text(&|row| Some(&row.policy)),
            text(&|row| Some(&row.region)),
            text(&|row| Some(row.kind)),
            text(&|row| Some(&row.reason)),
            text(&|row| row.field.as_deref()),
            text(&|row| row.event.as_deref()),
            Arc::new(counts.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringArray};

    use super::*;

    const RECORD: &str = r#"{"schema":1,"tenant":"t-1000","region":"us","policy":"sha256:ab","receivedAt":"2026-11-23T23:59:59.900-01:00","messages":5,"accepted":3,"rejected":[{"reason":"event_not_allowlisted","field":null,"event":"Secret Thing","count":1},{"reason":"missing_identity","field":null,"event":null,"count":1}],"dropped":[{"field":"properties.note","reason":"not_allowlisted","count":3}]}"#;

    #[test]
    fn an_audit_record_becomes_one_row_per_count() {
        let rows = decode_audit(RECORD.as_bytes()).expect("decodes");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].date, "2026-11-24", "the UTC day of receipt");
        assert_eq!(
            (
                rows[0].kind,
                rows[0].reason.as_str(),
                rows[0].event.as_deref()
            ),
            (KIND_REJECTED, "event_not_allowlisted", Some("Secret Thing"))
        );
        assert_eq!(
            (rows[2].kind, rows[2].field.as_deref(), rows[2].count),
            (KIND_DROPPED, Some("properties.note"), 3)
        );
        let refs: Vec<&AuditRow> = rows.iter().collect();
        let batch = batch(&refs).expect("batch");
        let kinds = batch.column_by_name("kind").expect("kind");
        let kinds = kinds.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(kinds.value(2), "dropped");
        let counts = batch.column_by_name("count").expect("count");
        let counts = counts.as_any().downcast_ref::<Int64Array>().expect("ints");
        assert_eq!(counts.iter().flatten().sum::<i64>(), 5);
        assert!(
            batch.column_by_name("tenant").is_none(),
            "the directory holds it"
        );
    }

    #[test]
    fn bad_records_are_refused() {
        assert!(decode_audit(b"{}").is_err());
        assert!(decode_audit(RECORD.replace("\"schema\":1", "\"schema\":2").as_bytes()).is_err());
        assert!(decode_audit(RECORD.replace("t-1000", "../x").as_bytes()).is_err());
        assert!(decode_audit(RECORD.replace("2026-11-23T", "yesterday ").as_bytes()).is_err());
    }
}
