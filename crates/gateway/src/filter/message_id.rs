//! What leaves the gateway of a client's `messageId`: the processor needs only its equality (to
//! deduplicate retries), so only the random ids the official SDKs make leave as sent: a UUID
//! (Python, Java, mobile, server SDKs), `ajs-next-<ms>-<uuid>` (analytics.js in browsers),
//! `node-next-<ms>-<uuid>` (Node) or `ajs-<md5>` (classic analytics.js). Any other id could hold
//! something (`u-648309-1701234567890` holds a user id, `Acme_Merger.docx` a file name) and leaves
//! as a keyed pseudonym.

use crate::pseudonym::{EpochKey, PSEUDONYM_LEN};

/// Longest accepted `messageId`.
pub(crate) const MAX_MESSAGE_ID_BYTES: usize = 128;

/// Prefix of the ids Veil writes in place of a client's (and of the ids it derives for messages
/// without one): no SDK id starts with it, so the two never collide.
const VEIL_ID_PREFIX: &[u8] = b"veil-";

/// Length of a keyed id: the prefix and a pseudonym.
pub(crate) const KEYED_ID_LEN: usize = VEIL_ID_PREFIX.len() + PSEUDONYM_LEN;

/// Pseudonym domain of client ids replaced by a keyed id.
const KEYED_ID_DOMAIN: &str = "client-message-id";

/// Prefixes analytics-next puts before `<ms>-<uuid>`.
const TIMED_PREFIXES: [&[u8]; 2] = [b"ajs-next-", b"node-next-"];

/// Prefix of classic analytics.js ids, before 32 hex digits.
const CLASSIC_PREFIX: &[u8] = b"ajs-";

/// Bytes allowed in a message id at all: `A-Za-z0-9._:+=/-`.
const ALLOWED: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut index = 0;
    while index < 256 {
        let byte = index as u8;
        allowed[index] = byte.is_ascii_alphanumeric()
            || matches!(byte, b'.' | b'_' | b':' | b'+' | b'=' | b'/' | b'-');
        index += 1;
    }
    allowed
};

/// How a client's `messageId` is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageIdForm {
    /// Not a message id: empty, longer than 128 bytes, or a byte outside `A-Za-z0-9._:+=/-`.
    Invalid,
    /// An official SDK's random id: leaves as sent.
    Sdk,
    /// Any other id: leaves as a keyed id.
    Other,
}

/// Classifies a client's message id; see [`MessageIdForm`].
#[inline]
pub(crate) fn message_id_form(id: &str) -> MessageIdForm {
    let bytes = id.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_MESSAGE_ID_BYTES {
        return MessageIdForm::Invalid;
    }
    if is_uuid(bytes) {
        return MessageIdForm::Sdk;
    }
    if !bytes.iter().all(|&byte| ALLOWED[usize::from(byte)]) {
        return MessageIdForm::Invalid;
    }
    if is_sdk_id(bytes) {
        MessageIdForm::Sdk
    } else {
        MessageIdForm::Other
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits of either case.
#[inline]
fn is_uuid(bytes: &[u8]) -> bool {
    let Ok(bytes) = <&[u8; 36]>::try_from(bytes) else {
        return false;
    };
    // Every byte a hex digit or `-` (one table lookup each, no branch), and `-` exactly at the
    // four separators: then the other 32 are hex digits.
    let hex_or_dash = bytes
        .iter()
        .fold(true, |all, &byte| all & HEX_OR_DASH[usize::from(byte)]);
    let dashes = bytes.iter().filter(|&&byte| byte == b'-').count();
    hex_or_dash && dashes == 4 && [8, 13, 18, 23].iter().all(|&at| bytes[at] == b'-')
}

/// Hex digits of either case and `-`.
const HEX_OR_DASH: [bool; 256] = {
    let mut table = [false; 256];
    let mut index = 0;
    while index < 256 {
        let byte = index as u8;
        table[index] = byte.is_ascii_hexdigit() || byte == b'-';
        index += 1;
    }
    table
};

/// The SDK forms other than a bare UUID: `ajs-next-<ms>-<uuid>`, `node-next-<ms>-<uuid>`,
/// `ajs-<32 hex>`.
fn is_sdk_id(bytes: &[u8]) -> bool {
    if let Some(rest) = TIMED_PREFIXES
        .iter()
        .find_map(|prefix| bytes.strip_prefix(*prefix))
    {
        // `Date.now()` when the SDK made the id: 13 digits from 2020 to 2100, not any number
        // (`ajs-next-4915112345678-…` would carry a phone number).
        let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        let plausible_time = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .is_some_and(|ms| (SDK_TIME_FROM_MS..SDK_TIME_UNTIL_MS).contains(&ms));
        return digits == 13
            && plausible_time
            && rest.get(digits) == Some(&b'-')
            && is_uuid(&rest[digits + 1..]);
    }
    bytes
        .strip_prefix(CLASSIC_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.iter().all(u8::is_ascii_hexdigit))
}

/// Hex digits in an SDK id's random part: an identifier with fewer characters cannot repeat it.
pub(crate) const SDK_ID_HEX_DIGITS: usize = 32;

/// 2020-01-01 and 2100-01-01 in milliseconds: the times an SDK id made now can name.
const SDK_TIME_FROM_MS: u64 = 1_577_836_800_000;
const SDK_TIME_UNTIL_MS: u64 = 4_102_444_800_000;

/// Whether an SDK id's random part (its UUID, or the classic form's 32 hex digits) is one of
/// the message's `identifiers` (values the allowlist pseudonymizes) in other clothes: dashes
/// and case aside, the same hex digits. A client that copies its `anonymousId` into
/// `messageId` would otherwise store that id as sent, beside its pseudonym.
pub(crate) fn repeats_an_identifier<'v>(
    id: &str,
    identifiers: impl IntoIterator<Item = &'v str>,
) -> bool {
    debug_assert_eq!(message_id_form(id), MessageIdForm::Sdk);
    let bytes = id.as_bytes();
    // The timed forms end with their UUID; a classic id is `ajs-` and 32 hex digits; else the
    // id is a UUID.
    let random = if is_timed(bytes) {
        &bytes[bytes.len().saturating_sub(36)..]
    } else {
        bytes.strip_prefix(CLASSIC_PREFIX).unwrap_or(bytes)
    };
    identifiers
        .into_iter()
        .any(|identifier| same_hex_digits(random, identifier.as_bytes()))
}

/// Whether `bytes` starts with one of the [`TIMED_PREFIXES`].
fn is_timed(bytes: &[u8]) -> bool {
    TIMED_PREFIXES
        .iter()
        .any(|prefix| bytes.starts_with(prefix))
}

/// The same characters once `-` is left out, ASCII case aside.
fn same_hex_digits(left: &[u8], right: &[u8]) -> bool {
    let mut left = left.iter().filter(|byte| **byte != b'-');
    let mut right = right.iter().filter(|byte| **byte != b'-');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(one), Some(other)) if one.eq_ignore_ascii_case(other) => {}
            _ => return false,
        }
    }
}

/// The id written in place of a client id that is not an SDK's: `veil-` and its pseudonym under the tenant's
/// key, so a retry of the same id gets the same one and is still deduplicated.
pub(crate) fn keyed_message_id(key: &EpochKey, id: &str) -> [u8; KEYED_ID_LEN] {
    veil_id(key, KEYED_ID_DOMAIN, id.as_bytes())
}

/// `veil-` and the pseudonym of `input` in `domain`: every id Veil writes itself.
pub(crate) fn veil_id(key: &EpochKey, domain: &str, input: &[u8]) -> [u8; KEYED_ID_LEN] {
    let mut id = [0u8; KEYED_ID_LEN];
    id[..VEIL_ID_PREFIX.len()].copy_from_slice(VEIL_ID_PREFIX);
    id[VEIL_ID_PREFIX.len()..].copy_from_slice(&key.pseudonymize(domain, input));
    id
}

#[cfg(test)]
mod tests {
    use super::MessageIdForm::{Invalid, Other, Sdk};
    use super::*;

    #[test]
    fn sdk_ids_leave_as_sent() {
        for id in [
            "b77555e7-7f75-d5c2-91f6-59b63a479870",
            "B77555E7-7F75-D5C2-91F6-59B63A479870",
            "ajs-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586",
            "node-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586",
            "ajs-5d41402abc4b2a76b9719d911017c592",
        ] {
            assert_eq!(message_id_form(id), Sdk, "{id:?}");
        }
    }

    #[test]
    fn every_other_id_is_keyed() {
        for id in [
            "m-1",
            "u-648309-1701234567890",
            "Ko-fi-Me-ns-ah-5",
            "K0f1-M3n5ah",
            "198-51-100-77",
            "198_51_100_77",
            "10.0.0.1",
            "2001:db8::1",
            "6b6f66692e6d656e7361684061636d652d6c61772e6578616d706c65",
            "447700900123",
            "1985-03-14",
            "Merger_Agreement_AcmeCorp.docx",
            "5d41402abc4b2a76b9719d911017c592",
            "ajs-next-Acme-743be593-7789-4b74-8078-cbcc8894c586",
            "ajs-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c58",
            "node-next--743be593-7789-4b74-8078-cbcc8894c586",
            "b77555e7-7f75-d5c2-91f6-59b63a479870x",
            "b77555e77f75-d5c2-91f6-59b63a479870",
            "ajs-5d41402abc4b2a76b9719d911017c59g",
            "ajs-next-4915112345678-743be593-7789-4b74-8078-cbcc8894c586",
            "ajs-next-1668208232027123-743be593-7789-4b74-8078-cbcc8894c586",
            "node-next-166820823202-743be593-7789-4b74-8078-cbcc8894c586",
            "veil-AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(message_id_form(id), Other, "{id:?}");
        }
    }

    #[test]
    fn sdk_ids_copying_an_identifier_are_found_in_every_form() {
        let anonymous = "0b9a8c7d-1111-4222-8333-944455566677";
        for id in [
            "0b9a8c7d-1111-4222-8333-944455566677",
            "0B9A8C7D-1111-4222-8333-944455566677",
            "ajs-next-1668208232027-0b9a8c7d-1111-4222-8333-944455566677",
            "node-next-1668208232027-0b9a8c7d-1111-4222-8333-944455566677",
            "ajs-0b9a8c7d111142228333944455566677",
        ] {
            assert!(repeats_an_identifier(id, ["u-1", anonymous]), "{id}");
            assert!(!repeats_an_identifier(id, ["u-1", "t-1000"]), "{id}");
        }
        assert!(!repeats_an_identifier(
            "b77555e7-7f75-d5c2-91f6-59b63a479870",
            [anonymous, "0b9a8c7d-1111-4222-8333-94445556667"]
        ));
    }

    #[test]
    fn ids_that_are_not_ids_are_invalid() {
        let too_long = "a".repeat(MAX_MESSAGE_ID_BYTES + 1);
        for id in [
            "",
            "has space",
            "a@b.co",
            "caf\u{e9}",
            "quote\"",
            too_long.as_str(),
        ] {
            assert_eq!(message_id_form(id), Invalid, "{id:?}");
        }
        assert_eq!(message_id_form(&"a".repeat(MAX_MESSAGE_ID_BYTES)), Other);
    }

    #[test]
    fn keyed_ids_are_stable_per_key_and_unrelated_across_keys() {
        let key = EpochKey::new("2026-11", &[7; 32]);
        let other = EpochKey::new("2026-11", &[8; 32]);
        let keyed = keyed_message_id(&key, "Merger_Agreement.docx");
        assert_eq!(keyed, keyed_message_id(&key, "Merger_Agreement.docx"));
        assert_ne!(keyed, keyed_message_id(&other, "Merger_Agreement.docx"));
        assert_ne!(keyed, keyed_message_id(&key, "Merger_Agreement.doc"));
        assert!(keyed.starts_with(b"veil-"));
        // A keyed id is never an SDK id, so it can never be mistaken for a client's.
        let text = std::str::from_utf8(&keyed).expect("base64url");
        assert_eq!(message_id_form(text), Other);
    }
}
