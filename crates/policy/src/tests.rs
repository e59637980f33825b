use std::path::Path;

use veil_sanitized::{MessageKind, Tier};

use super::*;

const HEAD: &str =
    "version: 1\ncommon:\n  userId: { pseudonymize: user, reason: \"active users\" }\n";

fn with_track_field(path: &str) -> String {
    format!(
        "{HEAD}track:\n  fields:\n    {path}: {{ keep: string, reason: \"test\" }}\n  events:\n    Opened: {{ reason: \"usage\" }}\n"
    )
}

/// An allowlist with one track field at `path` declared as `entry` (on line 6), and one event.
fn one_track_field(path: &str, entry: &str) -> String {
    format!(
        "{HEAD}track:\n  fields:\n    {path}: {{ {entry}, reason: \"x\" }}\n  events:\n    A: {{ reason: \"x\" }}\n"
    )
}

fn refused(text: &str) -> AllowlistError {
    Allowlist::parse(text).expect_err("refused")
}

#[test]
fn the_repository_allowlist_is_valid_and_minimal() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../allowlist.yaml");
    let allowlist = Allowlist::load(&path).expect("allowlist.yaml is valid");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(allowlist.digest, digest_of(&bytes));
    assert_eq!(allowlist.kinds.len(), 6);
    let kept: Vec<&str> = allowlist
        .fields
        .iter()
        .filter(|rule| matches!(rule.action, FieldAction::Keep(..)))
        .map(|rule| rule.path.as_str())
        .collect();
    for path in &kept {
        let allowed = path.starts_with("context.app.")
            || path.starts_with("context.os.")
            || path.starts_with("context.library.")
            || [
                "context.locale",
                "context.timezone",
                "properties.feature",
                "properties.duration_ms",
                "properties.success",
                "properties.result_count",
                "properties.filters_used",
            ]
            .contains(path);
        assert!(allowed, "{path} is more than the default policy promises");
    }
    let pseudonymized: Vec<&str> = allowlist
        .fields
        .iter()
        .filter(|rule| matches!(rule.action, FieldAction::Pseudonymize { .. }))
        .map(|rule| rule.path.as_str())
        .collect();
    for path in [
        "userId",
        "anonymousId",
        "context.device.id",
        "properties.document_id",
        "properties.workspace_id",
        "context.groupId",
        "groupId",
    ] {
        assert!(
            pseudonymized.contains(&path),
            "{path} should be pseudonymized"
        );
    }
    assert!(
        allowlist
            .fields
            .iter()
            .all(|rule| rule.tier == Tier::Baseline)
    );
}

#[test]
fn every_forbidden_class_is_refused_with_field_class_and_line() {
    let cases = [
        ("traits.email", ForbiddenClass::EmailAddress),
        ("properties.userEmail", ForbiddenClass::EmailAddress),
        ("properties.e_mail", ForbiddenClass::EmailAddress),
        ("context.traits.company.name", ForbiddenClass::CompanyName),
        ("traits.company", ForbiddenClass::CompanyName),
        ("traits.firstName", ForbiddenClass::UserName),
        ("context.traits.name", ForbiddenClass::UserName),
        ("properties.document_name", ForbiddenClass::DocumentName),
        ("properties.folder_name", ForbiddenClass::DocumentName),
        ("properties.matter.name", ForbiddenClass::DocumentName),
        ("properties.title", ForbiddenClass::DocumentName),
        ("properties.url", ForbiddenClass::DocumentName),
        ("context.ip", ForbiddenClass::IpAddress),
        ("properties.query", ForbiddenClass::SearchQuery),
    ];
    for (path, class) in cases {
        match refused(&with_track_field(path)) {
            AllowlistError::Forbidden {
                line,
                path: named,
                class: found,
            } => {
                assert_eq!((line, named.as_str(), found), (6, path, class), "{path}");
            }
            other => panic!("{path}: {other}"),
        }
        let message = refused(&with_track_field(path)).to_string();
        assert!(
            message.contains(path)
                && message.contains(class.as_str())
                && message.contains("line 6"),
            "{message}"
        );
    }
    // Pseudonymizing does not make a forbidden field acceptable either.
    let text = format!(
        "{HEAD}identify:\n  fields:\n    traits.email: {{ pseudonymize: user, reason: \"x\" }}\n"
    );
    assert!(matches!(
        refused(&text),
        AllowlistError::Forbidden { line: 6, .. }
    ));
    // Group traits describe the organization: its name is a company name.
    let text =
        format!("{HEAD}group:\n  fields:\n    traits.name: {{ keep: string, reason: \"x\" }}\n");
    assert!(matches!(
        refused(&text),
        AllowlistError::Forbidden {
            class: ForbiddenClass::CompanyName,
            ..
        }
    ));
}

#[test]
fn incomplete_or_ambiguous_entries_are_refused() {
    let no_reason = format!("{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: string }}\n");
    assert!(
        refused(&no_reason)
            .to_string()
            .contains("line 6: field `traits.plan` has no `reason`")
    );
    let blank_reason = format!(
        "{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: string, reason: \"  \" }}\n"
    );
    assert!(refused(&blank_reason).to_string().contains("no `reason`"));
    let event_without_reason = format!("{HEAD}track:\n  events:\n    Opened: {{}}\n");
    assert!(
        refused(&event_without_reason)
            .to_string()
            .contains("event `Opened` has no `reason`")
    );
    let both = format!(
        "{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: string, pseudonymize: user, reason: \"x\" }}\n"
    );
    assert!(refused(&both).to_string().contains("exactly one of"));
    let bad_type =
        format!("{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: text, reason: \"x\" }}\n");
    assert!(
        refused(&bad_type)
            .to_string()
            .contains("string, integer, number or boolean")
    );
    let structural =
        format!("{HEAD}identify:\n  fields:\n    messageId: {{ keep: string, reason: \"x\" }}\n");
    assert!(refused(&structural).to_string().contains("handled by Veil"));
    let conflict =
        format!("{HEAD}identify:\n  fields:\n    userId: {{ keep: string, reason: \"x\" }}\n");
    assert!(refused(&conflict).to_string().contains("another action"));
    let nested = format!(
        "{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: string, reason: \"x\" }}\n    traits.plan.tier: {{ keep: string, reason: \"x\" }}\n"
    );
    assert!(
        refused(&nested)
            .to_string()
            .contains("only values are kept")
    );
    assert!(matches!(
        refused(&format!("{HEAD}unknown: 1\n")),
        AllowlistError::Syntax(_)
    ));
    assert!(matches!(
        refused(&format!(
            "{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: string, reason: \"x\", extra: 1 }}\n"
        )),
        AllowlistError::Syntax(_)
    ));
    let duplicate = format!(
        "{HEAD}identify:\n  fields:\n    traits.plan: {{ keep: string, reason: \"x\" }}\n    traits.plan: {{ keep: string, reason: \"y\" }}\n"
    );
    assert!(
        matches!(refused(&duplicate), AllowlistError::Syntax(_)),
        "duplicate keys are refused"
    );
    assert!(
        refused("version: 2\n")
            .to_string()
            .contains("only version 1")
    );
}

#[test]
fn ranges_are_read_checked_and_compiled_for_numbers_only() {
    let field = |entry: &str| one_track_field("properties.count", entry);
    let allowlist = Allowlist::parse(&field("keep: integer, min: -3, max: 500")).expect("valid");
    let rule = &allowlist.fields[1];
    let bounds = Bounds {
        min: Some(-3),
        max: Some(500),
    };
    assert_eq!(
        rule.action,
        FieldAction::Keep(Kept {
            value_type: ValueType::Integer,
            bounds,
            values: Values::ANY,
            format: None,
        })
    );
    assert_eq!(rule.action.describe(), "keep integer from -3 to 500");
    assert!(bounds.contains_integer(-3) && bounds.contains_integer(500));
    assert!(!bounds.contains_integer(-4) && !bounds.contains_integer(501));
    assert!(bounds.contains_number(499.5) && !bounds.contains_number(500.5));
    let open_above = Allowlist::parse(&field("keep: number, min: 0")).expect("valid");
    assert_eq!(open_above.fields[1].action.describe(), "keep number from 0");

    for (entry, message) in [
        (
            "keep: string, max: 5",
            "apply to kept integer and number fields",
        ),
        (
            "keep: boolean, min: 0",
            "apply to kept integer and number fields",
        ),
        (
            "pseudonymize: user, max: 5",
            "apply to kept integer and number fields",
        ),
        (
            "keep: integer, min: 6, max: 5",
            "`min` is greater than `max`",
        ),
    ] {
        let error = refused(&field(entry)).to_string();
        assert!(
            error.contains("line 6")
                && error.contains("properties.count")
                && error.contains(message),
            "{entry}: {error}"
        );
    }
    assert!(matches!(
        refused(&field("keep: integer, max: 1.5")),
        AllowlistError::Syntax(_)
    ));
    // One path, two ranges in two scopes: conflicting declarations.
    let conflicting = format!(
        "{HEAD}track:\n  fields:\n    properties.count: {{ keep: integer, max: 5, reason: \"x\" }}\n  events:\n    A:\n      reason: \"x\"\n      fields:\n        properties.count: {{ keep: integer, max: 9, reason: \"x\" }}\n"
    );
    assert!(refused(&conflicting).to_string().contains("another action"));
}

#[test]
fn formats_are_read_checked_and_applied_to_strings_only() {
    let field = |entry: &str| one_track_field("properties.view", entry);
    let allowlist = Allowlist::parse(&field("keep: string, format: version")).expect("valid");
    let FieldAction::Keep(kept) = &allowlist.fields[1].action else {
        panic!("kept");
    };
    assert_eq!(kept.describe(), "keep string in format version");
    assert!(kept.admits_text("4.3.1") && !kept.admits_text("Acme_Merger.docx"));
    for (entry, message) in [
        (
            "keep: integer, format: version",
            "applies to kept string fields",
        ),
        (
            "pseudonymize: user, format: locale",
            "applies to kept string fields",
        ),
        (
            "keep: string, format: regex",
            "must be version, locale or timezone",
        ),
        ("keep: string, format: locale, values: [en]", "not both"),
    ] {
        let error = refused(&field(entry)).to_string();
        assert!(
            error.contains("line 6")
                && error.contains("properties.view")
                && error.contains(message),
            "{entry}: {error}"
        );
    }
    // A format is narrower than free text, a list of versions narrower than the version format.
    let free = Allowlist::parse(&field("keep: string")).expect("valid");
    let listed =
        Allowlist::parse(&field("keep: string, values: [\"1.0\", \"2.0\"]")).expect("valid");
    let keep = |allowlist: &Allowlist| match &allowlist.fields[1].action {
        FieldAction::Keep(kept) => kept.clone(),
        FieldAction::Pseudonymize { .. } => panic!("kept"),
    };
    assert!(keep(&allowlist).within(&keep(&free)) && !keep(&free).within(&keep(&allowlist)));
    assert!(keep(&listed).within(&keep(&allowlist)));
}

#[test]
fn value_lists_are_read_checked_and_compiled_for_strings_only() {
    let field = |entry: &str| one_track_field("properties.view", entry);
    let allowlist =
        Allowlist::parse(&field("keep: string, values: [list, \"grid view\"]")).expect("valid");
    let FieldAction::Keep(kept) = &allowlist.fields[1].action else {
        panic!("kept");
    };
    assert_eq!(
        kept.describe(),
        "keep string one of [\"grid view\", \"list\"]"
    );
    assert!(kept.values.admits("list") && kept.values.admits("grid view"));
    assert!(!kept.values.admits("List") && !kept.values.admits("grid") && !kept.values.admits(""));
    assert!(Values::ANY.admits("anything"));

    for (entry, message) in [
        (
            "keep: integer, values: [a]",
            "applies to kept string fields",
        ),
        (
            "pseudonymize: user, values: [a]",
            "applies to kept string fields",
        ),
        ("keep: string, values: []", "`values` is empty"),
        ("keep: string, values: [a, b, a]", "listed twice"),
        ("keep: string, values: [\"\"]", "empty or longer than"),
    ] {
        let error = refused(&field(entry)).to_string();
        assert!(
            error.contains("line 6")
                && error.contains("properties.view")
                && error.contains(message),
            "{entry}: {error}"
        );
    }
    assert!(matches!(
        refused(&field("keep: string, values: list")),
        AllowlistError::Syntax(_)
    ));

    // More values, or none listed any more, let out more; fewer do not.
    let listed = |entry: &str| Allowlist::parse(&field(entry)).expect("valid");
    let (two, three, any) = (
        listed("keep: string, values: [a, b]"),
        listed("keep: string, values: [b, a, c]"),
        listed("keep: string"),
    );
    assert_eq!(widenings(&two, &three).len(), 1);
    assert_eq!(widenings(&three, &any).len(), 1);
    assert!(widenings(&three, &two).is_empty() && widenings(&any, &two).is_empty());
    assert!(widenings(&two, &listed("keep: string, values: [b, a]")).is_empty());
}

#[test]
fn the_compiled_policy_answers_per_rule_and_tier() {
    let text = format!(
        "{HEAD}track:\n  fields:\n    properties.feature: {{ keep: string, reason: \"x\" }}\n  events:\n    A: {{ reason: \"x\" }}\n    B:\n      reason: \"x\"\n      fields:\n        properties.count: {{ keep: integer, tier: enhanced, reason: \"x\" }}\nidentify: {{}}\n"
    );
    let policy = Allowlist::parse(&text).expect("valid").compile();
    let (rule_a, _) = policy.event_rule("A").expect("A");
    let (rule_b, _) = policy.event_rule("B").expect("B");
    let properties = policy
        .child(policy.root(), "properties")
        .expect("properties");
    let count = policy
        .leaf_at(policy.child(properties, "count").expect("count"))
        .expect("leaf");
    let feature = policy
        .leaf_at(policy.child(properties, "feature").expect("feature"))
        .expect("leaf");
    assert_eq!(
        policy.permission(count, rule_b, Tier::Enhanced),
        Permission::Allowed
    );
    assert_eq!(
        policy.permission(count, rule_b, Tier::Baseline),
        Permission::EnhancedOnly
    );
    assert_eq!(
        policy.permission(count, rule_a, Tier::Enhanced),
        Permission::NotAllowlisted
    );
    assert_eq!(
        policy.permission(feature, rule_a, Tier::Baseline),
        Permission::Allowed
    );
    let identify = policy.kind_rule(MessageKind::Identify).expect("identify");
    assert_eq!(
        policy.permission(feature, identify, Tier::Baseline),
        Permission::NotAllowlisted
    );
    assert!(
        policy.kind_rule(MessageKind::Group).is_none(),
        "group is not accepted"
    );
}

#[test]
fn rules_past_the_first_64_answer_like_the_first() {
    // 130 events: rules beyond the inline word of a rule set, each with its own field.
    let mut text = format!("{HEAD}track:\n  events:\n");
    for event in 0..130 {
        text.push_str(&format!(
            "    E{event}:\n      reason: \"x\"\n      fields:\n        properties.f{event}: {{ keep: integer, reason: \"x\" }}\n"
        ));
    }
    let policy = Allowlist::parse(&text).expect("valid").compile();
    let properties = policy
        .child(policy.root(), "properties")
        .expect("properties");
    let leaf = |event: usize| {
        let node = policy
            .child(properties, &format!("f{event}"))
            .expect("field");
        policy.leaf_at(node).expect("leaf")
    };
    for event in [0, 63, 64, 65, 127, 128, 129] {
        let (rule, _) = policy.event_rule(&format!("E{event}")).expect("event");
        assert_eq!(
            policy.permission(leaf(event), rule, Tier::Baseline),
            Permission::Allowed,
            "E{event}"
        );
        for other in [0, 64, 129] {
            if other != event {
                assert_eq!(
                    policy.permission(leaf(other), rule, Tier::Enhanced),
                    Permission::NotAllowlisted,
                    "f{other} under E{event}"
                );
            }
        }
    }
}

#[test]
fn diff_lists_exactly_what_is_newly_let_out() {
    let old = Allowlist::parse(&format!(
        "{HEAD}track:\n  fields:\n    properties.feature: {{ keep: string, reason: \"x\" }}\n    properties.doc_id: {{ pseudonymize: document, reason: \"x\" }}\n    properties.count: {{ keep: integer, tier: enhanced, reason: \"x\" }}\n  events:\n    A: {{ reason: \"x\" }}\n"
    ))
    .expect("old");
    let new = Allowlist::parse(&format!(
        "{HEAD}track:\n  fields:\n    properties.feature: {{ keep: string, reason: \"reworded\" }}\n    properties.doc_id: {{ keep: string, reason: \"x\" }}\n    properties.count: {{ keep: integer, reason: \"x\" }}\n  events:\n    A: {{ reason: \"x\" }}\n    B: {{ reason: \"x\" }}\nidentify: {{}}\n"
    ))
    .expect("new");
    let lines: Vec<String> = widenings(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(lines.contains(&"+ track \"A\": properties.doc_id (keep string for all tenants), was (pseudonymize document for all tenants)".to_owned()), "{lines:#?}");
    assert!(lines.contains(&"+ track \"A\": properties.count (keep integer for all tenants), was (keep integer for enhanced tenants)".to_owned()), "{lines:#?}");
    assert!(
        lines.contains(&"+ track \"B\" (accepted for all tenants)".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"+ identify (accepted for all tenants)".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .all(|line| !line.contains("properties.feature") || line.contains("\"B\"")),
        "a reworded reason is not a widening: {lines:#?}"
    );
    // Back from `new` to `old`: doc_id goes from kept to pseudonymized (less), count from all
    // tenants to enhanced ones (less), events and types go away (less): nothing is let out.
    assert!(
        widenings(&new, &old).is_empty(),
        "narrowing back lets out nothing new: {:#?}",
        widenings(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert!(widenings(&old, &old).is_empty());

    // A range removed or widened lets out more; one narrowed or added does not.
    let ranged = |range: &str| {
        Allowlist::parse(&one_track_field(
            "properties.count",
            &format!("keep: integer{range}"),
        ))
        .expect("valid")
    };
    let (narrow, wide, open) = (
        ranged(", min: 0, max: 10"),
        ranged(", min: 0, max: 100"),
        ranged(""),
    );
    let lines: Vec<String> = widenings(&narrow, &wide)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "+ track \"A\": properties.count (keep integer from 0 to 100 for all tenants), was (keep integer from 0 to 10 for all tenants)"
        ]
    );
    assert_eq!(widenings(&wide, &open).len(), 1, "a range removed");
    assert!(widenings(&wide, &narrow).is_empty(), "a range narrowed");
    assert!(widenings(&open, &narrow).is_empty(), "a range added");
}

#[test]
fn exported_keys_and_events_are_shown_only_when_made_of_known_words() {
    let policy = Allowlist::parse(&format!(
        "{}    Tier Changed: {{ reason: \"plans\", tier: enhanced }}\n",
        with_track_field("properties.seat_count")
    ))
    .expect("valid")
    .compile();
    let exported = |key: &str| {
        let mut path = "properties".to_owned();
        policy.push_exported_key(&mut path, key);
        path
    };
    // Spec keys, words of the allowlist's own keys, of the forbidden classes and generic ones.
    for key in [
        "email",
        "userEmail",
        "document_name",
        "seat_type",
        "seatCount",
        "context",
        "address2",
        "fullName",
    ] {
        assert_eq!(exported(key), format!("properties.{key}"), "{key}");
    }
    // Anything else could be a person, a firm or a document, even shaped like an identifier.
    for key in [
        "kofi_mensah",
        "kofi_mensah_zqmK1",
        "merger_agreement_document",
        "acmeCorp",
        "user_1985",
        "jane@example.com",
        "",
    ] {
        assert_eq!(exported(key), "properties.*", "{key}");
    }
    // Event names: those the allowlist or the Segment spec names, not the client's others.
    assert!(policy.is_known_event("Opened"));
    assert!(policy.is_known_event("Tier Changed"));
    assert!(policy.is_known_event("Application Installed"));
    assert!(!policy.is_known_event("Opened Acme Merger Agreement Kofi Mensah"));
    assert!(!policy.is_known_event("opened"));
}

#[test]
fn text_the_loader_would_read_only_in_part_is_refused() {
    let valid = "version: 1\ncommon:\n  userId: { pseudonymize: user, reason: \"r\" }\n";
    Allowlist::parse(valid).expect("valid");
    Allowlist::parse(&format!("---\n{valid}")).expect("a leading document marker is fine");
    for (text, message) in [
        (
            format!("{valid}\0\n  traits.email: {{ keep: string, reason: \"r\" }}\n"),
            "NUL byte",
        ),
        (
            format!("{valid}---\ncommon:\n  traits.email: {{ keep: string, reason: \"r\" }}\n"),
            "more than one YAML document",
        ),
        (
            format!("{valid}...\nnot: [valid\n"),
            "more than one YAML document",
        ),
        (format!("{}{valid}", "\u{feff}"), "byte-order mark"),
    ] {
        let error = refused(&text).to_string();
        assert!(error.contains(message), "{error}");
    }
}
