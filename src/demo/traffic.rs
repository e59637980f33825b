//! Synthetic client traffic in the shape `../shared/workload/gen_events.py` writes: Segment
//! track, page, identify and group messages as a document-management product's desktop, web and
//! drive clients send them, forbidden data included (names, e-mails, firm, document, workspace
//! and folder names, IP addresses), so the demo shows the filter doing its work.
//!
//! Unlike `gen_events.py`, the demo spreads a month of history over several tenants of different
//! sizes and habits, so adoption, license and suppression dashboards have something to show.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::vocabulary::{APPS, EVENTS, FEATURES, OSES};

const FIRST: [&str; 12] = [
    "Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Julia", "Kofi",
    "Lena",
];
const LAST: [&str; 10] = [
    "Okafor", "Schmidt", "Tanaka", "Rossi", "Nguyen", "Kowalski", "Haddad", "Silva", "Weber",
    "Novak",
];
const FIRMS: [&str; 8] = [
    "Hartwell & Moss LLP",
    "Brightline Legal",
    "Kessler Vogt Partners",
    "Aldous Rowe",
    "Northgate Chambers",
    "Sato & Lindqvist",
    "Meridian Advisory",
    "Calder Finch LLP",
];
const DOC_WORDS: [&str; 10] = [
    "Merger",
    "Agreement",
    "Draft",
    "NDA",
    "Lease",
    "Memo",
    "Closing",
    "Disclosure",
    "Settlement",
    "Brief",
];
/// How one demo tenant's people use the product.
#[derive(Debug, Clone)]
pub(crate) struct TenantProfile {
    /// Tenant id, as in `tenants.yaml`.
    pub(crate) tenant: String,
    /// Write key its clients send.
    pub(crate) write_key: String,
    /// People who ever use the product.
    pub(crate) users: usize,
    /// Chance that a person is active on a working day (weekends a quarter of it).
    pub(crate) daily_activity: f64,
    /// Messages per active person and day, on average.
    pub(crate) messages_per_day: usize,
}

/// One simulated person; everything here but the ids is forbidden to leave the gateway.
#[derive(Debug, Clone)]
struct Person {
    name: String,
    email: String,
    firm: &'static str,
    user_id: String,
    anonymous_id: String,
    device_id: String,
    app: usize,
    version: usize,
    os: usize,
    favourite_features: [usize; 3],
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let value = rng.u128(..);
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn person(rng: &mut fastrand::Rng, firm: &'static str) -> Person {
    let first = FIRST[rng.usize(..FIRST.len())];
    let last = LAST[rng.usize(..LAST.len())];
    let domain = firm
        .split(' ')
        .next()
        .unwrap_or("firm")
        .to_lowercase()
        .replace(['&', ','], "");
    let app = rng.usize(..APPS.len());
    Person {
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}@{domain}.example",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        firm,
        user_id: format!("u-{:06}", rng.u32(..1_000_000)),
        anonymous_id: uuid(rng),
        device_id: uuid(rng),
        app,
        version: rng.usize(..APPS[app].1.len()),
        os: rng.usize(..OSES.len()),
        favourite_features: [
            rng.usize(..FEATURES.len()),
            rng.usize(..FEATURES.len()),
            rng.usize(..FEATURES.len()),
        ],
    }
}

fn doc_name(rng: &mut fastrand::Rng) -> String {
    format!(
        "{} {} {}.docx",
        DOC_WORDS[rng.usize(..DOC_WORDS.len())],
        DOC_WORDS[rng.usize(..DOC_WORDS.len())],
        DOC_WORDS[rng.usize(..DOC_WORDS.len())]
    )
}

fn context(rng: &mut fastrand::Rng, who: &Person, tenant: &str) -> Value {
    let (app, versions) = APPS[who.app];
    let (os_name, os_version) = OSES[who.os];
    let locale = ["en-US", "en-GB", "de-DE"][rng.usize(..3)];
    let timezone = ["Europe/London", "America/Chicago", "Asia/Tokyo"][rng.usize(..3)];
    json!({
        "app": {"name": app, "version": versions[who.version], "build": rng.u32(1000..9999).to_string()},
        "os": {"name": os_name, "version": os_version},
        "device": {"id": who.device_id, "name": format!("{}'s laptop", who.name.split(' ').next().unwrap_or("someone"))},
        "library": {"name": "veil-demo", "version": env!("CARGO_PKG_VERSION")},
        "locale": locale,
        "timezone": timezone,
        "ip": format!("{}.{}.{}.{}", rng.u8(1..223), rng.u8(..), rng.u8(..), rng.u8(1..255)),
        "traits": {"email": who.email, "name": who.name},
        "groupId": tenant,
    })
}

fn body(rng: &mut fastrand::Rng, who: &Person, tenant: &str) -> Value {
    let roll = rng.u8(..100);
    if roll < 80 {
        // A quarter of actions are launches, so daily active use shows per application.
        let event = if roll < 20 {
            "App Launched"
        } else {
            EVENTS[rng.usize(..EVENTS.len())]
        };
        let feature = if rng.bool() {
            FEATURES[who.favourite_features[rng.usize(..3)]]
        } else {
            FEATURES[rng.usize(..FEATURES.len())]
        };
        let folder = ["Correspondence", "Pleadings", "Due Diligence", "Billing"][rng.usize(..4)];
        let mut properties = json!({
            "feature": feature,
            "duration_ms": rng.u32(5..20_000),
            "document_id": format!("DMS!{}.{}", rng.u32(..10_000_000), rng.u8(1..9)),
            "workspace_id": format!("ws-{}", rng.u32(..100_000)),
            "document_name": doc_name(rng),
            "workspace_name": format!("{} v. {}", FIRMS[rng.usize(..FIRMS.len())], LAST[rng.usize(..LAST.len())]),
            "folder_name": folder,
            "success": rng.u8(..100) > 3,
        });
        if event == "Search Performed" {
            properties["result_count"] = json!(rng.u32(..500));
            properties["filters_used"] = json!(rng.u8(..4));
            properties["query"] = json!(format!(
                "{} {}",
                DOC_WORDS[rng.usize(..DOC_WORDS.len())],
                who.name
            ));
        }
        if matches!(event, "Email Filed" | "Document Shared") {
            properties["recipients"] = json!([who.email]);
        }
        return json!({"type": "track", "event": event, "properties": properties});
    }
    if roll < 90 {
        let document = doc_name(rng).replace(' ', "%20");
        return json!({"type": "page", "name": "Document Viewer", "properties": {
            "path": format!("/work/documents/{document}"),
            "url": format!("https://cloud.example/work/documents/{document}?by={}", who.email),
            "title": doc_name(rng),
        }});
    }
    if roll < 97 {
        return json!({"type": "identify", "traits": {
            "email": who.email, "name": who.name,
            "company": {"name": who.firm, "id": tenant}, "title": "Associate",
        }});
    }
    json!({"type": "group", "groupId": tenant, "traits": {"name": who.firm, "plan": "standard"}})
}

/// A tenant's month of history, day by day: each element is one day's messages, oldest first.
pub(crate) fn history(
    profile: &TenantProfile,
    seed: u64,
    days: i64,
    now: OffsetDateTime,
) -> Vec<Vec<Value>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let firm = FIRMS[rng.usize(..FIRMS.len())];
    let people: Vec<Person> = (0..profile.users).map(|_| person(&mut rng, firm)).collect();
    let today = now.date();
    let mut history = Vec::with_capacity(usize::try_from(days).unwrap_or(0));
    for days_ago in (0..days).rev() {
        let date = today - Duration::days(days_ago);
        let weekend = matches!(
            date.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        );
        let chance = if weekend {
            profile.daily_activity / 4.0
        } else {
            profile.daily_activity
        };
        let mut day = Vec::new();
        for who in &people {
            if rng.f64() >= chance {
                continue;
            }
            let count = 1 + rng.usize(..profile.messages_per_day * 2);
            for _ in 0..count {
                let hour = rng.u8(7..19);
                let at = date
                    .with_hms_milli(hour, rng.u8(..60), rng.u8(..60), rng.u16(..1000))
                    .map(|at| at.assume_utc())
                    .unwrap_or(now);
                // Today's events cannot come from the future.
                let at = at.min(now);
                let mut message = body(&mut rng, who, &profile.tenant);
                message["userId"] = json!(who.user_id);
                message["anonymousId"] = json!(who.anonymous_id);
                message["messageId"] = json!(uuid(&mut rng));
                message["timestamp"] = json!(
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                );
                message["context"] = context(&mut rng, who, &profile.tenant);
                day.push(message);
            }
        }
        day.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
        history.push(day);
    }
    history
}

/// The forbidden values a tenant's history carries (names, e-mails, firm), for tests that check
/// none of them is stored.
#[cfg(test)]
pub(crate) fn forbidden_values(profile: &TenantProfile, seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let firm = FIRMS[rng.usize(..FIRMS.len())];
    let mut values = vec![firm.to_owned()];
    for _ in 0..profile.users {
        let who = person(&mut rng, firm);
        values.extend([who.name, who.email, who.user_id, who.device_id]);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> TenantProfile {
        TenantProfile {
            tenant: "t-1000".to_owned(),
            write_key: "wk".to_owned(),
            users: 20,
            daily_activity: 0.8,
            messages_per_day: 4,
        }
    }

    #[test]
    fn the_default_allowlist_lists_every_demo_feature() {
        use veil_gateway::allowlist::{Allowlist, FieldAction};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml");
        let allowlist = Allowlist::load(&path).expect("allowlist.yaml is valid");
        let rule = allowlist
            .fields
            .iter()
            .find(|rule| rule.path == "properties.feature")
            .expect("properties.feature is allowlisted");
        let FieldAction::Keep(kept) = &rule.action else {
            panic!("properties.feature is kept");
        };
        for feature in FEATURES {
            assert!(kept.values.admits(feature), "{feature} is not listed");
        }
        assert!(!kept.values.admits("Merger Agreement.docx"));
    }

    #[test]
    fn history_is_deterministic_and_spans_the_days_asked() {
        let now = time::macros::datetime!(2026-11-25 12:00 UTC);
        let first = history(&profile(), 7, 30, now);
        let second = history(&profile(), 7, 30, now);
        assert_eq!(first, second);
        assert_eq!(first.len(), 30);
        let oldest = first.iter().flatten().next().expect("a message");
        assert!(
            oldest["timestamp"]
                .as_str()
                .expect("timestamp")
                .starts_with("2026-10-27")
        );
        let newest = first.last().and_then(|day| day.last()).expect("a message");
        assert!(newest["timestamp"].as_str().expect("timestamp") <= "2026-11-25T12:00:00Z");
        let total: usize = first.iter().map(Vec::len).sum();
        assert!(total > 500, "a month of 20 busy people: {total}");
    }

    #[test]
    fn messages_carry_the_forbidden_data_the_gateway_must_remove() {
        let now = time::macros::datetime!(2026-11-25 12:00 UTC);
        let days = history(&profile(), 7, 3, now);
        let text = serde_json::to_string(&days).expect("json");
        let forbidden = forbidden_values(&profile(), 7);
        assert!(forbidden.iter().skip(1).any(|value| text.contains(value)));
        assert!(text.contains("\"document_name\""));
        assert!(text.contains("\"ip\""));
    }
}
