//! The allowlist filter: a pure function from one client message's bytes to one sanitized
//! message's bytes, or a rejection. No I/O, no clock, no randomness: the caller supplies the
//! tenant's key, the receive time and a fallback message id.
//!
//! Single pass: the JSON is read once, guided by the policy trie (`walk`), then the rule for the
//! message's type and event decides what of the captured values leaves (`emit`).

mod batch;
mod children;
mod emit;
mod message_id;
mod output;
mod reject;
mod scan;
mod stats;
mod values;
mod walk;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use veil_sanitized::{SCHEMA_VERSION, Tier};

use crate::allowlist::{LeafAction, LeafId, NodeId, Policy, TextFormat};
use crate::pseudonym::EpochKey;

pub use batch::{Batch, BatchError, split_batch};
pub use emit::format_timestamp;

pub use reject::{
    DropReason, RejectReason, Rejection, is_reportable_event, is_reportable_key,
    push_reportable_key,
};
pub use stats::{DropCounts, FilterStats};
pub use values::forbidden_value;
pub use walk::{MAX_DEPTH, MAX_KEYS_PER_OBJECT};
pub use worker::WorkerCache;

/// Segment's limit for one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// `body` without a leading UTF-8 byte order mark, which some Windows HTTP clients and editors
/// write before JSON: RFC 8259 lets a parser ignore it, and it carries no data.
pub fn without_byte_order_mark(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// What the caller knows about a message that the message itself does not say.
#[derive(Debug, Clone, Copy)]
pub struct MessageMeta<'a> {
    /// When the gateway received it, RFC 3339 UTC (`2026-11-23T17:38:56.123Z`).
    pub received_at: &'a str,
    /// Id to use when the client sent no `messageId` (Segment generates one too); `None` rejects such messages.
    pub fallback_message_id: Option<&'a str>,
    /// The enclosing batch's `sentAt`, used for clock-skew correction when the message has none.
    pub sent_at: Option<&'a str>,
}

/// What the caller learns about an accepted message besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The message's type.
    pub kind: veil_sanitized::MessageKind,
    /// The pseudonym of `userId`, else of `anonymousId`: a partition key that keeps one user's
    /// messages in order without revealing who they are. `None` when the policy keeps neither.
    pub routing_key: Option<[u8; crate::pseudonym::PSEUDONYM_LEN]>,
}

/// A field that did not leave, as the filter reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DroppedField<'a> {
    /// An allowlisted path, dropped for this message (wrong type, tier, value check, or event).
    Leaf(LeafId),
    /// A key under an allowlisted object that no allowlisted path names.
    Key {
        /// The object it was found in.
        parent: NodeId,
        /// The key as the client sent it; render with [`Policy::push_exported_key`].
        key: &'a str,
    },
}

impl DroppedField<'_> {
    /// The dotted path, with keys neither the allowlist nor the Segment spec names as `*`.
    pub fn path(&self, policy: &Policy) -> String {
        match self {
            DroppedField::Leaf(leaf) => policy.leaf_path(*leaf).to_owned(),
            DroppedField::Key { parent, key } => {
                let mut path = policy.node_path(*parent).to_owned();
                policy.push_exported_key(&mut path, key);
                path
            }
        }
    }
}

/// Receives the fields dropped from each accepted message (counters, metrics, audit records).
pub trait DropSink {
    /// One field of an accepted message did not leave.
    fn dropped(&mut self, field: DroppedField<'_>, reason: DropReason);

    /// A client key under `parent` did not leave; `summary` is its
    /// [`key_summary`](crate::allowlist::key_summary), which the filter computed already.
    #[inline]
    fn dropped_key(&mut self, parent: NodeId, key: &str, summary: u64, reason: DropReason) {
        debug_assert_eq!(summary, crate::allowlist::key_summary(key.as_bytes()));
        self.dropped(DroppedField::Key { parent, key }, reason);
    }
}

impl DropSink for () {
    fn dropped(&mut self, _: DroppedField<'_>, _: DropReason) {}
}

/// Filters messages for one tenant under one policy and key epoch.
#[derive(Debug, Clone)]
pub struct TenantFilter {
    /// Distinguishes this filter's key and policy in a shared [`WorkerCache`].
    id: u64,
    policy: Arc<Policy>,
    /// The policy trie's children, indexed for lookups without probing.
    children: children::ChildIndex,
    tenant: String,
    tier: Tier,
    key: EpochKey,
    /// The output's constant head per message kind (indexed by `kind as usize`): schema, tenant,
    /// tier, policy digest, key epoch and type, up to the opening quote of `messageId`, so one
    /// copy writes it.
    kind_heads: Vec<Vec<u8>>,
    /// Each leaf's `,"path":` for the output, padded for one fixed-size copy.
    leaf_pieces: output::LeafPieces,
    /// Leaves whose pseudonym routes the message: root `userId`, then root `anonymousId`.
    routing_leaves: [Option<LeafId>; 2],
    /// Per leaf: which value checks a kept text still needs after its list or format.
    screened_leaves: Vec<Screening>,
}

/// Which value checks a kept text still needs once its list or format admitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Screening {
    /// All of them: free text, or a list holding a value the checks would drop.
    Full,
    /// None: a list whose every value passes them, or a locale or time zone (no `@`, no
    /// dotted quad, nothing hidden can have those shapes).
    Done,
    /// Only the address check a version needs: a version is digits, letters and `.-+:` (no
    /// `@`, no escapes, nothing hidden), but `198.51.100.7` and `198.51.100+7` are versions too.
    DottedQuadOnly,
}

impl TenantFilter {
    /// Prepares filtering for `tenant` (an opaque, already validated id) on `tier` with `key`.
    pub fn new(policy: Arc<Policy>, tenant: &str, tier: Tier, key: EpochKey) -> TenantFilter {
        let mut head = Vec::with_capacity(192);
        head.extend_from_slice(format!("{{\"schema\":{SCHEMA_VERSION},\"tenant\":").as_bytes());
        values::write_json_str(&mut head, tenant);
        head.extend_from_slice(b",\"tier\":");
        values::write_json_str(&mut head, tier.as_str());
        head.extend_from_slice(b",\"policy\":");
        values::write_json_str(&mut head, policy.digest());
        head.extend_from_slice(b",\"keyEpoch\":");
        values::write_json_str(&mut head, key.epoch());
        let mut kind_heads = Vec::new();
        for kind in veil_sanitized::MessageKind::ALL {
            let index = kind as usize;
            if kind_heads.len() <= index {
                kind_heads.resize(index + 1, Vec::new());
            }
            let mut kind_head = head.clone();
            kind_head.extend_from_slice(b",\"type\":\"");
            kind_head.extend_from_slice(kind.as_str().as_bytes());
            kind_head.extend_from_slice(b"\",\"messageId\":\"");
            kind_heads[index] = kind_head;
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let root_leaf = |key: &str| {
            policy
                .child(policy.root(), key)
                .and_then(|node| policy.leaf_at(node))
        };
        let routing_leaves = [root_leaf("userId"), root_leaf("anonymousId")];
        let screened_leaves = policy
            .leaves()
            .map(|(_, _, action)| match action {
                LeafAction::Keep(kept) => match (kept.values.listed_texts(), kept.format) {
                    (Some(listed), _)
                        if listed
                            .iter()
                            .all(|text| values::forbidden_value(text).is_none()) =>
                    {
                        Screening::Done
                    }
                    (None, Some(TextFormat::Locale | TextFormat::Timezone)) => Screening::Done,
                    (None, Some(TextFormat::Version)) => Screening::DottedQuadOnly,
                    _ => Screening::Full,
                },
                LeafAction::Pseudonymize(_) => Screening::Full,
            })
            .collect();
        TenantFilter {
            screened_leaves,
            routing_leaves,
            children: children::ChildIndex::new(&policy),
            leaf_pieces: output::LeafPieces::new(&policy),
            id,
            policy,
            tenant: tenant.to_owned(),
            tier,
            key,
            kind_heads,
        }
    }

    /// The policy this filter applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The tenant this filter serves.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// A message id for a message that has none, derived from its bytes under the tenant's key:
    /// a client retrying the same bytes gets the same id, so the processor deduplicates it.
    pub fn derived_message_id(&self, message: &[u8]) -> String {
        let id = message_id::veil_id(&self.key, "message-id", message);
        String::from_utf8_lossy(&id).into_owned()
    }

    /// The key epoch named in every message this filter writes.
    pub fn key_epoch(&self) -> &str {
        self.key.epoch()
    }

    /// Filters one message: appends the sanitized JSON (no newline) to `out` and reports dropped
    /// fields to `sink`, or leaves `out` and `sink` untouched and says why the message is refused.
    /// `cache` is the calling worker's; it changes only how fast the answer comes, never the answer.
    pub fn filter<S: DropSink>(
        &self,
        message: &[u8],
        meta: &MessageMeta<'_>,
        cache: &mut WorkerCache,
        out: &mut Vec<u8>,
        sink: &mut S,
    ) -> Result<Accepted, Rejection> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(Rejection::new(RejectReason::TooLarge));
        }
        // SIMD validation (the standard library's is byte- or word-at-a-time); the same answer.
        let text = simdutf8::basic::from_utf8(message)
            .map_err(|_| Rejection::new(RejectReason::InvalidUtf8))?;
        let WorkerCache {
            pseudonyms,
            key_orders,
            pseudonym_output,
        } = cache;
        let orders = key_orders.for_filter(self.id, self.children.node_count());
        let mut walk = walk::Walk::new(&self.policy, &self.children, orders, text);
        walk.run()?;
        emit::emit(&walk, self, meta, pseudonyms, pseudonym_output, out, sink).map_err(
            |mut rejection| {
                rejection.event = walk
                    .envelope
                    .event
                    .as_deref()
                    .filter(|event| {
                        reject::is_reportable_event(event) && self.policy.is_known_event(event)
                    })
                    .map(str::to_owned);
                rejection
            },
        )
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod warm_tests;
