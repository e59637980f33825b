//! The reviewed allowlist: the policy that decides what may leave a client's network.
//!
//! [`Allowlist`] is the policy as reviewers wrote it (with reasons and line numbers);
//! [`Policy`] is the same policy compiled for the filter's hot path.

mod compile;
mod config;
mod diff;
pub mod forbidden;
mod format;
mod kept;
mod reportable;
mod vocabulary;

use std::path::Path;

use sha2::{Digest, Sha256};
use veil_sanitized::{MessageKind, Tier};

pub use compile::short_eq;
pub use compile::{LeafAction, LeafId, NodeId, Permission, Policy, RuleId, key_summary};
pub use diff::{Widening, widenings};
pub use forbidden::ForbiddenClass;
pub use format::TextFormat;
pub use kept::{Bounds, Kept, ValueType, Values};
pub use reportable::{is_reportable_key, push_reportable_key, reportable_path};

pub use config::STRUCTURAL_KEYS;

/// Why an allowlist was refused. Messages name fields, classes and lines.
#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    /// The file could not be read.
    #[error("cannot read allowlist {path}: {source}")]
    Io {
        /// The file that was asked for.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown or duplicate keys.
    #[error("allowlist is not valid: {0}")]
    Syntax(String),
    /// An entry is incomplete or contradicts another one.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line of the entry.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// An entry would let out a field of a forbidden class.
    #[error(
        "line {line}: field `{path}` is of forbidden class {class} and can never leave the gateway"
    )]
    Forbidden {
        /// 1-based line of the entry.
        line: usize,
        /// The field path as written.
        path: String,
        /// The class it belongs to.
        class: ForbiddenClass,
    },
}

/// What happens to an allowlisted field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldAction {
    /// The value leaves as it is, if it is what [`Kept`] allows and passes the value checks.
    Keep(Kept),
    /// The value leaves as an HMAC pseudonym in the named identifier domain.
    Pseudonymize {
        /// Identifier domain (`user`, `document`, ...); the same id in two domains gives unrelated pseudonyms.
        domain: String,
    },
}

impl FieldAction {
    /// How the action reads in the allowlist (`keep string`, `pseudonymize user`).
    pub fn describe(&self) -> String {
        match self {
            FieldAction::Keep(kept) => kept.describe(),
            FieldAction::Pseudonymize { domain } => format!("pseudonymize {domain}"),
        }
    }

    /// Whether this action lets out something `old` did not: another action or type, a wider
    /// range, more listed values.
    pub fn lets_out_more_than(&self, old: &FieldAction) -> bool {
        match (self, old) {
            (FieldAction::Keep(new), FieldAction::Keep(old)) => !new.within(old),
            // A value that was kept and is now pseudonymized lets out less, not more.
            (FieldAction::Pseudonymize { .. }, FieldAction::Keep(_)) => false,
            _ => self != old,
        }
    }
}

/// Where a field rule applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every message of every allowlisted type.
    Common,
    /// Every message of one type.
    Kind(MessageKind),
    /// Track messages with this event name.
    Event(String),
}

/// One allowlisted field, as reviewed.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRule {
    /// Where the rule applies.
    pub scope: Scope,
    /// Dotted path from the message root (`properties.feature`).
    pub path: String,
    /// Keep or pseudonymize.
    pub action: FieldAction,
    /// `enhanced` fields leave only for tenants who opted in.
    pub tier: Tier,
    /// Why it is collected.
    pub reason: String,
    /// Line in the allowlist file.
    pub line: usize,
}

/// An allowlisted track event name, or page or screen name.
#[derive(Debug, Clone, PartialEq)]
pub struct NameRule {
    /// `track` for events, `page` or `screen` for names.
    pub kind: MessageKind,
    /// The exact name.
    pub name: String,
    /// `enhanced` names leave only for tenants who opted in.
    pub tier: Tier,
    /// Why it is collected.
    pub reason: String,
    /// Line in the allowlist file.
    pub line: usize,
}

/// A loaded, validated allowlist with its digest.
#[derive(Debug, Clone)]
pub struct Allowlist {
    /// `sha256:` and the hex SHA-256 of the file's bytes.
    pub digest: String,
    /// Message types that are accepted at all; others are rejected.
    pub kinds: Vec<MessageKind>,
    /// Every field rule, in file order.
    pub fields: Vec<FieldRule>,
    /// Every event, page and screen name rule, in file order.
    pub names: Vec<NameRule>,
}

impl Allowlist {
    /// Loads and validates an allowlist file.
    pub fn load(path: &Path) -> Result<Allowlist, AllowlistError> {
        let bytes = std::fs::read(path).map_err(|source| AllowlistError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| AllowlistError::Syntax("the file is not UTF-8".to_owned()))?;
        Allowlist::parse(&text)
    }

    /// Validates allowlist YAML text.
    pub fn parse(text: &str) -> Result<Allowlist, AllowlistError> {
        config::parse(text, digest_of(text.as_bytes()))
    }

    /// Compiles the allowlist for the filter's hot path.
    pub fn compile(&self) -> Policy {
        Policy::compile(self)
    }
}

/// The digest format used everywhere: `sha256:` and 64 lowercase hex digits.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

#[cfg(test)]
mod tests;
