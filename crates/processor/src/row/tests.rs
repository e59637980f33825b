use super::*;

const MESSAGE: &str = r#"{"schema":1,"tenant":"t-1","tier":"baseline","policy":"sha256:00","keyEpoch":"2026-11","type":"track","messageId":"m-1","timestamp":"2026-11-22T23:59:59.500+01:00","receivedAt":"2026-11-23T10:00:00.000Z","event":"Doc\u0075ment Opened","fields":{"a":"x","b":12,"c":1.5,"d":true,"e":18446744073709551615},"pseudonyms":{"userId":"AAAAAAAAAAAAAAAAAAAAAA"}}"#;

#[test]
fn decodes_the_contract_borrowing_what_has_no_escapes() {
    let row = Row::decode(MESSAGE.as_bytes()).expect("decodes");
    assert!(matches!(row.message_id, Cow::Borrowed("m-1")));
    assert_eq!(row.event.as_deref(), Some("Document Opened"));
    assert_eq!(
        row.day.to_string(),
        "2026-11-22",
        "the UTC day of the event"
    );
    assert_eq!(row.field("a"), Some(&Value::Str(Cow::Borrowed("x"))));
    assert_eq!(row.field("b"), Some(&Value::Int(12)));
    assert_eq!(row.field("c"), Some(&Value::Float(1.5)));
    assert_eq!(row.field("d"), Some(&Value::Bool(true)));
    assert_eq!(row.field("e"), Some(&Value::Float(18446744073709551615.0)));
    assert_eq!(row.pseudonym("userId"), Some("AAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(
        row.received_ms - row.timestamp_ms,
        39_600_500,
        "11 h 0.5 s apart"
    );
}

#[test]
fn refuses_what_is_not_the_contract_without_quoting_it() {
    let unknown = MESSAGE.replace("\"tier\":\"baseline\"", "\"tier\":\"secret-value\"");
    let error = Row::decode(unknown.as_bytes()).expect_err("unknown tier");
    assert!(!error.to_string().contains("secret-value"), "{error}");
    let extra = MESSAGE.replace("\"schema\":1,", "\"schema\":1,\"email\":\"a@b.c\",");
    assert!(Row::decode(extra.as_bytes()).is_err(), "unknown fields");
    let nested = MESSAGE.replace("\"b\":12", "\"b\":{\"x\":1}");
    assert!(Row::decode(nested.as_bytes()).is_err(), "only scalars");
    let version = MESSAGE.replace("\"schema\":1", "\"schema\":2");
    assert_eq!(Row::decode(version.as_bytes()), Err(DecodeError::Version));
    let tenant = MESSAGE.replace("\"tenant\":\"t-1\"", "\"tenant\":\"../etc\"");
    assert_eq!(Row::decode(tenant.as_bytes()), Err(DecodeError::Tenant));
    let time = MESSAGE.replace("2026-11-23T10:00:00.000Z", "yesterday");
    assert_eq!(
        Row::decode(time.as_bytes()),
        Err(DecodeError::Time("receivedAt"))
    );
    assert!(Row::decode(b"{\"schema\":1}").is_err());
}

mod canonical_path {
    use proptest::prelude::*;

    use super::super::{Row, canonical};

    /// The JSON text of a string: canonical, with escapes, or invalid (raw control characters).
    fn string(canonical_only: bool) -> BoxedStrategy<String> {
        // Long enough that escapes and control characters sit past the fast path's first
        // eight-byte word, and before, after and across word boundaries.
        let plain = "[a-zA-Z0-9 ._:/+=-]{0,40}".prop_map(|text| format!("\"{text}\""));
        if canonical_only {
            return plain.boxed();
        }
        prop_oneof![
            3 => plain,
            1 => any::<String>().prop_map(|text| serde_json::to_string(&text).expect("json")),
            1 => "[a-z]{0,20}\\\\u00[2-7][0-9a-f][a-z]{0,20}".prop_map(|text| format!("\"{text}\"")),
            1 => "[a-z\\x00-\\x1f]{1,24}".prop_map(|text| format!("\"{text}\"")),
        ]
        .boxed()
    }

    /// A kept field's value text, including what the contract refuses.
    fn scalar(canonical_only: bool) -> BoxedStrategy<String> {
        let canonical = prop_oneof![
            string(true),
            (-999_999_999_999_999_999_i64..=999_999_999_999_999_999).prop_map(|n| n.to_string()),
            Just("true".to_owned()),
            Just("false".to_owned()),
        ];
        if canonical_only {
            return canonical.boxed();
        }
        prop_oneof![
            4 => canonical,
            2 => string(false),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            1 => any::<f64>().prop_map(|n| n.to_string()),
            1 => prop::sample::select(vec![
                "-0", "01", "-01", "1.5", "1e3", "1E-2", "-", "null", "{}", "[1]", "tru", "nul",
                "18446744073709551616", "1000000000000000000", "-1000000000000000000",
            ])
            .prop_map(str::to_owned),
        ]
        .boxed()
    }

    fn object(entries: Vec<(String, String)>) -> String {
        let inner: Vec<String> = entries
            .iter()
            .map(|(key, value)| format!("\"{key}\":{value}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    /// One of `good` (mostly), else one of `bad` (unless `canonical_only`).
    fn pick(canonical_only: bool, good: &[&str], bad: &[&str]) -> BoxedStrategy<String> {
        let owned = |texts: &[&str]| -> Vec<String> {
            texts.iter().map(|text| (*text).to_owned()).collect()
        };
        let good = prop::sample::select(owned(good));
        if canonical_only {
            return good.boxed();
        }
        prop_oneof![4 => good, 1 => prop::sample::select(owned(bad))].boxed()
    }

    /// A whole message's top-level entries (key, JSON text of the value).
    fn entries(canonical_only: bool) -> impl Strategy<Value = Vec<(String, String)>> {
        let key = "[a-z][a-zA-Z._]{0,10}";
        (
            (
                pick(canonical_only, &["1"], &["2", "1.0", "-1", "01", "\"1\""]),
                pick(
                    canonical_only,
                    &["\"t-1000\"", "\"acme\""],
                    &["\"../x\"", "\"\"", "7"],
                ),
                pick(
                    canonical_only,
                    &["\"baseline\"", "\"enhanced\""],
                    &["\"Baseline\"", "\"b\\u0061seline\"", "null"],
                ),
                string(canonical_only),
                pick(
                    canonical_only,
                    &["\"track\"", "\"page\"", "\"identify\"", "\"alias\""],
                    &["\"Track\"", "\"click\""],
                ),
                string(canonical_only),
                pick(
                    canonical_only,
                    &[
                        "\"2026-11-01T08:58:38.751Z\"",
                        "\"2026-11-01T08:58:38+01:00\"",
                    ],
                    &["\"yesterday\"", "\"2026-13-01T00:00:00Z\"", "0"],
                ),
            ),
            (
                prop::option::of(string(canonical_only)),
                prop::option::of(pick(
                    canonical_only,
                    &["null", "\"Document Viewer\""],
                    &["1", "\"a\\\"b\""],
                )),
                prop::collection::vec((key, scalar(canonical_only)), 0..6),
                prop::collection::vec((key, string(canonical_only)), 0..4),
            ),
        )
            .prop_map(
                |(
                    (schema, tenant, tier, policy, kind, message_id, time),
                    (event, name, fields, pseudonyms),
                )| {
                    let mut entries: Vec<(String, String)> = [
                        ("schema", schema),
                        ("tenant", tenant),
                        ("tier", tier),
                        ("policy", policy),
                        ("keyEpoch", "\"2026-11\"".to_owned()),
                        ("type", kind),
                        ("messageId", message_id),
                        ("timestamp", time.clone()),
                        ("receivedAt", time),
                    ]
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect();
                    entries.extend(event.map(|event| ("event".to_owned(), event)));
                    entries.extend(name.map(|name| ("name".to_owned(), name)));
                    entries.push(("fields".to_owned(), object(fields)));
                    entries.push(("pseudonyms".to_owned(), object(pseudonyms)));
                    entries
                },
            )
            .prop_shuffle()
    }

    /// A message text, possibly bent away from the canonical encoding.
    fn message() -> impl Strategy<Value = String> {
        (
            entries(false),
            any::<prop::sample::Index>(),
            0..12_u8,
            prop::sample::select(vec![",", ", ", " ,", ",\n"]),
        )
            .prop_map(|(mut entries, index, bend, separator)| {
                let at = index.index(entries.len());
                match bend {
                    0 => drop(entries.remove(at)),
                    1 => entries.push(entries[at].clone()),
                    2 => entries.insert(at, ("extra".to_owned(), "1".to_owned())),
                    _ => {}
                }
                let separator = if bend == 3 { separator } else { "," };
                let inner: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("\"{key}\":{value}"))
                    .collect();
                let text = format!("{{{}}}", inner.join(separator));
                if bend == 4 { format!("{text} ") } else { text }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the record, the fast path gives serde's answer: the same row or the same
        /// error (it hands everything it does not read itself to serde).
        #[test]
        fn agrees_with_serde_on_any_record(text in message()) {
            prop_assert_eq!(Row::decode(text.as_bytes()), Row::decode_with_serde(text.as_bytes()));
        }

        /// Field lists reused from one record to the next (any shape, good or bad) change no
        /// answer.
        #[test]
        fn a_reused_scratch_changes_nothing(texts in prop::collection::vec(message(), 1..8)) {
            let mut scratch = super::RowScratch::default();
            for text in &texts {
                let reused = Row::decode_reusing(text.as_bytes(), &mut scratch);
                prop_assert_eq!(&reused, &Row::decode(text.as_bytes()));
                if let Ok(row) = reused {
                    scratch.recycle(row);
                }
            }
        }

        /// The gateway's canonical messages do take the fast path (else the test above proves
        /// nothing), and decode as serde does.
        #[test]
        fn reads_canonical_messages_itself(entries in entries(true)) {
            let text = object(entries);
            prop_assert!(
                canonical::parse(&text, Vec::new(), Vec::new()).is_some(),
                "{}",
                text
            );
            let decoded = Row::decode(text.as_bytes());
            prop_assert!(decoded.is_ok());
            prop_assert_eq!(decoded, Row::decode_with_serde(text.as_bytes()));
        }
    }

    #[test]
    fn the_gateway_output_takes_the_fast_path() {
        let text = r#"{"schema":1,"tenant":"t-1000","tier":"baseline","policy":"sha256:60d5","keyEpoch":"2026-11","type":"track","messageId":"b77555e7-7f75-d5c2-91f6-59b63a479870","timestamp":"2026-11-01T08:58:38.751Z","receivedAt":"2026-11-25T06:17:20.739Z","event":"Document Opened","fields":{"properties.feature":"preview","properties.duration_ms":1315,"properties.success":true},"pseudonyms":{"userId":"sIeXjNh2wjDjcJzxhIITtQ"}}"#;
        assert!(canonical::parse(text, Vec::new(), Vec::new()).is_some());
        let row = Row::decode(text.as_bytes()).expect("decodes");
        assert_eq!(
            row.field("properties.duration_ms"),
            Some(&super::Value::Int(1315))
        );
        assert_eq!(row.pseudonym("userId"), Some("sIeXjNh2wjDjcJzxhIITtQ"));
        assert_eq!(Ok(row), Row::decode_with_serde(text.as_bytes()));
    }
}
