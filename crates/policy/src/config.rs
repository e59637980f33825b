//! `allowlist.yaml` as written by people: the file format and its loader.
//!
//! The loader refuses anything a compliance reviewer could misread: unknown keys, duplicate keys,
//! an entry without a reason, a field of a forbidden class, a path declared twice with different
//! meanings. Every refusal names the field and the line.

use std::collections::HashMap;

use indexmap::IndexMap;
use marked_yaml::{LoaderOptions, Spanned};
use serde::Deserialize;
use veil_sanitized::{MessageKind, Tier};

use super::forbidden::classify;
use super::{
    Allowlist, AllowlistError, Bounds, FieldAction, FieldRule, Kept, NameRule, Scope, TextFormat,
    ValueType, Values,
};

type FieldMap = IndexMap<Spanned<String>, RawField>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<u32>,
    #[serde(default)]
    common: FieldMap,
    track: Option<RawKind>,
    identify: Option<RawKind>,
    page: Option<RawKind>,
    screen: Option<RawKind>,
    group: Option<RawKind>,
    alias: Option<RawKind>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKind {
    #[serde(default)]
    fields: FieldMap,
    #[serde(default)]
    events: IndexMap<Spanned<String>, RawNamed>,
    #[serde(default)]
    names: IndexMap<Spanned<String>, RawNamed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamed {
    reason: Option<Spanned<String>>,
    tier: Option<Spanned<String>>,
    #[serde(default)]
    fields: FieldMap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    keep: Option<Spanned<String>>,
    min: Option<Spanned<i64>>,
    max: Option<Spanned<i64>>,
    values: Option<Vec<Spanned<String>>>,
    format: Option<Spanned<String>>,
    pseudonymize: Option<Spanned<String>>,
    tier: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
}

/// Top-level message keys the filter handles itself; an allowlist cannot name them as fields.
pub const STRUCTURAL_KEYS: &[&str] = &[
    "type",
    "event",
    "name",
    "messageId",
    "timestamp",
    "sentAt",
    "receivedAt",
    "originalTimestamp",
    "writeKey",
    "integrations",
    // Transport metadata some SDKs add (`@segment/analytics-node`: its runtime's name and
    // version): not the client's data, so it is neither kept nor counted as dropped.
    "_metadata",
];

fn line_of<T>(spanned: &Spanned<T>) -> usize {
    spanned.span().start().map_or(0, |marker| marker.line())
}

fn error(line: usize, message: impl Into<String>) -> AllowlistError {
    AllowlistError::Invalid {
        line,
        message: message.into(),
    }
}

fn parse_tier(tier: Option<&Spanned<String>>) -> Result<Tier, AllowlistError> {
    match tier {
        None => Ok(Tier::Baseline),
        Some(text) => text
            .parse::<Tier>()
            .map_err(|reason| error(line_of(text), format!("field `tier`: {reason}"))),
    }
}

fn parse_reason(
    what: &str,
    line: usize,
    reason: Option<&Spanned<String>>,
) -> Result<String, AllowlistError> {
    match reason {
        Some(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        _ => Err(error(
            line,
            format!("{what} has no `reason`: every entry must say why it is collected"),
        )),
    }
}

fn parse_action(path: &str, line: usize, raw: &RawField) -> Result<FieldAction, AllowlistError> {
    match (&raw.keep, &raw.pseudonymize) {
        (Some(kind), None) => {
            let value_type = ValueType::from_name(kind).ok_or_else(|| {
                error(
                    line_of(kind),
                    format!("field `{path}`: `keep` must be string, integer, number or boolean"),
                )
            })?;
            Ok(FieldAction::Keep(Kept {
                value_type,
                bounds: parse_bounds(path, line, Some(value_type), raw)?,
                values: parse_values(path, line, Some(value_type), raw)?,
                format: parse_format(path, Some(value_type), raw)?,
            }))
        }
        (None, Some(domain)) => {
            // A pseudonymized field takes neither a range nor a list.
            parse_bounds(path, line, None, raw)?;
            parse_values(path, line, None, raw)?;
            parse_format(path, None, raw)?;
            let valid = !domain.is_empty()
                && domain.len() <= 32
                && domain
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_');
            if !valid {
                return Err(error(
                    line_of(domain),
                    format!(
                        "field `{path}`: `pseudonymize` names an identifier domain of a-z and _ (user, document, ...)"
                    ),
                ));
            }
            Ok(FieldAction::Pseudonymize {
                domain: domain.to_string(),
            })
        }
        _ => Err(error(
            line,
            format!("field `{path}`: give exactly one of `keep` or `pseudonymize`"),
        )),
    }
}

/// A kept field's `min` and `max` (`value_type` is `None` for a pseudonymized field).
fn parse_bounds(
    path: &str,
    line: usize,
    value_type: Option<ValueType>,
    raw: &RawField,
) -> Result<Bounds, AllowlistError> {
    let bounds = Bounds {
        min: raw.min.as_ref().map(|min| **min),
        max: raw.max.as_ref().map(|max| **max),
    };
    if bounds == Bounds::NONE {
        return Ok(bounds);
    }
    if !matches!(value_type, Some(ValueType::Integer | ValueType::Number)) {
        return Err(error(
            line,
            format!("field `{path}`: `min` and `max` apply to kept integer and number fields"),
        ));
    }
    if let (Some(min), Some(max)) = (bounds.min, bounds.max)
        && min > max
    {
        return Err(error(
            line,
            format!("field `{path}`: `min` is greater than `max`"),
        ));
    }
    Ok(bounds)
}

/// A kept field's `format` (`value_type` is `None` for a pseudonymized field).
fn parse_format(
    path: &str,
    value_type: Option<ValueType>,
    raw: &RawField,
) -> Result<Option<TextFormat>, AllowlistError> {
    let Some(name) = &raw.format else {
        return Ok(None);
    };
    if value_type != Some(ValueType::String) {
        return Err(error(
            line_of(name),
            format!("field `{path}`: `format` applies to kept string fields"),
        ));
    }
    if raw.values.is_some() {
        return Err(error(
            line_of(name),
            format!("field `{path}`: give `values` or `format`, not both"),
        ));
    }
    TextFormat::from_name(name).map(Some).ok_or_else(|| {
        error(
            line_of(name),
            format!("field `{path}`: `format` must be version, locale or timezone"),
        )
    })
}

/// Longest text a `values` list may hold.
const MAX_LISTED_VALUE_BYTES: usize = 256;

/// A kept field's `values` (`value_type` is `None` for a pseudonymized field).
fn parse_values(
    path: &str,
    line: usize,
    value_type: Option<ValueType>,
    raw: &RawField,
) -> Result<Values, AllowlistError> {
    let Some(listed) = &raw.values else {
        return Ok(Values::ANY);
    };
    if value_type != Some(ValueType::String) {
        return Err(error(
            line,
            format!("field `{path}`: `values` applies to kept string fields"),
        ));
    }
    if listed.is_empty() {
        return Err(error(
            line,
            format!("field `{path}`: `values` is empty (remove the field instead)"),
        ));
    }
    let mut texts: Vec<String> = Vec::with_capacity(listed.len());
    for value in listed {
        if value.is_empty() || value.len() > MAX_LISTED_VALUE_BYTES {
            return Err(error(
                line_of(value),
                format!(
                    "field `{path}`: a listed value is empty or longer than {MAX_LISTED_VALUE_BYTES} bytes"
                ),
            ));
        }
        if texts.iter().any(|text| text == value.as_str()) {
            return Err(error(
                line_of(value),
                format!("field `{path}`: a value is listed twice"),
            ));
        }
        texts.push(value.to_string());
    }
    Ok(Values::listed(texts))
}

fn check_path(kind: Option<MessageKind>, path: &str, line: usize) -> Result<(), AllowlistError> {
    let well_formed = !path.is_empty()
        && path
            .split('.')
            .all(|segment| !segment.is_empty() && segment.len() <= 64);
    if !well_formed {
        return Err(error(
            line,
            format!("field `{path}`: a path is dot-separated non-empty names"),
        ));
    }
    let root = path.split('.').next().unwrap_or_default();
    if STRUCTURAL_KEYS.contains(&root) {
        return Err(error(
            line,
            format!("field `{path}`: `{root}` is handled by Veil itself and cannot be listed"),
        ));
    }
    if let Some(class) = classify(kind, path) {
        return Err(AllowlistError::Forbidden {
            line,
            path: path.to_owned(),
            class,
        });
    }
    Ok(())
}

fn push_fields(
    rules: &mut Vec<FieldRule>,
    scope: &Scope,
    kind: Option<MessageKind>,
    scope_tier: Tier,
    fields: &FieldMap,
) -> Result<(), AllowlistError> {
    for (path, raw) in fields {
        let line = line_of(path);
        check_path(kind, path, line)?;
        let action = parse_action(path, line, raw)?;
        let reason = parse_reason(
            &format!("field `{}`", path.as_str()),
            line,
            raw.reason.as_ref(),
        )?;
        let own_tier = parse_tier(raw.tier.as_ref())?;
        let tier = if scope_tier == Tier::Enhanced {
            Tier::Enhanced
        } else {
            own_tier
        };
        rules.push(FieldRule {
            scope: scope.clone(),
            path: path.to_string(),
            action,
            tier,
            reason,
            line,
        });
    }
    Ok(())
}

fn push_names(
    target: &mut Vec<NameRule>,
    rules: &mut Vec<FieldRule>,
    kind: MessageKind,
    named: &IndexMap<Spanned<String>, RawNamed>,
) -> Result<(), AllowlistError> {
    for (name, raw) in named {
        let line = line_of(name);
        let what = format!(
            "{} `{}`",
            if kind == MessageKind::Track {
                "event"
            } else {
                "name"
            },
            name.as_str()
        );
        if name.trim().is_empty() {
            return Err(error(line, format!("{what}: a name cannot be empty")));
        }
        let reason = parse_reason(&what, line, raw.reason.as_ref())?;
        let tier = parse_tier(raw.tier.as_ref())?;
        if kind != MessageKind::Track && !raw.fields.is_empty() {
            return Err(error(
                line,
                format!("{what}: only track events carry their own fields"),
            ));
        }
        let scope = Scope::Event(name.to_string());
        push_fields(rules, &scope, Some(kind), tier, &raw.fields)?;
        target.push(NameRule {
            kind,
            name: name.to_string(),
            tier,
            reason,
            line,
        });
    }
    Ok(())
}

/// Parses and validates allowlist YAML text; `digest` is the digest of the same bytes.
/// Refuses text the YAML loader would read only in part, so the file a reviewer signs is the
/// file enforced: a NUL byte (the loader stops there), a byte-order mark, and a second document
/// (`---` or `...` after content: only the first would be read).
fn check_whole_file_is_read(text: &str) -> Result<(), AllowlistError> {
    if text.starts_with('\u{feff}') {
        return Err(error(
            1,
            "the file starts with a byte-order mark: save it as UTF-8 without one",
        ));
    }
    let mut content_seen = false;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.contains('\0') {
            return Err(error(line_number, "the file holds a NUL byte"));
        }
        let marker = ["---", "..."].iter().any(|marker| {
            line.strip_prefix(marker)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        });
        if marker && (content_seen || line.starts_with("...")) {
            return Err(error(
                line_number,
                "the file holds more than one YAML document: an allowlist is one document",
            ));
        }
        let trimmed = line.trim();
        content_seen |= !marker && !trimmed.is_empty() && !trimmed.starts_with('#');
    }
    Ok(())
}

pub(crate) fn parse(text: &str, digest: String) -> Result<Allowlist, AllowlistError> {
    check_whole_file_is_read(text)?;
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let raw: RawFile = marked_yaml::from_yaml_with_options(0, text, options)
        .map_err(|source| AllowlistError::Syntax(source.to_string()))?;
    if *raw.version != 1 {
        return Err(error(
            line_of(&raw.version),
            "field `version`: only version 1 is understood",
        ));
    }
    let mut fields = Vec::new();
    let mut names = Vec::new();
    let mut kinds = Vec::new();
    push_fields(
        &mut fields,
        &Scope::Common,
        None,
        Tier::Baseline,
        &raw.common,
    )?;
    let sections = [
        (MessageKind::Track, &raw.track),
        (MessageKind::Identify, &raw.identify),
        (MessageKind::Page, &raw.page),
        (MessageKind::Screen, &raw.screen),
        (MessageKind::Group, &raw.group),
        (MessageKind::Alias, &raw.alias),
    ];
    for (kind, section) in sections {
        let Some(section) = section else { continue };
        kinds.push(kind);
        push_fields(
            &mut fields,
            &Scope::Kind(kind),
            Some(kind),
            Tier::Baseline,
            &section.fields,
        )?;
        match kind {
            MessageKind::Track => {
                if let Some((name, _)) = section.names.iter().next() {
                    return Err(error(
                        line_of(name),
                        "section `track`: track messages list `events`, not `names`",
                    ));
                }
                push_names(&mut names, &mut fields, kind, &section.events)?;
            }
            _ => {
                if let Some((name, _)) = section.events.iter().next() {
                    return Err(error(
                        line_of(name),
                        format!("section `{}`: only `track` lists events", kind.as_str()),
                    ));
                }
                push_names(&mut names, &mut fields, kind, &section.names)?;
            }
        }
    }
    check_consistency(&fields)?;
    Ok(Allowlist {
        digest,
        kinds,
        fields,
        names,
    })
}

/// One path means one thing: the same action everywhere, and never both a value and an object.
fn check_consistency(fields: &[FieldRule]) -> Result<(), AllowlistError> {
    // Linear in the rules: each path and each of its dotted prefixes is looked up once.
    let mut by_path: HashMap<&str, &FieldRule> = HashMap::new();
    let mut by_prefix: HashMap<&str, &FieldRule> = HashMap::new();
    let nested = |rule: &FieldRule, longer: &FieldRule, shorter: &FieldRule| {
        error(
            rule.line,
            format!(
                "field `{}` is inside field `{}`: only values are kept, never objects",
                longer.path, shorter.path
            ),
        )
    };
    for rule in fields {
        if let Some(other) = by_path.get(rule.path.as_str())
            && other.action != rule.action
        {
            return Err(error(
                rule.line,
                format!(
                    "field `{}`: declared on line {} with another action or type",
                    rule.path, other.line
                ),
            ));
        }
        let prefixes = rule.path.match_indices('.').map(|(at, _)| &rule.path[..at]);
        for prefix in prefixes.clone() {
            if let Some(outer) = by_path.get(prefix) {
                return Err(nested(rule, rule, outer));
            }
        }
        if let Some(inner) = by_prefix.get(rule.path.as_str()) {
            return Err(nested(rule, inner, rule));
        }
        by_path.entry(&rule.path).or_insert(rule);
        for prefix in prefixes {
            by_prefix.entry(prefix).or_insert(rule);
        }
    }
    Ok(())
}
