//! What leaves the gateway of a client's `messageId`: the processor needs only its equality (to
//! deduplicate retries), so an id that could spell something (`Merger_Agreement_AcmeCorp.docx`,
//! an IP address, a user's name) leaves as a keyed pseudonym, and only the random tokens SDKs
//! make (UUIDs, `ajs-next-1668208232027-<uuid>`, hex digests) leave as sent.

use crate::pseudonym::{EpochKey, PSEUDONYM_LEN};

/// Longest accepted `messageId`.
pub(crate) const MAX_MESSAGE_ID_BYTES: usize = 128;

/// Prefix of the ids Veil writes in place of a client's (and of the ids it derives for messages
/// without one): no client id that leaves as sent can start with it, so the two never collide.
pub(crate) const VEIL_ID_PREFIX: &[u8] = b"veil-";

/// Length of a keyed id: the prefix and a pseudonym.
pub(crate) const KEYED_ID_LEN: usize = VEIL_ID_PREFIX.len() + PSEUDONYM_LEN;

/// Pseudonym domain of client ids replaced by a keyed id.
const KEYED_ID_DOMAIN: &str = "client-message-id";

/// Prefixes the official SDKs put before their random part (analytics-next in browsers and
/// Node, classic analytics.js); the words in them are not the client's.
const SDK_PREFIXES: [&[u8]; 3] = [b"ajs-next-", b"node-next-", b"ajs-"];

/// The byte is allowed in a message id at all: `A-Za-z0-9._:+=/-`.
const ALLOWED: u8 = 1;
/// The byte may appear in a token left as sent: `A-Za-z0-9_-`.
const TOKEN: u8 = 2;
/// The byte is a letter that is not a hex digit (`g-z`, `G-Z`).
const WORD_LETTER: u8 = 4;

/// Each byte's classes, from the flags above.
const CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut index = 0;
    while index < 256 {
        let byte = index as u8;
        let mut class = 0;
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'+' | b'=' | b'/') {
            class |= ALLOWED;
        }
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            class |= ALLOWED | TOKEN;
        }
        if byte.is_ascii_alphabetic() && !byte.is_ascii_hexdigit() {
            class |= WORD_LETTER;
        }
        classes[index] = class;
        index += 1;
    }
    classes
};

/// How a client's `messageId` is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageIdForm {
    /// Not a message id: empty, longer than 128 bytes, or a byte outside `A-Za-z0-9._:+=/-`.
    Invalid,
    /// A token that spells nothing: letters, digits, `_` and `-` where no run of three or more
    /// letters holds a letter beyond `f` (after an SDK's prefix). Leaves as sent.
    Token,
    /// Anything else: leaves as a keyed id.
    Spelled,
}

/// Classifies a client's message id; see [`MessageIdForm`].
#[inline]
pub(crate) fn message_id_form(id: &str) -> MessageIdForm {
    let bytes = id.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_MESSAGE_ID_BYTES {
        return MessageIdForm::Invalid;
    }
    let body = SDK_PREFIXES
        .iter()
        .find_map(|prefix| bytes.strip_prefix(*prefix))
        .unwrap_or(bytes);
    // Prefix bytes are allowed token bytes, so only the body needs looking at. One branch-free
    // pass first: an id with no letter beyond `f` (every SDK's) cannot spell a word.
    let (mut every, mut any) = (ALLOWED | TOKEN, 0);
    for &byte in body {
        let class = CLASSES[usize::from(byte)];
        every &= class;
        any |= class;
    }
    if every & ALLOWED == 0 {
        return MessageIdForm::Invalid;
    }
    if every & TOKEN == 0 || (any & WORD_LETTER != 0 && spells_a_word(body)) {
        return MessageIdForm::Spelled;
    }
    MessageIdForm::Token
}

/// Whether a run of three or more letters in `body` holds a letter beyond `f`.
fn spells_a_word(body: &[u8]) -> bool {
    body.split(|byte| !byte.is_ascii_alphabetic()).any(|run| {
        run.len() >= 3
            && run
                .iter()
                .any(|&byte| CLASSES[usize::from(byte)] & WORD_LETTER != 0)
    })
}

/// The id written in place of a spelled client id: `veil-` and its pseudonym under the tenant's
/// key, so a retry of the same id gets the same one and is still deduplicated.
pub(crate) fn keyed_message_id(key: &EpochKey, id: &str) -> [u8; KEYED_ID_LEN] {
    let mut keyed = [0u8; KEYED_ID_LEN];
    keyed[..VEIL_ID_PREFIX.len()].copy_from_slice(VEIL_ID_PREFIX);
    keyed[VEIL_ID_PREFIX.len()..]
        .copy_from_slice(&key.pseudonymize(KEYED_ID_DOMAIN, id.as_bytes()));
    keyed
}

#[cfg(test)]
mod tests {
    use super::MessageIdForm::{Invalid, Spelled, Token};
    use super::*;

    #[test]
    fn sdk_ids_leave_as_sent() {
        for id in [
            "b77555e7-7f75-d5c2-91f6-59b63a479870",
            "B77555E7-7F75-D5C2-91F6-59B63A479870",
            "ajs-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586",
            "node-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586",
            "ajs-5d41402abc4b2a76b9719d911017c592",
            "0123456789abcdef0123456789abcdef",
            "m-1",
            "ok-17",
            "jb_42_b",
        ] {
            assert_eq!(message_id_form(id), Token, "{id:?}");
        }
    }

    #[test]
    fn ids_that_could_spell_something_are_keyed() {
        for id in [
            "Merger_Agreement_AcmeCorp",
            "Merger_Agreement_AcmeCorp.docx",
            "kofi-mensah-1",
            "10.0.0.1",
            "198.51.100.42",
            "2001:db8::1",
            "a:b",
            "x/y+z=",
            "Kim",
            "ajs-next-Acme",
            "node-Kofi",
            "veil-AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(message_id_form(id), Spelled, "{id:?}");
        }
        // Hex letters alone spell nothing worth keeping out (`cafe`, `decade`, `Ada`).
        assert_eq!(message_id_form("cafe-decade-1"), Token);
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
        assert_eq!(message_id_form(&"a".repeat(MAX_MESSAGE_ID_BYTES)), Token);
    }

    #[test]
    fn the_form_follows_its_definition_for_arbitrary_ids() {
        // The definition, written the slow way: runs of letters split on every other byte.
        let slow = |id: &str| {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._:+=/-".contains(c);
            if id.is_empty() || id.len() > MAX_MESSAGE_ID_BYTES || !id.chars().all(allowed) {
                return Invalid;
            }
            let body = ["ajs-next-", "node-next-", "ajs-"]
                .iter()
                .find_map(|prefix| id.strip_prefix(prefix))
                .unwrap_or(id);
            let token_bytes = body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let spells = body
                .split(|c: char| !c.is_ascii_alphabetic())
                .any(|run| run.len() >= 3 && !run.chars().all(|c| c.is_ascii_hexdigit()));
            if token_bytes && !spells {
                Token
            } else {
                Spelled
            }
        };
        let alphabet = b"0123456789.:af-gzAFGZ_ @/";
        let mut state = 12345u32;
        let mut seen = [0usize; 3];
        for _ in 0..50_000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let length = (state >> 16) as usize % 14;
            let mut id: String = (0..length)
                .map(|index| {
                    let pick = (state.rotate_left(index as u32 * 5) >> 3) as usize;
                    char::from(alphabet[pick % alphabet.len()])
                })
                .collect();
            if state.is_multiple_of(5) {
                id.insert_str(0, "ajs-next-");
            }
            let form = message_id_form(&id);
            assert_eq!(form, slow(&id), "{id:?}");
            seen[form as usize] += 1;
        }
        assert!(seen.iter().all(|&count| count > 1000), "{seen:?}");
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
        // A keyed id is itself spelled, so it can never be mistaken for a client token.
        let text = std::str::from_utf8(&keyed).expect("base64url");
        assert_ne!(message_id_form(text), Token);
    }
}
