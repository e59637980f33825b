//! A sanitized message decoded from a Kafka record, borrowing its strings from the record (the
//! hot path allocates only for strings with escapes), with the parts the processor partitions
//! and deduplicates on.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use veil_sanitized::{MessageKind, SCHEMA_VERSION, Tier};

use crate::timestamp::{self, Day};

mod canonical;

/// Why a Kafka record is not a storable sanitized message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the sanitized-message contract (the parser's position-only description).
    #[error("not a sanitized message: {0}")]
    Contract(String),
    /// A contract version this processor does not read.
    #[error("unsupported schema version")]
    Version,
    /// `timestamp` or `receivedAt` is not RFC 3339.
    #[error("field {0} is not an RFC 3339 date-time")]
    Time(&'static str),
    /// The tenant id is not usable as a partition value.
    #[error("field tenant is not a valid tenant id")]
    Tenant,
}

/// A kept field's value (the contract's `FieldValue`, borrowed).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A boolean flag.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A finite floating point number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
}

/// One message ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// Tenant id (validated: safe as a directory name).
    pub tenant: Cow<'a, str>,
    /// Collection tier.
    pub tier: Tier,
    /// Allowlist digest.
    pub policy: Cow<'a, str>,
    /// Key epoch of the pseudonyms.
    pub key_epoch: Cow<'a, str>,
    /// Segment message type.
    pub kind: MessageKind,
    /// Client-chosen id (the dedup key with the tenant).
    pub message_id: Cow<'a, str>,
    /// Track event name.
    pub event: Option<Cow<'a, str>>,
    /// Page or screen name.
    pub name: Option<Cow<'a, str>>,
    /// Kept fields by allowlist path, in message order.
    pub fields: Vec<(Cow<'a, str>, Value<'a>)>,
    /// Pseudonyms by allowlist path, in message order.
    pub pseudonyms: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// `timestamp` in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    /// `receivedAt` in milliseconds since the Unix epoch (UTC).
    pub received_ms: i64,
    /// The partition day of `timestamp` (late events land in their own day).
    pub day: Day,
}

/// A string that borrows from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
            type Value = Value<'a>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a boolean, number or string")
            }
            fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Value<'a>, E> {
                Ok(Value::Bool(flag))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Value<'a>, E> {
                Ok(Value::Int(number))
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Value<'a>, E> {
                // As the contract's untagged `FieldValue`: beyond i64 it is a float.
                Ok(i64::try_from(number).map_or(Value::Float(number as f64), Value::Int))
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Value<'a>, E> {
                Ok(Value::Float(number))
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Value<'a>, E> {
                Ok(Value::Str(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Value<'a>, E> {
                Ok(Value::Str(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_any(ValueVisitor(std::marker::PhantomData))
    }
}

/// A JSON object's entries in order (duplicates are caught by the column layout).
struct Entries<'a, V>(Vec<(Cow<'a, str>, V)>);

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Entries<'a, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<'a, V>(std::marker::PhantomData<(&'a (), V)>);
        impl<'de: 'a, 'a, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<'a, V> {
            type Value = Entries<'a, V>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'a, V>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Text(key), value)) = map.next_entry::<Text<'a>, V>()? {
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

impl<V> Default for Entries<'_, V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

/// The contract's JSON shape (`veil_sanitized::SanitizedMessage`), borrowed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire<'a> {
    schema: u32,
    #[serde(borrow)]
    tenant: Cow<'a, str>,
    tier: Tier,
    #[serde(borrow)]
    policy: Cow<'a, str>,
    #[serde(borrow)]
    key_epoch: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: MessageKind,
    #[serde(borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    received_at: Cow<'a, str>,
    #[serde(default, borrow)]
    event: Option<Text<'a>>,
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    fields: Entries<'a, Value<'a>>,
    #[serde(default, borrow)]
    pseudonyms: Entries<'a, Text<'a>>,
}

/// One SIMD pass over the record, so no parser needs to check each string's UTF-8.
fn utf8(payload: &[u8]) -> Result<&str, DecodeError> {
    simdutf8::basic::from_utf8(payload).map_err(|_| DecodeError::Contract("not UTF-8".to_owned()))
}

/// Any valid JSON encoding of the contract.
fn wire_with_serde(text: &str) -> Result<Wire<'_>, DecodeError> {
    serde_json::from_str(text).map_err(|error| {
        // serde's data errors can quote input ("unknown variant `x`"); keep position only.
        DecodeError::Contract(format!(
            "invalid at line {} column {}",
            error.line(),
            error.column()
        ))
    })
}

/// A row's field lists kept between rows ([`Row::decode_reusing`]), so that decoding a
/// message does not allocate (and dropping it free) two lists.
#[derive(Debug, Default)]
pub struct RowScratch {
    fields: Vec<(Cow<'static, str>, Value<'static>)>,
    pseudonyms: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

/// An emptied list for entries of another lifetime, keeping its allocation: an empty `Vec`'s
/// `into_iter().map().collect()` into elements of the same layout is collected in place.
fn relist<From, To>(mut list: Vec<From>) -> Vec<To> {
    list.clear();
    list.into_iter()
        .map(|_| unreachable!("the list was just cleared"))
        .collect()
}

impl RowScratch {
    /// Takes back a row's lists, emptied, for the next row.
    pub fn recycle(&mut self, row: Row<'_>) {
        self.fields = relist(row.fields);
        self.pseudonyms = relist(row.pseudonyms);
    }
}

impl<'a> Row<'a> {
    /// Decodes one Kafka record's payload.
    pub fn decode(payload: &'a [u8]) -> Result<Row<'a>, DecodeError> {
        Row::decode_reusing(payload, &mut RowScratch::default())
    }

    /// [`Row::decode`] into the lists `scratch` holds (give them back with
    /// [`RowScratch::recycle`]).
    pub fn decode_reusing(
        payload: &'a [u8],
        scratch: &mut RowScratch,
    ) -> Result<Row<'a>, DecodeError> {
        let text = utf8(payload)?;
        let fields = relist(std::mem::take(&mut scratch.fields));
        let pseudonyms = relist(std::mem::take(&mut scratch.pseudonyms));
        let wire = match canonical::parse(text, fields, pseudonyms) {
            Some(wire) => wire,
            None => wire_with_serde(text)?,
        };
        Row::from_wire(wire)
    }

    /// [`Row::decode`] without the canonical fast path (what the fast path must agree with).
    #[cfg(test)]
    fn decode_with_serde(payload: &'a [u8]) -> Result<Row<'a>, DecodeError> {
        Row::from_wire(wire_with_serde(utf8(payload)?)?)
    }

    fn from_wire(wire: Wire<'a>) -> Result<Row<'a>, DecodeError> {
        if wire.schema != SCHEMA_VERSION {
            return Err(DecodeError::Version);
        }
        if !veil_sanitized::is_valid_tenant(&wire.tenant) {
            return Err(DecodeError::Tenant);
        }
        let timestamp_ms =
            timestamp::parse_ms(&wire.timestamp).ok_or(DecodeError::Time("timestamp"))?;
        let received_ms =
            timestamp::parse_ms(&wire.received_at).ok_or(DecodeError::Time("receivedAt"))?;
        Ok(Row {
            tenant: wire.tenant,
            tier: wire.tier,
            policy: wire.policy,
            key_epoch: wire.key_epoch,
            kind: wire.kind,
            message_id: wire.message_id,
            event: wire.event.map(|text| text.0),
            name: wire.name.map(|text| text.0),
            fields: wire.fields.0,
            pseudonyms: wire
                .pseudonyms
                .0
                .into_iter()
                .map(|(path, Text(pseudonym))| (path, pseudonym))
                .collect(),
            timestamp_ms,
            received_ms,
            day: Day::of_ms(timestamp_ms),
        })
    }

    /// The value of a kept field.
    pub fn field(&self, path: &str) -> Option<&Value<'a>> {
        self.fields
            .iter()
            .find_map(|(name, value)| (name == path).then_some(value))
    }

    /// The pseudonym of an identifier field.
    pub fn pseudonym(&self, path: &str) -> Option<&str> {
        self.pseudonyms
            .iter()
            .find_map(|(name, pseudonym)| (name == path).then_some(pseudonym.as_ref()))
    }
}

#[cfg(test)]
mod tests;
