//! A bounded in-memory cache of recent pseudonyms.
//!
//! User, device and tenant ids repeat in almost every message, and an HMAC costs two SHA-256
//! blocks. The cache lives in the worker's memory only (never logged, never persisted), holds at
//! most [`MAX_ENTRIES`] entries and is keyed by the full input, so a hit is always exact.

use rustc_hash::FxHashMap;

use super::PSEUDONYM_LEN;

/// Entries kept before the cache starts over.
pub(crate) const MAX_ENTRIES: usize = 1 << 16;

/// Inputs longer than this are not cached (they are rarely repeated ids).
const MAX_CACHED_VALUE: usize = 96;

/// Lookups per field before its hit rate is judged.
const TRIAL_LOOKUPS: u32 = 512;

/// Lookups a field skips the cache for once its values proved not to repeat.
const BYPASS_LOOKUPS: u32 = 1 << 16;

/// Per-field hit statistics: fields whose values rarely repeat (document ids) bypass the cache,
/// so they cost neither a lookup nor an insertion; they are tried again now and then.
#[derive(Default, Clone, Copy)]
struct FieldTrial {
    lookups: u32,
    hits: u32,
    bypass_left: u32,
}

/// Recent pseudonyms by (key namespace, field, value).
#[derive(Default)]
pub struct PseudonymCache {
    entries: FxHashMap<Box<[u8]>, [u8; PSEUDONYM_LEN]>,
    trials: Vec<FieldTrial>,
    probe: Vec<u8>,
    hits: u64,
    misses: u64,
}

impl std::fmt::Debug for PseudonymCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PseudonymCache")
            .field("entries", &self.entries.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl PseudonymCache {
    /// The cached pseudonym for `value` under (`namespace`, `field`), or the computed one.
    ///
    /// `namespace` must identify the key and epoch (see `TenantFilter`), `field` the domain.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        namespace: u64,
        field: u32,
        value: &[u8],
        compute: impl FnOnce() -> [u8; PSEUDONYM_LEN],
    ) -> [u8; PSEUDONYM_LEN] {
        if value.len() > MAX_CACHED_VALUE {
            return compute();
        }
        let slot = field as usize;
        if slot >= self.trials.len() {
            self.trials.resize(slot + 1, FieldTrial::default());
        }
        let trial = &mut self.trials[slot];
        if trial.bypass_left > 0 {
            trial.bypass_left -= 1;
            return compute();
        }
        trial.lookups += 1;
        if trial.lookups >= TRIAL_LOOKUPS {
            // Fewer than one hit in eight: this field's values do not repeat enough to pay.
            if trial.hits * 8 < trial.lookups {
                trial.bypass_left = BYPASS_LOOKUPS;
            }
            trial.lookups = 0;
            trial.hits = 0;
        }
        self.probe.clear();
        self.probe.extend_from_slice(&namespace.to_le_bytes());
        self.probe.extend_from_slice(&field.to_le_bytes());
        self.probe.extend_from_slice(value);
        if let Some(pseudonym) = self.entries.get(self.probe.as_slice()) {
            self.hits += 1;
            self.trials[slot].hits += 1;
            return *pseudonym;
        }
        self.misses += 1;
        let pseudonym = compute();
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(self.probe.as_slice().into(), pseudonym);
        pseudonym
    }

    /// Lookups answered from the cache and computed, since creation.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}
