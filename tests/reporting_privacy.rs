//! k-anonymity, adversarially: small groups read "< k", and no published total lets a reader
//! recover a suppressed group by subtraction. Random tenants with disjoint groups (where
//! subtraction would work) are checked against counts the test computes itself.

mod reporting_support;

use std::collections::{BTreeMap, HashSet};

use reporting_support::*;
use serde_json::Value;

const OSES: [&str; 4] = ["Windows", "Mac OS X", "iOS", "Linux"];
const APPS: [&str; 3] = ["DMS Desktop", "DMS Web", "DMS Drive"];
const FEATURES: [&str; 5] = ["search", "share", "preview", "checkin", "email_filing"];
const TENANTS_UNDER_TEST: [&str; 3] = ["t-1000", "t-1001", "t-1003"];

/// A small deterministic generator (the test needs no crate for it).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

/// Each user has one platform, one product and one feature (disjoint groups), with skewed
/// sizes so that many groups fall under k.
fn random_tenant(rng: &mut Lcg, tenant: &'static str, epoch: &str) -> Vec<Event> {
    let users = 3 + rng.next(25);
    let mut events = Vec::new();
    for user in 0..users {
        let skew = |rng: &mut Lcg, n: usize| if rng.next(3) == 0 { rng.next(n) } else { 0 };
        let os = OSES[skew(rng, OSES.len())];
        let app = APPS[skew(rng, APPS.len())];
        let feature = FEATURES[skew(rng, FEATURES.len())];
        for _ in 0..1 + rng.next(4) {
            let day = 1 + rng.next(28);
            events.push(Event {
                tenant,
                epoch: epoch.to_owned(),
                user,
                date: format!("2026-11-{day:02}"),
                event: "Document Opened",
                feature: Some(feature),
                app,
                version: "1",
                os,
            });
        }
    }
    events
}

fn number(value: &Value) -> Option<u64> {
    value.as_u64()
}

/// The invariants of one breakdown whose groups are disjoint by construction.
fn check_disjoint_breakdown(
    by: &Value,
    truth: &BTreeMap<String, (HashSet<usize>, u64)>,
    what: &str,
) {
    let total_users: usize = truth.values().map(|(u, _)| u.len()).sum();
    let total_events: u64 = truth.values().map(|(_, e)| e).sum();
    if total_users < 5 {
        assert_eq!(by["total_users"], "< 5", "{what}");
        assert_eq!(by["total_events"], "< 5", "{what}");
        assert!(
            by["rows"].as_array().is_some_and(Vec::is_empty),
            "{what}: nothing shown"
        );
        return;
    }
    assert_eq!(
        number(&by["total_users"]),
        Some(total_users as u64),
        "{what}"
    );
    assert_eq!(number(&by["total_events"]), Some(total_events), "{what}");
    let mut shown_users = 0;
    let mut shown_events = 0;
    for row in by["rows"].as_array().expect("rows") {
        let label = row["label"].as_str().expect("label");
        let (users, events) = &truth[label];
        assert!(
            users.len() >= 5,
            "{what}: {label} has {} users and is shown",
            users.len()
        );
        assert_eq!(
            number(&row["users"]),
            Some(users.len() as u64),
            "{what} {label}"
        );
        assert_eq!(number(&row["events"]), Some(*events), "{what} {label}");
        shown_users += users.len() as u64;
        shown_events += events;
    }
    let residual_users = total_users as u64 - shown_users;
    let residual_events = total_events - shown_events;
    // What subtraction gives a reader is exactly the Other row, and it is never below k.
    if residual_users == 0 {
        assert!(by["other"].is_null(), "{what}");
    } else {
        assert!(
            residual_users >= 5,
            "{what}: total − shown = {residual_users} users would reveal a small group"
        );
        assert_eq!(
            number(&by["other"]["users"]),
            Some(residual_users),
            "{what}"
        );
        assert_eq!(
            number(&by["other"]["events"]),
            Some(residual_events),
            "{what}"
        );
    }
    let small: Vec<&String> = truth
        .iter()
        .filter(|(_, (u, _))| !u.is_empty() && u.len() < 5)
        .map(|(l, _)| l)
        .collect();
    for label in small {
        assert!(
            !by["rows"]
                .as_array()
                .expect("rows")
                .iter()
                .any(|r| r["label"] == label.as_str()),
            "{what}: {label} is below k and listed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complementary_suppression_defeats_subtraction_on_random_tenants() {
    let mut rng = Lcg(0x5eed);
    for round in 0..8 {
        let fixture = Fixture::new();
        let mut all = Vec::new();
        for tenant in TENANTS_UNDER_TEST {
            let epoch = if tenant == "t-1001" {
                "stable"
            } else {
                "2026-11"
            };
            all.extend(random_tenant(&mut rng, tenant, epoch));
        }
        fixture.store_events(&all);
        let state = fixture.state();
        for tenant in TENANTS_UNDER_TEST {
            let mine: Vec<&Event> = all.iter().filter(|e| e.tenant == tenant).collect();
            let report = json(
                &state,
                &format!("/api/tenants/{tenant}/breakdowns?month=2026-11"),
                VENDOR,
            )
            .await;
            for (dimension, pick) in [("platform", 0), ("product", 1), ("feature", 2)] {
                let mut truth: BTreeMap<String, (HashSet<usize>, u64)> = BTreeMap::new();
                for e in &mine {
                    let label = [e.os, e.app, e.feature.unwrap_or_default()][pick].to_owned();
                    let entry = truth.entry(label).or_default();
                    entry.0.insert(e.user);
                    entry.1 += 1;
                }
                check_disjoint_breakdown(
                    &report["by"][dimension],
                    &truth,
                    &format!("round {round} {tenant} {dimension}"),
                );
            }
        }
        // License: per tenant, products are a breakdown; the cross-tenant totals add shown cells only.
        let license = json(&state, "/api/license?month=2026-11", VENDOR).await;
        let rows = license["rows"].as_array().expect("rows");
        for product in APPS {
            let shown: u64 = rows
                .iter()
                .filter(|r| r["product"] == product)
                .filter_map(|r| r["active_users"].as_u64())
                .sum();
            let total = license["totals"]
                .as_array()
                .expect("totals")
                .iter()
                .find(|t| t["product"] == product);
            if let Some(total) = total {
                assert_eq!(
                    total["active_users_of_shown"].as_u64(),
                    Some(shown),
                    "round {round} {product}"
                );
            }
            for row in rows.iter().filter(|r| r["product"] == product) {
                let tenant = row["tenant"].as_str().expect("tenant");
                let users: HashSet<usize> = all
                    .iter()
                    .filter(|e| e.tenant == tenant && e.app == product)
                    .map(|e| e.user)
                    .collect();
                match row["active_users"].as_u64() {
                    Some(n) => {
                        assert_eq!(n, users.len() as u64);
                        assert!(
                            n == 0 || n >= 5,
                            "round {round}: {tenant} {product} shows {n}"
                        );
                    }
                    None if users.len() < 5 => assert_eq!(row["active_users"], "< 5"),
                    None => assert_eq!(row["active_users"], "withheld"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lone_user_is_not_recoverable_from_the_page_either() {
    // 13 Windows users, 6 on Mac, 1 on iOS. Without complementary suppression the page would show
    // 20 − 13 − 6 = 1.
    let fixture = Fixture::new();
    let mut events = Vec::new();
    for user in 0..20 {
        let os = match user {
            0..13 => "Windows",
            13..19 => "Mac OS X",
            _ => "iOS",
        };
        events.push(Event {
            tenant: "t-1000",
            epoch: "2026-11".to_owned(),
            user,
            date: "2026-11-02".to_owned(),
            event: "App Launched",
            feature: None,
            app: "DMS Web",
            version: "2026.11",
            os,
        });
    }
    fixture.store_events(&events);
    let state = fixture.state();
    let report = json(
        &state,
        "/api/tenants/t-1000/breakdowns?month=2026-11",
        T1000,
    )
    .await;
    let platform = &report["by"]["platform"];
    assert_eq!(platform["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(platform["rows"][0]["label"], "Windows");
    assert_eq!(platform["other"]["users"], 7, "iOS pooled with Mac");
    assert_eq!(platform["other"]["groups"], 2);
    let (_, page) = get(&state, "/tenants/t-1000?month=2026-11", Some(T1000)).await;
    assert!(
        !page.contains("iOS") && !page.contains("Mac OS X"),
        "pooled groups are not named"
    );
    assert!(page.contains("Other (2 groups)"));
    // The daily view: one day with 20 users is shown, an empty day reads 0.
    let activity = json(&state, "/api/tenants/t-1000/activity?month=2026-11", T1000).await;
    assert_eq!(activity["daily"][1]["users"], 20);
    assert_eq!(activity["daily"][2]["users"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_is_configurable() {
    let mut fixture = Fixture::new();
    fixture.config.k_anonymity = 10;
    let mut events = Vec::new();
    for user in 0..7 {
        events.push(Event {
            tenant: "t-1000",
            epoch: "2026-11".to_owned(),
            user,
            date: "2026-11-02".to_owned(),
            event: "App Launched",
            feature: None,
            app: "DMS Web",
            version: "2026.11",
            os: "Windows",
        });
    }
    fixture.store_events(&events);
    let state = fixture.state();
    let activity = json(&state, "/api/tenants/t-1000/activity?month=2026-11", T1000).await;
    assert_eq!(activity["daily"][1]["users"], "< 10");
    assert_eq!(activity["monthly"][5]["users"], "< 10");
    assert_eq!(activity["monthly"][5]["events"], "< 10");
}
