//! One pass over a message's JSON, guided by the policy trie.
//!
//! Allowlisted leaves are captured (borrowed from the input where possible); everything else is
//! skipped while still checked for depth and duplicate keys. Nothing is decided here about the
//! rule that applies: type and event may come last in the object, so the decision is made in
//! `emit` once the whole message is read.

use std::borrow::Cow;
use std::fmt;

use rustc_hash::FxHashSet;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

use super::reject::{DropReason, RejectReason, Rejection, push_reportable_key};
use crate::allowlist::{LeafId, NodeId, Policy, STRUCTURAL_KEYS};

/// Objects and arrays may nest this deep, counting the message itself as 1.
pub const MAX_DEPTH: usize = 32;

/// A captured scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'de> {
    Str(Cow<'de, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Null,
    Composite,
}

/// An allowlisted value found in the message.
#[derive(Debug)]
pub(crate) struct Capture<'de> {
    pub(crate) leaf: LeafId,
    pub(crate) value: Scalar<'de>,
}

/// A key that is not on any allowlisted path (or an object where a value was expected).
#[derive(Debug)]
pub(crate) struct Unlisted<'de> {
    pub(crate) parent: NodeId,
    pub(crate) key: Cow<'de, str>,
    pub(crate) reason: DropReason,
}

/// The structural fields Veil reads itself.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'de> {
    pub(crate) kind: Option<Cow<'de, str>>,
    pub(crate) event: Option<Cow<'de, str>>,
    pub(crate) name: Option<Cow<'de, str>>,
    pub(crate) message_id: Option<Cow<'de, str>>,
    pub(crate) timestamp: Option<Cow<'de, str>>,
    pub(crate) has_user_id: bool,
    pub(crate) has_anonymous_id: bool,
    pub(crate) has_group_id: bool,
    pub(crate) has_previous_id: bool,
}

/// Everything one pass found.
pub(crate) struct Walk<'p, 'de> {
    pub(crate) policy: &'p Policy,
    pub(crate) envelope: Envelope<'de>,
    pub(crate) captures: SmallVec<[Capture<'de>; 24]>,
    pub(crate) unlisted: SmallVec<[Unlisted<'de>; 16]>,
    pub(crate) failure: Option<Rejection>,
}

impl<'p, 'de> Walk<'p, 'de> {
    pub(crate) fn new(policy: &'p Policy) -> Self {
        Walk {
            policy,
            envelope: Envelope::default(),
            captures: SmallVec::new(),
            unlisted: SmallVec::new(),
            failure: None,
        }
    }

    fn fail<E: de::Error>(&mut self, rejection: Rejection) -> E {
        if self.failure.is_none() {
            self.failure = Some(rejection);
        }
        E::custom("rejected")
    }

    fn path_of(&self, node: NodeId, key: &str) -> String {
        let mut path = self.policy.node_path(node).to_owned();
        push_reportable_key(&mut path, key);
        path
    }
}

/// Keys seen in one object, to refuse duplicates (compared after unescaping).
struct SeenKeys<'de> {
    few: SmallVec<[Cow<'de, str>; 16]>,
    many: Option<FxHashSet<Cow<'de, str>>>,
}

impl<'de> SeenKeys<'de> {
    fn new() -> Self {
        SeenKeys { few: SmallVec::new(), many: None }
    }

    /// Records `key`; false if it was already there.
    #[inline]
    fn insert(&mut self, key: &Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key.clone());
        }
        if self.few.iter().any(|seen| seen.len() == key.len() && seen == key) {
            return false;
        }
        if self.few.len() == self.few.inline_size() {
            let mut many: FxHashSet<Cow<'de, str>> = self.few.drain(..).collect();
            many.insert(key.clone());
            self.many = Some(many);
        } else {
            self.few.push(key.clone());
        }
        true
    }
}

/// Deserializes an object key, borrowing it when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// The message object itself.
pub(crate) struct MessageSeed<'w, 'p, 'de> {
    pub(crate) walk: &'w mut Walk<'p, 'de>,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

macro_rules! refuse_non_object {
    ($($method:ident: $type:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $type) -> Result<(), E> {
            Err(self.walk.fail(Rejection::new(RejectReason::NotAnObject)))
        })*
    };
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a message object")
    }
    refuse_non_object!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.walk.fail(Rejection::new(RejectReason::NotAnObject)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.walk.fail(Rejection::new(RejectReason::NotAnObject)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.walk;
        let root = walk.policy.root();
        let mut seen = SeenKeys::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if !seen.insert(&key) {
                return Err(walk.fail(Rejection::at(RejectReason::DuplicateKey, walk.path_of(root, &key))));
            }
            if matches!(key.as_ref(), "type" | "event" | "name" | "messageId" | "timestamp") {
                let text = match map.next_value_seed(ScalarSeed { walk: &mut *walk, depth: 2 })? {
                    Scalar::Str(text) => Some(text),
                    Scalar::Null => None,
                    _ => return Err(walk.fail(Rejection::at(RejectReason::WrongType, key.into_owned()))),
                };
                let envelope = &mut walk.envelope;
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
                map.next_value_seed(SkipSeed { walk: &mut *walk, depth: 2 })?;
                continue;
            }
            let Some(child) = walk.policy.child(root, &key) else {
                let present = map.next_value_seed(SkipSeed { walk: &mut *walk, depth: 2 })?;
                walk.envelope.note_identity(&key, present);
                walk.unlisted.push(Unlisted { parent: root, key, reason: DropReason::NotAllowlisted });
                continue;
            };
            let outcome = map.next_value_seed(ChildSeed { walk: &mut *walk, node: child, depth: 2 })?;
            walk.envelope.note_identity(&key, outcome == ChildOutcome::Present);
            if outcome == ChildOutcome::Mismatch {
                walk.unlisted.push(Unlisted { parent: root, key, reason: DropReason::TypeMismatch });
            }
        }
        Ok(())
    }
}

impl<'de> Envelope<'de> {
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

/// What a value under an allowlisted node turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildOutcome {
    /// A non-empty scalar at a leaf, or an object walked further.
    Present,
    /// Null, empty, or a composite at a leaf (which `emit` drops).
    Absent,
    /// A scalar or array where the allowlist expects an object.
    Mismatch,
}

/// A value under an allowlisted node: a leaf's scalar, or an object to walk further.
struct ChildSeed<'w, 'p, 'de> {
    walk: &'w mut Walk<'p, 'de>,
    node: NodeId,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ChildSeed<'_, '_, 'de> {
    type Value = ChildOutcome;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<ChildOutcome, D::Error> {
        let ChildSeed { walk, node, depth } = self;
        if let Some(leaf) = walk.policy.leaf_at(node) {
            let value = ScalarSeed { walk: &mut *walk, depth }.deserialize(deserializer)?;
            let present = match &value {
                Scalar::Str(text) => !text.is_empty(),
                Scalar::Null | Scalar::Composite => false,
                _ => true,
            };
            walk.captures.push(Capture { leaf, value });
            return Ok(if present { ChildOutcome::Present } else { ChildOutcome::Absent });
        }
        deserializer.deserialize_any(ObjectVisitor { walk, node, depth })
    }
}

/// An object on an allowlisted path.
struct ObjectVisitor<'w, 'p, 'de> {
    walk: &'w mut Walk<'p, 'de>,
    node: NodeId,
    depth: usize,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_, '_, 'de> {
    type Value = ChildOutcome;
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ChildOutcome, E> {
        Ok(ChildOutcome::Mismatch)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ChildOutcome, E> {
        Ok(ChildOutcome::Mismatch)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ChildOutcome, E> {
        Ok(ChildOutcome::Mismatch)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ChildOutcome, E> {
        Ok(ChildOutcome::Mismatch)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<ChildOutcome, E> {
        Ok(ChildOutcome::Mismatch)
    }
    fn visit_unit<E: de::Error>(self) -> Result<ChildOutcome, E> {
        Ok(ChildOutcome::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ChildOutcome, A::Error> {
        skip_seq(&mut *self.walk, seq, self.depth)?;
        Ok(ChildOutcome::Mismatch)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChildOutcome, A::Error> {
        let ObjectVisitor { walk, node, depth } = self;
        if depth > MAX_DEPTH {
            return Err(walk.fail(Rejection::at(RejectReason::TooDeep, walk.policy.node_path(node).to_owned())));
        }
        let mut seen = SeenKeys::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if !seen.insert(&key) {
                return Err(walk.fail(Rejection::at(RejectReason::DuplicateKey, walk.path_of(node, &key))));
            }
            match walk.policy.child(node, &key) {
                Some(child) => {
                    let outcome = map.next_value_seed(ChildSeed { walk: &mut *walk, node: child, depth: depth + 1 })?;
                    if outcome == ChildOutcome::Mismatch {
                        walk.unlisted.push(Unlisted { parent: node, key, reason: DropReason::TypeMismatch });
                    }
                }
                None => {
                    map.next_value_seed(SkipSeed { walk: &mut *walk, depth: depth + 1 })?;
                    walk.unlisted.push(Unlisted { parent: node, key, reason: DropReason::NotAllowlisted });
                }
            }
        }
        Ok(ChildOutcome::Present)
    }
}

/// A leaf's value: scalars are captured, composites are skipped (and dropped by `emit`).
struct ScalarSeed<'w, 'p, 'de> {
    walk: &'w mut Walk<'p, 'de>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_, '_, 'de> {
    type Value = Scalar<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Scalar<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_, '_, 'de> {
    type Value = Scalar<'de>;
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value")
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(value))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(value))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::UInt(value))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(value))
    }
    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(value)))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(value.to_owned())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
        skip_seq(self.walk, seq, self.depth)?;
        Ok(Scalar::Composite)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
        skip_map(self.walk, map, self.depth)?;
        Ok(Scalar::Composite)
    }
}

/// A value nothing is kept from; still checked for depth and duplicate keys.
/// Returns whether it was a non-empty scalar (for identity checks).
struct SkipSeed<'w, 'p, 'de> {
    walk: &'w mut Walk<'p, 'de>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for SkipSeed<'_, '_, 'de> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SkipSeed<'_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
        Ok(!value.is_empty())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        skip_seq(self.walk, seq, self.depth)?;
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        skip_map(self.walk, map, self.depth)?;
        Ok(false)
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(walk: &mut Walk<'_, 'de>, mut seq: A, depth: usize) -> Result<(), A::Error> {
    if depth > MAX_DEPTH {
        return Err(walk.fail(Rejection::new(RejectReason::TooDeep)));
    }
    while seq.next_element_seed(SkipSeed { walk: &mut *walk, depth: depth + 1 })?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(walk: &mut Walk<'_, 'de>, mut map: A, depth: usize) -> Result<(), A::Error> {
    if depth > MAX_DEPTH {
        return Err(walk.fail(Rejection::new(RejectReason::TooDeep)));
    }
    let mut seen = SeenKeys::new();
    while let Some(key) = map.next_key_seed(KeySeed)? {
        if !seen.insert(&key) {
            return Err(walk.fail(Rejection::new(RejectReason::DuplicateKey)));
        }
        map.next_value_seed(SkipSeed { walk: &mut *walk, depth: depth + 1 })?;
    }
    Ok(())
}
