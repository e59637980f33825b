//! Reporting views asserted on stored Parquet whose counts the test computes itself from the
//! events it stored (sets of users per day, week, month, feature, product).

mod reporting_support;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use reporting_support::*;
use serde_json::Value;

const NOV: &str = "2026-11";

/// The dataset: t-1000 with 12 users in November and 10 other pseudonyms in October (a new
/// monthly key epoch), t-1001 (enhanced, stable epoch) with 6 users, t-1003 with 3.
fn dataset() -> Vec<Event> {
    let mut events = Vec::new();
    for day in 1..=30 {
        let date = format!("{NOV}-{day:02}");
        for user in 0..12 {
            if (user + day) % 3 == 0 {
                continue;
            }
            let app = match day % 4 {
                0 if user < 10 => "DMS Desktop",
                1 if user < 6 => "DMS Drive",
                _ => "DMS Web",
            };
            let version = match app {
                "DMS Desktop" if user % 2 == 0 => "10.9.1",
                "DMS Desktop" => "10.9.0",
                "DMS Drive" => "4.3.1",
                _ => "2026.11",
            };
            let os = if user % 2 == 0 { "Mac OS X" } else { "Windows" };
            let base = Event {
                tenant: "t-1000",
                epoch: NOV.to_owned(),
                user,
                date: date.clone(),
                event: "App Launched",
                feature: None,
                app,
                version,
                os,
            };
            events.push(base.clone());
            events.push(Event {
                event: "Document Opened",
                feature: Some("search"),
                ..base.clone()
            });
            if user < 8 {
                events.push(Event {
                    event: "Document Opened",
                    feature: Some("preview"),
                    ..base.clone()
                });
            }
            if (8..11).contains(&user) {
                events.push(Event {
                    event: "Document Shared",
                    feature: Some("share"),
                    ..base.clone()
                });
            }
            if user >= 10 {
                events.push(Event {
                    event: "Email Filed",
                    feature: Some("email_filing"),
                    ..base.clone()
                });
            }
        }
    }
    for day in 1..=31 {
        for user in 0..10 {
            if (user + day) % 5 != 0 {
                continue;
            }
            let base = Event {
                tenant: "t-1000",
                epoch: "2026-10".to_owned(),
                user: 100 + user,
                date: format!("2026-10-{day:02}"),
                event: "Document Opened",
                feature: Some("search"),
                app: "DMS Web",
                version: "2026.10",
                os: "Windows",
            };
            events.push(base.clone());
            if user < 5 {
                events.push(Event {
                    feature: Some("preview"),
                    ..base
                });
            }
        }
    }
    for day in 1..=20 {
        for user in 0..6 {
            let app = if user < 3 && day % 2 == 0 {
                "DMS Web"
            } else {
                "DMS Desktop"
            };
            events.push(Event {
                tenant: "t-1001",
                epoch: "stable".to_owned(),
                user,
                date: format!("{NOV}-{day:02}"),
                event: "Document Saved",
                feature: Some("checkin"),
                app,
                version: "10.9.1",
                os: "Windows",
            });
        }
    }
    for user in 0..3 {
        events.push(Event {
            tenant: "t-1003",
            epoch: NOV.to_owned(),
            user,
            date: format!("{NOV}-05"),
            event: "App Launched",
            feature: None,
            app: "DMS Desktop",
            version: "10.9.1",
            os: "Windows",
        });
    }
    events
}

fn users_where(events: &[Event], keep: impl Fn(&Event) -> bool) -> BTreeSet<(String, usize)> {
    events
        .iter()
        .filter(|e| keep(e))
        .map(|e| (e.epoch.clone(), e.user))
        .collect()
}

fn cell(value: &Value) -> Option<u64> {
    value.as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_views_count_what_was_stored() {
    let fixture = Fixture::new();
    let events = dataset();
    // Two commits, as two flushes would write them.
    let (first, second) = events.split_at(events.len() / 2);
    fixture.store_events(first);
    fixture.store_events(second);
    let state = fixture.state();
    let t1000 = |e: &Event| e.tenant == "t-1000";

    let activity = json(&state, "/api/tenants/t-1000/activity?month=2026-11", T1000).await;
    let daily = activity["daily"].as_array().expect("daily");
    assert_eq!(daily.len(), 30);
    for point in daily {
        let date = point["date"].as_str().expect("date");
        let expected = users_where(&events, |e| t1000(e) && e.date == date).len() as u64;
        assert!(expected >= 5, "the dataset keeps November's days above k");
        assert_eq!(cell(&point["users"]), Some(expected), "DAU of {date}");
    }
    for week in activity["weekly"].as_array().expect("weekly") {
        let (from, to) = (
            week["from"].as_str().expect("from"),
            week["to"].as_str().expect("to"),
        );
        let expected = users_where(&events, |e| {
            t1000(e) && e.date.as_str() >= from && e.date.as_str() <= to
        })
        .len() as u64;
        assert_eq!(cell(&week["users"]), Some(expected), "WAU {from}..{to}");
    }
    let monthly = activity["monthly"].as_array().expect("monthly");
    assert_eq!(monthly.len(), 6);
    assert_eq!(monthly[5]["month"], NOV);
    assert_eq!(cell(&monthly[5]["users"]), Some(12));
    assert_eq!(
        cell(&monthly[5]["events"]),
        Some(
            events
                .iter()
                .filter(|e| t1000(e) && e.date.starts_with(NOV))
                .count() as u64
        )
    );
    assert_eq!(
        cell(&monthly[4]["users"]),
        Some(10),
        "October's pseudonyms are other ones"
    );
    assert_eq!(cell(&monthly[0]["users"]), Some(0));

    // October: 2 users a day → every day reads "< 5"; the month (10 users) is shown.
    let october = json(&state, "/api/tenants/t-1000/activity?month=2026-10", T1000).await;
    for point in october["daily"].as_array().expect("daily") {
        let date = point["date"].as_str().expect("date");
        let expected = users_where(&events, |e| t1000(e) && e.date == date).len();
        if expected == 0 {
            assert_eq!(point["users"], 0);
        } else {
            assert!(expected < 5);
            assert_eq!(point["users"], "< 5", "{date}");
        }
    }

    let breakdowns = json(
        &state,
        "/api/tenants/t-1000/breakdowns?month=2026-11",
        T1000,
    )
    .await;
    let nov = |e: &Event| t1000(e) && e.date.starts_with(NOV);
    for (dimension, key) in [("product", 0), ("platform", 1), ("version", 2)] {
        let by = &breakdowns["by"][dimension];
        let mut expected: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut sets: BTreeMap<String, HashSet<usize>> = BTreeMap::new();
        for e in events.iter().filter(|e| nov(e)) {
            let label = match key {
                0 => e.app.to_owned(),
                1 => e.os.to_owned(),
                _ => format!("{} {}", e.app, e.version),
            };
            sets.entry(label.clone()).or_default().insert(e.user);
            expected.entry(label).or_default().1 += 1;
        }
        for (label, set) in &sets {
            expected.get_mut(label).expect("label").0 = set.len();
        }
        for row in by["rows"].as_array().expect("rows") {
            let label = row["label"].as_str().expect("label");
            let (users, count) = expected[label];
            assert!(users >= 5);
            assert_eq!(
                (cell(&row["users"]), cell(&row["events"])),
                (Some(users as u64), Some(count as u64)),
                "{dimension} {label}"
            );
        }
        let shown: usize = by["rows"].as_array().expect("rows").len();
        let small = expected.values().filter(|(users, _)| *users < 5).count();
        assert!(shown + small <= expected.len());
    }
    let product_rows: Vec<(String, u64)> = breakdowns["by"]["product"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["label"].as_str().unwrap_or_default().to_owned(),
                r["users"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        product_rows,
        [
            ("DMS Web".to_owned(), 12),
            ("DMS Desktop".to_owned(), 10),
            ("DMS Drive".to_owned(), 6)
        ]
    );

    // Features: search and "(not set)" (App Launched) 12 users each; preview 8; share 3 and
    // email_filing 2 pool to 4 users < k, so preview (the smallest shown) is pooled too.
    let features = &breakdowns["by"]["feature"];
    let labels: Vec<&str> = features["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["label"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(labels, ["(not set)", "search"]);
    assert_eq!(features["rows"][1]["share"], 1.0);
    assert_eq!(features["other"]["groups"], 3);
    assert_eq!(
        cell(&features["other"]["users"]),
        Some(
            users_where(&events, |e| nov(e)
                && matches!(e.feature, Some("preview" | "share" | "email_filing")))
            .len() as u64
        )
    );
    assert_eq!(cell(&features["total_users"]), Some(12));

    let comparison = json(
        &state,
        "/api/tenants/t-1000/comparison?month=2026-11",
        T1000,
    )
    .await;
    assert_eq!(
        (
            cell(&comparison["users"]),
            cell(&comparison["previous_users"])
        ),
        (Some(12), Some(10))
    );
    assert!((comparison["users_change"].as_f64().expect("change") - 0.2).abs() < 1e-9);
    let search = comparison["features"]
        .as_array()
        .expect("features")
        .iter()
        .find(|f| f["label"] == "search")
        .expect("search");
    assert_eq!(
        search["change_points"], 0.0,
        "everyone searched in both months"
    );

    // The HTML dashboard shows the same numbers and one chart per view.
    let (status, page) = get(&state, "/tenants/t-1000?month=2026-11", Some(T1000)).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<b id="mau">12</b>"#), "MAU on the page");
    assert!(page.matches("<svg").count() >= 8, "a chart per view");
    let (_, october_page) = get(&state, "/tenants/t-1000?month=2026-10", Some(T1000)).await;
    assert!(october_page.contains("&lt; 5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_compliance_counts_seats_against_active_users() {
    let fixture = Fixture::new();
    let events = dataset();
    fixture.store_events(&events);
    let state = fixture.state();
    let report = json(&state, "/api/license?month=2026-11", VENDOR).await;
    let row = |tenant: &str, product: &str| -> Value {
        report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["tenant"] == tenant && r["product"] == product)
            .cloned()
            .unwrap_or_else(|| panic!("row {tenant} {product}"))
    };
    let active = |tenant: &str, app: &str| {
        users_where(&events, |e| {
            e.tenant == tenant && e.app == app && e.date.starts_with(NOV)
        })
        .len() as u64
    };
    let desktop = row("t-1000", "DMS Desktop");
    assert_eq!(
        (desktop["seats"].as_u64(), desktop["active_users"].as_u64()),
        (Some(8), Some(active("t-1000", "DMS Desktop")))
    );
    assert_eq!(desktop["over_deployed"], 2);
    assert_eq!(desktop["utilization"], 1.25);
    let web = row("t-1000", "DMS Web");
    assert_eq!(
        (web["active_users"].as_u64(), web["unused_seats"].as_u64()),
        (Some(12), Some(8))
    );
    let drive = row("t-1000", "DMS Drive");
    assert_eq!(
        (
            drive["active_users"].as_u64(),
            drive["over_deployed"].as_u64()
        ),
        (Some(6), Some(1))
    );
    // t-1001: Desktop 6 users, Web 3 → Web is below k, and Desktop alone would give it away
    // (tenant total − Desktop): Web reads "< 5", Desktop is withheld (complementary suppression).
    assert_eq!(row("t-1001", "DMS Web")["active_users"], "< 5");
    assert_eq!(row("t-1001", "DMS Desktop")["active_users"], "withheld");
    assert_eq!(row("t-1001", "DMS Desktop")["utilization"], Value::Null);
    assert_eq!(row("t-1003", "DMS Desktop")["active_users"], "< 5");
    let totals: BTreeMap<String, (u64, u64, u64)> = report["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .map(|t| {
            (
                t["product"].as_str().unwrap_or_default().to_owned(),
                (
                    t["active_users_of_shown"].as_u64().unwrap_or(0),
                    t["seats_of_shown"].as_u64().unwrap_or(0),
                    t["suppressed_rows"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect();
    assert_eq!(
        totals["DMS Desktop"],
        (10, 8, 2),
        "totals add shown cells only"
    );

    let (status, csv) = get(&state, "/api/license.csv", Some(VENDOR)).await;
    assert_eq!(status, 200);
    assert!(csv.starts_with(
        "month,tenant,product,seats,active_users,utilization,over_deployed,unused_seats\n"
    ));
    assert!(
        csv.contains("\n2026-11,t-1000,DMS Desktop,8,10,1.250,2,0\n"),
        "{csv}"
    );
    assert!(csv.contains("\n2026-11,t-1001,DMS Web,10,< 5,,,\n"));
    assert!(csv.contains("\n2026-10,t-1000,DMS Web,20,10,0.500,0,10\n"));

    let (status, page) = get(&state, "/license?month=2026-11", Some(VENDOR)).await;
    assert_eq!(status, 200);
    assert!(page.matches("<svg").count() >= 3, "one chart per product");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviewer_sees_the_allowlist_digests_consent_and_key_epochs() {
    let fixture = Fixture::new();
    let events = dataset();
    fixture.store_events(&events);
    let state = fixture.state();
    let policy = allowlist();
    let view = json(&state, "/api/review/allowlist", REVIEWER).await;
    assert_eq!(view["digest"], policy.digest.as_str());
    assert_eq!(
        view["fields"].as_array().map(Vec::len),
        Some(policy.fields.len())
    );
    let user = view["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["path"] == "userId")
        .expect("userId");
    assert_eq!(user["action"], "pseudonymize user");
    assert_eq!(
        user["reason"],
        "count distinct active users and licensed seat usage per month"
    );

    let digests = json(&state, "/api/review/digests", REVIEWER).await;
    assert_eq!(digests.as_array().map(Vec::len), Some(1));
    assert_eq!(digests[0]["digest"], format!("sha256:{}", "a".repeat(64)));
    assert_eq!(
        digests[0]["active"], false,
        "not the active allowlist's digest"
    );
    assert_eq!(
        (
            digests[0]["first_date"].as_str(),
            digests[0]["last_date"].as_str()
        ),
        (Some("2026-10-01"), Some("2026-11-30"))
    );
    assert_eq!(digests[0]["tenants"], 3);
    assert_eq!(digests[0]["events"].as_u64(), Some(events.len() as u64));

    let tenants = json(&state, "/api/review/tenants", REVIEWER).await;
    assert_eq!(tenants.as_array().map(Vec::len), Some(1));
    assert_eq!(tenants[0]["tenant"], "t-1001");
    assert_eq!(
        tenants[0]["consent_by"],
        "customer IT admin, ticket CS-4711"
    );

    let keys = json(&state, "/api/review/keys", REVIEWER).await;
    assert_eq!(keys[0]["epoch"], "2026-08");
    assert_eq!(keys[0]["shredded_at"], "2026-11-10T00:00:00Z");
    assert_eq!(
        (keys[1]["epoch"].as_str(), &keys[1]["shredded_at"]),
        (Some("2026-11"), &Value::Null)
    );

    let rejections = json(&state, "/api/review/rejections", REVIEWER).await;
    assert_eq!(
        rejections["available"], false,
        "no rejections table yet: tolerated"
    );

    let (status, page) = get(&state, "/review", Some(REVIEWER)).await;
    assert_eq!(status, 200);
    assert!(page.contains(&policy.digest));
    assert!(page.contains("feature adoption: which product feature was used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_answers_with_empty_reports() {
    let fixture = Fixture::new();
    let state = fixture.state();
    let activity = json(&state, "/api/tenants/t-1000/activity?month=2026-11", T1000).await;
    assert!(
        activity["daily"]
            .as_array()
            .expect("daily")
            .iter()
            .all(|d| d["users"] == 0)
    );
    let license = json(&state, "/api/license?month=2026-11", VENDOR).await;
    assert!(
        license["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["active_users"] == 0)
    );
    let digests = json(&state, "/api/review/digests", REVIEWER).await;
    assert_eq!(digests, serde_json::json!([]));
    for (path, token) in [
        ("/tenants/t-1000", T1000),
        ("/license", VENDOR),
        ("/review", REVIEWER),
    ] {
        assert_eq!(get(&state, path, Some(token)).await.0, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_flush_is_reported_at_once_despite_the_result_cache() {
    let fixture = Fixture::new();
    let events = dataset();
    fixture.store_events(&events);
    let state = fixture.state();
    let path = "/api/tenants/t-1000/activity?month=2026-11";
    let before = json(&state, path, T1000).await;
    assert_eq!(before["monthly"][5]["users"], 12);
    assert_eq!(
        json(&state, path, T1000).await,
        before,
        "a repeat answers the same"
    );
    let newcomer = Event {
        tenant: "t-1000",
        epoch: NOV.to_owned(),
        user: 50,
        date: format!("{NOV}-30"),
        event: "App Launched",
        feature: None,
        app: "DMS Web",
        version: "2026.11",
        os: "Windows",
    };
    let lines: Vec<String> = [newcomer].iter().map(|e| e.json(1_000_000)).collect();
    store_messages(&fixture.data_dir(), &fixture.layout(), &lines);
    let after = json(&state, path, T1000).await;
    assert_eq!(
        after["monthly"][5]["users"], 13,
        "the new partition file invalidates the cached result"
    );
}
