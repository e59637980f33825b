//! The sanitized-message contract: what the gateway writes to Kafka and what the processor and
//! reporting read. It is defined once, here, and published as a JSON Schema in `schemas/`.
//!
//! A sanitized message holds only what the allowlist let out: the structural envelope (type,
//! message id, timestamps, event or page name), the kept fields by allowlist path, and the
//! pseudonymized identifiers by allowlist path. It names the allowlist digest and the key epoch
//! that produced it, so a reviewer can prove which policy produced any stored row.
//!
//! On Kafka, a record of a sanitized topic holds one sanitized message, or several, one a line
//! ([`record_messages`]): the gateway packs a request's messages bound for one partition.

pub mod json_string;
pub mod timestamp;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the sanitized-message contract; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What separates the sanitized messages packed into one Kafka record.
pub const MESSAGE_SEPARATOR: u8 = b'\n';

/// The sanitized messages of one Kafka record: its non-empty lines (a final newline is allowed).
pub fn record_messages(record: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = record;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let (line, after) = match memchr::memchr(MESSAGE_SEPARATOR, rest) {
                Some(end) => (&rest[..end], &rest[end + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = after;
            if !line.is_empty() {
                return Some(line);
            }
        }
        None
    })
}

/// File name of the published JSON Schema under `schemas/`.
pub const SCHEMA_FILE: &str = "sanitized-message.v1.json";

/// One client message after the gateway's allowlist filter and pseudonymizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Veil sanitized message v1")]
pub struct SanitizedMessage {
    /// Contract version, always [`SCHEMA_VERSION`].
    #[schemars(range(min = 1, max = 1))]
    pub schema: u32,
    /// Opaque tenant id the message was received for (never a company name).
    pub tenant: String,
    /// Collection tier of the tenant when the message was filtered.
    pub tier: Tier,
    /// Digest of the allowlist that produced this message, `sha256:` and 64 hex digits.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub policy: String,
    /// Key epoch whose tenant key produced the pseudonyms in this message.
    pub key_epoch: String,
    /// Segment message type.
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// Client-chosen id, used by the processor to deduplicate retries.
    pub message_id: String,
    /// When the event happened, RFC 3339, as the client reported it (skew-corrected by the gateway).
    pub timestamp: String,
    /// When the gateway received the message, RFC 3339.
    pub received_at: String,
    /// Track event name; present exactly for `track` messages and always an allowlisted name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Page or screen name; present only when the allowlist names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Kept fields by allowlist path (`properties.feature`, `context.app.version`, ...).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldValue>,
    /// Pseudonymized identifiers by allowlist path (`userId`, `properties.document_id`, ...).
    #[serde(default)]
    pub pseudonyms: BTreeMap<String, Pseudonym>,
}

/// Collection tier: what a tenant agreed to share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The anonymous default: pseudonyms are linkable only within a key epoch.
    Baseline,
    /// Opt-in richer collection with a stable key and the `enhanced` fields.
    Enhanced,
}

impl Tier {
    /// The tier's name as it appears in configuration and in sanitized messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Enhanced => "enhanced",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "baseline" => Ok(Tier::Baseline),
            "enhanced" => Ok(Tier::Enhanced),
            _ => Err("tier must be `baseline` or `enhanced`".to_owned()),
        }
    }
}

/// The Segment Tracking API message types Veil accepts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A user action (`event` names it).
    Track,
    /// Who the user is (traits).
    Identify,
    /// A web page view.
    Page,
    /// A mobile or desktop screen view.
    Screen,
    /// The organization a user belongs to.
    Group,
    /// Links two user identities.
    Alias,
}

impl MessageKind {
    /// Every kind, in the order the allowlist lists them.
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Track,
        MessageKind::Identify,
        MessageKind::Page,
        MessageKind::Screen,
        MessageKind::Group,
        MessageKind::Alias,
    ];

    /// The kind's wire name (`track`, `identify`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Track => "track",
            MessageKind::Identify => "identify",
            MessageKind::Page => "page",
            MessageKind::Screen => "screen",
            MessageKind::Group => "group",
            MessageKind::Alias => "alias",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn from_wire(name: &str) -> Option<MessageKind> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A kept field's value: only scalars ever leave the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldValue {
    /// A boolean flag.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A finite floating point number.
    Float(f64),
    /// A string that passed the e-mail and IP address value checks.
    Str(String),
}

/// An HMAC-SHA256 pseudonym: 128 bits, base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Pseudonym(#[schemars(regex(pattern = r"^[A-Za-z0-9_-]{22}$"))] pub String);

/// The JSON Schema of [`SanitizedMessage`], as published under `schemas/`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SanitizedMessage)).unwrap_or_default()
}

/// Whether `tenant` is a usable tenant id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot, so it is safe in file names, topic keys and partition paths.
pub fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 64
        && !tenant.starts_with('.')
        && tenant
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::record_messages;

    #[test]
    fn a_record_splits_into_its_non_empty_lines() {
        fn split(record: &[u8]) -> Vec<&[u8]> {
            record_messages(record).collect()
        }
        assert_eq!(split(b"{\"a\":1}"), vec![b"{\"a\":1}".as_slice()]);
        assert_eq!(split(b"one\ntwo\n"), vec![b"one".as_slice(), b"two"]);
        assert_eq!(split(b"\none\n\n\ntwo"), vec![b"one".as_slice(), b"two"]);
        assert!(split(b"").is_empty());
        assert!(split(b"\n\n").is_empty());
    }
}
