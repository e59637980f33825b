//! Command-line interface: one subcommand per module.

mod allowlist;
mod config;
mod erase;
mod filter;
mod gateway;
mod keys;
mod processor;
mod reporting;
mod retention;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Veil: privacy-preserving usage analytics.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dry run: sanitize Segment messages from stdin to stdout under an allowlist.
    Filter(filter::FilterArgs),
    /// Validate an allowlist, or show what a new one lets out.
    #[command(subcommand)]
    Allowlist(allowlist::AllowlistCommand),
    /// Run the Segment-compatible ingest API that publishes sanitized events to Kafka.
    Gateway(gateway::GatewayArgs),
    /// Consume sanitized events and store them as deduplicated, exactly-once Parquet.
    Processor(processor::ProcessorArgs),
    /// Serve the adoption, license-compliance and allowlist-audit dashboards.
    Reporting(reporting::ReportingArgs),
    /// Show the effective settings (`veil.toml` plus `VEIL_*` overrides).
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run gateway, processor and reporting in one process (embedded broker unless Kafka is set).
    Up(up::UpArgs),
    /// Apply retention: delete expired table partitions, shred expired baseline keys.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Remove an enhanced tenant's person (by user id and/or anonymous ids) from the stored tables (audited, without any id).
    Erase(erase::EraseArgs),
    /// Manage per-tenant pseudonymization keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Fails unless `dir` exists: commands that work on existing data treat a mistyped path as an
/// error, never as an empty store reported as done (and never create it).
pub(crate) fn require_dir(what: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("{what} {} does not exist", dir.display());
    }
    Ok(())
}

/// Where keys live unless `--keystore` says otherwise.
pub(crate) fn default_keystore() -> PathBuf {
    PathBuf::from("veil-data/keys")
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Filter(args) => filter::run(args),
        Command::Allowlist(command) => allowlist::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Gateway(args) => gateway::run(args),
        Command::Processor(args) => processor::run(args),
        Command::Retention(command) => retention::run(command),
        Command::Erase(args) => erase::run(args),
        Command::Reporting(args) => reporting::run(args),
        Command::Up(args) => up::run(args),
        Command::Config(command) => config::run(command),
    }
}
