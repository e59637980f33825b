//! `veil erase` end to end through the CLI: reference traffic of an enhanced tenant filtered
//! (with a key rotation half way), stored with `veil processor --stdin`, one user erased; their
//! rows are gone from events and daily_activity under both key epochs, every other row is
//! untouched, and the audit record holds neither the id nor a pseudonym. Then the same by
//! anonymous id: a device's rows, before sign-in and after, and the alias that links it. And a
//! user whose clients sent their id in composed and decomposed spellings, erased by either.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, Int64Array, StringArray};
use serde_json::Value;
use support::cli::veil;
use veil_processor::tables;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(output: Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn filter(keys: &str, input: &[u8]) -> Vec<u8> {
    ok(veil(
        &[
            "filter",
            "--tenant",
            "t-1001",
            "--tier",
            "enhanced",
            "--keystore",
            keys,
        ],
        input,
    ))
}

/// The user pseudonym the current key gives `user`: `veil filter` over one identify message.
fn probe(keys: &str, user: &str, id: &str) -> String {
    let message = format!(r#"{{"type":"identify","userId":"{user}","messageId":"{id}"}}"#);
    pseudonym_in(keys, &message, "userId")
}

/// The pseudonym `veil filter` (with the current key) writes for `field` of one `message`.
fn pseudonym_in(keys: &str, message: &str, field: &str) -> String {
    let out = filter(keys, message.as_bytes());
    let sanitized: Value = serde_json::from_slice(&out).expect("one sanitized message");
    sanitized["pseudonyms"][field]
        .as_str()
        .expect("pseudonym")
        .to_owned()
}

/// `gen_events.py --count COUNT --seed 11`, one message a line.
fn traffic(count: usize) -> Vec<Vec<u8>> {
    let output = Command::new("python3")
        .arg(root().join("../shared/workload/gen_events.py"))
        .args(["--count", &count.to_string(), "--seed", "11"])
        .output()
        .expect("gen_events.py")
        .stdout;
    output
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Runs `veil erase --tenant t-1001 FLAG ID` on the stored data.
fn run_erase(data: &str, keys: &str, flag: &str, id: &str) -> Output {
    veil(
        &[
            "erase",
            "--tenant",
            "t-1001",
            flag,
            id,
            "--data-dir",
            data,
            "--keystore",
            keys,
        ],
        b"",
    )
}

/// Runs `veil erase --tenant t-1001 FLAG ID` on the stored data and asserts that it reports
/// `removed` rows and does not print the id.
fn erase(data: &str, keys: &str, flag: &str, id: &str, removed: usize) {
    let erased = ok(run_erase(data, keys, flag, id));
    let printed = String::from_utf8_lossy(&erased);
    assert!(!printed.contains(id), "the id is not printed");
    assert!(
        printed.contains(&format!(": {removed} rows removed")),
        "{printed}"
    );
}

/// The most frequent value of top-level `field` in `lines`.
fn most_frequent(lines: &[Vec<u8>], field: &str) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines {
        let message: Value = serde_json::from_slice(line).expect("json");
        if let Some(value) = message[field].as_str() {
            *counts.entry(value.to_owned()).or_default() += 1;
        }
    }
    let (value, _) = counts
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .expect("values");
    value
}

/// Every row of a table as (file, column → value) for the string columns asked for, plus the
/// `events` count (daily_activity) when present.
/// The rollup's pseudonym columns: the user, and an alias's previous user.
const ROLLUP_USERS: [&str; 2] = ["user", "previous_user"];

fn rows(data: &Path, table: &str, columns: &[&str]) -> Vec<(BTreeMap<String, String>, i64)> {
    let mut found = Vec::new();
    for (tenant, _, dir) in tables::partitions(data, table) {
        assert_eq!(tenant, "t-1001");
        for path in tables::parquet_files(&dir) {
            for batch in support::parquet::batches(&path) {
                assert!(batch.column_by_name("tenant").is_none(), "hive layout");
                for row in 0..batch.num_rows() {
                    let mut values = BTreeMap::new();
                    for name in columns {
                        let column = batch.column_by_name(name).expect("column");
                        let column = column.as_any().downcast_ref::<StringArray>().expect("text");
                        if column.is_valid(row) {
                            values.insert((*name).to_owned(), column.value(row).to_owned());
                        }
                    }
                    let count = batch
                        .column_by_name("events")
                        .and_then(|c| {
                            c.as_any()
                                .downcast_ref::<Int64Array>()
                                .map(|c| c.value(row))
                        })
                        .unwrap_or(1);
                    found.push((values, count));
                }
            }
        }
    }
    found
}

#[test]
fn erase_removes_one_users_rows_under_every_epoch_and_nothing_else() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let keys = keys_dir.path().to_str().expect("utf8");
    let data_dir = tempfile::tempdir().expect("tempdir");
    let data = data_dir.path().to_str().expect("utf8");
    let lines = traffic(3000);
    let user = most_frequent(&lines, "userId");

    let half = lines.len() / 2;
    let mut sanitized = filter(keys, &lines[..half].join(&b'\n'));
    let before_rotation = probe(keys, &user, "probe-1");
    ok(veil(
        &[
            "keys",
            "rotate",
            "--tenant",
            "t-1001",
            "--tier",
            "enhanced",
            "--keystore",
            keys,
        ],
        b"",
    ));
    sanitized.extend(filter(keys, &lines[half..].join(&b'\n')));
    let after_rotation = probe(keys, &user, "probe-2");
    assert_ne!(before_rotation, after_rotation, "a rotated key");
    let targets: BTreeSet<String> = [before_rotation, after_rotation].into();

    let stored = veil(&["processor", "--stdin", "--data-dir", data], &sanitized);
    ok(stored);

    let event_columns = ["message_id", "userId", "previousId"];
    let is_target = |values: &BTreeMap<String, String>, columns: &[&str]| {
        columns
            .iter()
            .any(|c| values.get(*c).is_some_and(|v| targets.contains(v)))
    };
    let events_before = rows(data_dir.path(), tables::EVENTS, &event_columns);
    let (target_rows, other_rows): (Vec<_>, Vec<_>) = events_before
        .iter()
        .partition(|(values, _)| is_target(values, &["userId", "previousId"]));
    for pseudonym in &targets {
        assert!(
            target_rows
                .iter()
                .any(|(values, _)| values.get("userId") == Some(pseudonym)),
            "the user has rows under both epochs"
        );
    }
    let rollup_before = rows(data_dir.path(), tables::DAILY_ACTIVITY, &ROLLUP_USERS);
    let rollup_target_rows = rollup_before
        .iter()
        .filter(|(values, _)| is_target(values, &ROLLUP_USERS))
        .count();
    assert!(rollup_target_rows > 0);
    let other_rollup_events: i64 = rollup_before
        .iter()
        .filter(|(values, _)| !is_target(values, &ROLLUP_USERS))
        .map(|(_, count)| count)
        .sum();

    // A baseline tenant is refused, without echoing the id.
    let refused = veil(
        &[
            "erase",
            "--tenant",
            "t-1000",
            "--user",
            &user,
            "--data-dir",
            data,
        ],
        b"",
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("baseline tier"), "{message}");
    assert!(!message.contains(&user));

    erase(
        data,
        keys,
        "--user",
        &user,
        target_rows.len() + rollup_target_rows,
    );

    let events_after = rows(data_dir.path(), tables::EVENTS, &event_columns);
    let ids = |rows: &[&(BTreeMap<String, String>, i64)]| -> BTreeSet<String> {
        rows.iter()
            .map(|(values, _)| values["message_id"].clone())
            .collect()
    };
    let after_refs: Vec<_> = events_after.iter().collect();
    assert_eq!(
        ids(&after_refs),
        ids(&other_rows),
        "exactly the others remain"
    );
    assert_eq!(events_after.len(), other_rows.len());
    let rollup_after = rows(data_dir.path(), tables::DAILY_ACTIVITY, &ROLLUP_USERS);
    assert!(
        !rollup_after
            .iter()
            .any(|(values, _)| is_target(values, &ROLLUP_USERS))
    );
    assert_eq!(
        rollup_after.iter().map(|(_, count)| count).sum::<i64>(),
        other_rollup_events
    );

    let audit =
        std::fs::read_to_string(data_dir.path().join("_audit/erasures.jsonl")).expect("audit log");
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["tenant"], "t-1001");
    assert_eq!(
        records[0]["rows_removed"].as_u64(),
        Some((target_rows.len() + rollup_target_rows) as u64)
    );
    assert!(!audit.contains(&user));
    assert!(
        targets
            .iter()
            .all(|pseudonym| !audit.contains(pseudonym.as_str()))
    );

    // Erasing again finds nothing.
    erase(data, keys, "--user", &user, 0);
}

#[test]
fn erase_by_anonymous_id_removes_the_devices_rows_and_the_alias_that_links_it() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let keys = keys_dir.path().to_str().expect("utf8");
    let data_dir = tempfile::tempdir().expect("tempdir");
    let data = data_dir.path().to_str().expect("utf8");
    let mut lines = traffic(2000);
    let device = most_frequent(&lines, "anonymousId");
    // The device before its user signed in, and the alias Segment's SDKs send at sign-in.
    for at in 0..3 {
        lines.push(
            format!(
                r#"{{"type":"track","event":"Document Opened","anonymousId":"{device}","messageId":"00000000-0000-4000-8000-0000000000b{at}","timestamp":"2026-11-01T08:0{at}:00.000Z","properties":{{"feature":"preview"}}}}"#
            )
            .into_bytes(),
        );
    }
    lines.push(
        format!(
            r#"{{"type":"alias","previousId":"{device}","userId":"u-signed-in","messageId":"00000000-0000-4000-8000-0000000000a1","timestamp":"2026-11-01T08:05:00.000Z"}}"#
        )
        .into_bytes(),
    );
    let sanitized = filter(keys, &lines.join(&b'\n'));
    let anonymous = pseudonym_in(
        keys,
        &format!(
            r#"{{"type":"identify","anonymousId":"{device}","messageId":"00000000-0000-4000-8000-0000000000fa"}}"#
        ),
        "anonymousId",
    );
    let as_previous = pseudonym_in(
        keys,
        &format!(
            r#"{{"type":"alias","previousId":"{device}","userId":"x","messageId":"00000000-0000-4000-8000-0000000000fb"}}"#
        ),
        "previousId",
    );
    ok(veil(
        &["processor", "--stdin", "--data-dir", data],
        &sanitized,
    ));

    let columns = ["message_id", "anonymousId", "previousId"];
    let is_device = |values: &BTreeMap<String, String>| {
        values.get("anonymousId") == Some(&anonymous)
            || values.get("previousId") == Some(&as_previous)
    };
    let events_before = rows(data_dir.path(), tables::EVENTS, &columns);
    let (device_rows, other_rows): (Vec<_>, Vec<_>) = events_before
        .iter()
        .partition(|(values, _)| is_device(values));
    let device_ids: BTreeSet<&str> = device_rows
        .iter()
        .map(|(values, _)| values["message_id"].as_str())
        .collect();
    for id in [
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000b2",
        "00000000-0000-4000-8000-0000000000a1",
    ] {
        assert!(device_ids.contains(id), "{id} is stored under the device");
    }
    assert!(
        device_rows.len() > 6,
        "the device also sent signed-in traffic"
    );
    let rollup_before = rows(data_dir.path(), tables::DAILY_ACTIVITY, &ROLLUP_USERS);
    // The device's anonymous activity, and the alias linking it (as its previous user).
    let is_device_user = |values: &BTreeMap<String, String>| {
        values.get("user") == Some(&anonymous) || values.get("previous_user") == Some(&as_previous)
    };
    let device_rollup_rows = rollup_before
        .iter()
        .filter(|(values, _)| is_device_user(values))
        .count();
    assert!(
        device_rollup_rows > 0,
        "the anonymous activity is in the rollup"
    );
    assert!(
        rollup_before
            .iter()
            .any(|(values, _)| values.get("previous_user") == Some(&as_previous)),
        "the rollup keeps the alias's link"
    );
    let other_rollup_events: i64 = rollup_before
        .iter()
        .filter(|(values, _)| !is_device_user(values))
        .map(|(_, count)| count)
        .sum();

    erase(
        data,
        keys,
        "--anonymous-id",
        &device,
        device_rows.len() + device_rollup_rows,
    );

    let events_after = rows(data_dir.path(), tables::EVENTS, &columns);
    let remaining: BTreeSet<&str> = events_after
        .iter()
        .map(|(values, _)| values["message_id"].as_str())
        .collect();
    let others: BTreeSet<&str> = other_rows
        .iter()
        .map(|(values, _)| values["message_id"].as_str())
        .collect();
    assert_eq!(remaining, others, "exactly the others remain");
    let rollup_after = rows(data_dir.path(), tables::DAILY_ACTIVITY, &ROLLUP_USERS);
    assert!(
        !rollup_after
            .iter()
            .any(|(values, _)| is_device_user(values))
    );
    assert_eq!(
        rollup_after.iter().map(|(_, count)| count).sum::<i64>(),
        other_rollup_events
    );
    let audit =
        std::fs::read_to_string(data_dir.path().join("_audit/erasures.jsonl")).expect("audit log");
    for secret in [&device, &anonymous, &as_previous] {
        assert!(!audit.contains(secret.as_str()));
    }

    // Neither identifier given: refused by the command line.
    let refused = veil(&["erase", "--tenant", "t-1001", "--data-dir", data], b"");
    assert!(!refused.status.success());
}

#[test]
fn erase_finds_a_user_sent_in_composed_and_decomposed_spellings() {
    let keys_dir = tempfile::tempdir().expect("tempdir");
    let keys = keys_dir.path().to_str().expect("utf8");
    let data_dir = tempfile::tempdir().expect("tempdir");
    let data = data_dir.path().to_str().expect("utf8");
    // One person, `Zoë`, as one code point from one client and as `e` + U+0308 from another;
    // and someone else.
    let (composed, decomposed) = ("Zo\u{eb}-17", "Zoe\u{308}-17");
    let messages: Vec<String> = [composed, decomposed, "Zoe-17", composed]
        .iter()
        .enumerate()
        .map(|(index, user)| {
            format!(
                r#"{{"type":"identify","userId":"{user}","messageId":"2c9a0f1e-8b7d-4c6e-9f00-00000000000{index}","timestamp":"2026-11-20T08:00:0{index}.000Z"}}"#
            )
        })
        .collect();
    let sanitized = filter(keys, messages.join("\n").as_bytes());
    let pseudonyms: Vec<String> = sanitized
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let message: Value = serde_json::from_slice(line).expect("json");
            message["pseudonyms"]["userId"]
                .as_str()
                .expect("pseudonym")
                .to_owned()
        })
        .collect();
    assert_eq!(pseudonyms.len(), 4);
    assert_eq!(pseudonyms[0], pseudonyms[1], "one person, one pseudonym");
    assert_eq!(pseudonyms[0], pseudonyms[3]);
    assert_ne!(pseudonyms[0], pseudonyms[2], "another person");
    ok(veil(
        &["processor", "--stdin", "--data-dir", data],
        &sanitized,
    ));
    let events = |columns: &[&str]| rows(data_dir.path(), tables::EVENTS, columns);
    assert_eq!(events(&["userId"]).len(), 4);

    // Erased by the spelling the second client used; the event rows and the rollup's row go.
    let rollup_rows = rows(data_dir.path(), tables::DAILY_ACTIVITY, &ROLLUP_USERS)
        .iter()
        .filter(|(values, _)| values.get("user") == Some(&pseudonyms[0]))
        .count();
    assert!(rollup_rows > 0);
    erase(data, keys, "--user", decomposed, 3 + rollup_rows);
    let left = events(&["userId"]);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0.get("userId"), Some(&pseudonyms[2]));

    // An empty or placeholder id names nobody (the gateway never stores one): refused, nothing
    // audited, the id not echoed.
    let audit = || std::fs::read_to_string(data_dir.path().join("_audit/erasures.jsonl"));
    let audited = audit().expect("audit log");
    for (flag, id) in [
        ("--user", ""),
        ("--anonymous-id", ""),
        ("--user", " Undefined "),
        ("--anonymous-id", "NULL "),
    ] {
        let refused = run_erase(data, keys, flag, id);
        assert!(!refused.status.success(), "{flag}");
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(message.contains("placeholder id"), "{flag}: {message}");
        assert!(id.is_empty() || !message.contains(id), "{message}");
    }
    assert_eq!(audit().expect("audit log"), audited);
}
