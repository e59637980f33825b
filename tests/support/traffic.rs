//! Reference client traffic for integration tests: `gen_events.py` output, the official Python
//! SDK sending it, and the forbidden values it carries (to prove none of them is stored).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::repo_root;

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
    let output = super::cli::pipe(
        Command::new("python3")
            .arg(repo_root().join("tests/sdk/python_send.py"))
            .args([host, write_key]),
        input,
    );
    assert!(
        output.status.success(),
        "the SDK script failed (is `segment-analytics-python` installed? .ci/run installs it): {}",
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
