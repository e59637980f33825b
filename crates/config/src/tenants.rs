//! The tenants file: which write key belongs to which tenant, with the tenant's tier (and the
//! consent record behind an `enhanced` tier), data region and licensed seats.
//!
//! Tenant ids are opaque (`t-1000`), never company names. Write keys are looked up by their
//! SHA-256 and then compared in constant time, so response timing says nothing about a key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use marked_yaml::LoaderOptions;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use veil_sanitized::{Tier, is_valid_tenant};

use crate::Region;

/// Shortest write key accepted; Segment's are 32 characters.
const MIN_WRITE_KEY_LEN: usize = 8;

/// Why a tenants file is refused. Messages name tenants by position or id, never write keys.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// The file cannot be read.
    #[error("cannot read tenants file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid YAML of the expected shape.
    #[error("tenants file: {0}")]
    Syntax(String),
    /// Valid YAML, invalid content.
    #[error("tenants file, tenant #{index}: {message}")]
    Invalid {
        /// 1-based position in `tenants`.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Who opted a tenant in to the `enhanced` tier, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// The customer's role or reference that gave consent (a role or ticket, not a person's name).
    pub by: String,
    /// When consent was given.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One tenant as the tenants file declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Opaque tenant id.
    pub id: String,
    /// Write keys the tenant's clients send; several allow rotation without downtime.
    #[serde(skip_serializing)]
    pub write_keys: Vec<String>,
    /// Collection tier.
    pub tier: Tier,
    /// Required for `enhanced`: the opt-in record.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// Where the tenant's data lives.
    pub region: Region,
    /// Licensed seats per product (the client application name, as `context.app.name` says it).
    #[serde(default)]
    pub seats: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    tenants: Vec<Tenant>,
}

/// A validated tenants file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantsFile {
    /// Tenants in file order.
    pub tenants: Vec<Tenant>,
}

impl TenantsFile {
    /// Reads and validates a tenants file.
    pub fn load(path: &Path) -> Result<TenantsFile, TenantsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        TenantsFile::parse(&text)
    }

    /// Parses and validates tenants-file YAML.
    pub fn parse(text: &str) -> Result<TenantsFile, TenantsError> {
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let raw: RawFile = marked_yaml::from_yaml_with_options(0, text, options)
            .map_err(|error| TenantsError::Syntax(error.to_string()))?;
        if raw.version != 1 {
            return Err(TenantsError::Syntax(
                "field `version`: only version 1 is understood".to_owned(),
            ));
        }
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for (position, tenant) in raw.tenants.iter().enumerate() {
            let invalid = |message: &str| TenantsError::Invalid {
                index: position + 1,
                message: message.to_owned(),
            };
            if !is_valid_tenant(&tenant.id) {
                return Err(invalid(
                    "`id` must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` or `-`",
                ));
            }
            if !ids.insert(tenant.id.as_str()) {
                return Err(invalid("`id` repeats an earlier tenant's id"));
            }
            if tenant.write_keys.is_empty() {
                return Err(invalid("`write_keys` must name at least one key"));
            }
            for key in &tenant.write_keys {
                if key.len() < MIN_WRITE_KEY_LEN || !key.bytes().all(|byte| byte.is_ascii_graphic())
                {
                    return Err(invalid(
                        "a write key must be at least 8 printable ASCII characters without spaces",
                    ));
                }
                if !keys.insert(key.as_str()) {
                    return Err(invalid("a write key is used twice in the file"));
                }
            }
            match (tenant.tier, &tenant.consent) {
                (Tier::Enhanced, None) => {
                    return Err(invalid(
                        "tier `enhanced` needs a `consent` record (`by`, `at`)",
                    ));
                }
                (_, Some(consent)) if consent.by.trim().is_empty() => {
                    return Err(invalid("`consent.by` must not be empty"));
                }
                _ => {}
            }
        }
        Ok(TenantsFile {
            tenants: raw.tenants,
        })
    }

    /// The tenant with id `id`.
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|tenant| tenant.id == id)
    }

    /// An index from write key to tenant.
    pub fn write_key_index(&self) -> WriteKeyIndex {
        let mut by_digest = HashMap::new();
        for (position, tenant) in self.tenants.iter().enumerate() {
            for key in &tenant.write_keys {
                by_digest.insert(digest(key.as_bytes()), (key.as_bytes().to_vec(), position));
            }
        }
        WriteKeyIndex {
            tenants: self.tenants.clone(),
            by_digest,
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Finds a write key's tenant without timing that depends on how much of a key matched.
#[derive(Debug, Clone)]
pub struct WriteKeyIndex {
    tenants: Vec<Tenant>,
    by_digest: HashMap<[u8; 32], (Vec<u8>, usize)>,
}

impl WriteKeyIndex {
    /// The tenant whose write key `key` is.
    pub fn lookup(&self, key: &[u8]) -> Option<&Tenant> {
        let (known, position) = self.by_digest.get(&digest(key))?;
        bool::from(known.as_slice().ct_eq(key)).then(|| &self.tenants[*position])
    }

    /// Every tenant.
    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "version: 1
tenants:
  - id: t-1000
    write_keys: [wk_t1000_primary, wk_t1000_rotated]
    tier: baseline
    region: us
    seats: { DMS Desktop: 200, DMS Web: 250 }
  - id: t-1001
    write_keys: [wk_t1001_primary]
    tier: enhanced
    consent: { by: \"customer admin, ticket CS-4711\", at: 2026-10-01T09:00:00Z }
    region: eu
";

    #[test]
    fn write_keys_find_their_tenant_and_nothing_else() {
        let file = TenantsFile::parse(FILE).expect("valid");
        let index = file.write_key_index();
        assert_eq!(
            index.lookup(b"wk_t1000_rotated").map(|t| t.id.as_str()),
            Some("t-1000")
        );
        let enhanced = index.lookup(b"wk_t1001_primary").expect("known");
        assert_eq!(
            (enhanced.tier, enhanced.region),
            (Tier::Enhanced, Region::Eu)
        );
        assert_eq!(enhanced.consent.as_ref().map(|c| c.at.year()), Some(2026));
        assert!(index.lookup(b"wk_t1000_primar").is_none());
        assert!(index.lookup(b"").is_none());
        assert_eq!(file.tenant("t-1000").map(|t| t.seats["DMS Web"]), Some(250));
    }

    #[test]
    fn invalid_files_are_refused_without_echoing_keys() {
        let cases = [
            (FILE.replace("t-1001", "t-1000"), "repeats"),
            (FILE.replace("wk_t1001_primary", "wk_t1000_primary"), "used twice"),
            (FILE.replace("    consent: { by: \"customer admin, ticket CS-4711\", at: 2026-10-01T09:00:00Z }\n", ""), "consent"),
            (FILE.replace("wk_t1001_primary", "short"), "at least 8"),
            (FILE.replace("id: t-1000", "id: Hartwell & Moss"), "`id` must be"),
            (FILE.replace("region: eu", "region: mars"), "unknown variant"),
            (FILE.replace("version: 1", "version: 2"), "version"),
        ];
        for (text, expected) in cases {
            let error = TenantsFile::parse(&text).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("wk_t1"), "no write key in {error}");
        }
    }
}
