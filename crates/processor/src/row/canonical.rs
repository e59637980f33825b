//! The gateway's canonical encoding of the contract read without a general JSON parser: compact
//! JSON, strings without escapes, integers. Anything else (whitespace, escapes, floats, unknown
//! or repeated keys, …) returns `None` and goes through serde ([`super::Wire`]), which reads every
//! valid encoding and says what is wrong with the rest. So this path accepts a strict subset of
//! what serde accepts, with the same result (checked by a property test in `tests.rs`).

use std::borrow::Cow;

use veil_sanitized::json_string::special_offset;
use veil_sanitized::{MessageKind, Tier};

use super::{Entries, Text, Value, Wire};

/// A position in the record's text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.text.as_bytes()[self.at..]
            .starts_with(word.as_bytes())
            .then(|| self.at += word.len())
    }

    /// A string without escapes or control characters (the input is valid UTF-8 and `"` is
    /// ASCII, so the slice is on character boundaries).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + special_offset(self.text.as_bytes().get(start..)?)?;
        if self.text.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        let text = self.text.get(start..end)?;
        self.at = end + 1;
        Some(text)
    }

    /// Which of the top-level keys `expected`, `expected + 1` and `expected + 2` (the gateway
    /// writes them in [`TOP_LEVEL_KEYS`] order; `event` and `name` are optional) starts at the
    /// cursor, consumed with its `:`; `None` leaves the cursor for the general path.
    #[inline]
    fn expected_key(&mut self, expected: usize) -> Option<u32> {
        let block: &[u8; 16] = self.text.as_bytes().get(self.at..)?.first_chunk()?;
        let block = u128::from_le_bytes(*block);
        (expected..TOP_LEVEL_PATTERNS.len().min(expected + 3)).find_map(|bit| {
            let (pattern, mask) = TOP_LEVEL_PATTERNS[bit];
            (block & mask == pattern).then(|| {
                // The name, its two quotes and the colon.
                self.at += TOP_LEVEL_KEYS[bit].len() + 3;
                bit as u32
            })
        })
    }

    /// A top-level key read in full, and its bit (`None` for a key the contract does not have).
    fn any_key(&mut self) -> Option<u32> {
        let key = self.string()?;
        self.eat(b':')?;
        let bit = TOP_LEVEL_KEYS.iter().position(|name| *name == key)?;
        u32::try_from(bit).ok()
    }

    /// An integer of at most 18 digits (always an `i64`, as serde reads it); `None` for
    /// fractions, exponents, `-0` and longer numbers.
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        let _ = self.eat(b'-');
        let digits = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let count = self.at - digits;
        let leading_zero = count > 1 && self.text.as_bytes()[digits] == b'0';
        // serde_json reads `-0` as the float -0.0, not as an integer.
        let negative_zero = digits > start && count == 1 && self.text.as_bytes()[digits] == b'0';
        if count == 0 || count > 18 || leading_zero || negative_zero {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.text[start..self.at].parse().ok()
    }

    /// A kept field's value.
    fn scalar(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|text| Value::Str(Cow::Borrowed(text))),
            b't' => self.literal("true").map(|()| Value::Bool(true)),
            b'f' => self.literal("false").map(|()| Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.integer().map(Value::Int),
            _ => None,
        }
    }

    /// `null` or a string.
    fn optional_string(&mut self) -> Option<Option<Text<'a>>> {
        if self.peek()? == b'n' {
            return self.literal("null").map(|()| None);
        }
        self.string().map(|text| Some(Text(Cow::Borrowed(text))))
    }

    /// An object's entries in order, each value read by `value`, into `entries` (empty; reused
    /// from an earlier row for its allocation).
    fn object<V>(
        &mut self,
        mut entries: Vec<(Cow<'a, str>, V)>,
        mut value: impl FnMut(&mut Self) -> Option<V>,
    ) -> Option<Entries<'a, V>> {
        debug_assert!(entries.is_empty());
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(Entries(entries));
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            entries.push((Cow::Borrowed(key), value(self)?));
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(Entries(entries));
            }
        }
    }
}

/// The contract's top-level keys in the gateway's order; a key's index is its bit in `parse`'s
/// `seen`.
const TOP_LEVEL_KEYS: [&str; 13] = [
    "schema",
    "tenant",
    "tier",
    "policy",
    "keyEpoch",
    "type",
    "messageId",
    "timestamp",
    "receivedAt",
    "event",
    "name",
    "fields",
    "pseudonyms",
];

/// A top-level key as it starts an entry (`"key":`), as 16 little-endian bytes and the mask of
/// its length (every key fits).
const fn key_pattern(key: &str) -> (u128, u128) {
    let name = key.as_bytes();
    assert!(name.len() + 3 < 16);
    let (mut pattern, mut mask, mut at) = (b'"' as u128, 0xff_u128, 0);
    while at < name.len() {
        pattern |= (name[at] as u128) << (8 * (at + 1));
        mask |= 0xff << (8 * (at + 1));
        at += 1;
    }
    let end = name.len() + 1;
    pattern |= ((b'"' as u128) << (8 * end)) | ((b':' as u128) << (8 * (end + 1)));
    mask |= 0xffff << (8 * end);
    (pattern, mask)
}

/// [`TOP_LEVEL_KEYS`] as `"key":` patterns, so the expected next key costs one 16-byte
/// comparison.
const TOP_LEVEL_PATTERNS: [(u128, u128); 13] = {
    let mut patterns = [(0, 0); 13];
    let mut at = 0;
    while at < 13 {
        patterns[at] = key_pattern(TOP_LEVEL_KEYS[at]);
        at += 1;
    }
    patterns
};

/// The message if it is in the canonical encoding, else `None` (read it with serde). Its
/// `fields` and `pseudonyms` are read into the given (empty) lists.
pub(super) fn parse<'a>(
    text: &'a str,
    field_list: Vec<(Cow<'a, str>, Value<'a>)>,
    pseudonym_list: Vec<(Cow<'a, str>, Text<'a>)>,
) -> Option<Wire<'a>> {
    let mut cursor = Cursor { text, at: 0 };
    let (mut schema, mut tenant, mut tier, mut policy, mut key_epoch) =
        (None, None, None, None, None);
    let (mut kind, mut message_id, mut timestamp, mut received_at) = (None, None, None, None);
    let (mut event, mut name) = (None, None);
    let (mut fields, mut pseudonyms) = (Entries::default(), Entries::default());
    let (mut field_list, mut pseudonym_list) = (Some(field_list), Some(pseudonym_list));
    let mut seen = 0_u16;
    cursor.eat(b'{')?;
    let mut expected = 0;
    loop {
        let bit = match cursor.expected_key(expected) {
            Some(bit) => bit,
            None => cursor.any_key()?,
        };
        expected = bit as usize + 1;
        // Each of the contract's top-level keys has one bit in `seen`; a key given twice is
        // left to serde (which names the duplicate).
        match bit {
            0 => schema = Some(u32::try_from(cursor.integer()?).ok()?),
            1 => tenant = Some(cursor.string()?),
            2 => tier = Some(cursor.string()?.parse::<Tier>().ok()?),
            3 => policy = Some(cursor.string()?),
            4 => key_epoch = Some(cursor.string()?),
            5 => kind = Some(MessageKind::from_wire(cursor.string()?)?),
            6 => message_id = Some(cursor.string()?),
            7 => timestamp = Some(cursor.string()?),
            8 => received_at = Some(cursor.string()?),
            9 => event = cursor.optional_string()?,
            10 => name = cursor.optional_string()?,
            11 => fields = cursor.object(field_list.take().unwrap_or_default(), Cursor::scalar)?,
            _ => {
                pseudonyms = cursor
                    .object(pseudonym_list.take().unwrap_or_default(), |cursor| {
                        Some(Text(Cow::Borrowed(cursor.string()?)))
                    })?;
            }
        }
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        if cursor.eat(b',').is_none() {
            break;
        }
    }
    cursor.eat(b'}')?;
    if cursor.at != text.len() {
        return None;
    }
    Some(Wire {
        schema: schema?,
        tenant: Cow::Borrowed(tenant?),
        tier: tier?,
        policy: Cow::Borrowed(policy?),
        key_epoch: Cow::Borrowed(key_epoch?),
        kind: kind?,
        message_id: Cow::Borrowed(message_id?),
        timestamp: Cow::Borrowed(timestamp?),
        received_at: Cow::Borrowed(received_at?),
        event,
        name,
        fields,
        pseudonyms,
    })
}

#[cfg(test)]
mod tests {
    use super::{Cursor, TOP_LEVEL_KEYS};

    #[test]
    fn each_expected_top_level_key_is_matched_by_its_pattern() {
        for (bit, key) in TOP_LEVEL_KEYS.iter().enumerate() {
            // A key at the cursor, followed by enough input for the 16-byte comparison.
            let text = format!("\"{key}\":\"a value long enough\"");
            let mut cursor = Cursor { text: &text, at: 0 };
            assert_eq!(cursor.expected_key(bit), Some(bit as u32), "{key}");
            assert_eq!(
                &text[cursor.at..cursor.at + 1],
                "\"",
                "{key}: after its colon"
            );
            // The same name without its colon is not a key.
            let bent = format!("\"{key}\" :\"a value long enough\"");
            let mut cursor = Cursor { text: &bent, at: 0 };
            assert_eq!(cursor.expected_key(bit), None, "{key}");
        }
    }
}
