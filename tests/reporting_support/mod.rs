//! Shared by the reporting tests: Parquet written through the processor's own layout and store,
//! a tenants file, viewers with known tokens, a keystore directory, and the router driven with
//! `oneshot`.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use veil_config::TenantsFile;
use veil_policy::Allowlist;
use veil_processor::audit::{self, AuditRow};
use veil_processor::columns::{EventColumns, TableLayout};
use veil_processor::row::Row;
use veil_processor::store::{Group, Store};
use veil_processor::{rollup, tables};
use veil_reporting::auth::{Viewers, token_digest};
use veil_reporting::{AppState, DataSources, ReportingConfig};

/// Tokens of the test viewers.
pub const T1000: &str = "token-tenant-t1000";
pub const T1001: &str = "token-tenant-t1001";
pub const VENDOR: &str = "token-vendor";
pub const REVIEWER: &str = "token-reviewer";

pub const TENANTS: &str = r#"version: 1
tenants:
  - { id: t-1000, write_keys: [wk_test_t1000], tier: baseline, region: us, seats: { DMS Desktop: 8, DMS Web: 20, DMS Drive: 5 } }
  - id: t-1001
    write_keys: [wk_test_t1001]
    tier: enhanced
    consent: { by: "customer IT admin, ticket CS-4711", at: 2026-10-01T09:00:00Z }
    region: eu
    seats: { DMS Desktop: 10, DMS Web: 10 }
  - { id: t-1003, write_keys: [wk_test_t1003], tier: baseline, region: ca, seats: { DMS Desktop: 10 } }
"#;

/// The repository's allowlist.
pub fn allowlist() -> Allowlist {
    Allowlist::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("allowlist.yaml")
            .as_path(),
    )
    .expect("the repository's allowlist loads")
}

/// A 22-character pseudonym-shaped id for test user `index` of `tenant`.
pub fn pseudonym(tenant: &str, index: usize) -> String {
    let tag: String = tenant.chars().filter(char::is_ascii_alphanumeric).collect();
    let text = format!("{tag}u{index:016}");
    format!("{:A>22}", &text[text.len().saturating_sub(22)..])
}

/// One synthetic track message.
#[derive(Debug, Clone)]
pub struct Event {
    pub tenant: &'static str,
    pub epoch: String,
    pub user: usize,
    pub date: String,
    pub event: &'static str,
    pub feature: Option<&'static str>,
    pub app: &'static str,
    pub version: &'static str,
    pub os: &'static str,
}

impl Event {
    pub fn json(&self, serial: usize) -> String {
        let tier = if self.tenant == "t-1001" {
            "enhanced"
        } else {
            "baseline"
        };
        let feature = self
            .feature
            .map(|f| format!(",\"properties.feature\":\"{f}\""))
            .unwrap_or_default();
        format!(
            r#"{{"schema":1,"tenant":"{}","tier":"{tier}","policy":"sha256:{}","keyEpoch":"{}","type":"track","messageId":"m-{serial}","timestamp":"{}T{:02}:00:00.000Z","receivedAt":"{}T23:00:00.000Z","event":"{}","fields":{{"context.app.name":"{}","context.app.version":"{}","context.os.name":"{}"{feature}}},"pseudonyms":{{"userId":"{}"}}}}"#,
            self.tenant,
            "a".repeat(64),
            self.epoch,
            self.date,
            serial % 24,
            self.date,
            self.event,
            self.app,
            self.version,
            self.os,
            pseudonym(self.tenant, self.user),
        )
    }
}

/// Stores sanitized messages (JSON lines) the way the processor's flush does: decoded, typed by
/// the allowlist's layout into each tenant/day group's columns, each group's events and its
/// `daily_activity` rollup (the processor's own `rollup::batch`) committed through the store.
pub fn store_messages(data_dir: &Path, layout: &TableLayout, lines: &[String]) {
    let store = Store::open(data_dir).expect("store");
    let mut columns: BTreeMap<(String, String), EventColumns> = BTreeMap::new();
    for line in lines {
        let row = Row::decode(line.as_bytes()).expect("a sanitized message");
        columns
            .entry((row.tenant.to_string(), row.day.to_string()))
            .or_insert_with(|| EventColumns::new(layout))
            .append(layout, &row)
            .expect("fits the layout");
    }
    let groups: Vec<Group> = columns
        .into_iter()
        .flat_map(|((tenant, date), mut columns)| {
            let events = columns.finish(layout).expect("batch");
            [
                Group {
                    table: tables::DAILY_ACTIVITY,
                    tenant: tenant.clone(),
                    date: date.clone(),
                    batch: rollup::batch(&events).expect("rollup"),
                },
                Group {
                    table: tables::EVENTS,
                    tenant,
                    date,
                    batch: events,
                },
            ]
        })
        .collect();
    let first = next_offset(data_dir);
    let last = first + lines.len().max(1) as i64 - 1;
    store
        .commit("veil.sanitized.test", 0, first, last, &groups)
        .expect("commit");
}

/// Stores the gateway's audit records (JSON, as on `veil.rejections`) the way the processor
/// does: decoded by its `audit::decode_audit`, grouped by tenant and day, written by
/// `audit::batch` and committed through the store as one flush of the rejections topic.
pub fn store_audit_records(data_dir: &Path, records: &[String]) {
    let store = Store::open(data_dir).expect("store");
    let rows: Vec<AuditRow> = records
        .iter()
        .flat_map(|record| audit::decode_audit(record.as_bytes()).expect("an audit record"))
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&AuditRow>> = BTreeMap::new();
    for row in &rows {
        groups
            .entry((row.tenant.clone(), row.date.clone()))
            .or_default()
            .push(row);
    }
    let groups: Vec<Group> = groups
        .into_iter()
        .map(|((tenant, date), rows)| Group {
            table: tables::REJECTIONS,
            tenant,
            date,
            batch: audit::batch(&rows).expect("rejections batch"),
        })
        .collect();
    let topic = "veil.rejections.test";
    let first = store.recover(topic, 0).expect("recover").unwrap_or(0);
    let last = first + records.len().max(1) as i64 - 1;
    store
        .commit(topic, 0, first, last, &groups)
        .expect("commit");
}

fn next_offset(data_dir: &Path) -> i64 {
    let store = Store::open(data_dir).expect("store");
    store
        .recover("veil.sanitized.test", 0)
        .expect("recover")
        .unwrap_or(0)
}

/// Files of one test deployment.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sources: DataSources,
    pub config: ReportingConfig,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("tenants.yaml"), TENANTS).expect("tenants");
        let viewers = format!(
            "version: 1\nviewers:\n  - {{ name: a1000, role: tenant, tenant: t-1000, token_sha256: {} }}\n  - {{ name: a1001, role: tenant, tenant: t-1001, token_sha256: {} }}\n  - {{ name: vendor, role: vendor, token_sha256: {} }}\n  - {{ name: dpo, role: reviewer, token_sha256: {} }}\n",
            token_digest(T1000),
            token_digest(T1001),
            token_digest(VENDOR),
            token_digest(REVIEWER)
        );
        std::fs::write(root.join("viewers.yaml"), viewers).expect("viewers");
        let keys = root.join("keys");
        std::fs::create_dir_all(keys.join("t-1000")).expect("keys");
        std::fs::write(keys.join("t-1000/2026-11.key"), [9u8; 32]).expect("key");
        std::fs::write(
            keys.join("t-1000/2026-08.shredded"),
            "2026-11-10T00:00:00Z\n",
        )
        .expect("shred");
        let sources = DataSources {
            data_dir: root.join("parquet"),
            allowlist: Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml"),
            tenants: root.join("tenants.yaml"),
            keystore: keys,
        };
        let config = ReportingConfig {
            viewers: root.join("viewers.yaml"),
            ..ReportingConfig::default()
        };
        Fixture {
            dir,
            sources,
            config,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.sources.data_dir.clone()
    }

    pub fn layout(&self) -> TableLayout {
        TableLayout::from_policy(&allowlist().compile())
    }

    pub fn store_events(&self, events: &[Event]) {
        let lines: Vec<String> = events.iter().enumerate().map(|(i, e)| e.json(i)).collect();
        store_messages(&self.data_dir(), &self.layout(), &lines);
    }

    pub fn state(&self) -> AppState {
        let viewers = Viewers::load(&self.config.viewers).expect("viewers");
        let tenants = TenantsFile::load(&self.sources.tenants).expect("tenants");
        AppState::new(
            self.config.clone(),
            viewers,
            tenants,
            allowlist(),
            &self.sources,
        )
        .expect("state")
    }
}

/// A GET with an optional bearer token: (status, body).
pub async fn get(state: &AppState, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(state, request.body(Body::empty()).expect("request")).await
}

/// Sends any request through the router.
pub async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = veil_reporting::app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A GET answered 200 with JSON.
pub async fn json(state: &AppState, path: &str, token: &str) -> serde_json::Value {
    let (status, body) = get(state, path, Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}
