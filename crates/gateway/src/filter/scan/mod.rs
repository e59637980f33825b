//! A strict JSON tokenizer over text already known to be UTF-8 (RFC 8259: no trailing commas,
//! no comments, no raw control characters in strings, no lone surrogates).
//!
//! It exists because the filter's single pass needs keys one at a time, values it can skip
//! cheaply, and strings borrowed from the input when they hold no escapes; serde's visitor
//! machinery cost more than the parsing itself. Errors carry a fixed description and a byte
//! offset, never input text.

use std::borrow::Cow;

use veil_sanitized::json_string::special_offset;

/// A syntax error: what was expected, and the byte offset where it was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) expected: &'static str,
    pub(crate) offset: usize,
}

pub(crate) type ScanResult<T> = Result<T, SyntaxError>;

/// The kinds of JSON value, by their first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Object,
    Array,
    String,
    Number,
    Literal,
}

/// A cursor over one JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            position: 0,
        }
    }

    fn error<T>(&self, expected: &'static str) -> ScanResult<T> {
        Err(SyntaxError {
            expected,
            offset: self.position,
        })
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(byte) = self.bytes.get(self.position) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.position += 1;
        }
    }

    /// The kind of the next value, after whitespace; does not consume it.
    #[inline]
    pub(crate) fn peek_value(&mut self) -> ScanResult<Start> {
        self.skip_whitespace();
        match self.bytes.get(self.position) {
            Some(b'{') => Ok(Start::Object),
            Some(b'[') => Ok(Start::Array),
            Some(b'"') => Ok(Start::String),
            Some(b'-' | b'0'..=b'9') => Ok(Start::Number),
            Some(b't' | b'f' | b'n') => Ok(Start::Literal),
            Some(_) => self.error("a value"),
            None => self.error("a value before the end"),
        }
    }

    /// Consumes the `{` or `[` that `peek_value` saw.
    #[inline]
    pub(crate) fn open(&mut self) {
        debug_assert!(matches!(self.bytes.get(self.position), Some(b'{' | b'[')));
        self.position += 1;
    }

    /// The next key of an object (after `{` for the first), or `None` at its `}`.
    #[inline(always)]
    pub(crate) fn next_key(&mut self, first: bool) -> ScanResult<Option<Cow<'a, str>>> {
        self.skip_whitespace();
        match self.bytes.get(self.position) {
            Some(b'}') => {
                self.position += 1;
                return Ok(None);
            }
            Some(b',') if !first => {
                self.position += 1;
                self.skip_whitespace();
            }
            Some(b'"') if first => {}
            _ => return self.error(if first { "a key or `}`" } else { "`,` or `}`" }),
        }
        if self.bytes.get(self.position) != Some(&b'"') {
            return self.error("a key");
        }
        let key = self.string()?;
        self.skip_whitespace();
        if self.bytes.get(self.position) != Some(&b':') {
            return self.error("`:`");
        }
        self.position += 1;
        Ok(Some(key))
    }

    /// Consumes the next `length` bytes if `matches` accepts them (a remembered `,"key":`),
    /// returning their text without the first `front` and last `back` bytes (the key).
    #[inline(always)]
    pub(crate) fn take_if(
        &mut self,
        length: usize,
        matches: impl FnOnce(&[u8]) -> bool,
        front: usize,
        back: usize,
    ) -> Option<&'a str> {
        let start = self.position;
        let end = start + length;
        if !matches(self.bytes.get(start..end)?) {
            return None;
        }
        let text = self.text.get(start + front..end - back)?;
        self.position = end;
        Some(text)
    }

    /// Whether an array has another element (after `[` for the first); consumes `,` or `]`.
    #[inline]
    pub(crate) fn next_element(&mut self, first: bool) -> ScanResult<bool> {
        self.skip_whitespace();
        match self.bytes.get(self.position) {
            Some(b']') => {
                self.position += 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.position += 1;
                Ok(true)
            }
            Some(_) if first => Ok(true),
            _ => self.error("`,` or `]`"),
        }
    }

    /// Offset of the next `"`, `\` or control character at or after `from` (the text's length
    /// if there is none).
    #[inline(always)]
    fn find_special(&self, from: usize) -> usize {
        let rest = self.bytes.get(from..).unwrap_or_default();
        from + special_offset(rest).unwrap_or(rest.len())
    }

    /// A string (the cursor is on its opening quote), borrowed when it has no escapes.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> ScanResult<Cow<'a, str>> {
        debug_assert_eq!(self.bytes.get(self.position), Some(&b'"'));
        let start = self.position + 1;
        let end = self.find_special(start);
        if self.bytes.get(end) == Some(&b'"') {
            // Both ends sit next to an ASCII quote, so both are character boundaries; splitting
            // (inlined) instead of indexing keeps the slice check out of a separate call.
            if let Some((text, _)) = self
                .text
                .split_at_checked(start)
                .and_then(|(_, rest)| rest.split_at_checked(end - start))
            {
                self.position = end + 1;
                return Ok(Cow::Borrowed(text));
            }
        }
        self.string_slow(start, end)
    }

    /// The rest of [`Scanner::string`] after an escape, a control character or the end.
    #[cold]
    #[inline(never)]
    fn string_slow(&mut self, start: usize, end: usize) -> ScanResult<Cow<'a, str>> {
        match self.bytes.get(end) {
            Some(b'\\') => {
                let mut owned = String::with_capacity(end - start + 16);
                owned.push_str(&self.text[start..end]);
                self.position = end;
                self.unescape_rest(&mut owned)?;
                Ok(Cow::Owned(owned))
            }
            Some(_) => {
                self.position = end;
                self.error("no control characters in strings")
            }
            None => {
                self.position = end;
                self.error("`\"` before the end")
            }
        }
    }

    /// Skips a string (the cursor is on its opening quote); returns whether it was non-empty.
    #[inline]
    pub(crate) fn skip_string(&mut self) -> ScanResult<bool> {
        let start = self.position + 1;
        let end = self.find_special(start);
        if self.bytes.get(end) == Some(&b'"') {
            self.position = end + 1;
            return Ok(end > start);
        }
        self.string().map(|text| !text.is_empty())
    }

    /// Passes over the next value if it is a string without escapes or control characters
    /// (returning whether it was non-empty); otherwise leaves the value for the full reader.
    #[inline(always)]
    pub(crate) fn skip_plain_string(&mut self) -> Option<bool> {
        self.skip_whitespace();
        if self.bytes.get(self.position) != Some(&b'"') {
            return None;
        }
        let start = self.position + 1;
        let end = self.find_special(start);
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.position = end + 1;
        Some(end > start)
    }

    fn hex4(&mut self) -> ScanResult<u32> {
        let digits = self.bytes.get(self.position..self.position + 4);
        let value = digits
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .filter(|digits| digits.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .and_then(|digits| u32::from_str_radix(digits, 16).ok());
        match value {
            Some(value) => {
                self.position += 4;
                Ok(value)
            }
            None => self.error("four hex digits after `\\u`"),
        }
    }

    /// Decodes from a backslash to the closing quote.
    fn unescape_rest(&mut self, owned: &mut String) -> ScanResult<()> {
        loop {
            match self.bytes.get(self.position) {
                Some(b'"') => {
                    self.position += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.position += 1;
                    let escaped = self.bytes.get(self.position).copied();
                    self.position += 1;
                    let character = match escaped {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => {
                            self.position -= 1;
                            return self.error("a valid escape");
                        }
                    };
                    owned.push(character);
                }
                Some(_) => {
                    let end = self.find_special(self.position);
                    if end == self.position || end >= self.bytes.len() {
                        return self.error(if end >= self.bytes.len() {
                            "`\"` before the end"
                        } else {
                            "no control characters in strings"
                        });
                    }
                    owned.push_str(&self.text[self.position..end]);
                    self.position = end;
                }
                None => return self.error("`\"` before the end"),
            }
        }
    }

    fn unicode_escape(&mut self) -> ScanResult<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.position..self.position + 2) != Some(b"\\u") {
                    return self.error("a low surrogate after a high surrogate");
                }
                self.position += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return self.error("a low surrogate after a high surrogate");
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.error("no lone low surrogate"),
            other => other,
        };
        match char::from_u32(code) {
            Some(character) => Ok(character),
            None => self.error("a valid unicode escape"),
        }
    }

    /// A number's text, validated against the JSON grammar; infinite magnitudes are refused.
    pub(crate) fn number(&mut self) -> ScanResult<&'a str> {
        let start = self.position;
        let bytes = self.bytes;
        let digits = |mut at: usize| {
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            at
        };
        let mut at = start;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at = digits(at),
            _ => {
                self.position = at;
                return self.error("a digit");
            }
        }
        let mut is_integer = true;
        if bytes.get(at) == Some(&b'.') {
            is_integer = false;
            let after = digits(at + 1);
            if after == at + 1 {
                self.position = after;
                return self.error("a digit after `.`");
            }
            at = after;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            is_integer = false;
            at += 1;
            if matches!(bytes.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            let after = digits(at);
            if after == at {
                self.position = after;
                return self.error("a digit in the exponent");
            }
            at = after;
        }
        self.position = at;
        let text = &self.text[start..at];
        if (!is_integer || text.len() > 18) && text.parse::<f64>().is_ok_and(f64::is_infinite) {
            self.position = start;
            return self.error("a number within range");
        }
        Ok(text)
    }

    /// `true`, `false` or `null`.
    pub(crate) fn literal(&mut self) -> ScanResult<Option<bool>> {
        let rest = &self.bytes[self.position..];
        let (value, length) = if rest.starts_with(b"true") {
            (Some(true), 4)
        } else if rest.starts_with(b"false") {
            (Some(false), 5)
        } else if rest.starts_with(b"null") {
            (None, 4)
        } else {
            return self.error("`true`, `false` or `null`");
        };
        self.position += length;
        Ok(value)
    }

    /// The whole text being scanned.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// Only whitespace may follow the document.
    /// The byte offset of the cursor.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// Validates and passes over one value of any kind, nested at most `max_depth` deep,
    /// without recursion (so hostile nesting cannot exhaust the stack).
    pub(crate) fn skip_value(&mut self, max_depth: usize) -> ScanResult<()> {
        // One entry per open container: `true` for an object, `false` for an array.
        let mut open_containers: Vec<bool> = Vec::new();
        'value: loop {
            let mut first = false;
            match self.peek_value()? {
                start @ (Start::Object | Start::Array) => {
                    if open_containers.len() >= max_depth {
                        return self.error("nesting within the depth limit");
                    }
                    self.open();
                    open_containers.push(start == Start::Object);
                    first = true;
                }
                Start::String => {
                    self.skip_string()?;
                }
                Start::Number => {
                    self.number()?;
                }
                Start::Literal => {
                    self.literal()?;
                }
            }
            // Find the next value inside the innermost open container, closing finished ones.
            while let Some(&is_object) = open_containers.last() {
                let another = if is_object {
                    self.next_key(first)?.is_some()
                } else {
                    self.next_element(first)?
                };
                if another {
                    continue 'value;
                }
                open_containers.pop();
                first = false;
            }
            return Ok(());
        }
    }

    pub(crate) fn finish(&mut self) -> ScanResult<()> {
        self.skip_whitespace();
        if self.position == self.bytes.len() {
            Ok(())
        } else {
            self.error("the end after the value")
        }
    }
}

#[cfg(test)]
mod tests;
