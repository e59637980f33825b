//! `veil filter`, `veil allowlist` and `veil keys` driven as a user would, on the reference
//! client traffic from `../shared/workload/gen_events.py`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cli::veil;
use veil_sanitized::SanitizedMessage;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(arguments: &[&str]) -> Vec<u8> {
    let script = root().join("../shared/workload/gen_events.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(arguments)
        .output()
        .expect("python3 runs gen_events.py");
    assert!(output.status.success(), "gen_events.py failed");
    output.stdout
}

fn filter(keystore: &Path, input: &[u8]) -> (Vec<SanitizedMessage>, String) {
    let keystore = keystore.to_str().expect("utf8 path");
    let output = veil(
        &[
            "filter",
            "--allowlist",
            "allowlist.yaml",
            "--tenant",
            "t-1000",
            "--keystore",
            keystore,
        ],
        input,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf8");
    for forbidden in [
        "@",
        "Hartwell",
        "Brightline",
        "Okafor",
        ".docx",
        ".pdf",
        "Pleadings",
        "Mozilla",
        "laptop",
        "Associate",
    ] {
        // The failure names the marker's length, never the marker (test output is logged too).
        assert!(
            !stdout.contains(forbidden),
            "a forbidden marker ({} bytes) left the gateway",
            forbidden.len()
        );
    }
    let messages = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("contract-valid line"))
        .collect();
    (messages, String::from_utf8(output.stderr).expect("utf8"))
}

fn digest() -> String {
    let output = veil(&["allowlist", "check", "allowlist.yaml"], b"");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

#[test]
fn filter_sanitizes_reference_traffic_and_names_policy_and_epoch() {
    let keys = tempfile::tempdir().expect("tempdir");
    let input = generate(&["--count", "2000", "--seed", "11"]);
    let (messages, stderr) = filter(keys.path(), &input);
    assert_eq!(messages.len(), 2000, "{stderr}");
    let policy = digest();
    assert!(policy.starts_with("sha256:") && policy.len() == 71);
    let kinds: std::collections::BTreeSet<&str> = messages
        .iter()
        .map(|message| message.kind.as_str())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["group", "identify", "page", "track"]
    );
    for message in &messages {
        assert_eq!(message.policy, policy);
        assert_eq!(message.tenant, "t-1000");
        assert!(message.pseudonyms.contains_key("userId"));
        assert!(message.key_epoch.len() == 7, "a baseline epoch is a month");
    }
    let tracks: Vec<&SanitizedMessage> = messages
        .iter()
        .filter(|message| message.event.is_some())
        .collect();
    assert!(
        tracks
            .iter()
            .all(|message| message.fields.contains_key("properties.feature")
                && message.fields.contains_key("context.app.version"))
    );
    assert!(
        stderr.contains("messages: 2000 in, 2000 out, 0 rejected"),
        "{stderr}"
    );
    assert!(
        stderr.contains("properties.document_name (not_allowlisted):"),
        "{stderr}"
    );
    assert!(
        stderr.contains("context.ip (not_allowlisted): 2000"),
        "{stderr}"
    );
    // The same traffic again gives the same pseudonyms (same tenant, same epoch, same keystore).
    let (again, _) = filter(keys.path(), &input);
    assert_eq!(messages[0].pseudonyms, again[0].pseudonyms);
    let listed = veil(
        &[
            "keys",
            "list",
            "--keystore",
            keys.path().to_str().expect("utf8"),
        ],
        b"",
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("t-1000"));
}

#[test]
fn batches_are_split_and_bad_lines_rejected_alone_without_values() {
    let keys = tempfile::tempdir().expect("tempdir");
    // A file saved with a byte order mark: its first line is read without it.
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend(generate(&[
        "--count", "250", "--seed", "3", "--batch", "100",
    ]));
    input.extend_from_slice(b"{\"type\":\"track\",\"event\":\"Document Opened\",\"userId\":\"alice@firm.example\",\"userId\":\"x\"}\n");
    input.extend_from_slice(b"{\"type\":\"identify\",\"userId\":\"bob@firm.example\"\n");
    input.extend_from_slice(b"\xff\xfe not utf8\n");
    input.extend_from_slice(
        b"{\"type\":\"track\",\"event\":\"Merger Agreement.docx\",\"userId\":\"u\"}\n",
    );
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"{\"type\":\"identify\",\"userId\":\"u-1\",\"messageId\":\"ok-1\"}\n");
    let (messages, stderr) = filter(keys.path(), &input);
    assert_eq!(messages.len(), 251, "{stderr}");
    assert!(
        stderr.contains("line 4: rejected duplicate_key field=userId"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: rejected malformed_json"),
        "{stderr}"
    );
    assert!(stderr.contains("line 6: rejected invalid_utf8"), "{stderr}");
    assert!(
        stderr.contains("line 7: rejected event_not_allowlisted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("messages: 255 in, 251 out, 4 rejected"),
        "{stderr}"
    );
    for secret in ["alice", "bob", "Merger", "not utf8"] {
        assert!(!stderr.contains(secret), "stderr echoes a message value");
    }
}

#[test]
fn messages_without_an_id_get_one_derived_from_their_bytes_and_batch_items_are_named() {
    let keys = tempfile::tempdir().expect("tempdir");
    let plain = b"{\"type\":\"identify\",\"userId\":\"u-1\"}";
    let other = b"{\"type\":\"identify\",\"userId\":\"u-2\"}";
    let mut input = Vec::new();
    for line in [&plain[..], &plain[..], &other[..]] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    // A batch whose second item is refused: the rejection names the line and the item.
    input.extend_from_slice(
        b"{\"batch\":[{\"type\":\"identify\",\"userId\":\"u-3\",\"messageId\":\"b77555e7-7f75-d5c2-91f6-59b63a479870\"},{\"type\":\"track\",\"event\":\"Secret Matter.docx\",\"userId\":\"u-4\"}]}\n",
    );
    let (messages, stderr) = filter(keys.path(), &input);
    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{stderr}");
    assert!(ids[0].starts_with("veil-") && ids[0].len() > 20, "{ids:?}");
    assert_eq!(ids[0], ids[1], "the same bytes get the same id");
    assert_ne!(ids[0], ids[2], "other bytes get another id");
    assert_eq!(
        ids[3], "b77555e7-7f75-d5c2-91f6-59b63a479870",
        "an SDK's id is kept"
    );
    assert!(
        stderr.contains("line 4 item 2: rejected event_not_allowlisted"),
        "{stderr}"
    );
    assert!(!stderr.contains("Secret"), "{stderr}");
}

#[test]
fn allowlist_check_and_diff_report_to_reviewers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let current = std::fs::read_to_string(root().join("allowlist.yaml")).expect("allowlist");
    let bytes_digest = {
        let output = Command::new("sha256sum")
            .arg(root().join("allowlist.yaml"))
            .output()
            .expect("sha256sum");
        String::from_utf8(output.stdout)
            .expect("utf8")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        digest(),
        format!("sha256:{bytes_digest}"),
        "the digest is the file's SHA-256"
    );

    let wider = current.replace(
        "    properties.success: { keep: boolean, reason: \"success rate of the action, for reliability work\" }\n",
        "    properties.success: { keep: boolean, reason: \"success rate of the action, for reliability work\" }\n    properties.retry_count: { keep: integer, reason: \"how often users retry\" }\n",
    );
    // And a range widened from a day to a week.
    let wider = wider.replace("min: 0, max: 86400000,", "min: 0, max: 604800000,");
    assert_ne!(wider, current);
    let wider_path = dir.path().join("wider.yaml");
    std::fs::write(&wider_path, &wider).expect("write");
    let output = veil(
        &[
            "allowlist",
            "diff",
            "allowlist.yaml",
            wider_path.to_str().expect("utf8"),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "+ track \"Document Opened\": properties.retry_count (keep integer for all tenants)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "+ track \"Document Opened\": properties.duration_ms (keep integer from 0 to 604800000 for all tenants), was (keep integer from 0 to 86400000 for all tenants)"
        ),
        "{stdout}"
    );
    let same = veil(
        &["allowlist", "diff", "allowlist.yaml", "allowlist.yaml"],
        b"",
    );
    assert_eq!(same.status.code(), Some(0));

    let leaky = current.replace(
        "  context.locale:",
        "  context.traits.email: { keep: string, reason: \"support\" }\n  context.locale:",
    );
    let leaky_path = dir.path().join("leaky.yaml");
    std::fs::write(&leaky_path, &leaky).expect("write");
    let output = veil(
        &["allowlist", "check", leaky_path.to_str().expect("utf8")],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = leaky
        .lines()
        .position(|line| line.contains("context.traits.email"))
        .expect("planted")
        + 1;
    assert!(
        stderr.contains(&format!(
            "line {line}: field `context.traits.email` is of forbidden class e-mail address"
        )),
        "{stderr}"
    );
}

#[test]
fn keys_rotate_refuses_tenants_and_tiers_the_tenants_file_does_not_give() {
    let keys = tempfile::tempdir().expect("tempdir");
    let keystore = keys.path().to_str().expect("utf8");
    for (more, refusal) in [
        (
            &["--tenant", "t-9999"][..],
            "tenant t-9999 is not in tenants.yaml",
        ),
        // t-1000 is a baseline tenant: a stable (enhanced) key would link its users forever.
        (
            &["--tenant", "t-1000", "--tier", "enhanced"][..],
            "tenant t-1000 is on the baseline tier in tenants.yaml, not enhanced",
        ),
    ] {
        let mut args = vec!["keys", "rotate", "--keystore", keystore];
        args.extend_from_slice(more);
        let refused = veil(&args, b"");
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(refusal), "{stderr}");
    }
    assert_eq!(
        std::fs::read_dir(keys.path())
            .map(Iterator::count)
            .unwrap_or(0),
        0,
        "no key was made"
    );
}

#[test]
fn keys_rotate_and_shred_change_pseudonyms_and_leave_a_record() {
    let keys = tempfile::tempdir().expect("tempdir");
    let keystore = keys.path().to_str().expect("utf8");
    let input = b"{\"type\":\"identify\",\"userId\":\"u-1\",\"messageId\":\"m-1\"}\n";
    let (before, _) = filter(keys.path(), input);
    let rotated = veil(
        &[
            "keys",
            "rotate",
            "--keystore",
            keystore,
            "--tenant",
            "t-1000",
        ],
        b"",
    );
    assert!(rotated.status.success());
    let (after, _) = filter(keys.path(), input);
    assert_ne!(before[0].pseudonyms, after[0].pseudonyms);
    assert_eq!(after[0].key_epoch, format!("{}.r2", before[0].key_epoch));
    let shred = veil(
        &[
            "keys",
            "shred",
            "--keystore",
            keystore,
            "--tenant",
            "t-1000",
            "--epoch",
            &before[0].key_epoch,
        ],
        b"",
    );
    assert!(
        shred.status.success(),
        "{}",
        String::from_utf8_lossy(&shred.stderr)
    );
    let listed = String::from_utf8(veil(&["keys", "list", "--keystore", keystore], b"").stdout)
        .expect("utf8");
    assert!(
        listed
            .lines()
            .any(|line| line.contains(&before[0].key_epoch) && line.contains("shredded")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|line| line.contains(&after[0].key_epoch) && line.contains("active")),
        "{listed}"
    );
}

#[test]
fn maintenance_commands_refuse_mistyped_paths_and_a_retention_of_zero() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let missing = scratch.path().join("no-such-dir");
    let missing = missing.to_str().expect("utf8");
    for arguments in [
        vec!["keys", "list", "--keystore", missing],
        vec!["keys", "shred", "--expired", "--keystore", missing],
        vec![
            "retention",
            "run",
            "--data-dir",
            missing,
            "--keystore",
            missing,
        ],
        vec![
            "erase",
            "--tenant",
            "t-1001",
            "--user",
            "u-1",
            "--data-dir",
            missing,
            "--keystore",
            missing,
        ],
    ] {
        let output = veil(&arguments, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{arguments:?} succeeded");
        assert!(stderr.contains("does not exist"), "{arguments:?}: {stderr}");
        assert!(
            !scratch.path().join("no-such-dir").exists(),
            "{arguments:?} created the path"
        );
    }
    let keys = tempfile::tempdir().expect("tempdir");
    let keystore = keys.path().to_str().expect("utf8");
    let output = veil(
        &[
            "keys",
            "shred",
            "--expired",
            "--retain-months",
            "0",
            "--keystore",
            keystore,
        ],
        b"",
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("current month"));
}
