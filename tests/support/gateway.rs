//! `veil gateway` as a child process on a real port in front of a test broker, and the dry run
//! (`veil filter`) that says which of a traffic's messages the same policy lets through.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::veil;
use super::{KillOnDrop, free_port, repo_root};

/// A running `veil gateway`, killed if the test ends early.
pub struct GatewayProcess {
    process: KillOnDrop,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

impl GatewayProcess {
    /// Starts the gateway against `bootstrap` with topics of `partitions` partitions and its
    /// keys in `keystore`, and waits until `/readyz` answers 200.
    pub fn start(bootstrap: &str, keystore: &Path, partitions: u32) -> GatewayProcess {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_veil"))
            .current_dir(repo_root())
            .arg("gateway")
            .env("VEIL_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
            .env("VEIL_KAFKA__TOPICS__PARTITIONS", partitions.to_string())
            .env("VEIL_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
            .env("VEIL_GATEWAY__KEYSTORE", keystore)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("veil gateway starts");
        let gateway = GatewayProcess {
            process: KillOnDrop(child),
            port,
        };
        gateway.wait_ready();
        gateway
    }

    /// `http://127.0.0.1:PORT`, the host an SDK is pointed at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready =
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok_and(|mut stream| {
                    let _ = stream
                        .write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
                    let mut answer = String::new();
                    let _ = stream.read_to_string(&mut answer);
                    answer.starts_with("HTTP/1.1 200")
                });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the gateway with SIGTERM, asserts that it exits cleanly, and returns its logs.
    pub fn stop(mut self) -> String {
        let child = &mut self.process.0;
        super::signal(child, "-TERM");
        let status = child.wait().expect("the gateway exits");
        assert!(status.success(), "clean exit after SIGTERM");
        let mut logs = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut logs)
            .expect("logs");
        logs
    }
}

/// The message ids `veil filter` (the same policy, as a dry run) accepts from `input` for
/// tenant t-1000 with the keys in `keystore`.
pub fn dry_run_accepted(input: &[u8], keystore: &Path) -> BTreeSet<String> {
    let keystore = keystore.to_str().expect("utf8 path");
    let output = veil(
        &["filter", "--tenant", "t-1000", "--keystore", keystore],
        input,
    );
    output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let value: Value = serde_json::from_slice(line).expect("JSON");
            value["messageId"].as_str().expect("id").to_owned()
        })
        .collect()
}
