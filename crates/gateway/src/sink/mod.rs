//! Where sanitized messages go once the filter let them out: a [`Publisher`] takes a request's
//! records and resolves only when every one of them is durably acknowledged.
//!
//! Kafka ([`KafkaPublisher`]) in production and with the embedded broker; [`MemoryPublisher`]
//! for tests that exercise the HTTP layer alone.

mod kafka;
mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use kafka::{KafkaPublisher, create_topics};
pub use memory::MemoryPublisher;

/// One message for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Destination topic.
    pub topic: Arc<str>,
    /// Partition key: keeps one user's messages in order.
    pub key: Vec<u8>,
    /// The sanitized JSON.
    pub payload: Vec<u8>,
}

/// Why records were not acknowledged. The caller answers 503 and the client retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The producer's local queue is full: back-pressure.
    #[error("producer queue is full")]
    QueueFull,
    /// The broker did not acknowledge in time or refused the records.
    #[error("broker did not acknowledge: {0}")]
    NotAcknowledged(String),
    /// The publisher is shutting down or broken.
    #[error("publisher unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future, so publishers can sit behind `dyn`.
pub type PublishFuture = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send>>;

/// A readiness probe's future.
pub type ReadyFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

/// The stage after the filter.
pub trait Publisher: Send + Sync + 'static {
    /// Sends `records`; resolves `Ok` only after all of them are acknowledged.
    fn publish(&self, records: Vec<Record>) -> PublishFuture;

    /// Whether the destination is reachable now (for `/readyz`).
    fn ready(&self) -> ReadyFuture;

    /// Waits up to `timeout` for everything in flight to be acknowledged (graceful shutdown).
    fn flush(&self, timeout: std::time::Duration);
}
