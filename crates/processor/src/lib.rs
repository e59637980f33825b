//! Veil's stream processor: sanitized events from Kafka to deduplicated, exactly-once Parquet
//! partitioned by tenant and day.
//!
//! Data flows Kafka → [`row`] (decode the contract) → [`dedup`] → [`columns`] (typed Arrow
//! columns from the allowlist) → [`store`] (Parquet files and the commit protocol that makes each
//! row land exactly once) — driven by [`pipeline`].

pub mod columns;
pub mod config;
pub mod dedup;
pub mod pipeline;
pub mod row;
pub mod store;

pub use config::ProcessorConfig;
