//! A partition's flush: its buffered rows as one commit of every table (events, the
//! daily_activity rollup of those events, rejections), then compaction of the directories it
//! touched, and the dedup window's rebuild from stored files at assignment.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::context::RecoveringContext;
use super::{PartitionBuffer, ProcessorError};
use crate::audit::{self, AuditRow};
use crate::columns::TableLayout;
use crate::compact;
use crate::dedup::DedupWindow;
use crate::metrics::{ProcessorStats, TableLabels};
use crate::row::Row;
use crate::store::{Group, Store};
use crate::{rollup, tables};

/// What a flush needs besides the partition's buffer.
pub(super) struct FlushContext<'a> {
    /// Offsets are committed to Kafka too when there is one (not for stdin imports).
    pub(super) consumer: Option<&'a BaseConsumer<RecoveringContext>>,
    pub(super) store: &'a Store,
    pub(super) layout: &'a TableLayout,
    pub(super) stats: &'a ProcessorStats,
    pub(super) compact_files: usize,
}

/// Rebuilds a partition's dedup window from the events files it wrote within the window.
pub(super) fn load_recent_ids(
    store: &Store,
    topic: &str,
    partition: i32,
    window_ms: i64,
    dedup: &mut DedupWindow,
) -> Result<(), ProcessorError> {
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
    Ok(())
}

/// Commits the buffer (if it covers any offsets), then compacts what the commit touched.
pub(super) fn flush(
    context: &FlushContext<'_>,
    (topic, partition): &(String, i32),
    buffer: &mut PartitionBuffer,
) -> Result<(), ProcessorError> {
    let Some(first) = buffer.first_offset else {
        return Ok(());
    };
    let started = Instant::now();
    let last = buffer.last_offset;
    let mut event_groups: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
    for row in &buffer.rows {
        event_groups
            .entry((row.message.tenant.as_str(), row.date.as_str()))
            .or_default()
            .push(row);
    }
    let mut audit_groups: BTreeMap<(&str, &str), Vec<&AuditRow>> = BTreeMap::new();
    for row in &buffer.audits {
        audit_groups
            .entry((row.tenant.as_str(), row.date.as_str()))
            .or_default()
            .push(row);
    }
    let mut groups = Vec::with_capacity(event_groups.len() * 2 + audit_groups.len());
    for ((tenant, date), rows) in &event_groups {
        groups.push(Group {
            table: tables::EVENTS,
            tenant: (*tenant).to_owned(),
            date: (*date).to_owned(),
            batch: context.layout.batch(rows)?,
        });
        groups.push(Group {
            table: tables::DAILY_ACTIVITY,
            tenant: (*tenant).to_owned(),
            date: (*date).to_owned(),
            batch: rollup::batch(rows)?,
        });
    }
    for ((tenant, date), rows) in &audit_groups {
        groups.push(Group {
            table: tables::REJECTIONS,
            tenant: (*tenant).to_owned(),
            date: (*date).to_owned(),
            batch: audit::batch(rows)?,
        });
    }
    // Even a flush of only duplicates or dead letters commits, so the offsets move on.
    context
        .store
        .commit(topic, *partition, first, last, &groups)?;
    let stats = context.stats;
    stats.flush_seconds.observe(started.elapsed().as_secs_f64());
    for group in &groups {
        let labels = TableLabels { table: group.table };
        stats
            .rows_written
            .get_or_create(&labels)
            .inc_by(group.batch.num_rows() as u64);
        stats.files_written.get_or_create(&labels).inc();
    }
    if let Some(consumer) = context.consumer {
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(topic, *partition, Offset::Offset(last + 1))?;
        if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
            tracing::warn!(%error, "offset commit failed (the store stays authoritative)");
        }
    }
    let touched: Vec<(&'static str, String, String)> = groups
        .iter()
        .map(|group| (group.table, group.tenant.clone(), group.date.clone()))
        .collect();
    buffer.rows.clear();
    buffer.audits.clear();
    buffer.first_offset = None;
    buffer.oldest = None;
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis()),
    )
    .unwrap_or(i64::MAX);
    buffer.dedup.expire(now_ms);
    for (table, tenant, date) in touched {
        let merged = compact::compact_if_needed(
            context.store,
            table,
            &tenant,
            &date,
            topic,
            *partition,
            context.compact_files,
        )?;
        if merged > 0 {
            let labels = TableLabels { table };
            stats.compactions.get_or_create(&labels).inc();
            stats
                .compacted_files
                .get_or_create(&labels)
                .inc_by(merged as u64);
        }
    }
    Ok(())
}
