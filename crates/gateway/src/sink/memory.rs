//! An in-memory publisher for tests of the HTTP layer: records are kept in order, and an
//! outage can be switched on to exercise the 503 path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{PublishError, PublishFuture, Publisher, ReadyFuture, Record, RecordBatch};

/// Keeps every acknowledged record.
#[derive(Debug, Default, Clone)]
pub struct MemoryPublisher {
    records: Arc<Mutex<Vec<Record>>>,
    down: Arc<AtomicBool>,
}

impl MemoryPublisher {
    /// Everything acknowledged so far.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .map(|records| records.clone())
            .unwrap_or_default()
    }

    /// Simulates a broker outage (`true`) or its end.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Publisher for MemoryPublisher {
    fn publish(&self, records: RecordBatch) -> PublishFuture {
        let down = self.down.load(Ordering::SeqCst);
        let store = self.records.clone();
        Box::pin(async move {
            if down {
                return Err(PublishError::NotAcknowledged("broker down".to_owned()));
            }
            let mut stored = store
                .lock()
                .map_err(|_| PublishError::Unavailable("poisoned".to_owned()))?;
            stored.extend(records.to_records());
            Ok(())
        })
    }

    fn ready(&self) -> ReadyFuture {
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move { !down })
    }

    fn flush(&self, _timeout: std::time::Duration) {}
}
