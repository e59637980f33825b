//! Per-worker state the filter reuses from one message to the next.

use super::walk::KeyOrders;
use crate::pseudonym::PseudonymCache;

/// What one worker (a thread, or `veil filter`) keeps between messages: recent pseudonyms and
/// the key order each allowlisted object had last time. Never shared between threads, so the
/// hot path takes no locks; none of it is ever written out or logged.
#[derive(Debug, Default)]
pub struct WorkerCache {
    /// Recent pseudonyms (an HMAC is the costliest step of a message).
    pub pseudonyms: PseudonymCache,
    /// Each object's last key order per filter, so a repeated shape costs one comparison a key.
    pub(crate) key_orders: KeyOrders,
    /// A message's `pseudonyms` object while its `fields` are being written (reused).
    pub(crate) pseudonym_output: Vec<u8>,
}
