//! Veil stream processor: consumes sanitized events from Kafka and writes deduplicated Parquet.
//! Not built yet: this crate holds its place in the workspace layout until its issue lands.
