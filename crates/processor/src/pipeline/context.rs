//! The consumer's context: takes each newly assigned partition's ownership lock, seeks it to
//! where the store says it continues (the store, not Kafka's committed offset, is
//! authoritative), queues assignment changes for the loop, lets go of revoked partitions, and
//! keeps the high watermarks librdkafka's statistics report (for lag).

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

/// An assignment change, applied by the loop between polls.
#[derive(Debug)]
pub(super) enum Change {
    /// Partitions now ours (already recovered and seeked).
    Assigned(Vec<(String, i32)>),
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
    /// The ownership locks of the assigned partitions (see [`Store::partition_lock`]).
    owned: Mutex<HashMap<(String, i32), File>>,
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

    /// Takes the partition's ownership lock unless this processor holds it already.
    fn own(&self, topic: &str, partition: i32) -> Result<(), StoreError> {
        // A poisoned map still holds the right locks: fencing must not be skipped for it.
        let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Vacant(slot) = owned.entry((topic.to_owned(), partition)) {
            slot.insert(self.store.partition_lock(topic, partition)?);
        }
        Ok(())
    }

    /// Lets go of revoked partitions' ownership locks. Safe inside the rebalance callback: the
    /// loop drops their buffers right after the poll that ran it, before any flush.
    fn let_go(&self, partitions: &[(String, i32)]) {
        let mut owned = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        for key in partitions {
            owned.remove(key);
        }
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

impl ClientContext for RecoveringContext {
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
                for (topic, partition) in &list {
                    // Owned first, so the commit state read next is final (see `own`).
                    if let Err(error) = self.own(topic, *partition) {
                        self.fail(error);
                        continue;
                    }
                    match self.store.recover(topic, *partition) {
                        Ok(Some(next)) => {
                            let _ = partitions.set_partition_offset(
                                topic,
                                *partition,
                                Offset::Offset(next),
                            );
                        }
                        Ok(None) => {}
                        Err(error) => self.fail(error),
                    }
                }
                if let Err(error) = consumer.assign(partitions) {
                    tracing::error!(%error, "assignment failed");
                }
                self.push_change(Change::Assigned(list));
            }
            _ => {
                self.let_go(&list);
                self.push_change(Change::Revoked(list));
                let _ = consumer.unassign();
            }
        }
    }
}
