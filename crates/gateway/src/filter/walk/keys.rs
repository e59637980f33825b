//! Reading an object's keys: each key's summary, its allowlisted child, and the duplicate check
//! (exact for allowlisted children by their position, a per-object bit mask and the key stack
//! for the rest), so a key spelled twice, escaped or not, refuses the message.

use std::borrow::Cow;

use super::predict::{NodeOrder, order_index, same_bytes};
use super::{MAX_KEYS_PER_OBJECT, Refusal, Walk, syntax};
use crate::allowlist::{NodeId, key_summary, short_eq};
use crate::filter::children::Slot;
use crate::filter::reject::{RejectReason, Rejection};

/// A key, its [`key_summary`] and, if it is on an allowlisted path, its trie child.
pub(super) struct NextKey<'a> {
    pub(super) key: Cow<'a, str>,
    pub(super) summary: u64,
    pub(super) listed: Option<Slot>,
}

/// Reads one object's keys, refusing duplicates: allowlisted keys are tracked by their position
/// among the node's children, other keys on the walk's key stack. Keys the object held last
/// time, in the same order, are taken from the node's remembered order (`predict`).
pub(super) struct KeyCursor {
    /// The trie node the object is at; `None` inside skipped values.
    node: Option<NodeId>,
    /// Where this object's keys start on the key stack.
    base: usize,
    /// One bit per key summary seen in this object.
    bloom: u64,
    /// One bit per allowlisted child seen in this object.
    listed_seen: u64,
    first: bool,
    /// The node's remembered order in `Walk::orders` (meaningful when predicting or recording).
    order: usize,
    /// Keys read so far; while predicting, every one matched the remembered order.
    index: usize,
    /// Every key so far matched the remembered order: the next may be taken from it.
    predicting: bool,
    /// Keys read now replace the remembered ones (there were none or too few, or this is the
    /// second object in a row that did not match them).
    recording: bool,
}

impl KeyCursor {
    /// Consumes the `{` and starts reading keys.
    pub(super) fn open(walk: &mut Walk<'_, '_>, node: Option<NodeId>) -> Self {
        walk.scanner.open();
        let order = order_index(walk.orders, node);
        KeyCursor {
            node,
            base: walk.seen.len(),
            bloom: 0,
            listed_seen: 0,
            first: true,
            order: order.unwrap_or(usize::MAX),
            index: 0,
            predicting: order.is_some(),
            recording: false,
        }
    }

    /// The next key with its allowlisted child (if any), or `None` after the `}`.
    #[inline(always)]
    pub(super) fn next<'a>(
        &mut self,
        walk: &mut Walk<'_, 'a>,
    ) -> Result<Option<NextKey<'a>>, Refusal> {
        if self.predicting
            && let Some(hit) = self.predicted(walk)
        {
            return Ok(Some(hit));
        }
        self.next_scanned(walk)
    }

    /// The next key if the input continues with exactly the remembered one.
    #[inline(always)]
    fn predicted<'a>(&mut self, walk: &mut Walk<'_, 'a>) -> Option<NextKey<'a>> {
        let (predicted, bytes) = walk.orders.get(self.order)?.get(self.index)?;
        // The first key has no comma before it.
        let expected = bytes.get(usize::from(self.first)..)?;
        let key = walk.scanner.take_if(
            expected.len(),
            |input| same_bytes(input, expected),
            2 - usize::from(self.first),
            2,
        )?;
        let (summary, listed) = (predicted.summary, predicted.listed);
        Some(self.hit(walk, Cow::Borrowed(key), summary, listed))
    }

    /// Accepts a key equal to the remembered one at `index`: no earlier key of the object
    /// equals it (the remembered order holds no key twice and every earlier key matched it),
    /// so the duplicate check only records it, exactly as [`Walk::first_time_in`] would.
    #[inline(always)]
    fn hit<'a>(
        &mut self,
        walk: &mut Walk<'_, 'a>,
        key: Cow<'a, str>,
        summary: u64,
        listed: Option<Slot>,
    ) -> NextKey<'a> {
        debug_assert_eq!(summary, key_summary(key.as_bytes()));
        debug_assert_eq!(
            listed,
            self.node
                .and_then(|node| walk.children.child_slot(walk.policy, node, summary, &key))
        );
        debug_assert!(
            walk.seen[self.base..]
                .iter()
                .all(|(_, seen)| seen.as_ref() != key.as_ref())
        );
        match listed {
            Some(Slot { position, .. }) if position < 64 => {
                debug_assert_eq!(self.listed_seen & (1u64 << position), 0);
                self.listed_seen |= 1u64 << position;
            }
            _ => {
                debug_assert!(walk.seen.len() - self.base < MAX_KEYS_PER_OBJECT);
                self.bloom |= bloom_bit(summary);
                walk.seen.push((summary, share(&key)));
            }
        }
        self.first = false;
        self.index += 1;
        NextKey {
            key,
            summary,
            listed,
        }
    }

    /// The next key read by the scanner, summarized, looked up and checked in full.
    #[inline(always)]
    fn next_scanned<'a>(
        &mut self,
        walk: &mut Walk<'_, 'a>,
    ) -> Result<Option<NextKey<'a>>, Refusal> {
        let Some(key) = walk.scanner.next_key(self.first).map_err(syntax)? else {
            walk.seen.truncate(self.base);
            if self.predicting
                && let Some(order) = walk.orders.get_mut(self.order)
            {
                order.matched();
            }
            return Ok(None);
        };
        self.first = false;
        if self.predicting {
            // The remembered key with other whitespace around it is still that key.
            if let Cow::Borrowed(text) = key
                && let Some((predicted, bytes)) = walk
                    .orders
                    .get(self.order)
                    .and_then(|order| order.get(self.index))
                && NodeOrder::key_text(bytes) == text.as_bytes()
            {
                let (summary, listed) = (predicted.summary, predicted.listed);
                return Ok(Some(self.hit(walk, key, summary, listed)));
            }
            self.predicting = false;
            if let Some(order) = walk.orders.get_mut(self.order)
                && order.mismatch_replaces(self.index)
            {
                order.truncate(self.index);
                self.recording = true;
            }
        }
        let summary = key_summary(key.as_bytes());
        let listed = self
            .node
            .and_then(|node| walk.children.child_slot(walk.policy, node, summary, &key));
        if !walk.first_time_in(
            self.base,
            &mut self.bloom,
            &mut self.listed_seen,
            listed,
            summary,
            &key,
        ) {
            return Err(walk.refused_key(self.node, &key));
        }
        if self.recording {
            self.recording = match (&key, walk.orders.get_mut(self.order)) {
                (Cow::Borrowed(text), Some(order)) => order.record(text, summary, listed),
                _ => false,
            };
        }
        Ok(Some(NextKey {
            key,
            summary,
            listed,
        }))
    }
}

/// The bit a key summary sets in an object's key mask.
#[inline(always)]
fn bloom_bit(summary: u64) -> u64 {
    1u64 << ((summary ^ (summary >> 23) ^ (summary >> 47)) & 63)
}

/// A copy of `key` for the key stack: a borrowed key is copied inline (the usual case); an
/// unescaped (owned) one is cloned out of line.
#[inline(always)]
fn share<'a>(key: &Cow<'a, str>) -> Cow<'a, str> {
    #[cold]
    #[inline(never)]
    fn clone_owned<'a>(key: &str) -> Cow<'a, str> {
        Cow::Owned(key.to_owned())
    }
    match key {
        Cow::Borrowed(text) => Cow::Borrowed(text),
        Cow::Owned(text) => clone_owned(text),
    }
}

impl<'a> Walk<'_, 'a> {
    /// Records `key` in the object whose keys start at `base`; false if it was already there.
    #[inline(always)]
    #[allow(
        clippy::ptr_arg,
        reason = "the Cow is cloned onto the key stack, borrowed stays borrowed"
    )]
    pub(super) fn first_time(
        &mut self,
        base: usize,
        bloom: &mut u64,
        summary: u64,
        key: &Cow<'a, str>,
    ) -> bool {
        // One bit per key in a per-object mask: a clear bit proves the key is new, so the
        // comparison loop (and its hard-to-predict exit) runs only for the rare collisions.
        let bit = bloom_bit(summary);
        let maybe_seen = *bloom & bit != 0;
        *bloom |= bit;
        let bytes = key.as_bytes();
        let seen = &self.seen[base..];
        if seen.len() >= MAX_KEYS_PER_OBJECT {
            self.too_many_keys = true;
            return false;
        }
        if maybe_seen
            && seen
                .iter()
                .any(|(other, text)| *other == summary && short_eq(text.as_bytes(), bytes))
        {
            return false;
        }
        self.seen.push((summary, share(key)));
        true
    }

    /// [`Walk::first_time`] for a key that may be an allowlisted child: those are tracked
    /// exactly by their position in a bit set, the rest on the key stack.
    #[inline(always)]
    #[allow(clippy::ptr_arg, reason = "passed on to `first_time`")]
    fn first_time_in(
        &mut self,
        base: usize,
        bloom: &mut u64,
        listed_seen: &mut u64,
        listed: Option<Slot>,
        summary: u64,
        key: &Cow<'a, str>,
    ) -> bool {
        match listed {
            Some(Slot { position, .. }) if position < 64 => {
                let bit = 1u64 << position;
                let fresh = *listed_seen & bit == 0;
                *listed_seen |= bit;
                fresh
            }
            _ => self.first_time(base, bloom, summary, key),
        }
    }

    /// The rejection for a key that `first_time` refused.
    #[cold]
    pub(super) fn refused_key(&self, node: Option<NodeId>, key: &str) -> Refusal {
        let reason = if self.too_many_keys {
            RejectReason::TooLarge
        } else {
            RejectReason::DuplicateKey
        };
        Box::new(match node {
            Some(node) => Rejection::at(reason, self.path_of(node, key)),
            None => Rejection::new(reason),
        })
    }

    fn path_of(&self, node: NodeId, key: &str) -> String {
        let mut path = self.policy.node_path(node).to_owned();
        self.policy.push_exported_key(&mut path, key);
        path
    }
}
