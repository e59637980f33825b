//! Counters of what the filter did: messages in and out, rejections by reason, dropped fields by
//! name and reason. Key names sent by clients are bounded in number; audit records and metrics
//! show only names the allowlist or the Segment spec uses, `veil filter`'s summary any that look
//! like identifiers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use super::reject::{DropReason, RejectReason, push_reportable_key};
use super::{DropSink, DroppedField};
use crate::allowlist::{LeafId, NodeId, Policy, key_summary, short_eq};

/// Distinct client key names remembered before further ones count as `*`.
const MAX_DISTINCT_KEYS: usize = 1024;

/// Slots of the direct-mapped front of [`DropCounts`]'s key counters.
const RECENT_SLOTS: usize = 64;

/// Counts per [`DropReason`].
type ReasonCounts = [u64; DropReason::ALL.len()];

/// Dropped-field counters, cheap to update on the hot path.
#[derive(Debug, Default, Clone)]
pub struct DropCounts {
    leaves: FxHashMap<(LeafId, DropReason), u64>,
    /// Every counted client key under its parent, with counts per reason.
    keys: Vec<(NodeId, Box<str>, ReasonCounts)>,
    /// (parent, key summary) → positions in `keys` (more than one only when summaries collide).
    index: FxHashMap<(NodeId, u64), Vec<usize>>,
    /// The same keys are dropped message after message: a direct-mapped front remembers their
    /// positions, so most updates touch no hash map.
    recent: Vec<usize>,
}

#[inline(always)]
fn reason_index(reason: DropReason) -> usize {
    // `ALL` lists the reasons in declaration order, so the discriminant is the index.
    let index = reason as usize;
    debug_assert_eq!(DropReason::ALL.get(index), Some(&reason));
    index
}

impl DropCounts {
    fn position_of(&mut self, parent: NodeId, key: &str, summary: u64) -> usize {
        let keys = &self.keys;
        let found = self.index.get(&(parent, summary)).and_then(|positions| {
            positions
                .iter()
                .copied()
                .find(|&at| keys[at].0 == parent && short_eq(keys[at].1.as_bytes(), key.as_bytes()))
        });
        if let Some(at) = found {
            return at;
        }
        if self.keys.len() >= MAX_DISTINCT_KEYS && key != "*" {
            return self.position_of(parent, "*", key_summary(b"*"));
        }
        self.keys
            .push((parent, key.into(), ReasonCounts::default()));
        let at = self.keys.len() - 1;
        self.index.entry((parent, summary)).or_default().push(at);
        at
    }
}

impl DropSink for DropCounts {
    #[inline]
    fn dropped(&mut self, field: DroppedField<'_>, reason: DropReason) {
        match field {
            DroppedField::Leaf(leaf) => *self.leaves.entry((leaf, reason)).or_default() += 1,
            DroppedField::Key { parent, key } => {
                self.dropped_key(parent, key, key_summary(key.as_bytes()), reason);
            }
        }
    }

    #[inline]
    fn dropped_key(&mut self, parent: NodeId, key: &str, summary: u64, reason: DropReason) {
        debug_assert_eq!(summary, key_summary(key.as_bytes()));
        if self.recent.is_empty() {
            self.recent = vec![usize::MAX; RECENT_SLOTS];
        }
        let front = ((summary ^ (summary >> 29) ^ u64::from(parent)) as usize) & (RECENT_SLOTS - 1);
        let cached = self.recent[front];
        if let Some((known_parent, known, counts)) = self.keys.get_mut(cached)
            && *known_parent == parent
            && short_eq(known.as_bytes(), key.as_bytes())
        {
            counts[reason_index(reason)] += 1;
            return;
        }
        let at = self.position_of(parent, key, summary);
        self.recent[front] = at;
        self.keys[at].2[reason_index(reason)] += 1;
    }
}

impl DropCounts {
    /// Counts by field path and reason as audit records and metrics show them: a client key
    /// that neither the allowlist nor the Segment spec names shows as `*`
    /// ([`Policy::push_exported_key`]), since it could name a person or a document.
    pub fn by_field(&self, policy: &Policy) -> BTreeMap<(String, DropReason), u64> {
        self.merged(policy, |path, key| policy.push_exported_key(path, key))
    }

    /// Counts by field path and reason with every identifier-like client key as sent
    /// ([`push_reportable_key`]): for `veil filter`'s summary, which stays on the operator's
    /// screen and is where a reviewer finds what clients send that the allowlist leaves out.
    pub fn by_sent_field(&self, policy: &Policy) -> BTreeMap<(String, DropReason), u64> {
        self.merged(policy, push_reportable_key)
    }

    fn merged(
        &self,
        policy: &Policy,
        push_key: impl Fn(&mut String, &str),
    ) -> BTreeMap<(String, DropReason), u64> {
        let mut merged = BTreeMap::new();
        for ((leaf, reason), count) in &self.leaves {
            *merged
                .entry((policy.leaf_path(*leaf).to_owned(), *reason))
                .or_default() += count;
        }
        for (parent, key, counts) in &self.keys {
            let mut path = policy.node_path(*parent).to_owned();
            push_key(&mut path, key);
            for (reason, count) in DropReason::ALL.iter().zip(counts) {
                if *count > 0 {
                    *merged.entry((path.clone(), *reason)).or_default() += count;
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
        let mut text = format!(
            "messages: {} in, {} out, {} rejected\n",
            self.messages_in, self.messages_out, rejected
        );
        for (reason, count) in &self.rejected {
            let _ = writeln!(text, "  rejected {}: {count}", reason.as_str());
        }
        let dropped = self.dropped.by_sent_field(policy);
        if !dropped.is_empty() {
            text.push_str("fields dropped:\n");
        }
        for ((path, reason), count) in dropped {
            let _ = writeln!(text, "  {path} ({}): {count}", reason.as_str());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::Allowlist;

    #[test]
    fn client_key_names_are_bounded_and_counted_exactly() {
        let policy = Allowlist::parse("version: 1\nidentify: {}\n")
            .expect("valid")
            .compile();
        let mut counts = DropCounts::default();
        for _ in 0..3 {
            for index in 0..(MAX_DISTINCT_KEYS + 100) {
                let key = format!("k{index}");
                counts.dropped(
                    DroppedField::Key {
                        parent: policy.root(),
                        key: &key,
                    },
                    DropReason::NotAllowlisted,
                );
            }
            counts.dropped(
                DroppedField::Key {
                    parent: policy.root(),
                    key: "ip",
                },
                DropReason::TypeMismatch,
            );
        }
        // As sent (the dry run's summary), so the cap shows; audit records would mask `k0` too.
        let by_field = counts.by_sent_field(&policy);
        assert_eq!(
            by_field.get(&("k0".to_owned(), DropReason::NotAllowlisted)),
            Some(&3)
        );
        assert_eq!(
            by_field.get(&("*".to_owned(), DropReason::NotAllowlisted)),
            Some(&(3 * 100)),
            "beyond the cap, keys count as *"
        );
        assert_eq!(
            by_field.get(&("*".to_owned(), DropReason::TypeMismatch)),
            Some(&3),
            "a key first seen past the cap"
        );
        assert!(!by_field.contains_key(&("ip".to_owned(), DropReason::TypeMismatch)));
        let total: u64 = by_field.values().sum();
        assert_eq!(total, 3 * (MAX_DISTINCT_KEYS as u64 + 101));
        let names: std::collections::BTreeSet<&String> =
            by_field.keys().map(|(name, _)| name).collect();
        assert_eq!(names.len(), MAX_DISTINCT_KEYS + 1, "the cap, plus `*`");
    }
}
