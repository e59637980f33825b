//! Reading an object's keys: each key's summary, its allowlisted child, and the duplicate check
//! (exact for allowlisted children by their position, a per-object bit mask and the key stack
//! for the rest), so a key spelled twice, escaped or not, refuses the message.

use std::borrow::Cow;

use super::{MAX_KEYS_PER_OBJECT, Refusal, Walk, syntax};
use crate::allowlist::{NodeId, key_summary, short_eq};
use crate::filter::children::Slot;
use crate::filter::reject::{RejectReason, Rejection, push_reportable_key};

/// A key, its [`key_summary`] and, if it is on an allowlisted path, its trie child.
pub(super) struct NextKey<'a> {
    pub(super) key: Cow<'a, str>,
    pub(super) summary: u64,
    pub(super) listed: Option<Slot>,
}

/// Reads one object's keys, refusing duplicates: allowlisted keys are tracked by their position
/// among the node's children, other keys on the walk's key stack.
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
}

impl KeyCursor {
    /// Consumes the `{` and starts reading keys.
    pub(super) fn open(walk: &mut Walk<'_, '_>, node: Option<NodeId>) -> Self {
        walk.scanner.open();
        KeyCursor {
            node,
            base: walk.seen.len(),
            bloom: 0,
            listed_seen: 0,
            first: true,
        }
    }

    /// The next key with its allowlisted child (if any), or `None` after the `}`.
    #[inline(always)]
    pub(super) fn next<'a>(
        &mut self,
        walk: &mut Walk<'_, 'a>,
    ) -> Result<Option<NextKey<'a>>, Refusal> {
        let Some(key) = walk.scanner.next_key(self.first).map_err(syntax)? else {
            walk.seen.truncate(self.base);
            return Ok(None);
        };
        self.first = false;
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
        Ok(Some(NextKey {
            key,
            summary,
            listed,
        }))
    }
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
        let bit = 1u64 << ((summary ^ (summary >> 23) ^ (summary >> 47)) & 63);
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
        push_reportable_key(&mut path, key);
        path
    }
}
