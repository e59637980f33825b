//! Where sanitized messages go once the filter let them out: a [`Publisher`] takes a request's
//! records and resolves only when every one of them is durably acknowledged.
//!
//! Kafka ([`KafkaPublisher`]) in production and with the embedded broker; [`MemoryPublisher`]
//! for tests that exercise the HTTP layer alone.

mod kafka;
mod memory;
mod pack;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use kafka::{KafkaPublisher, create_topics};
pub use memory::MemoryPublisher;
pub use pack::{MAX_PACKED_BYTES, PackedRecord, partition_for};

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

/// A request's records in one buffer: keys and payloads are appended to it as the filter writes
/// them, so a request costs two allocations, not two per message.
#[derive(Debug, Default)]
pub struct RecordBatch {
    buffer: Vec<u8>,
    records: Vec<(Arc<str>, std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// The key of a record that packs several of these messages (see [`RecordBatch::packed`]).
    shared_key: Vec<u8>,
}

impl RecordBatch {
    /// An empty batch sized for `records` messages of about `bytes_each`.
    pub fn with_capacity(records: usize, bytes_each: usize) -> RecordBatch {
        RecordBatch {
            buffer: Vec::with_capacity(records * bytes_each),
            records: Vec::with_capacity(records),
            shared_key: Vec::new(),
        }
    }

    /// Sets the key of records that pack several messages: what they share (the tenant).
    pub fn set_shared_key(&mut self, key: &[u8]) {
        self.shared_key.clear();
        self.shared_key.extend_from_slice(key);
    }

    /// The shared buffer, to append a record's key and payload to.
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Adds a record whose key and payload are the given ranges of the buffer.
    pub fn push(
        &mut self,
        topic: Arc<str>,
        key: std::ops::Range<usize>,
        payload: std::ops::Range<usize>,
    ) {
        debug_assert!(key.end <= self.buffer.len() && payload.end <= self.buffer.len());
        self.records.push((topic, key, payload));
    }

    /// Adds a record by copying its key and payload in.
    pub fn push_owned(&mut self, topic: Arc<str>, key: &[u8], payload: &[u8]) {
        let key_start = self.buffer.len();
        self.buffer.extend_from_slice(key);
        let payload_start = self.buffer.len();
        self.buffer.extend_from_slice(payload);
        let end = self.buffer.len();
        self.records
            .push((topic, key_start..payload_start, payload_start..end));
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Each record as (topic, key, payload).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8], &[u8])> {
        self.records.iter().map(|(topic, key, payload)| {
            (
                topic.as_ref(),
                &self.buffer[key.clone()],
                &self.buffer[payload.clone()],
            )
        })
    }

    /// Owned copies of the records (tests, the in-memory publisher).
    pub fn to_records(&self) -> Vec<Record> {
        self.records
            .iter()
            .map(|(topic, key, payload)| Record {
                topic: topic.clone(),
                key: self.buffer[key.clone()].to_vec(),
                payload: self.buffer[payload.clone()].to_vec(),
            })
            .collect()
    }
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
    fn publish(&self, records: RecordBatch) -> PublishFuture;

    /// Whether the destination is reachable now (for `/readyz`).
    fn ready(&self) -> ReadyFuture;

    /// Waits up to `timeout` for everything in flight to be acknowledged (graceful shutdown).
    fn flush(&self, timeout: std::time::Duration);
}
