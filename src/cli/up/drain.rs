//! Waiting for the processor to catch up: every partition's committed offset (the processor
//! commits after each durable Parquet flush) reaches the partition's high watermark.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use veil_config::KafkaConfig;

/// Messages the consumer group has not committed yet, per partition of the topics the processor
/// reads (partitions that never held a message are left out).
pub(crate) fn partition_lags(
    consumer: &BaseConsumer,
    kafka: &KafkaConfig,
) -> anyhow::Result<Vec<i64>> {
    let timeout = Duration::from_secs(5);
    let mut topics: Vec<String> = veil_config::Region::ALL
        .iter()
        .map(|region| kafka.topics.sanitized_topic(*region))
        .collect();
    topics.dedup();
    topics.push(kafka.topics.rejections.clone());
    let mut wanted = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in &topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .context("metadata")?;
        for partition in metadata
            .topics()
            .iter()
            .flat_map(|topic| topic.partitions())
        {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .context("watermarks")?;
            if high > low {
                wanted.add_partition(topic, partition.id());
                ends.push(high);
            }
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .context("committed offsets")?;
    Ok(committed
        .elements()
        .iter()
        .zip(ends)
        .map(|(element, high)| {
            let position = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            (high - position).max(0)
        })
        .collect())
}

/// A client that reads the processor group's committed offsets without joining the group.
pub(crate) fn group_reader(kafka: &KafkaConfig, group: &str) -> anyhow::Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    for (name, value) in &kafka.properties {
        config.set(name, value);
    }
    Ok(config.create()?)
}

/// Returns once the processor's group has committed everything, or fails after `deadline`.
pub(crate) fn wait_until_consumed(
    kafka: &KafkaConfig,
    group: &str,
    deadline: Duration,
) -> anyhow::Result<()> {
    let consumer = group_reader(kafka, group)?;
    let started = Instant::now();
    loop {
        // A check that fails (the broker still starting, a metadata timeout) is retried until
        // the deadline: giving up at once would stop the processor with acknowledged messages
        // still in the embedded broker, which lives only in memory.
        let remaining: i64 = match partition_lags(&consumer, kafka) {
            Ok(lags) => lags.iter().sum(),
            Err(error) if started.elapsed() <= deadline => {
                tracing::debug!(error = %format!("{error:#}"), "drain check failed; retrying");
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            Err(error) => return Err(error),
        };
        if remaining == 0 {
            return Ok(());
        }
        if started.elapsed() > deadline {
            anyhow::bail!("{remaining} messages not stored after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
