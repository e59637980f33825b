//! How a batch becomes Parquet bytes: zstd, and per column whether a dictionary pays, which
//! encoding a column without one gets, and which statistics are worth computing.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::DataType;
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{StoreError, io};

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
        // The one exception is the message type: `alias` sorts before every other type, so
        // with min/max per row group a search for alias messages (the reports' identity links)
        // skips every row group that holds none, and its values are a few bytes long.
        if matches!(field.data_type(), DataType::Utf8) {
            let statistics = match field.name().as_str() {
                "type" => EnabledStatistics::Chunk,
                _ => EnabledStatistics::None,
            };
            properties = properties
                .set_column_statistics_enabled(ColumnPath::from(field.name().as_str()), statistics);
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
pub(super) fn mostly_distinct(column: &dyn Array) -> bool {
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
