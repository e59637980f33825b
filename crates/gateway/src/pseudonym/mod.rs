//! HMAC-SHA256 pseudonyms under per-tenant keys, and the keystore that holds those keys.
//!
//! A pseudonym is `HMAC-SHA256(key, domain || 0x00 || value)` truncated to 128 bits and written
//! as 22 base64url characters; an identifier's text is in Unicode NFC first
//! ([`EpochKey::pseudonymize_identifier`]). The same value, tenant, epoch and domain always give the same
//! pseudonym; another tenant, epoch or domain gives an unrelated one. Once an epoch's key is
//! shredded its pseudonyms cannot be linked back to anything.

mod cache;
mod keystore;

use sha2::Sha256VarCore;
use sha2::digest::core_api::{Buffer, UpdateCore, VariableOutputCore};
use sha2::digest::generic_array::GenericArray;
use time::OffsetDateTime;
use veil_sanitized::Tier;

pub use cache::PseudonymCache;
pub use keystore::{KeyInfo, KeyStore, KeyStoreError, is_valid_tenant};

/// Length of a pseudonym's text: 16 bytes in unpadded base64url.
pub const PSEUDONYM_LEN: usize = 22;

/// Length of a tenant key in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// SHA-256's block size in bytes (HMAC pads its key to one block).
const BLOCK_LEN: usize = 64;

/// A tenant's key for one epoch, keyed once so each pseudonym costs two SHA-256 blocks.
///
/// HMAC (RFC 2104) at the level of SHA-256's compression function: the key's inner
/// (`key ^ 0x36..`) and outer (`key ^ 0x5c..`) blocks are compressed once here, and each
/// pseudonym clones those two 40-byte states instead of a whole keyed `Hmac` (buffers and all).
/// Tests check every input length against the `hmac` crate.
#[derive(Clone)]
pub struct EpochKey {
    epoch: String,
    /// SHA-256 state after the inner padded key block.
    inner: Sha256VarCore,
    /// SHA-256 state after the outer padded key block.
    outer: Sha256VarCore,
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
        let keyed_state = |pad: u8| {
            let mut block = GenericArray::from([pad; BLOCK_LEN]);
            for (byte, key_byte) in block.iter_mut().zip(secret) {
                *byte ^= key_byte;
            }
            let mut state = Sha256VarCore::new(32)
                .unwrap_or_else(|_| unreachable!("SHA-256 has 32-byte output"));
            state.update_blocks(std::slice::from_ref(&block));
            state
        };
        EpochKey {
            epoch: epoch.into(),
            inner: keyed_state(0x36),
            outer: keyed_state(0x5c),
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
        let mut inner = self.inner.clone();
        let mut buffer = Buffer::<Sha256VarCore>::default();
        let mut absorb = |bytes: &[u8]| {
            buffer.digest_blocks(bytes, |blocks| inner.update_blocks(blocks));
        };
        absorb(domain.as_bytes());
        absorb(&[0]);
        absorb(value);
        let mut digest = GenericArray::default();
        inner.finalize_variable_core(&mut buffer, &mut digest);
        let mut outer = self.outer.clone();
        let mut buffer = Buffer::<Sha256VarCore>::new(&digest);
        outer.finalize_variable_core(&mut buffer, &mut digest);
        let mut truncated = [0u8; 16];
        truncated.copy_from_slice(&digest[..16]);
        base64url_16(truncated)
    }

    /// The pseudonym of an identifier (a user, device, document id ...): its text in Unicode
    /// NFC first, so the composed and decomposed spellings of one id (`José` typed on one
    /// system, `Jose` and a combining accent on another) are one person, not two.
    #[inline]
    pub fn pseudonymize_identifier(&self, domain: &str, value: &[u8]) -> [u8; PSEUDONYM_LEN] {
        match nfc_respelling(value) {
            Some(composed) => self.pseudonymize(domain, composed.as_bytes()),
            None => self.pseudonymize(domain, value),
        }
    }
}

/// What client code sends when it has no id (JavaScript's `String(undefined)`, a null printed
/// as text, blanks): as an id, each would merge every client that sends it into one person, and
/// an alias from it would link them all. Compared without ASCII case, after trimming blanks.
const PLACEHOLDER_IDENTIFIERS: [&str; 8] = [
    "undefined",
    "null",
    "nil",
    "none",
    "nan",
    "(null)",
    "[object object]",
    "",
];

/// Whether an identifier's text names nobody: empty, blank, or a placeholder such as
/// `undefined` or `null` ([`PLACEHOLDER_IDENTIFIERS`]). The gateway treats such an id as absent,
/// and `veil erase` refuses one. The usual id (no blank at either end) costs a length dispatch.
#[inline(always)]
pub fn is_placeholder_identifier(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return true;
    };
    if first.is_ascii_whitespace() || last.is_ascii_whitespace() {
        return is_placeholder_trimmed(text.trim_ascii());
    }
    // Without blanks to trim, only a placeholder of the text's own length can match (the
    // property test checks this dispatch against the list).
    let is = |placeholder: &str| text.eq_ignore_ascii_case(placeholder);
    match bytes.len() {
        3 => is("nil") || is("nan"),
        4 => is("null") || is("none"),
        6 => is("(null)"),
        9 => is("undefined"),
        15 => is("[object object]"),
        _ => false,
    }
}

/// [`is_placeholder_identifier`] of a text without blanks at either end (the rare path).
#[cold]
fn is_placeholder_trimmed(text: &str) -> bool {
    PLACEHOLDER_IDENTIFIERS
        .iter()
        .any(|placeholder| text.eq_ignore_ascii_case(placeholder))
}

/// `value` in Unicode NFC, when it is UTF-8 text outside ASCII that is not in NFC already
/// (`None` for everything else, which is pseudonymized as it stands).
pub fn nfc_respelling(value: &[u8]) -> Option<String> {
    respelled(value, |text| {
        icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(text)
    })
}

/// `value` in Unicode NFD, when that differs from `value` (for erasures, which must find
/// pseudonyms of every spelling a client may have sent).
pub fn nfd_respelling(value: &[u8]) -> Option<String> {
    respelled(value, |text| {
        icu_normalizer::DecomposingNormalizerBorrowed::new_nfd().normalize(text)
    })
}

/// `value` as `normalize` spells it, when that differs (ASCII and non-UTF-8 bytes never do).
fn respelled(
    value: &[u8],
    normalize: impl FnOnce(&str) -> std::borrow::Cow<'_, str>,
) -> Option<String> {
    if value.is_ascii() {
        return None;
    }
    match normalize(std::str::from_utf8(value).ok()?) {
        std::borrow::Cow::Owned(respelled) => Some(respelled),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// The unpadded base64url (RFC 4648 §5) text of 16 bytes: 22 characters.
#[inline]
fn base64url_16(bytes: [u8; 16]) -> [u8; PSEUDONYM_LEN] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let high = u64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ]);
    let low = u64::from_be_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ]);
    let mut text = [0u8; PSEUDONYM_LEN];
    // 128 bits as 21 six-bit groups plus the last 2 bits, shifted left by 4 (the unpadded tail).
    let value = (u128::from(high) << 64) | u128::from(low);
    for (index, slot) in text.iter_mut().enumerate() {
        let shift = 128 - 6 * (index as i32 + 1);
        let group = if shift >= 0 {
            (value >> shift) & 0x3f
        } else {
            (value << -shift) & 0x3f
        };
        *slot = ALPHABET[group as usize];
    }
    text
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
