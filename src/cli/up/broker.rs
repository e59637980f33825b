//! The embedded broker of `veil up`: librdkafka's in-process mock cluster, which speaks the Kafka
//! protocol on a loopback port, so the gateway and processor run the same rdkafka code they run
//! against a real cluster — only `bootstrap.servers` differs.

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running in-process Kafka-protocol broker; it stops when dropped.
pub(crate) struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster on a loopback port.
    pub(crate) fn start() -> anyhow::Result<EmbeddedBroker> {
        let cluster = MockCluster::new(1).context("cannot start the embedded Kafka broker")?;
        Ok(EmbeddedBroker { cluster })
    }

    /// Creates every topic Veil uses (the mock cluster has no CreateTopics; this is its own API).
    pub(crate) fn create_topics(&self, kafka: &veil_config::KafkaConfig) -> anyhow::Result<()> {
        for topic in kafka.topics.all_topics() {
            self.cluster
                .create_topic(&topic, kafka.topics.partitions, 1)
                .with_context(|| format!("cannot create topic {topic} on the embedded broker"))?;
        }
        Ok(())
    }

    /// `host:port` to give clients as `bootstrap.servers`.
    pub(crate) fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// Topic names for one run of the embedded broker. Its log lives only as long as the process, so
/// each run is a new cluster whose offsets start at zero again: the run's id in the topic names
/// keeps the processor's per-partition commit state and file names of an earlier run (stored
/// under the same data directory) from being mistaken for this one's.
pub(crate) fn run_scoped(topic_pattern: &str, run_id: &str) -> String {
    format!("{topic_pattern}.run-{run_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_scoped_topics_keep_the_region_placeholder() {
        assert_eq!(
            run_scoped("veil.sanitized.{region}", "m3x1"),
            "veil.sanitized.{region}.run-m3x1"
        );
    }
}
