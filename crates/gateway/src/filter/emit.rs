//! Second half of the filter: decide the rule for the message's type and event, check the
//! envelope, then write what the rule lets out. Rejections all happen before anything is written.

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veil_sanitized::{MessageKind, Tier};

use super::reject::{DropReason, RejectReason, Rejection};
use super::values::{forbidden_value, write_json_str};
use super::walk::{Scalar, Walk};
use super::{DropSink, DroppedField, MessageMeta, TenantFilter};
use crate::allowlist::{LeafAction, Permission, RuleId};
use crate::allowlist::ValueType;

/// Longest accepted `messageId`.
const MAX_MESSAGE_ID_BYTES: usize = 128;

struct Decision<'a> {
    kind: MessageKind,
    rule: RuleId,
    message_id: &'a str,
    timestamp: Option<OffsetDateTime>,
    keep_name: bool,
}

fn decide<'a>(walk: &'a Walk<'_, '_>, filter: &TenantFilter, meta: &'a MessageMeta<'a>) -> Result<Decision<'a>, Rejection> {
    let envelope = &walk.envelope;
    let policy = filter.policy();
    let kind_text = envelope.kind.as_deref().ok_or(Rejection::new(RejectReason::MissingType))?;
    let kind = MessageKind::from_wire(kind_text).ok_or(Rejection::new(RejectReason::UnknownType))?;
    let rule = if kind == MessageKind::Track {
        let event = envelope.event.as_deref().filter(|event| !event.is_empty());
        let event = event.ok_or(Rejection::new(RejectReason::MissingEvent))?;
        let (rule, tier) = policy.event_rule(event).ok_or(Rejection::new(RejectReason::EventNotAllowlisted))?;
        if tier == Tier::Enhanced && filter.tier != Tier::Enhanced {
            return Err(Rejection::new(RejectReason::EventRequiresEnhanced));
        }
        rule
    } else {
        policy.kind_rule(kind).ok_or(Rejection::new(RejectReason::TypeNotAllowlisted))?
    };
    if !envelope.has_user_id && !envelope.has_anonymous_id {
        return Err(Rejection::new(RejectReason::MissingIdentity));
    }
    match kind {
        MessageKind::Group if !envelope.has_group_id => return Err(Rejection::at(RejectReason::MissingField, "groupId")),
        MessageKind::Alias if !envelope.has_previous_id => {
            return Err(Rejection::at(RejectReason::MissingField, "previousId"));
        }
        _ => {}
    }
    let message_id = match envelope.message_id.as_deref() {
        Some(id) => id,
        None => meta.fallback_message_id.ok_or(Rejection::new(RejectReason::InvalidMessageId))?,
    };
    if !is_valid_message_id(message_id) {
        return Err(Rejection::at(RejectReason::InvalidMessageId, "messageId"));
    }
    let timestamp = match envelope.timestamp.as_deref() {
        None => None,
        Some(text) => Some(
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| Rejection::at(RejectReason::InvalidTimestamp, "timestamp"))?,
        ),
    };
    let keep_name = match (kind, envelope.name.as_deref()) {
        (MessageKind::Page | MessageKind::Screen, Some(name)) => policy
            .view_name_tier(kind, name)
            .is_some_and(|tier| tier == Tier::Baseline || filter.tier == Tier::Enhanced),
        _ => false,
    };
    Ok(Decision { kind, rule, message_id, timestamp, keep_name })
}

fn is_valid_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MESSAGE_ID_BYTES
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._:+=/-".contains(&byte))
        && forbidden_value(id).is_none()
}

/// Formats `2026-11-23T17:38:56.123Z`: the one timestamp format of sanitized messages.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    let mut out = Vec::with_capacity(26);
    write_timestamp(&mut out, at);
    String::from_utf8_lossy(&out[1..out.len() - 1]).into_owned()
}

/// Writes `"2026-11-23T17:38:56.123Z"`: UTC, millisecond precision, so day partitions are a prefix.
fn write_timestamp(out: &mut Vec<u8>, at: OffsetDateTime) {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let fields: [(u32, usize); 7] = [
        (utc.year().unsigned_abs(), 4),
        (u32::from(u8::from(utc.month())), 2),
        (u32::from(utc.day()), 2),
        (u32::from(utc.hour()), 2),
        (u32::from(utc.minute()), 2),
        (u32::from(utc.second()), 2),
        (u32::from(utc.millisecond()), 3),
    ];
    out.push(b'"');
    for (index, (value, width)) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(b"--T::.Z"[index - 1]);
        }
        let mut digits = [b'0'; 4];
        let mut rest = value;
        for slot in digits[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&digits[..width]);
    }
    out.extend_from_slice(b"Z\"");
}

/// What a captured value becomes under its leaf's action.
enum Outcome<'v> {
    Keep(&'v Scalar<'v>),
    Pseudonym([u8; crate::pseudonym::PSEUDONYM_LEN]),
    Absent,
    Drop(DropReason),
}

fn apply<'v>(filter: &TenantFilter, action: &LeafAction, value: &'v Scalar<'v>) -> Outcome<'v> {
    match (action, value) {
        (_, Scalar::Null) => Outcome::Absent,
        (LeafAction::Keep(ValueType::String), Scalar::Str(text)) => match forbidden_value(text.as_ref()) {
            Some(reason) => Outcome::Drop(reason),
            None => Outcome::Keep(value),
        },
        (LeafAction::Keep(ValueType::Boolean), Scalar::Bool(_))
        | (LeafAction::Keep(ValueType::Integer), Scalar::Int(_))
        | (LeafAction::Keep(ValueType::Number), Scalar::Int(_) | Scalar::Float(_)) => Outcome::Keep(value),
        (LeafAction::Keep(ValueType::Integer | ValueType::Number), Scalar::UInt(number)) if i64::try_from(*number).is_ok() => {
            Outcome::Keep(value)
        }
        (LeafAction::Pseudonymize(_), Scalar::Str(text)) if text.is_empty() => Outcome::Absent,
        (LeafAction::Pseudonymize(domain), Scalar::Str(text)) => Outcome::Pseudonym(filter.key.pseudonymize(domain, text.as_bytes())),
        (LeafAction::Pseudonymize(domain), Scalar::Int(number)) => {
            Outcome::Pseudonym(filter.key.pseudonymize(domain, itoa::Buffer::new().format(*number).as_bytes()))
        }
        (LeafAction::Pseudonymize(domain), Scalar::UInt(number)) => {
            Outcome::Pseudonym(filter.key.pseudonymize(domain, itoa::Buffer::new().format(*number).as_bytes()))
        }
        _ => Outcome::Drop(DropReason::TypeMismatch),
    }
}

fn write_scalar(out: &mut Vec<u8>, value: &Scalar<'_>) {
    match value {
        Scalar::Str(text) => write_json_str(out, text),
        Scalar::Int(number) => out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes()),
        Scalar::UInt(number) => out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes()),
        Scalar::Float(number) => out.extend_from_slice(ryu::Buffer::new().format_finite(*number).as_bytes()),
        Scalar::Bool(flag) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
        Scalar::Null | Scalar::Composite => debug_assert!(false, "only scalars are written"),
    }
}

pub(super) fn emit<S: DropSink>(
    walk: &Walk<'_, '_>,
    filter: &TenantFilter,
    meta: &MessageMeta<'_>,
    out: &mut Vec<u8>,
    sink: &mut S,
) -> Result<(), Rejection> {
    let decision = decide(walk, filter, meta)?;
    let policy = filter.policy();
    let envelope = &walk.envelope;

    out.extend_from_slice(&filter.head);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(decision.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"messageId\":");
    write_json_str(out, decision.message_id);
    out.extend_from_slice(b",\"timestamp\":");
    match decision.timestamp {
        Some(at) => write_timestamp(out, at),
        None => write_json_str(out, meta.received_at),
    }
    out.extend_from_slice(b",\"receivedAt\":");
    write_json_str(out, meta.received_at);
    if decision.kind == MessageKind::Track {
        out.extend_from_slice(b",\"event\":");
        write_json_str(out, envelope.event.as_deref().unwrap_or_default());
    }
    if decision.keep_name {
        out.extend_from_slice(b",\"name\":");
        write_json_str(out, envelope.name.as_deref().unwrap_or_default());
    } else if envelope.name.is_some() {
        sink.dropped(DroppedField::Key { parent: policy.root(), key: "name" }, DropReason::NotAllowlisted);
    }

    let mut pseudonyms: smallvec::SmallVec<[(u32, [u8; crate::pseudonym::PSEUDONYM_LEN]); 8]> = smallvec::SmallVec::new();
    out.extend_from_slice(b",\"fields\":{");
    let mut first = true;
    for capture in &walk.captures {
        let reason = match policy.permission(capture.leaf, decision.rule, filter.tier) {
            Permission::Allowed => match apply(filter, policy.leaf_action(capture.leaf), &capture.value) {
                Outcome::Keep(value) => {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_json_str(out, policy.leaf_path(capture.leaf));
                    out.push(b':');
                    write_scalar(out, value);
                    continue;
                }
                Outcome::Pseudonym(text) => {
                    pseudonyms.push((capture.leaf, text));
                    continue;
                }
                Outcome::Absent => continue,
                Outcome::Drop(reason) => reason,
            },
            Permission::EnhancedOnly => DropReason::EnhancedOnly,
            Permission::NotAllowlisted => DropReason::NotAllowlisted,
        };
        sink.dropped(DroppedField::Leaf(capture.leaf), reason);
    }
    out.extend_from_slice(b"},\"pseudonyms\":{");
    for (index, (leaf, text)) in pseudonyms.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_json_str(out, policy.leaf_path(*leaf));
        out.extend_from_slice(b":\"");
        out.extend_from_slice(text);
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
    for unlisted in &walk.unlisted {
        let key: &str = match &unlisted.key {
            Cow::Borrowed(key) => key,
            Cow::Owned(key) => key,
        };
        sink.dropped(DroppedField::Key { parent: unlisted.parent, key }, unlisted.reason);
    }
    Ok(())
}
