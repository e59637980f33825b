//! The processor against a real broker (tansu): killed with SIGKILL at random points while it
//! works through a topic holding duplicates and garbage (and the gateway's audit topic),
//! restarted each time; afterwards every valid message is in the Parquet set exactly once, every
//! audit count in the rejections table exactly once, and `/metrics` agrees with what the last
//! run stored.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use support::processor::{
    metric, processor_command, sanitized_messages, scrape, send_request, stored_message_ids,
};
use support::{Broker, free_port, signal};
use veil_gateway::sink::create_topics;
use veil_processor::store::Store;

/// Processor runs killed with SIGKILL before the last, clean one.
const KILLED_RUNS: u64 = 5;

/// The processor's consumer session timeout (`session.timeout.ms`) and statistics interval
/// (`statistics.interval.ms`, which reports the lag), in seconds.
const SESSION_TIMEOUT_SECONDS: u64 = 10;
const STATISTICS_SECONDS: u64 = 5;

/// When any partition state was last committed (changes with every flush).
fn state_writes(root: &Path) -> Vec<std::time::SystemTime> {
    let mut times: Vec<std::time::SystemTime> = std::fs::read_dir(root.join("_state"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
                .filter_map(|entry| entry.metadata().and_then(|meta| meta.modified()).ok())
                .collect()
        })
        .unwrap_or_default();
    times.sort();
    times
}

/// Finishes every partition's committed flush, as a processor does when it is assigned one.
fn roll_committed_flushes_forward(root: &Path) {
    let store = Store::open(root).expect("store");
    for entry in std::fs::read_dir(root.join("_state"))
        .expect("state dir")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, partition)) = name
            .strip_suffix(".json")
            .and_then(|stem| stem.rsplit_once('-'))
            .filter(|(topic, _)| topic.starts_with("veil."))
        else {
            continue;
        };
        let partition: i32 = partition.parse().expect("partition number");
        store.recover(topic, partition).expect("recovery");
    }
}

#[test]
fn sigkill_at_random_points_loses_and_repeats_nothing() {
    let broker = Broker::start();
    let kafka = broker.kafka_config();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(create_topics(&kafka)).expect("topics");
    let keys = tempfile::tempdir().expect("tempdir");
    let messages = sanitized_messages(4000, keys.path());
    assert!(messages.len() > 3000);

    // Every message once, 10% of them again (client retries), and a few records that are not
    // sanitized messages at all. The first half goes one message a record (browser SDKs send one
    // event a request), the rest and the retries packed per partition, as the gateway packs a
    // batch request; one packed record carries a garbage line among good ones.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let garbage = [
        serde_json::json!({"not": "a sanitized message"}),
        serde_json::json!({"schema": 1}),
    ];
    runtime.block_on(async {
        let mut deliveries = Vec::new();
        let send = |request: &[&Value], deliveries: &mut Vec<_>| {
            send_request(&producer, request, deliveries);
        };
        let (singles, batched) = messages.split_at(messages.len() / 2);
        for message in singles {
            send(&[message], &mut deliveries);
        }
        for request in batched.chunks(50) {
            let request: Vec<&Value> = request.iter().collect();
            send(&request, &mut deliveries);
        }
        let retries: Vec<&Value> = messages.iter().step_by(10).collect();
        for request in retries.chunks(25) {
            send(request, &mut deliveries);
        }
        for index in 0..AUDIT_RECORDS {
            send_audit(&producer, index, &mut deliveries);
        }
        send(&[&garbage[0]], &mut deliveries);
        let mixed: Vec<&Value> = [&garbage[1]]
            .into_iter()
            .chain(retries.iter().copied().take(40))
            .collect();
        send(&mixed, &mut deliveries);
        for delivery in deliveries {
            delivery.await.expect("delivered").expect("acknowledged");
        }
    });
    let expected: HashSet<String> = messages
        .iter()
        .map(|message| message["messageId"].as_str().expect("id").to_owned())
        .collect();

    let data = tempfile::tempdir().expect("tempdir");
    let metrics_port = free_port();
    let processor = |log: &Path| {
        processor_command(&broker.bootstrap(), data.path(), metrics_port, log)
            .spawn()
            .expect("veil processor starts")
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64);
    eprintln!("kill schedule seed {seed}");
    let mut state = seed | 1;
    let mut next_random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let logs = tempfile::tempdir().expect("tempdir");
    for round in 0..KILLED_RUNS {
        let mut child = processor(&logs.path().join(format!("run-{round}.log")));
        // Kill it at a random moment once it is working (after its first commit of this run).
        let before = state_writes(data.path());
        let deadline = Instant::now() + Duration::from_secs(40);
        while state_writes(data.path()) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(next_random() % 700));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // The next run starts once the group has dropped the killed member, as it would after a
        // real crash and restart. Started sooner, it races tansu 0.6's coordinator: when the
        // dead leader expires between the new member's JoinGroup and SyncGroup, tansu accepts
        // the follower's empty SyncGroup as the leader's and forms the group with no partition
        // assigned to anyone, for good (seen in CI; Kafka itself waits for the new leader).
        std::thread::sleep(Duration::from_secs(SESSION_TIMEOUT_SECONDS + 2));
    }
    // A last run to the end of the topic, then a clean stop. What the killed runs committed
    // counts as stored before it, including a commit whose files a kill left in `_tmp` (the last
    // run's recovery only moves those into place; it does not write them again).
    roll_committed_flushes_forward(data.path());
    let stored_before_final = stored_message_ids(data.path()).len();
    let mut child = processor(&logs.path().join("final.log"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored: HashSet<String> = stored_message_ids(data.path()).into_iter().collect();
        if stored.len() >= expected.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The last run's counters: what it stored, and no lag left once librdkafka reports the
    // high watermarks (every 5 s). The margin is for a slow rebalance on a loaded machine.
    let lag_line = "veil_processor_consumer_lag{topic=\"veil.sanitized.us\",partition=\"0\"} 0";
    let mut metrics = String::new();
    let deadline =
        Instant::now() + Duration::from_secs(SESSION_TIMEOUT_SECONDS + STATISTICS_SECONDS + 90);
    while Instant::now() < deadline {
        metrics = scrape(metrics_port);
        if metrics.contains(lag_line) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    signal(&child, "-TERM");
    let exit = child.wait().expect("exits");
    let final_log = std::fs::read_to_string(logs.path().join("final.log")).unwrap_or_default();
    // The end of the last run's log, for the failure messages below.
    let final_log_tail =
        &final_log[final_log.floor_char_boundary(final_log.len().saturating_sub(3000))..];
    assert!(
        exit.success(),
        "clean exit on SIGTERM, not {exit}; final log:\n{}\nbroker log:\n{}",
        final_log_tail,
        broker.log_tail()
    );

    let ids = stored_message_ids(data.path());
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let repeated = counts.values().filter(|count| **count > 1).count();
    let stored: HashSet<String> = ids.iter().cloned().collect();
    let missing = expected.difference(&stored).count();
    assert_eq!(
        (missing, repeated),
        (0, 0),
        "{} stored rows for {} messages; final log:\n{}",
        ids.len(),
        expected.len(),
        final_log_tail
    );
    assert_eq!(stored, expected);

    assert!(
        metrics.contains(lag_line),
        "{metrics}\nfinal log:\n{}\nbroker log:\n{}",
        final_log_tail,
        broker.log_tail()
    );
    let written = metric(
        &metrics,
        "veil_processor_rows_written_total{table=\"events\"}",
    );
    assert_eq!(
        written,
        (expected.len() - stored_before_final) as f64,
        "{metrics}"
    );
    // Every stored row (and every duplicate) was read first, packed records being fewer.
    let records = metric(&metrics, "veil_processor_records_read_total");
    let read = metric(&metrics, "veil_processor_messages_read_total");
    assert!(read >= written, "{metrics}");
    assert!(
        records <= read,
        "a record carries one message or more: {metrics}"
    );
    // Every partition of the eight topics (seven regions and the audit topic), three each.
    assert!(
        metrics.contains("\nveil_processor_assigned_partitions 24\n"),
        "{metrics}"
    );
    for name in [
        "veil_processor_files_written_total{table=\"daily_activity\"}",
        "veil_processor_flush_latency_seconds_count",
        "veil_processor_dead_letters_total",
        "veil_processor_duplicates_total",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }

    // Every audit record's counts are in the rejections table exactly once.
    let (rows, counts) = rejection_rows(data.path());
    assert_eq!(rows, AUDIT_RECORDS * 2);
    let expected_rejected: i64 = (0..AUDIT_RECORDS).map(|index| index as i64 % 5 + 1).sum();
    assert_eq!(counts.get("rejected"), Some(&expected_rejected));
    assert_eq!(counts.get("dropped"), Some(&(AUDIT_RECORDS as i64 * 2)));
}

/// Audit records the test puts on the gateway's audit topic.
const AUDIT_RECORDS: usize = 120;

fn send_audit(
    producer: &FutureProducer,
    index: usize,
    deliveries: &mut Vec<rdkafka::producer::DeliveryFuture>,
) {
    let record = serde_json::json!({
        "schema": 1, "tenant": "t-1000", "region": "us", "policy": "sha256:00",
        "receivedAt": "2026-11-23T10:00:00.000Z", "messages": 10, "accepted": 9,
        "rejected": [{"reason": "event_not_allowlisted", "field": null, "event": "Secret Thing", "count": index % 5 + 1}],
        "dropped": [{"field": "properties.note", "reason": "not_allowlisted", "count": 2}],
    })
    .to_string();
    deliveries.push(
        producer
            .send_result(
                FutureRecord::to("veil.rejections")
                    .key("t-1000")
                    .payload(&record),
            )
            .expect("queued"),
    );
}

/// Rows of the rejections table and the sum of `count` by `kind`.
fn rejection_rows(root: &Path) -> (usize, BTreeMap<String, i64>) {
    use veil_processor::tables;
    let mut rows = 0;
    let mut sums = BTreeMap::new();
    for (tenant, _, dir) in tables::partitions(root, tables::REJECTIONS) {
        assert_eq!(tenant, "t-1000");
        for path in tables::parquet_files(&dir) {
            for batch in support::parquet::batches(&path) {
                let kinds = batch.column_by_name("kind").expect("kind");
                let kinds = kinds.as_any().downcast_ref::<StringArray>().expect("text");
                let counts = batch.column_by_name("count").expect("count");
                let counts = counts
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("ints");
                for row in 0..batch.num_rows() {
                    rows += 1;
                    *sums.entry(kinds.value(row).to_owned()).or_default() += counts.value(row);
                }
            }
        }
    }
    (rows, sums)
}
