//! The events table's columns: typed envelope columns, then one column per allowlisted field typed
//! as the allowlist declares it (pseudonyms are strings). Column names are the allowlist paths, so
//! every stored value maps to exactly one reviewed entry.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use veil_policy::{LeafAction, Policy, ValueType};
use veil_sanitized::{FieldValue, SanitizedMessage};

use crate::row::Row;

/// How one allowlisted field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnKind {
    Text,
    Integer,
    Number,
    Boolean,
    Pseudonym,
}

/// Why a message cannot be stored under the current layout (it goes to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A field path the current allowlist does not declare.
    #[error("field {0} is not in the allowlist this processor runs with")]
    UnknownField(String),
    /// A value of another type than the allowlist declares.
    #[error("field {0} does not have its declared type")]
    WrongType(String),
}

/// The envelope columns, first in every file (the tenant is the `tenant=` directory, see
/// [`crate::tables`]).
const ENVELOPE: [(&str, bool); 9] = [
    ("tier", false),
    ("policy", false),
    ("key_epoch", false),
    ("type", false),
    ("message_id", false),
    ("timestamp", false),
    ("received_at", false),
    ("event", true),
    ("name", true),
];

/// The columns of the events table.
#[derive(Debug, Clone)]
pub struct TableLayout {
    schema: SchemaRef,
    fields: Vec<(String, ColumnKind)>,
    index: HashMap<String, usize>,
}

impl TableLayout {
    /// The layout for `policy`'s fields.
    pub fn from_policy(policy: &Policy) -> TableLayout {
        let mut columns: Vec<Field> = ENVELOPE
            .iter()
            .map(|(name, nullable)| {
                let data_type = if matches!(*name, "timestamp" | "received_at") {
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
                } else {
                    DataType::Utf8
                };
                Field::new(*name, data_type, *nullable)
            })
            .collect();
        let mut fields = Vec::new();
        let mut index = HashMap::new();
        for (_, path, action) in policy.leaves() {
            let (kind, data_type) = match action {
                LeafAction::Keep(ValueType::String) => (ColumnKind::Text, DataType::Utf8),
                LeafAction::Keep(ValueType::Integer) => (ColumnKind::Integer, DataType::Int64),
                LeafAction::Keep(ValueType::Number) => (ColumnKind::Number, DataType::Float64),
                LeafAction::Keep(ValueType::Boolean) => (ColumnKind::Boolean, DataType::Boolean),
                LeafAction::Pseudonymize(_) => (ColumnKind::Pseudonym, DataType::Utf8),
            };
            index.insert(path.to_owned(), fields.len());
            fields.push((path.to_owned(), kind));
            columns.push(Field::new(path, data_type, true));
        }
        TableLayout {
            schema: Arc::new(Schema::new(columns)),
            fields,
            index,
        }
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Checks that every field of `message` has a column of its type.
    pub fn check(&self, message: &SanitizedMessage) -> Result<(), LayoutError> {
        for (path, value) in &message.fields {
            let kind = self.kind_of(path)?;
            let fits = matches!(
                (kind, value),
                (ColumnKind::Text, FieldValue::Str(_))
                    | (ColumnKind::Integer, FieldValue::Int(_))
                    | (
                        ColumnKind::Number,
                        FieldValue::Int(_) | FieldValue::Float(_)
                    )
                    | (ColumnKind::Boolean, FieldValue::Bool(_))
            );
            if !fits {
                return Err(LayoutError::WrongType(path.clone()));
            }
        }
        for path in message.pseudonyms.keys() {
            if self.kind_of(path)? != ColumnKind::Pseudonym {
                return Err(LayoutError::WrongType(path.clone()));
            }
        }
        Ok(())
    }

    fn kind_of(&self, path: &str) -> Result<ColumnKind, LayoutError> {
        self.index
            .get(path)
            .map(|at| self.fields[*at].1)
            .ok_or_else(|| LayoutError::UnknownField(path.to_owned()))
    }

    /// The rows as one Arrow batch (rows were [`TableLayout::check`]ed).
    pub fn batch(&self, rows: &[&Row]) -> Result<RecordBatch, ArrowError> {
        let text = |pick: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
            let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            for row in rows {
                builder.append_option(pick(row));
            }
            Arc::new(builder.finish())
        };
        let mut columns: Vec<ArrayRef> = vec![
            text(&|row| Some(row.message.tier.as_str())),
            text(&|row| Some(&row.message.policy)),
            text(&|row| Some(&row.message.key_epoch)),
            text(&|row| Some(row.message.kind.as_str())),
            text(&|row| Some(&row.message.message_id)),
        ];
        for pick in [|row: &Row| row.timestamp_ms, |row: &Row| row.received_ms] {
            let mut builder = TimestampMillisecondBuilder::with_capacity(rows.len());
            for row in rows {
                builder.append_value(pick(row));
            }
            columns.push(Arc::new(builder.finish().with_timezone("UTC")));
        }
        columns.push(text(&|row| row.message.event.as_deref()));
        columns.push(text(&|row| row.message.name.as_deref()));
        for (path, kind) in &self.fields {
            fn value<'r>(row: &'r Row, path: &str) -> Option<&'r FieldValue> {
                row.message.fields.get(path)
            }
            let column: ArrayRef = match kind {
                ColumnKind::Text => {
                    let mut builder = StringBuilder::new();
                    for row in rows {
                        builder.append_option(match value(row, path) {
                            Some(FieldValue::Str(text)) => Some(text.as_str()),
                            _ => None,
                        });
                    }
                    Arc::new(builder.finish())
                }
                ColumnKind::Pseudonym => {
                    let mut builder = StringBuilder::new();
                    for row in rows {
                        builder
                            .append_option(row.message.pseudonyms.get(path).map(|p| p.0.as_str()));
                    }
                    Arc::new(builder.finish())
                }
                ColumnKind::Integer => {
                    let mut builder = Int64Builder::new();
                    for row in rows {
                        builder.append_option(match value(row, path) {
                            Some(FieldValue::Int(number)) => Some(*number),
                            _ => None,
                        });
                    }
                    Arc::new(builder.finish())
                }
                ColumnKind::Number => {
                    let mut builder = Float64Builder::new();
                    for row in rows {
                        builder.append_option(match value(row, path) {
                            Some(FieldValue::Float(number)) => Some(*number),
                            Some(FieldValue::Int(number)) => Some(*number as f64),
                            _ => None,
                        });
                    }
                    Arc::new(builder.finish())
                }
                ColumnKind::Boolean => {
                    let mut builder = BooleanBuilder::new();
                    for row in rows {
                        builder.append_option(match value(row, path) {
                            Some(FieldValue::Bool(flag)) => Some(*flag),
                            _ => None,
                        });
                    }
                    Arc::new(builder.finish())
                }
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, BooleanArray, Int64Array, StringArray};
    use veil_policy::Allowlist;

    use super::*;

    const POLICY: &str = r#"
version: 1
common:
  userId: { pseudonymize: user, reason: "r" }
  context.app.name: { keep: string, reason: "r" }
track:
  fields:
    properties.duration_ms: { keep: integer, reason: "r" }
    properties.success: { keep: boolean, reason: "r" }
  events:
    Document Opened: { reason: "r" }
"#;

    fn row(json: &str) -> Row {
        Row::decode(json.as_bytes()).expect("decodes")
    }

    const MESSAGE: &str = r#"{"schema":1,"tenant":"t-1","tier":"baseline","policy":"sha256:0000000000000000000000000000000000000000000000000000000000000000","keyEpoch":"2026-11","type":"track","messageId":"m-1","timestamp":"2026-11-22T23:59:59.500+01:00","receivedAt":"2026-11-23T10:00:00.000Z","event":"Document Opened","fields":{"context.app.name":"DMS Web","properties.duration_ms":12,"properties.success":true},"pseudonyms":{"userId":"AAAAAAAAAAAAAAAAAAAAAA"}}"#;

    #[test]
    fn columns_are_typed_as_the_allowlist_declares() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let row = row(MESSAGE);
        assert_eq!(row.date, "2026-11-22", "the UTC day of the event");
        layout.check(&row.message).expect("fits");
        let batch = layout.batch(&[&row]).expect("batch");
        let schema = batch.schema();
        let type_of = |name: &str| {
            schema
                .field_with_name(name)
                .expect("column")
                .data_type()
                .clone()
        };
        assert_eq!(type_of("properties.duration_ms"), DataType::Int64);
        assert_eq!(type_of("properties.success"), DataType::Boolean);
        assert_eq!(type_of("userId"), DataType::Utf8);
        let column = |name: &str| batch.column_by_name(name).expect("column").clone();
        assert_eq!(
            column("properties.duration_ms")
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ints")
                .value(0),
            12
        );
        assert!(
            column("properties.success")
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("bools")
                .value(0)
        );
        assert_eq!(
            column("userId")
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("strings")
                .value(0),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            column("event")
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("strings")
                .value(0),
            "Document Opened"
        );
    }

    #[test]
    fn messages_that_do_not_fit_are_refused_by_name() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let unknown = row(&MESSAGE.replace("context.app.name", "context.app.build"));
        assert_eq!(
            layout.check(&unknown.message),
            Err(LayoutError::UnknownField("context.app.build".to_owned()))
        );
        let wrong = row(&MESSAGE.replace(
            "\"properties.duration_ms\":12",
            "\"properties.duration_ms\":\"12\"",
        ));
        assert_eq!(
            layout.check(&wrong.message),
            Err(LayoutError::WrongType("properties.duration_ms".to_owned()))
        );
        assert!(Row::decode(b"{\"schema\":1}").is_err());
        assert!(
            Row::decode(
                MESSAGE
                    .replace("\"tenant\":\"t-1\"", "\"tenant\":\"../etc\"")
                    .as_bytes()
            )
            .is_err()
        );
    }
}
