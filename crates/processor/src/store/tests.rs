use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::basic::Encoding;

use super::encode::mostly_distinct;
use super::*;

#[test]
fn dictionaries_are_skipped_only_for_columns_whose_values_rarely_repeat() {
    let column = |values: Vec<Option<String>>| StringArray::from(values);
    let unique = column((0..2000).map(|at| Some(format!("doc-{at}"))).collect());
    assert!(mostly_distinct(&unique));
    let repeating = column(
        (0..2000)
            .map(|at| Some(format!("user-{}", at % 300)))
            .collect(),
    );
    assert!(
        !mostly_distinct(&repeating),
        "distinct in its first 128 values, repeating over the whole sample"
    );
    let mostly_null = column(
        (0..2000)
            .map(|at| (at % 40 == 0).then(|| format!("doc-{at}")))
            .collect(),
    );
    assert!(!mostly_distinct(&mostly_null), "too few values to judge");
    let small = column((0..10).map(|at| Some(format!("doc-{at}"))).collect());
    assert!(!mostly_distinct(&small), "too few rows to judge");
    let numbers = arrow::array::Int64Array::from((0..2000).collect::<Vec<i64>>());
    assert!(mostly_distinct(&numbers), "distinct integers");
    let offset = arrow::array::Int64Array::from((0..2000).collect::<Vec<i64>>()).slice(1000, 1000);
    assert!(mostly_distinct(&offset), "a slice reads its own rows");
    let durations =
        arrow::array::Int64Array::from((0..2000).map(|at| at % 50).collect::<Vec<i64>>());
    assert!(!mostly_distinct(&durations), "repeating integers");
    let late_unique = column(
        (0..2000)
            .map(|at| Some(format!("doc-{}", if at < 100 { at % 10 } else { at })))
            .collect(),
    );
    assert!(
        !mostly_distinct(&late_unique),
        "judged by its first 128 values"
    );
    let flags =
        arrow::array::BooleanArray::from((0..2000).map(|at| at % 2 == 0).collect::<Vec<bool>>());
    assert!(!mostly_distinct(&flags), "only text and 64-bit columns");
}

#[test]
fn distinct_columns_are_delta_encoded_and_read_back_unchanged() {
    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let rows = 3000_i64;
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        text("message_id"),
        text("properties.document_id"),
        text("userId"),
        Field::new(
            "timestamp",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("properties.result_count", DataType::Int64, true),
        text("type"),
    ]));
    let strings = |make: &dyn Fn(i64) -> Option<String>| {
        Arc::new(StringArray::from((0..rows).map(make).collect::<Vec<_>>())) as ArrayRef
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(&|at| Some(format!("m-{at:08x}-{}", at * 7919))),
            strings(&|at| (at % 5 != 0).then(|| format!("doc-{}", at * 104_729 % 99_991))),
            strings(&|at| Some(format!("user-{}", at % 40))),
            Arc::new(
                TimestampMillisecondArray::from(
                    (0..rows)
                        .map(|at| 1_764_000_000_000 + at * 1_337 % 86_400_000)
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(
                (0..rows).map(|at| Some(at % 12)).collect::<Vec<_>>(),
            )),
            strings(&|at| Some(if at % 100 == 7 { "identify" } else { "track" }.to_owned())),
        ],
    )
    .expect("batch");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("part.parquet");
    encode_parquet(&path, schema, std::slice::from_ref(&batch)).expect("written");

    let reader = SerializedFileReader::new(File::open(&path).expect("file")).expect("reader");
    let row_group = reader.metadata().row_group(0);
    let encodings = |at: usize| row_group.column(at).encodings().collect::<Vec<_>>();
    for (at, expected) in [
        (0, Encoding::DELTA_LENGTH_BYTE_ARRAY),
        (1, Encoding::DELTA_LENGTH_BYTE_ARRAY),
        (3, Encoding::DELTA_BINARY_PACKED),
    ] {
        assert!(
            encodings(at).contains(&expected),
            "column {at}: {:?}",
            encodings(at)
        );
        assert!(
            !encodings(at).contains(&Encoding::RLE_DICTIONARY),
            "column {at}"
        );
    }
    for at in [2, 4, 5] {
        assert!(
            encodings(at).contains(&Encoding::RLE_DICTIONARY),
            "repeating column {at} keeps its dictionary: {:?}",
            encodings(at)
        );
    }
    // Text columns carry no min/max, except the message type: a search for `alias` messages
    // skips this row group by it (its smallest type is `identify`).
    for at in [0, 1, 2] {
        assert!(row_group.column(at).statistics().is_none(), "column {at}");
    }
    match row_group.column(5).statistics() {
        Some(parquet::file::statistics::Statistics::ByteArray(type_range)) => {
            assert_eq!(
                type_range.min_opt().map(|min| min.data()),
                Some(&b"identify"[..])
            );
            assert_eq!(
                type_range.max_opt().map(|max| max.data()),
                Some(&b"track"[..])
            );
        }
        other => panic!("the type column has min/max: {other:?}"),
    }

    let read: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("file"))
            .expect("builder")
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("batches");
    let read = arrow::compute::concat_batches(&batch.schema(), &read).expect("concat");
    assert_eq!(read, batch, "every value reads back unchanged");
}

fn group(tenant: &str, ids: &[&str]) -> Group {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "message_id",
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids.to_vec()))])
        .expect("batch");
    Group {
        table: tables::EVENTS,
        tenant: tenant.to_owned(),
        date: "2026-11-23".to_owned(),
        batch,
    }
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "parquet") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_commit_lands_files_and_the_next_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    assert_eq!(store.recover("topic", 0).expect("recover"), None);
    store
        .commit(
            "topic",
            0,
            10,
            19,
            &[group("t-1", &["a", "b"]), group("t-2", &["c"])],
        )
        .expect("commit");
    assert_eq!(store.recover("topic", 0).expect("recover"), Some(20));
    let files = parquet_files(dir.path());
    assert_eq!(files.len(), 2);
    assert!(files[0].ends_with("events/tenant=t-1/date=2026-11-23/part-topic-0-10-19.parquet"));
}

#[test]
fn recovery_finishes_a_committed_flush_and_drops_an_uncommitted_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store
        .commit("topic", 0, 0, 9, &[group("t-1", &["a"])])
        .expect("commit");
    // Crash after the commit point, before the renames: put the file back in _tmp.
    let landed = parquet_files(dir.path()).remove(0);
    let temporary = dir.path().join("_tmp/topic-0-0-9-events-0.parquet");
    fs::rename(&landed, &temporary).expect("simulate");
    // And an uncommitted flush's leftovers of the same partition, plus another partition's.
    fs::write(dir.path().join("_tmp/topic-0-10-19-0.parquet"), b"partial").expect("write");
    fs::write(dir.path().join("_tmp/topic-1-0-5-0.parquet"), b"other").expect("write");

    assert_eq!(store.recover("topic", 0).expect("recover"), Some(10));
    assert!(landed.exists(), "rolled forward");
    assert!(!temporary.exists());
    assert!(
        !dir.path().join("_tmp/topic-0-10-19-0.parquet").exists(),
        "rolled back"
    );
    assert!(
        dir.path().join("_tmp/topic-1-0-5-0.parquet").exists(),
        "other partitions untouched"
    );
    // Recovery is repeatable.
    assert_eq!(store.recover("topic", 0).expect("recover"), Some(10));
}

#[test]
fn a_damaged_state_file_stops_recovery_instead_of_guessing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    fs::write(dir.path().join("_state/topic-0.json"), b"{\"next_off").expect("write");
    assert!(matches!(
        store.recover("topic", 0),
        Err(StoreError::Damaged(_))
    ));
}

#[test]
fn a_partitions_ownership_lock_is_given_out_once_and_per_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let held = store
        .try_partition_lock("veil.sanitized.us", 0)
        .expect("lock")
        .expect("free");
    // Another partition is independent.
    assert!(
        store
            .try_partition_lock("veil.sanitized.us", 1)
            .expect("other lock")
            .is_some()
    );
    // Held (a separate open file description locks like another process would).
    assert!(
        store
            .try_partition_lock("veil.sanitized.us", 0)
            .expect("lock")
            .is_none(),
        "the lock is given out only once its holder lets go"
    );
    drop(held);
    assert!(
        store
            .try_partition_lock("veil.sanitized.us", 0)
            .expect("lock")
            .is_some(),
        "taken after release"
    );
}

#[test]
fn the_committed_next_offset_is_read_without_recovering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    assert_eq!(store.committed_next_offset("topic", 0).expect("read"), None);
    std::fs::write(
        dir.path().join("_state/topic-0.json"),
        r#"{"next_offset":42,"files":[{"temporary":"_tmp/x","path":"events/x"}]}"#,
    )
    .expect("state");
    assert_eq!(
        store.committed_next_offset("topic", 0).expect("read"),
        Some(42)
    );
    // Nothing was finished or removed: that is recovery's job, under the ownership lock.
    assert!(dir.path().join("_state/topic-0.json").exists());
}
