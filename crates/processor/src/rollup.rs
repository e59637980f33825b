//! The `daily_activity` rollup: one row per distinct (user, type, event, name, feature, product,
//! app version, OS, key epoch, previous user) of a flush's tenant/day group, with an `events`
//! count. It is written in the same commit as the raw rows it summarizes, so it is exactly-once
//! too; distinct users over any period stay exact with `COUNT(DISTINCT "user")` over it, and
//! event counts with `SUM(events)`.

use std::collections::HashMap;
use std::sync::Arc;

use std::hash::{Hash, Hasher};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Int64Array, Int64Builder, StringArray,
    StringBuilder, UInt32Array, new_null_array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use hashbrown::HashTable;
use rustc_hash::FxHasher;

/// The column holding the user pseudonym (`userId`'s, else `anonymousId`'s).
pub const USER: &str = "user";
/// Whether [`USER`] came from `userId` (true) or `anonymousId` (false).
pub const IDENTIFIED: &str = "identified";
/// The per-row count of events.
pub const EVENTS: &str = "events";
/// An `alias` row's `previousId` pseudonym (null on other rows): the rollup keeps identity links
/// as long as the counts they correct, not only as long as the raw events.
pub const PREVIOUS_USER: &str = "previous_user";

/// The allowlist paths the rollup reads.
const USER_ID: &str = "userId";
const ANONYMOUS_ID: &str = "anonymousId";
const PREVIOUS_ID: &str = "previousId";
const FEATURE: &str = "properties.feature";
const PRODUCT: &str = "context.app.name";
const VERSION: &str = "context.app.version";
const OS: &str = "context.os.name";

/// The table's schema.
pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text(USER, true),
        Field::new(IDENTIFIED, DataType::Boolean, false),
        text("type", false),
        text("event", true),
        text("name", true),
        text("feature", true),
        text("product", true),
        text("app_version", true),
        text("os_name", true),
        text("key_epoch", false),
        Field::new(EVENTS, DataType::Int64, false),
        // Last: files written before it existed read it as null, whatever their column order.
        text(PREVIOUS_USER, true),
    ]))
}

/// A text column's value at `row` (`None` when the column is absent or the value null).
fn value(column: Option<&StringArray>, row: usize) -> Option<&str> {
    column
        .filter(|column| column.is_valid(row))
        .map(|column| column.value(row))
}

/// `column` (if the events table has it as text) at the groups' first rows, else nulls (or
/// empty strings for the non-null key columns).
fn pick(
    column: Option<&StringArray>,
    rows: &UInt32Array,
    nullable: bool,
) -> Result<ArrayRef, ArrowError> {
    match column {
        Some(column) => take(column, rows, None),
        None if nullable => Ok(new_null_array(&DataType::Utf8, rows.len())),
        None => Ok(Arc::new(StringArray::from(vec![""; rows.len()]))),
    }
}

/// The rollup of one tenant/day group's events batch ([`crate::columns`]), in first-seen order.
/// Columns the allowlist does not declare (or declares as other than text) count as nulls.
///
/// Groups are found by row: a table of (key hash, group) whose keys are read in the Arrow
/// columns, so no key is copied; each output column is then one `take` of the groups' first
/// rows (the rows of a flush rarely repeat a key, so most rows start a group).
pub fn batch(events: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let text = |name: &str| {
        events
            .column_by_name(name)
            .and_then(|column| column.as_any().downcast_ref::<StringArray>())
    };
    let (user_ids, anonymous_ids) = (text(USER_ID), text(ANONYMOUS_ID));
    let kinds = text("type");
    // Only an alias's `previousId` is a link; one a wider allowlist keeps elsewhere is not.
    let alias_previous_ids: Option<StringArray> = text(PREVIOUS_ID).map(|previous_ids| {
        (0..previous_ids.len())
            .map(|row| {
                value(Some(previous_ids), row).filter(|_| value(kinds, row) == Some("alias"))
            })
            .collect()
    });
    // The key besides the user, in the output's column order.
    let dimensions = [
        kinds,
        text("event"),
        text("name"),
        text(FEATURE),
        text(PRODUCT),
        text(VERSION),
        text(OS),
        text("key_epoch"),
        alias_previous_ids.as_ref(),
    ];
    let user = |row: usize| match value(user_ids, row) {
        Some(user) => (Some(user), true),
        None => (value(anonymous_ids, row), false),
    };
    let hash = |row: usize| {
        let mut hasher = FxHasher::default();
        user(row).hash(&mut hasher);
        for column in dimensions {
            value(column, row).hash(&mut hasher);
        }
        hasher.finish()
    };
    let same_key = |left: usize, right: usize| {
        user(left) == user(right)
            && dimensions
                .iter()
                .all(|column| value(*column, left) == value(*column, right))
    };
    let rows = events.num_rows();
    let mut groups: HashTable<(u64, u32)> = HashTable::with_capacity(rows);
    let mut first_rows: Vec<u32> = Vec::with_capacity(rows);
    let mut counts: Vec<i64> = Vec::with_capacity(rows);
    for row in 0..rows {
        let row_hash = hash(row);
        let found = groups.find(row_hash, |&(group_hash, group)| {
            group_hash == row_hash && same_key(first_rows[group as usize] as usize, row)
        });
        match found {
            Some(&(_, group)) => counts[group as usize] += 1,
            None => {
                let (Ok(group), Ok(first)) = (u32::try_from(first_rows.len()), u32::try_from(row))
                else {
                    return Err(ArrowError::ComputeError(
                        "too many rows for one rollup".into(),
                    ));
                };
                groups.insert_unique(row_hash, (row_hash, group), |&(group_hash, _)| group_hash);
                first_rows.push(first);
                counts.push(1);
            }
        }
    }
    let mut users = StringBuilder::with_capacity(first_rows.len(), first_rows.len() * 24);
    let mut identified = BooleanBuilder::with_capacity(first_rows.len());
    for &row in &first_rows {
        let (pseudonym, from_user_id) = user(row as usize);
        users.append_option(pseudonym);
        identified.append_value(from_user_id);
    }
    let first_rows = UInt32Array::from(first_rows);
    let [
        kinds,
        event_names,
        names,
        features,
        products,
        versions,
        oses,
        epochs,
        previous_users,
    ] = dimensions;
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(users.finish()),
            Arc::new(identified.finish()),
            pick(kinds, &first_rows, false)?,
            pick(event_names, &first_rows, true)?,
            pick(names, &first_rows, true)?,
            pick(features, &first_rows, true)?,
            pick(products, &first_rows, true)?,
            pick(versions, &first_rows, true)?,
            pick(oses, &first_rows, true)?,
            pick(epochs, &first_rows, false)?,
            Arc::new(Int64Array::from(counts)),
            pick(previous_users, &first_rows, true)?,
        ],
    )
}

/// One key column's value in a stored rollup row (the key columns are text or boolean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyValue<'b> {
    Null,
    Text(&'b str),
    Flag(bool),
}

/// A key column of one stored batch, downcast once.
enum KeyColumn<'b> {
    Text(&'b StringArray),
    Flag(&'b BooleanArray),
}

impl<'b> KeyColumn<'b> {
    fn of(column: &'b ArrayRef) -> Option<Self> {
        let any = column.as_any();
        if let Some(text) = any.downcast_ref::<StringArray>() {
            return Some(Self::Text(text));
        }
        any.downcast_ref::<BooleanArray>().map(Self::Flag)
    }

    fn value(&self, row: usize) -> KeyValue<'b> {
        match self {
            Self::Text(array) if array.is_valid(row) => KeyValue::Text(array.value(row)),
            Self::Flag(array) if array.is_valid(row) => KeyValue::Flag(array.value(row)),
            _ => KeyValue::Null,
        }
    }
}

/// Re-aggregates stored rollup rows when compaction merges a day's files (flushes every few
/// seconds leave few rows per key each): one row per distinct key (every column but [`EVENTS`],
/// nulls being values of their own) with `events` summed, in first-seen order, in `schema`.
/// `None` when a column is neither text nor boolean, or `events` is not a non-null int64 (the
/// caller then keeps the rows as they are).
pub(crate) fn reaggregate(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Option<RecordBatch>, ArrowError> {
    let Ok(events_at) = schema.index_of(EVENTS) else {
        return Ok(None);
    };
    let mut index: HashMap<Vec<KeyValue<'_>>, usize> = HashMap::new();
    let mut groups: Vec<(Vec<KeyValue<'_>>, i64)> = Vec::new();
    let mut key: Vec<KeyValue<'_>> = Vec::with_capacity(schema.fields().len());
    for batch in batches {
        debug_assert_eq!(batch.schema().fields(), schema.fields());
        let Some(counts) = batch
            .column(events_at)
            .as_any()
            .downcast_ref::<Int64Array>()
        else {
            return Ok(None);
        };
        if counts.null_count() > 0 {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (at, column) in batch.columns().iter().enumerate() {
            if at == events_at {
                continue;
            }
            let Some(column) = KeyColumn::of(column) else {
                return Ok(None);
            };
            columns.push(column);
        }
        for row in 0..batch.num_rows() {
            key.clear();
            key.extend(columns.iter().map(|column| column.value(row)));
            let count = counts.value(row);
            match index.get(key.as_slice()) {
                Some(at) => groups[*at].1 = groups[*at].1.saturating_add(count),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key.clone(), count));
                }
            }
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut key_at = 0;
    for (at, field) in schema.fields().iter().enumerate() {
        if at == events_at {
            let mut counts = Int64Builder::with_capacity(groups.len());
            groups
                .iter()
                .for_each(|(_, count)| counts.append_value(*count));
            columns.push(Arc::new(counts.finish()));
            continue;
        }
        let this_key = key_at;
        key_at += 1;
        let values = groups.iter().map(|(key, _)| key[this_key]);
        if field.data_type() == &DataType::Boolean {
            let mut flags = BooleanBuilder::with_capacity(groups.len());
            for value in values {
                flags.append_option(match value {
                    KeyValue::Flag(flag) => Some(flag),
                    _ => None,
                });
            }
            columns.push(Arc::new(flags.finish()));
        } else {
            let mut texts = StringBuilder::with_capacity(groups.len(), groups.len() * 16);
            for value in values {
                texts.append_option(match value {
                    KeyValue::Text(text) => Some(text),
                    _ => None,
                });
            }
            columns.push(Arc::new(texts.finish()));
        }
    }
    RecordBatch::try_new(schema.clone(), columns).map(Some)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringArray};
    use veil_policy::Allowlist;

    use super::*;
    use crate::columns::{EventColumns, TableLayout};
    use crate::row::Row;

    const POLICY: &str = r#"
version: 1
common:
  userId: { pseudonymize: user, reason: "r" }
  anonymousId: { pseudonymize: anonymous, reason: "r" }
  context.app.name: { keep: string, reason: "r" }
  context.os.name: { keep: string, reason: "r" }
track:
  fields:
    properties.feature: { keep: string, reason: "r" }
  events:
    Document Opened: { reason: "r" }
"#;

    fn line(user: &str, feature: &str, id: &str) -> String {
        format!(
            r#"{{"schema":1,"tenant":"t-1","tier":"baseline","policy":"sha256:00","keyEpoch":"2026-11","type":"track","messageId":"{id}","timestamp":"2026-11-23T10:00:00.000Z","receivedAt":"2026-11-23T10:00:00.000Z","event":"Document Opened","fields":{{"properties.feature":"{feature}","context.app.name":"DMS Web"}},"pseudonyms":{{"{user}":"AAAAAAAAAAAAAAAAAAAAA{id}"}}}}"#
        )
    }

    #[test]
    fn an_alias_keeps_its_previous_user_and_no_other_message_does() {
        // A wider policy than the default: `previousId` kept on every message type.
        let policy = POLICY.replace(
            "  anonymousId:",
            "  previousId: { pseudonymize: user, reason: \"r\" }\n  anonymousId:",
        );
        let layout = TableLayout::from_policy(&Allowlist::parse(&policy).expect("valid").compile());
        let mut columns = EventColumns::new(&layout);
        let alias = r#"{"schema":1,"tenant":"t-1","tier":"baseline","policy":"sha256:00","keyEpoch":"2026-11","type":"alias","messageId":"a1","timestamp":"2026-11-23T10:00:00.000Z","receivedAt":"2026-11-23T10:00:00.000Z","pseudonyms":{"userId":"AAAAAAAAAAAAAAAAAAAAAnew","previousId":"AAAAAAAAAAAAAAAAAAAAAold"}}"#;
        let track = line("userId", "preview", "1").replace(
            r#""pseudonyms":{"#,
            r#""pseudonyms":{"previousId":"AAAAAAAAAAAAAAAAAAAAAold","#,
        );
        for json in [alias, &track] {
            let row = Row::decode(json.as_bytes()).expect("decodes");
            columns.append(&layout, &row).expect("fits");
        }
        let batch = batch(&columns.finish(&layout).expect("events")).expect("batch");
        assert_eq!(batch.num_rows(), 2);
        let previous = batch.column_by_name(PREVIOUS_USER).expect("column");
        let previous = previous
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(previous.value(0), "AAAAAAAAAAAAAAAAAAAAAold");
        assert!(
            previous.is_null(1),
            "a track message's previousId links nothing"
        );
        let users = batch.column_by_name(USER).expect("column");
        let users = users.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(users.value(0), "AAAAAAAAAAAAAAAAAAAAAnew");
    }

    #[test]
    fn one_row_per_distinct_combination_with_its_count() {
        let layout = TableLayout::from_policy(&Allowlist::parse(POLICY).expect("valid").compile());
        let mut columns = EventColumns::new(&layout);
        for json in [
            line("userId", "preview", "1"),
            line("userId", "preview", "1"),
            line("userId", "edit", "1"),
            line("anonymousId", "preview", "2"),
        ] {
            let row = Row::decode(json.as_bytes()).expect("decodes");
            columns.append(&layout, &row).expect("fits");
        }
        let batch = batch(&columns.finish(&layout).expect("events")).expect("batch");
        assert_eq!(batch.num_rows(), 3);
        let column = |name: &str| batch.column_by_name(name).expect("column").clone();
        let counts = column(EVENTS);
        let counts = counts.as_any().downcast_ref::<Int64Array>().expect("ints");
        assert_eq!(counts.values().to_vec(), vec![2, 1, 1]);
        let features = column("feature");
        let features = features
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(features.value(1), "edit");
        let products = column("product");
        let products = products
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(products.value(0), "DMS Web");
        assert!(column("os_name").is_null(0));
        let users = column(USER);
        let users = users.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(
            users.value(2),
            "AAAAAAAAAAAAAAAAAAAAA2",
            "anonymousId when no userId"
        );
    }
}
