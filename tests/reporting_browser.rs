//! The dashboards in a real headless browser (Debian's `chromium`): reference traffic from
//! `gen_events.py` goes through `veil filter` and the processor's Parquet writer, the service
//! runs on a real port, and chromium logs in with `?token=` (the cookie), loads each dashboard,
//! and dumps its DOM and a screenshot (under the target directory, printed by the test).

mod reporting_support;
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reporting_support::*;

const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/workload/gen_events.py"
);

/// Reference traffic spread over November (the generator puts small runs on one day), split by
/// tenant and sanitized by `veil filter`, as the gateway would.
fn sanitized_reference_traffic(keystore: &Path) -> Vec<String> {
    let output = Command::new("python3")
        .args([GENERATOR, "--count", "12000", "--seed", "11"])
        .output()
        .expect("python3 runs the generator");
    assert!(output.status.success());
    let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (index, line) in String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .enumerate()
    {
        let mut message: serde_json::Value = serde_json::from_str(line).expect("json");
        let tenant = message["context"]["groupId"]
            .as_str()
            .expect("groupId")
            .to_owned();
        let day = 1 + (index * 7919 % 30);
        let timestamp = message["timestamp"].as_str().expect("timestamp").to_owned();
        message["timestamp"] = format!("2026-11-{day:02}{}", &timestamp[10..]).into();
        by_tenant
            .entry(tenant)
            .or_default()
            .push(message.to_string());
    }
    let mut sanitized = Vec::new();
    for (tenant, lines) in by_tenant {
        let tier = if tenant == "t-1001" {
            "enhanced"
        } else {
            "baseline"
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(["filter", "--tenant", &tenant, "--tier", tier, "--keystore"])
            .arg(keystore)
            .arg("--allowlist")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("veil filter");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = lines.join("\n") + "\n";
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().expect("filter output");
        writer.join().expect("writer").expect("write");
        assert!(output.status.success());
        sanitized.extend(
            String::from_utf8(output.stdout)
                .expect("utf-8")
                .lines()
                .map(str::to_owned),
        );
    }
    sanitized
}

async fn browse(args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let mut command = tokio::process::Command::from(support::headless_chromium(profile.path()));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs (apt-get install chromium)");
    assert!(output.status.success(), "chromium failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_render_in_headless_chromium() {
    let mut fixture = Fixture::new();
    // The repository's demo tenants (seats for all eight).
    fixture.sources.tenants = Path::new(env!("CARGO_MANIFEST_DIR")).join("tenants.yaml");
    let lines = sanitized_reference_traffic(&fixture.sources.keystore);
    assert!(
        lines.len() > 9000,
        "most reference messages pass the filter"
    );
    store_messages(&fixture.data_dir(), &fixture.layout(), &lines);
    let state = fixture.state();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(veil_reporting::serve_on(listener, state, async move {
        let _ = stopped.await;
    }));
    let shots: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reporting-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    for (name, token, expect_charts, expect_text) in [
        ("tenant", T1000, 8, "Monthly active users"),
        ("license", VENDOR, 3, "License compliance"),
        ("review", REVIEWER, 1, "Allowlist audit"),
    ] {
        // `?token=` logs in (HttpOnly cookie) and redirects to the role's dashboard (its latest
        // month), as a person following a link would.
        let url = format!("http://{address}/login?token={token}");
        let dom = browse(&["--dump-dom".to_owned(), url.clone()]).await;
        assert!(
            dom.contains(expect_text),
            "{name}: the dashboard loaded: {}",
            &dom[..dom.len().min(400)]
        );
        assert!(!dom.contains("Sign in"), "{name}: logged in");
        let charts = dom.matches("<svg").count();
        assert!(charts >= expect_charts, "{name}: {charts} charts rendered");
        if expect_charts > 0 {
            assert!(
                dom.contains("class=\"bar\""),
                "{name}: bars drawn with data"
            );
        }
        let file = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        browse(&[
            format!("--screenshot={}", file.display()),
            "--window-size=1440,2200".to_owned(),
            url,
        ])
        .await;
        let png = std::fs::read(&file).expect("screenshot written");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "{name}: a real screenshot"
        );
        println!("screenshot: {}", file.display());
    }
    // Without the login, no dashboard.
    let dom = browse(&[
        "--dump-dom".to_owned(),
        format!("http://{address}/tenants/t-1000"),
    ])
    .await;
    assert!(
        dom.contains("Sign in") || dom.contains("unauthorized"),
        "no cookie, no dashboard"
    );
    stop.send(()).expect("stop");
    server.await.expect("join").expect("clean shutdown");
}
