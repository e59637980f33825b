//! Value checks on every kept string, whatever its key says, and the JSON writing helpers.

use std::net::{IpAddr, Ipv6Addr};

use super::reject::DropReason;

/// Why a kept string must not leave, if it must not.
#[inline]
pub fn forbidden_value(text: &str) -> Option<DropReason> {
    // One pass over the (usually short) value decides whether the precise checks are needed.
    let markers = count_markers(text.as_bytes());
    if markers.unusual
        && let Some(reason) = forbidden_beyond_ascii(text)
    {
        return Some(reason);
    }
    if markers.at_signs > 0 && contains_email(text.as_bytes()) {
        return Some(DropReason::EmailValue);
    }
    if (markers.colons >= 2 || markers.dots >= 3) && contains_ip_address(text) {
        return Some(DropReason::IpValue);
    }
    if (markers.spelled || markers.percent) && email_spelled_out(text) {
        return Some(DropReason::EmailValue);
    }
    // Defanged dots need a bracket (flagged above); host names a `-` and digits.
    if (markers.spelled || memchr::memchr(b'-', text.as_bytes()).is_some()) && ip_spelled_out(text)
    {
        return Some(DropReason::IpValue);
    }
    if markers.percent {
        return forbidden_when_percent_decoded(text);
    }
    None
}

/// The checks a value with a control or non-ASCII character needs: hidden characters, then the
/// e-mail and IP checks on its [`folded`] form (`kofi＠firm.example`, `198.51.100。7`).
#[cold]
fn forbidden_beyond_ascii(text: &str) -> Option<DropReason> {
    if contains_hidden_character(text) {
        return Some(DropReason::ControlCharacter);
    }
    address_in(&folded(text))
}

/// The e-mail or IP address check that `text` fails, if any, also with `@` spelled out and
/// addresses written as host names or "defanged" (`ip-10-0-0-1`, `198[.]51[.]100[.]7`).
fn address_in(text: &str) -> Option<DropReason> {
    if contains_email(text.as_bytes()) || email_spelled_out(text) {
        return Some(DropReason::EmailValue);
    }
    if contains_ip_address(text) || ip_spelled_out(text) {
        return Some(DropReason::IpValue);
    }
    None
}

/// `text` as the value checks read it: NFKC-normalized (fullwidth and small forms, circled and
/// mathematical digits become ASCII: `＠` and `﹫` are `@`), ideographic full stops read as `.`
/// (IDNA treats them as dots), and hidden characters removed (a zero-width space inside an
/// address does not hide it).
fn folded(text: &str) -> String {
    let normalized = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(text);
    let mut folded = String::with_capacity(normalized.len());
    for character in normalized.chars() {
        if is_hidden_character(character) {
            continue;
        }
        folded.push(match character {
            // Full stops and the dots a writer may put between numbers.
            '\u{3002}' | '\u{ff61}' | '\u{fe12}' | '\u{2024}' | '\u{b7}' | '\u{30fb}'
            | '\u{ff65}' | '\u{2e33}' | '\u{66b}' | '\u{2219}' | '\u{22c5}' => '.',
            other => decimal_digit(other).unwrap_or(other),
        });
    }
    folded
}

/// The ASCII digit a decimal digit of another script stands for (`١` and `१` are `1`), which
/// NFKC leaves as it is. Unicode puts every script's digits 0 to 9 in a run of ten code points,
/// so a digit's value is its distance from the start of its run of numeric characters.
fn decimal_digit(character: char) -> Option<char> {
    if character.is_ascii() || !character.is_numeric() {
        return None;
    }
    let code = u32::from(character);
    let mut start = code;
    // Runs of digits sit next to each other in a few blocks: the distance modulo ten still holds.
    while start > 0 && code - start < 100 && char::from_u32(start - 1).is_some_and(char::is_numeric)
    {
        start -= 1;
    }
    char::from_digit((code - start) % 10, 10)
}

/// The e-mail and IP checks on `text` percent-decoded as a URL would be (`kofi%40firm.example`),
/// as many rounds as it takes (each round shortens the text, so this ends): values copied out of
/// URLs and query strings carry addresses that way, sometimes encoded more than once.
#[cold]
fn forbidden_when_percent_decoded(text: &str) -> Option<DropReason> {
    let mut decoded = text.as_bytes().to_vec();
    while percent_decode_in_place(&mut decoded) {
        let readable = String::from_utf8_lossy(&decoded);
        let reason = if readable.is_ascii() {
            address_in(&readable)
        } else {
            address_in(&folded(&readable))
        };
        if reason.is_some() {
            return reason;
        }
    }
    None
}

/// Replaces each `%XX` (two hex digits) with its byte; false if there was none.
fn percent_decode_in_place(bytes: &mut Vec<u8>) -> bool {
    let hex = |byte: u8| {
        char::from(byte)
            .to_digit(16)
            .and_then(|digit| u8::try_from(digit).ok())
    };
    let (mut read, mut write, mut changed) = (0, 0, false);
    while read < bytes.len() {
        let escaped = match (bytes[read], bytes.get(read + 1), bytes.get(read + 2)) {
            (b'%', Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        if let Some((high, low)) = escaped {
            bytes[write] = high << 4 | low;
            read += 3;
            changed = true;
        } else {
            bytes[write] = bytes[read];
            read += 1;
        }
        write += 1;
    }
    bytes.truncate(write);
    changed
}

/// True if `text` holds a character no allowlisted text needs and that hides what a report, a
/// CSV export or a log shows: see [`is_hidden_character`].
fn contains_hidden_character(text: &str) -> bool {
    text.chars().any(is_hidden_character)
}

/// A control character (C0, DEL, C1: JSON carries C0 only as escapes), a format character
/// (Unicode category Cf: zero-width spaces and joiners, text-direction controls as in "Trojan
/// Source", the byte-order mark, tags, invisible operators), a line or paragraph separator
/// (which break lines as a newline does), an invisible filler, or a noncharacter.
fn is_hidden_character(character: char) -> bool {
    let code = u32::from(character);
    character.is_control()
        || matches!(
            character,
            // Category Cf (Unicode 16).
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
                // Line and paragraph separators (Zl, Zp).
                | '\u{2028}'
                | '\u{2029}'
                // Fillers that render as nothing.
                | '\u{115f}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{ffa0}'
                | '\u{2800}'
        )
        // Noncharacters.
        || (0xfdd0..=0xfdef).contains(&code)
        || code & 0xfffe == 0xfffe
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGHS: u64 = !LOWS;

/// The high bit of each byte of `word` that equals `byte`, and no other bit (no false positives,
/// unlike the cheaper borrow-based test, so the flags can be counted).
#[inline(always)]
fn exact_flags(word: u64, byte: u8) -> u64 {
    let probe = word ^ (ONES * u64::from(byte));
    !(((probe & LOWS).wrapping_add(LOWS)) | probe | LOWS)
}

/// What one pass over a kept string finds.
struct Markers {
    at_signs: u32,
    colons: u32,
    dots: u32,
    /// Some byte is `%`: the value may hide an address in URL encoding.
    percent: bool,
    /// Some byte is `&`, `\\`, `=`, `(`, `[`, `{` or `<`: the value may spell `@` out (`&#64;`, `[at]`).
    spelled: bool,
    /// Some byte is below 0x20, DEL or not ASCII: a hidden character is possible.
    unusual: bool,
}

/// Counts of `@`, `:` and `.` in `bytes`, whether any byte is `%`, and whether any is unusual, eight bytes at a time.
#[inline]
fn count_markers(bytes: &[u8]) -> Markers {
    let mut markers = Markers {
        at_signs: 0,
        colons: 0,
        dots: 0,
        percent: false,
        spelled: false,
        unusual: false,
    };
    // `valid` has the high bit of each byte of `word` that belongs to `bytes`.
    let mut count_word = |word: u64, valid: u64| {
        let (at, colon, dot) = (
            exact_flags(word, b'@'),
            exact_flags(word, b':'),
            exact_flags(word, b'.'),
        );
        if at | colon | dot != 0 {
            markers.at_signs += at.count_ones();
            markers.colons += colon.count_ones();
            markers.dots += dot.count_ones();
        }
        // Bytes past the end are zero, never `%`.
        markers.percent |= exact_flags(word, b'%') != 0;
        markers.spelled |= (exact_flags(word, b'&')
            | exact_flags(word, b'\\')
            | exact_flags(word, b'=')
            | exact_flags(word, b'(')
            | exact_flags(word, b'[')
            | exact_flags(word, b'{')
            | exact_flags(word, b'<'))
            != 0;
        // Per byte, without carries between bytes (each low part is at most 0x7f): the high
        // bit is set in `low + 1` for DEL only, and clear in `low + 0x60` for controls only.
        let low = word & LOWS;
        let del = low + ONES;
        let not_control = low + ONES * 0x60;
        markers.unusual |= (word | del | !not_control) & valid != 0;
    };
    let word_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    // The high bits of the lowest `count` bytes (`count` ≤ 8).
    let low_bytes = |count: usize| HIGHS.checked_shr(8 * (8 - count) as u32).unwrap_or(0);
    let length = bytes.len();
    if length < 8 {
        let mut word = 0u64;
        for (index, byte) in bytes.iter().enumerate() {
            word |= u64::from(*byte) << (8 * index);
        }
        // Zero bytes past the end match none of the markers, and `valid` leaves them out.
        count_word(word, low_bytes(length));
        return markers;
    }
    let mut at = 0;
    while at + 8 <= length {
        count_word(word_at(at), HIGHS);
        at += 8;
    }
    let rest = length - at;
    if rest > 0 {
        // The last eight bytes, with the ones already counted shifted out.
        count_word(word_at(length - 8) >> (8 * (8 - rest)), low_bytes(rest));
    }
    markers
}

/// True if some `local@domain` appears in `bytes`: a local-part character right before an `@`
/// and a letter or digit right after it. A dotless domain counts too (`kofi@firm`,
/// `ops@localhost` reach a mailbox on an intranet); `@home`, `user@` and `50% @ 3pm` do not.
fn contains_email(bytes: &[u8]) -> bool {
    // An `@` with a letter or digit anywhere before it and anywhere after it: addresses come with
    // comments (`kofi(work)@firm.example`), spaces and display names, and a kept value has no
    // business holding an `@` between words anyway.
    let word = |byte: &u8| byte.is_ascii_alphanumeric() || *byte >= 0x80;
    memchr::memchr_iter(b'@', bytes)
        .any(|at| bytes[..at].iter().any(word) && bytes[at + 1..].iter().any(word))
}

/// Spellings of `@` in escapes and prose (numeric character references are decoded apart).
const AT_SPELLINGS: [&str; 11] = [
    "&commat;", "\\x40", "\\u0040", "\\u{40}", "%u0040", "=40", "(at)", "[at]", "{at}", "<at>",
    "%uff20",
];

/// `text` lowercased with every spelling of `@` (and numeric character references to `@`,
/// `＠` or `﹫`, such as `&#64;`, `&#x0040;`, `&#65312;`) read as `@`; `None` if it has none.
fn at_spelled_out(text: &str) -> Option<String> {
    let mut lowered = text.to_ascii_lowercase();
    let mut found = false;
    for spelling in AT_SPELLINGS {
        if lowered.contains(spelling) {
            lowered = lowered.replace(spelling, "@");
            found = true;
        }
    }
    while let Some(start) = lowered.find("&#") {
        let rest = &lowered[start + 2..];
        let (radix, digits_start) = if rest.starts_with('x') {
            (16, 1)
        } else {
            (10, 0)
        };
        let digits_end = rest[digits_start..]
            .find(|c: char| !c.is_digit(radix))
            .map_or(rest.len(), |end| end + digits_start);
        let value = u32::from_str_radix(&rest[digits_start..digits_end], radix).ok();
        let end = start + 2 + digits_end + usize::from(rest[digits_end..].starts_with(';'));
        let replacement = match value {
            Some(0x40 | 0xff20 | 0xfe6b) => "@",
            // Not an `@`: keep the text but step past the `&#`.
            _ => "&_",
        };
        found |= replacement == "@";
        lowered.replace_range(start..end.max(start + 2), replacement);
    }
    found.then_some(lowered)
}

/// The e-mail check on `text` with each spelling of `@` read as one.
#[cold]
fn email_spelled_out(text: &str) -> bool {
    at_spelled_out(text).is_some_and(|spelled| contains_email(spelled.as_bytes()))
}

/// The IP check on `text` with defanged dots (`[.]`, `(.)`, `[dot]`) read as dots and
/// `ip-198-51-100-7` host names (as clouds name hosts) read as dotted quads.
fn ip_spelled_out(text: &str) -> bool {
    let bytes = text.as_bytes();
    let hostname = memchr::memchr(b'-', bytes).is_some()
        && bytes
            .windows(3)
            .any(|window| window.eq_ignore_ascii_case(b"ip-"));
    let defanged = memchr::memchr3(b'[', b'(', b'{', bytes).is_some();
    if !hostname && !defanged {
        return false;
    }
    let mut spelled = text.to_ascii_lowercase();
    for defanged_dot in ["[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}"] {
        spelled = spelled.replace(defanged_dot, ".");
    }
    if hostname {
        // The four numbers after `ip-`, dash-separated, become a dotted quad.
        let mut rebuilt = String::with_capacity(spelled.len());
        let mut rest = spelled.as_str();
        while let Some(at) = rest.find("ip-") {
            rebuilt.push_str(&rest[..at + 3]);
            let tail = &rest[at + 3..];
            let run = tail
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(tail.len());
            rebuilt.push_str(&tail[..run].replace('-', "."));
            rest = &tail[run..];
        }
        rebuilt.push_str(rest);
        spelled = rebuilt;
    }
    spelled != text && contains_ip_address(&spelled)
}

/// Whether `text` (a version: digits, letters and `.-+:`) can spell an IPv4 address: four
/// numbers of at most 255 in a row, whatever stands between them (`203.0.113.77`, but also
/// `203.0.113+77`, `203.0.113-rc.77`, `203.0.113b77`), or an address in its other forms. The
/// cost: a pre-release of four small numbers (`1.2.3-rc.4`) is dropped too.
#[inline]
pub(crate) fn holds_dotted_quad(text: &str) -> bool {
    if holds_four_small_numbers(text) {
        return true;
    }
    text.bytes().filter(|byte| *byte == b'.').count() >= 3 && contains_ip_address(text)
}

/// Four runs of digits in a row, each a number of at most 255 (leading zeros aside), with any
/// other characters between them.
fn holds_four_small_numbers(text: &str) -> bool {
    // Four numbers need four digits and three characters between them: `1.2.3.4` is the
    // shortest, so the usual `4.3.1` or `14.6` costs one comparison.
    if text.len() < 7 {
        return false;
    }
    // The current run's value (capped above 255: only small or not matters), whether a run is
    // open, and how many small numbers stood in a row before it.
    let (mut value, mut in_run, mut in_a_row) = (0u32, false, 0u8);
    for byte in text.bytes() {
        if byte.is_ascii_digit() {
            value = (value * 10 + u32::from(byte - b'0')).min(256);
            in_run = true;
            continue;
        }
        if in_run {
            in_a_row = if value <= 255 { in_a_row + 1 } else { 0 };
            if in_a_row == 4 {
                return true;
            }
            (value, in_run) = (0, false);
        }
    }
    in_run && value <= 255 && in_a_row == 3
}

/// True if `text` is an IP address (v4 or v6, with optional brackets, port or zone) or
/// contains a dotted-quad IPv4 address (four numbers of at most 255 in a row, also within a
/// longer dotted run).
fn contains_ip_address(text: &str) -> bool {
    let bytes = text.as_bytes();
    if memchr::memchr(b':', bytes).is_some() && is_ipv6_like(text) {
        return true;
    }

    // Dotted quads anywhere: runs of digits and dots, then four octets in a row within each.
    let mut index = 0;
    while index < bytes.len() {
        if !bytes[index].is_ascii_digit() {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && (bytes[index].is_ascii_digit() || bytes[index] == b'.') {
            index += 1;
        }
        let run = text[start..index].trim_end_matches('.');
        let parts: Vec<&str> = run.split('.').collect();
        // Leading zeros do not hide an octet: `0203.0.113.0077` is 203.0.113.77 to a reader
        // (and to parsers that take them as decimal).
        let octet = |part: &&str| {
            let digits = part.trim_start_matches('0');
            !part.is_empty()
                && digits.len() <= 3
                && (digits.is_empty() || digits.parse::<u16>().is_ok_and(|number| number <= 255))
        };
        // Four octets in a row, also inside a longer run: `198.51.100.42.443` is how netstat
        // and tcpdump print an address with its port.
        if parts.windows(4).any(|quad| quad.iter().all(octet)) {
            return true;
        }
    }
    false
}

fn is_ipv6_like(text: &str) -> bool {
    let trimmed = text.trim();
    let unbracketed = match trimmed.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => trimmed,
    };
    let without_zone = unbracketed.split('%').next().unwrap_or(unbracketed);
    if without_zone.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    // `1.2.3.4:80` is caught by the dotted-quad scan; v6 tokens inside longer text:
    trimmed
        .split(|character: char| {
            !(character.is_ascii_hexdigit() || character == ':' || character == '.')
        })
        .filter(|token| token.matches(':').count() >= 2)
        .any(|token| token.parse::<IpAddr>().is_ok())
}

/// Whether `bytes` holds a `"`, a `\\` or a control character, eight bytes at a time.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    // The borrow-based byte test can flag bytes above a true match, never a word without one,
    // which is all an "any" question needs.
    let special = |word: u64| {
        let has = |byte: u8| {
            let probe = word ^ (ONES * u64::from(byte));
            probe.wrapping_sub(ONES) & !probe
        };
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        (has(b'"') | has(b'\\') | control) & !LOWS != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if special(u64::from_le_bytes(word)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// Appends `text` as a JSON string.
#[inline]
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if !needs_escape(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_found_alone_and_embedded() {
        for text in [
            "alice@firm.example",
            "by Alice.Okafor@hartwell.example today",
            "a@b.co",
            "\"x y\"@ex.org",
            // URL-encoded, as values copied from links and query strings carry them.
            "kofi%40firm.example",
            "?by=tomoko.patel%40kessler.example&x=1",
            "kofi%2540firm.example",
            "kofi%40firm%2Eexample",
            // Encoded four times over.
            "kofi%25252540firm.example",
            // Dotless domains reach intranet mailboxes.
            "support@localhost",
            "kofi@firm",
            "a@b",
            // Lookalikes that NFKC folds: fullwidth and small commercial at, fullwidth and
            // ideographic full stops, and the same percent-encoded.
            "kofi\u{ff20}firm.example",
            "kofi\u{fe6b}firm.example",
            "kofi\u{ff20}firm\u{ff0e}example",
            "kofi@firm\u{3002}example",
            "kofi%EF%BC%A0firm.example",
            // Comments, spaces and display names around the `@`, and `@` spelled out.
            "kofi.mensah(work)@acme-law.example",
            "kofi.mensah @acme-law.example",
            "kofi.mensah@ acme-law.example",
            "kofi.mensah@(comment)acme-law.example",
            "kofi.mensah@-acme-law.example",
            "kofi.mensah@@acme-law.example",
            "Kofi Mensah <kofi.mensah@acme-law.example>",
            "kofi&#64;acme-law.example",
            "kofi&#x40;acme-law.example",
            "kofi&commat;acme-law.example",
            "kofi%u0040acme-law.example",
            "kofi=40acme-law.example",
            "kofi\\x40acme-law.example",
            "kofi\\u0040acme-law.example",
            "kofi (at) acme-law.example",
            "KOFI&#X40;ACME-LAW.EXAMPLE",
            // Spelled out inside percent-encoding and lookalikes, and other references to `@`.
            "kofi%26%2364%3Bfirm.example",
            "kofi%28at%29firm.example",
            "kofi\u{ff08}at\u{ff09}firm.example",
            "kofi&#0064;firm.example",
            "kofi&#x00040;firm.example",
            "kofi&#64firm.example",
            "kofi&#65312;firm.example",
            "kofi&#xfe6b;firm.example",
            "kofi[at]firm.example",
            "kofi{at}firm.example",
            "kofi<at>firm.example",
            "50% @ 3pm",
        ] {
            assert_eq!(
                forbidden_value(text),
                Some(DropReason::EmailValue),
                "{text}"
            );
        }
        for text in [
            "@home",
            "user@",
            "search",
            "100%",
            "50%25 done",
            "%40home",
            "user%40",
            "@segment/analytics-node",
            "size=40",
            "&#64;",
            "&#65;b&#66;",
            "tip-1-2",
            "\u{ff20}home",
        ] {
            assert_ne!(
                forbidden_value(text),
                Some(DropReason::EmailValue),
                "{text}"
            );
        }
    }

    #[test]
    fn ip_addresses_are_found_in_their_forms() {
        for text in [
            "10.1.2.3",
            "192.168.0.1:8080",
            "client 203.0.113.9 connected",
            "::1",
            "2001:db8::1",
            "[2001:db8::1]:443",
            "fe80::1%eth0",
            "::ffff:10.0.0.1",
            "10%2E1%2E2%2E3",
            "host=%5B2001%3Adb8%3A%3A1%5D",
            // Inside longer dotted runs: an address and its port as netstat prints them.
            "198.51.100.42.443",
            "0.198.51.100.41",
            "1.2.3.4.5",
            // Leading zeros, as many as a version's parts may hold.
            "0203.0.113.77",
            "203.0.0113.77",
            "203.0.113.0077",
            "203.00000.113.77",
            "0203.0000.0113.0077",
            // Lookalike digits and dots, and zero-width characters inside, fold away.
            "\u{ff11}\u{ff19}\u{ff18}.51.100.7",
            "198\u{ff0e}51\u{ff0e}100\u{ff0e}7",
            "198.51.100\u{3002}7",
            "198\u{2024}51\u{2024}100\u{2024}7",
            "198.51.100%E2%80%8B.11",
            // Digits of other scripts (NFKC keeps them) and the dots written between numbers.
            "\u{661}\u{669}\u{668}.\u{665}\u{661}.\u{661}\u{660}\u{660}.\u{667}\u{667}",
            "\u{6f1}\u{6f9}\u{6f8}.\u{6f5}\u{6f1}.\u{6f1}\u{6f0}\u{6f0}.\u{6f7}\u{6f7}",
            "\u{967}\u{96f}\u{96e}.\u{96b}\u{967}.\u{967}\u{966}\u{966}.\u{96d}\u{96d}",
            "198\u{b7}51\u{b7}100\u{b7}77",
            "198\u{30fb}51\u{30fb}100\u{30fb}77",
            "198\u{2e33}51\u{2e33}100\u{2e33}77",
            // Host names that embed the address, and defanged dots.
            "ip-198-51-100-42.ec2.internal",
            "198[.]51[.]100[.]42",
            "198(.)51(.)100(.)42",
            "198[dot]51[dot]100[dot]42",
        ] {
            assert_eq!(forbidden_value(text), Some(DropReason::IpValue), "{text}");
        }
        // The one check a version (`format: version`) gets sees zero-padded addresses and four
        // small numbers with any separators a version allows.
        for version in [
            "0203.0.113.77",
            "203.0.113.0077+build",
            "10.0203.0.113.77",
            "203.0.113+77",
            "203.0.113+0077",
            "npm:203.0.113+77",
            "203.0.113-rc.77",
            "203.0.113-beta77",
            "203.0.113rc77",
            "203.0.113.b77",
            "v203.0.113-b77",
            "192.168.1-rc.1",
            "1.2.3-rc.4",
        ] {
            assert!(holds_dotted_quad(version), "{version}");
        }
        for version in [
            "10.0.19045.1234",
            "131.0.6778.86",
            "4.3.1",
            "14.6",
            "2.3.0-beta",
            "16.0.17928.20114",
            "1.0+cb00714d",
        ] {
            assert!(!holds_dotted_quad(version), "{version}");
        }
        for text in [
            "10.9.1",
            "2026.11",
            "10.0.19045.1234",
            "16.0.17928.20114",
            "12:30",
            "Europe/London",
            "en-US",
            "300.1.1.1",
            "0300.1.1.1",
            "1.2.0256.3",
            "10%25 of 1.2.3",
            "fe80%zz",
        ] {
            assert_eq!(forbidden_value(text), None, "{text}");
        }
    }

    proptest::proptest! {
        /// The one-pass count agrees with the definition: split into digit runs, four runs in
        /// a row whose numbers (leading zeros aside) are at most 255.
        #[test]
        fn four_small_numbers_follow_their_definition(text in "[0-9.+a-z-]{0,24}") {
            let runs: Vec<&str> = text
                .split(|character: char| !character.is_ascii_digit())
                .filter(|run| !run.is_empty())
                .collect();
            let small = |run: &&str| {
                let digits = run.trim_start_matches('0');
                digits.len() <= 3 && digits.parse::<u16>().map_or(true, |number| number <= 255)
            };
            let expected = runs.windows(4).any(|four| four.iter().all(small));
            proptest::prop_assert_eq!(holds_four_small_numbers(&text), expected);
        }
    }

    #[test]
    fn markers_are_counted_exactly_at_every_length_and_position() {
        for length in 0..40usize {
            for at in 0..length {
                for marker in [b'@', b':', b'.', b'%'] {
                    // Neighbours one bit away from the marker catch a sloppy byte test.
                    let mut bytes: Vec<u8> = (0..length)
                        .map(|index| [b'A', marker ^ 1, marker ^ 0x80, marker + 1][index % 4])
                        .collect();
                    bytes[at] = marker;
                    if at + 2 < length {
                        bytes[at + 2] = marker;
                    }
                    let expected =
                        |wanted: u8| bytes.iter().filter(|byte| **byte == wanted).count() as u32;
                    let counted = count_markers(&bytes);
                    assert_eq!(
                        (
                            counted.at_signs,
                            counted.colons,
                            counted.dots,
                            counted.percent
                        ),
                        (
                            expected(b'@'),
                            expected(b':'),
                            expected(b'.'),
                            expected(b'%') > 0
                        ),
                        "length {length}, at {at}, marker {marker}"
                    );
                }
            }
        }
    }

    #[test]
    fn unusual_bytes_are_flagged_at_every_length_and_position_and_only_there() {
        for length in 0..40usize {
            // Printable ASCII next to the unusual ranges' edges.
            let clean: Vec<u8> = (0..length)
                .map(|index| [b'a', 0x20, 0x21, 0x7e, b'@', b'.'][index % 6])
                .collect();
            assert!(!count_markers(&clean).unusual, "length {length}");
            for at in 0..length {
                for unusual in [0x00, 0x1f, b'\n', 0x7f, 0x80, 0xc2, 0xe2, 0xff] {
                    let mut bytes = clean.clone();
                    bytes[at] = unusual;
                    assert!(
                        count_markers(&bytes).unusual,
                        "length {length}, at {at}, byte {unusual:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn control_and_direction_characters_are_hidden_characters_and_text_is_not() {
        for hidden in [
            "a\u{0}b",
            "line\nbreak",
            "tab\t",
            "del\u{7f}",
            "c1\u{85}",
            "\u{202e}fdp.exe",
            "x\u{2066}y",
            "\u{200f}",
            // Format characters, separators, fillers and noncharacters.
            "zero\u{200b}width",
            "join\u{200d}er",
            "\u{feff}bom",
            "invisible\u{2061}times",
            "anchor\u{fff9}",
            "tag\u{e0041}",
            "soft\u{ad}hyphen",
            "line\u{2028}separator",
            "para\u{2029}graph",
            "filler\u{3164}",
            "non\u{ffff}char",
            "non\u{fdd0}char",
        ] {
            assert_eq!(
                forbidden_value(hidden),
                Some(DropReason::ControlCharacter),
                "{hidden:?}"
            );
        }
        for text in [
            "Zürich",
            "日本語",
            "emoji 📄",
            "en-US",
            "a\u{a0}b",
            "\u{2013} dash",
            "Gr\u{fc}\u{df}e",
            "\u{ff21}\u{ff22}\u{ff23} fullwidth",
            "\u{2460} circled",
        ] {
            assert_eq!(forbidden_value(text), None, "{text:?}");
        }
    }

    #[test]
    fn escapes_are_detected_at_every_length_and_position() {
        for length in 0..40usize {
            let clean: Vec<u8> = (0..length)
                .map(|index| [b'a', 0x21, 0x7f, 0x80, 0xff, b'#', b']'][index % 7])
                .collect();
            assert!(!needs_escape(&clean), "length {length}");
            for at in 0..length {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut bytes = clean.clone();
                    bytes[at] = special;
                    assert!(
                        needs_escape(&bytes),
                        "length {length}, at {at}, byte {special}"
                    );
                }
            }
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#""a\"b\\c\nd\u0001é""#
        );
    }
}
