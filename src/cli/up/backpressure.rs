//! Backpressure for the embedded broker. librdkafka's mock cluster keeps at most 5 MB (or
//! 100,000 messages) per partition and drops the oldest message sets beyond that, consumed or
//! not; so when the processor falls behind, `veil up` pauses ingest (503 with `Retry-After`,
//! which SDKs retry) until it catches up, instead of letting acknowledged messages fall off the
//! broker's log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use veil_config::KafkaConfig;
use veil_gateway::server::Gateway;

use super::drain::{group_reader, partition_lags};

/// Unstored messages on one partition above which ingest pauses. Sanitized messages are about
/// 1 KB, so this stays well inside the mock broker's 5 MB per partition even with the messages
/// produced while the pause takes effect.
pub(crate) const PAUSE_ABOVE: i64 = 2_000;
/// Unstored messages on every partition below which ingest resumes.
pub(crate) const RESUME_BELOW: i64 = 1_000;

/// Whether ingest should be paused, given the partitions' lags and whether it is now.
pub(crate) fn should_pause(lags: &[i64], paused: bool) -> bool {
    let worst = lags.iter().copied().max().unwrap_or(0);
    if paused {
        worst >= RESUME_BELOW
    } else {
        worst > PAUSE_ABOVE
    }
}

/// Watches the processor group's lag every 200 ms until `stop`, pausing and resuming ingest.
pub(crate) fn spawn(
    kafka: KafkaConfig,
    group: String,
    gateway: Arc<Gateway>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let consumer = group_reader(&kafka, &group)?;
    let handle = std::thread::Builder::new()
        .name("backpressure".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match partition_lags(&consumer, &kafka) {
                    Ok(lags) => {
                        let paused = gateway.backpressure();
                        let pause = should_pause(&lags, paused);
                        if pause != paused {
                            tracing::info!(paused = pause, "embedded broker backpressure");
                            gateway.set_backpressure(pause);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read the processor's lag"),
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            gateway.set_backpressure(false);
        })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_pauses_above_the_bound_and_resumes_only_well_below_it() {
        assert!(!should_pause(&[], false));
        assert!(!should_pause(&[10, PAUSE_ABOVE], false));
        assert!(should_pause(&[10, PAUSE_ABOVE + 1], false));
        assert!(should_pause(&[RESUME_BELOW], true), "hysteresis");
        assert!(!should_pause(&[RESUME_BELOW - 1, 0], true));
    }
}
