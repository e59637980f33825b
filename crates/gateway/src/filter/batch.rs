//! Segment `/v1/batch` bodies: `{"batch": [message, ...], "context": {...}, "sentAt": ...}`.
//!
//! Items are returned as their own bytes so each is filtered (and size-checked) on its own. A
//! batch-level `context` is merged into each item's context, shallowly, the item's keys winning.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::values::write_json_str;

/// A batch body that cannot be split into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not valid JSON; the parser's position-only description.
    #[error("malformed batch body: {0}")]
    Malformed(String),
    /// `batch` is not an array of objects.
    #[error("`batch` must be an array of message objects")]
    NotAnArray,
}

/// A split batch body.
#[derive(Debug)]
pub struct Batch<'a> {
    /// Each message's JSON, with the batch context merged in where there was one.
    pub items: Vec<Cow<'a, [u8]>>,
    /// The batch's `sentAt`, for clock-skew correction.
    pub sent_at: Option<String>,
    /// The batch's `writeKey` (browsers send it in the body).
    pub write_key: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    #[serde(rename = "sentAt")]
    sent_at: Option<&'a RawValue>,
    #[serde(rename = "writeKey")]
    write_key: Option<&'a RawValue>,
}

/// Splits a body into its messages, or returns `Ok(None)` if it is a single message.
pub fn split_batch(body: &[u8]) -> Result<Option<Batch<'_>>, BatchError> {
    if memchr::memmem::find(body, b"\"batch\"").is_none() {
        return Ok(None);
    }
    let parsed: BatchBody<'_> =
        serde_json::from_slice(body).map_err(|error| match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                BatchError::Malformed(error.to_string())
            }
            _ if error.to_string().starts_with("invalid type") => BatchError::NotAnArray,
            _ => BatchError::Malformed(
                "top-level keys must be unique and `batch` an array".to_owned(),
            ),
        })?;
    // One pass: serde splits the array into raw items while it checks the body.
    let Some(raw_items) = parsed.batch else {
        return Ok(None);
    };
    let context = parsed
        .context
        .filter(|context| context.get().trim_start().starts_with('{'));
    let items = raw_items
        .into_iter()
        .map(|item| match context {
            Some(context) => merge_context(item.get(), context.get())
                .map_or(Cow::Borrowed(item.get().as_bytes()), Cow::Owned),
            None => Cow::Borrowed(item.get().as_bytes()),
        })
        .collect();
    let text_of =
        |raw: Option<&RawValue>| raw.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    Ok(Some(Batch {
        items,
        sent_at: text_of(parsed.sent_at),
        write_key: text_of(parsed.write_key),
    }))
}

/// An object's top-level entries in order, or `None` if it is not an object or repeats a key
/// (the filter then sees the item unmerged and refuses it itself).
fn entries(object: &str) -> Option<Vec<(String, &RawValue)>> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Option<Vec<(String, &'de RawValue)>>;
        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found: Vec<(String, &'de RawValue)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value::<&'de RawValue>()?;
                if found.iter().any(|(seen, _)| *seen == key) {
                    return Ok(None);
                }
                found.push((key, value));
            }
            Ok(Some(found))
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(object);
    de::Deserializer::deserialize_map(&mut deserializer, Entries)
        .ok()
        .flatten()
}

fn write_object(out: &mut Vec<u8>, pairs: &[(String, Cow<'_, str>)]) {
    out.push(b'{');
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_json_str(out, key);
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'}');
}

fn merge_context(item: &str, batch_context: &str) -> Option<Vec<u8>> {
    let mut pairs: Vec<(String, Cow<'_, str>)> = entries(item)?
        .into_iter()
        .map(|(key, value)| (key, Cow::Borrowed(value.get())))
        .collect();
    let merged = match pairs.iter().position(|(key, _)| key == "context") {
        None => batch_context.to_owned(),
        Some(at) => {
            let mut own = entries(&pairs[at].1)?;
            let inherited = entries(batch_context)?;
            for (key, value) in inherited {
                if !own.iter().any(|(existing, _)| *existing == key) {
                    own.push((key, value));
                }
            }
            let own: Vec<(String, Cow<'_, str>)> = own
                .into_iter()
                .map(|(key, value)| (key, Cow::Borrowed(value.get())))
                .collect();
            let mut text = Vec::new();
            write_object(&mut text, &own);
            String::from_utf8(text).ok()?
        }
    };
    pairs.retain(|(key, _)| key != "context");
    pairs.push(("context".to_owned(), Cow::Owned(merged)));
    let mut out = Vec::with_capacity(item.len() + batch_context.len());
    write_object(&mut out, &pairs);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(batch: &Batch<'_>) -> Vec<serde_json::Value> {
        batch
            .items
            .iter()
            .map(|item| serde_json::from_slice(item).expect("item is JSON"))
            .collect()
    }

    #[test]
    fn single_messages_are_not_batches() {
        assert!(
            split_batch(br#"{"type":"track","event":"x"}"#)
                .expect("ok")
                .is_none()
        );
        assert!(
            split_batch(br#"{"type":"track","properties":{"batch":1}}"#)
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn batch_items_are_split_and_context_merged_item_first() {
        let body = br#"{"batch":[{"type":"track","context":{"locale":"de-DE"}},{"type":"page"}],"context":{"locale":"en-US","timezone":"UTC"},"sentAt":"2026-11-23T10:00:00Z","writeKey":"wk"}"#;
        let batch = split_batch(body).expect("ok").expect("a batch");
        let items = texts(&batch);
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0]["context"],
            serde_json::json!({"locale": "de-DE", "timezone": "UTC"})
        );
        assert_eq!(
            items[1]["context"],
            serde_json::json!({"locale": "en-US", "timezone": "UTC"})
        );
        assert_eq!(batch.sent_at.as_deref(), Some("2026-11-23T10:00:00Z"));
        assert_eq!(batch.write_key.as_deref(), Some("wk"));
    }

    #[test]
    fn bad_batches_are_errors_and_duplicate_items_stay_unmerged() {
        assert!(matches!(
            split_batch(br#"{"batch":[{"a":1}"#),
            Err(BatchError::Malformed(_))
        ));
        assert_eq!(
            split_batch(br#"{"batch":{"a":1}}"#).err(),
            Some(BatchError::NotAnArray)
        );
        let body = br#"{"batch":[{"type":"x","type":"y"}],"context":{"a":1}}"#;
        let batch = split_batch(body).expect("ok").expect("batch");
        assert_eq!(&*batch.items[0], br#"{"type":"x","type":"y"}"#);
    }
}
