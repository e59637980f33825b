//! Two processors in one consumer group against a real broker (tansu), as a deployment scales
//! out: they share the partitions and one data directory; when one stops, the other takes its
//! partitions over, resumes where the stopped one committed, and still recognizes the retries of
//! messages the stopped one stored. Afterwards every message is in the Parquet set exactly once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::FutureProducer;
use serde_json::Value;
use support::processor::{
    message_id, metric, processor_command, sanitized_messages, scrape, send_request,
    stored_message_ids,
};
use support::{Broker, KillOnDrop, free_port, signal};
use veil_gateway::sink::create_topics;

/// Every partition of the eight topics (seven regions and the audit topic), three each.
const ALL_PARTITIONS: f64 = 24.0;

/// One `veil processor` process of the group, with its metrics port and log.
struct Member {
    process: KillOnDrop,
    metrics_port: u16,
    log: std::path::PathBuf,
}

impl Member {
    fn start(bootstrap: &str, data: &Path, logs: &Path, name: &str) -> Member {
        let metrics_port = free_port();
        let log = logs.join(format!("{name}.log"));
        let child: Child = processor_command(bootstrap, data, metrics_port, &log)
            .spawn()
            .expect("veil processor starts");
        Member {
            process: KillOnDrop(child),
            metrics_port,
            log,
        }
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&scrape(self.metrics_port), name)
    }

    fn assigned(&self) -> f64 {
        self.metric("veil_processor_assigned_partitions")
    }

    fn rows_written(&self) -> f64 {
        self.metric("veil_processor_rows_written_total{table=\"events\"}")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Warnings, errors and the exit reason say more than the assignment lines around them.
        let log: String = log
            .lines()
            .filter(|line| !line.contains("\"partition assigned\""))
            .map(|line| format!("{line}\n"))
            .collect();
        let mut start = log.len().saturating_sub(2000);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_owned()
    }

    /// Stops it as an orchestrator does (SIGTERM) and checks that it exited cleanly.
    fn stop(mut self) {
        signal(&self.process.0, "-TERM");
        let exit = self.process.0.wait().expect("exits");
        assert!(
            exit.success(),
            "clean exit, not {exit}:\n{}",
            self.log_tail()
        );
    }
}

/// Waits until `done` holds, or fails with `what` and the members' logs after `limit`.
fn wait_until(what: &str, limit: Duration, members: &[&Member], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = members.iter().map(|member| member.log_tail()).collect();
            panic!(
                "timed out waiting until {what}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Produces `messages` in requests of 25, as the gateway would, and waits for every
/// acknowledgement.
fn produce(runtime: &tokio::runtime::Runtime, producer: &FutureProducer, messages: &[&Value]) {
    runtime.block_on(async {
        let mut deliveries = Vec::new();
        for request in messages.chunks(25) {
            send_request(producer, request, &mut deliveries);
        }
        for delivery in deliveries {
            delivery.await.expect("delivered").expect("acknowledged");
        }
    });
}

/// How many rows each message id has in the events table.
fn stored_counts(data: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in stored_message_ids(data) {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Every message has exactly one row in the events table, and nothing else has one.
fn assert_each_stored_once(data: &Path, messages: &[Value]) {
    let counts = stored_counts(data);
    let repeated = counts.values().filter(|count| **count > 1).count();
    assert_eq!(repeated, 0, "no message is stored twice");
    let expected: BTreeSet<String> = messages.iter().map(message_id).collect();
    let stored: BTreeSet<String> = counts.into_keys().collect();
    assert_eq!(stored, expected);
}

/// librdkafka's mock cluster (the embedded broker) with Veil's topics, three partitions each.
fn mock_cluster() -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in veil_config::KafkaConfig::default().topics.all_topics() {
        cluster.create_topic(&topic, 3, 1).expect("topic");
    }
    cluster
}

/// Two processors in one group on `bootstrap`: the first holds every partition before the
/// second starts, then the group splits them between both.
fn start_pair(bootstrap: &str, data: &Path, logs: &Path) -> (Member, Member) {
    let one = Member::start(bootstrap, data, logs, "one");
    wait_until(
        "the first processor holds every partition",
        Duration::from_secs(60),
        &[&one],
        || one.assigned() == ALL_PARTITIONS,
    );
    let two = Member::start(bootstrap, data, logs, "two");
    wait_until(
        "the group splits the partitions between both processors",
        Duration::from_secs(60),
        &[&one, &two],
        || {
            let (assigned_one, assigned_two) = (one.assigned(), two.assigned());
            assigned_one > 0.0
                && assigned_two > 0.0
                && assigned_one + assigned_two == ALL_PARTITIONS
        },
    );
    (one, two)
}

/// Two processors on the embedded broker with 3,000 sanitized messages to send: what the crash
/// and stall tests start from.
struct MockGroup {
    one: Member,
    two: Member,
    messages: Vec<Value>,
    producer: FutureProducer,
    runtime: tokio::runtime::Runtime,
    data: tempfile::TempDir,
    _logs: tempfile::TempDir,
    _keys: tempfile::TempDir,
    _cluster: MockCluster<'static, DefaultProducerContext>,
}

fn mock_group() -> MockGroup {
    let cluster = mock_cluster();
    let bootstrap = cluster.bootstrap_servers();
    let keys = tempfile::tempdir().expect("tempdir");
    let messages = sanitized_messages(3000, keys.path());
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let (one, two) = start_pair(&bootstrap, data.path(), logs.path());
    MockGroup {
        one,
        two,
        messages,
        producer: producer(&bootstrap),
        runtime: tokio::runtime::Runtime::new().expect("runtime"),
        data,
        _logs: logs,
        _keys: keys,
        _cluster: cluster,
    }
}

/// A producer to `bootstrap`, lingering a little to fill records as the gateway's does.
fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

#[test]
fn two_processors_share_the_partitions_and_hand_them_over_exactly_once() {
    let broker = Broker::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(create_topics(&broker.kafka_config()))
        .expect("topics");
    let keys = tempfile::tempdir().expect("tempdir");
    let messages = sanitized_messages(3000, keys.path());
    assert!(messages.len() > 2000);
    let (first, second) = messages.split_at(messages.len() / 2);
    let producer = producer(&broker.bootstrap());

    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let (one, two) = start_pair(&broker.bootstrap(), data.path(), logs.path());

    // The first half while both work: each stores the messages of its own partitions.
    produce(&runtime, &producer, &first.iter().collect::<Vec<_>>());
    wait_until(
        "the first half is stored",
        Duration::from_secs(90),
        &[&one, &two],
        || stored_counts(data.path()).len() == first.len(),
    );
    let (written_one, written_two) = (one.rows_written(), two.rows_written());
    assert!(
        written_one > 0.0 && written_two > 0.0,
        "both processors store rows: {written_one} and {written_two}"
    );
    assert_eq!(written_one + written_two, first.len() as f64);

    // One stops (a scale-in, a deploy): the other takes over all partitions, from their commit
    // state in the shared data directory.
    one.stop();
    wait_until(
        "the remaining processor holds every partition",
        Duration::from_secs(90),
        &[&two],
        || two.assigned() == ALL_PARTITIONS,
    );
    let duplicates_before = two.metric("veil_processor_duplicates_total");

    // The second half, and client retries of every tenth message of the first half: a retry
    // lands on its original's partition, so among them are retries of what the stopped
    // processor stored, which the remaining one must recognize from the stored files.
    let retries: Vec<&Value> = first.iter().step_by(10).collect();
    let second_and_retries: Vec<&Value> = second.iter().chain(retries.iter().copied()).collect();
    produce(&runtime, &producer, &second_and_retries);
    wait_until(
        "the second half is stored",
        Duration::from_secs(90),
        &[&two],
        || stored_counts(data.path()).len() == messages.len(),
    );
    wait_until(
        "the retries are counted as duplicates",
        Duration::from_secs(30),
        &[&two],
        || {
            two.metric("veil_processor_duplicates_total") - duplicates_before
                >= retries.len() as f64
        },
    );
    assert_eq!(
        two.metric("veil_processor_duplicates_total") - duplicates_before,
        retries.len() as f64
    );
    assert_eq!(two.rows_written(), written_two + second.len() as f64);
    two.stop();

    assert_each_stored_once(data.path(), &messages);
}

/// A crashed member's partitions go to the survivor once its session times out. Run on
/// librdkafka's mock cluster (the embedded broker of `veil up`), not tansu: tansu 0.6's
/// coordinator expires the dead member but forms the next generation with the survivor's old
/// assignment only, leaving the dead member's partitions unassigned for good (seen here: the
/// survivor stays at 8 of 24 partitions), where Kafka and the mock cluster give it all 24.
#[test]
fn a_crashed_processors_partitions_are_taken_over_and_nothing_is_lost_or_repeated() {
    // Named first: the fields left in `group` (the broker among them) live to the test's end.
    let group = mock_group();
    let MockGroup {
        one,
        two,
        messages,
        producer,
        runtime,
        data,
        ..
    } = group;

    // All messages (and retries of every tenth) while both work; the first processor is
    // killed with SIGKILL half way, with rows read but not yet committed.
    let retries: Vec<&Value> = messages.iter().step_by(10).collect();
    let all: Vec<&Value> = messages.iter().chain(retries.iter().copied()).collect();
    let (early, late) = all.split_at(all.len() / 2);
    produce(&runtime, &producer, early);
    let Member {
        process: mut crashed,
        ..
    } = one;
    crashed.0.kill().expect("SIGKILL");
    crashed.0.wait().expect("reaped");
    produce(&runtime, &producer, late);

    // Once the group drops the dead member (its session times out), the survivor takes its
    // partitions over from their commit state and stores the rest.
    wait_until(
        "the survivor holds every partition",
        Duration::from_secs(90),
        &[&two],
        || two.assigned() == ALL_PARTITIONS,
    );
    wait_until(
        "every message is stored",
        Duration::from_secs(90),
        &[&two],
        || stored_counts(data.path()).len() == messages.len(),
    );
    two.stop();

    assert_each_stored_once(data.path(), &messages);
}

/// A processor that stalls past its group session (a frozen VM, a hung disk; here SIGSTOP)
/// in the middle of its work loses its partitions to the other, but keeps their ownership locks
/// until it wakes up, finishes what it was doing and lets go: the other waits for that before it
/// reads where they continue, so nothing is stored twice (before the locks, 114 to 198 of these
/// 3,000 messages were). While it waits, the partitions it already had keep flowing, and the wait
/// shows in its `waiting_partitions` gauge. On the mock cluster, for the reason given above.
#[test]
fn a_stalled_processor_that_wakes_up_stores_nothing_twice() {
    // Named first: the fields left in `group` (the broker among them) live to the test's end.
    let group = mock_group();
    let MockGroup {
        one,
        two,
        messages,
        producer,
        runtime,
        data,
        ..
    } = group;
    let held_by_two = two.assigned();

    // The first processor freezes in the middle of the traffic, busy reading and storing.
    let (early, late) = messages.split_at(messages.len() / 2);
    let signal_one = |name: &str| assert!(signal(&one.process.0, name), "{name} delivered");
    std::thread::scope(|scope| {
        scope.spawn(|| produce(&runtime, &producer, &early.iter().collect::<Vec<_>>()));
        wait_until(
            "the first processor is storing",
            Duration::from_secs(60),
            &[&one],
            || one.rows_written() > 200.0,
        );
        signal_one("-STOP");
    });
    // Its session times out (10 s) and the group gives the other all partitions; the other
    // waits for the frozen one's locks, paused on exactly those.
    let waiting = || two.metric("veil_processor_waiting_partitions");
    wait_until(
        "the other processor waits for the frozen one's partitions",
        Duration::from_secs(60),
        &[&two],
        || two.assigned() == ALL_PARTITIONS && waiting() == ALL_PARTITIONS - held_by_two,
    );
    assert!(
        std::fs::read_to_string(&two.log)
            .unwrap_or_default()
            .contains("partition still held by its previous owner"),
        "the wait is logged"
    );
    // Traffic goes on meanwhile, and what lands on the other's own partitions is stored while
    // the first is still frozen: the wait holds up only the contested partitions.
    let stored_before = two.rows_written();
    produce(&runtime, &producer, &late.iter().collect::<Vec<_>>());
    wait_until(
        "the other processor stores new traffic on its own partitions",
        Duration::from_secs(60),
        &[&two],
        || two.rows_written() > stored_before,
    );
    assert_eq!(waiting(), ALL_PARTITIONS - held_by_two, "still waiting");
    // It wakes up, finishes its flush, finds it was left out of the group and lets go; the
    // group is formed again and everything gets stored.
    signal_one("-CONT");
    wait_until(
        "every message is stored",
        Duration::from_secs(90),
        &[&one, &two],
        || stored_counts(data.path()).len() == messages.len(),
    );
    assert_eq!(waiting(), 0.0, "nothing waits once the first let go");
    // Each partition taken over was read from where the first had stored up to, not from where
    // it was assigned: nothing stored was read again (the traffic has no retries).
    let duplicates = |member: &Member| member.metric("veil_processor_duplicates_total");
    assert_eq!(
        duplicates(&one) + duplicates(&two),
        0.0,
        "nothing read twice"
    );
    one.stop();
    two.stop();
    assert_each_stored_once(data.path(), &messages);
}
