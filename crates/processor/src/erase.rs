//! Erasure: every stored row of one tenant where a column holds one of a person's pseudonyms (of
//! that column's identifier domain) is removed, by rewriting the affected files of the events
//! and daily_activity tables.
//!
//! Crash-safe like compaction: the rewritten files are written and fsynced in `_tmp`, a manifest
//! `_state/erasure.json` (replacements, deletions, the audit record) is the commit point, then
//! files are renamed over the originals (or deleted when no row is left), the audit record is
//! appended to `_audit/erasures.jsonl`, and the manifest is deleted. An interrupted erasure is
//! rolled forward by the next one (or dropped, when it had not committed). The maintenance lock
//! keeps compaction and retention away meanwhile. The caller computes the pseudonyms; this module
//! never sees the user id, and the audit record holds no pseudonym either.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::compact::{self, read_batches};
use crate::store::{Store, StoreError, fsync_dir, io, write_json_atomically, write_parquet};
use crate::{rollup, tables};

/// The audit line of one erasure: when, which tenant, how much (never the user or pseudonyms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    /// When the erasure committed (RFC 3339, UTC).
    pub at: String,
    /// The tenant.
    pub tenant: String,
    /// Rows removed, all tables together.
    pub rows_removed: u64,
    /// Files rewritten without those rows.
    pub files_rewritten: u64,
    /// Files deleted because no row was left.
    pub files_deleted: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Replacement {
    temporary: PathBuf,
    target: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    replacements: Vec<Replacement>,
    deletions: Vec<PathBuf>,
    record: ErasureRecord,
}

/// Where the audit log is, under the data directory.
pub fn audit_log(store: &Store) -> PathBuf {
    store.root().join(tables::AUDIT_DIR).join("erasures.jsonl")
}

fn manifest_path(store: &Store) -> PathBuf {
    store.root().join(tables::STATE_DIR).join("erasure.json")
}

/// One identifier domain's share of an erasure: pseudonyms are only compared with columns of
/// their own domain (an HMAC under another domain never matches by design).
#[derive(Debug, Clone, Default)]
pub struct ErasureTarget<'a> {
    /// The events table's columns pseudonymized in this domain.
    pub columns: Vec<&'a str>,
    /// The person's pseudonyms in this domain, one per key epoch that still exists.
    pub pseudonyms: HashSet<String>,
}

/// Which rows of `batch` to keep: those where no column of a target holds one of its pseudonyms.
fn keep_mask(batch: &RecordBatch, targets: &[(&[&str], &HashSet<String>)]) -> BooleanArray {
    let columns: Vec<(&StringArray, &HashSet<String>)> = targets
        .iter()
        .flat_map(|(columns, pseudonyms)| {
            columns
                .iter()
                .filter_map(|name| batch.column_by_name(name))
                .filter_map(|column| column.as_any().downcast_ref::<StringArray>())
                .map(move |column| (column, *pseudonyms))
        })
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            Some(!columns.iter().any(|(column, pseudonyms)| {
                column.is_valid(row) && pseudonyms.contains(column.value(row))
            }))
        })
        .collect()
}

/// Removes `tenant`'s rows where a target's columns (in events) or the user or an alias's previous
/// user (in daily_activity, which holds `userId`'s pseudonym, else `anonymousId`'s: a pseudonym of
/// another domain never matches there) hold one of its pseudonyms; `at` is the audit time
/// (RFC 3339).
pub fn erase(
    store: &Store,
    tenant: &str,
    targets: &[ErasureTarget<'_>],
    at: String,
) -> Result<ErasureRecord, StoreError> {
    let _lock = store.maintenance_lock()?;
    recover_locked(store)?;
    let mut record = ErasureRecord {
        at,
        tenant: tenant.to_owned(),
        rows_removed: 0,
        files_rewritten: 0,
        files_deleted: 0,
    };
    let mut manifest = Manifest {
        replacements: Vec::new(),
        deletions: Vec::new(),
        record: record.clone(),
    };
    let rollup_user = [rollup::USER, rollup::PREVIOUS_USER];
    let event_targets: Vec<(&[&str], &HashSet<String>)> = targets
        .iter()
        .map(|target| (&target.columns[..], &target.pseudonyms))
        .collect();
    let rollup_targets: Vec<(&[&str], &HashSet<String>)> = targets
        .iter()
        .map(|target| (&rollup_user[..], &target.pseudonyms))
        .collect();
    for (table, table_targets) in [
        (tables::EVENTS, &event_targets),
        (tables::DAILY_ACTIVITY, &rollup_targets),
    ] {
        for (owner, _, dir) in tables::partitions(store.root(), table) {
            if owner != tenant {
                continue;
            }
            for path in tables::parquet_files(&dir) {
                let batches = read_batches(std::slice::from_ref(&path))?;
                let mut kept = Vec::with_capacity(batches.len());
                let mut removed = 0;
                for batch in &batches {
                    let mask = keep_mask(batch, table_targets);
                    let filtered = filter_record_batch(batch, &mask)
                        .map_err(|error| StoreError::Parquet(error.into()))?;
                    removed += batch.num_rows() - filtered.num_rows();
                    kept.push(filtered);
                }
                if removed == 0 {
                    continue;
                }
                record.rows_removed += removed as u64;
                let target = path
                    .strip_prefix(store.root())
                    .map_err(|_| StoreError::Damaged(path.display().to_string()))?
                    .to_path_buf();
                if kept.iter().all(|batch| batch.num_rows() == 0) {
                    record.files_deleted += 1;
                    manifest.deletions.push(target);
                    continue;
                }
                record.files_rewritten += 1;
                let temporary = PathBuf::from(tables::TMP_DIR)
                    .join(format!("erase-{}.parquet", manifest.replacements.len()));
                let schema = batches[0].schema();
                write_parquet(&store.root().join(&temporary), schema, &kept)?;
                manifest
                    .replacements
                    .push(Replacement { temporary, target });
            }
        }
    }
    manifest.record = record.clone();
    let manifest_file = manifest_path(store);
    write_json_atomically(&manifest_file, &manifest)?;
    finish(store, &manifest)?;
    Ok(record)
}

fn finish(store: &Store, manifest: &Manifest) -> Result<(), StoreError> {
    let root = store.root();
    let mut dirs = HashSet::new();
    for replacement in &manifest.replacements {
        let temporary = root.join(&replacement.temporary);
        let target = root.join(&replacement.target);
        if temporary.exists() {
            fs::rename(&temporary, &target).map_err(io(&temporary))?;
        }
        dirs.extend(target.parent().map(PathBuf::from));
    }
    for deletion in &manifest.deletions {
        let target = root.join(deletion);
        match fs::remove_file(&target) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(&target)(error)),
        }
        dirs.extend(target.parent().map(PathBuf::from));
    }
    for dir in &dirs {
        fsync_dir(dir)?;
    }
    let log = audit_log(store);
    let log_dir = root.join(tables::AUDIT_DIR);
    fs::create_dir_all(&log_dir).map_err(io(&log_dir))?;
    let mut line = serde_json::to_vec(&manifest.record)
        .map_err(|error| io(&log)(std::io::Error::other(error)))?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io(&log))?;
    file.write_all(&line)
        .and_then(|()| file.sync_all())
        .map_err(io(&log))?;
    fsync_dir(&log_dir)?;
    let manifest_file = manifest_path(store);
    fs::remove_file(&manifest_file).map_err(io(&manifest_file))?;
    fsync_dir(&root.join(tables::STATE_DIR))
}

/// Rolls forward an interrupted erasure and every interrupted compaction, and drops uncommitted
/// rewritten files. The caller holds the maintenance lock.
fn recover_locked(store: &Store) -> Result<(), StoreError> {
    compact::recover_all(store)?;
    let manifest_file = manifest_path(store);
    match fs::read(&manifest_file) {
        Ok(bytes) => {
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|_| StoreError::Damaged(manifest_file.display().to_string()))?;
            finish(store, &manifest)?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(&manifest_file)(error)),
    }
    let tmp = store.root().join(tables::TMP_DIR);
    for entry in fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("erase-") {
            fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(())
}

/// Finishes or drops an interrupted erasure (waits for the maintenance lock).
pub fn recover(store: &Store) -> Result<(), StoreError> {
    let _lock = store.maintenance_lock()?;
    recover_locked(store)
}
