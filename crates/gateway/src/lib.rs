//! Veil's ingest gateway core: the reviewed allowlist, the filter that enforces it on every
//! client message, and the HMAC pseudonymizer with its keystore.
//!
//! Data flows client → [`server`] (HTTP) → [`filter`] (guided by [`allowlist::Policy`], pseudonyms from
//! [`pseudonym::EpochKey`]) → sanitized messages ([`veil_sanitized::SanitizedMessage`]) → [`sink`] (Kafka).

/// The allowlist policy (its own crate, so the processor reads the same declared types).
pub use veil_policy as allowlist;
pub mod filter;
pub mod pseudonym;
pub mod server;
pub mod sink;
