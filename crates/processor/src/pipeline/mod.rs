//! The consume loop: Kafka records → decode → deduplicate → per-partition buffers → Parquet
//! commits (see [`crate::store`]) → Kafka offset commits (for lag; the store is authoritative).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use veil_config::KafkaConfig;

use crate::columns::TableLayout;
use crate::config::ProcessorConfig;
use crate::dedup::DedupWindow;
use crate::row::Row;
use crate::store::{Group, Store, StoreError};

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

/// Counters the processor exports.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Rows stored.
    pub rows_written: std::sync::atomic::AtomicU64,
    /// Files written.
    pub files_written: std::sync::atomic::AtomicU64,
    /// Messages dropped as duplicates.
    pub duplicates: std::sync::atomic::AtomicU64,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
enum Change {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// Seeks newly assigned partitions to where the store says they continue.
struct RecoveringContext {
    store: Store,
    changes: Mutex<Vec<Change>>,
    failure: Mutex<Option<StoreError>>,
}

impl ClientContext for RecoveringContext {}

impl ConsumerContext for RecoveringContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let list: Vec<(String, i32)> = partitions
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                for (topic, partition) in &list {
                    match self.store.recover(topic, *partition) {
                        Ok(Some(next)) => {
                            let _ = partitions.set_partition_offset(
                                topic,
                                *partition,
                                Offset::Offset(next),
                            );
                        }
                        Ok(None) => {}
                        Err(error) => {
                            if let Ok(mut failure) = self.failure.lock() {
                                failure.get_or_insert(error);
                            }
                        }
                    }
                }
                if let Err(error) = consumer.assign(partitions) {
                    tracing::error!(%error, "assignment failed");
                }
                if let Ok(mut changes) = self.changes.lock() {
                    changes.push(Change::Assigned(list));
                }
            }
            _ => {
                if let Ok(mut changes) = self.changes.lock() {
                    changes.push(Change::Revoked(list));
                }
                let _ = consumer.unassign();
            }
        }
    }
}

/// One assigned partition's buffer.
struct PartitionBuffer {
    rows: Vec<Row>,
    first_offset: Option<i64>,
    last_offset: i64,
    oldest: Option<Instant>,
    dedup: DedupWindow,
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
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("partition.assignment.strategy", "range")
        // A crashed processor's partitions move on after 10 s rather than librdkafka's 45 s.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    for (name, value) in &kafka.properties {
        client.set(name, value);
    }
    let context = RecoveringContext {
        store: store.clone(),
        changes: Mutex::new(Vec::new()),
        failure: Mutex::new(None),
    };
    let consumer: BaseConsumer<RecoveringContext> = client.create_with_context(context)?;
    let topics: Vec<String> = veil_config::Region::ALL
        .iter()
        .map(|region| kafka.topics.sanitized_topic(*region))
        .collect();
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

    while !stop.load(Ordering::Relaxed) {
        let message = consumer.poll(Duration::from_millis(100));
        if let Some(error) = consumer
            .context()
            .failure
            .lock()
            .ok()
            .and_then(|mut f| f.take())
        {
            return Err(error.into());
        }
        let changes: Vec<Change> = consumer
            .context()
            .changes
            .lock()
            .map(|mut changes| std::mem::take(&mut *changes))
            .unwrap_or_default();
        for change in changes {
            match change {
                Change::Assigned(partitions) => {
                    for (topic, partition) in partitions {
                        let mut dedup = DedupWindow::new(window_ms);
                        load_recent_ids(&store, &topic, partition, window_ms, &mut dedup)?;
                        tracing::info!(topic = %topic, partition, remembered_ids = dedup.len(), "partition assigned");
                        buffers.insert(
                            (topic, partition),
                            PartitionBuffer {
                                rows: Vec::new(),
                                first_offset: None,
                                last_offset: -1,
                                oldest: None,
                                dedup,
                            },
                        );
                    }
                }
                Change::Revoked(partitions) => {
                    // Unstored rows are dropped: the partition's next owner resumes from the store.
                    for key in partitions {
                        buffers.remove(&key);
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
            buffer.first_offset.get_or_insert(offset);
            buffer.last_offset = offset;
            buffer.oldest.get_or_insert_with(Instant::now);
            let payload = message.payload().unwrap_or_default();
            match Row::decode(payload)
                .map_err(|error| error.to_string())
                .and_then(|row| {
                    layout
                        .check(&row.message)
                        .map_err(|error| error.to_string())?;
                    Ok(row)
                }) {
                Ok(row) => {
                    if buffer.dedup.first_sighting(
                        &row.message.tenant,
                        &row.message.message_id,
                        row.received_ms,
                    ) {
                        buffer.rows.push(row);
                    } else {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(reason) => {
                    tracing::warn!(topic = %key.0, partition = key.1, offset, %reason, "message sent to the dead-letter topic");
                    let record = BaseRecord::to(&kafka.topics.dead_letter)
                        .payload(payload)
                        .key(message.key().unwrap_or_default());
                    if let Err((error, _)) = dead_letters.send(record) {
                        tracing::error!(%error, "dead-letter produce failed");
                    }
                    stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for (key, buffer) in buffers.iter_mut() {
            let due = buffer.rows.len() >= config.flush_rows
                || buffer
                    .oldest
                    .is_some_and(|oldest| oldest.elapsed() >= flush_interval);
            if due {
                flush(&consumer, &store, layout, key, buffer, stats)?;
            }
        }
    }
    for (key, buffer) in buffers.iter_mut() {
        flush(&consumer, &store, layout, key, buffer, stats)?;
    }
    let _ = dead_letters.flush(Duration::from_secs(5));
    Ok(())
}

fn load_recent_ids(
    store: &Store,
    topic: &str,
    partition: i32,
    window_ms: i64,
    dedup: &mut DedupWindow,
) -> Result<(), ProcessorError> {
    let marker = format!("part-{topic}-{partition}-");
    let horizon = std::time::SystemTime::now()
        - Duration::from_millis(
            u64::try_from(window_ms)
                .unwrap_or(u64::MAX)
                .min(u64::MAX / 2),
        );
    let mut stack = vec![store.root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !name.starts_with('_') {
                stack.push(path);
            } else if name.starts_with(&marker)
                && entry
                    .metadata()
                    .and_then(|meta| meta.modified())
                    .is_ok_and(|modified| modified >= horizon)
            {
                dedup.load_file(&path)?;
            }
        }
    }
    Ok(())
}

fn flush(
    consumer: &BaseConsumer<RecoveringContext>,
    store: &Store,
    layout: &TableLayout,
    (topic, partition): &(String, i32),
    buffer: &mut PartitionBuffer,
    stats: &ProcessorStats,
) -> Result<(), ProcessorError> {
    let Some(first) = buffer.first_offset else {
        return Ok(());
    };
    let last = buffer.last_offset;
    let mut groups: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
    for row in &buffer.rows {
        groups
            .entry((row.message.tenant.as_str(), row.date.as_str()))
            .or_default()
            .push(row);
    }
    let mut batches = Vec::with_capacity(groups.len());
    for ((tenant, date), rows) in groups {
        batches.push(Group {
            tenant: tenant.to_owned(),
            date: date.to_owned(),
            batch: layout.batch(&rows)?,
        });
    }
    // Even a flush of only duplicates or dead letters commits, so the offsets move on.
    store.commit(topic, *partition, first, last, &batches)?;
    stats
        .rows_written
        .fetch_add(buffer.rows.len() as u64, Ordering::Relaxed);
    stats
        .files_written
        .fetch_add(batches.len() as u64, Ordering::Relaxed);
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(topic, *partition, Offset::Offset(last + 1))?;
    if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
        tracing::warn!(%error, "offset commit failed (the store stays authoritative)");
    }
    buffer.rows.clear();
    buffer.first_offset = None;
    buffer.oldest = None;
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis()),
    )
    .unwrap_or(i64::MAX);
    buffer.dedup.expire(now_ms);
    Ok(())
}
