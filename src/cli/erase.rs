//! `veil erase --tenant T --user ID [--anonymous-id ID …]`: removes an enhanced tenant's person
//! from the Parquet tables.
//!
//! The person's pseudonyms are computed here, with the tenant's keys of every epoch that still
//! exists (rotated ones included), in the identifier domains the allowlist gives `userId` and
//! `anonymousId`, and matched against every column the allowlist pseudonymizes in that domain;
//! the processor crate rewrites the files and writes the audit record (without any id).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veil_config::TenantsFile;
use veil_gateway::pseudonym::{
    KeyStore, is_placeholder_identifier, nfc_respelling, nfd_respelling,
};
use veil_policy::{Allowlist, LeafAction, Policy};
use veil_processor::erase::{self, ErasureTarget};
use veil_processor::store::Store;
use veil_sanitized::Tier;

use crate::settings::{Settings, init_logging};

/// The fields whose identifier domains erasure computes pseudonyms in.
const USER_ID: &str = "userId";
const ANONYMOUS_ID: &str = "anonymousId";

#[derive(Debug, Args)]
pub(crate) struct EraseArgs {
    /// Settings file (see the README); `VEIL_*` variables override it.
    #[arg(long, default_value = "veil.toml")]
    config: PathBuf,
    /// The tenant (must be on the enhanced tier).
    #[arg(long)]
    tenant: String,
    /// The user's id as the tenant's clients send it (`userId`); never logged or stored.
    #[arg(long, required_unless_present = "anonymous_id")]
    user: Option<String>,
    /// An anonymous id of the same person (`anonymousId`: what a device sends before sign-in,
    /// also the `previousId` of an alias); repeatable; never logged or stored.
    #[arg(long = "anonymous-id")]
    anonymous_id: Vec<String>,
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
    let user_domain = domain_of(&policy, USER_ID)
        .context("the allowlist does not pseudonymize userId: nothing to erase by user")?;
    let anonymous_domain = domain_of(&policy, ANONYMOUS_ID);
    if !args.anonymous_id.is_empty() && anonymous_domain.is_none() {
        anyhow::bail!("the allowlist does not pseudonymize anonymousId: nothing to erase by it");
    }
    // The gateway never stores an empty or placeholder id (it counts as none), so one here is a
    // slip.
    if args
        .user
        .iter()
        .chain(&args.anonymous_id)
        .any(|id| is_placeholder_identifier(id))
    {
        anyhow::bail!(
            "an empty or placeholder id (blank, `undefined`, `null`, …) names nobody: the gateway \
             never stores one"
        );
    }
    // Each identifier, in each domain it can be stored under: the user id as a user; an anonymous
    // id as itself and, as an alias's `previousId`, in the user domain too.
    let mut identifiers: Vec<(&str, &[u8])> = Vec::new();
    if let Some(user) = &args.user {
        identifiers.push((user_domain, user.as_bytes()));
    }
    for anonymous_id in &args.anonymous_id {
        identifiers.push((user_domain, anonymous_id.as_bytes()));
        if let Some(domain) = anonymous_domain {
            identifiers.push((domain, anonymous_id.as_bytes()));
        }
    }
    // A mistyped path must not turn an erasure into an audited no-op.
    super::require_dir("data directory", &settings.processor.data_dir)?;
    super::require_dir("keystore", &settings.gateway.keystore)?;
    // Every spelling of each identifier: as given, composed (how the gateway pseudonymizes
    // identifiers) and decomposed (how a gateway before NFC pseudonyms may have stored a client's).
    let spellings: Vec<(&str, Vec<u8>)> = identifiers
        .iter()
        .flat_map(|(domain, identifier)| {
            let respellings = [nfc_respelling(identifier), nfd_respelling(identifier)];
            let respellings = respellings.into_iter().flatten().map(String::into_bytes);
            std::iter::once(identifier.to_vec())
                .chain(respellings)
                .map(move |spelling| (*domain, spelling))
        })
        .collect();
    let keystore = KeyStore::open(&settings.gateway.keystore)?;
    let mut pseudonyms: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    let mut epochs = 0;
    let mut shredded = 0;
    for info in keystore.list()? {
        if info.tenant != tenant.id {
            continue;
        }
        if info.shredded_at.is_some() {
            shredded += 1;
            continue;
        }
        epochs += 1;
        let key = keystore.load(&tenant.id, &info.epoch)?;
        for (domain, spelling) in &spellings {
            let pseudonym = key.pseudonymize(domain, spelling);
            pseudonyms
                .entry(domain)
                .or_default()
                .insert(String::from_utf8_lossy(&pseudonym).into_owned());
        }
    }
    if epochs == 0 {
        anyhow::bail!(
            "tenant {} has no key: nothing of it can be linked to a person",
            tenant.id
        );
    }
    let targets: Vec<ErasureTarget<'_>> = pseudonyms
        .into_iter()
        .map(|(domain, pseudonyms)| ErasureTarget {
            columns: columns_in(&policy, domain),
            pseudonyms,
        })
        .collect();
    let store = Store::open(&settings.processor.data_dir)?;
    let at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let record = erase::erase(&store, &tenant.id, &targets, at)?;
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
        epochs,
        erase::audit_log(&store).display()
    );
    if shredded > 0 {
        println!(
            "{shredded} shredded key epochs: rows under them are no longer linkable to anyone"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The identifier domain the allowlist pseudonymizes `path` in (the first rule that names it).
fn domain_of<'p>(policy: &'p Policy, path: &str) -> Option<&'p str> {
    policy.leaves().find_map(|(_, leaf, action)| match action {
        LeafAction::Pseudonymize(domain) if leaf == path => Some(&**domain),
        _ => None,
    })
}

/// Every field the allowlist pseudonymizes in `domain`.
fn columns_in<'p>(policy: &'p Policy, domain: &str) -> Vec<&'p str> {
    let mut columns: Vec<&str> = policy
        .leaves()
        .filter(
            |(_, _, action)| matches!(action, LeafAction::Pseudonymize(own) if &**own == domain),
        )
        .map(|(_, path, _)| path)
        .collect();
    columns.sort_unstable();
    columns.dedup();
    columns
}
