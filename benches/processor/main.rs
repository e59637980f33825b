//! Processor throughput from Kafka to committed Parquet, with librdkafka's in-process mock
//! cluster as the broker (the embedded broker): `veil filter` turns `gen_events.py` traffic into
//! sanitized messages, they are produced to a 6-partition topic (10% of them twice, as client
//! retries), then `veil_processor::pipeline::run` consumes them on this thread while the clock
//! runs. Run it pinned to one core: `taskset -c 0 cargo bench --bench processor` (see README).
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
    kafka.topics.partitions = 6;
    for topic in kafka.topics.all_topics() {
        cluster.create_topic(&topic, 6, 1).expect("topic");
    }
    let topic = kafka.topics.sanitized_topic(veil_config::Region::Us);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("linger.ms", "20")
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
    let allowlist = Allowlist::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml"))
        .expect("allowlist");
    let layout = TableLayout::from_policy(&allowlist.compile());
    let rounds = if std::env::var("VEIL_PROFILE").as_deref() == Ok("processor") {
        3
    } else {
        1
    };
    println!(
        "{} sanitized messages ({} bytes on average) + {} retries in the mock cluster",
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
        let mut first_commit: Option<(Instant, u64)> = None;
        let mut finished: Option<Instant> = None;
        let started = Instant::now();
        std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                loop {
                    let done = stats.rows(tables::EVENTS) + stats.duplicates.get();
                    if first_commit.is_none() && done > 0 {
                        first_commit = Some((Instant::now(), done));
                    }
                    if done >= produced
                        || started.elapsed() > Duration::from_secs(120)
                        || done + stats.dead_letters.get() >= produced
                    {
                        finished = Some(Instant::now());
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    if std::env::var_os("VEIL_BENCH_PROGRESS").is_some()
                        && started.elapsed().subsec_millis() < 5
                    {
                        eprintln!(
                            "  {:.0} s: {} rows, {} duplicates, {} dead letters of {produced}",
                            started.elapsed().as_secs_f64(),
                            stats.rows(tables::EVENTS),
                            stats.duplicates.get(),
                            stats.dead_letters.get()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            run(&config, &kafka, &layout, &stop, &stats).expect("processor runs");
            watcher.join().expect("watcher");
        });
        let (Some((first_at, first_done)), Some(end)) = (first_commit, finished) else {
            panic!("no commit");
        };
        let total = end.duration_since(started).as_secs_f64();
        let steady = end.duration_since(first_at).as_secs_f64();
        println!(
            "round {round}: {} rows stored, {} duplicates dropped, {} daily_activity rows, {} files",
            stats.rows(tables::EVENTS),
            stats.duplicates.get(),
            stats.rows(tables::DAILY_ACTIVITY),
            stats
                .files_written
                .get_or_create(&veil_processor::metrics::TableLabels {
                    table: tables::EVENTS
                })
                .get()
        );
        println!(
            "  {:.0} messages/s after the first commit ({} messages in {steady:.2} s); {:.0} messages/s including start-up and group join ({total:.2} s)",
            (produced - first_done) as f64 / steady,
            produced - first_done,
            produced as f64 / total
        );
    }
}
