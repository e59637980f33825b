//! Counters of what the filter did: messages in and out, rejections by reason, dropped fields by
//! name and reason. Key names sent by clients are bounded in number and reported only when they
//! look like identifiers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use super::reject::{DropReason, RejectReason, push_reportable_key};
use super::{DropSink, DroppedField};
use crate::allowlist::{LeafId, NodeId, Policy, key_summary, short_eq};

/// Distinct client key names remembered before further ones count as `*`.
const MAX_DISTINCT_KEYS: usize = 1024;

/// Dropped-field counters, cheap to update on the hot path.
#[derive(Debug, Default, Clone)]
pub struct DropCounts {
    leaves: FxHashMap<(LeafId, DropReason), u64>,
    /// By (parent, key summary): the few keys sharing a summary, each with counts per reason.
    keys: FxHashMap<(NodeId, u64), Vec<(Box<str>, [u64; DropReason::ALL.len()])>>,
    distinct_keys: usize,
}

fn reason_index(reason: DropReason) -> usize {
    DropReason::ALL.iter().position(|known| *known == reason).unwrap_or_default()
}

impl DropSink for DropCounts {
    #[inline]
    fn dropped(&mut self, field: DroppedField<'_>, reason: DropReason) {
        match field {
            DroppedField::Leaf(leaf) => *self.leaves.entry((leaf, reason)).or_default() += 1,
            DroppedField::Key { parent, key } => {
                let key = if self.distinct_keys < MAX_DISTINCT_KEYS { key } else { "*" };
                let slot = (parent, key_summary(key.as_bytes()));
                if let Some(same_summary) = self.keys.get_mut(&slot) {
                    if let Some((_, counts)) = same_summary.iter_mut().find(|(seen, _)| short_eq(seen.as_bytes(), key.as_bytes())) {
                        counts[reason_index(reason)] += 1;
                        return;
                    }
                }
                let same_summary = self.keys.entry(slot).or_default();
                self.distinct_keys += 1;
                let mut counts = [0; DropReason::ALL.len()];
                counts[reason_index(reason)] = 1;
                same_summary.push((key.into(), counts));
            }
        }
    }
}

impl DropCounts {
    /// Counts by reportable field path and reason.
    pub fn by_field(&self, policy: &Policy) -> BTreeMap<(String, DropReason), u64> {
        let mut merged = BTreeMap::new();
        for ((leaf, reason), count) in &self.leaves {
            *merged.entry((policy.leaf_path(*leaf).to_owned(), *reason)).or_default() += count;
        }
        for ((parent, _), same_summary) in &self.keys {
            for (key, counts) in same_summary {
                let mut path = policy.node_path(*parent).to_owned();
                push_reportable_key(&mut path, key);
                for (reason, count) in DropReason::ALL.iter().zip(counts) {
                    if *count > 0 {
                        *merged.entry((path.clone(), *reason)).or_default() += count;
                    }
                }
            }
        }
        merged
    }
}

/// Everything a run of the filter did, for `veil filter`'s summary and the gateway's metrics.
#[derive(Debug, Default, Clone)]
pub struct FilterStats {
    /// Messages read (batch items count one each).
    pub messages_in: u64,
    /// Sanitized messages written.
    pub messages_out: u64,
    /// Rejected messages by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Fields dropped from accepted messages.
    pub dropped: DropCounts,
}

impl FilterStats {
    /// Counts one rejected message.
    pub fn reject(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    /// A human-readable summary: counts, reasons and field names, never values.
    pub fn summary(&self, policy: &Policy) -> String {
        let rejected: u64 = self.rejected.values().sum();
        let mut text = format!("messages: {} in, {} out, {} rejected\n", self.messages_in, self.messages_out, rejected);
        for (reason, count) in &self.rejected {
            let _ = writeln!(text, "  rejected {}: {count}", reason.as_str());
        }
        let dropped = self.dropped.by_field(policy);
        if !dropped.is_empty() {
            text.push_str("fields dropped:\n");
        }
        for ((path, reason), count) in dropped {
            let _ = writeln!(text, "  {path} ({}): {count}", reason.as_str());
        }
        text
    }
}
