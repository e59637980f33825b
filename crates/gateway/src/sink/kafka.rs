//! The Kafka publisher: an idempotent rdkafka producer with `acks=all`; a request's records are
//! acknowledged together or the request fails and the client retries.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use veil_config::KafkaConfig;

use super::{PublishError, PublishFuture, Publisher, ReadyFuture, Record};

/// librdkafka settings Veil's producer needs; `kafka.properties` may add to them.
fn producer_config(kafka: &KafkaConfig, delivery_timeout: Duration) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
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

/// Publishes to Kafka.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
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
        let producer: FutureProducer = producer_config(kafka, delivery_timeout).create()?;
        Ok(KafkaPublisher { producer })
    }
}

impl Publisher for KafkaPublisher {
    fn publish(&self, records: Vec<Record>) -> PublishFuture {
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            let future_record = FutureRecord::to(&record.topic)
                .key(&record.key)
                .payload(&record.payload);
            match self.producer.send_result(future_record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Records already queued may still be delivered: duplicates are fine, the
                    // processor deduplicates by messageId.
                    return Box::pin(async { Err(PublishError::QueueFull) });
                }
                Err((error, _)) => {
                    let error = error.to_string();
                    return Box::pin(async move { Err(PublishError::Unavailable(error)) });
                }
            }
        }
        Box::pin(async move {
            for outcome in join_all(deliveries).await {
                match outcome {
                    Ok(Ok(_)) => {}
                    Ok(Err((error, _))) => {
                        return Err(PublishError::NotAcknowledged(error.to_string()));
                    }
                    Err(_) => return Err(PublishError::Unavailable("producer dropped".to_owned())),
                }
            }
            Ok(())
        })
    }

    fn ready(&self) -> ReadyFuture {
        let producer = self.producer.clone();
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
        if let Err(error) = self.producer.flush(timeout) {
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
    let topics: Vec<NewTopic<'_>> = names
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
        if let Err((topic, code)) = result {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                failures.insert(topic, code);
            }
        }
    }
    match failures.into_iter().next() {
        None => Ok(()),
        Some((_, code)) => Err(KafkaError::AdminOp(code)),
    }
}
