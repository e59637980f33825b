//! `veil retention run`: deletes table partitions past their retention and shreds expired
//! baseline key epochs. `veil processor` runs the same [`apply`] on a schedule.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Subcommand;
use time::OffsetDateTime;
use veil_gateway::pseudonym::KeyStore;
use veil_processor::retention::{self, ExpiredPartition};
use veil_processor::store::Store;

use crate::settings::{Settings, init_logging};

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Apply retention now: expired partitions deleted, expired baseline keys shredded.
    Run {
        /// Settings file (see the README); `VEIL_*` variables override it.
        #[arg(long, default_value = "veil.toml")]
        config: PathBuf,
        /// Parquet root, overriding `processor.data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Key directory, overriding `gateway.keystore`.
        #[arg(long)]
        keystore: Option<PathBuf>,
    },
}

/// What one application of retention removed.
#[derive(Debug, Default)]
pub(crate) struct RetentionReport {
    pub(crate) partitions: Vec<ExpiredPartition>,
    /// (tenant, epoch) of shredded keys.
    pub(crate) keys: Vec<(String, String)>,
}

/// Applies `[retention]` to the Parquet tree and the keystore the settings name.
pub(crate) fn apply(settings: &Settings, now: OffsetDateTime) -> anyhow::Result<RetentionReport> {
    let store = Store::open(&settings.processor.data_dir)?;
    let partitions = retention::expire(&store, &settings.retention, now.date())?;
    let mut keys = Vec::new();
    if settings.retention.baseline_key_months > 0 && settings.gateway.keystore.exists() {
        let keystore = KeyStore::open(&settings.gateway.keystore)?;
        for info in keystore.shred_expired(now, settings.retention.baseline_key_months)? {
            tracing::info!(tenant = %info.tenant, epoch = %info.epoch, "expired key epoch shredded");
            keys.push((info.tenant, info.epoch));
        }
    }
    Ok(RetentionReport { partitions, keys })
}

/// Applies retention every `retention.interval_minutes` until `stop` is set (for `veil processor`
/// and `veil up`); failures are logged and retried at the next interval.
pub(crate) fn spawn_schedule(
    settings: Settings,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
    let minutes = settings.retention.interval_minutes;
    if minutes == 0 {
        return Ok(None);
    }
    let every = Duration::from_secs(minutes.saturating_mul(60));
    let handle = std::thread::Builder::new()
        .name("retention".to_owned())
        .spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    next = Instant::now() + every;
                    match apply(&settings, OffsetDateTime::now_utc()) {
                        Ok(report) => tracing::info!(
                            partitions = report.partitions.len(),
                            keys = report.keys.len(),
                            "retention applied"
                        ),
                        Err(error) => tracing::error!(error = %error, "retention failed"),
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })?;
    Ok(Some(handle))
}

pub(crate) fn run(command: RetentionCommand) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Run {
        config,
        data_dir,
        keystore,
    } = command;
    let explicit = config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&config, explicit)?;
    if let Some(data_dir) = data_dir {
        settings.processor.data_dir = data_dir;
    }
    if let Some(keystore) = keystore {
        settings.gateway.keystore = keystore;
    }
    init_logging(&settings.log);
    // A mistyped path must not pass for a store with nothing to expire.
    super::require_dir("data directory", &settings.processor.data_dir)?;
    let report = apply(&settings, OffsetDateTime::now_utc())?;
    for partition in &report.partitions {
        println!(
            "deleted {}/tenant={}/date={} ({} files)",
            partition.table, partition.tenant, partition.date, partition.files
        );
    }
    for (tenant, epoch) in &report.keys {
        println!("tenant {tenant}: shredded key epoch {epoch}");
    }
    println!(
        "retention: {} partitions deleted, {} key epochs shredded",
        report.partitions.len(),
        report.keys.len()
    );
    Ok(ExitCode::SUCCESS)
}
