//! Deduplication by `messageId` within a window (24 h by default, as Segment does).
//!
//! The window is rebuilt at start from the Parquet files this partition wrote recently, so it
//! survives restarts and always agrees with what is stored.

use std::collections::hash_map::Entry;
use std::fs::File;
use std::hash::{BuildHasher, Hash, RandomState};
use std::path::Path;

use arrow::array::{Array, StringArray, TimestampMillisecondArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::store::StoreError;

/// Seen message ids of one partition, by a 128-bit fingerprint of (tenant, messageId).
///
/// The fingerprint is SipHash-1-3-128 under this window's own random key, so a client cannot
/// choose ids that collide with another's (the window is rebuilt from the stored ids at start,
/// under the new key), and two different ids share one by chance with odds of about n²/2¹²⁹
/// for n ids (64 bits gave 3×10⁻⁴ at 10⁸ ids: an acknowledged event dropped as a duplicate).
/// Being unpredictable, fingerprints need no second hash as table keys.
#[derive(Debug)]
pub struct DedupWindow {
    /// Fingerprints as two words rather than a `u128`: 8-byte alignment keeps an entry at 24
    /// bytes instead of 32 (the table outgrows the caches; every byte is memory traffic).
    seen: rustc_hash::FxHashMap<[u64; 2], i64>,
    key: (u64, u64),
    window_ms: i64,
}

impl DedupWindow {
    /// An empty window of `window_ms`.
    pub fn new(window_ms: i64) -> DedupWindow {
        // Each `RandomState` carries the process's random SipHash key (varied per instance).
        let random = |salt: u64| RandomState::new().hash_one(salt);
        DedupWindow {
            seen: rustc_hash::FxHashMap::default(),
            key: (random(0), random(1)),
            window_ms,
        }
    }

    fn fingerprint(&self, tenant: &str, message_id: &str) -> [u64; 2] {
        let mut hasher = SipHasher13::new_with_keys(self.key.0, self.key.1);
        tenant.hash(&mut hasher);
        message_id.hash(&mut hasher);
        let fingerprint = hasher.finish128();
        [fingerprint.h1, fingerprint.h2]
    }

    /// Whether the message was seen within the window; remembers it if not.
    pub fn first_sighting(&mut self, tenant: &str, message_id: &str, received_ms: i64) -> bool {
        let key = self.fingerprint(tenant, message_id);
        // One hash and one probe (the table outgrows the caches, so a probe is a cache miss).
        match self.seen.entry(key) {
            Entry::Occupied(seen) if received_ms - *seen.get() < self.window_ms => false,
            Entry::Occupied(mut expired) => {
                expired.insert(received_ms);
                true
            }
            Entry::Vacant(new) => {
                new.insert(received_ms);
                true
            }
        }
    }

    /// Forgets a sighting (a buffered row that was dropped before it was stored).
    pub fn forget(&mut self, tenant: &str, message_id: &str) {
        let key = self.fingerprint(tenant, message_id);
        self.seen.remove(&key);
    }

    /// Drops entries older than the window before `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let window = self.window_ms;
        self.seen.retain(|_, seen_at| now_ms - *seen_at < window);
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Remembers the ids of one stored events file of `tenant` (the tenant is its directory).
    pub fn load_file(&mut self, tenant: &str, path: &Path) -> Result<(), StoreError> {
        let file = File::open(path).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let schema = builder.parquet_schema();
        let wanted: Vec<usize> = ["message_id", "received_at"]
            .iter()
            .filter_map(|name| {
                schema
                    .columns()
                    .iter()
                    .position(|column| column.name() == *name)
            })
            .collect();
        let mask = ProjectionMask::roots(schema, wanted);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch.map_err(|error| StoreError::Parquet(error.into()))?;
            let column = |name: &str| batch.column_by_name(name).cloned();
            let (Some(ids), Some(received)) = (column("message_id"), column("received_at")) else {
                continue;
            };
            let (Some(ids), Some(received)) = (
                ids.as_any().downcast_ref::<StringArray>(),
                received
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>(),
            ) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                let key = self.fingerprint(tenant, ids.value(row));
                let at = received.value(row);
                let entry = self.seen.entry(key).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_repeat_only_within_the_window_and_per_tenant() {
        let mut window = DedupWindow::new(1_000);
        assert!(window.first_sighting("t-1", "m-1", 0));
        assert!(!window.first_sighting("t-1", "m-1", 999));
        assert!(window.first_sighting("t-2", "m-1", 999), "another tenant");
        assert!(
            window.first_sighting("t-1", "m-1", 1_000),
            "outside the window"
        );
        assert!(
            !window.first_sighting("t-1", "m-1", 1_999),
            "the window restarts at the new sighting"
        );
        window.expire(5_000);
        assert!(window.is_empty());
    }

    #[test]
    fn fingerprints_are_keyed_per_window() {
        let (first, second) = (DedupWindow::new(1_000), DedupWindow::new(1_000));
        assert_eq!(
            first.fingerprint("t-1", "m-1"),
            first.fingerprint("t-1", "m-1")
        );
        assert_ne!(
            first.fingerprint("t-1", "m-1"),
            second.fingerprint("t-1", "m-1"),
            "another window, another key"
        );
        // (tenant, id) pairs are framed: moving a byte from one to the other changes it.
        assert_ne!(
            first.fingerprint("t-1", "m-1"),
            first.fingerprint("t-1m", "-1")
        );
    }
}
