//! The processor's settings: the `[processor]` table of `veil.toml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[processor]` in `veil.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// Root of the Parquet tree (see [`crate::tables`]).
    pub data_dir: PathBuf,
    /// The allowlist whose declared types become columns (the gateway's).
    pub allowlist: PathBuf,
    /// Consumer group: processors sharing it share the partitions.
    pub group_id: String,
    /// Rows buffered per partition before a file is written.
    pub flush_rows: usize,
    /// Longest time a row waits in the buffer.
    pub flush_interval_ms: u64,
    /// Deduplication window by `messageId`.
    pub dedup_window_hours: u64,
    /// A topic-partition's files in one table/tenant/day directory are merged when there are
    /// more than this many (0: never).
    pub compact_files: usize,
    /// Address of the Prometheus `/metrics` endpoint (empty: none).
    pub metrics_listen: String,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            data_dir: PathBuf::from("veil-data/parquet"),
            allowlist: PathBuf::from("allowlist.yaml"),
            group_id: "veil-processor".to_owned(),
            flush_rows: 50_000,
            flush_interval_ms: 2_000,
            dedup_window_hours: 24,
            compact_files: 16,
            metrics_listen: "127.0.0.1:9102".to_owned(),
        }
    }
}
