//! Sanitized messages from a reader (one JSON document a line: `veil filter`'s output) instead
//! of Kafka, through the same decode, dedup and commit path, as the pseudo topic-partition
//! `stdin`/0 whose offsets are line numbers. Re-running the same input resumes after the last
//! committed line, so an import is exactly-once too. For dry runs, imports and tests.

use std::io::BufRead;

use super::ProcessorError;
use super::buffer::PartitionBuffer;
use super::flush::{FlushContext, flush, load_recent_ids};
use crate::columns::TableLayout;
use crate::config::ProcessorConfig;
use crate::dedup::DedupWindow;
use crate::metrics::ProcessorStats;
use crate::store::{Store, StoreError};

/// The pseudo topic of stdin imports (its state is `_state/stdin-0.json`).
pub const STDIN_TOPIC: &str = "stdin";

/// Stores every line of `input`; returns how many lines were skipped as dead letters (they are
/// logged with their line number and reason, never their content).
pub fn run_stdin(
    config: &ProcessorConfig,
    layout: &TableLayout,
    input: impl BufRead,
    stats: &ProcessorStats,
) -> Result<u64, ProcessorError> {
    let store = Store::open(&config.data_dir)?;
    let resume_at = store.recover(STDIN_TOPIC, 0)?.unwrap_or(0);
    let window_ms = i64::try_from(config.dedup_window_hours * 3_600_000).unwrap_or(i64::MAX);
    let mut dedup = DedupWindow::new(window_ms);
    load_recent_ids(&store, STDIN_TOPIC, 0, window_ms, &mut dedup)?;
    let mut buffer = PartitionBuffer::new(dedup);
    let flusher = FlushContext {
        consumer: None,
        store: &store,
        layout,
        stats,
        compact_files: config.compact_files,
    };
    let mut dead = 0;
    for (offset, line) in (0_i64..).zip(input.lines()) {
        let line = line.map_err(|source| StoreError::Io {
            path: "stdin".to_owned(),
            source,
        })?;
        if offset < resume_at {
            continue;
        }
        if let Err(reason) = buffer.accept(offset, line.as_bytes(), false, layout, stats) {
            tracing::warn!(line = offset + 1, %reason, "line skipped");
            dead += 1;
        }
        if buffer.rows >= config.flush_rows {
            flush(&flusher, STDIN_TOPIC, 0, &mut buffer)?;
        }
    }
    flush(&flusher, STDIN_TOPIC, 0, &mut buffer)?;
    Ok(dead)
}
