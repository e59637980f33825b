//! The gateway against a real Kafka-API broker (tansu) on loopback: an official Segment SDK's
//! traffic arrives sanitized, and a broker crash in the middle of a load loses no acknowledged message.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cli::veil;
use support::traffic::{forbidden_values, gen_events, send_with_python_sdk};
use support::{Broker, free_port, read_topics, repo_root};
use veil_config::TenantsFile;
use veil_gateway::allowlist::Allowlist;
use veil_gateway::pseudonym::KeyStore;
use veil_gateway::server::{Gateway, GatewayConfig, serve};
use veil_gateway::sink::{KafkaPublisher, create_topics, partition_for};

/// The message ids `veil filter` (the same policy, as a dry run) accepts from `input`.
fn dry_run_accepted(input: &[u8], keystore: &std::path::Path) -> BTreeSet<String> {
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

/// Kills a child process if the test ends early.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut stream| {
            let _ =
                stream.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
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

#[test]
fn official_python_sdk_traffic_arrives_sanitized_in_kafka() {
    let broker = Broker::start();
    let keys = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut gateway = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_veil"))
            .current_dir(repo_root())
            .arg("gateway")
            .env("VEIL_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap())
            .env("VEIL_KAFKA__TOPICS__PARTITIONS", "3")
            .env("VEIL_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
            .env("VEIL_GATEWAY__KEYSTORE", keys.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("veil gateway starts"),
    );
    wait_ready(port);

    let input = gen_events(1500, 11);
    let summary =
        send_with_python_sdk(&format!("http://127.0.0.1:{port}"), "wk_demo_t1000", &input);
    assert_eq!(summary, json!({"calls": 1500, "failed_batches": 0}));

    let expected = dry_run_accepted(&input, keys.path());
    assert!(expected.len() > 1000, "most of the traffic is allowlisted");
    let topic = "veil.sanitized.us".to_owned();
    let records = read_topics(&broker.bootstrap(), &[topic], Duration::from_secs(30));
    let mut arrived = BTreeSet::new();
    let mut packed = 0;
    for (_, partition, key, payload) in &records {
        // A batch's messages for one partition travel as one record, one message a line.
        let lines: Vec<&[u8]> = payload.split(|byte| *byte == b'\n').collect();
        if lines.len() > 1 {
            packed += 1;
            assert_eq!(key, b"t-1000", "a packed record is keyed by its tenant");
        }
        for line in &lines {
            let message: Value = serde_json::from_slice(line).expect("sanitized JSON");
            assert_eq!(message["tenant"], "t-1000");
            assert_eq!(message["tier"], "baseline");
            let user = message["pseudonyms"]["userId"]
                .as_str()
                .expect("a user pseudonym");
            let own_key = format!("t-1000/{user}");
            if lines.len() == 1 {
                assert_eq!(key, own_key.as_bytes(), "keyed by the user's pseudonym");
            }
            assert_eq!(
                *partition,
                partition_for(own_key.as_bytes(), 3),
                "in the partition of the user's key, packed or not"
            );
            assert!(arrived.insert(message["messageId"].as_str().expect("id").to_owned()));
        }
    }
    assert!(packed > 0, "the SDK's batches were packed per partition");
    let payloads: Vec<String> = records
        .iter()
        .map(|(_, _, _, payload)| String::from_utf8_lossy(payload).into_owned())
        .collect();
    let everything = payloads.join("\n");
    let forbidden = forbidden_values(&input);
    assert!(forbidden.len() > 1000);
    for value in &forbidden {
        // Synthetic test data, so naming it is fine here.
        assert!(
            !everything.contains(value.as_str()),
            "{value:?} left the gateway"
        );
    }

    // The audit trail: rejected events and dropped fields by name, never values.
    let audit = read_topics(
        &broker.bootstrap(),
        &["veil.rejections".to_owned()],
        Duration::from_secs(10),
    );
    assert!(!audit.is_empty(), "audit records were written");
    let audit_text: String = audit
        .iter()
        .map(|(_, _, _, payload)| String::from_utf8_lossy(payload).into_owned())
        .collect();
    assert!(
        audit_text.contains("\"field\":\"context.ip\""),
        "dropped fields are named"
    );
    assert!(audit_text.contains("properties.document_name"));
    for value in &forbidden {
        assert!(
            !audit_text.contains(value.as_str()),
            "a forbidden value reached the audit topic"
        );
    }

    // Graceful shutdown on SIGTERM.
    let _ = Command::new("kill")
        .args(["-TERM", &gateway.0.id().to_string()])
        .status();
    let status = gateway.0.wait().expect("the gateway exits");
    assert!(status.success(), "clean exit after SIGTERM");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut gateway.0.stderr.take().expect("stderr"), &mut logs)
        .expect("logs");
    assert!(
        logs.contains("\"message\":\"gateway listening\""),
        "JSON logs: {logs}"
    );
    for value in &forbidden {
        assert!(!logs.contains(value.as_str()), "no value in the logs");
    }
}

fn track_batch(run: &str, batch: usize, size: usize) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..size)
        .map(|index| format!("{run}-{batch}-{index}"))
        .collect();
    let items: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "track", "event": "Document Opened", "userId": format!("u-{}", id.len() % 7),
                         "messageId": id, "properties": {"feature": "preview", "document_name": "Secret Plan.docx"}}))
        .collect();
    (json!({"batch": items}).to_string(), ids)
}

#[test]
fn acknowledged_messages_survive_a_broker_crash() {
    let mut broker = Broker::start();
    let mut kafka = broker.kafka_config();
    // tansu 0.6 panics in its idempotent-producer check when a producer id outlives a broker
    // restart ("more or less than one row", tansu-storage lite.rs), and then refuses every
    // produce. With acks=all and no idempotence, a retry may duplicate but never lose a message,
    // which is what this test asserts; the processor deduplicates by messageId.
    kafka
        .properties
        .insert("enable.idempotence".to_owned(), "false".to_owned());
    let keys = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = GatewayConfig {
        delivery_timeout_ms: 4_000,
        rate_limit_per_second: 0,
        ..GatewayConfig::default()
    };
    let policy = Allowlist::load(&repo_root().join("allowlist.yaml"))
        .expect("policy")
        .compile();
    let tenants = TenantsFile::load(&repo_root().join("tenants.yaml")).expect("tenants");
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, server) = runtime.block_on(async {
        create_topics(&kafka).await.expect("topics");
        let publisher = KafkaPublisher::new(&kafka, config.delivery_timeout()).expect("producer");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port 0");
        let address = listener.local_addr().expect("address");
        let gateway = Arc::new(Gateway::new(
            config,
            Arc::new(policy),
            tenants.write_key_index(),
            KeyStore::open(keys.path()).expect("keystore"),
            &kafka.topics,
            Arc::new(publisher),
        ));
        let server = tokio::spawn(serve(listener, gateway, async {
            let _ = stopped.await;
        }));
        (address, server)
    });

    let url = format!("http://{address}/v1/batch");
    let load = runtime.spawn(async move {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let client = client.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = 0usize;
                let started = Instant::now();
                let mut batch = 0;
                while started.elapsed() < Duration::from_secs(14) {
                    let (body, ids) = track_batch(&format!("w{worker}"), batch, 50);
                    batch += 1;
                    let answer = client
                        .post(&url)
                        .basic_auth("wk_demo_t1000", Some(""))
                        .body(body)
                        .send()
                        .await;
                    match answer.map(|response| response.status().as_u16()) {
                        Ok(200) => acknowledged.extend(ids),
                        Ok(503) => refused += 1,
                        Ok(status) => panic!("unexpected status {status}"),
                        Err(_) => refused += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (acknowledged, refused)
            }));
        }
        let mut acknowledged = Vec::new();
        let mut refused = 0;
        for task in tasks {
            let (ids, failed) = task.await.expect("worker");
            acknowledged.extend(ids);
            refused += failed;
        }
        (acknowledged, refused)
    });

    std::thread::sleep(Duration::from_secs(3));
    broker.kill();
    std::thread::sleep(Duration::from_secs(5));
    broker.restart();
    let (acknowledged, refused) = runtime.block_on(load).expect("load");
    let _ = stop_server.send(());
    runtime
        .block_on(server)
        .expect("server task")
        .expect("server");

    assert!(refused > 0, "the outage was felt: some requests got 503");
    assert!(
        acknowledged.len() > 1000,
        "traffic flowed before and after the outage"
    );
    eprintln!(
        "fault test: {} acknowledged, {refused} refused",
        acknowledged.len()
    );
    eprintln!("broker log tail:\n{}", broker.log_tail());
    let unique: HashSet<&String> = acknowledged.iter().collect();
    let records = read_topics(
        &broker.bootstrap(),
        &["veil.sanitized.us".to_owned()],
        Duration::from_secs(60),
    );
    let stored: HashSet<String> = records
        .iter()
        .flat_map(|(_, _, _, payload)| payload.split(|byte| *byte == b'\n'))
        .map(|line| {
            let message: Value = serde_json::from_slice(line).expect("JSON");
            message["messageId"].as_str().expect("id").to_owned()
        })
        .collect();
    let lost: Vec<&&String> = unique
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages are missing",
        lost.len(),
        unique.len()
    );
}
