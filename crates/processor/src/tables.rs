//! The table layout under `processor.data_dir`, shared with reporting so nobody spells a path.
//!
//! ```text
//! <data_dir>/events/tenant=<t>/date=<YYYY-MM-DD>/part-<topic>-<partition>-<first>-<last>.parquet
//! <data_dir>/rejections/tenant=<t>/date=<YYYY-MM-DD>/part-….parquet
//! <data_dir>/daily_activity/tenant=<t>/date=<YYYY-MM-DD>/part-….parquet
//! <data_dir>/_state/   commit points and ownership locks (per topic-partition), compaction and
//!                      erasure manifests, the maintenance lock
//! <data_dir>/_tmp/     files not yet committed
//! <data_dir>/_audit/erasures.jsonl
//! ```
//!
//! Hive-style: the `tenant` and `date` values live in the directory names only, never as a column
//! inside the files (DataFusion's listing tables refuse a file column that duplicates a
//! partition column). `first`/`last` are the Kafka offsets the file's rows came from; a
//! compacted file keeps the name pattern with the merged range.

use std::path::{Path, PathBuf};

/// Raw sanitized events, one row per stored message.
pub const EVENTS: &str = "events";
/// The gateway's audit records: one row per rejection or dropped-field count.
pub const REJECTIONS: &str = "rejections";
/// Per-flush rollup: one row per distinct (user, type, event, name, feature, product, version,
/// os, key epoch) with an `events` count.
pub const DAILY_ACTIVITY: &str = "daily_activity";
/// Every data table, for maintenance (compaction, retention, erasure).
pub const ALL: [&str; 3] = [EVENTS, REJECTIONS, DAILY_ACTIVITY];
/// The hive partition column holding the tenant id (directory `tenant=<t>`).
pub const TENANT_PARTITION: &str = "tenant";
/// The hive partition column holding the UTC day (directory `date=<YYYY-MM-DD>`).
pub const DATE_PARTITION: &str = "date";
/// Directory of commit points, manifests, ownership locks and the maintenance lock.
pub const STATE_DIR: &str = "_state";
/// Directory of files not yet committed.
pub const TMP_DIR: &str = "_tmp";
/// Directory of audit logs (erasures).
pub const AUDIT_DIR: &str = "_audit";

/// `<table>/tenant=<t>/date=<d>` relative to the data directory.
pub fn partition_dir(table: &str, tenant: &str, date: &str) -> PathBuf {
    PathBuf::from(table)
        .join(format!("{TENANT_PARTITION}={tenant}"))
        .join(format!("{DATE_PARTITION}={date}"))
}

/// `part-<topic>-<partition>-<first>-<last>.parquet`.
pub fn part_name(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("part-{topic}-{partition}-{first}-{last}.parquet")
}

/// The file-name prefix of one topic-partition's files, `part-<topic>-<partition>-`.
pub fn part_prefix(topic: &str, partition: i32) -> String {
    format!("part-{topic}-{partition}-")
}

/// The offset range `(first, last)` of a file named by [`part_name`] for this topic-partition.
pub fn part_range(file_name: &str, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let rest = file_name
        .strip_prefix(&part_prefix(topic, partition))?
        .strip_suffix(".parquet")?;
    let (first, last) = rest.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// The value of a hive directory `<key>=<value>` among `path`'s ancestors.
pub fn partition_value<'p>(path: &'p Path, key: &str) -> Option<&'p str> {
    path.ancestors().find_map(|dir| {
        dir.file_name()?
            .to_str()?
            .strip_prefix(key)?
            .strip_prefix('=')
    })
}

/// The tenant of a stored file, from its `tenant=<t>` directory (validated).
pub fn tenant_of(path: &Path) -> Option<&str> {
    partition_value(path, TENANT_PARTITION).filter(|tenant| veil_sanitized::is_valid_tenant(tenant))
}

/// Every `<table>/tenant=<t>/date=<d>` directory that exists, as (tenant, date, path).
pub fn partitions(root: &Path, table: &str) -> Vec<(String, String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(tenants) = std::fs::read_dir(root.join(table)) else {
        return found;
    };
    for tenant_dir in tenants.flatten() {
        let path = tenant_dir.path();
        let Some(tenant) = tenant_of(&path).map(str::to_owned) else {
            continue;
        };
        let Ok(dates) = std::fs::read_dir(&path) else {
            continue;
        };
        for date_dir in dates.flatten() {
            let path = date_dir.path();
            // A stray file named like a partition is not one: retention, compaction and erasure
            // pass it by instead of failing on it.
            if !date_dir.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            if let Some(date) = partition_value(&path, DATE_PARTITION) {
                found.push((tenant.clone(), date.to_owned(), path.clone()));
            }
        }
    }
    found.sort();
    found
}

/// The `.parquet` files directly in `dir`, sorted by name.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tenants_come_from_the_path() {
        let name = part_name("veil.sanitized.us", 10, 5, 99);
        assert_eq!(name, "part-veil.sanitized.us-10-5-99.parquet");
        assert_eq!(part_range(&name, "veil.sanitized.us", 10), Some((5, 99)));
        assert_eq!(part_range(&name, "veil.sanitized.us", 1), None);
        let path = Path::new("/data")
            .join(partition_dir(EVENTS, "t-1000", "2026-11-23"))
            .join(&name);
        assert_eq!(tenant_of(&path), Some("t-1000"));
        assert_eq!(partition_value(&path, DATE_PARTITION), Some("2026-11-23"));
        assert_eq!(
            tenant_of(Path::new("/data/events/tenant=../x.parquet")),
            None
        );
    }
}
