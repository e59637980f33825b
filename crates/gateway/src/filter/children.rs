//! A per-filter index of the policy trie's children, built once per [`super::TenantFilter`]:
//! each node's children sit in a small direct-mapped table whose hash has no collisions among
//! them, so a key is looked up with one load, one summary comparison and one byte comparison,
//! with no probing loop (whose data-dependent branches the walk paid on every key).

use crate::allowlist::{LeafId, NodeId, Policy, key_summary, short_eq};

/// An allowlisted child as the walk needs it: the node, its position among its siblings (for
/// duplicate checks) and its leaf, so a leaf's value is read without another table lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) child: NodeId,
    pub(crate) position: u32,
    /// The child's leaf, or [`NO_LEAF`] for an object node.
    pub(crate) leaf: LeafId,
}

/// [`Slot::leaf`] of a node that is not a leaf.
pub(crate) const NO_LEAF: LeafId = LeafId::MAX;

/// Multipliers tried, in order, for a node's collision-free slot function.
const MULTIPLIERS: [u64; 6] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
    0xA076_1D64_78BD_642F,
    0xE703_7ED1_A0B4_28DB,
];

/// A node's children as found on the leaves' paths: (summary, key, child, position).
type Siblings = Vec<(u64, Box<str>, NodeId, u32)>;

/// One slot: an allowlisted child, or empty (`child == NodeId::MAX`, a summary no key has).
#[derive(Debug, Clone)]
struct Entry {
    summary: u64,
    key: Box<str>,
    child: NodeId,
    /// The child's position among its siblings (for duplicate checks).
    position: u32,
    /// The child's leaf, or [`NO_LEAF`].
    leaf: LeafId,
}

/// A node's table: `entries[offset + (summary * multiplier) >> shift]`.
#[derive(Debug, Clone, Copy)]
struct Table {
    offset: u32,
    shift: u32,
    multiplier: u64,
    /// No collision-free table was found: ask the policy (never happens for sane policies).
    fallback: bool,
}

/// Children of every policy node, for lookups without probing.
#[derive(Debug, Clone)]
pub(crate) struct ChildIndex {
    tables: Vec<Table>,
    entries: Vec<Entry>,
}

fn empty_entry() -> Entry {
    // The empty key's summary is 0, so no key both matches `!0` and compares equal to "".
    Entry {
        summary: !key_summary(b""),
        key: "".into(),
        child: NodeId::MAX,
        position: 0,
        leaf: NO_LEAF,
    }
}

impl ChildIndex {
    /// Indexes every node of `policy` (all nodes lie on some leaf's path).
    pub(crate) fn new(policy: &Policy) -> ChildIndex {
        // (summary, key, child, position) per node, found by walking each leaf's path.
        let mut children: Vec<Siblings> = vec![Vec::new()];
        for (_, path, _) in policy.leaves() {
            let mut node = policy.root();
            for segment in path.split('.') {
                let summary = key_summary(segment.as_bytes());
                let Some((child, position)) = policy.child_slot(node, summary, segment) else {
                    debug_assert!(false, "every leaf path is in the trie");
                    break;
                };
                let needed = (child as usize + 1).max(node as usize + 1);
                if children.len() < needed {
                    children.resize(needed, Vec::new());
                }
                let siblings = &mut children[node as usize];
                if !siblings.iter().any(|(_, _, known, _)| *known == child) {
                    siblings.push((summary, segment.into(), child, position as u32));
                }
                node = child;
            }
        }
        let mut index = ChildIndex {
            tables: Vec::with_capacity(children.len()),
            entries: Vec::new(),
        };
        for siblings in &children {
            let table = index.table_for(policy, siblings);
            index.tables.push(table);
        }
        index
    }

    /// Appends a collision-free table for `siblings` and describes it.
    fn table_for(&mut self, policy: &Policy, siblings: &Siblings) -> Table {
        let offset = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let minimum_bits = (siblings.len().max(1) * 2)
            .next_power_of_two()
            .trailing_zeros();
        for bits in minimum_bits..minimum_bits + 4 {
            for multiplier in MULTIPLIERS {
                let shift = 64 - bits;
                let slot = |summary: u64| (summary.wrapping_mul(multiplier) >> shift) as usize;
                let mut taken = vec![false; 1 << bits];
                let collision_free = siblings
                    .iter()
                    .all(|(summary, ..)| !std::mem::replace(&mut taken[slot(*summary)], true));
                if !collision_free {
                    continue;
                }
                let mut entries = vec![empty_entry(); 1 << bits];
                for (summary, key, child, position) in siblings {
                    entries[slot(*summary)] = Entry {
                        summary: *summary,
                        key: key.clone(),
                        child: *child,
                        position: *position,
                        leaf: policy.leaf_at(*child).unwrap_or(NO_LEAF),
                    };
                }
                self.entries.extend(entries);
                return Table {
                    offset,
                    shift,
                    multiplier,
                    fallback: false,
                };
            }
        }
        Table {
            offset,
            shift: 63,
            multiplier: 0,
            fallback: true,
        }
    }

    /// Nodes indexed (every node of the policy trie).
    pub(crate) fn node_count(&self) -> usize {
        self.tables.len()
    }

    /// The allowlisted child of `node` named `key` (whose summary is `summary`): the same
    /// child and position as [`Policy::child_slot`], with the child's leaf.
    #[inline(always)]
    pub(crate) fn child_slot(
        &self,
        policy: &Policy,
        node: NodeId,
        summary: u64,
        key: &str,
    ) -> Option<Slot> {
        let table = self.tables.get(node as usize)?;
        if table.fallback {
            return Self::fallback_slot(policy, node, summary, key);
        }
        let slot = (summary.wrapping_mul(table.multiplier) >> table.shift) as usize;
        let entry = self.entries.get(table.offset as usize + slot)?;
        (entry.summary == summary && short_eq(entry.key.as_bytes(), key.as_bytes())).then_some(
            Slot {
                child: entry.child,
                position: entry.position,
                leaf: entry.leaf,
            },
        )
    }

    /// [`ChildIndex::child_slot`] for a node without a collision-free table.
    #[cold]
    fn fallback_slot(policy: &Policy, node: NodeId, summary: u64, key: &str) -> Option<Slot> {
        let (child, position) = policy.child_slot(node, summary, key)?;
        Some(Slot {
            child,
            position: u32::try_from(position).unwrap_or(u32::MAX),
            leaf: policy.leaf_at(child).unwrap_or(NO_LEAF),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::Allowlist;

    #[test]
    fn lookups_agree_with_the_policy_for_listed_and_unlisted_keys() {
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../allowlist.yaml");
        let policy = Allowlist::load(&path)
            .expect("allowlist.yaml is valid")
            .compile();
        let index = ChildIndex::new(&policy);
        let mut nodes = vec![policy.root()];
        let mut probes: Vec<String> = [
            "",
            "x",
            "ip",
            "name",
            "id",
            "userid",
            "userId ",
            "properties_",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for (_, path, _) in policy.leaves() {
            probes.extend(path.split('.').map(str::to_owned));
        }
        let mut checked = 0;
        while let Some(node) = nodes.pop() {
            for probe in &probes {
                let summary = key_summary(probe.as_bytes());
                let expected = policy.child_slot(node, summary, probe);
                let found = index.child_slot(&policy, node, summary, probe);
                assert_eq!(
                    found.map(|slot| (slot.child, slot.position as usize)),
                    expected,
                    "node {node}, key {probe:?}"
                );
                assert_eq!(
                    found.map(|slot| slot.leaf),
                    expected.map(|(child, _)| policy.leaf_at(child).unwrap_or(NO_LEAF)),
                    "node {node}, key {probe:?}"
                );
                if let Some((child, _)) = expected
                    && !nodes.contains(&child)
                {
                    nodes.push(child);
                }
                checked += 1;
            }
        }
        assert!(checked > probes.len() * 5, "the walk reached nested nodes");
    }
}
