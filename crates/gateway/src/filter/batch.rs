//! Segment `/v1/batch` bodies: `{"batch": [message, ...], "context": {...}, "sentAt": ...}`.
//!
//! Items are returned as their own bytes so each is filtered (and size-checked) on its own. A
//! batch-level `context` is merged into each item's context, shallowly, the item's keys winning.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::scan::{Scanner, Start, SyntaxError};
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

/// How deep items may nest for the splitter: as deep as the body's size allows. The splitter
/// keeps its open containers on the heap (no recursion; at most one byte per byte of a body the
/// size limit already bounds), and the filter refuses each item past its own depth limit on its
/// own (`too_deep`), so one hostile item does not cost its batch-mates their delivery.
const MAX_BATCH_DEPTH: usize = usize::MAX;

fn malformed(error: SyntaxError) -> BatchError {
    BatchError::Malformed(format!(
        "expected {} at byte {}",
        error.expected, error.offset
    ))
}

/// Splits a body into its messages, or returns `Ok(None)` if it is a single message.
///
/// One pass of the filter's strict scanner finds each item's bytes; items are validated in full
/// when they are filtered, so one bad item is rejected alone.
pub fn split_batch(body: &[u8]) -> Result<Option<Batch<'_>>, BatchError> {
    if memchr::memmem::find(body, b"\"batch\"").is_none() {
        return Ok(None);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| BatchError::Malformed("the body is not valid UTF-8".to_owned()))?;
    let mut scanner = Scanner::new(text);
    if scanner.peek_value().map_err(malformed)? != Start::Object {
        return Err(BatchError::Malformed("expected an object".to_owned()));
    }
    scanner.open();
    let mut seen: Vec<Cow<'_, str>> = Vec::new();
    let mut spans: Option<Vec<(usize, usize)>> = None;
    let mut context: Option<&str> = None;
    let mut sent_at = None;
    let mut write_key = None;
    let mut first = true;
    while let Some(key) = scanner.next_key(first).map_err(malformed)? {
        first = false;
        if seen.contains(&key) {
            return Err(BatchError::Malformed(
                "top-level keys must be unique and `batch` an array".to_owned(),
            ));
        }
        let kind = scanner.peek_value().map_err(malformed)?;
        let value_start = scanner.position();
        match (key.as_ref(), kind) {
            ("batch", Start::Array) => {
                let mut items = Vec::new();
                scanner.open();
                let mut first_item = true;
                while scanner.next_element(first_item).map_err(malformed)? {
                    first_item = false;
                    scanner.peek_value().map_err(malformed)?;
                    let item_start = scanner.position();
                    scanner.skip_value(MAX_BATCH_DEPTH).map_err(malformed)?;
                    items.push((item_start, scanner.position()));
                }
                spans = Some(items);
            }
            ("batch", _) => return Err(BatchError::NotAnArray),
            ("sentAt" | "writeKey", Start::String) => {
                let value = scanner.string().map_err(malformed)?.into_owned();
                if key == "sentAt" {
                    sent_at = Some(value);
                } else {
                    write_key = Some(value);
                }
            }
            (_, _) => {
                scanner.skip_value(MAX_BATCH_DEPTH).map_err(malformed)?;
                if key == "context" && kind == Start::Object {
                    context = Some(&text[value_start..scanner.position()]);
                }
            }
        }
        seen.push(key);
    }
    scanner.finish().map_err(malformed)?;
    let Some(spans) = spans else {
        return Ok(None);
    };
    let items = spans
        .into_iter()
        .map(|(start, end)| {
            let item = &text[start..end];
            match context {
                Some(context) => {
                    merge_context(item, context).map_or(Cow::Borrowed(item.as_bytes()), Cow::Owned)
                }
                None => Cow::Borrowed(item.as_bytes()),
            }
        })
        .collect();
    Ok(Some(Batch {
        items,
        sent_at,
        write_key,
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

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[\\PC{}\\[\\]\"\\\\,:]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z\\]\\[\"{}]{0,6}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn items_come_back_exactly_whatever_they_hold(items in proptest::collection::vec(json_value(), 0..8), pretty: bool) {
            let body = serde_json::json!({"sentAt": "2026-11-23T10:00:00Z", "batch": items.clone()});
            let text = if pretty { serde_json::to_string_pretty(&body) } else { serde_json::to_string(&body) }
                .expect("serializes");
            let batch = split_batch(text.as_bytes()).expect("valid").expect("a batch");
            proptest::prop_assert_eq!(texts(&batch), items);
            proptest::prop_assert_eq!(batch.sent_at.as_deref(), Some("2026-11-23T10:00:00Z"));
        }
    }

    #[test]
    fn hostile_bodies_are_refused_whole_or_split_exactly() {
        let refused: [&[u8]; 6] = [
            br#"{"batch":[],"batch":[]}"#,
            br#"{"batch":[{"a":"]"}]"#,
            br#"{"batch":[{"a":1}]} trailing"#,
            br#"["batch"]"#,
            b"{\"batch\":[\xff]}",
            br#"{"batch":[{"a":tru}]}"#,
        ];
        for body in refused {
            assert!(
                split_batch(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // An item nested past any limit is split out exactly, for the filter to refuse alone.
        let deep_item = format!("{}{}", "{\"a\":[".repeat(5_000), "]}".repeat(5_000));
        let deep = format!("{{\"batch\":[{{\"n\":1}},{deep_item},{{\"n\":2}}]}}");
        let batch = split_batch(deep.as_bytes()).expect("ok").expect("batch");
        assert_eq!(batch.items.len(), 3);
        assert_eq!(&*batch.items[0], br#"{"n":1}"#);
        assert_eq!(&*batch.items[1], deep_item.as_bytes());
        assert_eq!(&*batch.items[2], br#"{"n":2}"#);
        let unclosed = format!("{{\"batch\":[{}]}}", "[".repeat(5_000));
        assert!(matches!(
            split_batch(unclosed.as_bytes()),
            Err(BatchError::Malformed(_))
        ));
        // A non-object item is passed on alone, for the filter to refuse it.
        let batch = split_batch(br#"{"batch":[1, {"x":"}\"]"}]}"#)
            .expect("ok")
            .expect("batch");
        assert_eq!(batch.items.len(), 2);
        assert_eq!(&*batch.items[0], b"1");
        assert_eq!(&*batch.items[1], br#"{"x":"}\"]"}"#);
    }
}
