//! Fuzzes the filter and the batch splitter: never a panic, and whatever is accepted is a valid
//! sanitized message without the planted secrets of the seed corpus.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use veil_gateway::allowlist::Allowlist;
use veil_gateway::filter::{MessageMeta, TenantFilter, WorkerCache, split_batch};
use veil_gateway::pseudonym::EpochKey;
use veil_sanitized::{SanitizedMessage, Tier};

fn filter() -> &'static TenantFilter {
    static FILTER: OnceLock<TenantFilter> = OnceLock::new();
    FILTER.get_or_init(|| {
        let text = include_str!("../../allowlist.yaml");
        let policy = Arc::new(Allowlist::parse(text).expect("allowlist.yaml is valid").compile());
        TenantFilter::new(policy, "t-fuzz", Tier::Baseline, EpochKey::new("2026-11", &[9; 32]))
    })
}

fuzz_target!(|data: &[u8]| {
    let meta = MessageMeta { received_at: "2026-11-23T00:00:00.000Z", fallback_message_id: Some("fuzz"), sent_at: Some("2026-11-23T00:00:01.000Z") };
    let mut cache = WorkerCache::default();
    let items: Vec<Vec<u8>> = match split_batch(data) {
        Ok(Some(batch)) => batch.items.into_iter().map(|item| item.into_owned()).collect(),
        _ => vec![data.to_vec()],
    };
    for item in items {
        let mut out = Vec::new();
        if filter().filter(&item, &meta, &mut cache, &mut out, &mut ()).is_ok() {
            let text = std::str::from_utf8(&out).expect("output is UTF-8");
            serde_json::from_str::<SanitizedMessage>(text).expect("output follows the contract");
            assert!(!text.contains("alice@firm.example"), "planted e-mail left");
        }
    }
});
