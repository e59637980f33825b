//! `veil processor`: sanitized topics → deduplicated, exactly-once Parquet.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;
use veil_policy::Allowlist;
use veil_processor::columns::TableLayout;
use veil_processor::pipeline::{ProcessorStats, run as run_pipeline};

use crate::settings::{Settings, init_logging};

#[derive(Debug, Args)]
pub(crate) struct ProcessorArgs {
    /// Settings file (see the README); `VEIL_*` variables override it.
    #[arg(long, default_value = "veil.toml")]
    config: PathBuf,
    /// Kafka bootstrap servers, overriding `kafka.bootstrap_servers`.
    #[arg(long)]
    kafka: Option<String>,
    /// Parquet root, overriding `processor.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: ProcessorArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&args.config, explicit)?;
    if let Some(kafka) = args.kafka {
        settings.kafka.bootstrap_servers = kafka;
    }
    if let Some(data_dir) = args.data_dir {
        settings.processor.data_dir = data_dir;
    }
    init_logging(&settings.log);
    if settings.kafka.bootstrap_servers.is_empty() {
        anyhow::bail!("kafka.bootstrap_servers is not set (use --kafka HOST:PORT)");
    }
    let config = settings.processor.clone();
    let allowlist = Allowlist::load(&config.allowlist)
        .with_context(|| format!("{} is refused", config.allowlist.display()))?;
    let layout = TableLayout::from_policy(&allowlist.compile());
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal_stop = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(super::gateway::shutdown_signal());
        signal_stop.store(true, Ordering::Relaxed);
    });
    let stats = ProcessorStats::default();
    tracing::info!(
        kafka = %settings.kafka.bootstrap_servers,
        data_dir = %config.data_dir.display(),
        group = %config.group_id,
        "processor started"
    );
    run_pipeline(&config, &settings.kafka, &layout, &stop, &stats)?;
    tracing::info!(
        rows = stats.rows_written.load(Ordering::Relaxed),
        files = stats.files_written.load(Ordering::Relaxed),
        duplicates = stats.duplicates.load(Ordering::Relaxed),
        dead_letters = stats.dead_letters.load(Ordering::Relaxed),
        "processor stopped"
    );
    Ok(ExitCode::SUCCESS)
}
