//! A directory of per-tenant keys: `DIR/<tenant>/<epoch>.key`, 32 random bytes each, readable only
//! by the owner, created on first use. Shredding overwrites and deletes a key and leaves
//! `<epoch>.shredded` with the time, so an audit can show when each epoch became anonymous and a
//! shredded epoch is never silently recreated.
//!
//! Epoch names: `YYYY-MM` (baseline) or `stable` (enhanced) for a period's first key, and
//! `<period>.rN` for the N-th key after `veil keys rotate`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veil_sanitized::Tier;

use super::{EpochKey, KEY_LEN, period_for};

/// Why the keystore could not serve a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A file operation failed.
    #[error("keystore {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The tenant id cannot name a directory safely.
    #[error(
        "tenant id must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` or `-`, not starting with `.`"
    )]
    InvalidTenant,
    /// The epoch does not exist or was shredded.
    #[error("tenant {tenant}: no key for epoch {epoch}")]
    NoSuchEpoch {
        /// The tenant id.
        tenant: String,
        /// The epoch asked for.
        epoch: String,
    },
    /// A key file does not hold a key.
    #[error("key file {path} is damaged: expected {KEY_LEN} bytes")]
    Damaged {
        /// The file concerned.
        path: String,
    },
    /// A key file is not a plain file only its owner can read, so it may be known to others.
    #[error("key file {path} is refused: {reason}")]
    Exposed {
        /// The file concerned.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub use veil_sanitized::is_valid_tenant;

/// State of one epoch's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The tenant id.
    pub tenant: String,
    /// The epoch name.
    pub epoch: String,
    /// When the key was shredded (RFC 3339), or `None` while it exists.
    pub shredded_at: Option<String>,
}

/// The key directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    root: PathBuf,
}

/// Splits `2026-11.r3` into (`2026-11`, 3); a bare period is generation 1.
fn split_epoch(epoch: &str) -> (&str, u32) {
    match epoch.rsplit_once(".r") {
        Some((period, generation)) => match generation.parse::<u32>() {
            Ok(number) if number >= 2 => (period, number),
            _ => (epoch, 1),
        },
        None => (epoch, 1),
    }
}

fn epoch_name(period: &str, generation: u32) -> String {
    if generation == 1 {
        period.to_owned()
    } else {
        format!("{period}.r{generation}")
    }
}

/// Months between a `YYYY-MM` period and `now`'s month; `None` for periods that are not months.
fn months_before(period: &str, now: OffsetDateTime) -> Option<i64> {
    let (year, month) = period.split_once('-')?;
    let (year, month): (i64, i64) = (year.parse().ok()?, month.parse().ok()?);
    if year < 1970 || !(1..=12).contains(&month) || period.len() != 7 {
        return None;
    }
    let now = now.to_offset(time::UtcOffset::UTC);
    Some((i64::from(now.year()) * 12 + i64::from(u8::from(now.month()))) - (year * 12 + month))
}

impl KeyStore {
    /// Opens (creating if needed) a keystore directory only the owner can enter.
    pub fn open(root: impl Into<PathBuf>) -> Result<KeyStore, KeyStoreError> {
        let root = root.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(io_error(&root))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(io_error(&root))?;
        Ok(KeyStore { root })
    }

    fn tenant_dir(&self, tenant: &str) -> Result<PathBuf, KeyStoreError> {
        if !is_valid_tenant(tenant) {
            return Err(KeyStoreError::InvalidTenant);
        }
        Ok(self.root.join(tenant))
    }

    /// Epochs of a tenant with their generation and whether they were shredded.
    fn epochs(&self, tenant: &str) -> Result<Vec<(String, Option<String>)>, KeyStoreError> {
        let dir = self.tenant_dir(tenant)?;
        let mut found: Vec<(String, Option<String>)> = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(error) => return Err(io_error(&dir)(error)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(epoch) = file_name.strip_suffix(".key") {
                if !epoch.starts_with('.') {
                    found.push((epoch.to_owned(), None));
                }
            } else if let Some(epoch) = file_name.strip_suffix(".shredded") {
                let when = fs::read_to_string(entry.path()).map_err(io_error(&entry.path()))?;
                found.push((epoch.to_owned(), Some(when.trim().to_owned())));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The key pseudonyms of `tenant` get at `now`, created on first use.
    pub fn current(
        &self,
        tenant: &str,
        tier: Tier,
        now: OffsetDateTime,
    ) -> Result<EpochKey, KeyStoreError> {
        let period = period_for(tier, now);
        let epochs = self.epochs(tenant)?;
        let of_period = epochs
            .iter()
            .filter(|(epoch, _)| split_epoch(epoch).0 == period);
        let newest = of_period.max_by_key(|(epoch, _)| split_epoch(epoch).1);
        match newest {
            Some((epoch, None)) => self.load(tenant, epoch),
            Some((epoch, Some(_))) => {
                self.create(tenant, &epoch_name(&period, split_epoch(epoch).1 + 1))
            }
            None => self.create(tenant, &period),
        }
    }

    /// The key of a named epoch, if it still exists.
    pub fn load(&self, tenant: &str, epoch: &str) -> Result<EpochKey, KeyStoreError> {
        let path = self.tenant_dir(tenant)?.join(format!("{epoch}.key"));
        let exposed = |reason| KeyStoreError::Exposed {
            path: path.display().to_string(),
            reason,
        };
        // Not followed through a link, not read from a pipe (which would block), not used when
        // others could have read it: a key others may know pseudonymizes nothing.
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(exposed("it is a symbolic link"));
            }
            Ok(metadata) if !metadata.is_file() => return Err(exposed("it is not a plain file")),
            Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => {
                return Err(exposed(
                    "others than its owner may read or write it (chmod 600 it)",
                ));
            }
            _ => {}
        }
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(KeyStoreError::NoSuchEpoch {
                    tenant: tenant.to_owned(),
                    epoch: epoch.to_owned(),
                });
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        let mut secret = [0u8; KEY_LEN];
        let mut extra = [0u8; 1];
        file.read_exact(&mut secret)
            .map_err(|_| KeyStoreError::Damaged {
                path: path.display().to_string(),
            })?;
        if file.read(&mut extra).map_err(io_error(&path))? != 0 {
            return Err(KeyStoreError::Damaged {
                path: path.display().to_string(),
            });
        }
        Ok(EpochKey::new(epoch, &secret))
    }

    /// Creates a fresh random key for `epoch`; if another process created it first, uses theirs.
    fn create(&self, tenant: &str, epoch: &str) -> Result<EpochKey, KeyStoreError> {
        let dir = self.tenant_dir(tenant)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;
        let mut secret = [0u8; KEY_LEN];
        getrandom::fill(&mut secret)
            .map_err(|error| io_error(&dir)(io::Error::other(error.to_string())))?;
        let final_path = dir.join(format!("{epoch}.key"));
        // Unique per process and per call: threads of one process may race to create a key too.
        static CREATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let creation = CREATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = dir.join(format!(".{epoch}.{}.{creation}.tmp", std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&secret)?;
            file.sync_all()
        })();
        written.map_err(io_error(&temporary))?;
        // A hard link never replaces an existing key: the first creator wins, atomically.
        let linked = fs::hard_link(&temporary, &final_path);
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                File::open(&dir)
                    .and_then(|dir_handle| dir_handle.sync_all())
                    .map_err(io_error(&dir))?;
                Ok(EpochKey::new(epoch, &secret))
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => self.load(tenant, epoch),
            Err(error) => Err(io_error(&final_path)(error)),
        }
    }

    /// Starts a new key for the tenant's current period; older pseudonyms no longer link to new ones.
    pub fn rotate(
        &self,
        tenant: &str,
        tier: Tier,
        now: OffsetDateTime,
    ) -> Result<EpochKey, KeyStoreError> {
        let current = self.current(tenant, tier, now)?;
        let (period, generation) = split_epoch(current.epoch());
        self.create(tenant, &epoch_name(period, generation + 1))
    }

    /// Destroys one epoch's key: overwritten, synced, deleted, and the shred time recorded.
    pub fn shred(
        &self,
        tenant: &str,
        epoch: &str,
        now: OffsetDateTime,
    ) -> Result<(), KeyStoreError> {
        let dir = self.tenant_dir(tenant)?;
        let path = dir.join(format!("{epoch}.key"));
        let mut file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(KeyStoreError::NoSuchEpoch {
                    tenant: tenant.to_owned(),
                    epoch: epoch.to_owned(),
                });
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        file.write_all(&[0u8; KEY_LEN])
            .and_then(|()| file.sync_all())
            .map_err(io_error(&path))?;
        drop(file);
        let when = now.format(&Rfc3339).unwrap_or_default();
        let record = dir.join(format!("{epoch}.shredded"));
        fs::write(&record, format!("{when}\n")).map_err(io_error(&record))?;
        fs::remove_file(&path).map_err(io_error(&path))?;
        File::open(&dir)
            .and_then(|dir_handle| dir_handle.sync_all())
            .map_err(io_error(&dir))
    }

    /// Shreds every monthly key `retain_months` or more months before `now`'s month.
    pub fn shred_expired(
        &self,
        now: OffsetDateTime,
        retain_months: u32,
    ) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let mut shredded = Vec::new();
        for info in self.list()? {
            if info.shredded_at.is_some() {
                continue;
            }
            let expired = months_before(split_epoch(&info.epoch).0, now)
                .is_some_and(|age| age >= i64::from(retain_months));
            if expired {
                self.shred(&info.tenant, &info.epoch, now)?;
                shredded.push(KeyInfo {
                    shredded_at: now.format(&Rfc3339).ok(),
                    ..info
                });
            }
        }
        Ok(shredded)
    }

    /// Every tenant's epochs, existing and shredded, sorted by tenant and epoch.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let mut infos = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(io_error(&self.root))?;
        let mut tenants: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && is_valid_tenant(&name) {
                tenants.push(name);
            }
        }
        tenants.sort();
        for tenant in tenants {
            for (epoch, shredded_at) in self.epochs(&tenant)? {
                infos.push(KeyInfo {
                    tenant: tenant.clone(),
                    epoch,
                    shredded_at,
                });
            }
        }
        Ok(infos)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn keys_are_created_once_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path().join("keys")).expect("open");
        let now = datetime!(2026-11-23 12:00 UTC);
        let first = store.current("t-1", Tier::Baseline, now).expect("create");
        let again = KeyStore::open(dir.path().join("keys"))
            .expect("reopen")
            .current("t-1", Tier::Baseline, now)
            .expect("load");
        assert_eq!(first.epoch(), "2026-11");
        assert_eq!(
            first.pseudonymize("user", b"u"),
            again.pseudonymize("user", b"u")
        );
        let mode = fs::metadata(dir.path().join("keys/t-1/2026-11.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path().join("keys"))
            .expect("root")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let other = store
            .current("t-2", Tier::Baseline, now)
            .expect("other tenant");
        assert_ne!(
            first.pseudonymize("user", b"u"),
            other.pseudonymize("user", b"u")
        );
    }

    #[test]
    fn months_get_new_keys_and_enhanced_is_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path()).expect("open");
        let november = store
            .current("t-1", Tier::Baseline, datetime!(2026-11-30 23:00 UTC))
            .expect("nov");
        let december = store
            .current("t-1", Tier::Baseline, datetime!(2026-12-01 01:00 UTC))
            .expect("dec");
        assert_eq!(december.epoch(), "2026-12");
        assert_ne!(
            november.pseudonymize("user", b"u"),
            december.pseudonymize("user", b"u")
        );
        let stable_nov = store
            .current("t-9", Tier::Enhanced, datetime!(2026-11-30 23:00 UTC))
            .expect("stable");
        let stable_dec = store
            .current("t-9", Tier::Enhanced, datetime!(2027-03-01 01:00 UTC))
            .expect("stable");
        assert_eq!(
            stable_nov.pseudonymize("user", b"u"),
            stable_dec.pseudonymize("user", b"u")
        );
    }

    #[test]
    fn rotation_and_shredding_unlink_pseudonyms_and_are_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path()).expect("open");
        let now = datetime!(2026-11-10 00:00 UTC);
        let original = store.current("t-1", Tier::Enhanced, now).expect("stable");
        let rotated = store.rotate("t-1", Tier::Enhanced, now).expect("rotate");
        assert_eq!(rotated.epoch(), "stable.r2");
        assert_eq!(
            store
                .current("t-1", Tier::Enhanced, now)
                .expect("current")
                .epoch(),
            "stable.r2"
        );
        assert_ne!(
            original.pseudonymize("user", b"u"),
            rotated.pseudonymize("user", b"u")
        );

        store
            .current("t-1", Tier::Baseline, datetime!(2026-07-02 00:00 UTC))
            .expect("july");
        store
            .current("t-1", Tier::Baseline, datetime!(2026-09-02 00:00 UTC))
            .expect("september");
        let shredded = store.shred_expired(now, 3).expect("retention");
        let epochs: Vec<&str> = shredded.iter().map(|info| info.epoch.as_str()).collect();
        assert_eq!(
            epochs,
            ["2026-07"],
            "september is within three months, stable never expires"
        );
        assert!(matches!(
            store.load("t-1", "2026-07"),
            Err(KeyStoreError::NoSuchEpoch { .. })
        ));
        assert!(!dir.path().join("t-1/2026-07.key").exists());
        let listed = store.list().expect("list");
        let july = listed
            .iter()
            .find(|info| info.epoch == "2026-07")
            .expect("audit record");
        assert_eq!(july.shredded_at.as_deref(), Some("2026-11-10T00:00:00Z"));
        // A shredded period is never silently recreated under its old name.
        let again = store
            .current("t-1", Tier::Baseline, datetime!(2026-07-20 00:00 UTC))
            .expect("new generation");
        assert_eq!(again.epoch(), "2026-07.r2");
    }

    #[test]
    fn tenant_ids_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = KeyStore::open(dir.path()).expect("open");
        for tenant in ["../x", "", ".hidden", "a/b", "t 1"] {
            assert!(matches!(
                store.current(tenant, Tier::Baseline, OffsetDateTime::now_utc()),
                Err(KeyStoreError::InvalidTenant)
            ));
        }
    }
}
