//! Who counts as one active user, now that the dashboards read the `daily_activity` rollup: a
//! signed-in user, i.e. a distinct `userId` pseudonym within its key epoch. Anonymous ids count
//! nobody: Segment SDKs send one person's `anonymousId` before sign-in and `userId` after, so
//! counting both would count that person twice and let a group of three pass a k of 5. The
//! expected numbers are computed here from the stored messages, and checked against the
//! vendor's SQL over the raw `events` table too.

mod reporting_support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use reporting_support::*;
use serde_json::Value;
use veil_reporting::AppState;

/// One stored message of tenant t-1003 on `date`, with the given identities.
fn message(serial: usize, date: &str, user: Option<&str>, anonymous: Option<&str>) -> String {
    let mut pseudonyms = Vec::new();
    if let Some(user) = user {
        pseudonyms.push(format!("\"userId\":\"{user}\""));
    }
    if let Some(anonymous) = anonymous {
        pseudonyms.push(format!("\"anonymousId\":\"{anonymous}\""));
    }
    format!(
        r#"{{"schema":1,"tenant":"t-1003","tier":"baseline","policy":"sha256:{}","keyEpoch":"2026-11","type":"track","messageId":"id-{serial}","timestamp":"{date}T10:00:00.000Z","receivedAt":"{date}T10:00:01.000Z","event":"Document Opened","fields":{{"context.app.name":"DMS Desktop","context.app.version":"10.9.1","context.os.name":"Windows","properties.feature":"preview"}},"pseudonyms":{{{}}}}}"#,
        "b".repeat(64),
        pseudonyms.join(",")
    )
}

/// The vendor's license report for 2026-11, and its row for t-1003's desktop app.
async fn desktop_license_row(state: &AppState) -> (Value, Value) {
    let license = json(state, "/api/license?month=2026-11", VENDOR).await;
    let desktop = license["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|row| row["tenant"] == "t-1003" && row["product"] == "DMS Desktop")
        .cloned()
        .expect("license row");
    (license, desktop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_signed_in_users_count_and_as_the_raw_events_say() {
    let fixture = Fixture::new();
    let p = |index| pseudonym("t-1003", index);
    // (userId, anonymousId) of every message.
    let mut identities: Vec<(Option<String>, Option<String>)> = Vec::new();
    for index in 0..6 {
        // Signed-in users, twice each.
        identities.push((Some(p(index)), None));
        identities.push((Some(p(index)), None));
    }
    for index in 10..16 {
        // Anonymous ids only (devices before sign-in): nobody.
        identities.push((None, Some(p(index))));
    }
    // The same pseudonym text as an anonymous id: still nobody.
    identities.push((None, Some(p(0))));
    for index in 20..25 {
        // Signed in with an anonymous id beside: counted by the userId.
        identities.push((Some(p(index)), Some(p(100 + index))));
    }
    let lines: Vec<String> = identities
        .iter()
        .enumerate()
        .map(|(serial, (user, anonymous))| {
            let date = if serial % 2 == 0 {
                "2026-11-03"
            } else {
                "2026-11-04"
            };
            message(serial, date, user.as_deref(), anonymous.as_deref())
        })
        .collect();
    // Two flushes, so one user's rows are in two rollup files.
    let (first, second) = lines.split_at(lines.len() / 2);
    store_messages(&fixture.data_dir(), &fixture.layout(), first);
    store_messages(&fixture.data_dir(), &fixture.layout(), second);
    let expected: BTreeSet<String> = identities
        .iter()
        .filter_map(|(user, _)| user.clone())
        .collect();
    assert_eq!(expected.len(), 6 + 5);
    // The events of signed-in users: the population every breakdown covers.
    let signed_in_events = identities.iter().filter(|(user, _)| user.is_some()).count();
    assert_eq!(signed_in_events, 12 + 5);

    let state = fixture.state();
    let activity = json(&state, "/api/tenants/t-1003/activity?month=2026-11", VENDOR).await;
    assert_eq!(
        activity["monthly"][5]["users"].as_u64(),
        Some(expected.len() as u64)
    );
    assert_eq!(
        activity["monthly"][5]["events"].as_u64(),
        Some(signed_in_events as u64)
    );
    let breakdowns = json(
        &state,
        "/api/tenants/t-1003/breakdowns?month=2026-11",
        VENDOR,
    )
    .await;
    let preview = breakdowns["by"]["feature"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|row| row["label"] == "preview")
        .cloned()
        .expect("preview row");
    assert_eq!(preview["users"].as_u64(), Some(expected.len() as u64));
    assert_eq!(preview["events"].as_u64(), Some(signed_in_events as u64));
    let (_, desktop) = desktop_license_row(&state).await;
    assert_eq!(
        desktop["active_users"].as_u64(),
        Some(expected.len() as u64)
    );

    // The raw events agree (the vendor's SQL reads them directly).
    let raw = r#"SELECT count(DISTINCT "userId") FROM events WHERE tenant = 't-1003'"#;
    let request = Request::post("/api/sql")
        .header("authorization", format!("Bearer {VENDOR}"))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::json!({ "query": raw }).to_string()))
        .expect("request");
    let (status, body) = send(&state, request).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        answer["rows"][0][0].as_u64(),
        Some(expected.len() as u64),
        "{body}"
    );
}

/// A stored `alias` message of t-1003 from the desktop app: `previous` and `user` are one
/// person (within `epoch`).
fn alias(serial: usize, date: &str, epoch: &str, previous: &str, user: &str) -> String {
    format!(
        r#"{{"schema":1,"tenant":"t-1003","tier":"baseline","policy":"sha256:{}","keyEpoch":"{epoch}","type":"alias","messageId":"alias-{serial}","timestamp":"{date}T11:00:00.000Z","receivedAt":"{date}T11:00:01.000Z","fields":{{"context.app.name":"DMS Desktop"}},"pseudonyms":{{"userId":"{user}","previousId":"{previous}"}}}}"#,
        "b".repeat(64)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_linked_by_alias_count_once() {
    let fixture = Fixture::new();
    let p = |index| pseudonym("t-1003", index);
    // Eight `userId`s with one event each; alias calls say 0 and 1 are one person, and 2, 3
    // and 4 another (a chain, sent newest first): five people.
    let mut lines: Vec<String> = (0..8)
        .map(|index| message(index, "2026-11-05", Some(&p(index)), None))
        .collect();
    lines.push(alias(1, "2026-11-06", "2026-11", &p(0), &p(1)));
    lines.push(alias(2, "2026-11-06", "2026-11", &p(3), &p(4)));
    lines.push(alias(3, "2026-11-07", "2026-11", &p(2), &p(3)));
    // The same pseudonym texts linked under another key epoch name other people: no link here.
    lines.push(alias(4, "2026-12-01", "2026-12", &p(5), &p(6)));
    store_messages(&fixture.data_dir(), &fixture.layout(), &lines);
    let people = 5;

    let state = fixture.state();
    let activity = json(&state, "/api/tenants/t-1003/activity?month=2026-11", VENDOR).await;
    assert_eq!(activity["monthly"][5]["users"].as_u64(), Some(people));
    // The alias calls link ids but are no usage: the eight track events are the month's events.
    assert_eq!(activity["monthly"][5]["events"].as_u64(), Some(8));
    let breakdowns = json(
        &state,
        "/api/tenants/t-1003/breakdowns?month=2026-11",
        VENDOR,
    )
    .await;
    // The alias calls are no usage, so no `(not set)` feature or `alias` event appears.
    let feature = &breakdowns["by"]["feature"];
    assert_eq!(feature["total_users"].as_u64(), Some(people), "{feature}");
    let rows = feature["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{feature}");
    assert_eq!(rows[0]["label"], "preview");
    assert_eq!(rows[0]["users"].as_u64(), Some(people));
    assert_eq!(rows[0]["events"].as_u64(), Some(8));
    let events = breakdowns["by"]["event"]["rows"].as_array().expect("rows");
    assert!(
        events.iter().all(|row| row["label"] != "alias"),
        "{events:?}"
    );
    let (license, desktop) = desktop_license_row(&state).await;
    assert_eq!(desktop["active_users"].as_u64(), Some(people), "{license}");

    // One more alias makes four people: below k = 5, the month's users are withheld. It is
    // stored on a day already read, so that day's cached links must be read again.
    store_messages(
        &fixture.data_dir(),
        &fixture.layout(),
        &[alias(5, "2026-11-06", "2026-11", &p(5), &p(7))],
    );
    let activity = json(&state, "/api/tenants/t-1003/activity?month=2026-11", VENDOR).await;
    assert_eq!(activity["monthly"][5]["users"], "< 5", "{activity}");
    // The page says so too, escaped, and its peak day (the one active day, under k) with it.
    let (status, page) = get(&state, "/tenants/t-1003?month=2026-11", Some(VENDOR)).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<b id="mau">&lt; 5</b>"#), "{page}");
    assert!(
        page.contains(r#"<b>&lt; 5</b><small>highest shown day</small>"#),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_counts_once_in_every_report_of_a_month() {
    let fixture = Fixture::new();
    let p = |index| pseudonym("t-1003", index);
    // November: five ids, two of which (3 and 4) each aliased id 9, last used in October (same
    // key epoch): four people. The six-month activity view sees id 9; the month's breakdowns
    // and license rows do not, and must count the same four.
    let mut lines: Vec<String> = (0..5)
        .map(|index| message(index, "2026-11-05", Some(&p(index)), None))
        .collect();
    lines.push(message(9, "2026-10-20", Some(&p(9)), None));
    lines.push(alias(1, "2026-10-20", "2026-11", &p(9), &p(3)));
    lines.push(alias(2, "2026-10-21", "2026-11", &p(9), &p(4)));
    store_messages(&fixture.data_dir(), &fixture.layout(), &lines);

    let state = fixture.state();
    let activity = json(&state, "/api/tenants/t-1003/activity?month=2026-11", VENDOR).await;
    assert_eq!(activity["monthly"][5]["users"], "< 5", "{activity}");
    let breakdowns = json(
        &state,
        "/api/tenants/t-1003/breakdowns?month=2026-11",
        VENDOR,
    )
    .await;
    assert_eq!(
        breakdowns["by"]["feature"]["total_users"], "< 5",
        "{breakdowns}"
    );
    let (license, desktop) = desktop_license_row(&state).await;
    assert_eq!(desktop["active_users"], "< 5", "{license}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_links_outlive_the_raw_events() {
    use veil_processor::retention::{RetentionConfig, expire};
    use veil_processor::store::Store;
    use veil_processor::tables;

    let fixture = Fixture::new();
    let p = |index| pseudonym("t-1003", index);
    // Six `userId`s; aliases link 0 with 1, and 2 with 3: four people, under k = 5.
    let mut lines: Vec<String> = (0..6)
        .map(|index| message(index, "2026-11-05", Some(&p(index)), None))
        .collect();
    lines.push(alias(1, "2026-11-06", "2026-11", &p(0), &p(1)));
    lines.push(alias(2, "2026-11-07", "2026-11", &p(3), &p(2)));
    store_messages(&fixture.data_dir(), &fixture.layout(), &lines);

    // Retention deletes November's raw events (kept one day here) and keeps the rollup.
    let store = Store::open(fixture.data_dir()).expect("store");
    let config = RetentionConfig {
        events_days: 1,
        ..RetentionConfig::default()
    };
    let today = time::Date::from_calendar_date(2026, time::Month::December, 4).expect("date");
    let expired = expire(&store, &config, today).expect("expire");
    assert_eq!(
        expired.iter().filter(|p| p.table == tables::EVENTS).count(),
        3,
        "{expired:?}"
    );
    assert!(expired.iter().all(|p| p.table == tables::EVENTS));

    let state = fixture.state();
    let activity = json(&state, "/api/tenants/t-1003/activity?month=2026-11", VENDOR).await;
    assert_eq!(activity["monthly"][5]["users"], "< 5", "{activity}");
    let (license, desktop) = desktop_license_row(&state).await;
    assert_eq!(desktop["active_users"], "< 5", "{license}");

    // Two more ids make six people: shown, and counted as six, not eight.
    store_messages(
        &fixture.data_dir(),
        &fixture.layout(),
        &(6..8)
            .map(|index| message(index, "2026-11-28", Some(&p(index)), None))
            .collect::<Vec<_>>(),
    );
    let activity = json(&state, "/api/tenants/t-1003/activity?month=2026-11", VENDOR).await;
    assert_eq!(
        activity["monthly"][5]["users"].as_u64(),
        Some(6),
        "{activity}"
    );
}
