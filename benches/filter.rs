//! The filter's hot path against the parsing floor, single-threaded, over 100k messages from
//! `gen_events.py --seed 7`:
//!   (a) Veil's filter + pseudonymizer (with drop counters, as the gateway runs it),
//!   (b) serde_json parsing the same bytes into `IgnoredAny`: the floor no filter beats.
//! Prints the ratio a/b measured in interleaved rounds of the same run (target ≥ 0.5).
//!
//! `cargo bench --bench filter` (needs `python3` and `../shared/workload/gen_events.py`).

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use serde::de::IgnoredAny;
use veil_gateway::allowlist::Allowlist;
use veil_gateway::filter::{DropCounts, MessageMeta, TenantFilter, WorkerCache};
use veil_gateway::pseudonym::EpochKey;
use veil_sanitized::Tier;

const MESSAGES: usize = 100_000;

fn workload() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let generator = std::env::var_os("VEIL_WORKLOAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/workload/gen_events.py"));
    let output = Command::new("python3")
        .arg(&generator)
        .args(["--count", &MESSAGES.to_string(), "--seed", "7"])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", generator.display()));
    assert!(output.status.success(), "gen_events.py failed");
    let lines: Vec<Vec<u8>> = output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(lines.len(), MESSAGES);
    lines
}

fn tenant_filter() -> TenantFilter {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("allowlist.yaml");
    let policy = Arc::new(
        Allowlist::load(&path)
            .expect("allowlist.yaml is valid")
            .compile(),
    );
    TenantFilter::new(
        policy,
        "t-1000",
        Tier::Baseline,
        EpochKey::new("2026-11", &[7; 32]),
    )
}

fn run_filter(
    filter: &TenantFilter,
    messages: &[Vec<u8>],
    cache: &mut WorkerCache,
    out: &mut Vec<u8>,
    counts: &mut DropCounts,
) -> usize {
    let meta = MessageMeta {
        received_at: "2026-11-23T17:00:00.000Z",
        fallback_message_id: None,
        sent_at: None,
    };
    let mut accepted = 0;
    for message in messages {
        out.clear();
        if filter.filter(message, &meta, cache, out, counts).is_ok() {
            accepted += 1;
        }
        black_box(&out);
    }
    accepted
}

fn run_floor(messages: &[Vec<u8>]) -> usize {
    messages
        .iter()
        .filter(|message| serde_json::from_slice::<IgnoredAny>(message).is_ok())
        .count()
}

fn time_it(mut body: impl FnMut() -> usize) -> Duration {
    let start = Instant::now();
    black_box(body());
    start.elapsed()
}

fn main() {
    let messages = workload();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let filter = tenant_filter();
    let mut out = Vec::with_capacity(4096);
    let mut counts = DropCounts::default();
    let mut cache = WorkerCache::default();
    assert_eq!(
        run_filter(&filter, &messages, &mut cache, &mut out, &mut counts),
        MESSAGES,
        "every generated message is accepted"
    );
    // `VEIL_PROFILE=filter|floor` loops one side only, for `perf record`.
    if let Ok(side) = std::env::var("VEIL_PROFILE") {
        let seconds = std::env::var("VEIL_PROFILE_SECONDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(10);
        let until = Instant::now() + Duration::from_secs(seconds);
        loop {
            if side == "floor" {
                run_floor(&messages);
            } else {
                run_filter(&filter, &messages, &mut cache, &mut out, &mut counts);
            }
            if Instant::now() >= until {
                break;
            }
        }
        return;
    }

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let mut group = criterion.benchmark_group("filter");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("veil_filter_and_pseudonymize", |bench| {
        bench.iter(|| run_filter(&filter, &messages, &mut cache, &mut out, &mut counts))
    });
    group.bench_function("serde_json_ignored_any", |bench| {
        bench.iter(|| run_floor(&messages))
    });
    group.finish();

    // The ratio from interleaved rounds, so both sides see the same machine load.
    let rounds = 7;
    let mut ratios = Vec::new();
    let (mut best_filter, mut best_floor) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        let floor = time_it(|| run_floor(&messages));
        let filtered =
            time_it(|| run_filter(&filter, &messages, &mut cache, &mut out, &mut counts));
        best_floor = best_floor.min(floor);
        best_filter = best_filter.min(filtered);
        ratios.push(floor.as_secs_f64() / filtered.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let per_second = |elapsed: Duration| MESSAGES as f64 / elapsed.as_secs_f64();
    println!(
        "\n{MESSAGES} messages, {:.0} bytes each on average\n\
         (a) veil filter + pseudonymizer: {:>9.0} messages/s ({:.0} MB/s)\n\
         (b) serde_json IgnoredAny floor: {:>9.0} messages/s ({:.0} MB/s)\n\
         ratio a/b (median of {rounds} interleaved rounds): {:.2}",
        bytes as f64 / MESSAGES as f64,
        per_second(best_filter),
        bytes as f64 / best_filter.as_secs_f64() / 1e6,
        per_second(best_floor),
        bytes as f64 / best_floor.as_secs_f64() / 1e6,
        ratios[rounds / 2],
    );
    criterion.final_summary();
}
