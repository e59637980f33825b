//! `veil.toml`: one file for every service, each reading its own table, with environment
//! overrides (`VEIL_GATEWAY__LISTEN=0.0.0.0:8088`, `VEIL_KAFKA__BOOTSTRAP_SERVERS=…`).

use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use veil_config::KafkaConfig;
use veil_gateway::server::GatewayConfig;
use veil_processor::{ProcessorConfig, RetentionConfig};

/// Everything `veil.toml` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Settings {
    /// `[kafka]`: the cluster and topic names.
    pub(crate) kafka: KafkaConfig,
    /// `[gateway]`: the HTTP ingest API.
    pub(crate) gateway: GatewayConfig,
    /// `[processor]`: Kafka to Parquet.
    pub(crate) processor: ProcessorConfig,
    /// `[retention]`: how long tables and baseline keys live.
    pub(crate) retention: RetentionConfig,
    /// `[reporting]`: the dashboards.
    pub(crate) reporting: veil_reporting::ReportingConfig,
    /// `[log]`: log format and level.
    pub(crate) log: LogConfig,
}

/// `[log]` in `veil.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// `json` (one object a line, for log shippers) or `text`.
    pub(crate) format: String,
    /// A tracing filter such as `info` or `veil_gateway=debug,info`; `RUST_LOG` wins.
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "json".to_owned(),
            level: "info".to_owned(),
        }
    }
}

impl Settings {
    /// Defaults, then `path` (when it exists or was named explicitly), then `VEIL_*` variables.
    pub(crate) fn load(path: &Path, explicit: bool) -> anyhow::Result<Settings> {
        if explicit && !path.exists() {
            anyhow::bail!("config file {} does not exist", path.display());
        }
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("VEIL_").split("__"))
            .extract()
            .with_context(|| {
                format!("invalid settings in {} or VEIL_* variables", path.display())
            })?;
        settings.check().with_context(|| {
            format!("invalid settings in {} or VEIL_* variables", path.display())
        })?;
        Ok(settings)
    }

    /// Refuses values the types admit but the services cannot run with.
    fn check(&self) -> anyhow::Result<()> {
        let topics = &self.kafka.topics;
        if !(1..=10_000).contains(&topics.partitions) {
            anyhow::bail!("kafka.topics.partitions must be 1 to 10000");
        }
        if !(1..=32).contains(&topics.replication) {
            anyhow::bail!("kafka.topics.replication must be 1 to 32");
        }
        if self.reporting.k_anonymity < 2 {
            anyhow::bail!(
                "reporting.k_anonymity must be at least 2: a smaller k would show groups of one user"
            );
        }
        Ok(())
    }
}

/// Log targets capped at info (each a prefix: `datafusion` covers `datafusion_sql` too): their
/// debug lines quote SQL, plans or protocol bytes.
const DATA_BEARING_LOG_TARGETS: [&str; 4] =
    ["sqlparser=info", "datafusion=info", "hyper=info", "h2=info"];

/// Starts logging: JSON or text lines on stderr, structured fields first.
pub(crate) fn init_logging(log: &LogConfig) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Libraries whose debug and trace lines carry data (SQL text with its literals, plans with
    // their filters, HTTP bytes) stay at info whatever the level asked for: no value is logged.
    for directive in DATA_BEARING_LOG_TARGETS {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if log.format == "text" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "veil.toml",
                "[gateway]\nlisten = \"0.0.0.0:9000\"\nrate_limit_per_second = 7\n[kafka]\nbootstrap_servers = \"k:9092\"\n",
            )?;
            jail.set_env("VEIL_GATEWAY__RATE_LIMIT_PER_SECOND", "9");
            jail.set_env("VEIL_KAFKA__TOPICS__REJECTIONS", "audit");
            let settings = Settings::load(Path::new("veil.toml"), true).expect("valid");
            assert_eq!(settings.gateway.listen.port(), 9000);
            assert_eq!(settings.gateway.rate_limit_per_second, 9);
            assert_eq!(settings.kafka.bootstrap_servers, "k:9092");
            assert_eq!(settings.kafka.topics.rejections, "audit");
            assert_eq!(
                settings.gateway.retry_after_seconds, 5,
                "defaults fill the rest"
            );
            jail.create_file("bad.toml", "[gateway]\nlisten_on = 1\n")?;
            assert!(
                Settings::load(Path::new("bad.toml"), true).is_err(),
                "unknown keys are refused"
            );
            for (variable, value, named) in [
                (
                    "VEIL_KAFKA__TOPICS__PARTITIONS",
                    "0",
                    "kafka.topics.partitions",
                ),
                (
                    "VEIL_KAFKA__TOPICS__PARTITIONS",
                    "-5",
                    "kafka.topics.partitions",
                ),
                ("VEIL_REPORTING__K_ANONYMITY", "0", "reporting.k_anonymity"),
                ("VEIL_REPORTING__K_ANONYMITY", "1", "reporting.k_anonymity"),
            ] {
                jail.set_env(variable, value);
                let error = Settings::load(Path::new("veil.toml"), true).expect_err(value);
                assert!(format!("{error:#}").contains(named), "{error:#}");
                jail.set_env(
                    variable,
                    if named.ends_with("partitions") {
                        "6"
                    } else {
                        "5"
                    },
                );
            }
            Settings::load(Path::new("veil.toml"), true).expect("valid again");
            Ok(())
        });
    }
}
