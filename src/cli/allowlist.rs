//! `veil allowlist check|diff`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use veil_gateway::allowlist::{Allowlist, widenings};

#[derive(Debug, Subcommand)]
pub(crate) enum AllowlistCommand {
    /// Validate an allowlist and print its SHA-256 digest.
    Check {
        /// The allowlist file.
        #[arg(default_value = "allowlist.yaml")]
        file: PathBuf,
    },
    /// Print what NEW lets out that OLD did not; exits 1 if anything.
    Diff {
        /// The allowlist in force.
        old: PathBuf,
        /// The proposed allowlist.
        new: PathBuf,
    },
}

pub(crate) fn run(command: AllowlistCommand) -> anyhow::Result<ExitCode> {
    match command {
        AllowlistCommand::Check { file } => {
            let allowlist =
                Allowlist::load(&file).with_context(|| format!("{} is refused", file.display()))?;
            let events = allowlist
                .names
                .iter()
                .filter(|name| name.kind == veil_sanitized::MessageKind::Track)
                .count();
            println!("{}", allowlist.digest);
            eprintln!(
                "{}: valid; {} field rules, {} track events, {} message types",
                file.display(),
                allowlist.fields.len(),
                events,
                allowlist.kinds.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        AllowlistCommand::Diff { old, new } => {
            let before =
                Allowlist::load(&old).with_context(|| format!("{} is refused", old.display()))?;
            let after =
                Allowlist::load(&new).with_context(|| format!("{} is refused", new.display()))?;
            let found = widenings(&before, &after);
            if found.is_empty() {
                println!(
                    "{} lets out nothing that {} did not",
                    new.display(),
                    old.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for widening in &found {
                println!("{widening}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
