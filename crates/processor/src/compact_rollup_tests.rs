//! Compaction of `daily_activity`: merged files re-aggregated (one row per key, `events`
//! summed), and a crash after every step losing and repeating nothing.

use arrow::array::{Array, BooleanArray, Int64Array, StringArray};

use super::*;
use crate::rollup;
use crate::store::Group;

const DATE: &str = "2026-11-23";

/// A daily_activity key in the tests: (user, identified, feature); the other key columns are fixed.
type ActivityRow<'a> = (Option<&'a str>, bool, Option<&'a str>, i64);

fn activity(rows: &[ActivityRow<'_>]) -> Group {
    let texts =
        |value: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![value; rows.len()])) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            rows.iter().map(|row| row.0).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|row| row.1).collect::<Vec<_>>(),
        )),
        texts(Some("track")),
        texts(Some("Document Opened")),
        texts(None),
        Arc::new(StringArray::from(
            rows.iter().map(|row| row.2).collect::<Vec<_>>(),
        )),
        texts(Some("DMS Web")),
        texts(None),
        texts(Some("Windows")),
        texts(Some("2026-11")),
        Arc::new(Int64Array::from(
            rows.iter().map(|row| row.3).collect::<Vec<_>>(),
        )),
        texts(None),
    ];
    Group {
        table: tables::DAILY_ACTIVITY,
        tenant: "t-1".to_owned(),
        date: DATE.to_owned(),
        batch: RecordBatch::try_new(rollup::schema(), columns).expect("batch"),
    }
}

/// Five flushes of partition 0 whose keys overlap (null user and null feature among them), and
/// one of partition 1 sharing a key with them.
fn store_with_activity_files() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let flushes: [&[ActivityRow<'_>]; 5] = [
        &[
            (Some("u1"), true, Some("preview"), 2),
            (Some("u2"), false, None, 1),
        ],
        &[
            (Some("u1"), true, Some("preview"), 1),
            (Some("u1"), true, None, 4),
        ],
        &[
            (Some("u1"), false, Some("preview"), 1),
            (None, false, Some("edit"), 3),
        ],
        &[(None, false, Some("edit"), 1), (Some("u2"), false, None, 5)],
        &[
            (Some("u1"), true, Some("preview"), 7),
            (Some("u1"), true, Some("edit"), 1),
        ],
    ];
    for (round, rows) in flushes.iter().enumerate() {
        let first = round as i64 * 10;
        store
            .commit("topic", 0, first, first + 9, &[activity(rows)])
            .expect("commit");
    }
    store
        .commit(
            "topic",
            1,
            0,
            9,
            &[activity(&[(Some("u1"), true, Some("preview"), 3)])],
        )
        .expect("commit");
    (dir, store)
}

/// A stored daily_activity row: its key (every column but `events`) and its `events`.
type StoredRow = (Vec<Option<String>>, i64);

/// Every stored daily_activity row of the day: its key (every column but `events`, booleans
/// as text, nulls as `None`) and its `events`, per file.
fn activity_rows(store: &Store) -> Vec<(String, Vec<StoredRow>)> {
    let dir = store
        .root()
        .join(tables::partition_dir(tables::DAILY_ACTIVITY, "t-1", DATE));
    let mut files = Vec::new();
    for path in tables::parquet_files(&dir) {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut rows = Vec::new();
        for batch in read_batches(&[path]).expect("read") {
            let events = batch.column_by_name(rollup::EVENTS).expect("events");
            let events = events.as_any().downcast_ref::<Int64Array>().expect("ints");
            for row in 0..batch.num_rows() {
                let mut key = Vec::new();
                for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                    if field.name() == rollup::EVENTS {
                        continue;
                    }
                    key.push(column.is_valid(row).then(|| {
                        arrow::util::display::array_value_to_string(column, row).expect("value")
                    }));
                }
                rows.push((key, events.value(row)));
            }
        }
        files.push((name, rows));
    }
    files
}

type Sums = std::collections::BTreeMap<Vec<Option<String>>, i64>;

fn sums_per_key<'a>(rows: impl IntoIterator<Item = &'a StoredRow>) -> Sums {
    let mut sums = Sums::new();
    for (key, events) in rows {
        *sums.entry(key.clone()).or_default() += events;
    }
    sums
}

fn day_sums(store: &Store) -> Sums {
    let files = activity_rows(store);
    sums_per_key(files.iter().flat_map(|(_, rows)| rows))
}

#[test]
fn daily_activity_compaction_sums_events_per_key() {
    let (_dir, store) = store_with_activity_files();
    let before = activity_rows(&store);
    let before_sums = day_sums(&store);
    let partition_0_sums = sums_per_key(
        before
            .iter()
            .filter(|(name, _)| name.starts_with("part-topic-0-"))
            .flat_map(|(_, rows)| rows),
    );
    assert_eq!(partition_0_sums.len(), 6, "the fixture's distinct keys");
    assert_eq!(
        compact_if_needed(&store, tables::DAILY_ACTIVITY, "t-1", DATE, "topic", 0, 2)
            .expect("compact"),
        5
    );
    let after = activity_rows(&store);
    let names: Vec<&str> = after.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["part-topic-0-0-49.parquet", "part-topic-1-0-9.parquet"]
    );
    assert_eq!(
        day_sums(&store),
        before_sums,
        "SUM(events) per key unchanged"
    );
    let merged = &after[0].1;
    assert_eq!(merged.len(), partition_0_sums.len(), "rows = distinct keys");
    assert_eq!(sums_per_key(merged), partition_0_sums);
    // Nulls are values of the key: a null feature or user stays its own group.
    let feature_at = 5;
    let null_feature: Vec<i64> = merged
        .iter()
        .filter(|(key, _)| key[feature_at].is_none())
        .map(|(_, events)| *events)
        .collect();
    assert_eq!(
        null_feature,
        [6, 4],
        "(u2, null) and (u1, null), first-seen order"
    );
    let null_user: Vec<i64> = merged
        .iter()
        .filter(|(key, _)| key[0].is_none())
        .map(|(_, events)| *events)
        .collect();
    assert_eq!(null_user, [4]);
    // The merged file has the rollup's schema.
    let merged_path = store
        .root()
        .join(tables::partition_dir(tables::DAILY_ACTIVITY, "t-1", DATE))
        .join("part-topic-0-0-49.parquet");
    let batches = read_batches(&[merged_path]).expect("read");
    assert_eq!(batches[0].schema(), rollup::schema());
    // Compacting again (more flushes of the same keys) keeps summing.
    store
        .commit(
            "topic",
            0,
            50,
            59,
            &[activity(&[(Some("u1"), true, Some("preview"), 10)])],
        )
        .expect("commit");
    let before_sums = day_sums(&store);
    assert_eq!(
        compact_if_needed(&store, tables::DAILY_ACTIVITY, "t-1", DATE, "topic", 0, 1)
            .expect("compact"),
        2
    );
    assert_eq!(day_sums(&store), before_sums);
    assert_eq!(activity_rows(&store)[0].1.len(), 6);
}

#[test]
fn files_from_before_the_alias_column_merge_with_newer_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    // A file written before the rollup had `previous_user`: its schema lacks the column.
    let mut old = activity(&[(Some("u1"), true, Some("preview"), 2)]);
    let without_previous: Vec<usize> = (0..old.batch.num_columns() - 1).collect();
    old.batch = old.batch.project(&without_previous).expect("project");
    assert!(old.batch.column_by_name(rollup::PREVIOUS_USER).is_none());
    store.commit("topic", 0, 0, 9, &[old]).expect("commit");
    // A newer file: the same key, and an alias linking u0 to u1.
    let mut new = activity(&[
        (Some("u1"), true, Some("preview"), 3),
        (Some("u1"), true, None, 1),
    ]);
    let mut columns = new.batch.columns().to_vec();
    let previous_at = columns.len() - 1;
    columns[previous_at] = Arc::new(StringArray::from(vec![None, Some("u0")]));
    new.batch = RecordBatch::try_new(rollup::schema(), columns).expect("batch");
    store.commit("topic", 0, 10, 19, &[new]).expect("commit");

    assert_eq!(
        compact_if_needed(&store, tables::DAILY_ACTIVITY, "t-1", DATE, "topic", 0, 1)
            .expect("compact"),
        2
    );
    let path = store
        .root()
        .join(tables::partition_dir(tables::DAILY_ACTIVITY, "t-1", DATE))
        .join("part-topic-0-0-19.parquet");
    let batches = read_batches(&[path]).expect("read");
    let merged = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
    assert_eq!(
        merged.num_rows(),
        2,
        "the old row's key summed with the new one's"
    );
    let column = |name: &str| merged.column_by_name(name).expect(name).clone();
    let previous = column(rollup::PREVIOUS_USER);
    let previous = previous
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("text");
    let events = column(rollup::EVENTS);
    let events = events.as_any().downcast_ref::<Int64Array>().expect("ints");
    let rows: Vec<(Option<&str>, i64)> = (0..merged.num_rows())
        .map(|row| {
            (
                previous.is_valid(row).then(|| previous.value(row)),
                events.value(row),
            )
        })
        .collect();
    assert_eq!(rows, [(None, 5), (Some("u0"), 1)]);
}

#[test]
fn a_crash_during_daily_activity_compaction_loses_and_repeats_nothing() {
    for step in [
        Step::Written,
        Step::Committed,
        Step::Renamed,
        Step::InputsDeleted,
    ] {
        let (_dir, store) = store_with_activity_files();
        let before = day_sums(&store);
        compact_until(
            &store,
            tables::DAILY_ACTIVITY,
            "t-1",
            DATE,
            ("topic", 0),
            2,
            step,
        )
        .expect("compact");
        store.recover("topic", 0).expect("recover");
        assert_eq!(day_sums(&store), before, "after a crash at {step:?}");
        let files = if step == Step::Written { 6 } else { 2 };
        assert_eq!(
            activity_rows(&store).len(),
            files,
            "after a crash at {step:?}"
        );
        compact_if_needed(&store, tables::DAILY_ACTIVITY, "t-1", DATE, "topic", 0, 1)
            .expect("again");
        assert_eq!(day_sums(&store), before);
        let after = activity_rows(&store);
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].1.len(), 6, "one row per key");
    }
}
