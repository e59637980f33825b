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

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::tables;

mod encode;

pub(crate) use self::encode::{encode_parquet, write_parquet};

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
        let (file, path) = self.lock_file(MAINTENANCE_LOCK)?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// The maintenance lock if nobody holds it (`None`: try again later).
    pub fn try_maintenance_lock(&self) -> Result<Option<File>, StoreError> {
        self.try_state_lock(MAINTENANCE_LOCK)
    }

    /// The ownership lock of one topic-partition (`_state/<topic>-<partition>.lock`) if no other
    /// processor holds it (`None`: try again later). A processor holds it from assignment until
    /// revocation, so one that stalled past its group session (and lost the partition) finishes
    /// the flush it was in before the next owner reads the partition's commit state: without
    /// it, that late flush stored again rows the next owner had stored.
    pub fn try_partition_lock(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<File>, StoreError> {
        self.try_state_lock(&format!("{topic}-{partition}.lock"))
    }

    /// The lock file `_state/<name>`, opened (created if new) but not locked.
    fn lock_file(&self, name: &str) -> Result<(File, PathBuf), StoreError> {
        let path = self.root.join(tables::STATE_DIR).join(name);
        let file = File::create(&path).map_err(io(&path))?;
        Ok((file, path))
    }

    /// The lock `_state/<name>` if nobody holds it.
    fn try_state_lock(&self, name: &str) -> Result<Option<File>, StoreError> {
        let (file, path) = self.lock_file(name)?;
        let locked = match file.try_lock() {
            Ok(()) => true,
            Err(fs::TryLockError::WouldBlock) => false,
            Err(fs::TryLockError::Error(error)) => return Err(io(&path)(error)),
        };
        Ok(locked.then_some(file))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self, topic: &str, partition: i32) -> PathBuf {
        self.root
            .join(tables::STATE_DIR)
            .join(format!("{topic}-{partition}.json"))
    }

    /// Finishes a committed flush, drops an uncommitted one, and returns the offset to resume
    /// at (`None`: nothing was ever stored for this partition).
    pub fn recover(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        let state = self.read_state(topic, partition)?;
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

    /// The offset the partition's last commit continues at, read without recovering anything
    /// (`None`: nothing committed yet). Safe without the ownership lock, as a lower bound: the
    /// commit state is replaced atomically and only moves forward.
    pub fn committed_next_offset(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .read_state(topic, partition)?
            .map(|state| state.next_offset))
    }

    fn read_state(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<PartitionState>, StoreError> {
        let state_path = self.state_path(topic, partition);
        match fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| StoreError::Damaged(state_path.display().to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io(&state_path)(error)),
        }
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

/// The maintenance lock's file name under `_state/`.
const MAINTENANCE_LOCK: &str = "maintenance.lock";

#[cfg(test)]
mod tests;
