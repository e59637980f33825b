//! Key epochs and their shred dates, read from the keystore directory's file names and
//! `<epoch>.shredded` records. Key files are never opened: only their names are listed.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One key epoch of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochInfo {
    /// The tenant.
    pub tenant: String,
    /// The epoch (`2026-11`, `stable`, `2026-11.r2`).
    pub epoch: String,
    /// When its key was shredded (RFC 3339), if it was.
    pub shredded_at: Option<String>,
}

fn valid_epoch(epoch: &str) -> bool {
    !epoch.is_empty()
        && epoch.len() <= 32
        && !epoch.starts_with('.')
        && epoch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// Every tenant's epochs, sorted by tenant and epoch; a missing keystore has none.
pub fn epochs(keystore: &Path) -> Vec<EpochInfo> {
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(keystore) else {
        return out;
    };
    for tenant_dir in tenants.flatten() {
        let Some(tenant) = tenant_dir.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !veil_sanitized::is_valid_tenant(&tenant) || !tenant_dir.path().is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(tenant_dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            let Some(name) = file.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(epoch) = name.strip_suffix(".key").filter(|e| valid_epoch(e)) {
                out.push(EpochInfo {
                    tenant: tenant.clone(),
                    epoch: epoch.to_owned(),
                    shredded_at: None,
                });
            } else if let Some(epoch) = name.strip_suffix(".shredded").filter(|e| valid_epoch(e)) {
                // The record holds only a time; anything else is not shown.
                let when = std::fs::read_to_string(file.path()).ok().and_then(|text| {
                    let text = text.trim().to_owned();
                    OffsetDateTime::parse(&text, &Rfc3339).ok().map(|_| text)
                });
                out.push(EpochInfo {
                    tenant: tenant.clone(),
                    epoch: epoch.to_owned(),
                    shredded_at: Some(when.unwrap_or_else(|| "unknown".to_owned())),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.tenant, &a.epoch).cmp(&(&b.tenant, &b.epoch)));
    out.dedup_by(|later, earlier| {
        // A shredded record and a leftover key of the same epoch: the shred record wins.
        if later.tenant == earlier.tenant && later.epoch == earlier.epoch {
            if earlier.shredded_at.is_none() {
                earlier.shredded_at = later.shredded_at.take();
            }
            true
        } else {
            false
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shred_times_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = dir.path().join("t-1000");
        std::fs::create_dir_all(&tenant).expect("dir");
        std::fs::write(tenant.join("2026-11.key"), [7u8; 32]).expect("key");
        std::fs::write(tenant.join("2026-08.shredded"), "2026-11-10T00:00:00Z\n").expect("record");
        std::fs::write(tenant.join("2026-09.shredded"), "not a time").expect("record");
        std::fs::write(tenant.join(".2026-12.1.2.tmp"), [1u8; 32]).expect("tmp");
        let found = epochs(dir.path());
        let summary: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|e| (e.epoch.as_str(), e.shredded_at.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("2026-08", Some("2026-11-10T00:00:00Z")),
                ("2026-09", Some("unknown")),
                ("2026-11", None)
            ]
        );
        assert!(epochs(&dir.path().join("missing")).is_empty());
    }
}
