//! `veil processor`: sanitized topics → deduplicated, exactly-once Parquet.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;
use veil_policy::Allowlist;
use veil_processor::columns::TableLayout;
use veil_processor::pipeline::{ProcessorStats, run as run_pipeline, run_stdin};
use veil_processor::tables;

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
    /// Store sanitized messages from stdin (`veil filter`'s output) instead of Kafka, then exit;
    /// re-running the same input resumes after the last stored line.
    #[arg(long)]
    stdin: bool,
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
    if args.stdin {
        return run_stdin_import(&settings);
    }
    if settings.kafka.bootstrap_servers.is_empty() {
        anyhow::bail!("kafka.bootstrap_servers is not set (use --kafka HOST:PORT)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal_stop = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(async {
            super::gateway::stop_signal(
                "rows not yet committed are read again from Kafka at the next start",
            )
            .await;
            signal_stop.store(true, Ordering::Relaxed);
            // Keeps the runtime, and so the second signal's watch, alive.
            std::future::pending::<()>().await;
        });
    });
    spawn(&settings, stop)?
        .join()
        .map_err(|_| anyhow::anyhow!("the processor thread panicked"))??;
    Ok(ExitCode::SUCCESS)
}

/// The processor as a service, on its own thread until `stop` is set: the metrics endpoint, the
/// retention schedule and the consume loop — what `veil processor` and `veil up` both run.
pub(crate) fn spawn(
    settings: &Settings,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let config = settings.processor.clone();
    let layout = load_layout(&config)?;
    let stats = Arc::new(ProcessorStats::default());
    if !config.metrics_listen.is_empty() {
        let address = veil_processor::metrics::serve(&config.metrics_listen, stats.clone())
            .with_context(|| format!("processor.metrics_listen {}", config.metrics_listen))?;
        tracing::info!(%address, "metrics at /metrics");
    }
    let retention = super::retention::spawn_schedule(settings.clone(), stop.clone())?;
    let kafka = settings.kafka.clone();
    tracing::info!(
        kafka = %kafka.bootstrap_servers,
        data_dir = %config.data_dir.display(),
        group = %config.group_id,
        "processor started"
    );
    let thread = std::thread::Builder::new()
        .name("processor".to_owned())
        .spawn(move || {
            let result = run_pipeline(&config, &kafka, &layout, &stop, &stats);
            stop.store(true, Ordering::Relaxed);
            if let Some(retention) = retention {
                let _ = retention.join();
            }
            result?;
            tracing::info!(
                rows = stats.rows(tables::EVENTS),
                rejection_rows = stats.rows(tables::REJECTIONS),
                duplicates = stats.duplicates.get(),
                dead_letters = stats.dead_letters.get(),
                "processor stopped"
            );
            anyhow::Ok(())
        })?;
    Ok(thread)
}

fn load_layout(config: &veil_processor::ProcessorConfig) -> anyhow::Result<TableLayout> {
    let allowlist = Allowlist::load(&config.allowlist)
        .with_context(|| format!("{} is refused", config.allowlist.display()))?;
    Ok(TableLayout::from_policy(&allowlist.compile()))
}

/// `veil processor --stdin`: one import, then a summary on stderr.
fn run_stdin_import(settings: &Settings) -> anyhow::Result<ExitCode> {
    let layout = load_layout(&settings.processor)?;
    let stats = ProcessorStats::default();
    let skipped = run_stdin(
        &settings.processor,
        &layout,
        // 1 MiB reads, as `veil filter` does (the lock's own buffer reads 8 KiB at a time).
        std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock()),
        &stats,
    )?;
    eprintln!(
        "stored {} events ({} daily_activity rows); {} duplicates, {} lines skipped",
        stats.rows(tables::EVENTS),
        stats.rows(tables::DAILY_ACTIVITY),
        stats.duplicates.get(),
        skipped
    );
    Ok(ExitCode::SUCCESS)
}
