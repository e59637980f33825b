//! The worker cache's key-order prediction never changes an answer: every message gives the
//! same output bytes, rejection and dropped fields with a warm cache (primed by the messages
//! before it, of the same or a slightly different shape) as with a cold one.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::allowlist::Allowlist;
use crate::pseudonym::EpochKey;

fn filter() -> TenantFilter {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../allowlist.yaml");
    let policy = Arc::new(
        Allowlist::load(&path)
            .expect("allowlist.yaml is valid")
            .compile(),
    );
    TenantFilter::new(
        policy,
        "t-1",
        Tier::Baseline,
        EpochKey::new("2026-11", &[3; 32]),
    )
}

const META: MessageMeta<'static> = MessageMeta {
    received_at: "2026-11-23T10:00:00.000Z",
    fallback_message_id: None,
    sent_at: None,
};

/// Every dropped field in the order the filter reported it.
#[derive(Debug, Default, PartialEq)]
struct Recorded(Vec<String>);

impl DropSink for Recorded {
    fn dropped(&mut self, field: DroppedField<'_>, reason: DropReason) {
        self.0.push(format!("{field:?} {reason:?}"));
    }
}

type Answer = (Result<Accepted, Rejection>, Vec<u8>, Recorded);

fn answer(filter: &TenantFilter, message: &[u8], cache: &mut WorkerCache) -> Answer {
    let mut out = Vec::new();
    let mut recorded = Recorded::default();
    let result = filter.filter(message, &META, cache, &mut out, &mut recorded);
    (result, out, recorded)
}

/// Filters `messages` in order with one warm cache, and each with a cold one; the answers agree.
fn assert_warm_equals_cold(messages: &[Vec<u8>]) -> usize {
    let filter = filter();
    let mut warm = WorkerCache::default();
    let mut cold = WorkerCache::default();
    let mut accepted = 0;
    for (index, message) in messages.iter().enumerate() {
        cold.key_orders = walk::KeyOrders::default();
        let expected = answer(&filter, message, &mut cold);
        let found = answer(&filter, message, &mut warm);
        assert_eq!(
            found,
            expected,
            "message {index}: {}",
            String::from_utf8_lossy(message)
        );
        accepted += usize::from(expected.0.is_ok());
    }
    accepted
}

/// A JSON value for the generator.
#[derive(Debug, Clone)]
enum Node {
    Text(&'static str),
    Number(i64),
    Flag(bool),
    Null,
    Object(Vec<(String, Node)>),
}

/// A small deterministic generator (xorshift), so one proptest seed gives one message sequence.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.roll(items.len())]
    }
}

const TEXTS: &[&str] = &[
    "preview",
    "u-1",
    "u-2",
    "DMS!1.2",
    "alice@firm.example",
    "10.1.2.3",
    "",
    "a\\nb",
    "caf\u{e9}",
    "4.3.1",
];

fn scalar(dice: &mut Dice) -> Node {
    match dice.roll(8) {
        0 => Node::Number(dice.roll(100_000) as i64),
        1 => Node::Flag(dice.roll(2) == 0),
        2 => Node::Null,
        _ => Node::Text(dice.pick(TEXTS)),
    }
}

fn object(dice: &mut Dice, keys: &[&str], nested: &[(&str, &[&str])]) -> Node {
    let mut entries: Vec<(String, Node)> = Vec::new();
    for key in keys {
        if dice.roll(5) != 0 {
            entries.push((key.to_string(), scalar(dice)));
        }
    }
    for (key, inner) in nested {
        if dice.roll(4) != 0 {
            entries.push((key.to_string(), object(dice, inner, &[])));
        }
    }
    for index in (1..entries.len()).rev() {
        entries.swap(index, dice.roll(index + 1));
    }
    Node::Object(entries)
}

fn base_message(dice: &mut Dice) -> Node {
    let properties = object(
        dice,
        &[
            "feature",
            "duration_ms",
            "document_id",
            "document_name",
            "success",
        ],
        &[],
    );
    let context = object(
        dice,
        &["locale", "timezone", "ip", "userAgent", "groupId"],
        &[
            ("app", &["name", "version", "build"]),
            ("device", &["id", "name"]),
            ("traits", &["email", "name"]),
        ],
    );
    let mut root = vec![
        (
            "type".to_owned(),
            Node::Text(dice.pick(&["track", "identify", "page"])),
        ),
        (
            "event".to_owned(),
            Node::Text(dice.pick(&["Document Opened", "App Launched"])),
        ),
        ("userId".to_owned(), Node::Text(dice.pick(&["u-1", "u-2"]))),
        ("anonymousId".to_owned(), Node::Text("a-1")),
        ("messageId".to_owned(), Node::Text("m-1")),
        (
            "timestamp".to_owned(),
            Node::Text("2026-11-01T08:58:38.751Z"),
        ),
        ("properties".to_owned(), properties),
        ("context".to_owned(), context),
        ("name".to_owned(), Node::Text("Document Viewer")),
    ];
    root.retain(|_| dice.roll(7) != 0);
    for index in (1..root.len()).rev() {
        root.swap(index, dice.roll(index + 1));
    }
    Node::Object(root)
}

/// One object of `node` (the root or one nested under it), chosen by the dice.
fn some_object<'n>(node: &'n mut Node, dice: &mut Dice) -> Option<&'n mut Vec<(String, Node)>> {
    let Node::Object(entries) = node else {
        return None;
    };
    let inner = entries
        .iter()
        .position(|(_, value)| matches!(value, Node::Object(_)));
    match inner {
        Some(at) if dice.roll(2) == 0 => some_object(&mut entries[at].1, dice),
        _ => Some(entries),
    }
}

/// The base shape, changed a little: keys swapped, duplicated (possibly spelled with an
/// escape), dropped, escaped, a value's type changed, or values redrawn.
fn variant(base: &Node, dice: &mut Dice) -> Node {
    let mut node = base.clone();
    for _ in 0..dice.roll(3) {
        let Some(entries) = some_object(&mut node, dice) else {
            continue;
        };
        if entries.is_empty() {
            continue;
        }
        let at = dice.roll(entries.len());
        match dice.roll(7) {
            0 if entries.len() > 1 => {
                let other = dice.roll(entries.len());
                entries.swap(at, other);
            }
            1 => {
                let copy = entries[at].clone();
                let to = at + 1 + dice.roll(entries.len() - at);
                entries.insert(to, copy);
            }
            2 => {
                let (key, value) = entries[at].clone();
                let escaped = escape_first(&key);
                entries.insert(at + 1 + dice.roll(entries.len() - at), (escaped, value));
            }
            3 => {
                entries.remove(at);
            }
            4 => entries[at].0 = escape_first(&entries[at].0),
            5 => entries[at].1 = scalar(dice),
            _ => entries.push((
                dice.pick(&["extra", "feature", "app", "ip"]).to_owned(),
                scalar(dice),
            )),
        }
    }
    node
}

/// `key` with its first character written as a `\u` escape (the same key to JSON).
fn escape_first(key: &str) -> String {
    match key.chars().next() {
        Some(first) if !key.starts_with('\\') => {
            format!("\\u{:04x}{}", u32::from(first), &key[first.len_utf8()..])
        }
        _ => key.to_owned(),
    }
}

fn write(node: &Node, spaced: bool, out: &mut String) {
    match node {
        Node::Text(text) => {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        Node::Number(number) => out.push_str(&number.to_string()),
        Node::Flag(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
        Node::Object(entries) => {
            out.push('{');
            for (index, (key, value)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push_str(if spaced { ", " } else { "," });
                }
                out.push('"');
                out.push_str(key);
                out.push_str(if spaced { "\" : " } else { "\":" });
                write(value, spaced, out);
            }
            out.push('}');
        }
    }
}

fn sequence(seed: u64) -> Vec<Vec<u8>> {
    let mut dice = Dice(seed | 1);
    let mut messages = Vec::new();
    for _ in 0..2 {
        let base = base_message(&mut dice);
        for _ in 0..6 {
            let node = if dice.roll(3) == 0 {
                base.clone()
            } else {
                variant(&base, &mut dice)
            };
            let mut text = String::new();
            write(&node, dice.roll(6) == 0, &mut text);
            let mut bytes = text.into_bytes();
            if dice.roll(10) == 0 {
                bytes.truncate(dice.roll(bytes.len()));
            }
            messages.push(bytes);
        }
    }
    messages
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random sequences of similar messages (reordered, duplicated and escaped keys, changed
    /// types, whitespace, cut short) get the same answers warm as cold.
    #[test]
    fn warm_key_orders_give_the_answers_of_a_cold_cache(seed in any::<u64>()) {
        assert_warm_equals_cold(&sequence(seed));
    }
}

#[test]
fn generated_sequences_are_mostly_accepted() {
    let accepted: usize = (1..40u64)
        .map(|seed| assert_warm_equals_cold(&sequence(seed * 7919)))
        .sum();
    assert!(
        accepted > 40 * 12 / 4,
        "only {accepted} accepted: the generator misses the point"
    );
}

#[test]
fn duplicates_at_predicted_positions_are_refused_when_warm() {
    let shape = br#"{"type":"track","event":"App Launched","userId":"u-1","messageId":"m-1","properties":{"feature":"a","success":true},"context":{"app":{"name":"x"},"ip":"1"}}"#;
    let refused: [&[u8]; 6] = [
        // An allowlisted key repeated right after its predicted position.
        br#"{"type":"track","event":"App Launched","userId":"u-1","userId":"u-2","messageId":"m-1"}"#,
        // The same, spelled with an escape.
        br#"{"type":"track","event":"App Launched","userId":"u-1","user\u0049d":"u-2","messageId":"m-1"}"#,
        // An envelope key repeated.
        br#"{"type":"track","type":"identify","event":"App Launched","userId":"u-1","messageId":"m-1"}"#,
        // Inside a predicted nested object, at the end and escaped.
        br#"{"type":"track","event":"App Launched","userId":"u-1","messageId":"m-1","properties":{"feature":"a","success":true,"feature":"b"}}"#,
        br#"{"type":"track","event":"App Launched","userId":"u-1","messageId":"m-1","context":{"app":{"name":"x"},"ip":"1","\u0069p":"2"}}"#,
        // A later key equal to a predicted one, in a different order.
        br#"{"event":"App Launched","type":"track","userId":"u-1","messageId":"m-1","event":"Document Opened"}"#,
    ];
    let mut messages = vec![shape.to_vec()];
    for message in refused {
        messages.push(message.to_vec());
        messages.push(shape.to_vec());
    }
    assert_warm_equals_cold(&messages);
    let filter = filter();
    let mut warm = WorkerCache::default();
    for message in refused {
        answer(&filter, shape, &mut warm)
            .0
            .expect("the shape is accepted");
        let (result, out, _) = answer(&filter, message, &mut warm);
        let rejection = result.expect_err("a duplicate key");
        assert_eq!(rejection.reason, RejectReason::DuplicateKey);
        assert!(out.is_empty());
    }
}

#[test]
fn key_orders_are_remembered_as_sent_and_per_filter() {
    let first = filter();
    let second = filter();
    let message = br#"{"type":"identify","userId":"u-1","messageId":"m-1","context":{"locale":"en","app":{"version":"1"}}}"#;
    let mut cache = WorkerCache::default();
    let (result, out, _) = answer(&first, message, &mut cache);
    result.expect("accepted");
    let nodes = first.children.node_count();
    let orders = cache.key_orders.for_filter(first.id, nodes);
    let root = &orders[first.policy.root() as usize];
    assert_eq!(root.keys(), ["type", "userId", "messageId", "context"]);
    let context = first
        .policy
        .child(first.policy.root(), "context")
        .expect("a context node");
    assert_eq!(orders[context as usize].keys(), ["locale", "app"]);
    // Another filter (the same tenant and key here) starts cold and gives the same bytes.
    let (result, other, _) = answer(&second, message, &mut cache);
    result.expect("accepted");
    assert_eq!(out, other);
    let (result, again, _) = answer(&first, message, &mut cache);
    result.expect("accepted");
    assert_eq!(out, again);
}
