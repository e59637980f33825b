//! The allowlist compiled for the hot path: a trie of allowlisted paths whose leaves carry, per
//! rule (message type or track event), whether they may leave for baseline or enhanced tenants.
//!
//! One trie serves every rule so the filter can walk a message in a single pass before it knows
//! the message's type or event name (clients send keys in any order).

use rustc_hash::{FxHashMap, FxHashSet};
use veil_sanitized::{MessageKind, Tier};

use super::forbidden::{class_words, words_of_path};
use super::vocabulary::{GENERIC_WORDS, SPEC_EVENTS, SPEC_KEYS};
use super::{Allowlist, FieldAction, Kept, Scope, is_reportable_key, push_reportable_key};

/// Index of a trie node; the root is node 0.
pub type NodeId = u32;
/// Index of a leaf (an allowlisted value path).
pub type LeafId = u32;
/// Index of a rule: one per accepted message type, and one per allowlisted track event.
pub type RuleId = u32;

/// A set of rules, one bit each: the first 64 inline (the filter tests one per captured value,
/// and a policy rarely has more rules), the rest in `more`.
#[derive(Debug, Clone, Default)]
struct RuleSet {
    first: u64,
    more: Vec<u64>,
}

impl RuleSet {
    fn with_capacity(rules: usize) -> RuleSet {
        RuleSet {
            first: 0,
            more: vec![0; rules.div_ceil(64).saturating_sub(1)],
        }
    }

    fn insert(&mut self, rule: RuleId) {
        let bit = 1 << (rule % 64);
        match (rule / 64) as usize {
            0 => self.first |= bit,
            word => self.more[word - 1] |= bit,
        }
    }

    #[inline]
    fn contains(&self, rule: RuleId) -> bool {
        let bit = 1 << (rule % 64);
        match (rule / 64) as usize {
            0 => self.first & bit != 0,
            word => self.more.get(word - 1).is_some_and(|more| more & bit != 0),
        }
    }
}

/// What the filter does with a leaf's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafAction {
    /// Keep a value that is what [`Kept`] allows.
    Keep(Kept),
    /// Pseudonymize in this identifier domain.
    Pseudonymize(Box<str>),
}

#[derive(Debug, Clone)]
struct Node {
    path: Box<str>,
    /// (key summary, key, child): the summary rules out most keys without comparing bytes.
    children: Vec<(u64, Box<str>, NodeId)>,
    /// Open-addressed index into `children` by summary (entry = position + 1, 0 = empty).
    index: Box<[u16]>,
    leaf: Option<LeafId>,
}

#[derive(Debug, Clone)]
struct Leaf {
    path: Box<str>,
    /// `"path":` as JSON, written once per kept value.
    json_key: Box<[u8]>,
    action: LeafAction,
    baseline: RuleSet,
    enhanced: RuleSet,
}

/// Whether a leaf may leave under a rule and tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// It leaves.
    Allowed,
    /// Only tenants on the enhanced tier may send it.
    EnhancedOnly,
    /// Not allowlisted for this message type or event.
    NotAllowlisted,
}

/// The compiled policy the filter runs.
#[derive(Debug, Clone)]
pub struct Policy {
    digest: String,
    nodes: Vec<Node>,
    leaves: Vec<Leaf>,
    kind_rules: FxHashMap<MessageKind, RuleId>,
    track_events: FxHashMap<Box<str>, (RuleId, Tier)>,
    view_names: FxHashMap<MessageKind, FxHashMap<Box<str>, Tier>>,
    /// Words a dropped client key may be made of to be shown as sent: those of the allowlist's
    /// own keys, the Segment spec's keys, the forbidden classes' rules and generic field words
    /// ([`Policy::push_exported_key`]).
    known_words: FxHashSet<Box<str>>,
}

impl Policy {
    pub(super) fn compile(allowlist: &Allowlist) -> Policy {
        let mut kind_rules = FxHashMap::default();
        let mut track_events = FxHashMap::default();
        let mut view_names: FxHashMap<MessageKind, FxHashMap<Box<str>, Tier>> =
            FxHashMap::default();
        let mut next_rule: RuleId = 0;
        for kind in &allowlist.kinds {
            if *kind != MessageKind::Track {
                kind_rules.insert(*kind, next_rule);
                next_rule += 1;
            }
        }
        for name in &allowlist.names {
            if name.kind == MessageKind::Track {
                track_events.insert(name.name.as_str().into(), (next_rule, name.tier));
                next_rule += 1;
            } else {
                view_names
                    .entry(name.kind)
                    .or_default()
                    .insert(name.name.as_str().into(), name.tier);
            }
        }
        let rule_count = next_rule as usize;
        let mut policy = Policy {
            digest: allowlist.digest.clone(),
            nodes: vec![Node {
                path: "".into(),
                children: Vec::new(),
                index: Box::new([]),
                leaf: None,
            }],
            leaves: Vec::new(),
            kind_rules,
            track_events,
            view_names,
            known_words: FxHashSet::default(),
        };
        for field in &allowlist.fields {
            let rules: Vec<RuleId> = match &field.scope {
                Scope::Common => (0..next_rule).collect(),
                Scope::Kind(MessageKind::Track) => policy
                    .track_events
                    .values()
                    .map(|(rule, _)| *rule)
                    .collect(),
                Scope::Kind(kind) => policy.kind_rules.get(kind).copied().into_iter().collect(),
                Scope::Event(event) => policy
                    .track_events
                    .get(event.as_str())
                    .map(|(rule, _)| *rule)
                    .into_iter()
                    .collect(),
            };
            let leaf = policy.leaf_for_path(&field.path, &field.action, rule_count);
            for rule in rules {
                policy.leaves[leaf as usize].enhanced.insert(rule);
                if field.tier == Tier::Baseline {
                    policy.leaves[leaf as usize].baseline.insert(rule);
                }
            }
        }
        policy.build_indexes();
        let allowlist_keys: Vec<Box<str>> = policy
            .nodes
            .iter()
            .flat_map(|node| node.children.iter().map(|(_, name, _)| name.clone()))
            .collect();
        policy.known_words = SPEC_KEYS
            .iter()
            .copied()
            .chain(allowlist_keys.iter().map(AsRef::as_ref))
            .flat_map(|key| words_of_path(key).into_iter().flatten())
            .map(String::into_boxed_str)
            .chain(
                class_words()
                    .chain(GENERIC_WORDS.iter().copied())
                    .map(Box::from),
            )
            .collect();
        policy
    }

    /// Appends a client-chosen `key` to `path` as audit records and metrics may show it: as it
    /// is when it reads like an identifier ([`is_reportable_key`]) and each of its words is a
    /// known one (`seat_type`, `userEmail`, `document_name`); else `*`, since any other key
    /// could name a person or a document (`properties.kofi_mensah`).
    pub fn push_exported_key(&self, path: &mut String, key: &str) {
        let known = is_reportable_key(key)
            && words_of_path(key).iter().flatten().all(|word| {
                // A known word with up to two digits after it (`address2`, `line1`, `2`).
                let stem = word.trim_end_matches(|character: char| character.is_ascii_digit());
                word.len() - stem.len() <= 2 && (stem.is_empty() || self.known_words.contains(stem))
            });
        push_reportable_key(path, if known { key } else { "*" });
    }

    /// Whether a refused track event's name may appear in audit records: one the allowlist
    /// names (for enhanced tenants only, say) or the Segment spec's; any other could name a
    /// person or a document (`Opened Acme Merger Agreement`).
    pub fn is_known_event(&self, event: &str) -> bool {
        self.track_events.contains_key(event) || SPEC_EVENTS.contains(&event)
    }

    fn leaf_for_path(&mut self, path: &str, action: &FieldAction, rule_count: usize) -> LeafId {
        let mut node: NodeId = 0;
        for segment in path.split('.') {
            let existing = self.nodes[node as usize]
                .children
                .iter()
                .find(|(_, name, _)| name.as_ref() == segment)
                .map(|(_, _, child)| *child);
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len() as NodeId;
                    let parent_path = &self.nodes[node as usize].path;
                    let child_path: Box<str> = if parent_path.is_empty() {
                        segment.into()
                    } else {
                        format!("{parent_path}.{segment}").into()
                    };
                    self.nodes.push(Node {
                        path: child_path,
                        children: Vec::new(),
                        index: Box::new([]),
                        leaf: None,
                    });
                    self.nodes[node as usize].children.push((
                        key_summary(segment.as_bytes()),
                        segment.into(),
                        child,
                    ));
                    child
                }
            };
        }
        if let Some(leaf) = self.nodes[node as usize].leaf {
            return leaf;
        }
        let leaf = self.leaves.len() as LeafId;
        let json_key = format!("{}:", serde_json::Value::String(path.to_owned()))
            .into_bytes()
            .into_boxed_slice();
        self.leaves.push(Leaf {
            path: path.into(),
            json_key,
            action: match action {
                FieldAction::Keep(kept) => LeafAction::Keep(kept.clone()),
                FieldAction::Pseudonymize { domain } => {
                    LeafAction::Pseudonymize(domain.as_str().into())
                }
            },
            baseline: RuleSet::with_capacity(rule_count),
            enhanced: RuleSet::with_capacity(rule_count),
        });
        self.nodes[node as usize].leaf = Some(leaf);
        leaf
    }

    /// Digest of the allowlist this policy was compiled from.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The trie's root: the message object itself.
    pub fn root(&self) -> NodeId {
        0
    }

    /// The child of `node` named `key`, if any allowlisted path goes through it.
    #[inline]
    pub fn child(&self, node: NodeId, key: &str) -> Option<NodeId> {
        self.child_by_summary(node, key_summary(key.as_bytes()), key)
    }

    /// [`Policy::child`] with the key's [`key_summary`] already computed.
    #[inline]
    pub fn child_by_summary(&self, node: NodeId, summary: u64, key: &str) -> Option<NodeId> {
        self.child_slot(node, summary, key).map(|(child, _)| child)
    }

    /// The child named `key` and its position among its siblings (for per-object bit sets).
    #[inline]
    pub fn child_slot(&self, node: NodeId, summary: u64, key: &str) -> Option<(NodeId, usize)> {
        let node = &self.nodes[node as usize];
        let mask = node.index.len().wrapping_sub(1);
        if node.index.is_empty() {
            return None;
        }
        let mut slot = slot_of(summary) & mask;
        loop {
            let entry = usize::from(node.index[slot]);
            if entry == 0 {
                return None;
            }
            let (child_summary, name, child) = &node.children[entry - 1];
            if *child_summary == summary && short_eq(name.as_bytes(), key.as_bytes()) {
                return Some((*child, entry - 1));
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Builds every node's child index once all paths are in.
    fn build_indexes(&mut self) {
        for node in &mut self.nodes {
            let size = (node.children.len() * 4).next_power_of_two().max(4);
            let mut index = vec![0u16; size];
            for (position, (summary, _, _)) in node.children.iter().enumerate() {
                let mut slot = slot_of(*summary) & (size - 1);
                while index[slot] != 0 {
                    slot = (slot + 1) & (size - 1);
                }
                index[slot] = u16::try_from(position + 1).unwrap_or(u16::MAX);
            }
            node.index = index.into_boxed_slice();
        }
    }

    /// The leaf at `node`, if an allowlisted value path ends there.
    #[inline]
    pub fn leaf_at(&self, node: NodeId) -> Option<LeafId> {
        self.nodes[node as usize].leaf
    }

    /// Dotted path of a node (empty for the root).
    pub fn node_path(&self, node: NodeId) -> &str {
        &self.nodes[node as usize].path
    }

    /// Every allowlisted leaf in declaration order: id, dotted path, action. The processor
    /// derives its typed columns from these.
    pub fn leaves(&self) -> impl Iterator<Item = (LeafId, &str, &LeafAction)> {
        self.leaves
            .iter()
            .enumerate()
            .map(|(index, leaf)| (index as LeafId, &*leaf.path, &leaf.action))
    }

    /// Dotted path of a leaf.
    pub fn leaf_path(&self, leaf: LeafId) -> &str {
        &self.leaves[leaf as usize].path
    }

    /// A leaf's path as a JSON object key with its colon: `"properties.feature":`.
    #[inline]
    pub fn leaf_json_key(&self, leaf: LeafId) -> &[u8] {
        &self.leaves[leaf as usize].json_key
    }

    /// What to do with a leaf's value.
    #[inline]
    pub fn leaf_action(&self, leaf: LeafId) -> &LeafAction {
        &self.leaves[leaf as usize].action
    }

    /// Whether a leaf leaves under `rule` for a tenant of `tier`.
    #[inline]
    pub fn permission(&self, leaf: LeafId, rule: RuleId, tier: Tier) -> Permission {
        let leaf = &self.leaves[leaf as usize];
        let allowed = match tier {
            Tier::Baseline => &leaf.baseline,
            Tier::Enhanced => &leaf.enhanced,
        };
        if allowed.contains(rule) {
            Permission::Allowed
        } else if leaf.enhanced.contains(rule) {
            Permission::EnhancedOnly
        } else {
            Permission::NotAllowlisted
        }
    }

    /// The rule of a non-track message type, if the type is allowlisted.
    pub fn kind_rule(&self, kind: MessageKind) -> Option<RuleId> {
        debug_assert!(
            kind != MessageKind::Track,
            "track messages are ruled per event"
        );
        self.kind_rules.get(&kind).copied()
    }

    /// The rule and tier of an allowlisted track event.
    pub fn event_rule(&self, event: &str) -> Option<(RuleId, Tier)> {
        self.track_events.get(event).copied()
    }

    /// The tier needed to keep a page or screen name, if it is allowlisted.
    pub fn view_name_tier(&self, kind: MessageKind, name: &str) -> Option<Tier> {
        self.view_names.get(&kind)?.get(name).copied()
    }
}

/// Byte equality without a call into `memcmp` or a byte loop for short keys: two overlapping
/// fixed-size loads cover any length up to 16.
#[inline(always)]
pub fn short_eq(left: &[u8], right: &[u8]) -> bool {
    let length = left.len();
    if length != right.len() {
        return false;
    }
    let word = |bytes: &[u8], at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let half = |bytes: &[u8], at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    match length {
        0..=3 => left == right,
        4..=7 => {
            half(left, 0) == half(right, 0) && half(left, length - 4) == half(right, length - 4)
        }
        8..=16 => {
            word(left, 0) == word(right, 0) && word(left, length - 8) == word(right, length - 8)
        }
        _ => left == right,
    }
}

#[inline(always)]
fn slot_of(summary: u64) -> usize {
    (summary ^ (summary >> 23) ^ (summary >> 41)) as usize
}

/// A cheap summary of a key: equal keys have equal summaries, so comparing summaries first
/// rules out most unequal keys without touching their bytes. Fixed-size loads only (no copy
/// through the stack), as this runs for every key of every message.
#[inline(always)]
pub fn key_summary(key: &[u8]) -> u64 {
    let length = key.len();
    let word = |at: usize| {
        key.get(at..at + 8)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let half = |at: usize| {
        key.get(at..at + 4)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map_or(0, u32::from_le_bytes)
    };
    let mixed = if length >= 8 {
        word(0) ^ word(length - 8).rotate_left(29)
    } else if length >= 4 {
        u64::from(half(0)) ^ (u64::from(half(length - 4)) << 32)
    } else {
        key.iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
    };
    mixed ^ (length as u64).rotate_right(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_eq_agrees_with_slice_equality_at_every_length() {
        let text: Vec<u8> = (0..40u8).map(|byte| b'a' + byte % 26).collect();
        for length in 0..text.len() {
            let left = &text[..length];
            assert!(short_eq(left, left));
            for at in 0..length {
                let mut right = left.to_vec();
                right[at] ^= 0x20;
                assert!(
                    !short_eq(left, &right),
                    "length {length}, differing at {at}"
                );
            }
            assert!(!short_eq(left, &text[..length + 1]));
        }
    }
}
