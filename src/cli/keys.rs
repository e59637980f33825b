//! `veil keys list|rotate|shred`: the per-tenant pseudonymization keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use time::OffsetDateTime;
use veil_config::TenantsFile;
use veil_gateway::pseudonym::KeyStore;
use veil_sanitized::Tier;

use crate::settings::Settings;

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
        /// Settings file (its tenants file names the tenant and its tier); `VEIL_*` variables
        /// override it.
        #[arg(long, default_value = "veil.toml")]
        config: PathBuf,
        /// Directory of per-tenant keys, overriding `gateway.keystore`.
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// The tenant id, as the tenants file lists it.
        #[arg(long)]
        tenant: String,
        /// The tenant's tier, as a check: the tenants file decides it (baseline keys are
        /// monthly, enhanced keys stable), and a different one is refused.
        #[arg(long)]
        tier: Option<Tier>,
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

/// The keystore and tier a rotation for `tenant` uses: only a tenant the tenants file lists
/// gets a key (a mistyped id would otherwise start a key nobody uses), on the tier the file
/// gives it (a baseline tenant rotated as enhanced would get a stable key).
fn rotation_target(
    config: &Path,
    keystore: Option<PathBuf>,
    tenant: &str,
    asked_tier: Option<Tier>,
) -> anyhow::Result<(PathBuf, Tier)> {
    let explicit = config != Path::new("veil.toml");
    let settings = Settings::load(config, explicit)?;
    let tenants = TenantsFile::load(&settings.gateway.tenants)
        .with_context(|| format!("{} is refused", settings.gateway.tenants.display()))?;
    let Some(listed) = tenants.tenant(tenant) else {
        anyhow::bail!(
            "tenant {tenant} is not in {}",
            settings.gateway.tenants.display()
        );
    };
    if let Some(asked_tier) = asked_tier
        && asked_tier != listed.tier
    {
        anyhow::bail!(
            "tenant {tenant} is on the {} tier in {}, not {}",
            listed.tier.as_str(),
            settings.gateway.tenants.display(),
            asked_tier.as_str()
        );
    }
    Ok((keystore.unwrap_or(settings.gateway.keystore), listed.tier))
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
            config,
            keystore,
            tenant,
            tier,
        } => {
            let (keystore, tier) = rotation_target(&config, keystore, &tenant, tier)?;
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
