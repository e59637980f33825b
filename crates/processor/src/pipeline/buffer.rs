//! One assigned partition's buffer: each record decoded, deduplicated and appended straight to the
//! Arrow columns of its tenant/day group (no per-row copy in between), the audit rows, and the
//! offsets they cover.

use std::time::Instant;

use arrow::error::ArrowError;

use crate::audit::{self, AuditRow, decode_audit};
use crate::columns::{ColumnSizes, EventColumns, TableLayout};
use crate::dedup::DedupWindow;
use crate::metrics::ProcessorStats;
use crate::row::{Row, RowScratch};
use crate::store::Group;
use crate::timestamp::Day;
use crate::{rollup, tables};

/// The events of one tenant and day.
struct GroupColumns {
    tenant: Box<str>,
    day: Day,
    columns: EventColumns,
}

/// See the module documentation.
pub(crate) struct PartitionBuffer {
    groups: Vec<GroupColumns>,
    /// The group the last row went to (consecutive rows mostly share one).
    last_group: usize,
    audits: Vec<AuditRow>,
    /// Rows buffered (events and audit rows).
    pub(super) rows: usize,
    /// Offsets covered: `first_offset..=last_offset` (`None`: nothing to commit).
    pub(super) first_offset: Option<i64>,
    pub(super) last_offset: i64,
    /// When the first record of this buffer was read.
    pub(super) oldest: Option<Instant>,
    pub(super) dedup: DedupWindow,
    /// The decoded rows' field lists, reused from one message to the next.
    scratch: RowScratch,
    /// The largest group of the last flush: a new group reserves that much.
    group_sizes: ColumnSizes,
    /// The next offset to read (for lag), once known.
    pub(super) position: Option<i64>,
}

impl PartitionBuffer {
    /// An empty buffer over a partition's dedup window.
    pub(super) fn new(dedup: DedupWindow) -> PartitionBuffer {
        PartitionBuffer {
            groups: Vec::new(),
            last_group: 0,
            audits: Vec::new(),
            rows: 0,
            first_offset: None,
            last_offset: -1,
            oldest: None,
            dedup,
            scratch: RowScratch::default(),
            group_sizes: ColumnSizes::default(),
            position: None,
        }
    }

    /// Buffers the record at `offset`: one sanitized message, or several, one a line (the
    /// gateway packs a request's messages bound for one partition into one record). Duplicates
    /// are dropped; each message that is a dead letter goes to `dead_letter` with the reason.
    pub(super) fn accept(
        &mut self,
        offset: i64,
        payload: &[u8],
        is_audit: bool,
        layout: &TableLayout,
        stats: &ProcessorStats,
        mut dead_letter: impl FnMut(&[u8], String),
    ) {
        self.first_offset.get_or_insert(offset);
        self.last_offset = offset;
        self.position = Some(offset + 1);
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        stats.records_read.inc();
        // Every dead letter is counted where it is handed off.
        let mut reject = |message: &[u8], reason: String| {
            stats.dead_letters.inc();
            dead_letter(message, reason);
        };
        if is_audit {
            stats.messages_read.inc();
            if let Err(reason) = self.accept_audit(payload) {
                reject(payload, reason);
            }
            return;
        }
        let mut messages = 0;
        for line in veil_sanitized::record_messages(payload) {
            messages += 1;
            if let Err(reason) = self.accept_event(line, layout, stats) {
                reject(line, reason);
            }
        }
        stats.messages_read.inc_by(messages);
        if messages == 0 {
            reject(payload, "a record without a message".to_owned());
        }
    }

    fn accept_audit(&mut self, payload: &[u8]) -> Result<(), String> {
        let rows = decode_audit(payload).map_err(|error| error.to_string())?;
        self.rows += rows.len();
        self.audits.extend(rows);
        Ok(())
    }

    fn accept_event(
        &mut self,
        payload: &[u8],
        layout: &TableLayout,
        stats: &ProcessorStats,
    ) -> Result<(), String> {
        let row =
            Row::decode_reusing(payload, &mut self.scratch).map_err(|error| error.to_string())?;
        if !self
            .dedup
            .first_sighting(&row.tenant, &row.message_id, row.received_ms)
        {
            stats.duplicates.inc();
            self.scratch.recycle(row);
            return Ok(());
        }
        let group = self.group_of(&row.tenant, row.day, layout);
        if let Err(error) = self.groups[group].columns.append(layout, &row) {
            // Not stored, so not seen: a corrected copy may follow.
            self.dedup.forget(&row.tenant, &row.message_id);
            return Err(error.to_string());
        }
        self.rows += 1;
        self.scratch.recycle(row);
        Ok(())
    }

    /// The index of the tenant/day group, created when new.
    fn group_of(&mut self, tenant: &str, day: Day, layout: &TableLayout) -> usize {
        let matches = |group: &GroupColumns| group.day == day && *group.tenant == *tenant;
        if self.groups.get(self.last_group).is_some_and(matches) {
            return self.last_group;
        }
        let at = match self.groups.iter().position(matches) {
            Some(at) => at,
            None => {
                self.groups.push(GroupColumns {
                    tenant: tenant.into(),
                    day,
                    columns: EventColumns::with_capacity(layout, &self.group_sizes),
                });
                self.groups.len() - 1
            }
        };
        self.last_group = at;
        at
    }

    /// The buffered rows as the files of one commit (events and their `daily_activity` rollup
    /// per tenant/day, rejections per tenant/day), in a stable order; the buffer is empty after.
    pub(super) fn take_groups(&mut self, layout: &TableLayout) -> Result<Vec<Group>, ArrowError> {
        let mut groups = Vec::with_capacity(self.groups.len() * 2 + 1);
        let mut events = std::mem::take(&mut self.groups);
        events.sort_by(|one, other| (&one.tenant, one.day).cmp(&(&other.tenant, other.day)));
        if let Some(largest) = events
            .iter()
            .map(|group| group.columns.sizes())
            .max_by_key(ColumnSizes::rows)
        {
            self.group_sizes = largest;
        }
        for mut group in events {
            if group.columns.is_empty() {
                continue;
            }
            let batch = group.columns.finish(layout)?;
            let date = group.day.to_string();
            groups.push(Group {
                table: tables::DAILY_ACTIVITY,
                tenant: group.tenant.to_string(),
                date: date.clone(),
                batch: rollup::batch(&batch)?,
            });
            groups.push(Group {
                table: tables::EVENTS,
                tenant: group.tenant.into(),
                date,
                batch,
            });
        }
        let mut audits = std::mem::take(&mut self.audits);
        audits.sort_by(|one, other| (&one.tenant, &one.date).cmp(&(&other.tenant, &other.date)));
        for rows in
            audits.chunk_by(|one, other| one.tenant == other.tenant && one.date == other.date)
        {
            let refs: Vec<&AuditRow> = rows.iter().collect();
            groups.push(Group {
                table: tables::REJECTIONS,
                tenant: rows[0].tenant.clone(),
                date: rows[0].date.clone(),
                batch: audit::batch(&refs)?,
            });
        }
        self.last_group = 0;
        self.rows = 0;
        self.first_offset = None;
        self.oldest = None;
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{layout, message};
    use super::*;

    #[test]
    fn a_packed_record_keeps_its_good_lines_and_dead_letters_the_bad_one_alone() {
        let layout = layout();
        let stats = ProcessorStats::default();
        let mut buffer = PartitionBuffer::new(DedupWindow::new(86_400_000));
        let record = [
            message("m-1"),
            "not json".to_owned(),
            message("m-2"),
            message("m-1"),
        ]
        .join("\n");
        let mut dead = Vec::new();
        buffer.accept(
            7,
            record.as_bytes(),
            false,
            &layout,
            &stats,
            |line, reason| {
                dead.push((line.to_vec(), reason));
            },
        );
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].0, b"not json", "only the bad line is a dead letter");
        assert_eq!(buffer.rows, 2, "m-1 and m-2");
        assert_eq!(stats.duplicates.get(), 1, "m-1 again");
        assert_eq!(
            (stats.records_read.get(), stats.messages_read.get()),
            (1, 4)
        );
        assert_eq!(stats.dead_letters.get(), 1);
        assert_eq!((buffer.first_offset, buffer.last_offset), (Some(7), 7));

        // A record with no message at all is a dead letter whole.
        let mut dead = Vec::new();
        buffer.accept(8, b"\n", false, &layout, &stats, |line, reason| {
            dead.push((line.to_vec(), reason));
        });
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].0, b"\n");
        assert_eq!(stats.dead_letters.get(), 2);
    }
}
