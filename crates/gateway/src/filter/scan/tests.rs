//! The scanner's strictness: strings, numbers and objects it must refuse or decode.

use super::*;

fn string_of(json: &str) -> ScanResult<Cow<'_, str>> {
    let mut scanner = Scanner::new(json);
    scanner.peek_value()?;
    let text = scanner.string()?;
    scanner.finish()?;
    Ok(text)
}

#[test]
fn strings_borrow_without_escapes_and_decode_with_them() {
    assert!(matches!(
        string_of(r#""plain text é""#),
        Ok(Cow::Borrowed("plain text é"))
    ));
    assert_eq!(
        string_of(r#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#)
            .expect("valid")
            .as_ref(),
        "a\"b\\c/d\né😀"
    );
    assert_eq!(
        string_of(r#""long enough to take the word-at-a-time path \t""#)
            .expect("valid")
            .as_ref(),
        "long enough to take the word-at-a-time path \t"
    );
}

#[test]
fn invalid_strings_are_refused() {
    for bad in [
        "\"raw\ttab\"",
        "\"bad \\x escape\"",
        "\"lone \\udc00\"",
        "\"high \\ud800 alone\"",
        "\"unterminated",
        "\"short \\u12\"",
    ] {
        assert!(string_of(bad).is_err(), "{bad}");
    }
}

#[test]
fn numbers_follow_the_grammar() {
    for good in [
        "0",
        "-0",
        "12",
        "-3.25",
        "1e5",
        "2.5E-3",
        "123456789012345678901234567890",
    ] {
        let mut scanner = Scanner::new(good);
        assert_eq!(scanner.number(), Ok(good), "{good}");
    }
    for bad in ["01", "-", "1.", ".5", "1e", "1e+", "1e999", "-1e400"] {
        let mut scanner = Scanner::new(bad);
        let result = scanner.number().and_then(|_| scanner.finish());
        assert!(result.is_err(), "{bad}");
    }
}

#[test]
fn objects_need_commas_colons_and_no_trailing_comma() {
    for bad in [
        r#"{"a" 1}"#,
        r#"{"a":1,}"#,
        r#"{"a":1 "b":2}"#,
        r#"{,}"#,
        r#"{1:2}"#,
    ] {
        let mut scanner = Scanner::new(bad);
        scanner.peek_value().expect("starts an object");
        scanner.open();
        let mut first = true;
        let result = loop {
            match scanner.next_key(first) {
                Ok(Some(_)) => {
                    first = false;
                    if let Err(error) = scanner.peek_value().and_then(|_| scanner.number()) {
                        break Err(error);
                    }
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        assert!(result.is_err(), "{bad}");
    }
}
