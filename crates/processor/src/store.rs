//! The Parquet store and its commit protocol: exactly once per Kafka partition.
//!
//! A flush of one partition's rows (offsets `first..=last`) writes each tenant/day group to a
//! temporary file and fsyncs it, then atomically replaces the partition's state file
//! (`_state/<topic>-<partition>.json`: the next offset and the files of this flush) — the commit
//! point — then renames the temporary files into `<table>/tenant=…/date=…/` (see
//! [`crate::tables`]). Recovery rolls a committed
//! flush forward (finishes its renames), deletes uncommitted temporary files, and resumes at the
//! state's next offset, whatever Kafka's committed offset says. So a crash at any point neither
//! loses nor repeats a row.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::DataType;
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::tables;

/// A failed store operation; messages name paths, never row values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Parquet encoding trouble.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A state file that cannot be read.
    #[error("damaged state file {0}")]
    Damaged(String),
}

/// Wraps an I/O error with its path.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PendingFile {
    temporary: PathBuf,
    path: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct PartitionState {
    next_offset: i64,
    files: Vec<PendingFile>,
}

/// One table/tenant/day group of a flush.
#[derive(Debug)]
pub struct Group {
    /// The table ([`crate::tables::EVENTS`], …).
    pub table: &'static str,
    /// Tenant id (validated).
    pub tenant: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The rows.
    pub batch: RecordBatch,
}

/// The Parquet directory tree.
#[derive(Debug, Clone)]
pub struct Store {
    root: Arc<PathBuf>,
}

/// Makes a directory's entries (renames, creations, deletions) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io(dir))
}

/// Writes `batches` as one zstd Parquet file at `path`, not yet fsynced (the caller syncs the
/// returned handle before anything refers to the file).
pub(crate) fn encode_parquet(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<File, StoreError> {
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        // Unique per row: a dictionary only costs hashing before the writer falls back.
        .set_column_dictionary_enabled(ColumnPath::from("message_id"), false)
        // Lengths apart from the bytes (see below).
        .set_column_encoding(
            ColumnPath::from("message_id"),
            Encoding::DELTA_LENGTH_BYTE_ARRAY,
        );
    for (at, field) in schema.fields().iter().enumerate() {
        // Pseudonyms of documents, workspaces or anonymous devices rarely repeat within a
        // file: interning every value into a dictionary that saves nothing was ~9% of the
        // processor's time. Repeating columns (events, users, versions) keep theirs.
        if batches
            .first()
            .and_then(|batch| batch.columns().get(at))
            .is_some_and(|column| mostly_distinct(column.as_ref()))
        {
            properties = properties
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            // Without a dictionary, text is stored with its lengths delta-encoded apart from the
            // bytes (PLAIN puts a 4-byte length before each value, which zstd then reads), and
            // 64-bit values as deltas (timestamps of one day differ by far less than they are
            // large): 9.6% fewer instructions for the processor and 4% smaller events files.
            let encoding = match field.data_type() {
                DataType::Utf8 => Some(Encoding::DELTA_LENGTH_BYTE_ARRAY),
                DataType::Int64 | DataType::Timestamp(..) => Some(Encoding::DELTA_BINARY_PACKED),
                _ => None,
            };
            if let Some(encoding) = encoding {
                properties = properties
                    .set_column_encoding(ColumnPath::from(field.name().as_str()), encoding);
            }
        }
        // A file holds every event, user and version of its tenant and day, so a string
        // column's min/max prunes nothing, while computing them compares every value (whole
        // strings when they are equal): ~10% of encoding. Timestamps and numbers keep theirs.
        if matches!(field.data_type(), DataType::Utf8) {
            properties = properties.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    if let [batch] = batches {
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            // An all-null column is a few bytes of levels: compressing it only costs a codec.
            if column.null_count() == column.len() {
                properties = properties.set_column_compression(
                    ColumnPath::from(field.name().as_str()),
                    Compression::UNCOMPRESSED,
                );
            }
        }
    }
    let properties = properties.build();
    let file = File::create(path).map_err(io(path))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(writer.into_inner()?)
}

/// Values sampled from a text column to judge whether a dictionary would pay.
const DICTIONARY_SAMPLE: usize = 1024;

/// Whether a text or 64-bit (integer, float, timestamp) column's first [`DICTIONARY_SAMPLE`]
/// values are at least 3/4 distinct (a dictionary would then hold nearly every value once and
/// save nothing: event timestamps in milliseconds are such a column).
fn mostly_distinct(column: &dyn Array) -> bool {
    // Too few values to judge, whatever the sample would hold (sparse properties).
    if column.len() - column.null_count() < 64 {
        return false;
    }
    let any = column.as_any();
    if let Some(strings) = any.downcast_ref::<StringArray>() {
        return sample_mostly_distinct(strings, |row| strings.value(row));
    }
    if let Some(integers) = column.as_primitive_opt::<Int64Type>() {
        return sample_mostly_distinct(column, |row| integers.value(row));
    }
    if let Some(times) = column.as_primitive_opt::<TimestampMillisecondType>() {
        return sample_mostly_distinct(column, |row| times.value(row));
    }
    if let Some(numbers) = column.as_primitive_opt::<Float64Type>() {
        return sample_mostly_distinct(column, |row| numbers.value(row).to_bits());
    }
    false
}

/// [`mostly_distinct`] over the non-null values `value` reads from `column`'s first rows.
fn sample_mostly_distinct<T: std::hash::Hash + Eq>(
    column: &dyn Array,
    value: impl Fn(usize) -> T,
) -> bool {
    let sample = column.len().min(DICTIONARY_SAMPLE);
    if sample < 64 {
        return false;
    }
    let mut seen: rustc_hash::FxHashSet<T> = rustc_hash::FxHashSet::default();
    seen.reserve(sample);
    let mut present = 0;
    for row in 0..sample {
        if column.is_valid(row) {
            present += 1;
            seen.insert(value(row));
            // Most columns repeat from the start (events, versions, tiers): no need to read on.
            if present == EARLY_LOOK && seen.len() * 2 < present {
                return false;
            }
        }
    }
    present >= 64 && seen.len() * 4 >= present * 3
}

/// Values after which a column repeating more than half of them is judged without the rest of
/// the sample (the sample was ~2% of the processor's work when files are small: a column
/// costs it once per file).
const EARLY_LOOK: usize = 128;

/// Writes `batches` as one zstd Parquet file at `path` and fsyncs it.
pub(crate) fn write_parquet(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), StoreError> {
    encode_parquet(path, schema, batches)?
        .sync_all()
        .map_err(io(path))
}

/// fsyncs every file, several at a time (the file system commits concurrent syncs together).
fn sync_all(files: Vec<(PathBuf, File)>) -> Result<(), StoreError> {
    const SYNCERS: usize = 8;
    if files.len() <= 1 {
        return files
            .iter()
            .try_for_each(|(path, file)| file.sync_all().map_err(io(path)));
    }
    let chunk = files.len().div_ceil(SYNCERS);
    std::thread::scope(|scope| {
        let syncers: Vec<_> = files
            .chunks(chunk)
            .map(|some| {
                scope.spawn(move || {
                    some.iter()
                        .try_for_each(|(path, file)| file.sync_all().map_err(io(path)))
                })
            })
            .collect();
        syncers.into_iter().try_for_each(|syncer| {
            syncer
                .join()
                .unwrap_or_else(|_| Err(StoreError::Damaged("fsync thread".to_owned())))
        })
    })
}

/// Replaces `path` with `value` as JSON atomically and durably (write, fsync, rename, fsync dir).
pub(crate) fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<(), StoreError> {
    let (staging, staged) = stage_json(path, value)?;
    staged.sync_all().map_err(io(&staging))?;
    fs::rename(&staging, path).map_err(io(path))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Writes `value` as JSON next to `path` (`*.json.new`), not yet fsynced nor renamed over it.
fn stage_json(path: &Path, value: &impl Serialize) -> Result<(PathBuf, File), StoreError> {
    let staging = path.with_extension("json.new");
    let encoded =
        serde_json::to_vec(value).map_err(|error| io(&staging)(std::io::Error::other(error)))?;
    let mut staged = File::create(&staging).map_err(io(&staging))?;
    staged.write_all(&encoded).map_err(io(&staging))?;
    Ok((staging, staged))
}

impl Store {
    /// Opens (and creates) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for dir in [root.join(tables::TMP_DIR), root.join(tables::STATE_DIR)] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Store {
            root: Arc::new(root),
        })
    }

    /// Waits for the maintenance lock (`_state/maintenance.lock`), which keeps compaction,
    /// erasure and retention of any process from touching the same files at once.
    pub fn maintenance_lock(&self) -> Result<File, StoreError> {
        let path = self.root.join(tables::STATE_DIR).join("maintenance.lock");
        let file = File::create(&path).map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// The maintenance lock if nobody holds it (`None`: try again later).
    pub fn try_maintenance_lock(&self) -> Result<Option<File>, StoreError> {
        let path = self.root.join(tables::STATE_DIR).join("maintenance.lock");
        let file = File::create(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(error)) => Err(io(&path)(error)),
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self, topic: &str, partition: i32) -> PathBuf {
        self.root
            .join("_state")
            .join(format!("{topic}-{partition}.json"))
    }

    /// Finishes a committed flush, drops an uncommitted one, and returns the offset to resume
    /// at (`None`: nothing was ever stored for this partition).
    pub fn recover(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        let state_path = self.state_path(topic, partition);
        let state: Option<PartitionState> = match fs::read(&state_path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|_| StoreError::Damaged(state_path.display().to_string()))?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io(&state_path)(error)),
        };
        if let Some(state) = &state {
            self.finish_renames(&state.files)?;
        }
        crate::compact::recover(self, topic, partition)?;
        let prefix = format!("{topic}-{partition}-");
        let tmp_dir = self.root.join("_tmp");
        for entry in fs::read_dir(&tmp_dir).map_err(io(&tmp_dir))? {
            let entry = entry.map_err(io(&tmp_dir))?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(state.map(|state| state.next_offset))
    }

    fn finish_renames(&self, files: &[PendingFile]) -> Result<(), StoreError> {
        let mut touched: Vec<PathBuf> = Vec::new();
        for file in files {
            let temporary = self.root.join(&file.temporary);
            if !temporary.exists() {
                // Already landed (and maybe compacted, erased or expired since).
                continue;
            }
            let path = self.root.join(&file.path);
            let dir = path.parent().unwrap_or(&self.root).to_path_buf();
            if !touched.contains(&dir) {
                if !dir.is_dir() {
                    fs::create_dir_all(&dir).map_err(io(&dir))?;
                    // New directories' own entries must be durable too (`date=…`, `tenant=…`).
                    for ancestor in dir.ancestors().skip(1).take(3) {
                        fsync_dir(ancestor)?;
                    }
                }
                touched.push(dir);
            }
            fs::rename(&temporary, &path).map_err(io(&temporary))?;
        }
        touched.iter().try_for_each(|dir| fsync_dir(dir))
    }

    /// Durably stores one flush of `topic`/`partition` covering offsets `first..=last`.
    pub fn commit(
        &self,
        topic: &str,
        partition: i32,
        first: i64,
        last: i64,
        groups: &[Group],
    ) -> Result<(), StoreError> {
        self.commit_all(&[PartitionFlush {
            topic,
            partition,
            first,
            last,
            groups,
        }])
    }

    /// Durably stores several partitions' flushes at once: every file is written, then all are
    /// fsynced together, then each partition's state file is replaced (its own commit point),
    /// the state directory fsynced once, and the files renamed into place.
    pub fn commit_all(&self, flushes: &[PartitionFlush<'_>]) -> Result<(), StoreError> {
        let mut written = Vec::new();
        let mut states = Vec::with_capacity(flushes.len());
        for flush in flushes {
            let PartitionFlush {
                topic,
                partition,
                first,
                last,
                groups,
            } = *flush;
            debug_assert!(first <= last);
            let mut files = Vec::with_capacity(groups.len());
            for (index, group) in groups.iter().enumerate() {
                let name = format!(
                    "{topic}-{partition}-{first}-{last}-{}-{index}.parquet",
                    group.table
                );
                let temporary = PathBuf::from(tables::TMP_DIR).join(&name);
                let path = tables::partition_dir(group.table, &group.tenant, &group.date)
                    .join(tables::part_name(topic, partition, first, last));
                let absolute = self.root.join(&temporary);
                let file = encode_parquet(
                    &absolute,
                    group.batch.schema(),
                    std::slice::from_ref(&group.batch),
                )?;
                written.push((absolute, file));
                files.push(PendingFile { temporary, path });
            }
            let state = PartitionState {
                next_offset: last + 1,
                files,
            };
            let state_path = self.state_path(topic, partition);
            let (staging, staged) = stage_json(&state_path, &state)?;
            written.push((staging.clone(), staged));
            states.push((staging, state_path, state));
        }
        sync_all(written)?;
        for (staging, state_path, _) in &states {
            fs::rename(staging, state_path).map_err(io(state_path))?;
        }
        fsync_dir(&self.root.join(tables::STATE_DIR))?;
        // Committed: what follows is repeated by recovery if it does not finish.
        let files: Vec<PendingFile> = states
            .into_iter()
            .flat_map(|(_, _, state)| state.files)
            .collect();
        self.finish_renames(&files)
    }
}

/// One partition's part of [`Store::commit_all`]: offsets `first..=last` stored as `groups`.
#[derive(Debug, Clone, Copy)]
pub struct PartitionFlush<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// First offset covered.
    pub first: i64,
    /// Last offset covered.
    pub last: i64,
    /// The files to write (possibly none: the offsets still move on).
    pub groups: &'a [Group],
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

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
        let offset =
            arrow::array::Int64Array::from((0..2000).collect::<Vec<i64>>()).slice(1000, 1000);
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
        let flags = arrow::array::BooleanArray::from(
            (0..2000).map(|at| at % 2 == 0).collect::<Vec<bool>>(),
        );
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
        for at in [2, 4] {
            assert!(
                encodings(at).contains(&Encoding::RLE_DICTIONARY),
                "repeating column {at} keeps its dictionary: {:?}",
                encodings(at)
            );
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
}
