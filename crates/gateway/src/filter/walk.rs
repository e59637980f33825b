//! One pass over a message's JSON, guided by the policy trie.
//!
//! Allowlisted leaves are captured (borrowed from the input where possible); everything else is
//! skipped while still checked for syntax, depth and duplicate keys. Nothing is decided here
//! about the rule that applies: type and event may come last in the object, so the decision is
//! made in `emit` once the whole message is read.

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use super::reject::{DropReason, RejectReason, Rejection, push_reportable_key};
use super::scan::{Scanner, Start, SyntaxError};
use crate::allowlist::{LeafId, NodeId, Policy, STRUCTURAL_KEYS, short_eq};

/// Objects and arrays may nest this deep, counting the message itself as 1.
pub const MAX_DEPTH: usize = 32;

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
    pub(crate) envelope: Envelope<'a>,
    pub(crate) captures: SmallVec<[Capture<'a>; 24]>,
    pub(crate) unlisted: SmallVec<[Unlisted<'a>; 16]>,
    scanner: Scanner<'a>,
}

/// Keys seen in one object, to refuse duplicates (compared after unescaping).
///
/// A 64-bit summary of (length, first and last byte) answers "certainly new" for most keys
/// without comparing; only a summary hit compares exactly.
struct SeenKeys<'a> {
    summary: u64,
    borrowed: SmallVec<[&'a str; 16]>,
    owned: Vec<String>,
    many: Option<FxHashSet<String>>,
}

impl<'a> SeenKeys<'a> {
    fn new() -> Self {
        SeenKeys { summary: 0, borrowed: SmallVec::new(), owned: Vec::new(), many: None }
    }

    #[inline(always)]
    fn summary_bit(key: &[u8]) -> u64 {
        let first = key.first().copied().unwrap_or(0) as usize;
        let last = key.last().copied().unwrap_or(0) as usize;
        1 << ((key.len().wrapping_mul(7) ^ first ^ (last << 3)) & 63)
    }

    /// Records `key`; false if it was already there.
    #[inline]
    fn insert(&mut self, key: &Cow<'a, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key.to_string());
        }
        let bytes = key.as_bytes();
        let bit = Self::summary_bit(bytes);
        if self.summary & bit != 0 {
            let seen_borrowed = self.borrowed.iter().any(|seen| short_eq(seen.as_bytes(), bytes));
            if seen_borrowed || self.owned.iter().any(|seen| seen.as_bytes() == bytes) {
                return false;
            }
        }
        self.summary |= bit;
        match key {
            Cow::Borrowed(text) => self.borrowed.push(text),
            Cow::Owned(text) => self.owned.push(text.clone()),
        }
        if self.borrowed.len() + self.owned.len() > 64 {
            let mut many: FxHashSet<String> = self.borrowed.drain(..).map(str::to_owned).collect();
            many.extend(self.owned.drain(..));
            self.many = Some(many);
        }
        true
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

fn syntax(error: SyntaxError) -> Rejection {
    Rejection {
        reason: RejectReason::MalformedJson,
        field: None,
        detail: Some(format!("expected {} at byte {}", error.expected, error.offset)),
    }
}

impl<'p, 'a> Walk<'p, 'a> {
    /// A walk over `text`, not started yet.
    pub(crate) fn new(policy: &'p Policy, text: &'a str) -> Self {
        Walk { policy, envelope: Envelope::default(), captures: SmallVec::new(), unlisted: SmallVec::new(), scanner: Scanner::new(text) }
    }

    /// Reads the whole message; the error is the first reason to refuse it.
    pub(crate) fn run(&mut self) -> Result<(), Rejection> {
        match self.scanner.peek_value().map_err(syntax)? {
            Start::Object => {}
            _ => return Err(Rejection::new(RejectReason::NotAnObject)),
        }
        self.message()?;
        self.scanner.finish().map_err(syntax)
    }

    fn path_of(&self, node: NodeId, key: &str) -> String {
        let mut path = self.policy.node_path(node).to_owned();
        push_reportable_key(&mut path, key);
        path
    }

    fn message(&mut self) -> Result<(), Rejection> {
        let root = self.policy.root();
        let mut seen = SeenKeys::new();
        self.scanner.open();
        let mut first = true;
        while let Some(key) = self.scanner.next_key(first).map_err(syntax)? {
            first = false;
            if !seen.insert(&key) {
                return Err(Rejection::at(RejectReason::DuplicateKey, self.path_of(root, &key)));
            }
            if matches!(key.as_ref(), "type" | "event" | "name" | "messageId" | "timestamp") {
                let text = match self.scalar(2)? {
                    Scalar::Str(text) => Some(text),
                    Scalar::Null => None,
                    _ => return Err(Rejection::at(RejectReason::WrongType, key.into_owned())),
                };
                let envelope = &mut self.envelope;
                let slot = match key.as_ref() {
                    "type" => &mut envelope.kind,
                    "event" => &mut envelope.event,
                    "name" => &mut envelope.name,
                    "messageId" => &mut envelope.message_id,
                    _ => &mut envelope.timestamp,
                };
                *slot = text;
                continue;
            }
            if STRUCTURAL_KEYS.contains(&key.as_ref()) {
                self.skip(2)?;
                continue;
            }
            let found = match self.policy.child(root, &key) {
                Some(child) => self.child(child, 2)?,
                None => {
                    let present = self.skip(2)?;
                    self.envelope.note_identity(&key, present);
                    self.unlisted.push(Unlisted { parent: root, key, reason: DropReason::NotAllowlisted });
                    continue;
                }
            };
            self.envelope.note_identity(&key, found == Found::Present);
            if found == Found::Mismatch {
                self.unlisted.push(Unlisted { parent: root, key, reason: DropReason::TypeMismatch });
            }
        }
        Ok(())
    }

    /// A value under an allowlisted node: a leaf's scalar, or an object to walk further.
    fn child(&mut self, node: NodeId, depth: usize) -> Result<Found, Rejection> {
        if let Some(leaf) = self.policy.leaf_at(node) {
            let value = self.scalar(depth)?;
            let present = match &value {
                Scalar::Str(text) => !text.is_empty(),
                Scalar::Null | Scalar::Composite => false,
                _ => true,
            };
            self.captures.push(Capture { leaf, value });
            return Ok(if present { Found::Present } else { Found::Absent });
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
            return Err(Rejection::at(RejectReason::TooDeep, self.policy.node_path(node).to_owned()));
        }
        let mut seen = SeenKeys::new();
        self.scanner.open();
        let mut first = true;
        while let Some(key) = self.scanner.next_key(first).map_err(syntax)? {
            first = false;
            if !seen.insert(&key) {
                return Err(Rejection::at(RejectReason::DuplicateKey, self.path_of(node, &key)));
            }
            match self.policy.child(node, &key) {
                Some(child) => {
                    if self.child(child, depth + 1)? == Found::Mismatch {
                        self.unlisted.push(Unlisted { parent: node, key, reason: DropReason::TypeMismatch });
                    }
                }
                None => {
                    self.skip(depth + 1)?;
                    self.unlisted.push(Unlisted { parent: node, key, reason: DropReason::NotAllowlisted });
                }
            }
        }
        Ok(Found::Present)
    }

    /// A leaf's value: scalars are captured, composites skipped and marked.
    fn scalar(&mut self, depth: usize) -> Result<Scalar<'a>, Rejection> {
        Ok(match self.scanner.peek_value().map_err(syntax)? {
            Start::String => Scalar::Str(self.scanner.string().map_err(syntax)?),
            Start::Number => {
                let text = self.scanner.number().map_err(syntax)?;
                if let Ok(number) = text.parse::<i64>() {
                    Scalar::Int(number)
                } else if let Ok(number) = text.parse::<u64>() {
                    Scalar::UInt(number)
                } else {
                    Scalar::Float(text.parse::<f64>().unwrap_or(f64::NAN))
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
    fn skip(&mut self, depth: usize) -> Result<bool, Rejection> {
        match self.scanner.peek_value().map_err(syntax)? {
            Start::String => Ok(!self.scanner.string().map_err(syntax)?.is_empty()),
            Start::Number => self.scanner.number().map(|_| true).map_err(syntax),
            Start::Literal => self.scanner.literal().map(|value| value.is_some()).map_err(syntax),
            Start::Array => {
                if depth > MAX_DEPTH {
                    return Err(Rejection::new(RejectReason::TooDeep));
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
                    return Err(Rejection::new(RejectReason::TooDeep));
                }
                let mut seen = SeenKeys::new();
                self.scanner.open();
                let mut first = true;
                while let Some(key) = self.scanner.next_key(first).map_err(syntax)? {
                    first = false;
                    if !seen.insert(&key) {
                        return Err(Rejection::new(RejectReason::DuplicateKey));
                    }
                    self.skip(depth + 1)?;
                }
                Ok(false)
            }
        }
    }
}
