use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::allowlist::Allowlist;
use crate::pseudonym::EpochKey;

const POLICY: &str = r#"
version: 1
common:
  userId: { pseudonymize: user, reason: "active users" }
  anonymousId: { pseudonymize: anonymous, reason: "pre-login usage" }
  context.app.name: { keep: string, reason: "which app" }
  context.app.version: { keep: string, reason: "version adoption" }
  context.locale: { keep: string, reason: "languages" }
track:
  fields:
    properties.feature: { keep: string, reason: "feature adoption" }
    properties.duration_ms: { keep: integer, min: 0, max: 86400000, reason: "performance" }
    properties.ratio: { keep: number, min: 0, max: 10, reason: "quality" }
    properties.success: { keep: boolean, reason: "reliability" }
    properties.view: { keep: string, values: [list, grid], reason: "view modes" }
    properties.document_id: { pseudonymize: document, reason: "distinct documents" }
    properties.plan: { keep: string, tier: enhanced, reason: "opt-in plan detail" }
  events:
    Document Opened: { reason: "core usage" }
    Search Performed:
      reason: "search adoption"
      fields:
        properties.result_count: { keep: integer, reason: "result counts" }
    Beta Feature Used: { tier: enhanced, reason: "opt-in beta usage" }
identify: {}
page:
  names:
    Document Viewer: { reason: "which view" }
group:
  fields:
    groupId: { pseudonymize: tenant, reason: "organization" }
alias:
  fields:
    previousId: { pseudonymize: user, reason: "identity link" }
"#;

fn policy() -> Arc<Policy> {
    Arc::new(
        Allowlist::parse(POLICY)
            .expect("test policy is valid")
            .compile(),
    )
}

fn tenant(tier: Tier, key_byte: u8) -> TenantFilter {
    TenantFilter::new(
        policy(),
        "t-1",
        tier,
        EpochKey::new("2026-11", &[key_byte; 32]),
    )
}

const META: MessageMeta<'static> = MessageMeta {
    received_at: "2026-11-23T10:00:00.000Z",
    fallback_message_id: Some("fallback-1"),
    sent_at: None,
};

fn run(filter: &TenantFilter, message: &str) -> Result<(Value, DropCounts), Rejection> {
    let mut out = Vec::new();
    let mut drops = DropCounts::default();
    filter.filter(
        message.as_bytes(),
        &META,
        &mut WorkerCache::default(),
        &mut out,
        &mut drops,
    )?;
    let value: Value = serde_json::from_slice(&out).expect("the filter writes JSON");
    // Every output is a valid sanitized message of the published contract.
    serde_json::from_value::<veil_sanitized::SanitizedMessage>(value.clone())
        .expect("output matches the contract");
    Ok((value, drops))
}

fn accepted(message: &str) -> Value {
    run(&tenant(Tier::Baseline, 1), message)
        .expect("accepted")
        .0
}

fn rejected(message: &[u8]) -> Rejection {
    let mut out = Vec::new();
    let result = tenant(Tier::Baseline, 1).filter(
        message,
        &META,
        &mut WorkerCache::default(),
        &mut out,
        &mut (),
    );
    assert!(out.is_empty(), "nothing is written for a rejected message");
    result.expect_err("rejected")
}

fn track(extra: Value) -> String {
    let mut message = json!({
        "type": "track", "event": "Document Opened", "userId": "u-1",
        "messageId": "b77555e7-7f75-d5c2-91f6-59b63a479870", "timestamp": "2026-11-20T08:00:00.000Z",
        "properties": {"feature": "preview", "duration_ms": 1200, "success": true, "document_id": "DMS!1.2",
                       "document_name": "Merger Agreement.docx"},
        "context": {"app": {"name": "DMS Web", "version": "2026.11", "build": "1234"}, "ip": "10.1.2.3",
                    "traits": {"email": "alice@firm.example", "name": "Alice Okafor"}, "locale": "en-GB"}
    });
    if let (Some(target), Value::Object(extra)) = (message.as_object_mut(), extra) {
        target.extend(extra);
    }
    message.to_string()
}

#[test]
fn keeps_allowlisted_fields_and_pseudonymizes_identifiers() {
    let out = accepted(&track(json!({})));
    assert_eq!(out["schema"], 1);
    assert_eq!(out["tenant"], "t-1");
    assert_eq!(out["tier"], "baseline");
    assert_eq!(out["policy"], policy().digest());
    assert_eq!(out["keyEpoch"], "2026-11");
    assert_eq!(out["type"], "track");
    assert_eq!(out["event"], "Document Opened");
    assert_eq!(out["messageId"], "b77555e7-7f75-d5c2-91f6-59b63a479870");
    assert_eq!(out["timestamp"], "2026-11-20T08:00:00.000Z");
    assert_eq!(out["receivedAt"], META.received_at);
    assert_eq!(
        out["fields"],
        json!({"properties.feature": "preview", "properties.duration_ms": 1200, "properties.success": true,
               "context.app.name": "DMS Web", "context.app.version": "2026.11", "context.locale": "en-GB"})
    );
    let key = EpochKey::new("2026-11", &[1; 32]);
    let expected = |domain: &str, value: &str| {
        String::from_utf8(key.pseudonymize(domain, value.as_bytes()).to_vec()).expect("ascii")
    };
    assert_eq!(out["pseudonyms"]["userId"], expected("user", "u-1"));
    assert_eq!(
        out["pseudonyms"]["properties.document_id"],
        expected("document", "DMS!1.2")
    );
    let text = out.to_string();
    for secret in [
        "Merger", "alice", "Alice", "10.1.2.3", "u-1\"", "DMS!1.2", "1234",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

#[test]
fn dropped_fields_are_counted_by_name_and_reason() {
    let (_, drops) = run(&tenant(Tier::Baseline, 1), &track(json!({}))).expect("accepted");
    let by_field = drops.by_field(&policy());
    for path in [
        "properties.document_name",
        "context.ip",
        "context.traits",
        "context.app.build",
    ] {
        assert_eq!(
            by_field.get(&(path.to_owned(), DropReason::NotAllowlisted)),
            Some(&1),
            "{path}"
        );
    }
    assert_eq!(by_field.len(), 4, "{by_field:?}");
}

#[test]
fn value_checks_drop_emails_and_ip_addresses_whatever_the_key() {
    let message = track(
        json!({"properties": {"feature": "mail alice@firm.example", "duration_ms": 5},
                               "context": {"app": {"name": "192.168.1.20", "version": "fe80::1"}, "locale": "en-US"}}),
    );
    let (out, drops) = run(&tenant(Tier::Baseline, 1), &message).expect("accepted");
    assert_eq!(
        out["fields"],
        json!({"properties.duration_ms": 5, "context.locale": "en-US"})
    );
    let by_field = drops.by_field(&policy());
    assert_eq!(
        by_field.get(&("properties.feature".to_owned(), DropReason::EmailValue)),
        Some(&1)
    );
    assert_eq!(
        by_field.get(&("context.app.name".to_owned(), DropReason::IpValue)),
        Some(&1)
    );
    assert_eq!(
        by_field.get(&("context.app.version".to_owned(), DropReason::IpValue)),
        Some(&1)
    );
}

#[test]
fn kept_strings_with_control_or_direction_characters_are_dropped_and_other_text_kept() {
    let message = track(json!({
        "properties": {"feature": "preview\nFORGED,row", "duration_ms": 5},
        "context": {"app": {"name": "DMS \"Web\" \u{e9}\u{2713}", "version": "2026\u{0}11"},
                    "locale": "en\u{202e}SU"}
    }));
    let (out, drops) = run(&tenant(Tier::Baseline, 1), &message).expect("accepted");
    // Escaped quotes and non-ASCII text are ordinary content and pass unchanged.
    assert_eq!(
        out["fields"],
        json!({"properties.duration_ms": 5, "context.app.name": "DMS \"Web\" \u{e9}\u{2713}"})
    );
    let by_field = drops.by_field(&policy());
    for path in [
        "properties.feature",
        "context.app.version",
        "context.locale",
    ] {
        assert_eq!(
            by_field.get(&(path.to_owned(), DropReason::ControlCharacter)),
            Some(&1),
            "{path}"
        );
    }
}

#[test]
fn declared_types_are_enforced_per_field() {
    let message = track(
        json!({"properties": {"feature": 7, "duration_ms": "long", "success": "yes", "ratio": 2,
                                               "document_id": {"nested": 1}}}),
    );
    let (out, drops) = run(&tenant(Tier::Baseline, 1), &message).expect("accepted");
    let kept: Vec<&String> = out["fields"]
        .as_object()
        .expect("fields")
        .keys()
        .filter(|path| path.starts_with("properties."))
        .collect();
    assert_eq!(kept, ["properties.ratio"]);
    assert_eq!(out["fields"]["properties.ratio"], 2);
    let by_field = drops.by_field(&policy());
    for path in [
        "properties.feature",
        "properties.duration_ms",
        "properties.success",
        "properties.document_id",
    ] {
        assert_eq!(
            by_field.get(&(path.to_owned(), DropReason::TypeMismatch)),
            Some(&1),
            "{path}"
        );
    }
    // An object expected, a scalar found: dropped, counted.
    let (out, drops) = run(
        &tenant(Tier::Baseline, 1),
        &track(json!({"context": "flat"})),
    )
    .expect("accepted");
    assert!(out["fields"].get("context.app.name").is_none());
    assert_eq!(
        drops
            .by_field(&policy())
            .get(&("context".to_owned(), DropReason::TypeMismatch)),
        Some(&1)
    );
}

#[test]
fn numbers_outside_their_declared_range_are_dropped_as_out_of_range() {
    let filter = tenant(Tier::Baseline, 1);
    let cases = [
        (json!({"duration_ms": 0, "ratio": 0}), true, true),
        (json!({"duration_ms": 86_400_000, "ratio": 10}), true, true),
        (json!({"duration_ms": 1200, "ratio": 9.5}), true, true),
        // A phone number in a duration, a negative ratio, a fraction past the bound.
        (
            json!({"duration_ms": 4_915_112_345_678_i64, "ratio": -0.5}),
            false,
            false,
        ),
        (json!({"duration_ms": -5, "ratio": 10.25}), false, false),
        (
            json!({"duration_ms": 86_400_001, "ratio": 1e300}),
            false,
            false,
        ),
    ];
    for (properties, duration_kept, ratio_kept) in cases {
        let (out, drops) = run(&filter, &track(json!({"properties": properties.clone()})))
            .expect("accepted: a field out of range drops alone");
        let fields = &out["fields"];
        assert_eq!(
            fields.get("properties.duration_ms"),
            duration_kept.then(|| &properties["duration_ms"]),
            "{properties}"
        );
        assert_eq!(
            fields.get("properties.ratio"),
            ratio_kept.then(|| &properties["ratio"]),
            "{properties}"
        );
        let by_field = drops.by_field(&policy());
        for (path, kept) in [
            ("properties.duration_ms", duration_kept),
            ("properties.ratio", ratio_kept),
        ] {
            let dropped = by_field.get(&(path.to_owned(), DropReason::OutOfRange));
            assert_eq!(dropped, (!kept).then_some(&1), "{path} in {properties}");
        }
    }
    // A field without a declared range keeps any integer of its type.
    let search = track(json!({"event": "Search Performed",
                              "properties": {"result_count": 4_915_112_345_678_i64}}));
    let (out, _) = run(&filter, &search).expect("accepted");
    assert_eq!(
        out["fields"]["properties.result_count"],
        4_915_112_345_678_i64
    );
}

#[test]
fn texts_outside_a_listed_field_s_values_are_dropped_as_value_not_allowlisted() {
    let filter = tenant(Tier::Baseline, 1);
    for (view, written) in [
        ("\"list\"", Some("list")),
        ("\"grid\"", Some("grid")),
        // An escaped spelling of a listed value is that value.
        ("\"li\\u0073t\"", Some("list")),
        ("\"Grid\"", None),
        ("\"grid \"", None),
        ("\"Merger Agreement.docx\"", None),
    ] {
        let message = format!(
            r#"{{"type":"track","event":"Document Opened","userId":"u-1","properties":{{"feature":"preview","view":{view}}}}}"#
        );
        let (out, drops) = run(&filter, &message).expect("accepted");
        assert_eq!(
            out["fields"].get("properties.view").and_then(Value::as_str),
            written,
            "{view}"
        );
        let dropped = drops
            .by_field(&policy())
            .get(&(
                "properties.view".to_owned(),
                DropReason::ValueNotAllowlisted,
            ))
            .copied();
        assert_eq!(dropped, written.is_none().then_some(1), "{view}");
        assert_eq!(
            out["fields"]["properties.feature"], "preview",
            "other fields unaffected"
        );
    }
}

#[test]
fn event_specific_and_enhanced_fields_follow_the_rule() {
    let search = track(
        json!({"event": "Search Performed", "properties": {"result_count": 3, "plan": "gold"}}),
    );
    assert_eq!(accepted(&search)["fields"]["properties.result_count"], 3);
    assert!(
        accepted(&search)["fields"].get("properties.plan").is_none(),
        "enhanced field for baseline tenant"
    );
    let opened = track(json!({"properties": {"result_count": 3}}));
    assert!(
        accepted(&opened)["fields"]
            .get("properties.result_count")
            .is_none(),
        "field of another event"
    );
    let (enhanced, _) = run(&tenant(Tier::Enhanced, 1), &search).expect("accepted");
    assert_eq!(enhanced["fields"]["properties.plan"], "gold");
    assert_eq!(enhanced["tier"], "enhanced");
    let beta = track(json!({"event": "Beta Feature Used"}));
    assert_eq!(
        rejected(beta.as_bytes()).reason,
        RejectReason::EventRequiresEnhanced
    );
    assert!(run(&tenant(Tier::Enhanced, 1), &beta).is_ok());
}

#[test]
fn message_types_and_their_requirements() {
    let page = r#"{"type":"page","name":"Document Viewer","anonymousId":"a-1","messageId":"p-1","properties":{"title":"Secret.docx"}}"#;
    let out = accepted(page);
    assert_eq!(out["name"], "Document Viewer");
    assert!(out["pseudonyms"]["anonymousId"].is_string());
    let other_page =
        r#"{"type":"page","name":"Merger Agreement.docx","userId":"u","messageId":"p-2"}"#;
    assert!(
        accepted(other_page).get("name").is_none(),
        "unlisted page names never leave"
    );
    assert_eq!(
        accepted(r#"{"type":"identify","userId":"u","messageId":"i","traits":{"email":"a@b.co"}}"#)
            ["fields"],
        json!({})
    );
    assert_eq!(
        rejected(br#"{"type":"group","userId":"u","messageId":"g"}"#)
            .field
            .as_deref(),
        Some("groupId")
    );
    assert_eq!(
        rejected(br#"{"type":"alias","userId":"u","messageId":"a"}"#)
            .field
            .as_deref(),
        Some("previousId")
    );
    assert_eq!(
        rejected(br#"{"type":"screen","userId":"u","messageId":"s"}"#).reason,
        RejectReason::TypeNotAllowlisted
    );
    assert_eq!(
        rejected(br#"{"type":"purchase","userId":"u"}"#).reason,
        RejectReason::UnknownType
    );
    assert_eq!(
        rejected(br#"{"userId":"u"}"#).reason,
        RejectReason::MissingType
    );
    assert_eq!(
        rejected(br#"{"type":"track","userId":"u"}"#).reason,
        RejectReason::MissingEvent
    );
    assert_eq!(
        rejected(br#"{"type":"track","event":"Secret Thing","userId":"u"}"#).reason,
        RejectReason::EventNotAllowlisted
    );
    assert_eq!(
        rejected(br#"{"type":"track","event":"Document Opened","userId":""}"#).reason,
        RejectReason::MissingIdentity
    );
    // Values no pseudonym is made of do not count as an identity: without this, the message
    // passed with its userId dropped (type mismatch) and no identity at all.
    for unusable in ["true", "1.5", "12345678901234567890123", "[]", "{}", "null"] {
        let message =
            format!(r#"{{"type":"track","event":"Document Opened","userId":{unusable}}}"#);
        assert_eq!(
            rejected(message.as_bytes()).reason,
            RejectReason::MissingIdentity,
            "{unusable}"
        );
    }
    // Placeholder texts client code sends for a missing id name nobody: alone, no identity;
    // next to a real id, absent from the output; an alias from one links nothing.
    for placeholder in [
        "undefined",
        " ",
        "\t\n",
        "NULL",
        " null ",
        "None",
        "nil",
        "NaN",
        "(null)",
        "[object Object]",
    ] {
        let alone = format!(
            r#"{{"type":"track","event":"Document Opened","userId":{}}}"#,
            serde_json::to_string(placeholder).expect("json")
        );
        assert_eq!(
            rejected(alone.as_bytes()).reason,
            RejectReason::MissingIdentity,
            "{placeholder:?}"
        );
        let beside = format!(
            r#"{{"type":"identify","userId":{},"anonymousId":"a-1","messageId":"m-1"}}"#,
            serde_json::to_string(placeholder).expect("json")
        );
        let out = accepted(&beside);
        assert!(out["pseudonyms"].get("userId").is_none(), "{out}");
        assert!(out["pseudonyms"]["anonymousId"].is_string(), "{out}");
        let alias = format!(
            r#"{{"type":"alias","userId":"u-1","previousId":{},"messageId":"m-2"}}"#,
            serde_json::to_string(placeholder).expect("json")
        );
        assert_eq!(
            rejected(alias.as_bytes()).reason,
            RejectReason::MissingField,
            "{placeholder:?}"
        );
    }
    // Real ids that merely look alike are ids.
    for id in [
        "nullable",
        "n",
        "Noel",
        "nan-7",
        "undefined-1",
        "u",
        "(nil)",
        "[]",
        "0",
    ] {
        let message = format!(r#"{{"type":"track","event":"Document Opened","userId":"{id}"}}"#);
        let out = accepted(&message);
        assert!(out["pseudonyms"]["userId"].is_string(), "{id}: {out}");
    }
    // An integer id is pseudonymized like its digits; an unusable userId next to a usable
    // anonymousId leaves the message identified by the latter.
    let numeric = accepted(r#"{"type":"track","event":"Document Opened","userId":42}"#);
    assert!(numeric["pseudonyms"]["userId"].is_string(), "{numeric}");
    let anonymous =
        accepted(r#"{"type":"track","event":"Document Opened","userId":1.5,"anonymousId":"a-1"}"#);
    assert!(
        anonymous["pseudonyms"]["anonymousId"].is_string(),
        "{anonymous}"
    );
    assert!(
        anonymous["pseudonyms"].get("userId").is_none(),
        "{anonymous}"
    );
}

#[test]
fn message_ids_and_timestamps_are_validated() {
    let no_id = r#"{"type":"identify","userId":"u"}"#;
    assert_eq!(accepted(no_id)["messageId"], "fallback-1");
    assert_eq!(accepted(no_id)["timestamp"], META.received_at);
    let offset = r#"{"type":"identify","userId":"u","messageId":"m","timestamp":"2026-11-23T01:30:00.123456+02:00"}"#;
    assert_eq!(accepted(offset)["timestamp"], "2026-11-22T23:30:00.123Z");
    for bad_id in [r#""alice@firm.example""#, r#""has space""#, "7"] {
        let message = format!(r#"{{"type":"identify","userId":"u","messageId":{bad_id}}}"#);
        let reason = rejected(message.as_bytes()).reason;
        assert!(
            matches!(
                reason,
                RejectReason::InvalidMessageId | RejectReason::WrongType
            ),
            "{bad_id}: {reason:?}"
        );
    }
    // Only SDK ids leave as sent; any other id (it could hold a name or a user id) leaves keyed.
    let with_id = |id: &str| format!(r#"{{"type":"identify","userId":"u","messageId":"{id}"}}"#);
    let uuid = "b77555e7-7f75-d5c2-91f6-59b63a479870";
    assert_eq!(accepted(&with_id(uuid))["messageId"], uuid);
    let mut keyed_ids = Vec::new();
    for spelled in [
        "Merger_Agreement_AcmeCorp.docx",
        "10.0.0.1",
        "u-648309-1701234567890",
    ] {
        let output = accepted(&with_id(spelled));
        let keyed = output["messageId"].as_str().expect("an id").to_owned();
        assert!(keyed.starts_with("veil-") && keyed.len() == 27, "{keyed}");
        assert!(
            !output.to_string().contains(spelled),
            "{spelled} left the gateway"
        );
        assert_eq!(
            accepted(&with_id(spelled))["messageId"],
            keyed.as_str(),
            "a retry gets the same id"
        );
        keyed_ids.push(keyed);
    }
    keyed_ids.dedup();
    assert_eq!(keyed_ids.len(), 3);
    // An SDK-shaped id that repeats the message's own `userId` (in another case, or inside a
    // timed form) would store that id as sent beside its pseudonym: it leaves keyed too.
    for (user, id) in [
        (uuid, uuid.to_uppercase()),
        (uuid, format!("ajs-next-1701234567890-{uuid}")),
    ] {
        let message = format!(r#"{{"type":"identify","userId":"{user}","messageId":"{id}"}}"#);
        let output = accepted(&message);
        assert!(
            output["messageId"]
                .as_str()
                .is_some_and(|id| id.starts_with("veil-")),
            "{output}"
        );
        assert!(
            !output.to_string().to_lowercase().contains(uuid),
            "{output}"
        );
    }
    for bad_time in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00.000Z",
        "2026-11-23",
    ] {
        let message = format!(
            r#"{{"type":"identify","userId":"u","messageId":"m","timestamp":"{bad_time}"}}"#
        );
        assert_eq!(
            rejected(message.as_bytes()).reason,
            RejectReason::InvalidTimestamp,
            "{bad_time}"
        );
    }
}

#[test]
fn bad_input_gets_one_clear_rejection_without_values() {
    let cases: &[(&[u8], RejectReason)] = &[
        (b"{\"type\":\"identify\",", RejectReason::MalformedJson),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\",}",
            RejectReason::MalformedJson,
        ),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\"} trailing",
            RejectReason::MalformedJson,
        ),
        (
            b"{\"type\":\"identify\",\"userId\":\"\xff\xfe\"}",
            RejectReason::InvalidUtf8,
        ),
        (b"[1,2]", RejectReason::NotAnObject),
        (b"\"just a string\"", RejectReason::NotAnObject),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\",\"userId\":\"v\"}",
            RejectReason::DuplicateKey,
        ),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\",\"user\\u0049d\":\"v\"}",
            RejectReason::DuplicateKey,
        ),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\",\"context\":{\"ip\":1,\"ip\":2}}",
            RejectReason::DuplicateKey,
        ),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\",\"x\":{\"a\":{\"b\":1,\"b\":2}}}",
            RejectReason::DuplicateKey,
        ),
        (
            b"{\"type\":\"identify\",\"userId\":\"u\",\"big\":1e999}",
            RejectReason::MalformedJson,
        ),
        (b"{\"type\":17,\"userId\":\"u\"}", RejectReason::WrongType),
    ];
    for (message, reason) in cases {
        let rejection = rejected(message);
        assert_eq!(
            rejection.reason,
            *reason,
            "{}",
            String::from_utf8_lossy(message)
        );
        let shown = rejection.to_string();
        for value in ["\"u\"", "\"v\"", "trailing", "1e999", "just a string"] {
            assert!(!shown.contains(value), "{shown} echoes a value");
        }
    }
    let deep = format!(
        "{{\"type\":\"identify\",\"userId\":\"u\",\"x\":{}1{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    assert_eq!(rejected(deep.as_bytes()).reason, RejectReason::TooDeep);
    let deep_object = format!(
        "{{\"type\":\"identify\",\"userId\":\"u\",\"x\":{}1{}}}",
        "{\"a\":".repeat(40),
        "}".repeat(40)
    );
    assert_eq!(
        rejected(deep_object.as_bytes()).reason,
        RejectReason::TooDeep
    );
    let huge = format!(
        "{{\"type\":\"identify\",\"userId\":\"u\",\"pad\":\"{}\"}}",
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    assert_eq!(rejected(huge.as_bytes()).reason, RejectReason::TooLarge);
    let wide: String = (0..600)
        .map(|index| format!("\"k{index}\":1"))
        .collect::<Vec<_>>()
        .join(",");
    let wide = format!("{{\"type\":\"identify\",\"userId\":\"u\",\"x\":{{{wide}}}}}");
    assert_eq!(
        rejected(wide.as_bytes()).reason,
        RejectReason::TooLarge,
        "objects hold at most 512 keys"
    );
    let duplicate = rejected(b"{\"type\":\"identify\",\"userId\":\"u\",\"alice@firm.example\":1,\"alice@firm.example\":2}");
    assert_eq!(
        duplicate.field.as_deref(),
        Some("*"),
        "an e-mail used as a key is not reported"
    );
}

#[test]
fn pseudonyms_are_deterministic_and_separated_by_tenant_key() {
    let message = track(json!({}));
    let first = accepted(&message);
    let again = accepted(&message);
    assert_eq!(first["pseudonyms"], again["pseudonyms"]);
    let (other_tenant, _) = run(&tenant(Tier::Baseline, 2), &message).expect("accepted");
    for field in ["userId", "properties.document_id"] {
        assert_ne!(
            first["pseudonyms"][field], other_tenant["pseudonyms"][field],
            "{field}"
        );
    }
    // A shared cache never serves one tenant's pseudonym to another.
    let mut cache = WorkerCache::default();
    let mut outputs = Vec::new();
    for key_byte in [1, 2, 1] {
        let mut out = Vec::new();
        tenant(Tier::Baseline, key_byte)
            .filter(message.as_bytes(), &META, &mut cache, &mut out, &mut ())
            .expect("accepted");
        outputs.push(
            serde_json::from_slice::<Value>(&out).expect("json")["pseudonyms"]["userId"].clone(),
        );
    }
    assert_eq!(outputs[0], outputs[2]);
    assert_ne!(outputs[0], outputs[1]);
}

#[test]
fn composed_and_decomposed_spellings_of_an_identifier_are_one_pseudonym() {
    // `José` as one code point and as `e` + a combining acute accent: one person to count, one
    // document to follow, whichever client sent which.
    let pseudonyms_of = |user: &str, document: &str| {
        let message = track(json!({"userId": user, "properties": {"document_id": document}}));
        accepted(&message)["pseudonyms"].clone()
    };
    let composed = pseudonyms_of("Jos\u{e9}", "Akte-M\u{fc}ller");
    let decomposed = pseudonyms_of("Jose\u{301}", "Akte-Mu\u{308}ller");
    assert_eq!(composed["userId"], decomposed["userId"]);
    assert_eq!(
        composed["properties.document_id"],
        decomposed["properties.document_id"]
    );
    // The composed spelling is the one hashed; other texts stay apart.
    let key = EpochKey::new("2026-11", &[1; 32]);
    let expected = key.pseudonymize("user", "Jos\u{e9}".as_bytes());
    assert_eq!(
        composed["userId"],
        std::str::from_utf8(&expected).expect("ascii")
    );
    assert_ne!(pseudonyms_of("Jose", "x")["userId"], composed["userId"]);
    // The same message sent twice with the two spellings, through one worker's cache.
    let mut cache = WorkerCache::default();
    let filter = tenant(Tier::Baseline, 1);
    let mut seen = Vec::new();
    for user in ["Jose\u{301}", "Jos\u{e9}", "Jose\u{301}"] {
        let mut out = Vec::new();
        let message = track(json!({"userId": user}));
        filter
            .filter(message.as_bytes(), &META, &mut cache, &mut out, &mut ())
            .expect("accepted");
        seen.push(
            serde_json::from_slice::<Value>(&out).expect("json")["pseudonyms"]["userId"].clone(),
        );
    }
    assert!(
        seen.iter()
            .all(|pseudonym| *pseudonym == composed["userId"])
    );
}

/// Strings that must never leave, planted under forbidden and unknown keys at any depth.
fn planted_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{3,8}\\.[a-z]{3,8}@[a-z]{4,8}\\.example",
        "(10|172|192)\\.[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
        "SECRET-[A-Z]{6}[0-9]{4}",
    ]
}

fn forbidden_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("email".to_owned()),
        Just("userEmail".to_owned()),
        Just("e_mail".to_owned()),
        Just("name".to_owned()),
        Just("company".to_owned()),
        Just("document_name".to_owned()),
        Just("ip".to_owned()),
        Just("title".to_owned()),
        Just("query".to_owned()),
        Just("url".to_owned()),
        "[a-z]{1,10}".prop_map(|key| format!("x_{key}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No planted value and no forbidden key reaches the output, and every allowed field arrives unchanged.
    #[test]
    fn planted_data_never_leaves_and_allowed_fields_arrive(
        feature in "[a-z_]{1,20}",
        duration in 0i64..10_000_000,
        success in any::<bool>(),
        version in "[0-9]{1,2}\\.[0-9]{1,2}",
        user in "[a-z0-9-]{1,24}",
        plants in proptest::collection::vec((prop_oneof![Just("properties"), Just("context"), Just("context.app"), Just(""), Just("traits")], forbidden_key(), planted_secret()), 1..8),
        message_id in prop_oneof![
            Just("m-1".to_owned()),
            "[a-z]{2,3}-[0-9]{5,12}",
            "(10|172|192)\\.[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
            "SECRET-[A-Z]{6}[0-9]{4}",
            "[A-Z][a-z]{2,8}_[A-Z][a-z]{2,8}\\.docx",
        ],
    ) {
        let mut message = json!({
            "type": "track", "event": "Document Opened", "userId": user, "messageId": message_id,
            "properties": {"feature": feature, "duration_ms": duration, "success": success},
            "context": {"app": {"version": version}}
        });
        let mut secrets = Vec::new();
        for (place, key, secret) in &plants {
            let target = match *place {
                "" => message.as_object_mut(),
                "context.app" => message["context"]["app"].as_object_mut(),
                "traits" => {
                    message.as_object_mut().map(|root| root.entry("traits").or_insert_with(|| json!({})));
                    message["traits"].as_object_mut()
                }
                other => message[other].as_object_mut(),
            };
            if let Some(object) = target {
                // Keep clear of allowlisted paths: a plain string planted there would rightly leave.
                let allowlisted = key == "name" && (*place == "context.app" || place.is_empty());
                if !allowlisted && !object.contains_key(key.as_str()) && !["type", "event", "userId", "messageId"].contains(&key.as_str()) {
                    let planted = if secrets.len() % 2 == 0 { json!(secret) } else { json!({"deep": [secret, {"k": secret}]}) };
                    object.insert(key.clone(), planted);
                    secrets.push(secret.clone());
                }
            }
        }
        let (out, _) = run(&tenant(Tier::Baseline, 3), &message.to_string()).expect("accepted");
        if message_id != "m-1" {
            // An id that is not an SDK's leaves keyed, never as sent.
            prop_assert!(out["messageId"].as_str().is_some_and(|id| id.starts_with("veil-")));
            secrets.push(message_id.clone());
        }
        let text = out.to_string();
        for secret in &secrets {
            prop_assert!(!text.contains(secret.as_str()), "planted value leaked");
        }
        for (_, key, _) in &plants {
            let fields = out["fields"].as_object().expect("fields");
            prop_assert!(fields.keys().all(|path| !path.ends_with(&format!(".{key}"))), "forbidden key leaked");
        }
        prop_assert_eq!(&out["fields"]["properties.feature"], &json!(feature));
        prop_assert_eq!(&out["fields"]["properties.duration_ms"], &json!(duration));
        prop_assert_eq!(&out["fields"]["properties.success"], &json!(success));
        prop_assert_eq!(&out["fields"]["context.app.version"], &json!(version));
        prop_assert!(out["pseudonyms"]["userId"].as_str().is_some_and(|p| p.len() == 22));
        // A user id that happens to equal the (kept) feature name shows up as that field only.
        let in_clear = |value: &serde_json::Value| value.as_str() == Some(user.as_str());
        let fields = out["fields"].as_object().expect("fields");
        prop_assert!(fields.iter().all(|(path, value)| path == "properties.feature" || !in_clear(value)), "identifier left in clear");
        prop_assert!(!out["pseudonyms"].as_object().expect("pseudonyms").values().any(in_clear), "identifier left in clear");
        prop_assert!(user == feature || !text.contains(&format!("\"{user}\"")), "identifier left in clear");
    }

    /// Arbitrary bytes never panic and either fail cleanly or give a contract-valid message.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        let result = tenant(Tier::Baseline, 1).filter(&bytes, &META, &mut WorkerCache::default(), &mut out, &mut ());
        if result.is_ok() {
            prop_assert!(serde_json::from_slice::<veil_sanitized::SanitizedMessage>(&out).is_ok());
        } else {
            prop_assert!(out.is_empty());
        }
    }

    /// Mutated real messages (bytes flipped, cut, duplicated) never panic or leak.
    #[test]
    fn mutated_messages_never_panic_or_leak(cut in 0usize..600, flip in 0usize..600, byte in any::<u8>()) {
        let message = track(json!({}));
        let mut bytes = message.into_bytes();
        let flip_at = flip % bytes.len();
        bytes[flip_at] = byte;
        bytes.truncate(bytes.len() - cut.min(bytes.len()));
        let mut out = Vec::new();
        if tenant(Tier::Baseline, 1).filter(&bytes, &META, &mut WorkerCache::default(), &mut out, &mut ()).is_ok() {
            let text = String::from_utf8(out).expect("utf8");
            prop_assert!(!text.contains("alice@firm.example") && !text.contains("Merger") && !text.contains("10.1.2.3"));
        }
    }
}

fn run_with(meta: &MessageMeta<'_>, message: &Value) -> (Value, Accepted) {
    let mut out = Vec::new();
    let accepted = tenant(Tier::Baseline, 1)
        .filter(
            message.to_string().as_bytes(),
            meta,
            &mut WorkerCache::default(),
            &mut out,
            &mut (),
        )
        .expect("accepted");
    (serde_json::from_slice(&out).expect("JSON"), accepted)
}

#[test]
fn clock_skew_is_corrected_from_sent_at_as_segment_does() {
    // The client's clock is 5 minutes fast: it says it sent at 10:05 what it stamped 10:04.
    let message = json!({"type": "track", "event": "Document Opened", "userId": "u-1",
        "timestamp": "2026-11-23T10:04:00.000Z", "sentAt": "2026-11-23T10:05:00.000Z"});
    let (value, _) = run_with(&META, &message);
    assert_eq!(value["timestamp"], "2026-11-23T09:59:00.000Z");
    assert_eq!(value["receivedAt"], "2026-11-23T10:00:00.000Z");

    // A batch's sentAt applies to items that carry none; an item's own wins.
    let mut item = message.clone();
    item.as_object_mut().expect("object").remove("sentAt");
    let batch_meta = MessageMeta {
        sent_at: Some("2026-11-23T10:04:30+00:30"),
        ..META
    };
    let (value, _) = run_with(&batch_meta, &item);
    assert_eq!(value["timestamp"], "2026-11-23T10:29:30.000Z");
    let (value, _) = run_with(&batch_meta, &message);
    assert_eq!(value["timestamp"], "2026-11-23T09:59:00.000Z");

    // No sentAt: the timestamp stands; no timestamp: the receive time.
    let (value, _) = run_with(&META, &item);
    assert_eq!(value["timestamp"], "2026-11-23T10:04:00.000Z");
    let mut bad = message.clone();
    bad["sentAt"] = json!("yesterday");
    let rejection = rejected(bad.to_string().as_bytes());
    assert_eq!(rejection.reason, RejectReason::InvalidTimestamp);
    assert_eq!(rejection.field.as_deref(), Some("sentAt"));

    // A sentAt far enough ahead moves the corrected time before year 1: refused, not written
    // with its sign lost (as year 5946, a partition retention never reaches).
    for (timestamp, sent_at) in [
        ("2026-11-23T00:00:00Z", "9999-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00Z", "4100-01-01T00:00:00Z"),
    ] {
        let mut far = message.clone();
        far["timestamp"] = json!(timestamp);
        far["sentAt"] = json!(sent_at);
        let rejection = rejected(far.to_string().as_bytes());
        assert_eq!(rejection.reason, RejectReason::InvalidTimestamp);
        assert_eq!(rejection.field.as_deref(), Some("sentAt"));
    }
    // Year 1 itself is still a time the format can write.
    let mut early = message.clone();
    early["timestamp"] = json!("0001-01-02T10:04:00Z");
    early["sentAt"] = json!("2026-11-23T10:00:00Z");
    let (value, _) = run_with(&META, &early);
    assert_eq!(value["timestamp"], "0001-01-02T10:04:00.000Z");
}

#[test]
fn a_timestamp_over_an_hour_after_arrival_is_replaced_by_the_receive_time() {
    let message = |timestamp: &str| track(json!({"timestamp": timestamp}));
    let timestamp_drops = |drops: &DropCounts| {
        drops
            .by_field(&policy())
            .get(&("timestamp".to_owned(), DropReason::FutureTimestamp))
            .copied()
    };
    // Within the hour (a clock a little fast) and in the past: kept as sent.
    for kept in [
        "2026-11-23T10:59:59.999Z",
        "2026-11-23T10:00:00.000Z",
        "1999-01-01T00:00:00.000Z",
    ] {
        let (value, drops) = run(&tenant(Tier::Baseline, 1), &message(kept)).expect("accepted");
        assert_eq!(value["timestamp"], kept);
        assert_eq!(timestamp_drops(&drops), None);
    }
    // Further ahead, canonical or not: the receive time, and the replacement counted.
    for ahead in [
        "2026-11-23T11:00:00.001Z",
        "2026-11-24T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "2026-11-23T12:30:00+01:00",
        "2026-11-23T23:00:00.5Z",
    ] {
        let (value, drops) = run(&tenant(Tier::Baseline, 1), &message(ahead)).expect("accepted");
        assert_eq!(value["timestamp"], META.received_at, "{ahead}");
        assert_eq!(timestamp_drops(&drops), Some(1), "{ahead}");
    }
    // Skew correction first: a client clock a day fast that says so in `sentAt` is corrected.
    let (value, _) = run_with(
        &META,
        &json!({"type": "track", "event": "Document Opened", "userId": "u-1",
                "timestamp": "2026-11-24T09:58:00.000Z", "sentAt": "2026-11-24T10:00:00.000Z"}),
    );
    assert_eq!(value["timestamp"], "2026-11-23T09:58:00.000Z");
    // A `sentAt` that puts the corrected time over an hour ahead: the receive time.
    let (value, _) = run_with(
        &META,
        &json!({"type": "track", "event": "Document Opened", "userId": "u-1",
                "timestamp": "2026-11-23T12:00:00.000Z", "sentAt": "2026-11-23T09:00:00.000Z"}),
    );
    assert_eq!(value["timestamp"], META.received_at);
}

#[test]
fn routing_key_is_the_user_pseudonym_else_the_anonymous_one() {
    let (value, accepted) = run_with(
        &META,
        &json!({"type": "identify", "userId": "u-1", "anonymousId": "a-1"}),
    );
    let routing = accepted.routing_key.expect("a routing key");
    assert_eq!(
        value["pseudonyms"]["userId"],
        std::str::from_utf8(&routing).expect("ascii")
    );
    let (value, accepted) = run_with(&META, &json!({"type": "identify", "anonymousId": "a-1"}));
    let routing = accepted.routing_key.expect("a routing key");
    assert_eq!(
        value["pseudonyms"]["anonymousId"],
        std::str::from_utf8(&routing).expect("ascii")
    );
}

#[test]
fn rejections_name_the_event_only_when_it_reads_like_one_and_is_known() {
    // A Segment spec name the allowlist leaves out is reported; the client's own words are not,
    // since they could name a matter or a person.
    let rejection = rejected(br#"{"type":"track","event":"Application Installed","userId":"u"}"#);
    assert_eq!(rejection.reason, RejectReason::EventNotAllowlisted);
    assert_eq!(rejection.event.as_deref(), Some("Application Installed"));
    for event in [
        "Exported Matter",
        "Opened Acme Merger Agreement Kofi Mensah",
        "Opened alice@firm.example",
        "Call 5551234567",
        "Opened 10.1.2.3",
        &"x".repeat(65),
    ] {
        let message = json!({"type": "track", "event": event, "userId": "u"}).to_string();
        let rejection = rejected(message.as_bytes());
        assert_eq!(rejection.event, None, "{event} is not reported");
    }
}

#[test]
fn transport_metadata_is_neither_kept_nor_counted_as_dropped() {
    // `@segment/analytics-node` adds `_metadata` to every message.
    let message = r#"{"type":"identify","userId":"u","messageId":"m","_metadata":{"nodeVersion":"20.11.0","jsRuntime":"node"},"traits":{"email":"a@b.co"}}"#;
    let filter = tenant(Tier::Baseline, 1);
    let (out, drops) = run(&filter, message).expect("accepted");
    assert!(!out.to_string().contains("nodeVersion"));
    let dropped = drops.by_sent_field(filter.policy());
    assert!(
        dropped
            .keys()
            .all(|(field, _)| !field.starts_with("_metadata")),
        "{dropped:?}"
    );
    assert!(
        dropped.keys().any(|(field, _)| field == "traits"),
        "{dropped:?}"
    );
}
