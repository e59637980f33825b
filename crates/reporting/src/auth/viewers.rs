//! The viewers file: who may read which reports. Only SHA-256 digests of tokens are stored; a
//! presented token is hashed and compared with every viewer's digest in constant time.
//!
//! ```yaml
//! version: 1
//! viewers:
//!   - name: t1000-admin          # a label for logs, not a person's name
//!     role: tenant
//!     tenant: t-1000
//!     token_sha256: 9f86d0…       # `veil reporting token` prints a token and this line
//!   - { name: licensing, role: vendor, token_sha256: … }
//!   - { name: dpo, role: reviewer, token_sha256: … }
//! ```

use std::path::Path;

use marked_yaml::LoaderOptions;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a viewer may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A customer's administrator: that tenant's adoption dashboard only.
    Tenant(String),
    /// The vendor's product and license team: license compliance, every tenant's adoption, SQL.
    Vendor,
    /// A compliance reviewer: the allowlist audit.
    Reviewer,
}

impl Role {
    /// The role's name as the viewers file writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Tenant(_) => "tenant",
            Role::Vendor => "vendor",
            Role::Reviewer => "reviewer",
        }
    }
}

/// One viewer.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// A label for logs.
    pub name: String,
    /// What they may see.
    pub role: Role,
    digest: [u8; 32],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawViewer {
    name: String,
    role: String,
    #[serde(default)]
    tenant: Option<String>,
    token_sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    viewers: Vec<RawViewer>,
}

/// Why a viewers file is refused (never quoting a digest).
#[derive(Debug, thiserror::Error)]
pub enum ViewersError {
    /// The file cannot be read.
    #[error("cannot read viewers file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("viewers file: {0}")]
    Syntax(String),
    /// A viewer entry is invalid.
    #[error("viewers file, viewer #{index}: {message}")]
    Invalid {
        /// 1-based position.
        index: usize,
        /// What is wrong.
        message: &'static str,
    },
}

/// The SHA-256 of a token, as stored in the viewers file (64 lowercase hex digits).
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, chunk) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[index] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The loaded viewers.
#[derive(Debug, Clone, Default)]
pub struct Viewers {
    viewers: Vec<Viewer>,
}

impl Viewers {
    /// Reads and validates a viewers file.
    pub fn load(path: &Path) -> Result<Viewers, ViewersError> {
        let text = std::fs::read_to_string(path).map_err(|source| ViewersError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Viewers::parse(&text)
    }

    /// Parses viewers-file YAML.
    pub fn parse(text: &str) -> Result<Viewers, ViewersError> {
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let raw: RawFile = marked_yaml::from_yaml_with_options(0, text, options)
            .map_err(|error| ViewersError::Syntax(error.to_string()))?;
        if raw.version != 1 {
            return Err(ViewersError::Syntax(
                "field `version`: only version 1 is understood".to_owned(),
            ));
        }
        let mut viewers = Vec::with_capacity(raw.viewers.len());
        for (position, entry) in raw.viewers.into_iter().enumerate() {
            let invalid = |message| ViewersError::Invalid {
                index: position + 1,
                message,
            };
            let role = match (entry.role.as_str(), entry.tenant) {
                ("tenant", Some(tenant)) if veil_sanitized::is_valid_tenant(&tenant) => {
                    Role::Tenant(tenant)
                }
                ("tenant", _) => return Err(invalid("role `tenant` needs a valid `tenant` id")),
                ("vendor", None) => Role::Vendor,
                ("reviewer", None) => Role::Reviewer,
                ("vendor" | "reviewer", Some(_)) => {
                    return Err(invalid("only role `tenant` takes a `tenant`"));
                }
                _ => return Err(invalid("`role` must be tenant, vendor or reviewer")),
            };
            let digest = parse_hex32(&entry.token_sha256.to_ascii_lowercase())
                .ok_or_else(|| invalid("`token_sha256` must be 64 hex digits"))?;
            if viewers
                .iter()
                .any(|viewer: &Viewer| viewer.digest == digest)
            {
                return Err(invalid("two viewers share a token"));
            }
            viewers.push(Viewer {
                name: entry.name,
                role,
                digest,
            });
        }
        Ok(Viewers { viewers })
    }

    /// The viewer holding `token`: every digest is compared, in constant time, whatever matches.
    pub fn authenticate(&self, token: &str) -> Option<&Viewer> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for viewer in &self.viewers {
            if bool::from(viewer.digest.ct_eq(&presented)) {
                found = Some(viewer);
            }
        }
        found
    }

    /// How many viewers there are.
    pub fn len(&self) -> usize {
        self.viewers.len()
    }

    /// Whether nobody can log in.
    pub fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }
}

/// A new random viewer token (256 bits, hex): hand it to the viewer, store only its digest.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_digest_only() {
        let file = format!(
            "version: 1\nviewers:\n  - {{ name: a, role: tenant, tenant: t-1000, token_sha256: {} }}\n  - {{ name: v, role: vendor, token_sha256: {} }}\n",
            token_digest("tenant-token-1"),
            token_digest("vendor-token-1").to_uppercase()
        );
        let viewers = Viewers::parse(&file).expect("valid");
        assert_eq!(
            viewers.authenticate("tenant-token-1").map(|v| &v.role),
            Some(&Role::Tenant("t-1000".to_owned()))
        );
        assert_eq!(
            viewers.authenticate("vendor-token-1").map(|v| &v.role),
            Some(&Role::Vendor)
        );
        assert!(viewers.authenticate("vendor-token-2").is_none());
        assert!(viewers.authenticate("").is_none());
    }

    #[test]
    fn bad_entries_are_refused_by_position() {
        let digest = token_digest("x");
        for (text, expected) in [
            (
                format!(
                    "version: 1\nviewers:\n  - {{ name: a, role: tenant, token_sha256: {digest} }}\n"
                ),
                "tenant",
            ),
            (
                format!(
                    "version: 1\nviewers:\n  - {{ name: a, role: vendor, tenant: t-1, token_sha256: {digest} }}\n"
                ),
                "only role",
            ),
            (
                format!(
                    "version: 1\nviewers:\n  - {{ name: a, role: admin, token_sha256: {digest} }}\n"
                ),
                "`role`",
            ),
            (
                "version: 1\nviewers:\n  - { name: a, role: vendor, token_sha256: abc }\n"
                    .to_owned(),
                "64 hex",
            ),
            (
                format!(
                    "version: 1\nviewers:\n  - {{ name: a, role: vendor, token_sha256: {digest} }}\n  - {{ name: b, role: reviewer, token_sha256: {digest} }}\n"
                ),
                "share",
            ),
        ] {
            let error = Viewers::parse(&text).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains(&digest), "never quotes a digest: {error}");
        }
    }
}
