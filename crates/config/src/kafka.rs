//! The Kafka connection and topic names, shared by the gateway (producer) and processor (consumer).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Data regions a cloud vendor runs; each has its own sanitized topic so data stays in region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// United States.
    Us,
    /// United Kingdom.
    Uk,
    /// European Union.
    Eu,
    /// Canada.
    Ca,
    /// Australia.
    Au,
    /// Singapore.
    Sg,
    /// Brazil.
    Br,
}

impl Region {
    /// Every region, in a fixed order.
    pub const ALL: [Region; 7] = [
        Region::Us,
        Region::Uk,
        Region::Eu,
        Region::Ca,
        Region::Au,
        Region::Sg,
        Region::Br,
    ];

    /// The region's lowercase code, as in configuration and topic names.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Uk => "uk",
            Region::Eu => "eu",
            Region::Ca => "ca",
            Region::Au => "au",
            Region::Sg => "sg",
            Region::Br => "br",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Topic names. `{region}` in the sanitized template is replaced by the region code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Template of the per-region sanitized-event topics.
    pub sanitized: String,
    /// Compact records of rejected messages and dropped fields (names and counts, never values).
    pub rejections: String,
    /// Sanitized messages the processor could not store (wrong contract or types).
    pub dead_letter: String,
    /// Partitions given to topics Veil creates itself.
    pub partitions: i32,
    /// Replication factor of topics Veil creates itself.
    pub replication: i32,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            sanitized: "veil.sanitized.{region}".to_owned(),
            rejections: "veil.rejections".to_owned(),
            dead_letter: "veil.dead-letter".to_owned(),
            partitions: 6,
            replication: 1,
        }
    }
}

impl TopicsConfig {
    /// The sanitized topic of `region`.
    pub fn sanitized_topic(&self, region: Region) -> String {
        self.sanitized.replace("{region}", region.as_str())
    }

    /// Every topic Veil writes, sanitized ones first.
    pub fn all_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Region::ALL
            .iter()
            .map(|region| self.sanitized_topic(*region))
            .collect();
        topics.dedup();
        topics.push(self.rejections.clone());
        topics.push(self.dead_letter.clone());
        topics
    }
}

/// How to reach Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`; empty means the embedded in-process broker (`veil up` only).
    pub bootstrap_servers: String,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Extra librdkafka client properties (`security.protocol`, `sasl.*`, …), passed through.
    pub properties: BTreeMap<String, String>,
}

/// A limit on how often a Kafka client's error callback logs: during a broker outage librdkafka
/// reports the same error (`AllBrokersDown`, a failed connection) every few milliseconds.
#[derive(Debug, Default)]
pub struct ErrorLogLimit {
    /// When a line was last logged, and how many errors were passed over since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl ErrorLogLimit {
    /// At most one line this often.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// Whether to log the error being reported now, with the number of errors passed over
    /// since the last line logged.
    pub fn admit(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return Some(0);
        };
        let (last, passed_over) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < Self::EVERY) {
            *passed_over += 1;
            return None;
        }
        *last = Some(std::time::Instant::now());
        Some(std::mem::take(passed_over))
    }
}

#[cfg(test)]
mod error_log_tests {
    use super::ErrorLogLimit;

    #[test]
    fn a_burst_of_errors_logs_one_line_and_counts_the_rest() {
        let limit = ErrorLogLimit::default();
        assert_eq!(limit.admit(), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.admit(), None);
        }
        if let Ok(mut state) = limit.state.lock() {
            state.0 = state.0.map(|at| at - ErrorLogLimit::EVERY);
        }
        assert_eq!(
            limit.admit(),
            Some(5),
            "the next line says how many were passed over"
        );
    }
}
