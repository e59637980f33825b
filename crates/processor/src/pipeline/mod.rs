//! The consume loop: Kafka records → decode → deduplicate → per-partition buffers → Parquet
//! commits (see [`crate::store`]) → Kafka offset commits (for lag; the store is authoritative).
//!
//! It reads the sanitized topics (events) and the gateway's audit topic (rejections) in one
//! consumer group; each topic-partition is committed on its own.

mod context;
mod flush;
mod stdin;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use veil_config::KafkaConfig;

use self::context::{Change, RecoveringContext};
use self::flush::{FlushContext, flush, load_recent_ids};
pub use self::stdin::{STDIN_TOPIC, run_stdin};
use crate::audit::{AuditRow, decode_audit};
use crate::columns::TableLayout;
use crate::config::ProcessorConfig;
use crate::dedup::DedupWindow;
use crate::metrics::PartitionLabels;
pub use crate::metrics::ProcessorStats;
use crate::row::Row;
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

/// One assigned partition's buffer.
pub(crate) struct PartitionBuffer {
    rows: Vec<Row>,
    audits: Vec<AuditRow>,
    first_offset: Option<i64>,
    last_offset: i64,
    oldest: Option<Instant>,
    dedup: DedupWindow,
    /// The next offset to read (for lag), once known.
    position: Option<i64>,
}

fn consumer_config(config: &ProcessorConfig, kafka: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
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
    let dead_letters: ThreadedProducer<DefaultProducerContext> = {
        let mut producer = ClientConfig::new();
        producer.set("bootstrap.servers", &kafka.bootstrap_servers);
        for (name, value) in &kafka.properties {
            producer.set(name, value);
        }
        producer.create()?
    };
    let window_ms = i64::try_from(config.dedup_window_hours * 3_600_000).unwrap_or(i64::MAX);
    let flush_interval = Duration::from_millis(config.flush_interval_ms);
    let mut buffers: HashMap<(String, i32), PartitionBuffer> = HashMap::new();
    let flusher = FlushContext {
        consumer: Some(&consumer),
        store: &store,
        layout,
        stats,
        compact_files: config.compact_files,
    };
    let mut lag_updated = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        let message = consumer.poll(Duration::from_millis(100));
        if let Some(error) = consumer.context().take_failure() {
            return Err(error.into());
        }
        for change in consumer.context().take_changes() {
            match change {
                Change::Assigned(partitions) => {
                    for (topic, partition) in partitions {
                        let mut dedup = DedupWindow::new(window_ms);
                        load_recent_ids(&store, &topic, partition, window_ms, &mut dedup)?;
                        tracing::info!(topic = %topic, partition, remembered_ids = dedup.len(), "partition assigned");
                        buffers.insert((topic, partition), PartitionBuffer::new(dedup));
                    }
                }
                Change::Revoked(partitions) => {
                    // Unstored rows are dropped: the partition's next owner resumes from the store.
                    for (topic, partition) in partitions {
                        stats.consumer_lag.remove(&PartitionLabels {
                            topic: topic.clone(),
                            partition,
                        });
                        buffers.remove(&(topic, partition));
                    }
                }
            }
        }
        if let Some(message) = message {
            let message = message?;
            let key = (message.topic().to_owned(), message.partition());
            let Some(buffer) = buffers.get_mut(&key) else {
                continue;
            };
            let offset = message.offset();
            let payload = message.payload().unwrap_or_default();
            let is_audit = key.0 == kafka.topics.rejections;
            if let Err(reason) = accept(buffer, offset, payload, is_audit, layout, stats) {
                tracing::warn!(topic = %key.0, partition = key.1, offset, %reason, "message sent to the dead-letter topic");
                let record = BaseRecord::to(&kafka.topics.dead_letter)
                    .payload(payload)
                    .key(message.key().unwrap_or_default());
                if let Err((error, _)) = dead_letters.send(record) {
                    tracing::error!(%error, "dead-letter produce failed");
                }
            }
        }
        for (key, buffer) in buffers.iter_mut() {
            let due = buffer.rows.len() + buffer.audits.len() >= config.flush_rows
                || buffer
                    .oldest
                    .is_some_and(|oldest| oldest.elapsed() >= flush_interval);
            if due {
                flush(&flusher, key, buffer)?;
            }
        }
        if lag_updated.elapsed() >= Duration::from_secs(1) {
            lag_updated = Instant::now();
            update_lag(consumer.context(), &buffers, stats);
        }
    }
    for (key, buffer) in buffers.iter_mut() {
        flush(&flusher, key, buffer)?;
    }
    let _ = dead_letters.flush(Duration::from_secs(5));
    Ok(())
}

impl PartitionBuffer {
    fn new(dedup: DedupWindow) -> PartitionBuffer {
        PartitionBuffer {
            rows: Vec::new(),
            audits: Vec::new(),
            first_offset: None,
            last_offset: -1,
            oldest: None,
            dedup,
            position: None,
        }
    }
}

/// Buffers one record at `offset` (dropping a duplicate); `Err` names why it is a dead letter.
fn accept(
    buffer: &mut PartitionBuffer,
    offset: i64,
    payload: &[u8],
    is_audit: bool,
    layout: &TableLayout,
    stats: &ProcessorStats,
) -> Result<(), String> {
    buffer.first_offset.get_or_insert(offset);
    buffer.last_offset = offset;
    buffer.position = Some(offset + 1);
    buffer.oldest.get_or_insert_with(Instant::now);
    let decoded = if is_audit {
        decode_audit(payload)
            .map(|rows| buffer.audits.extend(rows))
            .map_err(|error| error.to_string())
    } else {
        decode_event(layout, payload).map(|row| {
            let first = buffer.dedup.first_sighting(
                &row.message.tenant,
                &row.message.message_id,
                row.received_ms,
            );
            if first {
                buffer.rows.push(row);
            } else {
                stats.duplicates.inc();
            }
        })
    };
    if decoded.is_err() {
        stats.dead_letters.inc();
    }
    stats.records_read.inc();
    decoded
}

fn decode_event(layout: &TableLayout, payload: &[u8]) -> Result<Row, String> {
    let row = Row::decode(payload).map_err(|error| error.to_string())?;
    layout
        .check(&row.message)
        .map_err(|error| error.to_string())?;
    Ok(row)
}

fn update_lag(
    context: &RecoveringContext,
    buffers: &HashMap<(String, i32), PartitionBuffer>,
    stats: &ProcessorStats,
) {
    for ((topic, partition), buffer) in buffers {
        let Some(high) = context.high_watermark(topic, *partition) else {
            continue;
        };
        let position = buffer.position.unwrap_or(high);
        stats
            .consumer_lag
            .get_or_create(&PartitionLabels {
                topic: topic.clone(),
                partition: *partition,
            })
            .set((high - position).max(0));
    }
}
