//! The consumer's context: takes each newly assigned partition's ownership lock, seeks it to
//! where the store says it continues (the store, not Kafka's committed offset, is
//! authoritative), queues assignment changes for the loop, lets go of revoked partitions, and
//! keeps the high watermarks librdkafka's statistics report (for lag).
//!
//! A partition whose lock another processor still holds (one that stalled past its session and
//! has not let go yet) is assigned paused, from the last commit it could see; the loop takes the
//! lock when it is free (see `waiting.rs`), so the other partitions keep flowing meanwhile.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::store::{Store, StoreError};

/// A newly assigned partition, paused while another processor still holds its ownership lock.
#[derive(Debug)]
pub(super) struct Contested {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// The offset it was assigned at: the last commit seen (a lower bound), if any.
    pub(super) assigned_at: Option<i64>,
}

/// An assignment change, applied by the loop between polls.
#[derive(Debug)]
pub(super) enum Change {
    /// Partitions now ours: recovered and seeked, or paused until their lock is free.
    Assigned {
        ready: Vec<(String, i32)>,
        contested: Vec<Contested>,
    },
    /// Partitions taken away.
    Revoked(Vec<(String, i32)>),
}

/// See the module documentation.
pub(super) struct RecoveringContext {
    pub(super) store: Store,
    pub(super) changes: Mutex<Vec<Change>>,
    /// Whether `changes` may hold something (read on every poll without taking the lock).
    pub(super) changed: AtomicBool,
    pub(super) failure: Mutex<Option<StoreError>>,
    pub(super) high_watermarks: Mutex<HashMap<(String, i32), i64>>,
    /// The ownership locks of the assigned partitions (see [`Store::try_partition_lock`]).
    owned: Mutex<HashMap<(String, i32), File>>,
    /// librdkafka's error reports, logged at most every 10 s (an outage repeats them).
    errors: veil_config::ErrorLogLimit,
}

impl RecoveringContext {
    /// A context over `store`.
    pub(super) fn new(store: Store) -> RecoveringContext {
        RecoveringContext {
            store,
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
            failure: Mutex::new(None),
            high_watermarks: Mutex::new(HashMap::new()),
            owned: Mutex::new(HashMap::new()),
            errors: veil_config::ErrorLogLimit::default(),
        }
    }

    /// The first recovery failure, if any (the loop stops on it).
    pub(super) fn take_failure(&self) -> Option<StoreError> {
        self.failure
            .lock()
            .ok()
            .and_then(|mut failure| failure.take())
    }

    /// Whether there may be assignment changes to take.
    pub(super) fn has_changes(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// Assignment changes since the last call.
    pub(super) fn take_changes(&self) -> Vec<Change> {
        self.changed.store(false, Ordering::Release);
        self.changes
            .lock()
            .map(|mut changes| std::mem::take(&mut *changes))
            .unwrap_or_default()
    }

    fn fail(&self, error: StoreError) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(error);
        }
    }

    /// Takes the partition's ownership lock unless this processor holds it already; `false`
    /// while another processor holds it.
    pub(super) fn try_own(&self, topic: &str, partition: i32) -> Result<bool, StoreError> {
        // A poisoned map still holds the right locks: fencing must not be skipped for it.
        let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        let Entry::Vacant(slot) = owned.entry((topic.to_owned(), partition)) else {
            return Ok(true);
        };
        let Some(lock) = self.store.try_partition_lock(topic, partition)? else {
            return Ok(false);
        };
        slot.insert(lock);
        Ok(true)
    }

    /// Lets go of revoked partitions' ownership locks. Safe inside the rebalance callback: the
    /// loop drops their buffers right after the poll that ran it, before any flush.
    fn let_go(&self, partitions: &[(String, i32)]) {
        let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        for key in partitions {
            owned.remove(key);
        }
    }

    /// Takes a newly assigned partition's lock and recovers its store, or reports it contested
    /// with the last commit it can see.
    fn assign_one(&self, topic: &str, partition: i32) -> Result<Start, StoreError> {
        // Owned first, so the commit state read next is final (see `try_own`).
        if !self.try_own(topic, partition)? {
            let assigned_at = self.store.committed_next_offset(topic, partition)?;
            return Ok(Start::Contested(assigned_at));
        }
        Ok(Start::Ready(self.store.recover(topic, partition)?))
    }

    fn push_change(&self, change: Change) {
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
        }
        self.changed.store(true, Ordering::Release);
    }

    /// The last reported high watermark of a partition.
    pub(super) fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.high_watermarks
            .lock()
            .ok()?
            .get(&(topic.to_owned(), partition))
            .copied()
    }
}

/// How a newly assigned partition starts.
enum Start {
    /// Owned and recovered: continues at this offset (`None`: nothing stored yet).
    Ready(Option<i64>),
    /// Another processor holds its lock; the last commit seen, if any.
    Contested(Option<i64>),
}

/// Starts an owned partition where its store continues (left to the group's committed offset, or
/// `auto.offset.reset`, when nothing was stored yet).
fn set_start(list: &mut TopicPartitionList, topic: &str, partition: i32, next: Option<i64>) {
    if let Some(next) = next {
        let _ = list.set_partition_offset(topic, partition, Offset::Offset(next));
    }
}

/// A list of partitions for `pause`/`resume`.
pub(super) fn list_of<'a>(partitions: impl Iterator<Item = (&'a str, i32)>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        list.add_partition(topic, partition);
    }
    list
}

impl ClientContext for RecoveringContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Some(passed_over) = self.errors.admit() {
            tracing::error!(%error, reason, passed_over, "kafka consumer error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let Ok(mut marks) = self.high_watermarks.lock() else {
            return;
        };
        for (name, topic) in statistics.topics {
            for (partition, state) in topic.partitions {
                if partition >= 0 && state.hi_offset >= 0 {
                    marks.insert((name.clone(), partition), state.hi_offset);
                }
            }
        }
    }
}

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
                let (mut ready, mut contested) = (Vec::new(), Vec::new());
                for (topic, partition) in list {
                    match self.assign_one(&topic, partition) {
                        Ok(Start::Ready(next_offset)) => {
                            set_start(partitions, &topic, partition, next_offset);
                            ready.push((topic, partition));
                        }
                        Ok(Start::Contested(assigned_at)) => {
                            // Paused from here; the loop seeks it to the final commit later.
                            let offset = assigned_at.map_or(Offset::Beginning, Offset::Offset);
                            let _ = partitions.set_partition_offset(&topic, partition, offset);
                            contested.push(Contested {
                                topic,
                                partition,
                                assigned_at,
                            });
                        }
                        Err(error) => self.fail(error),
                    }
                }
                if let Err(error) = consumer.assign(partitions) {
                    tracing::error!(%error, "assignment failed");
                }
                // Set both ways: librdkafka may keep a partition's pause across assignments.
                let paused = list_of(contested.iter().map(|c| (c.topic.as_str(), c.partition)));
                let flowing = list_of(
                    ready
                        .iter()
                        .map(|(topic, partition)| (topic.as_str(), *partition)),
                );
                // Not fatal: the loop seeks a contested partition before it reads it (`waiting.rs`).
                if !contested.is_empty()
                    && let Err(error) = consumer.pause(&paused)
                {
                    tracing::error!(%error, "pausing contested partitions failed");
                }
                if let Err(error) = consumer.resume(&flowing) {
                    tracing::error!(%error, "resuming assigned partitions failed");
                }
                self.push_change(Change::Assigned { ready, contested });
            }
            _ => {
                self.let_go(&list);
                self.push_change(Change::Revoked(list));
                let _ = consumer.unassign();
            }
        }
    }
}
