//! Compaction: merged content, names, and a crash after every step losing and repeating nothing.

use arrow::array::{Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::store::Group;

const DATE: &str = "2026-11-23";

fn group(ids: &[&str], with_count: bool) -> Group {
    let mut fields = vec![Field::new("message_id", DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(ids.to_vec()))];
    if with_count {
        fields.push(Field::new("count", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(vec![1_i64; ids.len()])));
    }
    Group {
        table: tables::EVENTS,
        tenant: "t-1".to_owned(),
        date: DATE.to_owned(),
        batch: RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch"),
    }
}

/// Four flushes of partition 0 (the last one under a newer layout with one more column) and one
/// of partition 1.
fn store_with_small_files() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    for (round, ids) in [["a", "b"], ["c", "d"], ["e", "f"]].iter().enumerate() {
        let first = round as i64 * 10;
        store
            .commit("topic", 0, first, first + 9, &[group(ids, false)])
            .expect("commit");
    }
    store
        .commit("topic", 0, 30, 39, &[group(&["g"], true)])
        .expect("commit");
    store
        .commit("topic", 1, 0, 9, &[group(&["x"], false)])
        .expect("commit");
    (dir, store)
}

fn stored_ids(store: &Store) -> Vec<String> {
    let dir = store
        .root()
        .join(tables::partition_dir(tables::EVENTS, "t-1", DATE));
    let mut ids = Vec::new();
    for batch in read_batches(&tables::parquet_files(&dir)).expect("read") {
        let column = batch.column_by_name("message_id").expect("column");
        let column = column.as_any().downcast_ref::<StringArray>().expect("text");
        ids.extend((0..column.len()).map(|row| column.value(row).to_owned()));
    }
    ids.sort();
    ids
}

fn file_names(store: &Store) -> Vec<String> {
    let dir = store
        .root()
        .join(tables::partition_dir(tables::EVENTS, "t-1", DATE));
    tables::parquet_files(&dir)
        .iter()
        .filter_map(|path| Some(path.file_name()?.to_str()?.to_owned()))
        .collect()
}

const ALL_IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "x"];

#[test]
fn a_partitions_small_files_become_one_named_by_the_merged_range() {
    let (_dir, store) = store_with_small_files();
    assert_eq!(
        compact_if_needed(&store, tables::EVENTS, "t-1", DATE, "topic", 0, 4).expect("compact"),
        0,
        "not more than the threshold"
    );
    assert_eq!(
        compact_if_needed(&store, tables::EVENTS, "t-1", DATE, "topic", 0, 2).expect("compact"),
        4
    );
    assert_eq!(
        file_names(&store),
        vec![
            "part-topic-0-0-39.parquet".to_owned(),
            "part-topic-1-0-9.parquet".to_owned()
        ],
        "the other partition's file is not touched"
    );
    assert_eq!(stored_ids(&store), ALL_IDS);
    // Older files lack the newer column: nulls there, the newer file's value kept.
    let merged = store
        .root()
        .join(tables::partition_dir(tables::EVENTS, "t-1", DATE))
        .join("part-topic-0-0-39.parquet");
    let batches = read_batches(&[merged]).expect("read");
    let counts: Vec<Option<i64>> = batches
        .iter()
        .flat_map(|batch| {
            let column = batch.column_by_name("count").expect("column");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("ints");
            column.iter().collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(counts, vec![None, None, None, None, None, None, Some(1)]);
    // The flush state still recovers (its files were compacted away since).
    assert_eq!(store.recover("topic", 0).expect("recover"), Some(40));
    assert_eq!(stored_ids(&store), ALL_IDS);
}

#[test]
fn a_crash_after_any_step_loses_and_repeats_nothing() {
    for step in [
        Step::Written,
        Step::Committed,
        Step::Renamed,
        Step::InputsDeleted,
    ] {
        let (_dir, store) = store_with_small_files();
        compact_until(&store, tables::EVENTS, "t-1", DATE, ("topic", 0), 2, step).expect("compact");
        // The process dies here; the partition's next owner recovers it.
        store.recover("topic", 0).expect("recover");
        assert_eq!(stored_ids(&store), ALL_IDS, "after a crash at {step:?}");
        let names = file_names(&store);
        if step == Step::Written {
            assert_eq!(
                names.len(),
                5,
                "uncommitted: inputs kept, merged file dropped"
            );
            assert_eq!(
                fs::read_dir(store.root().join(tables::TMP_DIR))
                    .expect("tmp")
                    .count(),
                0
            );
        } else {
            assert_eq!(names.len(), 2, "committed: rolled forward ({step:?})");
        }
        assert!(!manifest_path(&store, "topic", 0).exists());
        // And compaction still works afterwards.
        compact_if_needed(&store, tables::EVENTS, "t-1", DATE, "topic", 0, 1).expect("again");
        assert_eq!(stored_ids(&store), ALL_IDS);
        assert_eq!(file_names(&store).len(), 2);
    }
}

#[test]
fn compaction_waits_while_another_holds_the_maintenance_lock() {
    let (_dir, store) = store_with_small_files();
    let held = store.maintenance_lock().expect("lock");
    assert_eq!(
        compact_if_needed(&store, tables::EVENTS, "t-1", DATE, "topic", 0, 2).expect("compact"),
        0
    );
    assert_eq!(file_names(&store).len(), 5);
    drop(held);
    assert_eq!(
        compact_if_needed(&store, tables::EVENTS, "t-1", DATE, "topic", 0, 2).expect("compact"),
        4
    );
}

/// Even rows that look like rollup rows (text columns and an int64 `events`) are concatenated
/// in the events table: only `daily_activity` is re-aggregated.
#[test]
fn events_compaction_concatenates_identical_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let schema = Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new(crate::rollup::EVENTS, DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["a", "a"])),
        Arc::new(Int64Array::from(vec![1_i64, 1])),
    ];
    let identical = Group {
        table: tables::EVENTS,
        tenant: "t-1".to_owned(),
        date: DATE.to_owned(),
        batch: RecordBatch::try_new(schema, columns).expect("batch"),
    };
    for round in 0..3_i64 {
        let first = round * 10;
        store
            .commit(
                "topic",
                0,
                first,
                first + 9,
                std::slice::from_ref(&identical),
            )
            .expect("commit");
    }
    assert_eq!(
        compact_if_needed(&store, tables::EVENTS, "t-1", DATE, "topic", 0, 2).expect("compact"),
        3
    );
    assert_eq!(stored_ids(&store), ["a"; 6], "never aggregated");
}
