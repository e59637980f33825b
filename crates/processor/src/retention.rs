//! Retention: table partitions (`<table>/tenant=…/date=…`) older than their table's retention
//! are deleted. The `[retention]` table of `veil.toml` also says how long baseline key epochs
//! live; the root CLI shreds those (the processor does not depend on the gateway's keystore).

use std::fs;

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::store::{Store, StoreError, fsync_dir, io};
use crate::tables;

/// `[retention]` in `veil.toml`; a value of 0 keeps forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days of raw events kept, counting back from today (UTC).
    pub events_days: u32,
    /// Days of the gateway's rejection records kept.
    pub rejections_days: u32,
    /// Days of the daily_activity rollup kept (longer: it holds no event properties beyond the
    /// feature, product and version, and keeps year-over-year active-user counts possible).
    pub daily_activity_days: u32,
    /// Months of baseline key epochs kept, counting the current one (`veil keys shred
    /// --expired --retain-months`).
    pub baseline_key_months: u32,
    /// How often `veil processor` applies retention (0: only `veil retention run`).
    pub interval_minutes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events_days: 90,
            rejections_days: 90,
            daily_activity_days: 730,
            baseline_key_months: 3,
            interval_minutes: 60,
        }
    }
}

impl RetentionConfig {
    /// Days kept for `table` (0: forever).
    pub fn days_for(&self, table: &str) -> u32 {
        match table {
            tables::EVENTS => self.events_days,
            tables::REJECTIONS => self.rejections_days,
            tables::DAILY_ACTIVITY => self.daily_activity_days,
            _ => 0,
        }
    }
}

/// One deleted partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredPartition {
    /// The table.
    pub table: &'static str,
    /// The tenant.
    pub tenant: String,
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Files deleted.
    pub files: usize,
}

/// The first day kept when `days` are kept up to `today` (`today` counts as one).
fn first_kept(today: Date, days: u32) -> Date {
    today
        .checked_sub(Duration::days(i64::from(days.saturating_sub(1))))
        .unwrap_or(Date::MIN)
}

fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Deletes every partition older than its table's retention at `today`; returns what it deleted.
pub fn expire(
    store: &Store,
    config: &RetentionConfig,
    today: Date,
) -> Result<Vec<ExpiredPartition>, StoreError> {
    let _lock = store.maintenance_lock()?;
    let mut expired = Vec::new();
    for table in tables::ALL {
        let days = config.days_for(table);
        if days == 0 {
            continue;
        }
        // `YYYY-MM-DD` strings order like the dates they name.
        let horizon = format_date(first_kept(today, days));
        for (tenant, date, dir) in tables::partitions(store.root(), table) {
            if date.len() != 10 || date >= horizon {
                continue;
            }
            let files = tables::parquet_files(&dir).len();
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
            if let Some(tenant_dir) = dir.parent() {
                fsync_dir(tenant_dir)?;
                // Gone when it held nothing else; kept otherwise.
                let _ = fs::remove_dir(tenant_dir);
            }
            tracing::info!(table, tenant = %tenant, date = %date, files, "partition expired");
            expired.push(ExpiredPartition {
                table,
                tenant,
                date,
                files,
            });
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn partitions_past_their_tables_retention_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        for (table, day) in [
            (tables::EVENTS, "2026-08-27"),
            (tables::EVENTS, "2026-08-28"),
            (tables::REJECTIONS, "2026-01-01"),
            (tables::DAILY_ACTIVITY, "2026-01-01"),
        ] {
            let partition = dir.path().join(tables::partition_dir(table, "t-1", day));
            fs::create_dir_all(&partition).expect("dir");
            fs::write(partition.join("part-x-0-0-0.parquet"), b"x").expect("file");
        }
        let config = RetentionConfig::default();
        // 90 days up to 2026-11-25 start at 2026-08-28.
        let expired = expire(&store, &config, date!(2026 - 11 - 25)).expect("expire");
        let names: Vec<(&str, &str)> = expired
            .iter()
            .map(|partition| (partition.table, partition.date.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (tables::EVENTS, "2026-08-27"),
                (tables::REJECTIONS, "2026-01-01")
            ]
        );
        assert!(
            dir.path()
                .join(tables::partition_dir(tables::EVENTS, "t-1", "2026-08-28"))
                .exists()
        );
        assert!(
            dir.path()
                .join(tables::partition_dir(
                    tables::DAILY_ACTIVITY,
                    "t-1",
                    "2026-01-01"
                ))
                .exists(),
            "rollups are kept longer"
        );
        assert!(
            !dir.path()
                .join(tables::REJECTIONS)
                .join("tenant=t-1")
                .exists()
        );
    }
}
