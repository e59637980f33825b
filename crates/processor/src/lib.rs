//! Veil's stream processor: sanitized events from Kafka to deduplicated, exactly-once Parquet
//! partitioned by tenant and day.
//!
//! Data flows Kafka → [`row`] (decode the contract) → [`dedup`] → [`columns`] (typed Arrow
//! columns from the allowlist) → [`store`] (Parquet files and the commit protocol that makes each
//! row land exactly once) — driven by [`pipeline`].
//!
//! The tables and their directory layout (hive-style `tenant=…/date=…`, the tenant never stored
//! inside the files) are named in [`tables`]; reporting reads them through those constants.

pub mod audit;
pub mod columns;
pub mod compact;
pub mod config;
pub mod dedup;
pub mod erase;
pub mod metrics;
pub mod pipeline;
pub mod retention;
pub mod rollup;
pub mod row;
pub mod store;
pub mod tables;
pub mod timestamp;

pub use config::ProcessorConfig;
pub use retention::RetentionConfig;
