//! CSV cells for every export: RFC 4180 quoting, and text that a spreadsheet would run as a
//! formula (OWASP "CSV injection") made inert by a leading single quote.

use std::borrow::Cow;

/// What a spreadsheet reads as the start of a formula (tab and CR: some strip them first).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell: a leading `'` if it would start a formula, then quoted when it holds a comma,
/// quote or line break. Numbers are written as they are (a negative number must stay a number).
pub(crate) fn text_cell(text: &str) -> Cow<'_, str> {
    // Spaces before a formula are skipped by some spreadsheets too.
    let inert: Cow<'_, str> = if text.trim_start_matches(' ').starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    };
    if inert.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", inert.replace('"', "\"\"")))
    } else {
        inert
    }
}

#[cfg(test)]
mod tests {
    use super::text_cell;

    #[test]
    fn formula_starts_are_prefixed_and_quoting_is_kept() {
        let cases = [
            ("DMS Web", "DMS Web"),
            (
                r#"=HYPERLINK("http://evil/x")"#,
                r#""'=HYPERLINK(""http://evil/x"")""#,
            ),
            ("=1+2", "'=1+2"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\r=1", "\"'\r=1\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("a=b", "a=b"),
            (" =1+1", "' =1+1"),
            ("  @x", "'  @x"),
            (" plain", " plain"),
            ("", ""),
        ];
        for (text, cell) in cases {
            assert_eq!(text_cell(text), cell, "{text:?}");
        }
    }
}
