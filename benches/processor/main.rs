//! Processor throughput from Kafka to committed Parquet, with librdkafka's in-process mock
//! cluster as the broker (the embedded broker): `veil filter` turns `gen_events.py` traffic into
//! sanitized messages, they are produced to the sanitized topic (10% of them twice, as client
//! retries), then `veil_processor::pipeline::run` consumes them on this thread while the clock
//! runs, until every record is read and (on stop) every buffer is committed. Run it pinned to one
//! core: `taskset -c 0 cargo bench --bench processor` (see README).
//!
//! The mock cluster keeps at most 5 MiB per partition (`rdkafka_mock.c`: older message sets are
//! dropped, the log start moves), so the topic gets enough partitions to hold the whole run; the
//! bench checks that every partition's log still starts at offset 0.
//!
//! `VEIL_BENCH_MESSAGES` (default 300000) sets the message count; `VEIL_PROFILE=processor` makes
//! it repeat the consume phase three times (for `perf record`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use veil_config::KafkaConfig;
use veil_policy::Allowlist;
use veil_processor::ProcessorConfig;
use veil_processor::columns::TableLayout;
use veil_processor::pipeline::{ProcessorStats, run};
use veil_processor::tables;

fn sanitized(count: usize, keys: &Path) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let traffic = Command::new("python3")
        .arg(root.join("../shared/workload/gen_events.py"))
        .args(["--count", &count.to_string(), "--seed", "7"])
        .output()
        .expect("gen_events.py")
        .stdout;
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .current_dir(root)
        .args(["filter", "--tenant", "t-1000", "--keystore"])
        .arg(keys)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("veil filter");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&traffic));
    let output = child.wait_with_output().expect("veil filter runs");
    writer.join().expect("writer").expect("written");
    output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let count: usize = std::env::var("VEIL_BENCH_MESSAGES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(300_000);
    let work = tempfile::tempdir().expect("tempdir");
    let messages = sanitized(count, &work.path().join("keys"));
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let cluster = MockCluster::new(1).expect("mock cluster");
    let mut kafka = KafkaConfig {
        bootstrap_servers: cluster.bootstrap_servers(),
        ..KafkaConfig::default()
    };
    // About 2 MiB of (lz4-compressed) records per partition on average (the mock cluster drops
    // beyond 5 MiB, and keying by user spreads records unevenly), at least 6.
    let compressed = (bytes + bytes / 10) / LZ4_RATIO;
    let partitions = compressed.div_ceil(MOCK_PARTITION_BYTES).max(6);
    let partitions = i32::try_from(partitions).expect("partitions");
    kafka.topics.partitions = partitions;
    for topic in kafka.topics.all_topics() {
        cluster.create_topic(&topic, partitions, 1).expect("topic");
    }
    let topic = kafka.topics.sanitized_topic(veil_config::Region::Us);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("linger.ms", "20")
        // As the gateway produces (see `veil_gateway::sink::kafka`).
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2000000")
        .create()
        .expect("producer");
    let retries = messages.iter().step_by(10);
    let mut produced = 0_u64;
    for message in messages.iter().chain(retries) {
        // Keyed by the user pseudonym, as the gateway does (a retry lands on the same partition).
        let parsed: serde_json::Value = serde_json::from_slice(message).expect("json");
        let key = parsed["pseudonyms"]["userId"]
            .as_str()
            .or(parsed["pseudonyms"]["anonymousId"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut record = BaseRecord::to(&topic).payload(message).key(&key);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        produced += 1;
    }
    producer.flush(Duration::from_secs(60)).expect("flushed");
    for partition in 0..partitions {
        let (low, _) = producer
            .client()
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            low, 0,
            "the mock cluster dropped the start of partition {partition}: more partitions needed"
        );
    }
    // The bench's producer and its threads are gone before the processor runs.
    drop(producer);
    let allowlist = Allowlist::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml"))
        .expect("allowlist");
    let layout = TableLayout::from_policy(&allowlist.compile());
    let rounds = if std::env::var("VEIL_PROFILE").as_deref() == Ok("processor") {
        3
    } else {
        1
    };
    println!(
        "{} sanitized messages ({} bytes on average) + {} retries in the mock cluster, {partitions} partitions",
        messages.len(),
        bytes / messages.len().max(1),
        produced as usize - messages.len()
    );
    for round in 0..rounds {
        let config = ProcessorConfig {
            data_dir: work.path().join(format!("parquet-{round}")),
            group_id: format!("bench-{round}"),
            metrics_listen: String::new(),
            ..ProcessorConfig::default()
        };
        let stats = ProcessorStats::default();
        println!("  consuming (round {round})");
        let stop = AtomicBool::new(false);
        let mut first_read: Option<Instant> = None;
        let mut drained: Option<Instant> = None;
        // The embedded broker's threads exist already; the processor's start with `run`.
        let broker_threads = broker_thread_ticks();
        let process_start = process_ticks();
        let started = Instant::now();
        std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                loop {
                    let read = stats.records_read.get();
                    if first_read.is_none() && read > 0 {
                        first_read = Some(Instant::now());
                    }
                    // Every record read: stop, and `run` commits every buffer before it returns.
                    if read >= produced || started.elapsed() > Duration::from_secs(300) {
                        drained = Some(Instant::now());
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    if std::env::var_os("VEIL_BENCH_PROGRESS").is_some()
                        && started.elapsed().subsec_millis() % 100 < 5
                    {
                        eprintln!(
                            "  {:.1} s: {read} of {produced} records read, {} rows committed",
                            started.elapsed().as_secs_f64(),
                            stats.rows(tables::EVENTS),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            run(&config, &kafka, &layout, &stop, &stats).expect("processor runs");
            watcher.join().expect("watcher");
        });
        let end = Instant::now();
        let broker_cpu = broker_threads
            .iter()
            .map(|(tid, before)| thread_ticks(*tid).unwrap_or(*before) - before)
            .sum::<u64>();
        let processor_cpu =
            (process_ticks() - process_start).saturating_sub(broker_cpu) as f64 / USER_HZ;
        let (Some(first_read), Some(drained)) = (first_read, drained) else {
            panic!("nothing read");
        };
        let stored = stats.rows(tables::EVENTS) + stats.duplicates.get() + stats.dead_letters.get();
        assert_eq!(
            stored, produced,
            "every record stored, dropped as a duplicate or dead-lettered"
        );
        let steady = end.duration_since(first_read).as_secs_f64();
        let metrics = stats.render();
        let metric = |name: &str| {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or_default()
        };
        let (flushes, flushing) = (
            metric("veil_processor_flush_latency_seconds_count"),
            metric("veil_processor_flush_latency_seconds_sum"),
        );
        let total = end.duration_since(started).as_secs_f64();
        println!(
            "round {round}: {} rows stored, {} duplicates dropped, {} dead letters, {} daily_activity rows, {} events files",
            stats.rows(tables::EVENTS),
            stats.duplicates.get(),
            stats.dead_letters.get(),
            stats.rows(tables::DAILY_ACTIVITY),
            stats
                .files_written
                .get_or_create(&veil_processor::metrics::TableLabels {
                    table: tables::EVENTS
                })
                .get()
        );
        println!(
            "  {:.0} messages/s from the first record read to the last commit ({produced} messages in {steady:.2} s; reading took {:.2} s, the final commit {:.2} s); {:.0} messages/s including start-up and group join ({total:.2} s)",
            produced as f64 / steady,
            drained.duration_since(first_read).as_secs_f64(),
            end.duration_since(drained).as_secs_f64(),
            produced as f64 / total
        );
        println!(
            "  {flushes:.0} commits took {flushing:.2} s (Arrow, rollup, Parquet zstd, fsyncs, renames): {:.2} s for reading, decoding, deduplicating and closing",
            steady - flushing
        );
        println!(
            "  the processor (its thread and its librdkafka threads, not the embedded broker's) used {processor_cpu:.2} s of CPU from start to close: {:.0} messages per CPU-second",
            produced as f64 / processor_cpu
        );
    }
}

/// utime + stime (clock ticks) of `/proc/.../stat` text (fields 14 and 15, after the name).
fn stat_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of the whole process, exited threads included.
fn process_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_ticks(&stat))
        .unwrap_or(0)
}

fn thread_ticks(tid: u64) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// The CPU ticks so far of every thread but this one (before `run`: the embedded broker's).
fn broker_thread_ticks() -> Vec<(u64, u64)> {
    let this = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|path| path.file_name()?.to_str()?.parse::<u64>().ok());
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| task.file_name().to_str()?.parse::<u64>().ok())
                .filter(|tid| Some(*tid) != this)
                .filter_map(|tid| Some((tid, thread_ticks(tid)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Clock ticks per second of `/proc` CPU times (Linux's USER_HZ, 100 on every mainstream
/// architecture).
const USER_HZ: f64 = 100.0;

/// Average bytes per partition the bench aims at: well under the mock cluster's 5 MiB log.
const MOCK_PARTITION_BYTES: usize = 2 * 1024 * 1024;

/// A cautious lz4 ratio for sanitized messages in producer batches (the low-watermark check
/// below fails the bench if it was too optimistic).
const LZ4_RATIO: usize = 2;
