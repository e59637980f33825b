//! `veil keys list|rotate|shred`: the per-tenant pseudonymization keys.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use time::OffsetDateTime;
use veil_gateway::pseudonym::KeyStore;
use veil_sanitized::Tier;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List every tenant's key epochs, existing and shredded (never the keys).
    List {
        /// Directory of per-tenant keys.
        #[arg(long, default_value_os_t = super::default_keystore())]
        keystore: PathBuf,
    },
    /// Start a new key for a tenant's current epoch: later pseudonyms do not link to earlier ones.
    Rotate {
        /// Directory of per-tenant keys.
        #[arg(long, default_value_os_t = super::default_keystore())]
        keystore: PathBuf,
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The tenant's tier (baseline keys are monthly, enhanced keys stable).
        #[arg(long, default_value = "baseline")]
        tier: Tier,
    },
    /// Destroy keys: one epoch of one tenant, or every monthly key past the retention period.
    Shred {
        /// Directory of per-tenant keys.
        #[arg(long, default_value_os_t = super::default_keystore())]
        keystore: PathBuf,
        /// The tenant id (with --epoch).
        #[arg(long, requires = "epoch", conflicts_with = "expired")]
        tenant: Option<String>,
        /// The epoch to destroy (with --tenant).
        #[arg(long, requires = "tenant")]
        epoch: Option<String>,
        /// Destroy every baseline key at least --retain-months months old.
        #[arg(long, required_unless_present = "tenant")]
        expired: bool,
        /// Months of baseline keys to keep, counting the current one.
        #[arg(long, default_value_t = 3)]
        retain_months: u32,
    },
}

/// The keystore at `path`, which must exist: listing or shredding a mistyped path is an error,
/// not an empty keystore.
fn existing_keystore(path: &std::path::Path) -> anyhow::Result<KeyStore> {
    super::require_dir("keystore", path)?;
    Ok(KeyStore::open(path)?)
}

pub(crate) fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    match command {
        KeysCommand::List { keystore } => {
            let store = existing_keystore(&keystore)?;
            println!("{:<24} {:<16} state", "tenant", "epoch");
            for info in store.list()? {
                let state = info
                    .shredded_at
                    .map_or_else(|| "active".to_owned(), |at| format!("shredded {at}"));
                println!("{:<24} {:<16} {state}", info.tenant, info.epoch);
            }
        }
        KeysCommand::Rotate {
            keystore,
            tenant,
            tier,
        } => {
            let key = KeyStore::open(&keystore)?.rotate(&tenant, tier, now)?;
            println!("tenant {tenant}: new key epoch {}", key.epoch());
        }
        KeysCommand::Shred {
            keystore,
            tenant,
            epoch,
            expired,
            retain_months,
        } => {
            if expired && retain_months == 0 {
                anyhow::bail!(
                    "--retain-months counts the current month: 0 would shred the keys in use"
                );
            }
            let store = existing_keystore(&keystore)?;
            if let (Some(tenant), Some(epoch)) = (tenant, epoch) {
                store.shred(&tenant, &epoch, now)?;
                println!("tenant {tenant}: shredded key epoch {epoch}");
            }
            if expired {
                for info in store.shred_expired(now, retain_months)? {
                    println!("tenant {}: shredded key epoch {}", info.tenant, info.epoch);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
