//! Compaction: the small files one topic-partition wrote into a table/tenant/day directory are
//! merged into one when there are more than `processor.compact_files`, by the partition's owner
//! after its flushes.
//!
//! Crash-safe: the merged file is written and fsynced in `_tmp`, then a manifest
//! `_state/compact-<topic>-<partition>.json` (merged file, target, inputs) is the commit point;
//! then the merged file is renamed into place, the inputs deleted, the manifest deleted. Recovery
//! rolls a manifest forward and deletes a merged file that never got one. The merged file keeps
//! the name `part-<topic>-<partition>-<first>-<last>.parquet` (the merged offset range), so the
//! dedup window's rebuild still finds it. `daily_activity` files are re-aggregated (one row per
//! key, `events` summed: `rollup::reaggregate`); other tables' rows are concatenated.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::rollup;
use crate::store::{Store, StoreError, fsync_dir, io, write_json_atomically, write_parquet};
use crate::tables;

/// A committed compaction not yet finished (paths relative to the data directory).
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    temporary: PathBuf,
    target: PathBuf,
    inputs: Vec<PathBuf>,
}

fn manifest_path(store: &Store, topic: &str, partition: i32) -> PathBuf {
    store
        .root()
        .join(tables::STATE_DIR)
        .join(format!("compact-{topic}-{partition}.json"))
}

fn temporary_path(topic: &str, partition: i32) -> PathBuf {
    PathBuf::from(tables::TMP_DIR).join(format!("compact-{topic}-{partition}.parquet"))
}

/// Reads every row of the Parquet files `paths`.
pub(crate) fn read_batches(paths: &[PathBuf]) -> Result<Vec<RecordBatch>, StoreError> {
    let mut batches = Vec::new();
    for path in paths {
        let file = File::open(path).map_err(io(path))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            batches.push(batch.map_err(|error| StoreError::Parquet(error.into()))?);
        }
    }
    Ok(batches)
}

/// The batches in one schema: the union of their columns (files written under older allowlists
/// lack newer columns, which become nulls). `None` when two files disagree on a column's type.
fn unify(batches: &[RecordBatch]) -> Option<(SchemaRef, Vec<RecordBatch>)> {
    let first = batches.first()?;
    if batches.iter().all(|batch| batch.schema() == first.schema()) {
        return Some((first.schema(), batches.to_vec()));
    }
    let merged =
        Schema::try_merge(batches.iter().map(|batch| batch.schema().as_ref().clone())).ok()?;
    let fields: Vec<Field> = merged
        .fields()
        .iter()
        .map(|field| {
            let everywhere = batches
                .iter()
                .all(|batch| batch.column_by_name(field.name()).is_some());
            field
                .as_ref()
                .clone()
                .with_nullable(field.is_nullable() || !everywhere)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut unified = Vec::with_capacity(batches.len());
    for batch in batches {
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| {
                batch
                    .column_by_name(field.name())
                    .cloned()
                    .unwrap_or_else(|| new_null_array(field.data_type(), batch.num_rows()))
            })
            .collect();
        unified.push(RecordBatch::try_new(schema.clone(), columns).ok()?);
    }
    Some((schema, unified))
}

/// Merges this topic-partition's files in `table/tenant/date` when there are more than
/// `threshold` (0 disables); returns how many files were merged away (0: nothing to do, or an
/// erasure holds the maintenance lock and it waits for the next flush).
pub fn compact_if_needed(
    store: &Store,
    table: &str,
    tenant: &str,
    date: &str,
    topic: &str,
    partition: i32,
    threshold: usize,
) -> Result<usize, StoreError> {
    compact_until(
        store,
        table,
        tenant,
        date,
        (topic, partition),
        threshold,
        Step::Done,
    )
}

/// How far a compaction goes (tests stop it early to simulate a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Written,
    Committed,
    Renamed,
    InputsDeleted,
    Done,
}

fn compact_until(
    store: &Store,
    table: &str,
    tenant: &str,
    date: &str,
    (topic, partition): (&str, i32),
    threshold: usize,
    stop_after: Step,
) -> Result<usize, StoreError> {
    let relative_dir = tables::partition_dir(table, tenant, date);
    let dir = store.root().join(&relative_dir);
    let mut inputs: Vec<(i64, i64, PathBuf)> = tables::parquet_files(&dir)
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let (first, last) = tables::part_range(name, topic, partition)?;
            Some((first, last, path))
        })
        .collect();
    if threshold == 0 || inputs.len() <= threshold {
        return Ok(0);
    }
    let Some(_lock) = store.try_maintenance_lock()? else {
        return Ok(0);
    };
    inputs.sort();
    let first = inputs.iter().map(|input| input.0).min().unwrap_or(0);
    let last = inputs.iter().map(|input| input.1).max().unwrap_or(0);
    let paths: Vec<PathBuf> = inputs.into_iter().map(|input| input.2).collect();
    let batches = read_batches(&paths)?;
    let Some((schema, batches)) = unify(&batches) else {
        tracing::warn!(
            table,
            topic,
            partition,
            "files disagree on a column's type; not compacted"
        );
        return Ok(0);
    };
    let batches = if table == tables::DAILY_ACTIVITY {
        match rollup::reaggregate(&schema, &batches) {
            Ok(Some(summed)) => vec![summed],
            Ok(None) => {
                tracing::warn!(
                    table,
                    topic,
                    partition,
                    "rollup columns of an unexpected type; rows concatenated"
                );
                batches
            }
            Err(error) => return Err(StoreError::Parquet(error.into())),
        }
    } else {
        batches
    };
    let temporary = temporary_path(topic, partition);
    write_parquet(&store.root().join(&temporary), schema, &batches)?;
    if stop_after == Step::Written {
        return Ok(0);
    }
    let target = relative_dir.join(tables::part_name(topic, partition, first, last));
    let manifest = Manifest {
        temporary,
        target,
        inputs: paths
            .iter()
            .filter_map(|path| path.strip_prefix(store.root()).ok().map(Path::to_path_buf))
            .collect(),
    };
    debug_assert_eq!(manifest.inputs.len(), paths.len());
    let manifest_file = manifest_path(store, topic, partition);
    write_json_atomically(&manifest_file, &manifest)?;
    if stop_after == Step::Committed {
        return Ok(0);
    }
    finish(store, &manifest, &manifest_file, stop_after)?;
    tracing::debug!(table, topic, partition, files = paths.len(), "compacted");
    Ok(paths.len())
}

fn finish(
    store: &Store,
    manifest: &Manifest,
    manifest_file: &Path,
    stop_after: Step,
) -> Result<(), StoreError> {
    let root = store.root();
    let temporary = root.join(&manifest.temporary);
    let target = root.join(&manifest.target);
    let dir = target.parent().unwrap_or(root).to_path_buf();
    if temporary.exists() {
        fs::rename(&temporary, &target).map_err(io(&temporary))?;
    }
    if stop_after == Step::Renamed {
        fsync_dir(&dir)?;
        return Ok(());
    }
    // The inputs go right after the rename, with one fsync for both: a reader listing the
    // directory in between sees the merged rows twice, so that window stays as short as the
    // deletions. A crash before the fsync is safe either way: the manifest rolls forward, and a
    // rename that did not last leaves the merged file in `_tmp` to be renamed again.
    for input in &manifest.inputs {
        let path = root.join(input);
        if path == target {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(&path)(error)),
        }
    }
    fsync_dir(&dir)?;
    if stop_after == Step::InputsDeleted {
        return Ok(());
    }
    fs::remove_file(manifest_file).map_err(io(manifest_file))?;
    fsync_dir(&root.join(tables::STATE_DIR))
}

/// Rolls an interrupted compaction of this topic-partition forward, or drops an uncommitted
/// merged file. Part of [`Store::recover`].
pub(crate) fn recover(store: &Store, topic: &str, partition: i32) -> Result<(), StoreError> {
    let manifest_file = manifest_path(store, topic, partition);
    match fs::read(&manifest_file) {
        Ok(bytes) => {
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::Damaged(manifest_file.display().to_string()))?;
            let _lock = store.maintenance_lock()?;
            finish(store, &manifest, &manifest_file, Step::Done)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let temporary = store.root().join(temporary_path(topic, partition));
            match fs::remove_file(&temporary) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(io(&temporary)(error)),
            }
        }
        Err(error) => Err(io(&manifest_file)(error)),
    }
}

/// Rolls forward every interrupted compaction (before an erasure rewrites files).
pub(crate) fn recover_all(store: &Store) -> Result<(), StoreError> {
    let state = store.root().join(tables::STATE_DIR);
    for entry in fs::read_dir(&state).map_err(io(&state))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix("compact-")
            .and_then(|rest| rest.strip_suffix(".json"))
        else {
            continue;
        };
        let bytes = fs::read(entry.path()).map_err(io(&entry.path()))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|_| StoreError::Damaged(entry.path().display().to_string()))?;
        debug_assert!(!stem.is_empty());
        finish(store, &manifest, &entry.path(), Step::Done)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "compact_rollup_tests.rs"]
mod rollup_tests;
