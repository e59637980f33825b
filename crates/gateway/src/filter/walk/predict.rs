//! Key-order prediction: clients send the same object shapes message after message, so each
//! allowlisted object remembers (per worker, per filter) the keys it held last time, in order,
//! with what the walk computed for them: the key's summary and its allowlisted child.
//!
//! A predicted key is accepted after one comparison of the input's bytes with the remembered
//! `,"key":`, instead of scanning the key, summarizing it and looking it up. The duplicate check
//! stays exact: a remembered sequence is recorded only from keys that passed the full check, so
//! it holds no key twice, and a prediction is used only while every earlier key of the object
//! matched it; the first key that does not match ends prediction for the rest of that object
//! and the full path (with the key stack the hits kept up to date) takes over. It records the
//! object's keys in place of the remembered ones when there were none to lose, or when the
//! previous object at that node did not match either (so one odd shape in mixed traffic does
//! not evict the usual one).

use crate::allowlist::NodeId;
use crate::filter::children::Slot;

/// Filters a worker remembers key orders for at once (a worker serves few tenants at a time).
const MAX_FILTERS: usize = 8;

/// Keys remembered per object; far below [`super::MAX_KEYS_PER_OBJECT`], so a predicted prefix
/// can never reach that limit.
pub(super) const MAX_PREDICTED_KEYS: usize = 64;

/// Longest key remembered (longer keys end the recording of their object).
const MAX_PREDICTED_KEY_BYTES: usize = 64;

/// One remembered key: where its `,"key":` sits in [`NodeOrder::bytes`], and what the full
/// path computed for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Predicted {
    start: u32,
    end: u32,
    /// The key's [`crate::allowlist::key_summary`].
    pub(super) summary: u64,
    /// The key's allowlisted child under the object's node, if any.
    pub(super) listed: Option<Slot>,
}

/// The keys one trie node's object held last time, in order, without duplicates.
#[derive(Debug, Default, Clone)]
pub(crate) struct NodeOrder {
    keys: Vec<Predicted>,
    /// Every key as `,"key":`, back to back.
    bytes: Vec<u8>,
    /// Objects in a row that did not match (mixed traffic: one odd shape does not replace the
    /// usual one, a second in a row does).
    misses: u8,
}

impl NodeOrder {
    /// The `index`th remembered key and its `,"key":` bytes.
    #[inline(always)]
    pub(super) fn get(&self, index: usize) -> Option<(&Predicted, &[u8])> {
        let predicted = self.keys.get(index)?;
        let bytes = self
            .bytes
            .get(predicted.start as usize..predicted.end as usize)?;
        Some((predicted, bytes))
    }

    /// An object whose key at `index` did not match: whether to replace the remembered keys
    /// from there on with the object's (always when there are none to lose).
    #[inline]
    pub(super) fn mismatch_replaces(&mut self, index: usize) -> bool {
        if index >= self.keys.len() {
            return true;
        }
        self.misses += 1;
        if self.misses < 2 {
            return false;
        }
        self.misses = 0;
        true
    }

    /// An object matched the remembered keys up to its end.
    #[inline]
    pub(super) fn matched(&mut self) {
        self.misses = 0;
    }

    /// Forgets the keys from `index` on (they did not match this time).
    #[inline]
    pub(super) fn truncate(&mut self, index: usize) {
        if let Some(predicted) = self.keys.get(index) {
            self.bytes.truncate(predicted.start as usize);
            self.keys.truncate(index);
        }
    }

    /// Appends the next key of the object being read; false when it cannot be remembered (too
    /// many or too long keys), which ends recording for this object.
    #[inline]
    pub(super) fn record(&mut self, key: &str, summary: u64, listed: Option<Slot>) -> bool {
        debug_assert!(
            !key.bytes()
                .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\'),
            "only keys borrowed from the input, which had no escapes, are recorded"
        );
        if self.keys.len() >= MAX_PREDICTED_KEYS || key.len() > MAX_PREDICTED_KEY_BYTES {
            return false;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b",\"");
        self.bytes.extend_from_slice(key.as_bytes());
        self.bytes.extend_from_slice(b"\":");
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(self.bytes.len())) else {
            self.bytes.truncate(start);
            return false;
        };
        self.keys.push(Predicted {
            start,
            end,
            summary,
            listed,
        });
        true
    }

    /// The remembered keys, in order.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<String> {
        (0..self.keys.len())
            .filter_map(|index| self.get(index))
            .map(|(_, bytes)| String::from_utf8_lossy(Self::key_text(bytes)).into_owned())
            .collect()
    }

    /// The remembered key at `index` as text (`,"` and `":` stripped).
    pub(super) fn key_text(bytes: &[u8]) -> &[u8] {
        bytes
            .get(2..bytes.len().saturating_sub(2))
            .unwrap_or_default()
    }
}

/// Remembered key orders of one worker, per filter (trie nodes belong to one filter's policy).
#[derive(Debug, Default)]
pub(crate) struct KeyOrders {
    /// (filter id, one [`NodeOrder`] per trie node), most recently added last.
    filters: Vec<(u64, Vec<NodeOrder>)>,
}

impl KeyOrders {
    /// The node orders of the filter `filter_id`, whose policy has `nodes` trie nodes.
    #[inline]
    pub(crate) fn for_filter(&mut self, filter_id: u64, nodes: usize) -> &mut [NodeOrder] {
        let found = self.filters.iter().position(|(id, _)| *id == filter_id);
        let at = match found {
            Some(at) => at,
            None => {
                if self.filters.len() >= MAX_FILTERS {
                    self.filters.remove(0);
                }
                self.filters
                    .push((filter_id, vec![NodeOrder::default(); nodes]));
                self.filters.len() - 1
            }
        };
        &mut self.filters[at].1
    }
}

/// Where a node's remembered order is, if the node has one.
#[inline(always)]
pub(super) fn order_index(orders: &[NodeOrder], node: Option<NodeId>) -> Option<usize> {
    let index = node? as usize;
    (index < orders.len()).then_some(index)
}

/// Byte equality for the short runs compared here (`,"key":`), with fixed-size loads.
#[inline(always)]
pub(super) fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    let length = left.len();
    if length != right.len() {
        return false;
    }
    if length <= 16 {
        return crate::allowlist::short_eq(left, right);
    }
    let word = |bytes: &[u8], at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    };
    if length <= 32 {
        let last = length - 16;
        return word(left, 0) == word(right, 0)
            && word(left, 8) == word(right, 8)
            && word(left, last) == word(right, last)
            && word(left, last + 8) == word(right, last + 8);
    }
    left == right
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_agrees_with_slice_equality_at_every_length() {
        let text: Vec<u8> = (0..80u8).map(|byte| b'a' + byte % 26).collect();
        for length in 0..70 {
            let left = &text[..length];
            assert!(same_bytes(left, left));
            for at in 0..length {
                let mut right = left.to_vec();
                right[at] ^= 0x20;
                assert!(
                    !same_bytes(left, &right),
                    "length {length}, differing at {at}"
                );
            }
            assert!(!same_bytes(left, &text[..length + 1]));
        }
    }

    #[test]
    fn orders_record_truncate_and_are_kept_per_filter() {
        let mut order = NodeOrder::default();
        assert!(order.record("a", 1, None));
        assert!(order.record("bc", 2, None));
        assert_eq!(order.get(1).map(|(_, bytes)| bytes), Some(&b",\"bc\":"[..]));
        assert_eq!(NodeOrder::key_text(b",\"bc\":"), b"bc");
        order.truncate(1);
        assert!(order.get(1).is_none());
        assert!(order.record("d", 3, None));
        assert_eq!(order.get(1).map(|(key, _)| key.summary), Some(3));
        assert!(!order.record(&"k".repeat(MAX_PREDICTED_KEY_BYTES + 1), 4, None));

        // Past the remembered keys, recording always extends them; a mismatch within them
        // replaces them only on the second object in a row that does not match.
        assert!(order.mismatch_replaces(2));
        assert!(!order.mismatch_replaces(1));
        order.matched();
        assert!(!order.mismatch_replaces(0));
        assert!(order.mismatch_replaces(0));
        assert!(!order.mismatch_replaces(0), "counting starts over");

        let mut orders = KeyOrders::default();
        for id in 0..(MAX_FILTERS as u64 + 2) {
            assert_eq!(orders.for_filter(id, 3).len(), 3);
        }
        assert_eq!(orders.filters.len(), MAX_FILTERS, "bounded");
        orders.for_filter(5, 3)[0].record("x", 9, None);
        assert!(
            orders.for_filter(5, 3)[0].get(0).is_some(),
            "kept per filter"
        );
        assert!(orders.for_filter(6, 3)[0].get(0).is_none());
    }
}
