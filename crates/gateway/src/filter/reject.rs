//! Why a message is rejected or a field dropped. Names and reasons only, never values.

use std::fmt;

/// Why a whole message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Larger than the 32 KiB message limit.
    TooLarge,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not valid JSON (syntax, truncation, numbers out of range, trailing data).
    MalformedJson,
    /// Nested deeper than the fixed limit.
    TooDeep,
    /// One object holds the same key twice: different parsers would disagree on its value.
    DuplicateKey,
    /// The document is not a JSON object.
    NotAnObject,
    /// No `type`.
    MissingType,
    /// A `type` that is not a Segment message type.
    UnknownType,
    /// A message type the allowlist does not accept.
    TypeNotAllowlisted,
    /// A track message without `event`.
    MissingEvent,
    /// A track event the allowlist does not name.
    EventNotAllowlisted,
    /// A track event the allowlist keeps only for enhanced tenants.
    EventRequiresEnhanced,
    /// Neither `userId` nor `anonymousId`.
    MissingIdentity,
    /// A field the message type requires is absent (`groupId` for group, `previousId` for alias).
    MissingField,
    /// A structural field has the wrong JSON type.
    WrongType,
    /// `messageId` is missing, too long, or has characters outside `A-Za-z0-9._:+=/-`.
    InvalidMessageId,
    /// `timestamp` is not an RFC 3339 date-time.
    InvalidTimestamp,
}

impl RejectReason {
    /// Stable snake_case name for counters, logs and the rejections topic.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::TooDeep => "too_deep",
            RejectReason::DuplicateKey => "duplicate_key",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingType => "missing_type",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::TypeNotAllowlisted => "type_not_allowlisted",
            RejectReason::MissingEvent => "missing_event",
            RejectReason::EventNotAllowlisted => "event_not_allowlisted",
            RejectReason::EventRequiresEnhanced => "event_requires_enhanced",
            RejectReason::MissingIdentity => "missing_identity",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidMessageId => "invalid_message_id",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
        }
    }
}

/// A refused message: the reason, the field concerned, and for JSON errors the parser's
/// position-only description (serde_json's syntax messages never quote the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// The field concerned, by path; unusual key names are replaced by `*`.
    pub field: Option<String>,
    /// For malformed JSON: what the parser expected and where.
    pub detail: Option<String>,
    /// The track event's name, when it reads like an event name ([`is_reportable_event`]) and
    /// the allowlist or the Segment spec names it ([`veil_policy::Policy::is_known_event`]).
    pub event: Option<String>,
}

impl Rejection {
    pub(crate) fn new(reason: RejectReason) -> Rejection {
        Rejection {
            reason,
            field: None,
            detail: None,
            event: None,
        }
    }

    pub(crate) fn at(reason: RejectReason, field: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            field: Some(field.into()),
            detail: None,
            event: None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.reason.as_str())?;
        if let Some(field) = &self.field {
            write!(formatter, " field={field}")?;
        }
        if let Some(detail) = &self.detail {
            write!(formatter, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

/// Why one field of an accepted message did not leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The allowlist does not name it for this message type or event.
    NotAllowlisted,
    /// The allowlist names it only for enhanced tenants.
    EnhancedOnly,
    /// Its value does not have the type the allowlist declares.
    TypeMismatch,
    /// A number outside the `min`/`max` the allowlist declares for it.
    OutOfRange,
    /// A text not among the `values` the allowlist lists for it.
    ValueNotAllowlisted,
    /// Its value is or contains an e-mail address.
    EmailValue,
    /// Its value is or contains an IP address.
    IpValue,
    /// A `timestamp` more than an hour after the gateway received the message: replaced by the
    /// receive time, so a wrong clock cannot file rows under a future day that retention never
    /// reaches.
    FutureTimestamp,
    /// Its value holds a control character (C0, DEL, C1) or an invisible text-direction
    /// control: no allowlisted text needs one, and in a report, a CSV export or a log it can
    /// forge lines or show other text than is stored.
    ControlCharacter,
}

impl DropReason {
    /// Every reason, for fixed-size counters.
    pub const ALL: [DropReason; 9] = [
        DropReason::NotAllowlisted,
        DropReason::EnhancedOnly,
        DropReason::TypeMismatch,
        DropReason::OutOfRange,
        DropReason::ValueNotAllowlisted,
        DropReason::EmailValue,
        DropReason::IpValue,
        DropReason::FutureTimestamp,
        DropReason::ControlCharacter,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotAllowlisted => "not_allowlisted",
            DropReason::EnhancedOnly => "enhanced_only",
            DropReason::TypeMismatch => "type_mismatch",
            DropReason::OutOfRange => "out_of_range",
            DropReason::ValueNotAllowlisted => "value_not_allowlisted",
            DropReason::EmailValue => "email_value",
            DropReason::IpValue => "ip_value",
            DropReason::FutureTimestamp => "future_timestamp",
            DropReason::ControlCharacter => "control_character",
        }
    }
}

pub use veil_policy::{is_reportable_key, push_reportable_key};

/// Whether a client-chosen event name may appear in audit records as it is: up to 64 characters
/// of letters, digits, spaces and `_ - . : /`, with no e-mail or IP address and no long digit run
/// (an id or a phone number). Other names are reported as absent.
pub fn is_reportable_event(event: &str) -> bool {
    let mut digit_run = 0;
    !event.is_empty()
        && event.len() <= 64
        && event.bytes().all(|byte| {
            digit_run = if byte.is_ascii_digit() {
                digit_run + 1
            } else {
                0
            };
            digit_run < 5
                && (byte.is_ascii_alphanumeric()
                    || matches!(byte, b' ' | b'_' | b'-' | b'.' | b':' | b'/'))
        })
        && super::values::forbidden_value(event).is_none()
}
