//! `veil erase --tenant T --user ID`: removes an enhanced tenant's user from the Parquet tables.
//!
//! The user's pseudonyms are computed here, with the tenant's keys of every epoch that still
//! exists (rotated ones included) and for every column the allowlist pseudonymizes in the `user`
//! domain; the processor crate rewrites the files and writes the audit record (without the id).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veil_config::TenantsFile;
use veil_gateway::pseudonym::KeyStore;
use veil_policy::{Allowlist, LeafAction};
use veil_processor::erase;
use veil_processor::store::Store;
use veil_sanitized::Tier;

use crate::settings::{Settings, init_logging};

/// The identifier domain of user ids in the allowlist.
const USER_DOMAIN: &str = "user";

#[derive(Debug, Args)]
pub(crate) struct EraseArgs {
    /// Settings file (see the README); `VEIL_*` variables override it.
    #[arg(long, default_value = "veil.toml")]
    config: PathBuf,
    /// The tenant (must be on the enhanced tier).
    #[arg(long)]
    tenant: String,
    /// The user's id as the tenant's clients send it (`userId`); never logged or stored.
    #[arg(long)]
    user: String,
    /// Parquet root, overriding `processor.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Key directory, overriding `gateway.keystore`.
    #[arg(long)]
    keystore: Option<PathBuf>,
}

pub(crate) fn run(args: EraseArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&args.config, explicit)?;
    if let Some(data_dir) = args.data_dir {
        settings.processor.data_dir = data_dir;
    }
    if let Some(keystore) = args.keystore {
        settings.gateway.keystore = keystore;
    }
    init_logging(&settings.log);
    let tenants = TenantsFile::load(&settings.gateway.tenants)
        .with_context(|| format!("{} is refused", settings.gateway.tenants.display()))?;
    let Some(tenant) = tenants.tenant(&args.tenant) else {
        anyhow::bail!(
            "tenant {} is not in {}",
            args.tenant,
            settings.gateway.tenants.display()
        );
    };
    if tenant.tier != Tier::Enhanced {
        anyhow::bail!(
            "tenant {} is on the baseline tier: its pseudonyms change every month and are \
             never linked to a person, so there is nothing to erase by user (its rows expire \
             with retention.events_days and its monthly keys are shredded after \
             retention.baseline_key_months); erasure is for enhanced tenants",
            tenant.id
        );
    }
    let allowlist = Allowlist::load(&settings.processor.allowlist)
        .with_context(|| format!("{} is refused", settings.processor.allowlist.display()))?;
    let policy = allowlist.compile();
    let columns: Vec<&str> = policy
        .leaves()
        .filter(|(_, _, action)| {
            matches!(action, LeafAction::Pseudonymize(domain) if &**domain == USER_DOMAIN)
        })
        .map(|(_, path, _)| path)
        .collect();
    if columns.is_empty() {
        anyhow::bail!("the allowlist pseudonymizes no field in the user domain: nothing to erase");
    }
    let keystore = KeyStore::open(&settings.gateway.keystore)?;
    let mut pseudonyms = HashSet::new();
    let mut shredded = 0;
    for info in keystore.list()? {
        if info.tenant != tenant.id {
            continue;
        }
        if info.shredded_at.is_some() {
            shredded += 1;
            continue;
        }
        let key = keystore.load(&tenant.id, &info.epoch)?;
        let pseudonym = key.pseudonymize(USER_DOMAIN, args.user.as_bytes());
        pseudonyms.insert(String::from_utf8_lossy(&pseudonym).into_owned());
    }
    if pseudonyms.is_empty() {
        anyhow::bail!(
            "tenant {} has no key: nothing of it can be linked to a user",
            tenant.id
        );
    }
    let store = Store::open(&settings.processor.data_dir)?;
    let at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let record = erase::erase(&store, &tenant.id, &columns, &pseudonyms, at)?;
    tracing::info!(
        tenant = %record.tenant,
        rows = record.rows_removed,
        files_rewritten = record.files_rewritten,
        files_deleted = record.files_deleted,
        "user erased"
    );
    println!(
        "tenant {}: {} rows removed ({} files rewritten, {} deleted) under {} key epochs; audit record in {}",
        record.tenant,
        record.rows_removed,
        record.files_rewritten,
        record.files_deleted,
        pseudonyms.len(),
        erase::audit_log(&store).display()
    );
    if shredded > 0 {
        println!(
            "{shredded} shredded key epochs: rows under them are no longer linkable to anyone"
        );
    }
    Ok(ExitCode::SUCCESS)
}
