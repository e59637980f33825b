//! Reading the processor's Parquet tables with DataFusion, and the reports built from them.
//!
//! Each request gets a fresh [`SessionContext`] over one shared [`RuntimeEnv`] (so Parquet
//! footers stay cached between requests) in which every table that exists on disk is registered
//! as a hive-partitioned listing table (`tenant`, `date`). A table the processor has not written
//! yet is simply absent (`events` and `daily_activity` are then empty tables of their declared
//! schemas).
//!
//! User counts (adoption, license) read the processor's `daily_activity` rollup, written in the
//! same commit as the raw events it summarizes: one row per distinct (user, type, event, name,
//! feature, product, version, OS, key epoch) of a flush with its `events` count, so
//! `COUNT(DISTINCT user)` and `SUM(events)` over it equal the raw counts for any set of days, at
//! a fraction of the rows. Raw `events` are read only for what the rollup lacks (the policy
//! digest, for the reviewer).

pub mod admin;
pub mod aliases;
mod csv;
pub mod keys;
pub mod license;
pub mod period;
pub mod review;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use veil_processor::{rollup, tables};

use crate::ReportingError;

/// SQL name of the raw events table.
pub const EVENTS: &str = tables::EVENTS;
/// SQL name of the gateway's audit records.
pub const REJECTIONS: &str = tables::REJECTIONS;
/// SQL name of the processor's activity rollup.
pub const DAILY_ACTIVITY: &str = tables::DAILY_ACTIVITY;

/// The columns of the `daily_activity` rollup that identify "one active user": the processor
/// stores `userId`'s pseudonym, else `anonymousId`'s, in `user` and says which in `identified`.
pub const ROLLUP_USER_COLUMNS: &str = r#""key_epoch", "identified", "user""#;

/// Rollup rows of a signed-in user's usage: only `userId` pseudonyms count as people. One
/// person's device sends an `anonymousId` before sign-in and a `userId` after (as every Segment
/// SDK does), so counting anonymous ids too would count that person twice, and a group of three
/// people could pass a k of 5. An `alias` call is bookkeeping, not usage: it links ids (see
/// [`aliases`]) but counts as no activity, event or product.
pub const ROLLUP_HAS_USER: &str = r#""identified" AND "user" IS NOT NULL AND "type" <> 'alias'"#;

/// The user keys of result columns `first..first + 3` (see [`ROLLUP_USER_COLUMNS`]): the
/// `userId` pseudonym within its key epoch (a pseudonym means nothing outside its epoch), or
/// `None` for a row of an anonymous id, which counts nobody.
pub fn rollup_user_keys(
    batches: &[RecordBatch],
    first: usize,
) -> Result<Vec<Option<String>>, ReportingError> {
    let epochs = strings(batches, first)?;
    let identified = strings(batches, first + 1)?;
    let users = strings(batches, first + 2)?;
    Ok((0..epochs.len())
        .map(|i| {
            let signed_in = identified[i].as_deref() == Some("true");
            let user = users[i].as_deref().filter(|_| signed_in)?;
            Some(format!(
                "{}/{user}",
                epochs[i].as_deref().unwrap_or_default()
            ))
        })
        .collect())
}

/// The Parquet tables under `processor.data_dir`.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
    runtime: Arc<RuntimeEnv>,
    events_schema: SchemaRef,
    /// Schemas inferred once from the files of the tables other than `events`.
    inferred: Arc<Mutex<HashMap<&'static str, SchemaRef>>>,
    /// Query results by SQL text, valid while the fingerprint of the files in scope is unchanged.
    results: Arc<Mutex<HashMap<String, CachedResult>>>,
    /// Whether [`Warehouse::cached_query`] may answer from `results`, and alias links from
    /// `links`.
    cache_results: bool,
    /// Alias links per partition, read again only where files changed.
    links: Arc<aliases::LinkCache>,
}

/// A cached query result with the fingerprint of the files it was computed from.
type CachedResult = (u64, Arc<Vec<RecordBatch>>);

/// Which partitions of which table a query reads (for the result cache's fingerprint).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The table ([`EVENTS`], [`DAILY_ACTIVITY`], …).
    pub table: &'static str,
    /// One tenant, or all.
    pub tenant: Option<&'a str>,
    /// First day (`YYYY-MM-DD`), inclusive.
    pub from: &'a str,
    /// Last day, inclusive.
    pub to: &'a str,
}

/// Most cached results kept (the cache is cleared when it grows past this).
const CACHED_RESULTS: usize = 512;

/// A SQL string literal (tenant ids and dates are validated before; this is belt and braces).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Warehouse {
    /// The tables under `root`; `events_schema` is the processor's layout for the active allowlist.
    pub fn new(
        root: impl Into<PathBuf>,
        events_schema: SchemaRef,
    ) -> Result<Warehouse, ReportingError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(1 << 30, 1.0)
            // Listings are not cached: every query sees the files flushed since the last one.
            .with_object_list_cache_limit(0)
            .build_arc()
            .map_err(|error| ReportingError::Server(error.strip_backtrace()))?;
        // The tenant and date are partition directories, never file columns.
        let fields: Vec<_> = events_schema
            .fields()
            .iter()
            .filter(|f| f.name() != tables::TENANT_PARTITION && f.name() != tables::DATE_PARTITION)
            .cloned()
            .collect();
        Ok(Warehouse {
            root: root.into(),
            runtime,
            events_schema: Arc::new(Schema::new(fields)),
            inferred: Arc::default(),
            results: Arc::default(),
            cache_results: true,
            links: Arc::default(),
        })
    }

    /// Turns the result cache off (every query runs; for measurements).
    pub fn without_result_cache(mut self) -> Warehouse {
        self.cache_results = false;
        self
    }

    /// The Parquet root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A query context with every existing table registered.
    pub async fn context(&self) -> Result<SessionContext, ReportingError> {
        let config = SessionConfig::new()
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .with_information_schema(true);
        let context = SessionContext::new_with_config_rt(config, self.runtime.clone());
        for table in tables::ALL {
            let dir = self.root.join(table);
            let has_files = !tables::partitions(&self.root, table).is_empty();
            // The rollup's schema is the processor's own (no inference, and an empty table
            // before the first flush, like events).
            let schema = match table {
                EVENTS => Some(self.events_schema.clone()),
                DAILY_ACTIVITY => Some(rollup::schema()),
                _ => None,
            };
            if !has_files {
                if let Some(schema) = schema {
                    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
                    for name in [tables::TENANT_PARTITION, tables::DATE_PARTITION] {
                        fields.push(Arc::new(arrow::datatypes::Field::new(
                            name,
                            DataType::Utf8,
                            false,
                        )));
                    }
                    let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])?;
                    context.register_table(table, Arc::new(empty))?;
                }
                continue;
            }
            let url = ListingTableUrl::parse(format!(
                "{}/",
                dir.canonicalize()
                    .map_err(|_| ReportingError::Source(table.to_owned()))?
                    .display()
            ))?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![
                    (tables::TENANT_PARTITION.to_owned(), DataType::Utf8),
                    (tables::DATE_PARTITION.to_owned(), DataType::Utf8),
                ]);
            let known = self
                .inferred
                .lock()
                .ok()
                .and_then(|cache| cache.get(table).cloned());
            let schema = match (schema, known) {
                (Some(schema), _) | (None, Some(schema)) => schema,
                (None, None) => {
                    let inferred = options.infer_schema(&context.state(), &url).await?;
                    if let Ok(mut cache) = self.inferred.lock() {
                        cache.insert(table, inferred.clone());
                    }
                    inferred
                }
            };
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(view_types(&schema));
            let provider = ListingTable::try_new(config)?
                .with_cache(self.runtime.cache_manager.get_file_statistic_cache());
            context.register_table(table, Arc::new(provider))?;
        }
        Ok(context)
    }

    /// A fingerprint of the scope's table files: names, sizes and modification times. Any
    /// flush, compaction, erasure or retention run in the scope changes it.
    fn fingerprint(&self, scope: Scope<'_>) -> u64 {
        use std::hash::Hasher;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (tenant, date, dir) in tables::partitions(&self.root, scope.table) {
            if scope.tenant.is_some_and(|wanted| wanted != tenant)
                || date.as_str() < scope.from
                || date.as_str() > scope.to
            {
                continue;
            }
            hash_files(&dir, &mut hasher);
        }
        hasher.finish()
    }

    /// Each partition of `table` (of `tenant`, or of every tenant) with a fingerprint of its
    /// files, as [`Warehouse::cached_query`] computes one for a scope.
    pub fn partition_fingerprints(
        &self,
        table: &str,
        tenant: Option<&str>,
    ) -> Vec<(String, String, u64)> {
        use std::hash::Hasher;
        tables::partitions(&self.root, table)
            .into_iter()
            .filter(|(owner, _, _)| tenant.is_none_or(|wanted| wanted == owner))
            .map(|(owner, date, dir)| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                hash_files(&dir, &mut hasher);
                (owner, date, hasher.finish())
            })
            .collect()
    }

    /// The per-partition alias link cache, unless results are not cached.
    pub fn link_cache(&self) -> Option<&aliases::LinkCache> {
        self.cache_results.then_some(self.links.as_ref())
    }

    /// Runs `sql` over the table partitions in `scope`, or answers from the result cache when no file in
    /// the scope changed since the same query last ran.
    pub async fn cached_query(
        &self,
        context: &SessionContext,
        sql: &str,
        scope: Scope<'_>,
    ) -> Result<Arc<Vec<RecordBatch>>, ReportingError> {
        if !self.cache_results {
            return Ok(Arc::new(query(context, sql).await?));
        }
        let fingerprint = self.fingerprint(scope);
        if let Some((known, batches)) = self
            .results
            .lock()
            .ok()
            .and_then(|cache| cache.get(sql).cloned())
            && known == fingerprint
        {
            return Ok(batches);
        }
        let batches = Arc::new(query(context, sql).await?);
        if let Ok(mut cache) = self.results.lock() {
            if cache.len() >= CACHED_RESULTS {
                cache.clear();
            }
            cache.insert(sql.to_owned(), (fingerprint, batches.clone()));
        }
        Ok(batches)
    }

    /// Whether the events table has a column `name` under the active allowlist.
    pub fn has_event_column(&self, name: &str) -> bool {
        self.events_schema.column_with_name(name).is_some()
    }

    /// Whether the processor has written any file of `table`.
    pub fn has_table(&self, table: &str) -> bool {
        !tables::partitions(&self.root, table).is_empty()
    }

    /// The days with stored events, per tenant (from the directory names; no file is opened).
    pub fn event_days(&self) -> Vec<(String, String)> {
        tables::partitions(&self.root, EVENTS)
            .into_iter()
            .filter(|(_, _, dir)| !tables::parquet_files(dir).is_empty())
            .map(|(tenant, date, _)| (tenant, date))
            .collect()
    }
}

/// Hashes the names, sizes and modification times of a partition's Parquet files.
fn hash_files(dir: &Path, hasher: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    for file in tables::parquet_files(dir) {
        file.hash(hasher);
        if let Ok(meta) = std::fs::metadata(&file) {
            meta.len().hash(hasher);
            meta.modified().ok().hash(hasher);
        }
    }
}

/// `schema` with its text columns read as `Utf8View`: Parquet strings are then referenced in
/// place instead of copied into a new buffer per batch, and grouping by them (the user
/// pseudonym above all) hashes views (measured in `benches/reporting.rs`).
fn view_types(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                Arc::new(field.as_ref().clone().with_data_type(DataType::Utf8View))
            }
            _ => field.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Attempts of a report query whose listed files change under it.
const QUERY_ATTEMPTS: u32 = 4;

/// Runs `sql` and collects its batches (again when a file it listed was replaced or deleted
/// while it read).
pub async fn query(
    context: &SessionContext,
    sql: &str,
) -> Result<Vec<RecordBatch>, ReportingError> {
    tracing::debug!(sql, "report query");
    let mut attempt = 1;
    loop {
        let result = async { context.sql(sql).await?.collect().await }.await;
        match result {
            Err(error) if retry_after_storage_change(&error, attempt).await => attempt += 1,
            result => return Ok(result?),
        }
    }
}

/// Whether a query's `attempt` that failed with `error` is worth running again, after a pause:
/// a compaction, erasure or retention run replaced or deleted a file it had listed, and the
/// next attempt lists the files again. The pause grows (25, 100, 400 ms), so a maintenance run
/// rewriting file after file can finish.
pub(crate) async fn retry_after_storage_change(
    error: &datafusion::error::DataFusionError,
    attempt: u32,
) -> bool {
    if attempt >= QUERY_ATTEMPTS || !crate::error::storage_read_failed(error) {
        return false;
    }
    tokio::time::sleep(std::time::Duration::from_millis(25 << (2 * (attempt - 1)))).await;
    tracing::debug!(attempt, "stored files changed during a query");
    true
}

fn cast(column: &ArrayRef, to: &DataType) -> Result<ArrayRef, ReportingError> {
    arrow::compute::cast(column, to).map_err(|error| ReportingError::Query(error.to_string()))
}

/// Column `index` of every batch as optional strings.
pub fn strings(
    batches: &[RecordBatch],
    index: usize,
) -> Result<Vec<Option<String>>, ReportingError> {
    let mut out = Vec::new();
    for batch in batches {
        let column = cast(batch.column(index), &DataType::Utf8)?;
        let Some(column) = column.as_any().downcast_ref::<StringArray>() else {
            return Err(ReportingError::Query("column is not text".to_owned()));
        };
        out.extend(
            (0..column.len()).map(|row| column.is_valid(row).then(|| column.value(row).to_owned())),
        );
    }
    Ok(out)
}

/// Column `index` of every batch as integers (nulls read 0).
pub fn integers(batches: &[RecordBatch], index: usize) -> Result<Vec<i64>, ReportingError> {
    let mut out = Vec::new();
    for batch in batches {
        let column = cast(batch.column(index), &DataType::Int64)?;
        let Some(column) = column.as_any().downcast_ref::<Int64Array>() else {
            return Err(ReportingError::Query("column is not an integer".to_owned()));
        };
        out.extend((0..column.len()).map(|row| {
            if column.is_valid(row) {
                column.value(row)
            } else {
                0
            }
        }));
    }
    Ok(out)
}

/// Interns user pseudonyms as small integers for set arithmetic (values stay in memory only).
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    /// The id of `user`.
    pub fn id(&mut self, user: String) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(user).or_insert(next)
    }
}
