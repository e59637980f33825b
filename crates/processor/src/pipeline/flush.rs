//! A partition's flush: its buffered rows as one commit of every table (events, the
//! daily_activity rollup of those events, rejections), then compaction of the directories it
//! touched, and the dedup window's rebuild from stored files at assignment.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::ProcessorError;
use super::buffer::PartitionBuffer;
use super::context::RecoveringContext;
use crate::columns::TableLayout;
use crate::dedup::DedupWindow;
use crate::metrics::{ProcessorStats, TableLabels};
use crate::store::{PartitionFlush, Store};
use crate::{compact, tables};

/// What a flush needs besides the partition's buffer.
pub(super) struct FlushContext<'a> {
    /// Offsets are committed to Kafka too when there is one (not for stdin imports).
    pub(super) consumer: Option<&'a BaseConsumer<RecoveringContext>>,
    pub(super) store: &'a Store,
    pub(super) layout: &'a TableLayout,
    pub(super) stats: &'a ProcessorStats,
    pub(super) compact_files: usize,
}

/// A partition's dedup window, rebuilt from the events files it wrote within the window.
pub(super) fn recent_ids(
    store: &Store,
    topic: &str,
    partition: i32,
    window_ms: i64,
) -> Result<DedupWindow, ProcessorError> {
    let mut dedup = DedupWindow::new(window_ms);
    let marker = tables::part_prefix(topic, partition);
    let horizon = std::time::SystemTime::now()
        - Duration::from_millis(u64::try_from(window_ms).unwrap_or(0).min(u64::MAX / 2));
    for (tenant, _, dir) in tables::partitions(store.root(), tables::EVENTS) {
        for path in tables::parquet_files(&dir) {
            let ours = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(&marker));
            let recent = ours
                && path
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .is_ok_and(|modified| modified >= horizon);
            if recent {
                dedup.load_file(&tenant, &path)?;
            }
        }
    }
    Ok(dedup)
}

/// Commits one buffer (if it covers any offsets), then compacts what the commit touched.
pub(super) fn flush(
    context: &FlushContext<'_>,
    topic: &str,
    partition: i32,
    buffer: &mut PartitionBuffer,
) -> Result<(), ProcessorError> {
    flush_all(context, &mut [(topic, partition, buffer)])
}

/// Commits several partitions' buffers as one group commit (one round of fsyncs for all), then
/// compacts what the commit touched.
pub(super) fn flush_all(
    context: &FlushContext<'_>,
    buffers: &mut [(&str, i32, &mut PartitionBuffer)],
) -> Result<(), ProcessorError> {
    let started = Instant::now();
    let mut taken = Vec::with_capacity(buffers.len());
    for (topic, partition, buffer) in buffers.iter_mut() {
        let Some(first) = buffer.first_offset else {
            continue;
        };
        let last = buffer.last_offset;
        taken.push((
            *topic,
            *partition,
            first,
            last,
            buffer.take_groups(context.layout)?,
        ));
    }
    if taken.is_empty() {
        return Ok(());
    }

    let flushes: Vec<PartitionFlush<'_>> = taken
        .iter()
        .map(|(topic, partition, first, last, groups)| PartitionFlush {
            topic,
            partition: *partition,
            first: *first,
            last: *last,
            groups,
        })
        .collect();
    // Even a flush of only duplicates or dead letters commits, so the offsets move on.
    context.store.commit_all(&flushes)?;
    let stats = context.stats;
    stats.flush_seconds.observe(started.elapsed().as_secs_f64());
    let mut offsets = TopicPartitionList::new();
    for (topic, partition, _, last, groups) in &taken {
        for group in groups {
            let labels = TableLabels { table: group.table };
            stats
                .rows_written
                .get_or_create(&labels)
                .inc_by(group.batch.num_rows() as u64);
            stats.files_written.get_or_create(&labels).inc();
        }
        offsets.add_partition_offset(topic, *partition, Offset::Offset(last + 1))?;
    }
    if let Some(consumer) = context.consumer
        && let Err(error) = consumer.commit(&offsets, CommitMode::Async)
    {
        tracing::warn!(%error, "offset commit failed (the store stays authoritative)");
    }
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis()),
    )
    .unwrap_or(i64::MAX);
    for (_, _, buffer) in buffers.iter_mut() {
        buffer.dedup.expire(now_ms);
    }
    for (topic, partition, _, _, groups) in &taken {
        for group in groups {
            let merged = compact::compact_if_needed(
                context.store,
                group.table,
                &group.tenant,
                &group.date,
                topic,
                *partition,
                context.compact_files,
            )?;
            if merged > 0 {
                let labels = TableLabels { table: group.table };
                stats.compactions.get_or_create(&labels).inc();
                stats
                    .compacted_files
                    .get_or_create(&labels)
                    .inc_by(merged as u64);
            }
        }
    }
    Ok(())
}
