//! The reporting service's settings: the `[reporting]` table of `veil.toml`, plus the paths of
//! the data it reads, which belong to other services' tables.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[reporting]` in `veil.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportingConfig {
    /// HTTP address of the dashboards and their API.
    pub listen: SocketAddr,
    /// The viewers file: token digests and roles.
    pub viewers: PathBuf,
    /// Smallest number of distinct users a shown group may have (k-anonymity threshold).
    pub k_anonymity: u32,
    /// Serve the vendor's raw SQL endpoint (`veil up` turns it off with its in-memory broker).
    pub sql: bool,
    /// Most rows the vendor's SQL endpoint returns.
    pub sql_row_limit: usize,
    /// Longest a SQL query may run.
    pub sql_timeout_ms: u64,
    /// Mark the login cookie `Secure` (set it when the service is behind HTTPS).
    pub secure_cookies: bool,
    /// Keep query results in memory until a file in their partitions changes.
    pub result_cache: bool,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        ReportingConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            viewers: PathBuf::from("viewers.yaml"),
            k_anonymity: 5,
            sql: true,
            sql_row_limit: 10_000,
            sql_timeout_ms: 10_000,
            secure_cookies: false,
            result_cache: true,
        }
    }
}

/// Where the data the reports read lives (other services' settings: `processor.data_dir`,
/// `gateway.allowlist`, `gateway.tenants`, `gateway.keystore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSources {
    /// Root of the processor's Parquet tree.
    pub data_dir: PathBuf,
    /// The active allowlist.
    pub allowlist: PathBuf,
    /// The tenants file (seats, tiers, consent records).
    pub tenants: PathBuf,
    /// The keystore directory (only file names and shred records are read, never keys).
    pub keystore: PathBuf,
}

impl Default for DataSources {
    fn default() -> Self {
        DataSources {
            data_dir: PathBuf::from("veil-data/parquet"),
            allowlist: PathBuf::from("allowlist.yaml"),
            tenants: PathBuf::from("tenants.yaml"),
            keystore: PathBuf::from("veil-data/keys"),
        }
    }
}
