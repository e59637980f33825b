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

use std::sync::LazyLock;

use rustc_hash::FxHashSet;

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
const SCRIPTS: [&str; 34] = [
    "Adlm", "Arab", "Armn", "Beng", "Cher", "Cyrl", "Deva", "Ethi", "Geor", "Grek", "Gujr", "Guru",
    "Hans", "Hant", "Hebr", "Jpan", "Khmr", "Knda", "Kore", "Laoo", "Latn", "Mlym", "Mong", "Mymr",
    "Olck", "Orya", "Rohg", "Sinh", "Taml", "Telu", "Tfng", "Thai", "Tibt", "Vaii",
];

/// Three-letter languages found in locales (CLDR's, with no two-letter code): any other
/// three letters could be a name or initials (`Bob`, `Kim`), so they are not admitted.
const THREE_LETTER_LANGUAGES: [&str; 24] = [
    "ast", "ceb", "chr", "ckb", "dsb", "fil", "fur", "gsw", "haw", "hsb", "kab", "kok", "lkt",
    "mai", "mni", "mzn", "nds", "sah", "sat", "smn", "vai", "yue", "zgh", "yrl",
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

/// Whether `bytes` is one of `list`, ignoring ASCII case.
fn listed_ignoring_case(list: &[&str], bytes: &[u8]) -> bool {
    list.iter()
        .any(|known| known.as_bytes().eq_ignore_ascii_case(bytes))
}

/// The number of ASCII digits `bytes` starts with.
fn leading_digits(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count()
}

/// The number of ASCII letters `bytes` starts with.
fn leading_letters(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|byte| byte.is_ascii_alphabetic())
        .count()
}

fn is_version(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() > MAX_VERSION_BYTES {
        return false;
    }
    let mut rest = VERSION_PREFIXES
        .iter()
        .find_map(|prefix| bytes.strip_prefix(prefix.as_bytes()))
        .unwrap_or(bytes);
    // One to five dot-separated numbers.
    for part in 0..5 {
        let digits = leading_digits(rest);
        if digits == 0 || digits > 9 {
            return false;
        }
        rest = &rest[digits..];
        match rest {
            [b'.', next, ..] if part < 4 && next.is_ascii_digit() => rest = &rest[1..],
            _ => break,
        }
    }
    // An optional pre-release word (after `-`, `.` or nothing), with an optional number.
    let word_at = match rest {
        [b'-' | b'.', next, ..] if next.is_ascii_alphabetic() => Some(1),
        [first, ..] if first.is_ascii_alphabetic() => Some(0),
        _ => None,
    };
    if let Some(start) = word_at {
        let after = &rest[start..];
        let length = leading_letters(after);
        let word = &after[..length];
        if !listed_ignoring_case(&PRE_RELEASE_WORDS, word) {
            return false;
        }
        let mut after_word = &after[length..];
        if let [b'.', next, ..] = after_word
            && next.is_ascii_digit()
        {
            after_word = &after_word[1..];
        }
        let digits = leading_digits(after_word);
        if digits > 9 {
            return false;
        }
        rest = &after_word[digits..];
    }
    // An optional build: hex digits and dots (a build number or a commit).
    match rest {
        [] => true,
        [b'+', build @ ..] => {
            !build.is_empty()
                && build.len() <= 40
                && build
                    .iter()
                    .all(|byte| byte.is_ascii_hexdigit() || *byte == b'.')
        }
        _ => false,
    }
}

fn is_locale(text: &str) -> bool {
    let mut subtags = text.as_bytes().split(|byte| *byte == b'-' || *byte == b'_');
    let language = subtags.next().unwrap_or_default();
    let known_three =
        language.len() == 3 && listed_ignoring_case(&THREE_LETTER_LANGUAGES, language);
    if !(language.len() == 2 || known_three) || leading_letters(language) != language.len() {
        return false;
    }
    let mut subtag = subtags.next();
    if let Some(script) = subtag.filter(|script| script.len() == 4) {
        if !listed_ignoring_case(&SCRIPTS, script) {
            return false;
        }
        subtag = subtags.next();
    }
    if let Some(region) = subtag {
        let letters = region.len() == 2 && leading_letters(region) == 2;
        let digits = region.len() == 3 && leading_digits(region) == 3;
        if !(letters || digits) {
            return false;
        }
    }
    // One variant, only `POSIX` (Apple's `en-US-POSIX`).
    match subtags.next() {
        None => true,
        Some(variant) => variant.eq_ignore_ascii_case(b"POSIX") && subtags.next().is_none(),
    }
}

/// The names of the IANA time-zone database (`chrono-tz`'s copy), hashed once.
static TIME_ZONES: LazyLock<FxHashSet<&'static str>> = LazyLock::new(|| {
    chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| zone.name())
        .collect()
});

fn is_timezone(text: &str) -> bool {
    // Android writes offsets as `GMT+05:30`.
    let offset = text
        .strip_prefix("GMT")
        .or_else(|| text.strip_prefix("UTC"))
        .filter(|offset| offset.starts_with(['+', '-']));
    if let Some(offset) = offset {
        return is_timezone(offset);
    }
    match text.as_bytes() {
        // `+05:30` or `-0800`: hours up to 14, minutes up to 59.
        [b'+' | b'-', offset @ ..] => {
            let digits: Option<[u8; 4]> = match offset {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => Some([*h1, *h2, *m1, *m2]),
                _ => None,
            };
            digits.is_some_and(|[h1, h2, m1, m2]| {
                [h1, h2, m1, m2].iter().all(u8::is_ascii_digit)
                    && (h1 - b'0') * 10 + (h2 - b'0') <= 14
                    && m1 < b'6'
            })
        }
        _ => TIME_ZONES.contains(text),
    }
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
            "mn-Mong-CN",
            "en-US-POSIX",
            "yue-Hant-HK",
        ] {
            assert!(Locale.admits(locale), "{locale}");
        }
        for text in LEAKS.iter().chain(&[
            "english", "en-USA", "en-US-x", "e", "en--US", "Bob", "Kim-LE", "Ann_US", "enX",
        ]) {
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
            "GMT+05:30",
            "UTC-08:00",
        ] {
            assert!(Timezone.admits(zone), "{zone}");
        }
        for text in LEAKS.iter().chain(&[
            "Europe/Acme",
            "+25:00",
            "+05:60",
            "+5:30",
            "+05:30:00",
            "GMT+Kofi",
            "GMT+",
            "europe/london ",
        ]) {
            assert!(!Timezone.admits(text), "{text}");
        }
    }
}
