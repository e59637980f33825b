//! `veil reporting`: the adoption, license-compliance and allowlist-audit dashboards.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use veil_reporting::auth::{new_token, token_digest};
use veil_reporting::{DataSources, ReportingConfig};

use crate::settings::{Settings, init_logging};

#[derive(Debug, Args)]
pub(crate) struct ReportingArgs {
    #[command(subcommand)]
    action: Option<ReportingAction>,
    /// Settings file (see the README); `VEIL_*` variables override it.
    #[arg(long, default_value = "veil.toml")]
    config: PathBuf,
    /// Address to listen on, overriding `reporting.listen`.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Parquet root, overriding `processor.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ReportingAction {
    /// Print a new viewer token and the viewers-file entry holding its digest.
    Token {
        /// A label for logs (not a person's name).
        #[arg(long)]
        name: String,
        /// tenant, vendor or reviewer.
        #[arg(long)]
        role: String,
        /// The tenant, for role tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// The reporting settings and data paths from the shared settings.
pub(crate) fn reporting_parts(settings: &Settings) -> (ReportingConfig, DataSources) {
    (
        settings.reporting.clone(),
        DataSources {
            data_dir: settings.processor.data_dir.clone(),
            allowlist: settings.gateway.allowlist.clone(),
            tenants: settings.gateway.tenants.clone(),
            keystore: settings.gateway.keystore.clone(),
        },
    )
}

pub(crate) fn run(args: ReportingArgs) -> anyhow::Result<ExitCode> {
    if let Some(ReportingAction::Token { name, role, tenant }) = args.action {
        let token = new_token().map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        let tenant = match (role.as_str(), tenant) {
            ("tenant", Some(tenant)) => format!(", tenant: {tenant}"),
            ("vendor" | "reviewer", None) => String::new(),
            _ => anyhow::bail!("--role must be tenant (with --tenant), vendor or reviewer"),
        };
        eprintln!("Give this token to the viewer (it is not stored anywhere):");
        println!("{token}");
        eprintln!("Add this entry under `viewers:` in the viewers file:");
        eprintln!(
            "  - {{ name: {name}, role: {role}{tenant}, token_sha256: {} }}",
            token_digest(&token)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let explicit = args.config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&args.config, explicit)?;
    if let Some(listen) = args.listen {
        settings.reporting.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        settings.processor.data_dir = data_dir;
    }
    init_logging(&settings.log);
    let (config, sources) = reporting_parts(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(veil_reporting::serve(
        config,
        sources,
        super::gateway::stop_signal("open dashboard requests get no answer"),
    ))?;
    Ok(ExitCode::SUCCESS)
}
