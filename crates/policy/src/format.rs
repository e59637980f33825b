//! Shapes a kept text must have when its values cannot be listed (`format` in `allowlist.yaml`):
//! a version, a locale or a time zone. Each admits only what such a value can be, so a name, a
//! file or a path sent in its place is dropped as `value_not_allowlisted`.

/// A reviewed shape for a kept string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextFormat {
    /// `4.3.1`, `10.0.19045`, `2026.11`, `v2.3.0`, `1.0.0-beta.2`, `2.3.0+6718`, `npm:next-1.75.0`:
    /// one to five numbers, an optional pre-release word from a fixed list, an optional hex build.
    Version,
    /// A BCP 47 locale: `en`, `en-US`, `pt_BR`, `zh-Hant-TW`, `es-419`.
    Locale,
    /// An IANA time zone (`Europe/London`, `UTC`) or a UTC offset (`+05:30`).
    Timezone,
}

/// Longest version text admitted.
const MAX_VERSION_BYTES: usize = 64;

/// Prefixes SDKs and build tools put before a version number.
const VERSION_PREFIXES: [&str; 5] = ["npm:next-", "next-", "npm:", "v", "V"];

/// Pre-release words (compared without case).
const PRE_RELEASE_WORDS: [&str; 12] = [
    "alpha", "beta", "rc", "dev", "pre", "preview", "nightly", "canary", "snapshot", "post", "a",
    "b",
];

/// Script subtags found in locales (ISO 15924): a four-letter subtag must be one of these, so it
/// cannot be a name.
const SCRIPTS: [&str; 24] = [
    "Arab", "Armn", "Beng", "Cyrl", "Deva", "Ethi", "Geor", "Grek", "Gujr", "Guru", "Hans", "Hant",
    "Hebr", "Jpan", "Khmr", "Knda", "Kore", "Latn", "Mlym", "Orya", "Sinh", "Taml", "Telu", "Thai",
];

impl TextFormat {
    /// The format named in `allowlist.yaml`.
    pub fn from_name(name: &str) -> Option<TextFormat> {
        match name {
            "version" => Some(TextFormat::Version),
            "locale" => Some(TextFormat::Locale),
            "timezone" => Some(TextFormat::Timezone),
            _ => None,
        }
    }

    /// The name used in `allowlist.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            TextFormat::Version => "version",
            TextFormat::Locale => "locale",
            TextFormat::Timezone => "timezone",
        }
    }

    /// Whether `text` has this shape.
    #[inline]
    pub fn admits(self, text: &str) -> bool {
        match self {
            TextFormat::Version => is_version(text),
            TextFormat::Locale => is_locale(text),
            TextFormat::Timezone => is_timezone(text),
        }
    }
}

/// Splits off leading ASCII digits: (`digits`, rest).
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn is_version(text: &str) -> bool {
    if text.len() > MAX_VERSION_BYTES {
        return false;
    }
    let mut rest = VERSION_PREFIXES
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(text);
    // One to five dot-separated numbers.
    for part in 0..5 {
        let (digits, after) = split_digits(rest);
        if digits.is_empty() || digits.len() > 9 {
            return false;
        }
        rest = after;
        match rest.strip_prefix('.') {
            Some(after_dot) if part < 4 && after_dot.starts_with(|c: char| c.is_ascii_digit()) => {
                rest = after_dot;
            }
            _ => break,
        }
    }
    // An optional pre-release word, with an optional number.
    let unseparated = rest.starts_with(|c: char| c.is_ascii_alphabetic());
    if let Some(after) = rest
        .strip_prefix(['-', '.'])
        .filter(|after| after.starts_with(|c: char| c.is_ascii_alphabetic()))
        .or(unseparated.then_some(rest))
    {
        let word_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (word, after_word) = after.split_at(word_end);
        if !PRE_RELEASE_WORDS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(word))
        {
            return false;
        }
        let after_word = after_word.strip_prefix('.').unwrap_or(after_word);
        let (digits, after_number) = split_digits(after_word);
        if digits.len() > 9 {
            return false;
        }
        rest = after_number;
    }
    // An optional build: hex digits and dots (a build number or a commit).
    match rest.strip_prefix('+') {
        None => rest.is_empty(),
        Some(build) => {
            !build.is_empty()
                && build.len() <= 40
                && build
                    .bytes()
                    .all(|byte| byte.is_ascii_hexdigit() || byte == b'.')
        }
    }
}

fn is_locale(text: &str) -> bool {
    let mut subtags = text.split(['-', '_']);
    let language = subtags.next().unwrap_or_default();
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    let mut subtag = subtags.next();
    if let Some(script) = subtag.filter(|script| script.len() == 4) {
        if !SCRIPTS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(script))
        {
            return false;
        }
        subtag = subtags.next();
    }
    if let Some(region) = subtag {
        let letters = region.len() == 2 && region.bytes().all(|b| b.is_ascii_alphabetic());
        let digits = region.len() == 3 && region.bytes().all(|b| b.is_ascii_digit());
        if !(letters || digits) {
            return false;
        }
    }
    subtags.next().is_none()
}

fn is_timezone(text: &str) -> bool {
    if let Some(offset) = text.strip_prefix(['+', '-']) {
        let digits: Vec<u8> = offset.bytes().filter(|byte| *byte != b':').collect();
        let colons = offset.len() - digits.len();
        return colons <= 1
            && (offset.len() == 4 + colons)
            && (colons == 0 || offset.as_bytes().get(2) == Some(&b':'))
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] - b'0') * 10 + (digits[1] - b'0') <= 14
            && (digits[2] - b'0') < 6;
    }
    text.parse::<chrono_tz::Tz>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::TextFormat::{Locale, Timezone, Version};

    const LEAKS: [&str; 10] = [
        "Kofi Mensah",
        "Acme_Merger_Agreement.docx",
        "C:\\Users\\kofi\\file.docx",
        "kofi.mensah@acme-law.example",
        "198_51_100_77",
        "https://dms.acme-law.example/x",
        "Acme/Merger",
        "en-Kofi",
        "1.0-KofiMensah",
        "",
    ];

    #[test]
    fn versions_as_clients_send_them_are_admitted() {
        for version in [
            "4.3.1",
            "10.0.19045",
            "2026.11",
            "11",
            "14.6",
            "v2.3.0",
            "1.0.0-beta.2",
            "1.0.0-rc1",
            "3.12.0b2",
            "2.3.0+6718",
            "1.2.3+0a1b2c3d",
            "npm:next-1.75.0",
            "next-1.75.0",
            "131.0.6778.86",
        ] {
            assert!(Version.admits(version), "{version}");
        }
        for text in LEAKS.iter().chain(&[
            "1.",
            ".1",
            "1..2",
            "1.2.3.4.5.6",
            "1.0-Kofi",
            "1+Kofi",
            "1.0 beta",
        ]) {
            assert!(!Version.admits(text), "{text}");
        }
    }

    #[test]
    fn locales_are_admitted_by_their_bcp47_shape() {
        for locale in [
            "en",
            "en-US",
            "en_GB",
            "pt-BR",
            "zh-Hant-TW",
            "es-419",
            "fil-PH",
            "sr-Latn",
        ] {
            assert!(Locale.admits(locale), "{locale}");
        }
        for text in LEAKS
            .iter()
            .chain(&["english", "en-USA", "en-US-x", "e", "en--US"])
        {
            assert!(!Locale.admits(text), "{text}");
        }
    }

    #[test]
    fn time_zones_are_iana_names_or_offsets() {
        for zone in [
            "Europe/London",
            "America/Argentina/Buenos_Aires",
            "Asia/Tokyo",
            "UTC",
            "Etc/GMT+5",
            "+05:30",
            "-0800",
            "+14:00",
        ] {
            assert!(Timezone.admits(zone), "{zone}");
        }
        for text in LEAKS.iter().chain(&[
            "Europe/Acme",
            "+25:00",
            "+05:60",
            "+5:30",
            "+05:30:00",
            "europe/london ",
        ]) {
            assert!(!Timezone.admits(text), "{text}");
        }
    }
}
