//! End to end through `veil up` on its embedded broker: the official Segment Python SDK sends
//! `gen_events.py` traffic for a tenant of 12 people and one of 3; the reporting JSON API shows
//! the big tenant's monthly active users exactly and the small tenant's as `< 5`; one tenant's
//! token cannot read the other's report; after a clean stop every message is in the Parquet set
//! exactly once and no forbidden value or column is anywhere in it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use serde_json::Value;
use support::traffic::{forbidden_values, gen_events_with, messages, send_with_python_sdk};
use support::{KillOnDrop, free_port, repo_root};

/// `veil up` (killed if the test ends early) and the banner it printed.
struct Up {
    process: KillOnDrop,
    banner: Vec<String>,
}

fn start_up(data_dir: &Path, ingest: u16, reporting: u16, metrics: u16) -> Up {
    start_up_with(data_dir, ingest, reporting, metrics, &[])
}

/// [`start_up`] with more settings (`VEIL_*` variables).
fn start_up_with(
    data_dir: &Path,
    ingest: u16,
    reporting: u16,
    metrics: u16,
    settings: &[(&str, &str)],
) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .current_dir(repo_root())
        .arg("up")
        .arg("--data-dir")
        .arg(data_dir)
        .env("VEIL_GATEWAY__LISTEN", format!("127.0.0.1:{ingest}"))
        .env("VEIL_REPORTING__LISTEN", format!("127.0.0.1:{reporting}"))
        .env("VEIL_PROCESSOR__FLUSH_INTERVAL_MS", "300")
        .env(
            "VEIL_PROCESSOR__METRICS_LISTEN",
            format!("127.0.0.1:{metrics}"),
        )
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("veil up starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("banner line");
        let last = line.starts_with("Ctrl-C");
        banner.push(line);
        if last {
            break;
        }
    }
    assert!(
        banner.iter().any(|line| line.contains("embedded")),
        "no Kafka configured: the embedded broker runs ({banner:?})"
    );
    Up {
        process: KillOnDrop(child),
        banner,
    }
}

/// Waits up to `timeout` for `veil up` to exit (failing with `stuck` otherwise): its status and
/// everything it wrote to stderr.
fn exit_of(up: &mut Up, timeout: Duration, stuck: &str) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = up.process.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "{stuck}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = up.process.0.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

/// The dashboard token the banner printed for `label` (`tenant t-1000`, `vendor`, ...).
fn token(up: &Up, label: &str) -> String {
    up.banner
        .iter()
        .find(|line| line.trim_start().starts_with(&format!("{label} ")))
        .and_then(|line| line.split("token=").nth(1))
        .unwrap_or_else(|| panic!("no token for {label} in {:?}", up.banner))
        .trim()
        .to_owned()
}

/// A GET with a bearer token: (status, body).
fn get(port: u16, path: &str, token: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    // Chunked bodies: the JSON is the longest line.
    let body = body
        .lines()
        .max_by_key(|line| line.len())
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            // One more look, for the message.
            let _ = done();
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every Parquet file under `dir`.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "parquet") {
                found.push(path);
            }
        }
    }
    found
}

/// The events table's column names, every string value of every Parquet file under `dir` (all
/// tables), and the events table's message ids by tenant.
fn stored(dir: &Path) -> (BTreeSet<String>, Vec<String>, BTreeMap<String, Vec<String>>) {
    let mut columns = BTreeSet::new();
    let mut strings = Vec::new();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in parquet_files(dir) {
        let tenant = path
            .ancestors()
            .filter_map(|dir| {
                dir.file_name()?
                    .to_str()?
                    .strip_prefix("tenant=")
                    .map(str::to_owned)
            })
            .next()
            .unwrap_or_default();
        let is_event = path.components().any(|part| part.as_os_str() == "events");
        for batch in support::parquet::batches(&path) {
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if is_event {
                    columns.insert(field.name().clone());
                }
                let Some(text) = column.as_any().downcast_ref::<StringArray>() else {
                    continue;
                };
                for value in text.iter().flatten() {
                    strings.push(value.to_owned());
                    if is_event && field.name() == "message_id" {
                        ids.entry(tenant.clone())
                            .or_default()
                            .push(value.to_owned());
                    }
                }
            }
        }
    }
    (columns, strings, ids)
}

#[test]
fn veil_up_from_sdk_traffic_to_suppressed_reports_and_clean_parquet() {
    let data = tempfile::tempdir().expect("tempdir");
    let (ingest, reporting, metrics) = (free_port(), free_port(), free_port());
    let mut up = start_up(data.path(), ingest, reporting, metrics);
    wait_for("the gateway", Duration::from_secs(120), || {
        get(ingest, "/readyz", "").0 == 200
    });

    // gen_events.py dates its messages in November 2026; the reports are asked for that month.
    let big = gen_events_with(1_200, 21, &["--tenants", "1", "--users", "12"]);
    let small = gen_events_with(150, 22, &["--tenants", "1", "--users", "3"]);
    let host = format!("http://127.0.0.1:{ingest}");
    for (write_key, input) in [("wk_demo_t1000", &big), ("wk_demo_t1003", &small)] {
        let summary = send_with_python_sdk(&host, write_key, input);
        assert_eq!(summary["failed_batches"], 0, "{write_key}: {summary}");
    }
    let distinct_users = |input: &[u8]| -> usize {
        messages(input)
            .iter()
            .filter_map(|message| message["userId"].as_str().map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(distinct_users(&big), 12);
    assert_eq!(distinct_users(&small), 3);

    let admin = token(&up, "tenant t-1000");
    let small_admin = token(&up, "tenant t-1003");
    let monthly_users = |tenant: &str, token: &str| -> Option<Value> {
        let (status, body) = get(
            reporting,
            &format!("/api/tenants/{tenant}/activity?month=2026-11"),
            token,
        );
        if status != 200 {
            eprintln!("{tenant}: status {status}: {body}");
            return None;
        }
        let activity: Value = serde_json::from_str(&body).ok()?;
        activity["monthly"]
            .as_array()?
            .iter()
            .find(|point| point["month"] == "2026-11")
            .map(|point| point["users"].clone())
    };
    wait_for(
        "the big tenant's monthly users",
        Duration::from_secs(120),
        || {
            let seen = monthly_users("t-1000", &admin);
            eprintln!("t-1000 monthly users: {seen:?}");
            seen == Some(Value::from(12))
        },
    );
    // 3 people are a cohort below k = 5: once stored, their count reads "< 5", never 3.
    wait_for(
        "the small tenant's suppressed count",
        Duration::from_secs(60),
        || {
            let seen = monthly_users("t-1003", &small_admin);
            assert_ne!(seen, Some(Value::from(3)), "a cohort below k is shown");
            seen == Some(Value::from("< 5"))
        },
    );
    let (status, _) = get(
        reporting,
        "/api/tenants/t-1000/activity?month=2026-11",
        &small_admin,
    );
    assert_eq!(
        status, 403,
        "one tenant's token cannot read another's report"
    );
    let (status, _) = get(reporting, "/api/tenants/t-1000/activity", "not-a-token");
    assert_eq!(status, 401);

    // The processor's own metrics, as `veil processor` serves them: every message once.
    let events_written = || -> f64 {
        let mut scrape = String::new();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics)).expect("metrics");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .expect("request");
        let _ = stream.read_to_string(&mut scrape);
        assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
        scrape
            .lines()
            .find(|line| line.starts_with("veil_processor_rows_written_total{table=\"events\"}"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_default()
    };
    wait_for(
        "the processor's row counter",
        Duration::from_secs(60),
        || {
            let written = events_written();
            assert!(written <= 1_350.0, "{written} rows for 1,350 messages");
            written == 1_350.0
        },
    );

    // A clean stop stores everything the gateway acknowledged.
    assert!(support::signal(&up.process.0, "-TERM"), "SIGTERM delivered");
    let (status, stderr) = exit_of(&mut up, Duration::from_secs(60), "veil up did not stop");
    assert!(status.success(), "veil up failed: {stderr}");

    let (columns, strings, ids) = stored(&data.path().join("parquet"));
    assert!(strings.len() > 10_000, "the whole Parquet set was read");
    for (tenant, input) in [("t-1000", &big), ("t-1003", &small)] {
        let sent: BTreeSet<String> = messages(input)
            .iter()
            .map(|message| message["messageId"].as_str().expect("id").to_owned())
            .collect();
        let stored_ids = &ids[tenant];
        let unique: BTreeSet<String> = stored_ids.iter().cloned().collect();
        assert_eq!(unique.len(), stored_ids.len(), "{tenant}: no message twice");
        assert_eq!(unique, sent, "{tenant}: every message stored");
    }
    let mut forbidden = forbidden_values(&big);
    forbidden.extend(forbidden_values(&small));
    assert!(forbidden.len() > 100);
    let leaked: Vec<&String> = strings
        .iter()
        .filter(|value| forbidden.iter().any(|bad| value.contains(bad.as_str())))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} forbidden values stored",
        leaked.len()
    );
    // The events table holds the envelope and exactly the columns the allowlist names.
    let allowlist =
        veil_policy::Allowlist::load(&repo_root().join("allowlist.yaml")).expect("policy");
    let policy = allowlist.compile();
    let named: BTreeSet<String> = policy
        .leaves()
        .map(|(_, path, _)| path.to_owned())
        .collect();
    let envelope = [
        "tier",
        "policy",
        "key_epoch",
        "type",
        "message_id",
        "timestamp",
        "received_at",
        "event",
        "name",
    ];
    for column in &columns {
        assert!(
            named.contains(column) || envelope.contains(&column.as_str()),
            "column {column} is neither envelope nor allowlisted"
        );
    }
    assert!(columns.contains("userId") && columns.contains("properties.feature"));
}

/// The first SIGTERM starts a graceful stop, which waits for requests in flight; a second one
/// ends `veil up` at once, saying what that gives up, instead of leaving the operator with a
/// process that ignores signals.
#[test]
fn a_second_sigterm_ends_a_stop_that_waits() {
    let data = tempfile::tempdir().expect("tempdir");
    let (ingest, reporting, metrics) = (free_port(), free_port(), free_port());
    let mut up = start_up_with(
        data.path(),
        ingest,
        reporting,
        metrics,
        &[("VEIL_GATEWAY__REQUEST_READ_TIMEOUT_MS", "120000")],
    );
    // A request whose body never finishes holds the gateway's graceful stop.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", ingest)).expect("connect");
    slow.write_all(
        b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic d2tfZGVtb190MTAwMDo=\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"batch\":[",
    )
    .expect("send the start of a body");
    std::thread::sleep(Duration::from_millis(300));

    assert!(support::signal(&up.process.0, "-TERM"), "SIGTERM delivered");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        up.process.0.try_wait().expect("wait").is_none(),
        "the graceful stop waits for the request in flight"
    );
    assert!(
        support::signal(&up.process.0, "-TERM"),
        "second SIGTERM delivered"
    );
    let (status, stderr) = exit_of(
        &mut up,
        Duration::from_secs(10),
        "veil up ignored the second SIGTERM",
    );
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "second stop signal: exiting at once; acknowledged messages not yet \
                         stored are lost with the embedded broker's log"
        ),
        "{stderr}"
    );
    drop(slow);
}

/// A SIGTERM the moment the banner is out (the gateway already takes requests) stops `veil up`
/// gracefully: the signal is listened for before any service starts, so it never has its
/// default effect of ending the process with acknowledged messages in the embedded broker.
#[test]
fn a_sigterm_right_after_the_banner_stops_gracefully() {
    let data = tempfile::tempdir().expect("tempdir");
    let (ingest, reporting, metrics) = (free_port(), free_port(), free_port());
    let mut up = start_up(data.path(), ingest, reporting, metrics);
    assert!(support::signal(&up.process.0, "-TERM"), "SIGTERM delivered");
    let (status, stderr) = exit_of(&mut up, Duration::from_secs(60), "veil up did not stop");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("veil: stopping"), "{stderr}");
    assert!(stderr.contains("veil: stopped"), "{stderr}");
}
