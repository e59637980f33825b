//! One pass over a message's JSON, guided by the policy trie.
//!
//! Allowlisted leaves are captured (borrowed from the input where possible); everything else is
//! skipped while still checked for syntax, depth and duplicate keys. Nothing is decided here
//! about the rule that applies: type and event may come last in the object, so the decision is
//! made in `emit` once the whole message is read.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::children::ChildIndex;
use super::reject::{DropReason, RejectReason, Rejection, push_reportable_key};
use super::scan::{Scanner, Start, SyntaxError};
use crate::allowlist::{LeafId, NodeId, Policy, STRUCTURAL_KEYS, key_summary, short_eq};

/// Objects and arrays may nest this deep, counting the message itself as 1.
pub const MAX_DEPTH: usize = 32;

/// Keys one object may hold; bounds the duplicate check's work on hostile input.
pub const MAX_KEYS_PER_OBJECT: usize = 512;

/// A captured scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Null,
    Composite,
}

/// An allowlisted value found in the message.
#[derive(Debug)]
pub(crate) struct Capture<'a> {
    pub(crate) leaf: LeafId,
    pub(crate) value: Scalar<'a>,
}

/// A key that is not on any allowlisted path (or a value where an object was expected).
#[derive(Debug)]
pub(crate) struct Unlisted<'a> {
    pub(crate) parent: NodeId,
    pub(crate) key: Cow<'a, str>,
    pub(crate) reason: DropReason,
}

/// The structural fields Veil reads itself.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) event: Option<Cow<'a, str>>,
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) message_id: Option<Cow<'a, str>>,
    pub(crate) timestamp: Option<Cow<'a, str>>,
    pub(crate) sent_at: Option<Cow<'a, str>>,
    pub(crate) has_user_id: bool,
    pub(crate) has_anonymous_id: bool,
    pub(crate) has_group_id: bool,
    pub(crate) has_previous_id: bool,
}

impl Envelope<'_> {
    /// Remembers whether an identity field held a usable (non-empty) value.
    fn note_identity(&mut self, key: &str, present: bool) {
        match key {
            "userId" => self.has_user_id |= present,
            "anonymousId" => self.has_anonymous_id |= present,
            "groupId" => self.has_group_id |= present,
            "previousId" => self.has_previous_id |= present,
            _ => {}
        }
    }
}

/// Everything one pass found.
pub(crate) struct Walk<'p, 'a> {
    pub(crate) policy: &'p Policy,
    children: &'p ChildIndex,
    pub(crate) envelope: Envelope<'a>,
    pub(crate) captures: SmallVec<[Capture<'a>; 24]>,
    pub(crate) unlisted: SmallVec<[Unlisted<'a>; 16]>,
    /// Keys of the objects being read, innermost last, for duplicate checks.
    seen: SmallVec<[(u64, Cow<'a, str>); 48]>,
    /// Set when an object exceeded [`MAX_KEYS_PER_OBJECT`] (reported instead of a duplicate).
    too_many_keys: bool,
    scanner: Scanner<'a>,
}

/// A key and, if it is on an allowlisted path, its trie child and position among the siblings.
type NextKey<'a> = (Cow<'a, str>, Option<(NodeId, usize)>);

/// A rejection inside the walk, boxed: the walk's results stay a few words wide (returned in
/// registers on every key and value) instead of carrying the whole [`Rejection`] back each time.
type Refusal = Box<Rejection>;

/// Reads one object's keys, refusing duplicates: allowlisted keys are tracked by their position
/// among the node's children, other keys on the walk's key stack.
struct KeyCursor {
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
    fn open(walk: &mut Walk<'_, '_>, node: Option<NodeId>) -> Self {
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
    fn next<'a>(&mut self, walk: &mut Walk<'_, 'a>) -> Result<Option<NextKey<'a>>, Refusal> {
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
        Ok(Some((key, listed)))
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

/// What a value under an allowlisted node turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A non-empty scalar, or an object walked further.
    Present,
    /// Null, an empty string, or a composite at a leaf (which `emit` drops).
    Absent,
    /// A scalar or array where the allowlist expects an object.
    Mismatch,
}

#[cold]
fn syntax(error: SyntaxError) -> Refusal {
    Box::new(Rejection {
        reason: RejectReason::MalformedJson,
        field: None,
        detail: Some(format!(
            "expected {} at byte {}",
            error.expected, error.offset
        )),
        event: None,
    })
}

impl<'p, 'a> Walk<'p, 'a> {
    /// A walk over `text`, not started yet.
    pub(crate) fn new(policy: &'p Policy, children: &'p ChildIndex, text: &'a str) -> Self {
        Walk {
            policy,
            children,
            envelope: Envelope::default(),
            captures: SmallVec::new(),
            unlisted: SmallVec::new(),
            seen: SmallVec::new(),
            too_many_keys: false,
            scanner: Scanner::new(text),
        }
    }

    /// Reads the whole message; the error is the first reason to refuse it.
    pub(crate) fn run(&mut self) -> Result<(), Rejection> {
        self.run_boxed().map_err(|refusal| *refusal)
    }

    fn run_boxed(&mut self) -> Result<(), Refusal> {
        match self.scanner.peek_value().map_err(syntax)? {
            Start::Object => {}
            _ => return Err(Rejection::new(RejectReason::NotAnObject).into()),
        }
        self.message()?;
        self.scanner.finish().map_err(syntax)
    }

    /// Records `key` in the object whose keys start at `base`; false if it was already there.
    #[inline(always)]
    #[allow(
        clippy::ptr_arg,
        reason = "the Cow is cloned onto the key stack, borrowed stays borrowed"
    )]
    fn first_time(
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
        listed: Option<(NodeId, usize)>,
        summary: u64,
        key: &Cow<'a, str>,
    ) -> bool {
        match listed {
            Some((_, position)) if position < 64 => {
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
    fn refused_key(&self, node: Option<NodeId>, key: &str) -> Refusal {
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

    fn message(&mut self) -> Result<(), Refusal> {
        let root = self.policy.root();
        let mut keys = KeyCursor::open(self, Some(root));
        while let Some((key, listed)) = keys.next(self)? {
            // Allowlisted paths first: structural keys can never be allowlisted roots.
            if let Some((child, _)) = listed {
                let found = self.child(child, 2)?;
                self.envelope.note_identity(&key, found == Found::Present);
                if found == Found::Mismatch {
                    self.unlisted.push(Unlisted {
                        parent: root,
                        key,
                        reason: DropReason::TypeMismatch,
                    });
                }
                continue;
            }
            let envelope_slot = match key.as_ref() {
                "type" => Some(0),
                "event" => Some(1),
                "name" => Some(2),
                "messageId" => Some(3),
                "timestamp" => Some(4),
                "sentAt" => Some(5),
                _ => None,
            };
            if let Some(slot) = envelope_slot {
                let text = match self.scalar(2)? {
                    Scalar::Str(text) => Some(text),
                    Scalar::Null => None,
                    _ => {
                        return Err(Rejection::at(RejectReason::WrongType, key.into_owned()).into());
                    }
                };
                let envelope = &mut self.envelope;
                *[
                    &mut envelope.kind,
                    &mut envelope.event,
                    &mut envelope.name,
                    &mut envelope.message_id,
                    &mut envelope.timestamp,
                    &mut envelope.sent_at,
                ][slot] = text;
                continue;
            }
            if STRUCTURAL_KEYS.contains(&key.as_ref()) {
                self.skip(2)?;
                continue;
            }
            let present = self.skip(2)?;
            self.envelope.note_identity(&key, present);
            self.unlisted.push(Unlisted {
                parent: root,
                key,
                reason: DropReason::NotAllowlisted,
            });
        }
        Ok(())
    }

    /// A value under an allowlisted node: a leaf's scalar, or an object to walk further.
    fn child(&mut self, node: NodeId, depth: usize) -> Result<Found, Refusal> {
        if let Some(leaf) = self.policy.leaf_at(node) {
            let value = self.scalar(depth)?;
            let present = match &value {
                Scalar::Str(text) => !text.is_empty(),
                Scalar::Null | Scalar::Composite => false,
                _ => true,
            };
            self.captures.push(Capture { leaf, value });
            return Ok(if present {
                Found::Present
            } else {
                Found::Absent
            });
        }
        match self.scanner.peek_value().map_err(syntax)? {
            Start::Object => {}
            Start::Literal => {
                return Ok(match self.scanner.literal().map_err(syntax)? {
                    None => Found::Absent,
                    Some(_) => Found::Mismatch,
                });
            }
            _ => {
                self.skip(depth)?;
                return Ok(Found::Mismatch);
            }
        }
        if depth > MAX_DEPTH {
            return Err(Rejection::at(
                RejectReason::TooDeep,
                self.policy.node_path(node).to_owned(),
            )
            .into());
        }
        let mut keys = KeyCursor::open(self, Some(node));
        while let Some((key, listed)) = keys.next(self)? {
            match listed {
                Some((child, _)) => {
                    if self.child(child, depth + 1)? == Found::Mismatch {
                        self.unlisted.push(Unlisted {
                            parent: node,
                            key,
                            reason: DropReason::TypeMismatch,
                        });
                    }
                }
                None => {
                    self.skip(depth + 1)?;
                    self.unlisted.push(Unlisted {
                        parent: node,
                        key,
                        reason: DropReason::NotAllowlisted,
                    });
                }
            }
        }
        Ok(Found::Present)
    }

    /// A leaf's value: scalars are captured, composites skipped and marked.
    #[inline(always)]
    fn scalar(&mut self, depth: usize) -> Result<Scalar<'a>, Refusal> {
        Ok(match self.scanner.peek_value().map_err(syntax)? {
            Start::String => Scalar::Str(self.scanner.string().map_err(syntax)?),
            Start::Number => {
                let text = self.scanner.number().map_err(syntax)?;
                if let Ok(number) = text.parse::<i64>() {
                    Scalar::Int(number)
                } else if let Ok(number) = text.parse::<u64>() {
                    Scalar::UInt(number)
                } else {
                    text.parse::<f64>().map_or(Scalar::Composite, Scalar::Float)
                }
            }
            Start::Literal => match self.scanner.literal().map_err(syntax)? {
                Some(flag) => Scalar::Bool(flag),
                None => Scalar::Null,
            },
            Start::Object | Start::Array => {
                self.skip(depth)?;
                Scalar::Composite
            }
        })
    }

    /// A value nothing is kept from, still checked. Returns whether it was a non-empty scalar.
    fn skip(&mut self, depth: usize) -> Result<bool, Refusal> {
        match self.scanner.peek_value().map_err(syntax)? {
            Start::String => self.scanner.skip_string().map_err(syntax),
            Start::Number => self.scanner.number().map(|_| true).map_err(syntax),
            Start::Literal => self
                .scanner
                .literal()
                .map(|value| value.is_some())
                .map_err(syntax),
            Start::Array => {
                if depth > MAX_DEPTH {
                    return Err(Rejection::new(RejectReason::TooDeep).into());
                }
                self.scanner.open();
                let mut first = true;
                while self.scanner.next_element(first).map_err(syntax)? {
                    first = false;
                    self.skip(depth + 1)?;
                }
                Ok(false)
            }
            Start::Object => {
                if depth > MAX_DEPTH {
                    return Err(Rejection::new(RejectReason::TooDeep).into());
                }
                let base = self.seen.len();
                let mut bloom = 0u64;
                self.scanner.open();
                let mut first = true;
                while let Some(key) = self.scanner.next_key(first).map_err(syntax)? {
                    first = false;
                    if !self.first_time(base, &mut bloom, key_summary(key.as_bytes()), &key) {
                        return Err(self.refused_key(None, &key));
                    }
                    self.skip(depth + 1)?;
                }
                self.seen.truncate(base);
                Ok(false)
            }
        }
    }
}
