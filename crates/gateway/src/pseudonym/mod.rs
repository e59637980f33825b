//! HMAC-SHA256 pseudonyms under per-tenant keys, and the keystore that holds those keys.
//!
//! A pseudonym is `HMAC-SHA256(key, domain || 0x00 || value)` truncated to 128 bits and written
//! as 22 base64url characters. The same value, tenant, epoch and domain always give the same
//! pseudonym; another tenant, epoch or domain gives an unrelated one. Once an epoch's key is
//! shredded its pseudonyms cannot be linked back to anything.

mod cache;
mod keystore;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use veil_sanitized::Tier;

pub use cache::PseudonymCache;
pub use keystore::{KeyInfo, KeyStore, KeyStoreError, is_valid_tenant};

/// Length of a pseudonym's text: 16 bytes in unpadded base64url.
pub const PSEUDONYM_LEN: usize = 22;

/// Length of a tenant key in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// A tenant's key for one epoch, keyed once so each pseudonym costs two SHA-256 blocks.
#[derive(Clone)]
pub struct EpochKey {
    epoch: String,
    keyed_mac: Hmac<Sha256>,
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl EpochKey {
    /// Makes a key for `epoch` from 32 secret bytes.
    pub fn new(epoch: impl Into<String>, secret: &[u8; KEY_LEN]) -> EpochKey {
        let keyed_mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        EpochKey {
            epoch: epoch.into(),
            keyed_mac,
        }
    }

    /// The epoch this key belongs to; sanitized messages name it.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The pseudonym of `value` in identifier domain `domain`.
    #[inline]
    pub fn pseudonymize(&self, domain: &str, value: &[u8]) -> [u8; PSEUDONYM_LEN] {
        debug_assert!(
            !domain.as_bytes().contains(&0),
            "domains never hold the separator"
        );
        let mut mac = self.keyed_mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let mut text = [0u8; PSEUDONYM_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(&digest[..16], &mut text)
            .unwrap_or_else(|_| unreachable!("16 bytes are 22 base64 characters"));
        debug_assert_eq!(written, PSEUDONYM_LEN);
        text
    }
}

/// The epoch a tier's pseudonyms belong to at `now`: the calendar month (UTC) for baseline
/// tenants, so monthly active users still count, and one stable epoch for enhanced tenants.
pub fn period_for(tier: Tier, now: OffsetDateTime) -> String {
    match tier {
        Tier::Baseline => {
            let utc = now.to_offset(time::UtcOffset::UTC);
            format!("{:04}-{:02}", utc.year(), u8::from(utc.month()))
        }
        Tier::Enhanced => "stable".to_owned(),
    }
}

#[cfg(test)]
mod tests;
