//! One pass over a message's JSON, guided by the policy trie.
//!
//! Allowlisted leaves are captured (borrowed from the input where possible); everything else is
//! skipped while still checked for syntax, depth and duplicate keys. Nothing is decided here
//! about the rule that applies: type and event may come last in the object, so the decision is
//! made in `emit` once the whole message is read.

use std::borrow::Cow;

use smallvec::SmallVec;

use self::keys::{KeyCursor, NextKey};
use super::children::{ChildIndex, NO_LEAF};
use super::reject::{DropReason, RejectReason, Rejection};
use super::scan::{Scanner, Start, SyntaxError};
use crate::allowlist::{LeafId, NodeId, Policy, STRUCTURAL_KEYS, key_summary};
use crate::pseudonym::is_placeholder_identifier;

/// Objects and arrays may nest this deep, counting the message itself as 1.
pub const MAX_DEPTH: usize = 32;

/// Keys one object may hold; bounds the duplicate check's work on hostile input.
pub const MAX_KEYS_PER_OBJECT: usize = 512;

mod keys;
mod predict;

pub(crate) use self::predict::{KeyOrders, NodeOrder};

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

impl Scalar<'_> {
    /// Whether the value can identify someone, so pseudonymizing it yields a pseudonym: a
    /// string that is not a placeholder (empty, blank, `undefined`, `null`, …:
    /// [`is_placeholder_identifier`]) or an integer (a boolean, a fraction or an integer too
    /// large for 64 bits, read as one, cannot). The walk's identity check and `emit` both
    /// follow it.
    #[inline(always)]
    pub(crate) fn is_identifier(&self) -> bool {
        match self {
            Scalar::Str(text) => !is_placeholder_identifier(text),
            Scalar::Int(_) | Scalar::UInt(_) => true,
            Scalar::Float(_) | Scalar::Bool(_) | Scalar::Null | Scalar::Composite => false,
        }
    }
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
    /// The key's [`key_summary`], computed once for lookup and duplicate check, reused by the
    /// drop counters.
    pub(crate) summary: u64,
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
    /// Where to remember whether identity field `key` held a usable value (`None`: `key` is
    /// no identity field).
    fn identity_flag(&mut self, key: &str) -> Option<&mut bool> {
        match key {
            "userId" => Some(&mut self.has_user_id),
            "anonymousId" => Some(&mut self.has_anonymous_id),
            "groupId" => Some(&mut self.has_group_id),
            "previousId" => Some(&mut self.has_previous_id),
            _ => None,
        }
    }

    /// Remembers whether an identity field held a usable value.
    fn note_identity(&mut self, key: &str, present: bool) {
        if let Some(flag) = self.identity_flag(key) {
            *flag |= present;
        }
    }
}

/// Everything one pass found.
pub(crate) struct Walk<'p, 'a> {
    pub(crate) policy: &'p Policy,
    children: &'p ChildIndex,
    /// This worker's remembered key order per trie node, for this filter.
    orders: &'p mut [NodeOrder],
    pub(crate) envelope: Envelope<'a>,
    pub(crate) captures: SmallVec<[Capture<'a>; 24]>,
    pub(crate) unlisted: SmallVec<[Unlisted<'a>; 16]>,
    /// Keys of the objects being read, innermost last, for duplicate checks.
    seen: SmallVec<[(u64, Cow<'a, str>); 48]>,
    /// Set when an object exceeded [`MAX_KEYS_PER_OBJECT`] (reported instead of a duplicate).
    too_many_keys: bool,
    scanner: Scanner<'a>,
}

/// A rejection inside the walk, boxed: the walk's results stay a few words wide (returned in
/// registers on every key and value) instead of carrying the whole [`Rejection`] back each time.
type Refusal = Box<Rejection>;

/// What a value under an allowlisted node turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// A leaf's value, captured (the last capture).
    Captured,
    /// An object walked further.
    Present,
    /// Null.
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
    /// A walk over `text`, not started yet; `orders` are the worker's remembered key orders
    /// for this filter (one per trie node).
    pub(crate) fn new(
        policy: &'p Policy,
        children: &'p ChildIndex,
        orders: &'p mut [NodeOrder],
        text: &'a str,
    ) -> Self {
        Walk {
            policy,
            children,
            orders,
            envelope: Envelope::default(),
            captures: SmallVec::new(),
            unlisted: SmallVec::new(),
            seen: SmallVec::new(),
            too_many_keys: false,
            scanner: Scanner::new(text),
        }
    }

    /// The message being read.
    pub(crate) fn input(&self) -> &'a [u8] {
        self.scanner.text().as_bytes()
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

    fn message(&mut self) -> Result<(), Refusal> {
        let root = self.policy.root();
        let mut keys = KeyCursor::open(self, Some(root));
        while let Some(NextKey {
            key,
            summary,
            listed,
        }) = keys.next(self)?
        {
            // Allowlisted paths first: structural keys can never be allowlisted roots.
            if let Some(slot) = listed {
                let found = if slot.leaf != NO_LEAF {
                    self.leaf(slot.leaf, 2)?;
                    Found::Captured
                } else {
                    self.child(slot.child, 2)?
                };
                if let Some(flag) = self.envelope.identity_flag(&key) {
                    // Judged only for the identity fields: a message whose only `userId` is a
                    // boolean, a fraction or a placeholder such as `undefined` has none.
                    *flag |= match found {
                        Found::Captured => self
                            .captures
                            .last()
                            .is_some_and(|capture| capture.value.is_identifier()),
                        found => found == Found::Present,
                    };
                }
                if found == Found::Mismatch {
                    self.unlisted.push(Unlisted {
                        parent: root,
                        key,
                        summary,
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
                self.skip_inline(2)?;
                continue;
            }
            let present = self.skip_inline(2)?;
            self.envelope.note_identity(&key, present);
            self.unlisted.push(Unlisted {
                parent: root,
                key,
                summary,
                reason: DropReason::NotAllowlisted,
            });
        }
        Ok(())
    }

    /// A leaf's value, captured.
    #[inline(always)]
    fn leaf(&mut self, leaf: LeafId, depth: usize) -> Result<(), Refusal> {
        let value = self.scalar(depth)?;
        self.captures.push(Capture { leaf, value });
        Ok(())
    }

    /// A value under an allowlisted inner node: an object to walk further (leaves are read by
    /// [`Walk::leaf`]).
    fn child(&mut self, node: NodeId, depth: usize) -> Result<Found, Refusal> {
        debug_assert!(self.policy.leaf_at(node).is_none());
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
        while let Some(NextKey {
            key,
            summary,
            listed,
        }) = keys.next(self)?
        {
            let reason = match listed {
                Some(slot) if slot.leaf != NO_LEAF => {
                    self.leaf(slot.leaf, depth + 1)?;
                    continue;
                }
                Some(slot) => {
                    if self.child(slot.child, depth + 1)? != Found::Mismatch {
                        continue;
                    }
                    DropReason::TypeMismatch
                }
                None => {
                    self.skip_inline(depth + 1)?;
                    DropReason::NotAllowlisted
                }
            };
            self.unlisted.push(Unlisted {
                parent: node,
                key,
                summary,
                reason,
            });
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

    /// [`Walk::skip`] with a string without escapes (the usual skipped value) passed over inline.
    #[inline(always)]
    fn skip_inline(&mut self, depth: usize) -> Result<bool, Refusal> {
        match self.scanner.skip_plain_string() {
            Some(present) => Ok(present),
            None => self.skip(depth),
        }
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
