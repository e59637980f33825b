//! The gateway's settings: the `[gateway]` table of `veil.toml` (every key documented in the README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[gateway]` in `veil.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// The allowlist the filter enforces.
    pub allowlist: PathBuf,
    /// The tenants file: write keys, tiers, regions, seats.
    pub tenants: PathBuf,
    /// Directory of per-tenant pseudonym keys.
    pub keystore: PathBuf,
    /// Messages per second each write key may send (sustained); 0 disables the limit.
    pub rate_limit_per_second: u32,
    /// Messages a write key may send in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// How long Kafka may take to acknowledge a request's messages before the answer is 503.
    pub delivery_timeout_ms: u64,
    /// `Retry-After` (seconds) sent with 503 answers.
    pub retry_after_seconds: u32,
    /// Deadline for a request's headers, then for its whole body (a slow body gets 408).
    pub request_read_timeout_ms: u64,
    /// Origins browsers may send from (`*` for any).
    pub cors_origins: Vec<String>,
    /// How long a shutdown waits for in-flight requests and their acknowledgements.
    pub shutdown_grace_ms: u64,
    /// A request's messages bound for one partition share Kafka records up to this many bytes
    /// (one message a line); 0 sends one message a record.
    pub max_packed_record_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            allowlist: PathBuf::from("allowlist.yaml"),
            tenants: PathBuf::from("tenants.yaml"),
            keystore: PathBuf::from("veil-data/keys"),
            rate_limit_per_second: 50_000,
            rate_limit_burst: 100_000,
            delivery_timeout_ms: 10_000,
            retry_after_seconds: 5,
            request_read_timeout_ms: 10_000,
            cors_origins: vec!["*".to_owned()],
            shutdown_grace_ms: 15_000,
            max_packed_record_bytes: crate::sink::MAX_PACKED_BYTES,
        }
    }
}

impl GatewayConfig {
    /// [`GatewayConfig::delivery_timeout_ms`] as a duration.
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    /// [`GatewayConfig::request_read_timeout_ms`] as a duration.
    pub fn request_read_timeout(&self) -> Duration {
        Duration::from_millis(self.request_read_timeout_ms)
    }

    /// [`GatewayConfig::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
