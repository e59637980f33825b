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

/// Crates whose debug and trace lines carry data (SQL text with its literals, plans with their
/// filters, HTTP bytes), with their sibling crates (`datafusion` covers `datafusion_sql` and
/// `datafusion_optimizer`, `hyper` covers `hyper_util`).
const DATA_BEARING_LOG_CRATES: [&str; 4] = ["sqlparser", "datafusion", "hyper", "h2"];

/// Whether events of `target` may quote data: its crate is one of [`DATA_BEARING_LOG_CRATES`]
/// or their siblings.
fn is_data_bearing(target: &str) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    DATA_BEARING_LOG_CRATES.iter().any(|name| {
        crate_name
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
    })
}

/// Starts logging: JSON or text lines on stderr, structured fields first. The level comes from
/// `RUST_LOG`, else `log.level`; data-bearing crates stay at info whatever either asks for
/// (a cap applied after the level filter, so no directive, however specific, lifts it).
pub(crate) fn init_logging(log: &LogConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let level = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let cap = tracing_subscriber::filter::filter_fn(|metadata| {
        *metadata.level() <= tracing::Level::INFO || !is_data_bearing(metadata.target())
    });
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if log.format == "text" {
        // Colours only for a terminal: a file or a log collector gets plain text.
        lines.with_ansi(std::io::stderr().is_terminal()).boxed()
    } else {
        lines.json().flatten_event(true).boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(level).with_filter(cap))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_bearing_crates_are_recognized_with_their_siblings() {
        for target in [
            "sqlparser::parser",
            "datafusion",
            "datafusion_optimizer::optimizer",
            "datafusion_sql::select",
            "hyper::proto::h1",
            "hyper_util::client",
            "h2::codec",
        ] {
            assert!(is_data_bearing(target), "{target}");
        }
        for target in [
            "veil_gateway::server",
            "h2o",
            "hyperloop",
            "rdkafka::client",
            "veil",
        ] {
            assert!(!is_data_bearing(target), "{target}");
        }
    }

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
