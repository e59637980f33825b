//! Sanitized messages from a reader (one JSON document a line: `veil filter`'s output) instead
//! of Kafka, through the same decode, dedup and commit path, as the pseudo topic-partition
//! `stdin`/0 whose offsets are line numbers. Re-running the same input resumes after the last
//! committed line, so an import is exactly-once too. For dry runs, imports and tests.

use std::io::BufRead;

use super::ProcessorError;
use super::buffer::PartitionBuffer;
use super::flush::{FlushContext, flush, recent_ids};
use crate::columns::TableLayout;
use crate::config::ProcessorConfig;
use crate::metrics::ProcessorStats;
use crate::store::{Store, StoreError};

/// The pseudo topic of stdin imports (its state is `_state/stdin-0.json`).
pub const STDIN_TOPIC: &str = "stdin";

/// Stores every line of `input`; returns how many lines were skipped as dead letters (they are
/// logged with their line number and reason, never their content).
pub fn run_stdin(
    config: &ProcessorConfig,
    layout: &TableLayout,
    mut input: impl BufRead,
    stats: &ProcessorStats,
) -> Result<u64, ProcessorError> {
    let store = Store::open(&config.data_dir)?;
    let resume_at = store.recover(STDIN_TOPIC, 0)?.unwrap_or(0);
    let window_ms = i64::try_from(config.dedup_window_hours * 3_600_000).unwrap_or(i64::MAX);
    let mut buffer = PartitionBuffer::new(recent_ids(&store, STDIN_TOPIC, 0, window_ms)?);
    let flusher = FlushContext {
        consumer: None,
        store: &store,
        layout,
        stats,
        compact_files: config.compact_files,
    };
    let mut dead = 0;
    // One buffer for every line (decoding checks UTF-8 itself, as it does for Kafka records).
    let mut line = Vec::with_capacity(4096);
    for offset in 0_i64.. {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|source| StoreError::Io {
                path: "stdin".to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if offset < resume_at {
            continue;
        }
        buffer.accept(offset, &line, false, layout, stats, |_, reason| {
            tracing::warn!(line = offset + 1, %reason, "line skipped");
            dead += 1;
        });
        if buffer.rows >= config.flush_rows {
            flush(&flusher, STDIN_TOPIC, 0, &mut buffer)?;
        }
    }
    flush(&flusher, STDIN_TOPIC, 0, &mut buffer)?;
    Ok(dead)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{layout, message};
    use super::*;
    use crate::tables;

    #[test]
    fn lines_of_any_ending_are_stored_and_bad_ones_skipped_alone() {
        let layout = layout();
        let directory = tempfile::tempdir().expect("temp dir");
        let config = ProcessorConfig {
            data_dir: directory.path().to_path_buf(),
            ..ProcessorConfig::default()
        };
        let mut input = Vec::new();
        input.extend_from_slice(message("m-1").as_bytes());
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(b"{\"schema\":1,\"tenant\":\"\xff\xfe\"}\n");
        input.extend_from_slice(b"not json\n");
        input.extend_from_slice(message("m-2").as_bytes());
        input.push(b'\n');
        input.extend_from_slice(message("m-1").as_bytes());
        input.push(b'\n');
        // The last line has no newline.
        input.extend_from_slice(message("m-3").as_bytes());

        let stats = ProcessorStats::default();
        let dead = run_stdin(&config, &layout, input.as_slice(), &stats).expect("import");
        assert_eq!(dead, 2, "the invalid UTF-8 line and the non-JSON line");
        assert_eq!(stats.rows(tables::EVENTS), 3, "m-1, m-2 and m-3");
        assert_eq!(stats.duplicates.get(), 1, "m-1 again");

        // Running the same input again resumes after the last stored line: nothing new.
        let again = ProcessorStats::default();
        assert_eq!(
            run_stdin(&config, &layout, input.as_slice(), &again).expect("import"),
            0
        );
        assert_eq!(again.rows(tables::EVENTS), 0);
    }
}
