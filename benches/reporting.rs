//! Reporting benchmark: 10 million stored events in the processor's real Parquet layout
//! (written with its own `TableLayout`, `rollup::batch` and `Store`: each day's commit holds the
//! raw events and their `daily_activity` rollup, as a processor flush does), shaped like
//! `gen_events.py` traffic (8 tenants, 35 days over two months, the generator's apps, versions,
//! platforms, events and features) with realistic user counts per tenant (25 to 300). Then
//! every dashboard's queries, through the router as a browser would ask for them: cold (a fresh
//! service: no cached footers or listings; the OS page cache may be warm) and warm (median of
//! 5). Last, one breakdown query over the raw events against the same over the rollup, through
//! the vendor's SQL endpoint (the reason the dashboards read the rollup), with their groups and
//! event totals checked equal.
//!
//! `cargo bench --bench reporting` — the data set is written once to the target directory's
//! `tmp/veil-reporting-bench-*` (about 90 s in release) and reused; `VEIL_BENCH_EVENTS` changes
//! its size.

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;
use veil_config::TenantsFile;
use veil_policy::Allowlist;
use veil_processor::columns::{EventColumns, TableLayout};
use veil_processor::row::{Row, Value};
use veil_processor::store::{Group, Store};
use veil_processor::timestamp::Day;
use veil_processor::{rollup, tables};
use veil_reporting::auth::{Viewers, token_digest};
use veil_reporting::{AppState, DataSources, ReportingConfig};
use veil_sanitized::{MessageKind, Tier};

#[path = "../src/demo/vocabulary.rs"]
mod vocabulary;
use vocabulary::{APPS, EVENTS, FEATURES};

/// The platforms' distinct names (the vocabulary lists Windows once per version).
const OSES: [&str; 3] = [
    vocabulary::OSES[0].0,
    vocabulary::OSES[2].0,
    vocabulary::OSES[3].0,
];
const USERS: [usize; 8] = [40, 60, 120, 25, 150, 200, 80, 300];

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn days() -> Vec<time::Date> {
    let first = time::Date::from_calendar_date(2026, time::Month::October, 27).expect("date");
    (0..35)
        .map(|offset| first + time::Duration::days(offset))
        .collect()
}

fn pseudonym(tenant: usize, epoch: &str, user: usize) -> String {
    let text = format!("b{tenant}{}{user:010}", epoch.replace('-', ""));
    format!("{text:x>22}")[..22].to_owned()
}

fn generate(root: &Path, total: usize, layout: &TableLayout, policy: &str) {
    let store = Store::open(root).expect("store");
    let weight: usize = USERS.iter().sum();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut offset = 0i64;
    let started = Instant::now();
    for day in days() {
        let date = format!(
            "{:04}-{:02}-{:02}",
            day.year(),
            u8::from(day.month()),
            day.day()
        );
        let epoch = date[..7].to_owned();
        let midnight = day.midnight().assume_utc().unix_timestamp() * 1000;
        let mut groups = Vec::new();
        for (tenant, users) in USERS.iter().enumerate() {
            let count = total * users / weight / 35;
            let tenant_id = format!("t-{}", 1000 + tenant);
            let (tier, key_epoch) = if tenant == 1 {
                (Tier::Enhanced, "stable".to_owned())
            } else {
                (Tier::Baseline, epoch.clone())
            };
            // About 70% of users are active on a day; each sticks to one platform and mostly one app.
            let active: Vec<usize> = (0..*users)
                .filter(|u| (u * 31 + day.ordinal() as usize * 7) % 10 < 7)
                .collect();
            let mut columns = EventColumns::new(layout);
            // One stored message of this tenant at `timestamp_ms`, received two seconds later.
            let stored =
                |kind, message_id: String, event, fields, pseudonyms, timestamp_ms: i64| Row {
                    tenant: Cow::Borrowed(&tenant_id),
                    tier,
                    policy: Cow::Borrowed(policy),
                    key_epoch: Cow::Borrowed(&key_epoch),
                    kind,
                    message_id: Cow::Owned(message_id),
                    event,
                    name: None,
                    fields,
                    pseudonyms,
                    timestamp_ms,
                    received_ms: timestamp_ms + 2_000,
                    day: Day::of_ms(timestamp_ms),
                };
            for serial in 0..count {
                let user = active[rng.below(active.len())];
                let (app, versions) = APPS[if rng.below(4) == 0 {
                    rng.below(3)
                } else {
                    user % 3
                }];
                let event = EVENTS[rng.below(EVENTS.len())];
                let text = |value: &str| Value::Str(Cow::Owned(value.to_owned()));
                let fields = vec![
                    (Cow::Borrowed("context.app.name"), text(app)),
                    (
                        Cow::Borrowed("context.app.version"),
                        text(versions[(user + day.ordinal() as usize / 20) % versions.len()]),
                    ),
                    (
                        Cow::Borrowed("context.os.name"),
                        text(OSES[user % OSES.len()]),
                    ),
                    (
                        Cow::Borrowed("context.library.name"),
                        text("analytics-python"),
                    ),
                    (
                        Cow::Borrowed("properties.feature"),
                        text(FEATURES[rng.below(FEATURES.len())]),
                    ),
                    (
                        Cow::Borrowed("properties.duration_ms"),
                        Value::Int(5 + rng.below(20_000) as i64),
                    ),
                    (
                        Cow::Borrowed("properties.success"),
                        Value::Bool(rng.below(33) != 0),
                    ),
                ];
                let pseudonyms = vec![
                    (
                        Cow::Borrowed("userId"),
                        Cow::Owned(pseudonym(tenant, &key_epoch, user)),
                    ),
                    (
                        Cow::Borrowed("properties.document_id"),
                        Cow::Owned(pseudonym(
                            tenant,
                            &key_epoch,
                            1_000_000 + rng.below(1_000_000),
                        )),
                    ),
                ];
                let timestamp_ms = midnight + rng.below(86_400_000) as i64;
                let row = stored(
                    MessageKind::Track,
                    format!("{tenant}-{date}-{serial}"),
                    Some(Cow::Borrowed(event)),
                    fields,
                    pseudonyms,
                    timestamp_ms,
                );
                columns.append(layout, &row).expect("fits the layout");
            }
            // Sign-ins: about one active user in twenty a day links an earlier id to theirs
            // (the links every user count resolves).
            for (serial, user) in active
                .iter()
                .filter(|user| (*user + day.ordinal() as usize).is_multiple_of(20))
                .enumerate()
            {
                let timestamp_ms = midnight + rng.below(86_400_000) as i64;
                let row = stored(
                    MessageKind::Alias,
                    format!("{tenant}-{date}-alias-{serial}"),
                    None,
                    vec![(
                        Cow::Borrowed("context.app.name"),
                        Value::Str(Cow::Borrowed(APPS[user % 3].0)),
                    )],
                    vec![
                        (
                            Cow::Borrowed("userId"),
                            Cow::Owned(pseudonym(tenant, &key_epoch, *user)),
                        ),
                        (
                            Cow::Borrowed("previousId"),
                            Cow::Owned(pseudonym(tenant, &key_epoch, 500_000 + user)),
                        ),
                    ],
                    timestamp_ms,
                );
                columns.append(layout, &row).expect("fits the layout");
            }
            let events = columns.finish(layout).expect("batch");
            groups.push(Group {
                table: tables::DAILY_ACTIVITY,
                tenant: tenant_id.clone(),
                date: date.clone(),
                batch: rollup::batch(&events).expect("rollup"),
            });
            groups.push(Group {
                table: tables::EVENTS,
                tenant: tenant_id,
                date: date.clone(),
                batch: events,
            });
        }
        let rows: i64 = groups
            .iter()
            .filter(|g| g.table == tables::EVENTS)
            .map(|g| g.batch.num_rows() as i64)
            .sum();
        store
            .commit(
                "veil.sanitized.bench",
                0,
                offset,
                offset + rows - 1,
                &groups,
            )
            .expect("commit");
        offset += rows;
        eprintln!(
            "{date}: {offset} events stored ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
}

async fn fetch(state: &AppState, path: &str, token: &str) -> Duration {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let started = Instant::now();
    let response = veil_reporting::app(state.clone())
        .oneshot(request)
        .await
        .expect("answer");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .expect("body");
    let elapsed = started.elapsed();
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    elapsed
}

/// A vendor SQL query through the router: (time, the answer's rows).
async fn sql(state: &AppState, query: &str) -> (Duration, Vec<serde_json::Value>) {
    let request = Request::post("/api/sql")
        .header("authorization", "Bearer bench-vendor")
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({ "query": query }).to_string(),
        ))
        .expect("request");
    let started = Instant::now();
    let response = veil_reporting::app(state.clone())
        .oneshot(request)
        .await
        .expect("answer");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .expect("body");
    let elapsed = started.elapsed();
    assert!(status.is_success(), "{query}: {status}");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    (elapsed, rows)
}

/// Bytes and rows of a table's Parquet files (rows from the footers).
fn table_size(root: &Path, table: &str) -> (usize, u64, i64) {
    let files: Vec<_> = tables::partitions(root, table)
        .iter()
        .flat_map(|(_, _, dir)| tables::parquet_files(dir))
        .collect();
    let bytes = files
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|m| m.len())
        .sum();
    let rows = files
        .iter()
        .filter_map(|file| std::fs::File::open(file).ok())
        .filter_map(|file| {
            parquet::file::reader::SerializedFileReader::new(file)
                .ok()
                .map(|reader| {
                    use parquet::file::reader::FileReader;
                    reader.metadata().file_metadata().num_rows()
                })
        })
        .sum();
    (files.len(), bytes, rows)
}

fn main() {
    let total: usize = std::env::var("VEIL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("veil-reporting-bench-{total}"));
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
    let allowlist = Allowlist::load(&repository.join("allowlist.yaml")).expect("allowlist");
    let layout = TableLayout::from_policy(&allowlist.compile());
    // "rollup-with-links": data sets written before the rollup kept alias links (or before it
    // existed) are written again.
    let marker = root.join("rollup-with-links");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&root);
        generate(&root, total, &layout, &allowlist.digest);
        std::fs::write(&marker, total.to_string()).expect("marker");
    }
    for table in [tables::EVENTS, tables::DAILY_ACTIVITY] {
        let (files, bytes, rows) = table_size(&root, table);
        println!(
            "{table}: {rows} rows in {files} files, {:.1} MB of Parquet under {}",
            bytes as f64 / 1e6,
            root.display()
        );
    }
    let viewers = Viewers::parse(&format!(
        "version: 1\nviewers:\n  - {{ name: v, role: vendor, token_sha256: {} }}\n  - {{ name: r, role: reviewer, token_sha256: {} }}\n",
        token_digest("bench-vendor"),
        token_digest("bench-reviewer")
    ))
    .expect("viewers");
    let tenants = TenantsFile::load(&repository.join("tenants.yaml")).expect("tenants");
    let sources = DataSources {
        data_dir: root.clone(),
        allowlist: repository.join("allowlist.yaml"),
        tenants: repository.join("tenants.yaml"),
        keystore: root.join("keys"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dashboards: [(&str, Vec<(&str, String)>); 5] = [
        (
            "tenant page, largest tenant (t-1007, 300 users)",
            vec![("bench-vendor", "/tenants/t-1007?month=2026-11".to_owned())],
        ),
        (
            "tenant APIs (activity + breakdowns + comparison), t-1007",
            vec![
                (
                    "bench-vendor",
                    "/api/tenants/t-1007/activity?month=2026-11".to_owned(),
                ),
                (
                    "bench-vendor",
                    "/api/tenants/t-1007/breakdowns?month=2026-11".to_owned(),
                ),
                (
                    "bench-vendor",
                    "/api/tenants/t-1007/comparison?month=2026-11".to_owned(),
                ),
            ],
        ),
        (
            "license page (all tenants, one month)",
            vec![("bench-vendor", "/license?month=2026-11".to_owned())],
        ),
        (
            "license CSV (all tenants, all months)",
            vec![("bench-vendor", "/api/license.csv".to_owned())],
        ),
        (
            "review page (digests over all events)",
            vec![("bench-reviewer", "/review".to_owned())],
        ),
    ];
    println!(
        "| dashboard | cold | warm, result cache off (median of 5) | warm, result cache on (median of 5) | result cache on, the last day's files changed before each (as by a flush; median of 5) |\n|---|---|---|---|---|"
    );
    for (name, requests) in dashboards {
        let fresh = |result_cache| {
            let config = ReportingConfig {
                result_cache,
                ..ReportingConfig::default()
            };
            AppState::new(
                config,
                viewers.clone(),
                tenants.clone(),
                allowlist.clone(),
                &sources,
            )
            .expect("state")
        };
        let run = |state: &AppState| {
            runtime.block_on(async {
                let mut sum = Duration::ZERO;
                for (token, path) in &requests {
                    sum += fetch(state, path, token).await;
                }
                sum
            })
        };
        let median = |state: &AppState, before_each: &dyn Fn()| {
            let mut runs: Vec<Duration> = (0..5)
                .map(|_| {
                    before_each();
                    run(state)
                })
                .collect();
            runs.sort();
            runs[2]
        };
        let cached_state = fresh(true);
        let cold = run(&cached_state);
        let cached = median(&cached_state, &|| ());
        let after_flush = median(&cached_state, &|| touch_last_day(&root));
        let uncached_state = fresh(false);
        let uncached = median(&uncached_state, &|| ());
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            cold.as_secs_f64() * 1000.0,
            uncached.as_secs_f64() * 1000.0,
            cached.as_secs_f64() * 1000.0,
            after_flush.as_secs_f64() * 1000.0
        );
    }
    raw_against_rollup(&runtime, &sources, &viewers, &tenants, &allowlist);
}

/// Marks every file of the data set's last day as just modified, as a flush into the current
/// day would (the result and link caches see a changed partition; the data stays the same).
fn touch_last_day(root: &Path) {
    let now = std::time::SystemTime::now();
    for table in [tables::EVENTS, tables::DAILY_ACTIVITY] {
        for (_, date, dir) in tables::partitions(root, table) {
            if date != "2026-11-30" {
                continue;
            }
            for file in tables::parquet_files(&dir) {
                std::fs::File::options()
                    .append(true)
                    .open(&file)
                    .and_then(|file| file.set_modified(now))
                    .expect("touch");
            }
        }
    }
}

/// The feature breakdown of t-1007's November (what the tenant page groups, per dimension) over
/// the raw events and over the rollup: warm medians of 5, and the totals of both checked equal.
fn raw_against_rollup(
    runtime: &tokio::runtime::Runtime,
    sources: &DataSources,
    viewers: &Viewers,
    tenants: &TenantsFile,
    allowlist: &Allowlist,
) {
    let state = AppState::new(
        ReportingConfig::default(),
        viewers.clone(),
        tenants.clone(),
        allowlist.clone(),
        sources,
    )
    .expect("state");
    let month = "tenant = 't-1007' AND date >= '2026-11-01' AND date <= '2026-11-30'";
    let raw = format!(
        r#"SELECT "properties.feature", key_epoch, "userId", "anonymousId", count(*) FROM events WHERE {month} AND ("userId" IS NOT NULL OR "anonymousId" IS NOT NULL) GROUP BY "properties.feature", key_epoch, "userId", "anonymousId""#
    );
    let summarized = format!(
        r#"SELECT feature, key_epoch, identified, "user", sum(events) FROM daily_activity WHERE {month} AND "user" IS NOT NULL GROUP BY feature, key_epoch, identified, "user""#
    );
    runtime.block_on(async {
        let mut medians = Vec::new();
        for query in [&raw, &summarized] {
            let mut runs = Vec::new();
            let mut groups = 0;
            for _ in 0..6 {
                let (elapsed, rows) = sql(&state, query).await;
                groups = rows.len();
                runs.push(elapsed);
            }
            runs.remove(0);
            runs.sort();
            medians.push((runs[2], groups));
        }
        let (_, raw_total) = sql(&state, &format!("SELECT count(*) FROM events WHERE {month}")).await;
        let (_, rollup_total) = sql(
            &state,
            &format!("SELECT CAST(sum(events) AS BIGINT) FROM daily_activity WHERE {month}"),
        )
        .await;
        assert_eq!(raw_total, rollup_total, "the rollup counts every event");
        assert_eq!(medians[0].1, medians[1].1, "the same (feature, user) groups");
        println!(
            "feature breakdown of t-1007's November, warm (median of 5), {} groups, {} events: raw events {:.0} ms, daily_activity {:.0} ms",
            medians[0].1,
            raw_total.first().map(|row| row.to_string()).unwrap_or_default(),
            medians[0].0.as_secs_f64() * 1000.0,
            medians[1].0.as_secs_f64() * 1000.0
        );
    });
}
