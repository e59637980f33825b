//! The consume loop: Kafka records → decode → deduplicate → per-partition buffers → Parquet
//! commits (see [`crate::store`]) → Kafka offset commits (for lag; the store is authoritative).
//!
//! It reads the sanitized topics (events) and the gateway's audit topic (rejections) in one
//! consumer group; each topic-partition is committed on its own.

mod buffer;
mod context;
#[cfg(test)]
mod fixtures;
mod flush;
mod stdin;
mod waiting;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use veil_config::KafkaConfig;

use self::buffer::PartitionBuffer;
use self::context::{Change, RecoveringContext};
use self::flush::{FlushContext, flush, flush_all, recent_ids};
pub use self::stdin::{STDIN_TOPIC, run_stdin};
use self::waiting::WaitingPartitions;
use crate::columns::TableLayout;
use crate::config::ProcessorConfig;
use crate::metrics::PartitionLabels;
pub use crate::metrics::ProcessorStats;
use crate::store::{Store, StoreError};

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// Kafka client trouble.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Storage trouble: the processor stops rather than skip data.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Arrow encoding trouble.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

fn consumer_config(config: &ProcessorConfig, kafka: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        // Offsets are committed explicitly after each flush (`flush.rs`); librdkafka's own
        // per-record offset store would only take a partition lock per record.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // A partition that runs dry is asked again soon (librdkafka waits 500 ms by default).
        .set("fetch.wait.max.ms", "100")
        // When the prefetch queue is full (64 MiB), fetch again as soon as it drains rather than
        // after librdkafka's default 1 s: that pause idled the processor between bursts.
        .set("fetch.queue.backoff.ms", "10")
        .set("partition.assignment.strategy", "range")
        // High watermarks for the lag gauge.
        .set("statistics.interval.ms", "5000")
        // A crashed processor's partitions move on after 10 s rather than librdkafka's 45 s.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    for (name, value) in &kafka.properties {
        client.set(name, value);
    }
    client
}

/// The assigned partitions' buffers, found by topic name without allocating.
#[derive(Default)]
struct Buffers {
    topics: Vec<(String, Vec<Option<PartitionBuffer>>)>,
}

impl Buffers {
    fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionBuffer> {
        let (_, partitions) = self.topics.iter_mut().find(|(name, _)| name == topic)?;
        partitions
            .get_mut(usize::try_from(partition).ok()?)?
            .as_mut()
    }

    fn insert(&mut self, topic: String, partition: i32, buffer: PartitionBuffer) {
        let Ok(at) = usize::try_from(partition) else {
            return;
        };
        let partitions = match self.topics.iter().position(|(name, _)| *name == topic) {
            Some(found) => &mut self.topics[found].1,
            None => {
                self.topics.push((topic, Vec::new()));
                &mut self.topics.last_mut().expect("just pushed").1
            }
        };
        if partitions.len() <= at {
            partitions.resize_with(at + 1, || None);
        }
        partitions[at] = Some(buffer);
    }

    fn remove(&mut self, topic: &str, partition: i32) {
        if let Some((_, partitions)) = self.topics.iter_mut().find(|(name, _)| name == topic)
            && let Some(slot) = usize::try_from(partition)
                .ok()
                .and_then(|at| partitions.get_mut(at))
        {
            *slot = None;
        }
    }

    /// How many partitions are assigned, for the gauge of the same name.
    fn len(&self) -> i64 {
        let assigned = self
            .topics
            .iter()
            .flat_map(|(_, partitions)| partitions.iter().flatten())
            .count();
        i64::try_from(assigned).unwrap_or(i64::MAX)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&str, i32, &mut PartitionBuffer)> {
        self.topics.iter_mut().flat_map(|(topic, partitions)| {
            let topic: &str = topic;
            partitions
                .iter_mut()
                .enumerate()
                .filter_map(move |(at, slot)| {
                    let buffer = slot.as_mut()?;
                    Some((topic, i32::try_from(at).ok()?, buffer))
                })
        })
    }
}

/// How long a poll waits for a record: also how soon an idle processor notices `stop`.
const POLL_TIMEOUT: Duration = Duration::from_millis(20);

/// How many records are read between two looks at the clock for interval flushes.
const CLOCK_EVERY: u32 = 256;

/// How long the processor may hold no partition before it says so (and again as often).
const UNASSIGNED_LOG_EVERY: Duration = Duration::from_secs(60);

/// Time without any partition assigned: a consumer group the broker lost (tansu 0.6 after a
/// stall longer than the session timeout) looks like an idle processor otherwise.
#[derive(Default)]
struct Unassigned {
    since: Option<Instant>,
    logged: Option<Instant>,
}

impl Unassigned {
    /// Called while idle, with whether any partition is held.
    fn check(&mut self, assigned: bool) {
        if assigned {
            self.since = None;
            return;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        let quiet_long_enough = since.elapsed() >= UNASSIGNED_LOG_EVERY
            && self
                .logged
                .is_none_or(|at| at.elapsed() >= UNASSIGNED_LOG_EVERY);
        if quiet_long_enough {
            tracing::warn!(
                seconds = since.elapsed().as_secs(),
                "no partitions assigned; if this lasts, the broker may have lost the consumer group"
            );
            self.logged = Some(Instant::now());
        }
    }
}

/// Runs until `stop` is set; every row read is stored exactly once.
pub fn run(
    config: &ProcessorConfig,
    kafka: &KafkaConfig,
    layout: &TableLayout,
    stop: &AtomicBool,
    stats: &ProcessorStats,
) -> Result<(), ProcessorError> {
    let store = Store::open(&config.data_dir)?;
    let consumer: BaseConsumer<RecoveringContext> = consumer_config(config, kafka)
        .create_with_context(RecoveringContext::new(store.clone()))?;
    let mut topics: Vec<String> = veil_config::Region::ALL
        .iter()
        .map(|region| kafka.topics.sanitized_topic(*region))
        .collect();
    topics.push(kafka.topics.rejections.clone());
    let topic_names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_names)?;
    // Polled by this loop (no thread of its own: nothing to join when the processor stops).
    let dead_letters: BaseProducer<DefaultProducerContext> = {
        let mut producer = ClientConfig::new();
        producer.set("bootstrap.servers", &kafka.bootstrap_servers);
        for (name, value) in &kafka.properties {
            producer.set(name, value);
        }
        producer.create()?
    };
    let window_ms = i64::try_from(config.dedup_window_hours * 3_600_000).unwrap_or(i64::MAX);
    let flush_interval = Duration::from_millis(config.flush_interval_ms);
    let mut buffers = Buffers::default();
    let mut waiting = WaitingPartitions::default();
    let flusher = FlushContext {
        consumer: Some(&consumer),
        store: &store,
        layout,
        stats,
        compact_files: config.compact_files,
    };
    let mut lag_updated = Instant::now();
    let mut since_clock = 0_u32;
    // Transient consumer errors, logged at most every 10 s (an outage reports one per
    // reconnection attempt).
    let unavailable = veil_config::ErrorLogLimit::default();
    let mut unassigned = Unassigned::default();

    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(POLL_TIMEOUT) {
            // Brokers down, a topic not created yet, a connection reset: librdkafka reconnects
            // and resumes on its own, so the processor waits with it instead of exiting.
            Some(Err(KafkaError::MessageConsumption(code))) => {
                if let Some(passed_over) = unavailable.admit() {
                    tracing::warn!(error = %code, passed_over, "kafka unavailable; the consumer keeps retrying");
                }
                None
            }
            other => other,
        };
        if message.is_none() {
            unassigned.check(buffers.len() > 0 || !waiting.is_empty());
        }
        if let Some(error) = consumer.context().take_failure() {
            return Err(error.into());
        }
        if consumer.context().has_changes() {
            for change in consumer.context().take_changes() {
                match change {
                    Change::Assigned { ready, contested } => {
                        for (topic, partition) in ready {
                            let dedup = recent_ids(&store, &topic, partition, window_ms)?;
                            tracing::info!(topic = %topic, partition, remembered_ids = dedup.len(), "partition assigned");
                            buffers.insert(topic, partition, PartitionBuffer::new(dedup));
                        }
                        for partition in contested {
                            waiting.add(partition);
                        }
                    }
                    Change::Revoked(partitions) => {
                        // Unstored rows are dropped: the partition's next owner resumes from the store.
                        for (topic, partition) in partitions {
                            stats.consumer_lag.remove(&PartitionLabels {
                                topic: topic.clone(),
                                partition,
                            });
                            buffers.remove(&topic, partition);
                            waiting.remove(&topic, partition);
                        }
                    }
                }
            }
            count_partitions(stats, &buffers, &waiting);
        }
        let mut look_at_clock = true;
        if let Some(message) = message {
            let message = message?;
            let (topic, partition) = (message.topic(), message.partition());
            if let Some(buffer) = buffers.get_mut(topic, partition) {
                let offset = message.offset();
                let payload = message.payload().unwrap_or_default();
                let is_audit = topic == kafka.topics.rejections;
                let key = message.key().unwrap_or_default();
                buffer.accept(offset, payload, is_audit, layout, stats, |dead, reason| {
                    tracing::warn!(topic = %topic, partition, offset, %reason, "message sent to the dead-letter topic");
                    let record = BaseRecord::to(&kafka.topics.dead_letter)
                        .payload(dead)
                        .key(key);
                    if let Err((error, _)) = dead_letters.send(record) {
                        tracing::error!(%error, "dead-letter produce failed");
                    }
                    dead_letters.poll(Duration::ZERO);
                });
                if buffer.rows >= config.flush_rows {
                    flush(&flusher, topic, partition, buffer)?;
                }
            }
            since_clock += 1;
            look_at_clock = since_clock >= CLOCK_EVERY;
        }
        if look_at_clock {
            since_clock = 0;
            let now = Instant::now();
            let mut due: Vec<(&str, i32, &mut PartitionBuffer)> = buffers
                .iter_mut()
                .filter(|(_, _, buffer)| {
                    buffer
                        .oldest
                        .is_some_and(|oldest| now.duration_since(oldest) >= flush_interval)
                })
                .collect();
            if !due.is_empty() {
                flush_all(&flusher, &mut due)?;
            }
            if !waiting.is_empty() {
                waiting.take_over_free(&consumer, &store, window_ms, &mut buffers, now)?;
                count_partitions(stats, &buffers, &waiting);
            }
            if now.duration_since(lag_updated) >= Duration::from_secs(1) {
                lag_updated = now;
                dead_letters.poll(Duration::ZERO);
                update_lag(consumer.context(), &mut buffers, &waiting, stats);
            }
        }
    }
    let mut all: Vec<(&str, i32, &mut PartitionBuffer)> = buffers.iter_mut().collect();
    flush_all(&flusher, &mut all)?;
    let _ = dead_letters.flush(Duration::from_secs(5));
    Ok(())
}

fn update_lag(
    context: &RecoveringContext,
    buffers: &mut Buffers,
    waiting: &WaitingPartitions,
    stats: &ProcessorStats,
) {
    let reading = buffers
        .iter_mut()
        .map(|(topic, partition, buffer)| (topic, partition, buffer.position));
    for (topic, partition, position) in reading.chain(waiting.assigned_at()) {
        let Some(high) = context.high_watermark(topic, partition) else {
            continue;
        };
        // A waiting partition reads nothing: its lag grows with what arrives meanwhile.
        let position = position.unwrap_or(high);
        stats
            .consumer_lag
            .get_or_create(&PartitionLabels {
                topic: topic.to_owned(),
                partition,
            })
            .set((high - position).max(0));
    }
}

/// Sets the assigned and waiting partitions' gauges (assigned counts the waiting ones too).
fn count_partitions(stats: &ProcessorStats, buffers: &Buffers, waiting: &WaitingPartitions) {
    let waiting = i64::try_from(waiting.len()).unwrap_or(i64::MAX);
    stats.waiting_partitions.set(waiting);
    stats.assigned_partitions.set(buffers.len() + waiting);
}
