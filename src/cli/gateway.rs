//! `veil gateway`: the Segment-compatible ingest API in front of Kafka.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;
use veil_config::TenantsFile;
use veil_gateway::allowlist::Allowlist;
use veil_gateway::pseudonym::KeyStore;
use veil_gateway::server::{Gateway, serve};
use veil_gateway::sink::{KafkaPublisher, create_topics};

use crate::settings::{Settings, init_logging};

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Settings file (see the README); `VEIL_*` variables override it.
    #[arg(long, default_value = "veil.toml")]
    config: PathBuf,
    /// Kafka bootstrap servers, overriding `kafka.bootstrap_servers`.
    #[arg(long)]
    kafka: Option<String>,
    /// Address to listen on, overriding `gateway.listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

/// Ctrl-C and SIGTERM, listened for from the moment this is made (until then a signal has its
/// default effect and ends the process on the spot). The first starts a graceful stop; the
/// second ends the process at once with status 130, so a stop that waits on a stuck peer (a
/// client that never finishes its request, a broker that never answers) can always be cut
/// short.
pub(crate) struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Starts listening (inside a Tokio runtime).
    pub(crate) fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the next Ctrl-C or SIGTERM.
    pub(crate) async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }

    /// After the first signal: the next one exits at once; `unstored` says what that gives up,
    /// for the operator.
    pub(crate) fn arm_second(mut self, unstored: &'static str) {
        tokio::spawn(async move {
            self.next().await;
            eprintln!("veil: second stop signal: exiting at once; {unstored}");
            std::process::exit(130);
        });
    }
}

/// Resolves on the first Ctrl-C or SIGTERM after it is first polled and arms the second (see
/// [`StopSignals`]).
pub(crate) async fn stop_signal(unstored: &'static str) {
    let Ok(mut signals) = StopSignals::install() else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    signals.next().await;
    signals.arm_second(unstored);
}

pub(crate) fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&args.config, explicit)?;
    if let Some(kafka) = args.kafka {
        settings.kafka.bootstrap_servers = kafka;
    }
    if let Some(listen) = args.listen {
        settings.gateway.listen = listen;
    }
    init_logging(&settings.log);
    if settings.kafka.bootstrap_servers.is_empty() {
        anyhow::bail!(
            "kafka.bootstrap_servers is not set (use --kafka HOST:PORT; `veil up` runs an embedded broker)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (listener, gateway) = start(&settings).await?;
        let stopped =
            stop_signal("requests still in flight get no answer and their clients retry them");
        serve(listener, gateway, stopped).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Loads the policy, tenants and keys, creates Veil's topics, connects the Kafka publisher and
/// binds the listener: everything `veil gateway` and `veil up` do before serving. A request's
/// messages for one partition are packed into Kafka records of up to
/// `gateway.max_packed_record_bytes` (0: one message a record).
pub(crate) async fn start(settings: &Settings) -> anyhow::Result<(TcpListener, Arc<Gateway>)> {
    let config = settings.gateway.clone();
    let allowlist = Allowlist::load(&config.allowlist)
        .with_context(|| format!("{} is refused", config.allowlist.display()))?;
    let tenants = TenantsFile::load(&config.tenants)?;
    let keystore = KeyStore::open(&config.keystore)?;
    create_topics(&settings.kafka)
        .await
        .context("cannot create Veil's topics")?;
    let publisher = KafkaPublisher::new(&settings.kafka, config.delivery_timeout())?
        .with_max_packed_bytes(config.max_packed_record_bytes);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let gateway = Arc::new(Gateway::new(
        config,
        Arc::new(allowlist.compile()),
        tenants.write_key_index(),
        keystore,
        &settings.kafka.topics,
        Arc::new(publisher),
    ));
    tracing::info!(
        listen = %address,
        kafka = %settings.kafka.bootstrap_servers,
        policy = %gateway.policy_digest(),
        tenants = tenants.tenants.len(),
        "gateway listening"
    );
    Ok((listener, gateway))
}
