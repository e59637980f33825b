//! Partitions assigned while another processor still holds their ownership lock: one that
//! stalled past its group session (a frozen VM, a hung disk) and has not woken up to let go.
//! They stay paused while the rest of the assignment flows. Every [`RETRY`] the loop tries their
//! locks; a partition whose lock is free is recovered, seeked to where its store continues and
//! resumed. A wait that lasts is logged again every [`REMINDER`] and shows in the
//! `waiting_partitions` gauge and in the partition's lag.

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::buffer::PartitionBuffer;
use super::context::{Contested, RecoveringContext, list_of};
use super::flush::recent_ids;
use super::{Buffers, ProcessorError};
use crate::store::Store;

/// How often a contested partition's ownership lock is tried again.
const RETRY: Duration = Duration::from_millis(100);

/// How often a lasting wait is logged again.
const REMINDER: Duration = Duration::from_secs(30);

/// How long a seek of a partition taken over may take before it is tried again.
const SEEK_TIMEOUT: Duration = Duration::from_secs(2);

/// One contested partition.
struct Waiting {
    contested: Contested,
    since: Instant,
    said_at: Instant,
}

/// See the module documentation.
#[derive(Default)]
pub(super) struct WaitingPartitions {
    partitions: Vec<Waiting>,
    tried_at: Option<Instant>,
}

impl WaitingPartitions {
    /// Starts waiting for a partition assigned paused.
    pub(super) fn add(&mut self, contested: Contested) {
        tracing::warn!(
            topic = %contested.topic,
            partition = contested.partition,
            "partition still held by its previous owner; waiting for it to let go"
        );
        let now = Instant::now();
        self.partitions
            .retain(|waiting| !waiting.is(&contested.topic, contested.partition));
        self.partitions.push(Waiting {
            contested,
            since: now,
            said_at: now,
        });
    }

    /// Stops waiting for a revoked partition.
    pub(super) fn remove(&mut self, topic: &str, partition: i32) {
        self.partitions
            .retain(|waiting| !waiting.is(topic, partition));
    }

    /// How many partitions are waiting.
    pub(super) fn len(&self) -> usize {
        self.partitions.len()
    }

    /// Whether none is.
    pub(super) fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Each waiting partition with the offset it was assigned at, for lag (0 when nothing was
    /// committed yet: all of it is unread).
    pub(super) fn assigned_at(&self) -> impl Iterator<Item = (&str, i32, Option<i64>)> {
        self.partitions.iter().map(|waiting| {
            let contested = &waiting.contested;
            let position = contested.assigned_at.unwrap_or(0);
            (
                contested.topic.as_str(),
                contested.partition,
                Some(position),
            )
        })
    }

    /// Takes over the partitions whose locks are free (at most every [`RETRY`]): recovers each,
    /// loads its dedup window, seeks it to where its store continues and resumes it.
    pub(super) fn take_over_free(
        &mut self,
        consumer: &BaseConsumer<RecoveringContext>,
        store: &Store,
        window_ms: i64,
        buffers: &mut Buffers,
        now: Instant,
    ) -> Result<(), ProcessorError> {
        if self
            .tried_at
            .is_some_and(|tried| now.duration_since(tried) < RETRY)
        {
            return Ok(());
        }
        self.tried_at = Some(now);
        let mut still_waiting = Vec::new();
        for mut waiting in std::mem::take(&mut self.partitions) {
            let (topic, partition) = (
                waiting.contested.topic.as_str(),
                waiting.contested.partition,
            );
            if !consumer.context().try_own(topic, partition)? {
                waiting.remind(now);
                still_waiting.push(waiting);
                continue;
            }
            // Owned now: the commit state is final. Recovery is idempotent if the seek below
            // has to be tried again.
            let next = store.recover(topic, partition)?;
            let start = next.map_or(Offset::Beginning, Offset::Offset);
            if let Err(error) = consumer.seek(topic, partition, start, SEEK_TIMEOUT) {
                tracing::warn!(topic, partition, %error, "seek of a partition taken over failed; trying again");
                still_waiting.push(waiting);
                continue;
            }
            let dedup = recent_ids(store, topic, partition, window_ms)?;
            let waited_ms =
                u64::try_from(now.duration_since(waiting.since).as_millis()).unwrap_or(u64::MAX);
            tracing::info!(
                topic,
                partition,
                waited_ms,
                remembered_ids = dedup.len(),
                "partition released by its previous owner"
            );
            buffers.insert(topic.to_owned(), partition, PartitionBuffer::new(dedup));
            consumer.resume(&list_of(std::iter::once((topic, partition))))?;
        }
        self.partitions = still_waiting;
        Ok(())
    }
}

impl Waiting {
    fn is(&self, topic: &str, partition: i32) -> bool {
        self.contested.partition == partition && self.contested.topic == topic
    }

    /// Says again that the wait goes on, once every [`REMINDER`].
    fn remind(&mut self, now: Instant) {
        if now.duration_since(self.said_at) < REMINDER {
            return;
        }
        self.said_at = now;
        let waited_seconds = now.duration_since(self.since).as_secs();
        tracing::warn!(
            topic = %self.contested.topic,
            partition = self.contested.partition,
            waited_seconds,
            "still waiting for the partition's previous owner"
        );
    }
}
