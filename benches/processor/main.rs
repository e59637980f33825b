//! Processor throughput from Kafka to committed Parquet, with librdkafka's in-process mock
//! cluster as the broker (the embedded broker), laid out as a deployment runs it: the processor
//! on one core, the broker and the gateway's producing on the other.
//!
//! `veil filter` turns `gen_events.py` traffic into sanitized messages; a producer thread sends
//! them (then 10% of them again, as client retries), uncompressed, to the default number of
//! partitions as the gateway does: each request of `VEIL_BENCH_BATCH` messages (default 100, the
//! Segment server SDKs' batch; 0 for one message a record, as browser traffic arrives) packed
//! into one record per partition of its users' keys (`RecordBatch::packed`), while
//! `veil_processor::pipeline::run`
//! consumes them on the bench's main thread with the default flush policy. The bench pins itself
//! with `taskset`: the broker, the producer, the traffic generation and the bench's watcher on
//! core 1, the processor (the main thread and every librdkafka thread it starts) on core 0.
//!
//! The mock cluster keeps at most 5 MiB per partition (`rdkafka_mock.c`: older message sets are
//! dropped), so the producer stays at most [`LEAD_BYTES_PER_PARTITION`] per partition ahead of
//! what the processor has read; the bench checks that every message was stored, dropped as a
//! duplicate or dead-lettered.
//!
//! `VEIL_BENCH_MESSAGES` (default 300000) sets the message count, `VEIL_BENCH_PARTITIONS` the
//! partitions (default: `kafka.topics.partitions`), `VEIL_BENCH_ROUNDS` the rounds over the same
//! traffic (default 3; the last line gives their median).

mod cpu;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use veil_config::KafkaConfig;
use veil_gateway::sink::{MAX_PACKED_BYTES, RecordBatch};
use veil_policy::Allowlist;
use veil_processor::ProcessorConfig;
use veil_processor::columns::TableLayout;
use veil_processor::metrics::TableLabels;
use veil_processor::pipeline::{ProcessorStats, run};
use veil_processor::tables;

/// How far (in record bytes per partition) the producer may run ahead of the processor: well
/// under the mock cluster's 5 MiB log.
const LEAD_BYTES_PER_PARTITION: usize = 3 * 1024 * 1024;

/// The reference traffic as the Kafka records the gateway would produce.
struct Traffic {
    /// Sanitized messages, retries included (each counted once per copy).
    messages: usize,
    /// Their bytes.
    bytes: usize,
    /// The records in the order they are produced (retries last).
    records: Vec<Packed>,
}

/// One Kafka record: one message keyed by its user, or (with `VEIL_BENCH_BATCH`) a request's
/// messages bound for one partition, one a line, as the gateway packs them.
struct Packed {
    key: String,
    partition: Option<i32>,
    payload: Vec<u8>,
}

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

impl Traffic {
    /// `batch`: messages per gateway request, packed per partition (0: a record per message).
    fn new(count: usize, keystore: &Path, topic: &str, batch: usize, partitions: i32) -> Traffic {
        let messages = sanitized(count, keystore);
        // Keyed by the user pseudonym, as the gateway does (a retry lands on the same partition).
        let keys: Vec<String> = messages
            .iter()
            .map(|message| {
                let parsed: serde_json::Value = serde_json::from_slice(message).expect("json");
                let pseudonyms = &parsed["pseudonyms"];
                let user = pseudonyms["userId"]
                    .as_str()
                    .or(pseudonyms["anonymousId"].as_str())
                    .unwrap_or_default();
                format!("t-1000/{user}")
            })
            .collect();
        let order: Vec<usize> = (0..messages.len())
            .chain((0..messages.len()).step_by(10))
            .collect();
        let bytes = order.iter().map(|&index| messages[index].len()).sum();
        let records = if batch == 0 {
            order
                .iter()
                .map(|&index| Packed {
                    key: keys[index].clone(),
                    partition: None,
                    payload: messages[index].clone(),
                })
                .collect()
        } else {
            let mut records = Vec::new();
            for request in order.chunks(batch) {
                let mut batch = RecordBatch::default();
                batch.set_shared_key(b"t-1000");
                for &index in request {
                    batch.push_owned(Arc::from(topic), keys[index].as_bytes(), &messages[index]);
                }
                for packed in batch.packed(MAX_PACKED_BYTES, |_| Some(partitions)) {
                    records.push(Packed {
                        key: String::from_utf8(packed.key.to_vec()).expect("utf-8 key"),
                        partition: packed.partition,
                        payload: packed.payload.into_owned(),
                    });
                }
            }
            records
        };
        Traffic {
            messages: order.len(),
            bytes,
            records,
        }
    }
}

/// What the producer thread shares with the bench (uncompressed, `linger.ms` 2: as the gateway
/// produces by default).
struct Feed<'a> {
    kafka: &'a KafkaConfig,
    topic: &'a str,
    traffic: &'a Traffic,
    /// Records the producer may be ahead of `stats.records_read`.
    lead: usize,
    stats: &'a ProcessorStats,
    /// Set once the lead is produced (the processor may start).
    prefilled: AtomicBool,
    /// Set by the bench once it has read the CPU counters (the producer's threads must live
    /// until then, or their CPU time would be counted as the processor's).
    measured: AtomicBool,
}

fn produce(feed: &Feed<'_>) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &feed.kafka.bootstrap_servers)
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2000000")
        .create()
        .expect("producer");
    for (sent, packed) in feed.traffic.records.iter().enumerate() {
        if sent == feed.lead {
            feed.prefilled.store(true, Ordering::Release);
        }
        while sent.saturating_sub(feed.stats.records_read.get() as usize) > feed.lead {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut record = BaseRecord::to(feed.topic)
            .payload(&packed.payload)
            .key(&packed.key);
        if let Some(partition) = packed.partition {
            record = record.partition(partition);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    feed.prefilled.store(true, Ordering::Release);
    producer.flush(Duration::from_secs(60)).expect("flushed");
    while !feed.measured.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let env_number = |name: &str| std::env::var(name).ok()?.parse::<usize>().ok();
    let count = env_number("VEIL_BENCH_MESSAGES").unwrap_or(300_000);
    let batch = env_number("VEIL_BENCH_BATCH").unwrap_or(100);
    let pinned = cpu::pin_this_thread(1);
    let work = tempfile::tempdir().expect("tempdir");
    let allowlist = Allowlist::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml"))
        .expect("allowlist");
    let layout = TableLayout::from_policy(&allowlist.compile());
    // Several rounds over the same traffic, so one burst of load from elsewhere on a shared
    // host does not make the figure.
    let rounds = env_number("VEIL_BENCH_ROUNDS").unwrap_or(3).max(1);
    let mut per_cpu_second = Vec::with_capacity(rounds);
    let mut relative = Vec::with_capacity(rounds);
    let mut kafka = KafkaConfig::default();
    if let Some(partitions) = env_number("VEIL_BENCH_PARTITIONS") {
        kafka.topics.partitions = i32::try_from(partitions).expect("partitions");
    }
    let partitions = kafka.topics.partitions;
    let topic = kafka.topics.sanitized_topic(veil_config::Region::Us);
    let traffic = Traffic::new(count, &work.path().join("keys"), &topic, batch, partitions);
    let total = traffic.messages as u64;
    let average_record = traffic
        .records
        .iter()
        .map(|record| record.payload.len())
        .sum::<usize>()
        / traffic.records.len().max(1);
    // The mock cluster answers a fetch that finds no data only after the whole
    // `fetch.wait.max.ms`, even when records arrive meanwhile (`rdkafka_mock_handlers.c`: "this
    // isn't strictly correct"); a real broker answers as soon as data arrives. So that catching
    // up with the producer does not idle the processor for the processor's 100 ms default:
    kafka
        .properties
        .insert("fetch.wait.max.ms".to_owned(), "5".to_owned());
    println!(
        "{count} sanitized messages ({} bytes on average) + {} retries as {} records ({}; {average_record} bytes on average), {partitions} partitions, processor on core 0 and broker + producer on core 1: {}",
        traffic.bytes / traffic.messages.max(1),
        traffic.messages - count.min(traffic.messages),
        traffic.records.len(),
        if batch == 0 {
            "one a message".to_owned()
        } else {
            format!("requests of {batch} packed per partition as the gateway does")
        },
        if pinned {
            "pinned"
        } else {
            "NOT pinned (one core or no taskset)"
        }
    );
    for round in 0..rounds {
        if round > 0 {
            cpu::pin_this_thread(1);
        }
        let cluster = MockCluster::new(1).expect("mock cluster");
        kafka.bootstrap_servers = cluster.bootstrap_servers();
        for topic in kafka.topics.all_topics() {
            cluster.create_topic(&topic, partitions, 1).expect("topic");
        }
        let config = ProcessorConfig {
            data_dir: work.path().join(format!("parquet-{round}")),
            group_id: format!("bench-{round}"),
            metrics_listen: String::new(),
            ..ProcessorConfig::default()
        };
        let stats = ProcessorStats::default();
        let feed = Feed {
            kafka: &kafka,
            topic: &topic,
            traffic: &traffic,
            lead: usize::try_from(partitions).unwrap_or(1) * LEAD_BYTES_PER_PARTITION
                / average_record.max(1),
            stats: &stats,
            prefilled: AtomicBool::new(false),
            measured: AtomicBool::new(false),
        };
        let stop = AtomicBool::new(false);
        let mut marks = Marks::default();
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| produce(&feed));
            while !feed.prefilled.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if pinned {
                cpu::pin_this_thread(0);
            }
            // The broker's and the producer's threads exist already; the processor's start
            // with `run` (on this thread's core).
            let others: Vec<u64> = cpu::other_thread_ticks()
                .into_iter()
                .map(|(tid, _)| tid)
                .collect();
            let started = Instant::now();
            println!("  round {round}: consuming");
            let (marks, stats, stop, mut others) = (&mut marks, &stats, &stop, others);
            let watcher = scope.spawn(move || {
                // The bench's own instrument: on the others' core and counted as theirs, so its
                // wake-ups neither preempt the processor nor count as its CPU.
                if pinned {
                    cpu::pin_this_thread(1);
                }
                others.extend(cpu::this_thread());
                loop {
                    let read = stats.messages_read.get();
                    if marks.first_read.is_none() && read > 0 {
                        marks.first_read = Some(Snapshot::take(&others));
                    }
                    // Every record read: stop, and `run` commits every buffer before it returns.
                    if marks.drained.is_none()
                        && (read >= total || started.elapsed() > Duration::from_secs(300))
                    {
                        marks.drained = Some(Snapshot::take(&others));
                        stop.store(true, Ordering::Relaxed);
                    }
                    let settled = stats.rows(tables::EVENTS)
                        + stats.duplicates.get()
                        + stats.dead_letters.get();
                    if settled >= total || started.elapsed() > Duration::from_secs(360) {
                        marks.committed = Some(Snapshot::take(&others));
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            run(&config, &kafka, &layout, stop, stats).expect("processor runs");
            watcher.join().expect("watcher");
            feed.measured.store(true, Ordering::Release);
            producer.join().expect("producer");
        });
        let stored = stats.rows(tables::EVENTS) + stats.duplicates.get() + stats.dead_letters.get();
        assert_eq!(
            stored, total,
            "every record stored, dropped as a duplicate or dead-lettered"
        );
        let processor_rate = report(&stats, total, &marks);
        // Right after the round, on the processor's core: how fast this host is at the moment.
        if pinned {
            cpu::pin_this_thread(0);
        }
        let reference = serde_reference(&traffic);
        let ratio = processor_rate / reference;
        println!(
            "  host reference on the processor's core: serde_json into IgnoredAny over the same messages, {reference:.0} messages/s; processor/reference {ratio:.3}"
        );
        per_cpu_second.push(processor_rate);
        relative.push(ratio);
    }
    per_cpu_second.sort_by(f64::total_cmp);
    relative.sort_by(f64::total_cmp);
    println!(
        "median of {rounds} rounds: {:.0} messages per CPU-second (best {:.0}, worst {:.0}); processor/reference {:.3} (best {:.3}, worst {:.3})",
        per_cpu_second[per_cpu_second.len() / 2],
        per_cpu_second[per_cpu_second.len() - 1],
        per_cpu_second[0],
        relative[relative.len() / 2],
        relative[relative.len() - 1],
        relative[0],
    );
}

/// Messages per second at which `serde_json` parses the round's messages (each line of each
/// record, retries included) into `IgnoredAny`, best of three passes: a reference for the
/// host's speed at the moment, which moves by up to 1.8x within hours on this shared machine,
/// so that runs at different times can be compared by the processor's ratio to it.
fn serde_reference(traffic: &Traffic) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let mut parsed = 0_u64;
        for record in &traffic.records {
            for line in record.payload.split(|byte| *byte == b'\n') {
                if line.is_empty() {
                    continue;
                }
                let value: serde::de::IgnoredAny =
                    serde_json::from_slice(std::hint::black_box(line)).expect("JSON");
                std::hint::black_box(value);
                parsed += 1;
            }
        }
        assert_eq!(parsed, traffic.messages as u64);
        best = best.min(started.elapsed().as_secs_f64());
    }
    traffic.messages as f64 / best
}

/// A moment of the run with the CPU used so far by the processor and by the others (the
/// broker's, the producer's and the watcher's threads).
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    processor_ticks: u64,
    others_ticks: u64,
}

impl Snapshot {
    fn take(others: &[u64]) -> Snapshot {
        let others_ticks = others
            .iter()
            .map(|tid| cpu::thread_ticks(*tid).unwrap_or(0))
            .sum::<u64>();
        Snapshot {
            at: Instant::now(),
            processor_ticks: cpu::process_ticks().saturating_sub(others_ticks),
            others_ticks,
        }
    }

    /// Seconds, processor CPU seconds and the others' CPU seconds from `earlier` to this one.
    fn since(&self, earlier: &Snapshot) -> (f64, f64, f64) {
        (
            self.at.duration_since(earlier.at).as_secs_f64(),
            self.processor_ticks.saturating_sub(earlier.processor_ticks) as f64 / cpu::USER_HZ,
            self.others_ticks.saturating_sub(earlier.others_ticks) as f64 / cpu::USER_HZ,
        )
    }
}

/// When the first record was read, the last one read, and every row committed.
#[derive(Debug, Default)]
struct Marks {
    first_read: Option<Snapshot>,
    drained: Option<Snapshot>,
    committed: Option<Snapshot>,
}

/// Prints one round's figures and returns its messages per processor CPU-second.
fn report(stats: &ProcessorStats, total: u64, marks: &Marks) -> f64 {
    let (Some(first_read), Some(drained), Some(committed)) =
        (marks.first_read, marks.drained, marks.committed)
    else {
        panic!("the run did not finish");
    };
    let (seconds, processor_cpu, others_cpu) = committed.since(&first_read);
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
    let files = |table| {
        stats
            .files_written
            .get_or_create(&TableLabels { table })
            .get()
    };
    println!(
        "  {} rows stored, {} duplicates dropped, {} dead letters, {} daily_activity rows; {} events files, {} daily_activity files",
        stats.rows(tables::EVENTS),
        stats.duplicates.get(),
        stats.dead_letters.get(),
        stats.rows(tables::DAILY_ACTIVITY),
        files(tables::EVENTS),
        files(tables::DAILY_ACTIVITY),
    );
    println!(
        "  {:.0} messages/s from the first record read to the last commit ({total} messages in {seconds:.2} s; the last record was read after {:.2} s, the last commit took {:.2} s more)",
        total as f64 / seconds,
        drained.at.duration_since(first_read.at).as_secs_f64(),
        committed.at.duration_since(drained.at).as_secs_f64(),
    );
    println!(
        "  {flushes:.0} commits took {flushing:.2} s in all (Arrow, rollup, Parquet zstd, fsyncs, renames)"
    );
    println!(
        "  the processor (its thread and its librdkafka threads) used {processor_cpu:.2} s of CPU in that time: {:.0} messages per CPU-second, busy {:.0}% of the time; the broker and the producer used {others_cpu:.2} s ({:.0}% of their core)",
        total as f64 / processor_cpu,
        100.0 * processor_cpu / seconds,
        100.0 * others_cpu / seconds
    );
    total as f64 / processor_cpu
}
