//! The processor rides out a broker outage: it keeps running while tansu is down (librdkafka
//! reports the brokers down and reconnects), and once the broker is back it stores what was
//! produced before and after, each message exactly once, without a restart of its own.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde_json::Value;
use support::processor::stored_message_ids;
use support::processor::{message_id, processor_command, sanitized_messages, send_request};
use support::{Broker, free_port, signal};
use veil_gateway::sink::create_topics;

/// Produces `messages` in requests of 50, as the gateway does, and waits for every ack.
fn produce(bootstrap: &str, messages: &[Value]) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    runtime.block_on(async {
        let mut deliveries = Vec::new();
        for request in messages.chunks(50) {
            let request: Vec<&Value> = request.iter().collect();
            send_request(&producer, &request, &mut deliveries);
        }
        for delivery in deliveries {
            delivery.await.expect("delivered").expect("acknowledged");
        }
    });
}

/// Waits until the events table under `data` holds every id of `expected`, failing after
/// `timeout` (or at once if the processor exits).
fn wait_stored(data: &Path, expected: &HashSet<String>, processor: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored: HashSet<String> = stored_message_ids(data).into_iter().collect();
        if expected.is_subset(&stored) {
            return;
        }
        if let Some(status) = processor.try_wait().expect("wait") {
            panic!(
                "the processor exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} stored",
            expected.intersection(&stored).count(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_processor_waits_out_a_broker_outage_and_stores_everything_once() {
    let mut broker = Broker::start();
    let kafka = broker.kafka_config();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(create_topics(&kafka))
        .expect("topics");
    let keys = tempfile::tempdir().expect("tempdir");
    let messages = sanitized_messages(1200, keys.path());
    let (before, after) = messages.split_at(messages.len() / 2);
    produce(&broker.bootstrap(), before);

    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("processor.log");
    let mut processor = processor_command(&broker.bootstrap(), data.path(), free_port(), &log)
        .spawn()
        .expect("veil processor starts");
    let first: HashSet<String> = before.iter().map(message_id).collect();
    wait_stored(data.path(), &first, &mut processor, &log);

    broker.kill();
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        processor.try_wait().expect("wait").is_none(),
        "the processor keeps running while the broker is down: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    broker.restart();
    produce(&broker.bootstrap(), after);
    let all: HashSet<String> = messages.iter().map(message_id).collect();
    wait_stored(data.path(), &all, &mut processor, &log);

    assert!(signal(&processor, "-TERM"), "SIGTERM delivered");
    let status = processor.wait().expect("wait");
    assert!(status.success(), "{status}");
    let stored = stored_message_ids(data.path());
    assert_eq!(stored.len(), all.len(), "each message once");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("kafka unavailable; the consumer keeps retrying"),
        "the outage was noticed and logged"
    );
}
