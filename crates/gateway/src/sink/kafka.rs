//! The Kafka publisher: an idempotent rdkafka producer with `acks=all`, replaced after a fatal
//! error or a delivery timeout; a request's records are acknowledged together or the request
//! fails and the client retries.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use tokio::sync::Notify;
use veil_config::{ErrorLogLimit, KafkaConfig};

use super::{PublishError, PublishFuture, Publisher, ReadyFuture, RecordBatch};

/// librdkafka settings Veil's producer needs; `kafka.properties` may add to them.
fn producer_config(kafka: &KafkaConfig, delivery_timeout: Duration) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "524288")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .set("client.id", "veil-gateway");
    for (name, value) in &kafka.properties {
        config.set(name, value);
    }
    config
}

/// One request's records in flight: how many are not yet acknowledged, whether any failed, and
/// a wake-up for the request once the last report arrived.
#[derive(Debug)]
struct RequestAck {
    remaining: AtomicUsize,
    failure: Mutex<Option<String>>,
    done: Notify,
}

impl RequestAck {
    /// Counts `count` records as settled; wakes the request when none remain.
    fn settle(&self, count: usize) {
        if count > 0 && self.remaining.fetch_sub(count, Ordering::AcqRel) == count {
            self.done.notify_one();
        }
    }

    fn fail(&self, reason: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(reason);
        }
    }
}

/// Routes librdkafka's delivery reports to their request: one shared counter per request, not
/// one channel per message.
#[derive(Default)]
struct AckContext {
    /// Set when a record timed out, by librdkafka's report or by a request's own deadline: the
    /// broker was gone for longer than the delivery timeout.
    timed_out: Arc<AtomicBool>,
    errors: ErrorLogLimit,
}

impl ClientContext for AckContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(passed_over) = self.errors.admit() {
            tracing::error!(%error, reason, passed_over, "kafka producer error");
        }
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<RequestAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Arc<RequestAck>) {
        if let Err((error, _)) = result {
            if matches!(
                error,
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
            ) {
                self.timed_out.store(true, Ordering::Relaxed);
            }
            ack.fail(error.to_string());
        }
        ack.settle(1);
    }
}

/// The slot of the current producer (see [`KafkaPublisher::producer`]).
type ProducerSlot = RwLock<Arc<ThreadedProducer<AckContext>>>;

/// Each Veil topic's partition count, as the cluster's metadata last said: what packing needs.
type PartitionCounts = RwLock<HashMap<String, i32>>;

/// How often the partition counts are read again (partitions can be added to a topic).
const METADATA_REFRESH: Duration = Duration::from_secs(10);

/// Publishes to Kafka.
#[derive(Clone)]
pub struct KafkaPublisher {
    /// Replaced whole when librdkafka reports a fatal error (an idempotent producer's sequence
    /// broken beyond repair): the broken one fails its in-flight records, clients retry.
    producer: Arc<ProducerSlot>,
    /// Until a topic's count is known, its messages go one a record, placed by librdkafka.
    partition_counts: Arc<PartitionCounts>,
    /// The largest packed record (see [`RecordBatch::packed`]); 0 sends one message a record.
    max_packed_bytes: usize,
    config: ClientConfig,
    delivery_timeout: Duration,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KafkaPublisher")
            .finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// Connects a producer; records not acknowledged within `delivery_timeout` fail.
    pub fn new(kafka: &KafkaConfig, delivery_timeout: Duration) -> Result<Self, KafkaError> {
        let config = producer_config(kafka, delivery_timeout);
        let producer: ThreadedProducer<AckContext> =
            config.create_with_context(AckContext::default())?;
        let publisher = KafkaPublisher {
            producer: Arc::new(RwLock::new(Arc::new(producer))),
            partition_counts: Arc::default(),
            max_packed_bytes: super::MAX_PACKED_BYTES,
            config,
            delivery_timeout,
        };
        let (producer, counts) = (
            Arc::downgrade(&publisher.producer),
            Arc::downgrade(&publisher.partition_counts),
        );
        let topics = kafka.topics.all_topics();
        std::thread::Builder::new()
            .name("veil-metadata".to_owned())
            .spawn(move || refresh_partition_counts(&producer, &counts, &topics))
            .map_err(|error| KafkaError::ClientCreation(error.to_string()))?;
        Ok(publisher)
    }

    /// Packs a request's messages for one partition into records of at most `bytes` (0: one
    /// message a record, for brokers that bound their logs by record count).
    pub fn with_max_packed_bytes(mut self, bytes: usize) -> Self {
        self.max_packed_bytes = bytes;
        self
    }

    /// The current producer, replaced first if the last one hit a fatal error or had records
    /// time out. After an outage longer than the delivery timeout an idempotent producer bumps
    /// its epoch and carries on with its producer id, which some Kafka-API brokers mishandle
    /// (tansu 0.6 panics on its next produce and then refuses all of them); a fresh producer
    /// starts with a new id, which every broker handles.
    fn producer(&self) -> Arc<ThreadedProducer<AckContext>> {
        let current = match self.producer.read() {
            Ok(producer) => producer.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let fatal = current.client().fatal_error().map(|(code, _)| code);
        let timed_out = current.context().timed_out.load(Ordering::Relaxed);
        if fatal.is_none() && !timed_out {
            return current;
        }
        let Ok(mut slot) = self.producer.write() else {
            return current;
        };
        if !Arc::ptr_eq(&slot, &current) {
            return slot.clone();
        }
        match self.config.create_with_context(AckContext::default()) {
            Ok(fresh) => {
                tracing::warn!(fatal_error = ?fatal, timed_out, "producer replaced");
                let retired = std::mem::replace(&mut *slot, Arc::new(fresh));
                // Its records not yet acknowledged fail now (their requests answer 503 and the
                // clients retry on the fresh producer) instead of reaching the broker when it
                // returns, under the producer id that broker may choke on.
                retired.purge(PurgeConfig::default().queue().inflight());
                retire(retired, self.delivery_timeout);
            }
            Err(error) => tracing::error!(%error, "cannot replace a failed producer"),
        }
        slot.clone()
    }
}

/// Keeps a replaced producer until the delivery reports of its purged records are delivered,
/// then drops it off the request path (dropping a producer waits for its threads). Meanwhile it
/// is purged again every second: a request that took it just before the swap may still queue
/// records on it, which must not reach a returning broker either.
fn retire(producer: Arc<ThreadedProducer<AckContext>>, delivery_timeout: Duration) {
    let linger = delivery_timeout + Duration::from_secs(5);
    let spawned = std::thread::Builder::new()
        .name("veil-retired-producer".to_owned())
        .spawn(move || {
            let until = std::time::Instant::now() + linger;
            while std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_secs(1));
                producer.purge(PurgeConfig::default().queue().inflight());
            }
            drop(producer);
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "a replaced producer is dropped at once");
    }
}

/// Reads the topics' partition counts now and every [`METADATA_REFRESH`], until the publisher
/// is gone.
fn refresh_partition_counts(
    producer: &Weak<ProducerSlot>,
    counts: &Weak<PartitionCounts>,
    topics: &[String],
) {
    loop {
        let (Some(slot), Some(counts)) = (producer.upgrade(), counts.upgrade()) else {
            return;
        };
        let current = match slot.read() {
            Ok(producer) => producer.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        drop(slot);
        let pause = match current
            .client()
            .fetch_metadata(None, Duration::from_secs(5))
        {
            Ok(metadata) => {
                let found: HashMap<String, i32> = metadata
                    .topics()
                    .iter()
                    .filter(|topic| {
                        topic.error().is_none() && topics.iter().any(|name| name == topic.name())
                    })
                    .filter_map(|topic| {
                        let count = i32::try_from(topic.partitions().len()).ok()?;
                        (count > 0).then(|| (topic.name().to_owned(), count))
                    })
                    .collect();
                let pause = if found.is_empty() {
                    Duration::from_secs(1)
                } else {
                    METADATA_REFRESH
                };
                if let Ok(mut counts) = counts.write() {
                    *counts = found;
                }
                pause
            }
            Err(error) => {
                tracing::debug!(%error, "topic metadata not read; retrying");
                Duration::from_secs(1)
            }
        };
        drop((current, counts));
        std::thread::sleep(pause);
    }
}

impl Publisher for KafkaPublisher {
    fn publish(&self, records: RecordBatch) -> PublishFuture {
        let packed = match self.partition_counts.read() {
            Ok(counts) => records.packed(self.max_packed_bytes, |topic| counts.get(topic).copied()),
            Err(_) => records.packed(self.max_packed_bytes, |_| None),
        };
        let ack = Arc::new(RequestAck {
            remaining: AtomicUsize::new(packed.len()),
            failure: Mutex::new(None),
            done: Notify::new(),
        });
        let mut refused = None;
        let producer = self.producer();
        let timed_out = producer.context().timed_out.clone();
        for (sent, record) in packed.iter().enumerate() {
            let mut base_record = BaseRecord::with_opaque_to(record.topic, ack.clone())
                .key(record.key)
                .payload(record.payload.as_ref());
            if let Some(partition) = record.partition {
                base_record = base_record.partition(partition);
            }
            if let Err((error, _)) = producer.send(base_record) {
                // Records already queued may still be delivered: duplicates are fine, the
                // processor deduplicates by messageId.
                refused = Some(match error {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                        PublishError::QueueFull
                    }
                    error => PublishError::Unavailable(error.to_string()),
                });
                ack.settle(packed.len() - sent);
                break;
            }
        }
        // librdkafka reports every queued record by `message.timeout.ms`, but with the broker
        // gone that report came up to 5 s late: the client gets its 503 on time instead. A
        // record that is delivered after all is stored twice once the client retries, which the
        // processor's deduplication absorbs; nothing unacknowledged is ever answered 200.
        let deadline = self.delivery_timeout;
        Box::pin(async move {
            if ack.remaining.load(Ordering::Acquire) > 0
                && tokio::time::timeout(deadline, ack.done.notified())
                    .await
                    .is_err()
            {
                // The client retries at once: its retry must not go to this producer, which
                // keeps its producer id across the outage (see `producer`).
                timed_out.store(true, Ordering::Relaxed);
                return Err(PublishError::NotAcknowledged(
                    "no delivery report".to_owned(),
                ));
            }
            if let Some(refused) = refused {
                return Err(refused);
            }
            match ack.failure.lock().map(|failure| failure.clone()) {
                Ok(None) => Ok(()),
                Ok(Some(reason)) => Err(PublishError::NotAcknowledged(reason)),
                Err(_) => Err(PublishError::Unavailable("poisoned".to_owned())),
            }
        })
    }

    fn ready(&self) -> ReadyFuture {
        let producer = self.producer();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok_and(|metadata| !metadata.brokers().is_empty())
            })
            .await
            .unwrap_or(false)
        })
    }

    fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer().flush(timeout) {
            tracing::warn!(%error, "producer flush did not finish");
        }
    }
}

/// Creates Veil's topics where they do not exist yet (a producer to a missing topic waits).
pub async fn create_topics(kafka: &KafkaConfig) -> Result<(), KafkaError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.bootstrap_servers);
    for (name, value) in &kafka.properties {
        config.set(name, value);
    }
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let names = kafka.topics.all_topics();
    // Topics that already exist need no admin request (some brokers and clusters, librdkafka's
    // mock cluster among them, refuse or restrict CreateTopics; provisioned topics are fine).
    let existing: std::collections::BTreeSet<String> = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))?
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none() && !topic.partitions().is_empty())
        .map(|topic| topic.name().to_owned())
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !existing.contains(*name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                kafka.topics.partitions,
                TopicReplication::Fixed(kafka.topics.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&topics, &options).await?;
    let mut failures = BTreeMap::new();
    for result in results {
        if let Err((topic, code)) = result
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            failures.insert(topic, code);
        }
    }
    match failures.into_iter().next() {
        None => Ok(()),
        Some((_, code)) => Err(KafkaError::AdminOp(code)),
    }
}
