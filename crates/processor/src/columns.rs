//! The events table's columns: typed envelope columns, then one column per allowlisted field typed
//! as the allowlist declares it (pseudonyms are strings). Column names are the allowlist paths, so
//! every stored value maps to exactly one reviewed entry.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHashMap;
use veil_policy::{LeafAction, Policy, ValueType, reportable_path, short_eq};

use crate::row::{Row, Value};

/// Byte equality of two field paths without a call into `memcmp`: paths are mostly 17 to 25
/// bytes, which two overlapping 16-byte loads cover (shorter ones go to [`short_eq`]). Not an
/// arm of `short_eq` itself: there it cost the gateway's key loop (JSON keys are short) more
/// instructions and a lower filter ratio in alternating runs (0.455 against 0.475, medians).
#[inline(always)]
fn path_eq(left: &[u8], right: &[u8]) -> bool {
    let length = left.len();
    if length != right.len() {
        return false;
    }
    let block = |bytes: &[u8], at: usize| {
        bytes
            .get(at..)
            .and_then(<[u8]>::first_chunk::<16>)
            .map_or(0, |block| u128::from_le_bytes(*block))
    };
    match length {
        17..=32 => {
            block(left, 0) == block(right, 0)
                && block(left, length - 16) == block(right, length - 16)
        }
        _ => short_eq(left, right),
    }
}

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
/// Paths are rendered by [`unknown_field_path`] or [`reportable_path`]: a producer other than
/// the gateway may write keys that are data (an e-mail address), and these reasons are logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A field path the current allowlist does not declare.
    #[error("field {0} is not in the allowlist this processor runs with")]
    UnknownField(String),
    /// A value of another type than the allowlist declares.
    #[error("field {0} does not have its declared type")]
    WrongType(String),
    /// A field given twice in one message.
    #[error("field {0} appears twice")]
    Repeated(String),
}

/// A path the allowlist does not declare, as a reason may show it: its first segment (the
/// namespace: `properties`, `context`, ...) and `*` for the rest, which a producer other than
/// the gateway may have made of data (`properties.KofiMensah`, `traits.jane@example`).
fn unknown_field_path(path: &str) -> String {
    let (namespace, rest) = match path.split_once('.') {
        Some((namespace, rest)) => (namespace, Some(rest)),
        None => (path, None),
    };
    let mut shown = reportable_path(namespace);
    if rest.is_some() {
        shown.push_str(".*");
    }
    shown
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
    index: FxHashMap<String, usize>,
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
        let mut index = FxHashMap::default();
        for (_, path, action) in policy.leaves() {
            let (kind, data_type) = match action {
                LeafAction::Keep(kept) => match kept.value_type {
                    ValueType::String => (ColumnKind::Text, DataType::Utf8),
                    ValueType::Integer => (ColumnKind::Integer, DataType::Int64),
                    ValueType::Number => (ColumnKind::Number, DataType::Float64),
                    ValueType::Boolean => (ColumnKind::Boolean, DataType::Boolean),
                },
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

    fn column_of(&self, path: &str) -> Result<(usize, ColumnKind), LayoutError> {
        self.index
            .get(path)
            .map(|at| (*at, self.fields[*at].1))
            .ok_or_else(|| LayoutError::UnknownField(unknown_field_path(path)))
    }

    /// [`TableLayout::column_of`] for a row's next field, trying first the column that followed
    /// the previous field's column last time (`successors[previous]`, where `previous` is that
    /// column + 1, or 0 before a row's first field): fields come in the gateway's order, so one
    /// comparison usually replaces the hash lookup, also when rows of different events hold
    /// different fields (a successor survives a field that is missing or added before it, where
    /// the column of a position did not).
    #[inline]
    fn column_after(
        &self,
        successors: &mut Vec<u32>,
        previous: &mut usize,
        path: &str,
    ) -> Result<(usize, ColumnKind), LayoutError> {
        if let Some(&column) = successors.get(*previous)
            && let Some((name, kind)) = self.fields.get(column as usize)
            && path_eq(name.as_bytes(), path.as_bytes())
        {
            *previous = column as usize + 1;
            return Ok((column as usize, *kind));
        }
        let (column, kind) = self.column_of(path)?;
        if successors.len() <= *previous {
            successors.resize(self.fields.len() + 1, u32::MAX);
        }
        successors[*previous] = u32::try_from(column).unwrap_or(u32::MAX);
        *previous = column + 1;
        Ok((column, kind))
    }
}

/// One allowlisted field's column being built.
#[derive(Debug)]
enum FieldColumn {
    Text(StringBuilder),
    Integer(Int64Builder),
    Number(Float64Builder),
    Boolean(BooleanBuilder),
}

/// Where a row's value of one field column comes from: `0` none, `1 + i` the row's field `i`,
/// `PSEUDONYM | (1 + i)` its pseudonym `i`.
const PSEUDONYM: u32 = 1 << 31;

/// The events table's columns of one tenant/day group being built, row by row (see
/// [`TableLayout`]).
#[derive(Debug)]
pub struct EventColumns {
    /// tier, policy, key_epoch, type, message_id, event, name.
    envelope: [StringBuilder; ENVELOPE_TEXT],
    timestamps: Vec<i64>,
    received: Vec<i64>,
    fields: Vec<FieldColumn>,
    /// Per-row scratch: where each field column's value is (see [`PSEUDONYM`]).
    sources: Vec<u32>,
    /// For each column (index + 1; 0 is a row's start), the column of the field that followed
    /// it last time, among fields, then among pseudonyms (see [`TableLayout::column_after`]).
    field_successors: Vec<u32>,
    pseudonym_successors: Vec<u32>,
}

/// The envelope's text columns (all but the two timestamps), first in [`ColumnSizes`].
const ENVELOPE_TEXT: usize = 7;

/// How large a group's columns grew: reserved up front for the next group, so the builders
/// do not reallocate and copy their buffers as they fill (that was ~4% of the processor's time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnSizes {
    rows: usize,
    /// Value bytes of each text column: the envelope's, then the fields' (0 for other kinds).
    text_bytes: Vec<usize>,
}

impl ColumnSizes {
    /// The rows these sizes were taken over.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl EventColumns {
    /// Empty columns for `layout`.
    pub fn new(layout: &TableLayout) -> EventColumns {
        EventColumns::with_capacity(layout, &ColumnSizes::default())
    }

    /// Empty columns for `layout` with room for `sizes` (see [`EventColumns::sizes`]).
    pub fn with_capacity(layout: &TableLayout, sizes: &ColumnSizes) -> EventColumns {
        let rows = sizes.rows;
        // The text column at `at` in `sizes.text_bytes` (none: an empty `sizes`).
        let text = |at: usize| {
            StringBuilder::with_capacity(rows, sizes.text_bytes.get(at).copied().unwrap_or(0))
        };
        EventColumns {
            envelope: std::array::from_fn(text),
            timestamps: Vec::with_capacity(rows),
            received: Vec::with_capacity(rows),
            fields: layout
                .fields
                .iter()
                .enumerate()
                .map(|(at, (_, kind))| match kind {
                    ColumnKind::Text | ColumnKind::Pseudonym => {
                        FieldColumn::Text(text(ENVELOPE_TEXT + at))
                    }
                    ColumnKind::Integer => FieldColumn::Integer(Int64Builder::with_capacity(rows)),
                    ColumnKind::Number => FieldColumn::Number(Float64Builder::with_capacity(rows)),
                    ColumnKind::Boolean => {
                        FieldColumn::Boolean(BooleanBuilder::with_capacity(rows))
                    }
                })
                .collect(),
            sources: vec![0; layout.fields.len()],
            field_successors: Vec::new(),
            pseudonym_successors: Vec::new(),
        }
    }

    /// Whether no row was appended.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The rows appended so far, and each text column's value bytes.
    pub fn sizes(&self) -> ColumnSizes {
        let fields = self.fields.iter().map(|column| match column {
            FieldColumn::Text(builder) => builder.values_slice().len(),
            _ => 0,
        });
        ColumnSizes {
            rows: self.timestamps.len(),
            text_bytes: self
                .envelope
                .iter()
                .map(|builder| builder.values_slice().len())
                .chain(fields)
                .collect(),
        }
    }

    /// Appends `row` if every field has a column of its type, exactly once; else nothing changes.
    pub fn append(&mut self, layout: &TableLayout, row: &Row<'_>) -> Result<(), LayoutError> {
        debug_assert_eq!(self.fields.len(), layout.fields.len());
        self.sources.fill(0);
        let mut previous = 0;
        for (at, (path, value)) in row.fields.iter().enumerate() {
            let (column, kind) =
                layout.column_after(&mut self.field_successors, &mut previous, path)?;
            let fits = matches!(
                (kind, value),
                (ColumnKind::Text, Value::Str(_))
                    | (ColumnKind::Integer, Value::Int(_))
                    | (ColumnKind::Number, Value::Int(_) | Value::Float(_))
                    | (ColumnKind::Boolean, Value::Bool(_))
            );
            if !fits {
                return Err(LayoutError::WrongType(reportable_path(path)));
            }
            if self.sources[column] != 0 {
                return Err(LayoutError::Repeated(reportable_path(path)));
            }
            self.sources[column] = 1 + at as u32;
        }
        let mut previous = 0;
        for (at, (path, _)) in row.pseudonyms.iter().enumerate() {
            let (column, kind) =
                layout.column_after(&mut self.pseudonym_successors, &mut previous, path)?;
            if kind != ColumnKind::Pseudonym {
                return Err(LayoutError::WrongType(reportable_path(path)));
            }
            if self.sources[column] != 0 {
                return Err(LayoutError::Repeated(reportable_path(path)));
            }
            self.sources[column] = PSEUDONYM | (1 + at as u32);
        }
        let [tier, policy, key_epoch, kind, message_id, event, name] = &mut self.envelope;
        tier.append_value(row.tier.as_str());
        policy.append_value(&row.policy);
        key_epoch.append_value(&row.key_epoch);
        kind.append_value(row.kind.as_str());
        message_id.append_value(&row.message_id);
        event.append_option(row.event.as_deref());
        name.append_option(row.name.as_deref());
        self.timestamps.push(row.timestamp_ms);
        self.received.push(row.received_ms);
        for (column, source) in self.fields.iter_mut().zip(&self.sources) {
            let value = match *source {
                0 => None,
                source if source & PSEUDONYM != 0 => {
                    let at = (source & !PSEUDONYM) as usize - 1;
                    if let FieldColumn::Text(builder) = column {
                        builder.append_value(&row.pseudonyms[at].1);
                    }
                    continue;
                }
                source => Some(&row.fields[source as usize - 1].1),
            };
            match (column, value) {
                (FieldColumn::Text(builder), Some(Value::Str(text))) => builder.append_value(text),
                (FieldColumn::Text(builder), _) => builder.append_null(),
                (FieldColumn::Integer(builder), Some(Value::Int(number))) => {
                    builder.append_value(*number)
                }
                (FieldColumn::Integer(builder), _) => builder.append_null(),
                (FieldColumn::Number(builder), Some(Value::Float(number))) => {
                    builder.append_value(*number)
                }
                (FieldColumn::Number(builder), Some(Value::Int(number))) => {
                    builder.append_value(*number as f64)
                }
                (FieldColumn::Number(builder), _) => builder.append_null(),
                (FieldColumn::Boolean(builder), Some(Value::Bool(flag))) => {
                    builder.append_value(*flag)
                }
                (FieldColumn::Boolean(builder), _) => builder.append_null(),
            }
        }
        Ok(())
    }

    /// The rows as one Arrow batch; the columns are empty again afterwards.
    pub fn finish(&mut self, layout: &TableLayout) -> Result<RecordBatch, ArrowError> {
        let timestamps = |values: &mut Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from(std::mem::take(values)).with_timezone("UTC"))
        };
        let [tier, policy, key_epoch, kind, message_id, event, name] = &mut self.envelope;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(tier.finish()),
            Arc::new(policy.finish()),
            Arc::new(key_epoch.finish()),
            Arc::new(kind.finish()),
            Arc::new(message_id.finish()),
            timestamps(&mut self.timestamps),
            timestamps(&mut self.received),
            Arc::new(event.finish()),
            Arc::new(name.finish()),
        ];
        for column in &mut self.fields {
            columns.push(match column {
                FieldColumn::Text(builder) => Arc::new(builder.finish()),
                FieldColumn::Integer(builder) => Arc::new(builder.finish()),
                FieldColumn::Number(builder) => Arc::new(builder.finish()),
                FieldColumn::Boolean(builder) => Arc::new(builder.finish()),
            });
        }
        RecordBatch::try_new(layout.schema.clone(), columns)
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

    fn row(json: &str) -> Row<'_> {
        Row::decode(json.as_bytes()).expect("decodes")
    }

    const MESSAGE: &str = r#"{"schema":1,"tenant":"t-1","tier":"baseline","policy":"sha256:0000000000000000000000000000000000000000000000000000000000000000","keyEpoch":"2026-11","type":"track","messageId":"m-1","timestamp":"2026-11-22T23:59:59.500+01:00","receivedAt":"2026-11-23T10:00:00.000Z","event":"Document Opened","fields":{"context.app.name":"DMS Web","properties.duration_ms":12,"properties.success":true},"pseudonyms":{"userId":"AAAAAAAAAAAAAAAAAAAAAA"}}"#;

    #[test]
    fn path_eq_agrees_with_slice_equality_at_every_length() {
        let text: Vec<u8> = (0..40u8).map(|byte| b'a' + byte % 26).collect();
        for length in 0..text.len() {
            let left = &text[..length];
            assert!(path_eq(left, left));
            for at in 0..length {
                let mut right = left.to_vec();
                right[at] ^= 0x20;
                assert!(!path_eq(left, &right), "length {length}, differing at {at}");
            }
            assert!(!path_eq(left, &text[..length + 1]));
        }
    }

    #[test]
    fn sizes_measure_the_rows_and_text_bytes_a_new_group_reserves() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let mut columns = EventColumns::new(&layout);
        for _ in 0..3 {
            columns.append(&layout, &row(MESSAGE)).expect("fits");
        }
        let sizes = columns.sizes();
        assert_eq!(sizes.rows(), 3);
        // tier, policy, key_epoch, type, message_id, event, name, then the fields in order.
        let policy = "sha256:".len() + 64;
        assert_eq!(
            sizes.text_bytes,
            [
                vec![3 * 8, 3 * policy, 3 * 7, 3 * 5, 3 * 3, 3 * 15, 0],
                layout
                    .fields
                    .iter()
                    .map(|(path, _)| match path.as_str() {
                        "userId" => 3 * 22,
                        "context.app.name" => 3 * 7,
                        _ => 0,
                    })
                    .collect(),
            ]
            .concat()
        );
        let expected = columns.finish(&layout).expect("batch");
        let mut reserved = EventColumns::with_capacity(&layout, &sizes);
        for _ in 0..3 {
            reserved.append(&layout, &row(MESSAGE)).expect("fits");
        }
        assert_eq!(reserved.sizes(), sizes);
        assert_eq!(reserved.finish(&layout).expect("batch"), expected);
    }

    #[test]
    fn columns_are_typed_as_the_allowlist_declares() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let mut columns = EventColumns::new(&layout);
        columns.append(&layout, &row(MESSAGE)).expect("fits");
        let batch = columns.finish(&layout).expect("batch");
        assert!(columns.is_empty(), "finish empties the builders");
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
    fn rows_with_their_fields_in_another_order_still_fill_the_right_columns() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let mut columns = EventColumns::new(&layout);
        let reordered = MESSAGE.replace(
            r#""context.app.name":"DMS Web","properties.duration_ms":12,"properties.success":true"#,
            r#""properties.success":false,"properties.duration_ms":7,"context.app.name":"DMS Mobile""#,
        );
        assert_ne!(reordered, MESSAGE);
        let fewer = MESSAGE.replace(r#""context.app.name":"DMS Web","#, "");
        for message in [MESSAGE, &reordered, MESSAGE, &fewer, &reordered] {
            columns.append(&layout, &row(message)).expect("fits");
        }
        let batch = columns.finish(&layout).expect("batch");
        let strings = |name: &str| -> Vec<Option<String>> {
            let column = batch.column_by_name(name).expect("column");
            let strings = column
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("strings");
            (0..strings.len())
                .map(|at| strings.is_valid(at).then(|| strings.value(at).to_owned()))
                .collect()
        };
        let web = Some("DMS Web".to_owned());
        let mobile = Some("DMS Mobile".to_owned());
        assert_eq!(
            strings("context.app.name"),
            [web.clone(), mobile.clone(), web, None, mobile]
        );
        let durations = batch
            .column_by_name("properties.duration_ms")
            .expect("column")
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ints")
            .values()
            .to_vec();
        assert_eq!(durations, [12, 7, 12, 12, 7]);
        let flags = batch
            .column_by_name("properties.success")
            .expect("column")
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("bools")
            .iter()
            .collect::<Vec<_>>();
        assert_eq!(
            flags,
            [Some(true), Some(false), Some(true), Some(true), Some(false)]
        );
    }

    #[test]
    fn messages_that_do_not_fit_are_refused_by_name_and_leave_no_trace() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let mut columns = EventColumns::new(&layout);
        let unknown = MESSAGE.replace("context.app.name", "context.app.build");
        assert_eq!(
            columns.append(&layout, &row(&unknown)),
            Err(LayoutError::UnknownField("context.*".to_owned()))
        );
        // A key another producer wrote may be data: the reason (which is logged) masks it.
        let personal = MESSAGE.replace("context.app.name", "traits.Jane Doe <jane@example.com>");
        let refused = columns
            .append(&layout, &row(&personal))
            .expect_err("unknown");
        assert_eq!(refused, LayoutError::UnknownField("traits.*".to_owned()));
        let reason = refused.to_string();
        assert!(
            !reason.contains("Jane") && !reason.contains("example"),
            "{reason}"
        );
        // A key made of an identifier-like name is masked too.
        let named = MESSAGE.replace("context.app.name", "properties.KofiMensah");
        assert_eq!(
            columns.append(&layout, &row(&named)),
            Err(LayoutError::UnknownField("properties.*".to_owned()))
        );
        let wrong = MESSAGE.replace(
            "\"properties.duration_ms\":12",
            "\"properties.duration_ms\":\"12\"",
        );
        assert_eq!(
            columns.append(&layout, &row(&wrong)),
            Err(LayoutError::WrongType("properties.duration_ms".to_owned()))
        );
        let twice = MESSAGE.replace(
            "\"properties.success\":true",
            "\"properties.success\":true,\"properties.success\":false",
        );
        assert_eq!(
            columns.append(&layout, &row(&twice)),
            Err(LayoutError::Repeated("properties.success".to_owned()))
        );
        let pseudonym_as_field = MESSAGE.replace(
            "\"pseudonyms\":{",
            "\"pseudonyms\":{\"context.app.name\":\"x\",",
        );
        assert!(columns.append(&layout, &row(&pseudonym_as_field)).is_err());
        assert!(columns.is_empty(), "refused rows append nothing");
        columns.append(&layout, &row(MESSAGE)).expect("fits");
        let batch = columns.finish(&layout).expect("batch");
        assert_eq!(batch.num_rows(), 1);
        assert!(batch.columns().iter().all(|column| column.len() == 1));
    }
}
