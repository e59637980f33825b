//! Reference client traffic for integration tests: `gen_events.py` output, the official Python
//! SDK sending it, and the forbidden values it carries (to prove none of them is stored).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{KillOnDrop, free_port, headless_chromium, repo_root, wait_listening};

/// `gen_events.py --count COUNT --seed SEED [extra arguments]` output (NDJSON).
pub fn gen_events_with(count: usize, seed: u64, extra: &[&str]) -> Vec<u8> {
    let output = Command::new("python3")
        .arg(repo_root().join("../shared/workload/gen_events.py"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .args(extra)
        .output()
        .expect("gen_events.py runs");
    assert!(output.status.success());
    output.stdout
}

/// `gen_events.py --count COUNT --seed SEED` output (NDJSON).
pub fn gen_events(count: usize, seed: u64) -> Vec<u8> {
    gen_events_with(count, seed, &[])
}

/// The messages of NDJSON `input`.
pub fn messages(input: &[u8]) -> Vec<Value> {
    input
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("JSON"))
        .collect()
}

/// Sends NDJSON `input` through the official Segment Python SDK (`tests/sdk/python_send.py`) to
/// `host` with `write_key`; returns the script's summary (`calls`, `failed_batches`).
pub fn send_with_python_sdk(host: &str, write_key: &str, input: &[u8]) -> Value {
    run_sender(
        Command::new("python3").arg(repo_root().join("tests/sdk/python_send.py")),
        host,
        write_key,
        input,
        "is `segment-analytics-python` installed? .ci/run installs it",
    )
}

/// Sends NDJSON `input` through the official Segment Node.js SDK (`tests/sdk/node_send.mjs`,
/// `@segment/analytics-node`) to `host` with `write_key`; returns the script's summary.
pub fn send_with_node_sdk(host: &str, write_key: &str, input: &[u8]) -> Value {
    run_sender(
        Command::new("node").arg(repo_root().join("tests/sdk/node_send.mjs")),
        host,
        write_key,
        input,
        "are the SDKs installed? `npm ci --prefix tests/sdk` (.ci/run does it)",
    )
}

/// Sends NDJSON `input` through the official Segment browser SDK (`@segment/analytics-next`) in
/// headless Chromium: `tests/sdk/browser.html` is served with the SDK's build and the messages
/// from a local static server, loads its settings from `host` and makes one call per message;
/// returns the page's summary (`calls`, `delivered`).
pub fn send_with_browser_sdk(host: &str, write_key: &str, input: &[u8]) -> Value {
    let build = repo_root().join("tests/sdk/node_modules/@segment/analytics-next/dist/umd");
    assert!(
        build.join("index.js").is_file(),
        "@segment/analytics-next is not installed: `npm ci --prefix tests/sdk` (.ci/run does it)"
    );
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_root().join("tests/sdk/browser.html"),
        site.path().join("index.html"),
    )
    .expect("page copied");
    std::os::unix::fs::symlink(&build, site.path().join("umd")).expect("build linked");
    std::fs::write(site.path().join("events.ndjson"), input).expect("messages written");
    let port = free_port();
    let _server = KillOnDrop(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(site.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 serves the page"),
    );
    wait_listening(port, "the page's static server");
    let profile = tempfile::tempdir().expect("profile");
    let mut browser = KillOnDrop(
        headless_chromium(profile.path())
            // Virtual time stops while requests are in flight, so the page gets to finish.
            .args(["--virtual-time-budget=120000", "--dump-dom"])
            .arg(format!(
                "http://127.0.0.1:{port}/index.html?host={host}&key={write_key}"
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium runs (apt-get install chromium)"),
    );
    let mut dom = String::new();
    let mut stdout = browser.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut dom);
        dom
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    while browser.0.try_wait().expect("chromium's status").is_none() {
        assert!(
            Instant::now() < deadline,
            "chromium did not finish in 180 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = reader.join().expect("reader");
    let Some(at) = dom.find("RESULT {") else {
        panic!(
            "the page did not finish: {}",
            dom.lines()
                .find(|line| line.contains("<pre"))
                .unwrap_or(&dom)
        );
    };
    let summary = &dom[at + "RESULT ".len()..];
    let end = summary.find('}').expect("summary ends") + 1;
    serde_json::from_str(&summary[..end]).expect("summary JSON")
}

/// Runs an SDK script with `host` and `write_key` as arguments and `input` on stdin, and reads
/// the JSON summary it prints.
fn run_sender(
    command: &mut Command,
    host: &str,
    write_key: &str,
    input: &[u8],
    hint: &str,
) -> Value {
    let output = super::cli::pipe(command.args([host, write_key]), input);
    assert!(
        output.status.success(),
        "the SDK script failed ({hint}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("summary JSON")
}

/// Strings under keys that must never leave the gateway, gathered from the input itself.
pub fn forbidden_values(input: &[u8]) -> BTreeSet<String> {
    fn walk(value: &Value, key: &str, found: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, found)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, found)),
            Value::String(text) => {
                let sensitive = [
                    "email",
                    "name",
                    "document_name",
                    "workspace_name",
                    "folder_name",
                    "query",
                    "recipients",
                    "path",
                    "url",
                    "title",
                    "ip",
                    "userId",
                    "anonymousId",
                    "id",
                    "document_id",
                    "workspace_id",
                    "userAgent",
                    "referrer",
                ];
                // Product and event names are allowed to leave; everything named above is not.
                let allowed_names = [
                    "DMS Desktop",
                    "DMS Web",
                    "DMS Drive",
                    "Document Viewer",
                    "analytics-python",
                    "Windows",
                    "Mac OS X",
                    "iOS",
                ];
                let tenant_id = text.starts_with("t-10");
                if sensitive.contains(&key)
                    && !allowed_names.contains(&text.as_str())
                    && !tenant_id
                    && text.len() > 3
                {
                    found.insert(text.clone());
                }
            }
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    for line in input
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let value: Value = serde_json::from_slice(line).expect("JSON");
        walk(&value, "", &mut found);
    }
    found
}
