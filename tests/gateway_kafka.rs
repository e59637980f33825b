//! The gateway against a real Kafka-API broker (tansu) on loopback: a broker crash in the middle
//! of a load loses no acknowledged message. (The official SDKs' traffic: `sdk_clients.rs`.)

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Broker, read_topics, repo_root};
use veil_config::TenantsFile;
use veil_gateway::allowlist::Allowlist;
use veil_gateway::pseudonym::KeyStore;
use veil_gateway::server::{Gateway, GatewayConfig, serve};
use veil_gateway::sink::{KafkaPublisher, create_topics};

fn track_batch(worker: usize, batch: usize, size: usize) -> (String, Vec<String>) {
    // UUIDs, as the SDKs send: an id of another form would leave keyed, not as sent.
    let ids: Vec<String> = (0..size)
        .map(|index| {
            format!(
                "{worker:08x}-0000-4000-8000-{:012x}",
                batch * 100_000 + index
            )
        })
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
    // The shipped producer settings (idempotent, acks=all). The outage outlasts the delivery
    // timeout, so records time out; tansu 0.6 panics on the next produce of a producer id that
    // outlived that ("more or less than one row", tansu-storage lite.rs) and then refuses every
    // produce, so the gateway must start a fresh producer for traffic to flow again.
    let kafka = broker.kafka_config();
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
    let restart_flag = Arc::new(AtomicBool::new(false));
    let restarted_flag = restart_flag.clone();
    let load = runtime.spawn(async move {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let client = client.clone();
            let url = url.clone();
            let restarted = restarted_flag.clone();
            tasks.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = 0usize;
                let mut after_restart = 0usize;
                let started = Instant::now();
                let mut batch = 0;
                while started.elapsed() < Duration::from_secs(14) {
                    let (body, ids) = track_batch(worker, batch, 50);
                    batch += 1;
                    let answer = client
                        .post(&url)
                        .basic_auth("wk_demo_t1000", Some(""))
                        .body(body)
                        .send()
                        .await;
                    match answer.map(|response| response.status().as_u16()) {
                        Ok(200) => {
                            if restarted.load(Ordering::Relaxed) {
                                after_restart += 1;
                            }
                            acknowledged.extend(ids);
                        }
                        Ok(503) => refused += 1,
                        Ok(status) => panic!("unexpected status {status}"),
                        Err(_) => refused += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (acknowledged, refused, after_restart)
            }));
        }
        let mut acknowledged = Vec::new();
        let (mut refused, mut after_restart) = (0, 0);
        for task in tasks {
            let (ids, failed, late) = task.await.expect("worker");
            acknowledged.extend(ids);
            refused += failed;
            after_restart += late;
        }
        (acknowledged, refused, after_restart)
    });

    std::thread::sleep(Duration::from_secs(3));
    broker.kill();
    std::thread::sleep(Duration::from_secs(5));
    broker.restart();
    restart_flag.store(true, Ordering::Relaxed);
    let (acknowledged, refused, after_restart) = runtime.block_on(load).expect("load");
    let _ = stop_server.send(());
    runtime
        .block_on(server)
        .expect("server task")
        .expect("server");

    assert!(refused > 0, "the outage was felt: some requests got 503");
    assert!(
        after_restart > 0,
        "requests are acknowledged again once the broker is back"
    );
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
