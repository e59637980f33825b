//! `veil up`: gateway, processor and reporting in one process, on an embedded broker unless a
//! Kafka cluster is configured. The services run the same code as `veil gateway`, `veil
//! processor` and `veil reporting`; only their bootstrap servers differ.

mod backpressure;
mod broker;
mod drain;
mod viewers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use veil_config::TenantsFile;
use veil_gateway::server::serve;

use crate::settings::{Settings, init_logging};

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Settings file (see the README); `VEIL_*` variables override it.
    #[arg(long, default_value = "veil.toml")]
    config: PathBuf,
    /// A Kafka cluster (`host:port[,…]`) instead of the embedded broker.
    #[arg(long)]
    kafka: Option<String>,
    /// Where keys and Parquet live (`<dir>/keys`, `<dir>/parquet`).
    #[arg(long, default_value = "veil-data")]
    data_dir: PathBuf,
    /// Also send a month of synthetic client traffic from the demo tenants through the HTTP API.
    #[arg(long)]
    demo: bool,
    /// Days of history `--demo` sends.
    #[arg(long, default_value_t = 30, requires = "demo")]
    demo_days: i64,
    /// Log level of the services (`veil up` logs as text, for people).
    #[arg(long, default_value = "warn")]
    log_level: String,
    /// Serve the vendor's raw SQL endpoint also with the embedded broker (off by default: the
    /// broker keeps messages in this process's memory until they are stored, and a query that
    /// exhausted memory would take them down with it).
    #[arg(long)]
    sql: bool,
}

/// A short id for this run of the embedded broker (base 36 of the start time in seconds).
fn run_id() -> String {
    let mut seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut digits = Vec::new();
    loop {
        let digit = (seconds % 36) as u8;
        digits.push(if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        });
        seconds /= 36;
        if seconds == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

pub(crate) fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&args.config, explicit)?;
    if let Some(kafka) = args.kafka {
        settings.kafka.bootstrap_servers = kafka;
    }
    settings.gateway.keystore = args.data_dir.join("keys");
    settings.processor.data_dir = args.data_dir.join("parquet");
    // One message a record: the backpressure below counts lag in records, which only bounds
    // the mock cluster's 5 MB per partition while a record is one ~1 KB message.
    settings.gateway.max_packed_record_bytes = 0;
    settings.log.format = "text".to_owned();
    settings.log.level = args.log_level.clone();
    init_logging(&settings.log);

    // The embedded broker lives on this thread until the end of `run`.
    let embedded = if settings.kafka.bootstrap_servers.is_empty() {
        let broker = broker::EmbeddedBroker::start()?;
        settings.kafka.bootstrap_servers = broker.bootstrap_servers();
        let run = run_id();
        let topics = &mut settings.kafka.topics;
        topics.sanitized = broker::run_scoped(&topics.sanitized, &run);
        topics.rejections = broker::run_scoped(&topics.rejections, &run);
        topics.dead_letter = broker::run_scoped(&topics.dead_letter, &run);
        broker.create_topics(&settings.kafka)?;
        Some(broker)
    } else {
        None
    };
    if embedded.is_some() && !args.sql {
        settings.reporting.sql = false;
    }
    let tenants = TenantsFile::load(&settings.gateway.tenants)?;
    let (viewers_file, viewers) = viewers::write_demo_viewers(&args.data_dir, &tenants)?;
    settings.reporting.viewers = viewers_file;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // What a second stop signal, which exits at once, gives up.
    let unstored = if embedded.is_some() {
        "acknowledged messages not yet stored are lost with the embedded broker's log"
    } else {
        "acknowledged messages not yet stored stay in Kafka for the next start"
    };
    let outcome = runtime.block_on(async {
        // Listening before anything starts: a signal as the gateway opens must stop it
        // gracefully, not end the process with acknowledged messages in the embedded broker.
        let mut signals = super::gateway::StopSignals::install()?;
        let services = Services::start(&settings, embedded.is_some()).await?;
        print_banner(&services, &viewers, &tenants, embedded.is_some(), &settings);
        if args.demo {
            let keys: Vec<(String, String)> = tenants
                .tenants
                .iter()
                .filter_map(|tenant| Some((tenant.id.clone(), tenant.write_keys.first()?.clone())))
                .collect();
            let profiles = crate::demo::default_profiles(&keys);
            tokio::select! {
                sent = crate::demo::send(&services.ingest_url, &profiles, args.demo_days, 7) => {
                    let sent = sent.context("demo traffic")?;
                    eprintln!(
                        "demo: {} messages accepted; dashboards fill as the processor commits (every {} ms)",
                        sent.messages, settings.processor.flush_interval_ms
                    );
                }
                () = signals.next() => {
                    signals.arm_second(unstored);
                    return services.stop(&settings).await;
                }
                () = services.processor_exited() => return services.stop(&settings).await,
            }
        }
        tokio::select! {
            () = signals.next() => signals.arm_second(unstored),
            () = services.processor_exited() => {
                eprintln!("veil: the processor stopped; stopping everything");
            }
        }
        services.stop(&settings).await
    });
    drop(embedded);
    outcome
}

/// The three services of one `veil up`, running.
struct Services {
    ingest_url: String,
    reporting_url: String,
    stop_gateway: tokio::sync::oneshot::Sender<()>,
    gateway: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_processor: Arc<AtomicBool>,
    processor: std::thread::JoinHandle<anyhow::Result<()>>,
    stop_reporting: tokio::sync::oneshot::Sender<()>,
    reporting: tokio::task::JoinHandle<Result<(), veil_reporting::ReportingError>>,
    backpressure: Option<std::thread::JoinHandle<()>>,
}

impl Services {
    /// Starts the three services; ingest opens last.
    async fn start(settings: &Settings, embedded: bool) -> anyhow::Result<Services> {
        // The gateway's start creates missing topics, so it comes first; it serves last.
        let (ingest_listener, gateway) = super::gateway::start(settings).await?;
        let ingest_url = format!("http://{}", ingest_listener.local_addr()?);
        let stop_processor = Arc::new(AtomicBool::new(false));
        let processor = super::processor::spawn(settings, stop_processor.clone())?;
        let backpressure = if embedded {
            Some(backpressure::spawn(
                settings.kafka.clone(),
                settings.processor.group_id.clone(),
                gateway.clone(),
                stop_processor.clone(),
            )?)
        } else {
            None
        };

        let (config, sources) = super::reporting::reporting_parts(settings);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let reporting_url = format!("http://{}", listener.local_addr()?);
        let state = veil_reporting::AppState::load(&config, &sources)?;
        let (stop_reporting, reporting_stopped) = tokio::sync::oneshot::channel::<()>();
        let reporting = tokio::spawn(veil_reporting::serve_on(listener, state, async {
            let _ = reporting_stopped.await;
        }));

        let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
        let gateway = tokio::spawn(serve(ingest_listener, gateway, async {
            let _ = gateway_stopped.await;
        }));
        Ok(Services {
            ingest_url,
            reporting_url,
            stop_gateway,
            gateway,
            stop_processor,
            processor,
            stop_reporting,
            reporting,
            backpressure,
        })
    }

    /// Resolves if the processor's thread ends on its own (an error it cannot get past): `veil
    /// up` then stops rather than accept messages nothing stores.
    async fn processor_exited(&self) {
        while !self.processor.is_finished() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops ingest first, lets the processor store everything the gateway acknowledged, then
    /// stops the processor and the reporting service.
    async fn stop(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        eprintln!("veil: stopping: draining the gateway, then storing what Kafka holds");
        let _ = self.stop_gateway.send(());
        self.gateway.await.context("gateway task")??;
        let kafka = settings.kafka.clone();
        let group = settings.processor.group_id.clone();
        let drained = tokio::task::spawn_blocking(move || {
            drain::wait_until_consumed(&kafka, &group, Duration::from_secs(30))
        })
        .await
        .context("drain task")?;
        if let Err(error) = drained {
            tracing::warn!(%error, "the processor did not catch up before the deadline");
        }
        self.stop_processor.store(true, Ordering::Relaxed);
        let processor = self.processor;
        tokio::task::spawn_blocking(move || processor.join())
            .await
            .context("processor join")?
            .map_err(|_| anyhow::anyhow!("the processor thread panicked"))??;
        if let Some(backpressure) = self.backpressure {
            let _ = tokio::task::spawn_blocking(move || backpressure.join()).await;
        }
        let _ = self.stop_reporting.send(());
        self.reporting.await.context("reporting task")??;
        eprintln!("veil: stopped");
        Ok(ExitCode::SUCCESS)
    }
}

fn print_banner(
    services: &Services,
    viewers: &[viewers::DemoViewer],
    tenants: &TenantsFile,
    embedded: bool,
    settings: &Settings,
) {
    let broker = if embedded {
        format!(
            "embedded (in process, {}; its log ends with this process)",
            settings.kafka.bootstrap_servers
        )
    } else {
        settings.kafka.bootstrap_servers.clone()
    };
    println!("Veil is up.");
    println!("  kafka:      {broker}");
    println!("  parquet:    {}", settings.processor.data_dir.display());
    println!(
        "  ingest:     {}   (point a Segment SDK's host here)",
        services.ingest_url
    );
    let processor_metrics = &settings.processor.metrics_listen;
    if processor_metrics.is_empty() {
        println!("  metrics:    {}/metrics", services.ingest_url);
    } else {
        println!(
            "  metrics:    {}/metrics (gateway), http://{processor_metrics}/metrics (processor)",
            services.ingest_url
        );
    }
    println!("  write keys:");
    for tenant in &tenants.tenants {
        if let Some(key) = tenant.write_keys.first() {
            println!(
                "    {:<8} {:<9} {:<3} {key}",
                tenant.id,
                tenant.tier.as_str(),
                tenant.region.as_str()
            );
        }
    }
    println!("  dashboards (each link signs its viewer in; tokens are new at every start):");
    for viewer in viewers {
        println!(
            "    {:<16} {}/login?token={}",
            viewer.label, services.reporting_url, viewer.token
        );
    }
    println!("Ctrl-C stops everything (acknowledged messages are stored first).");
}
