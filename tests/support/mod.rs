//! Real parts for integration tests: a tansu broker process on loopback, topic setup, a
//! consumer that reads topics back, and the gateway served on a real port.

#![allow(dead_code, unreachable_pub)]

pub mod cli;
pub mod gateway;
pub mod parquet;
pub mod processor;
pub mod traffic;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use veil_config::KafkaConfig;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Where the tansu binary is: `$VEIL_TANSU`, `$PATH`, or cargo's bin directory.
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VEIL_TANSU") {
        return PathBuf::from(path);
    }
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(found) = in_path {
        return found;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .expect("HOME is set");
    let candidate = cargo_home.join("bin/tansu");
    assert!(
        candidate.is_file(),
        "integration tests need the tansu broker: `cargo install tansu --locked --features libsql,dynostore` (.ci/run does this)"
    );
    candidate
}

/// A helper process (a static file server, a browser) killed when the test is done with it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `child` a signal (`-TERM`, `-STOP`, …) with `kill`; whether it was delivered.
pub fn signal(child: &Child, name: &str) -> bool {
    Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// Headless Chromium (`$VEIL_CHROMIUM`, else Debian's `chromium`) with its profile in
/// `profile`, and no traffic of its own (updates, sync, QUIC).
pub fn headless_chromium(profile: &Path) -> Command {
    let binary = std::env::var("VEIL_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let mut command = Command::new(binary);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
        ])
        .args(["--no-first-run", "--disable-background-networking"])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// Waits until something accepts connections on `port` of 127.0.0.1.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tansu broker on loopback with its data in a temporary directory.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Broker {
        let mut broker = Broker {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("log file");
        // Run in the temporary directory: tansu reads a `.env` there, and the sqlite path is relative.
        let child = Command::new(tansu_binary())
            .current_dir(self.dir.path())
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        wait_listening(self.port, "tansu");
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kafka settings pointing at this broker, with few partitions for fast tests.
    pub fn kafka_config(&self) -> KafkaConfig {
        let mut config = KafkaConfig {
            bootstrap_servers: self.bootstrap(),
            ..KafkaConfig::default()
        };
        config.topics.partitions = 3;
        config
    }

    /// The end of the broker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default();
        let start = log.len().saturating_sub(
            std::env::var("BROKER_LOG_TAIL_BYTES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3000),
        );
        String::from_utf8_lossy(&log.as_bytes()[start..]).into_owned()
    }

    /// Kills the broker as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads every message of `topics`, from the beginning to the end each partition has now (its
/// high watermark), waiting at most `timeout`. Reading to the watermark, not to a count, matters:
/// a retried produce can store a message twice.
pub fn read_topics(
    bootstrap: &str,
    topics: &[String],
    timeout: Duration,
) -> Vec<(String, i32, Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("veil-test-{}", free_port()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    let mut assignment = TopicPartitionList::new();
    let mut remaining: std::collections::HashMap<(String, i32), i64> =
        std::collections::HashMap::new();
    for topic in topics {
        let metadata = loop {
            match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                Ok(metadata) => break metadata,
                Err(error) if Instant::now() > deadline => panic!("metadata of {topic}: {error}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        for partition in metadata.topics()[0].partitions() {
            let (low, high) = loop {
                match consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(5)) {
                    Ok(marks) => break marks,
                    Err(error) if Instant::now() > deadline => {
                        panic!("watermarks of {topic}: {error}")
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            if high > low {
                remaining.insert((topic.clone(), partition.id()), high);
            }
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .expect("assignment");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut messages = Vec::new();
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "topics not read to their end in time: {remaining:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let partition = (message.topic().to_owned(), message.partition());
                if remaining
                    .get(&partition)
                    .is_some_and(|high| message.offset() + 1 >= *high)
                {
                    remaining.remove(&partition);
                }
                messages.push((
                    message.topic().to_owned(),
                    message.partition(),
                    message.key().unwrap_or_default().to_vec(),
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(error)) => eprintln!("consumer: {error}"),
            None => {}
        }
    }
    messages
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Values in `gen_events.py` traffic that must never leave the gateway.
pub const FORBIDDEN_SAMPLES: &[&str] = &[
    "@hartwell.example",
    "@brightline.example",
    ".example",
    "Hartwell",
    "Brightline",
    "Kessler",
    "LLP",
    "Okafor",
    "Schmidt",
    "Alice",
    "Merger",
    "Agreement",
    ".docx",
    ".pdf",
    "laptop",
    "Associate",
];
