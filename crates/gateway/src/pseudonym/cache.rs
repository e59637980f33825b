//! A bounded in-memory cache of recent pseudonyms.
//!
//! User, device and tenant ids repeat in almost every message, and an HMAC costs two SHA-256
//! blocks. The cache lives in the worker's memory only (never logged, never persisted). It is
//! direct-mapped with the full input stored in each slot, so a hit is always exact, a lookup
//! never allocates, and memory is fixed ([`SLOTS`] slots of about 100 bytes).

use std::hash::Hasher;

use rustc_hash::FxHasher;

use super::PSEUDONYM_LEN;

/// Number of slots (a power of two).
pub(crate) const SLOTS: usize = 1 << 14;

/// Inputs longer than this are not cached (they are rarely repeated ids).
const MAX_CACHED_VALUE: usize = 62;

/// Lookups per field before its hit rate is judged.
const TRIAL_LOOKUPS: u32 = 512;

/// Lookups a field skips the cache for once its values proved not to repeat.
const BYPASS_LOOKUPS: u32 = 1 << 16;

/// Per-field hit statistics: fields whose values rarely repeat (document ids) bypass the cache,
/// so they cost neither a lookup nor an eviction; they are tried again now and then.
#[derive(Default, Clone, Copy)]
struct FieldTrial {
    lookups: u32,
    hits: u32,
    bypass_left: u32,
}

#[derive(Clone, Copy)]
struct Slot {
    /// Hash of (namespace, field, value) with the low bit set; 0 marks an empty slot.
    tag: u64,
    namespace: u64,
    field: u32,
    length: u8,
    value: [u8; MAX_CACHED_VALUE],
    pseudonym: [u8; PSEUDONYM_LEN],
}

const EMPTY: Slot = Slot {
    tag: 0,
    namespace: 0,
    field: 0,
    length: 0,
    value: [0; MAX_CACHED_VALUE],
    pseudonym: [0; PSEUDONYM_LEN],
};

/// Recent pseudonyms by (key namespace, field, value).
pub struct PseudonymCache {
    slots: Box<[Slot]>,
    /// The last pseudonym computed without being cached (returned by reference like the rest).
    uncached: [u8; PSEUDONYM_LEN],
    trials: Vec<FieldTrial>,
    hits: u64,
    misses: u64,
}

impl Default for PseudonymCache {
    fn default() -> Self {
        PseudonymCache {
            slots: vec![EMPTY; SLOTS].into_boxed_slice(),
            uncached: [0; PSEUDONYM_LEN],
            trials: Vec::new(),
            hits: 0,
            misses: 0,
        }
    }
}

impl std::fmt::Debug for PseudonymCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PseudonymCache")
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl PseudonymCache {
    /// The cached pseudonym for `value` under (`namespace`, `field`), or the computed one.
    ///
    /// `namespace` must identify the key and epoch (see `TenantFilter`), `field` the domain.
    /// Returned by reference, to be copied once to where it goes: moved out by value, the
    /// 22 bytes were stored and read back in pieces of other sizes, a store-forwarding stall.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        namespace: u64,
        field: u32,
        value: &[u8],
        compute: impl FnOnce() -> [u8; PSEUDONYM_LEN],
    ) -> &[u8; PSEUDONYM_LEN] {
        if value.len() > MAX_CACHED_VALUE {
            self.misses += 1;
            self.uncached = compute();
            return &self.uncached;
        }
        let index = field as usize;
        if index >= self.trials.len() {
            self.trials.resize(index + 1, FieldTrial::default());
        }
        let trial = &mut self.trials[index];
        if trial.bypass_left > 0 {
            trial.bypass_left -= 1;
            self.misses += 1;
            self.uncached = compute();
            return &self.uncached;
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
        let mut hasher = FxHasher::default();
        hasher.write_u64(namespace);
        hasher.write_u32(field);
        hasher.write(value);
        let tag = hasher.finish() | 1;
        let slot = &mut self.slots[(tag >> 17) as usize & (SLOTS - 1)];
        let length = value.len();
        if slot.tag == tag
            && slot.namespace == namespace
            && slot.field == field
            && usize::from(slot.length) == length
            && slot.value[..length] == *value
        {
            self.hits += 1;
            self.trials[index].hits += 1;
            return &slot.pseudonym;
        }
        self.misses += 1;
        let pseudonym = compute();
        slot.tag = tag;
        slot.namespace = namespace;
        slot.field = field;
        slot.length = length as u8;
        slot.value[..length].copy_from_slice(value);
        slot.pseudonym = pseudonym;
        &slot.pseudonym
    }

    /// Lookups answered from the cache and computed, since creation.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_exact_and_namespaced() {
        let mut cache = PseudonymCache::default();
        let mut calls = 0;
        let mut lookup = |cache: &mut PseudonymCache, namespace, field, value: &[u8], byte| {
            *cache.get_or_insert_with(namespace, field, value, || {
                calls += 1;
                [byte; PSEUDONYM_LEN]
            })
        };
        assert_eq!(
            lookup(&mut cache, 1, 0, b"u-1", b'a'),
            [b'a'; PSEUDONYM_LEN]
        );
        assert_eq!(
            lookup(&mut cache, 1, 0, b"u-1", b'z'),
            [b'a'; PSEUDONYM_LEN],
            "hit"
        );
        assert_eq!(
            lookup(&mut cache, 2, 0, b"u-1", b'b'),
            [b'b'; PSEUDONYM_LEN],
            "other key namespace"
        );
        assert_eq!(
            lookup(&mut cache, 1, 1, b"u-1", b'c'),
            [b'c'; PSEUDONYM_LEN],
            "other field"
        );
        assert_eq!(
            lookup(&mut cache, 1, 0, b"u-2", b'd'),
            [b'd'; PSEUDONYM_LEN],
            "other value"
        );
        let long = [b'x'; 200];
        assert_eq!(lookup(&mut cache, 1, 0, &long, b'e'), [b'e'; PSEUDONYM_LEN]);
        assert_eq!(
            lookup(&mut cache, 1, 0, &long, b'f'),
            [b'f'; PSEUDONYM_LEN],
            "long values are never cached"
        );
        assert_eq!(calls, 6);
    }

    #[test]
    fn values_too_long_to_cache_count_as_computed() {
        let mut cache = PseudonymCache::default();
        let long = [b'x'; MAX_CACHED_VALUE + 1];
        for _ in 0..3 {
            cache.get_or_insert_with(1, 0, &long, || [b'p'; PSEUDONYM_LEN]);
        }
        cache.get_or_insert_with(1, 0, b"short", || [b'q'; PSEUDONYM_LEN]);
        cache.get_or_insert_with(1, 0, b"short", || [b'q'; PSEUDONYM_LEN]);
        assert_eq!(cache.hits_and_misses(), (1, 4));
    }
}
