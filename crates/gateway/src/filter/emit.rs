//! Second half of the filter: decide the rule for the message's type and event, check the
//! envelope, then write what the rule lets out. Rejections all happen before anything is written.

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use veil_sanitized::{MessageKind, Tier};

use super::Screening;
use super::message_id::{
    KEYED_ID_LEN, MessageIdForm, SDK_ID_HEX_DIGITS, keyed_message_id, message_id_form,
    repeats_an_identifier,
};
use super::output::push_quoted_from_input;
use super::reject::{DropReason, RejectReason, Rejection};
use super::values::{forbidden_value, holds_dotted_quad, write_json_str};
use super::walk::{Scalar, Walk};
use super::{Accepted, DropSink, DroppedField, MessageMeta, TenantFilter};
use crate::allowlist::{Kept, ValueType};
use crate::allowlist::{LeafAction, LeafId, Permission, RuleId};
use crate::pseudonym::{PseudonymCache, is_placeholder_identifier};

/// How the output's `timestamp` is written.
enum Timestamp<'a> {
    /// Already canonical (`2026-11-23T17:38:56.123Z`, as JavaScript's `toISOString` writes): copied.
    Canonical(&'a str),
    /// Any other RFC 3339 form: normalized.
    Parsed(OffsetDateTime),
    /// None sent: the receive time.
    Received,
}

/// The `messageId` a sanitized message carries.
enum MessageIdText<'a> {
    /// A client's id in an official SDK's form, or the caller's fallback id.
    AsSent(&'a str),
    /// Any other client id, replaced by `veil-` and its keyed pseudonym.
    Keyed([u8; KEYED_ID_LEN]),
}

impl MessageIdText<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            MessageIdText::AsSent(id) => id.as_bytes(),
            MessageIdText::Keyed(keyed) => keyed,
        }
    }
}

/// How far after its arrival a message's timestamp may lie: clocks drift (SDKs send `sentAt`,
/// which corrects theirs), but an hour ahead is a wrong clock or time zone.
const MAX_FUTURE_MS: i64 = 60 * 60 * 1000;

struct Decision<'a> {
    kind: MessageKind,
    rule: RuleId,
    message_id: MessageIdText<'a>,
    timestamp: Timestamp<'a>,
    /// The client's timestamp was more than [`MAX_FUTURE_MS`] ahead and is replaced.
    future_timestamp: bool,
    keep_name: bool,
}

/// Whether `timestamp` lies more than [`MAX_FUTURE_MS`] after `received_at` (canonical).
fn too_far_ahead(timestamp: &Timestamp<'_>, received_at: &str) -> bool {
    use veil_sanitized::timestamp::parse_canonical;
    debug_assert!(parse_canonical(received_at).is_some());
    match timestamp {
        Timestamp::Received => false,
        // Canonical texts order as their instants do: only a later one needs arithmetic.
        Timestamp::Canonical(text) => {
            *text > received_at
                && parse_canonical(text)
                    .zip(parse_canonical(received_at))
                    .is_some_and(|(at, received)| at - received > MAX_FUTURE_MS)
        }
        Timestamp::Parsed(at) => {
            OffsetDateTime::parse(received_at, &Rfc3339).is_ok_and(|received| {
                (*at - received).whole_milliseconds() > i128::from(MAX_FUTURE_MS)
            })
        }
    }
}

/// The text values of the message's pseudonymized fields long enough to hold an SDK id's 32
/// hex digits (the only ones [`repeats_an_identifier`] can find; the length is looked at first,
/// so short ids cost one comparison).
fn pseudonymized_texts<'w>(
    walk: &'w Walk<'_, '_>,
    policy: &'w crate::allowlist::Policy,
) -> impl Iterator<Item = &'w str> {
    walk.captures
        .iter()
        .filter_map(|capture| match &capture.value {
            Scalar::Str(text)
                if text.len() >= SDK_ID_HEX_DIGITS
                    && matches!(
                        policy.leaf_action(capture.leaf),
                        LeafAction::Pseudonymize(_)
                    ) =>
            {
                Some(text.as_ref())
            }
            _ => None,
        })
}

fn decide<'a>(
    walk: &'a Walk<'_, '_>,
    filter: &TenantFilter,
    meta: &'a MessageMeta<'a>,
) -> Result<Decision<'a>, Rejection> {
    let envelope = &walk.envelope;
    let policy = filter.policy();
    let kind_text = envelope
        .kind
        .as_deref()
        .ok_or(Rejection::new(RejectReason::MissingType))?;
    let kind =
        MessageKind::from_wire(kind_text).ok_or(Rejection::new(RejectReason::UnknownType))?;
    let rule = if kind == MessageKind::Track {
        let event = envelope.event.as_deref().filter(|event| !event.is_empty());
        let event = event.ok_or(Rejection::new(RejectReason::MissingEvent))?;
        let (rule, tier) = policy
            .event_rule(event)
            .ok_or(Rejection::new(RejectReason::EventNotAllowlisted))?;
        if tier == Tier::Enhanced && filter.tier != Tier::Enhanced {
            return Err(Rejection::new(RejectReason::EventRequiresEnhanced));
        }
        rule
    } else {
        policy
            .kind_rule(kind)
            .ok_or(Rejection::new(RejectReason::TypeNotAllowlisted))?
    };
    if !envelope.has_user_id && !envelope.has_anonymous_id {
        return Err(Rejection::new(RejectReason::MissingIdentity));
    }
    match kind {
        MessageKind::Group if !envelope.has_group_id => {
            return Err(Rejection::at(RejectReason::MissingField, "groupId"));
        }
        MessageKind::Alias if !envelope.has_previous_id => {
            return Err(Rejection::at(RejectReason::MissingField, "previousId"));
        }
        _ => {}
    }
    let message_id = match envelope.message_id.as_deref() {
        Some(id) => match message_id_form(id) {
            MessageIdForm::Sdk if !repeats_an_identifier(id, pseudonymized_texts(walk, policy)) => {
                MessageIdText::AsSent(id)
            }
            MessageIdForm::Sdk | MessageIdForm::Other => {
                MessageIdText::Keyed(keyed_message_id(&filter.key, id))
            }
            MessageIdForm::Invalid => {
                return Err(Rejection::at(RejectReason::InvalidMessageId, "messageId"));
            }
        },
        // The caller's own id (derived under the tenant's key): written as given.
        None => MessageIdText::AsSent(
            meta.fallback_message_id
                .ok_or(Rejection::new(RejectReason::InvalidMessageId))?,
        ),
    };
    let sent_at = envelope.sent_at.as_deref().or(meta.sent_at);
    let timestamp =
        match (envelope.timestamp.as_deref(), sent_at) {
            (None, _) => Timestamp::Received,
            (Some(text), None) if veil_sanitized::timestamp::parse_canonical(text).is_some() => {
                Timestamp::Canonical(text)
            }
            (Some(text), sent_at) => {
                let parse = |text: &str, field: &'static str| {
                    OffsetDateTime::parse(text, &Rfc3339)
                        .map_err(|_| Rejection::at(RejectReason::InvalidTimestamp, field))
                };
                let timestamp = parse(text, "timestamp")?;
                match sent_at {
                    None => Timestamp::Parsed(timestamp),
                    // Segment's clock-skew correction: the client's clock is off by (sentAt - now).
                    Some(sent_at) => {
                        let sent_at = parse(sent_at, "sentAt")?;
                        let received = parse(meta.received_at, "receivedAt")?;
                        // A `sentAt` far ahead of `timestamp` can move it before year 1, which
                        // the sanitized format (four-digit years, as RFC 3339) cannot write.
                        let corrected = received
                            .checked_sub(sent_at - timestamp)
                            .filter(|corrected| corrected.year() >= 1);
                        Timestamp::Parsed(corrected.ok_or_else(|| {
                            Rejection::at(RejectReason::InvalidTimestamp, "sentAt")
                        })?)
                    }
                }
            }
        };
    let future_timestamp = too_far_ahead(&timestamp, meta.received_at);
    let timestamp = if future_timestamp {
        Timestamp::Received
    } else {
        timestamp
    };
    let keep_name = match (kind, envelope.name.as_deref()) {
        (MessageKind::Page | MessageKind::Screen, Some(name)) => policy
            .view_name_tier(kind, name)
            .is_some_and(|tier| tier == Tier::Baseline || filter.tier == Tier::Enhanced),
        _ => false,
    };
    Ok(Decision {
        kind,
        rule,
        message_id,
        timestamp,
        future_timestamp,
        keep_name,
    })
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
    debug_assert!(
        (0..=9999).contains(&utc.year()),
        "four-digit years only: decide() refuses the rest"
    );
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
enum Outcome<'v, 'c> {
    Keep(&'v Scalar<'v>),
    /// The pseudonym, where the cache holds it.
    Pseudonym(&'c [u8; crate::pseudonym::PSEUDONYM_LEN]),
    Absent,
    Drop(DropReason),
}

/// The pseudonym of `input` for `leaf`, from the cache or computed into it.
#[inline(always)]
fn pseudonym<'v, 'c>(
    filter: &TenantFilter,
    cache: &'c mut PseudonymCache,
    leaf: LeafId,
    domain: &str,
    input: &[u8],
) -> Outcome<'v, 'c> {
    Outcome::Pseudonym(cache.get_or_insert_with(filter.id, leaf, input, || {
        filter.key.pseudonymize_identifier(domain, input)
    }))
}

/// A pseudonymized leaf's outcome: strings and integers are identifiers, an empty string is
/// absent, anything else is a type mismatch.
#[inline(always)]
fn pseudonymize<'v, 'c>(
    filter: &TenantFilter,
    cache: &'c mut PseudonymCache,
    leaf: LeafId,
    domain: &str,
    value: &'v Scalar<'v>,
) -> Outcome<'v, 'c> {
    match value {
        Scalar::Str(text) if is_placeholder_identifier(text) => Outcome::Absent,
        Scalar::Str(text) => pseudonym(filter, cache, leaf, domain, text.as_bytes()),
        Scalar::Int(number) => pseudonym(
            filter,
            cache,
            leaf,
            domain,
            itoa::Buffer::new().format(*number).as_bytes(),
        ),
        Scalar::UInt(number) => pseudonym(
            filter,
            cache,
            leaf,
            domain,
            itoa::Buffer::new().format(*number).as_bytes(),
        ),
        Scalar::Null => Outcome::Absent,
        Scalar::Float(_) | Scalar::Bool(_) | Scalar::Composite => {
            Outcome::Drop(DropReason::TypeMismatch)
        }
    }
}

/// A kept leaf's outcome: a value of its type leaves if the allowlist's constraints (a range, a
/// list) admit it and, for text, the value checks find nothing in it.
#[inline(always)]
fn keep<'v, 'c>(kept: &Kept, screening: Screening, value: &'v Scalar<'v>) -> Outcome<'v, 'c> {
    let admitted = match (kept.value_type, value) {
        (ValueType::String, Scalar::Str(text)) => {
            if !kept.admits_text(text) {
                return Outcome::Drop(DropReason::ValueNotAllowlisted);
            }
            match screening {
                Screening::Done => {
                    debug_assert!(forbidden_value(text.as_ref()).is_none());
                    return Outcome::Keep(value);
                }
                Screening::DottedQuadOnly => {
                    return if holds_dotted_quad(text.as_ref()) {
                        Outcome::Drop(DropReason::IpValue)
                    } else {
                        debug_assert!(forbidden_value(text.as_ref()).is_none());
                        Outcome::Keep(value)
                    };
                }
                Screening::Full => {}
            }
            return match forbidden_value(text.as_ref()) {
                Some(reason) => Outcome::Drop(reason),
                None => Outcome::Keep(value),
            };
        }
        (ValueType::Boolean, Scalar::Bool(_)) => true,
        (ValueType::Integer | ValueType::Number, Scalar::Int(number)) => {
            kept.bounds.contains_integer(*number)
        }
        (ValueType::Number, Scalar::Float(number)) => kept.bounds.contains_number(*number),
        // `Scalar::UInt` is only read for integers beyond `i64`, which no kept column holds.
        _ => return Outcome::Drop(DropReason::TypeMismatch),
    };
    if admitted {
        Outcome::Keep(value)
    } else {
        Outcome::Drop(DropReason::OutOfRange)
    }
}

#[inline(always)]
fn apply<'v, 'c>(
    filter: &TenantFilter,
    cache: &'c mut PseudonymCache,
    leaf: LeafId,
    action: &LeafAction,
    value: &'v Scalar<'v>,
) -> Outcome<'v, 'c> {
    match (action, value) {
        (_, Scalar::Null) => Outcome::Absent,
        (LeafAction::Keep(kept), _) => keep(kept, filter.screened_leaves[leaf as usize], value),
        (LeafAction::Pseudonymize(domain), _) => {
            let outcome = pseudonymize(filter, cache, leaf, domain, value);
            // The walk counted the field as an identity by the same rule.
            debug_assert_eq!(
                matches!(outcome, Outcome::Pseudonym(_)),
                value.is_identifier()
            );
            outcome
        }
    }
}

#[inline(always)]
fn write_scalar(out: &mut Vec<u8>, input: &[u8], value: &Scalar<'_>) {
    match value {
        // A string borrowed from the input had no escapes there, so it needs none here: it is
        // copied with its quotes as it stands in the input.
        Scalar::Str(Cow::Borrowed(text)) => {
            if push_quoted_from_input(out, input, text) {
                return;
            }
            debug_assert!(
                !text
                    .bytes()
                    .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
            );
            out.reserve(text.len() + 2);
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Scalar::Str(text) => write_json_str(out, text),
        Scalar::Int(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes())
        }
        Scalar::UInt(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes())
        }
        Scalar::Float(number) => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*number).as_bytes())
        }
        Scalar::Bool(flag) => out.extend_from_slice(if *flag { b"true" } else { b"false" }),
        Scalar::Null | Scalar::Composite => debug_assert!(false, "only scalars are written"),
    }
}

/// Turns the comma before an object's first member (written at `start`) into its `{`, or
/// writes the `{` of an empty object.
#[inline(always)]
fn open_object(out: &mut Vec<u8>, start: usize) {
    match out.get_mut(start) {
        Some(comma) => {
            debug_assert_eq!(*comma, b',');
            *comma = b'{';
        }
        None => out.push(b'{'),
    }
}

pub(super) fn emit<S: DropSink>(
    walk: &Walk<'_, '_>,
    filter: &TenantFilter,
    meta: &MessageMeta<'_>,
    cache: &mut PseudonymCache,
    pseudonym_output: &mut Vec<u8>,
    out: &mut Vec<u8>,
    sink: &mut S,
) -> Result<Accepted, Rejection> {
    let decision = decide(walk, filter, meta)?;
    let policy = filter.policy();
    let envelope = &walk.envelope;

    // Head and type up to `"messageId":"`, in one copy.
    out.extend_from_slice(&filter.kind_heads[decision.kind as usize]);
    // An SDK id (hex digits, `-`, `ajs-next-` ...) or a keyed id: nothing to escape.
    out.extend_from_slice(decision.message_id.as_bytes());
    match decision.timestamp {
        Timestamp::Canonical(text) => {
            out.extend_from_slice(b"\",\"timestamp\":\"");
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Timestamp::Parsed(at) => {
            out.extend_from_slice(b"\",\"timestamp\":");
            write_timestamp(out, at);
        }
        Timestamp::Received => {
            out.extend_from_slice(b"\",\"timestamp\":");
            write_json_str(out, meta.received_at);
        }
    }
    out.extend_from_slice(b",\"receivedAt\":");
    write_json_str(out, meta.received_at);
    if decision.future_timestamp {
        sink.dropped(
            DroppedField::Key {
                parent: policy.root(),
                key: "timestamp",
            },
            DropReason::FutureTimestamp,
        );
    }
    if decision.kind == MessageKind::Track {
        out.extend_from_slice(b",\"event\":");
        write_json_str(out, envelope.event.as_deref().unwrap_or_default());
    }
    if decision.keep_name {
        out.extend_from_slice(b",\"name\":");
        write_json_str(out, envelope.name.as_deref().unwrap_or_default());
    } else if envelope.name.is_some() {
        sink.dropped(
            DroppedField::Key {
                parent: policy.root(),
                key: "name",
            },
            DropReason::NotAllowlisted,
        );
    }

    // The `pseudonyms` object is written aside while `fields` is, each pseudonym copied once
    // from the cache; the routing key's pseudonyms are kept (userId's, then anonymousId's).
    pseudonym_output.clear();
    let mut routing: [Option<[u8; crate::pseudonym::PSEUDONYM_LEN]>; 2] = [None, None];
    // Every field is written after a comma; the first comma becomes the object's `{`.
    out.extend_from_slice(b",\"fields\":");
    let fields_start = out.len();
    let input = walk.input();
    for capture in &walk.captures {
        let reason = match policy.permission(capture.leaf, decision.rule, filter.tier) {
            Permission::Allowed => match apply(
                filter,
                cache,
                capture.leaf,
                policy.leaf_action(capture.leaf),
                &capture.value,
            ) {
                Outcome::Keep(value) => {
                    filter.leaf_pieces.push(out, capture.leaf);
                    write_scalar(out, input, value);
                    continue;
                }
                Outcome::Pseudonym(text) => {
                    filter.leaf_pieces.push(pseudonym_output, capture.leaf);
                    pseudonym_output.reserve(crate::pseudonym::PSEUDONYM_LEN + 2);
                    pseudonym_output.push(b'"');
                    pseudonym_output.extend_from_slice(text);
                    pseudonym_output.push(b'"');
                    for (slot, routing_leaf) in routing.iter_mut().zip(&filter.routing_leaves) {
                        if *routing_leaf == Some(capture.leaf) {
                            *slot = Some(*text);
                        }
                    }
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
    open_object(out, fields_start);
    out.extend_from_slice(b"},\"pseudonyms\":");
    let pseudonyms_start = out.len();
    out.extend_from_slice(pseudonym_output);
    open_object(out, pseudonyms_start);
    out.extend_from_slice(b"}}");
    let [user, anonymous] = routing;
    let routing_key = user.or(anonymous);
    for unlisted in &walk.unlisted {
        let key: &str = match &unlisted.key {
            Cow::Borrowed(key) => key,
            Cow::Owned(key) => key,
        };
        sink.dropped_key(unlisted.parent, key, unlisted.summary, unlisted.reason);
    }
    Ok(Accepted {
        kind: decision.kind,
        routing_key,
    })
}
