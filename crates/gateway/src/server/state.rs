//! What every request handler shares: policy, tenants, keys, publisher, limiter and metrics.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use time::OffsetDateTime;
use veil_config::{Region, Tenant, TopicsConfig, WriteKeyIndex};

use super::config::GatewayConfig;
use super::error::ApiError;
use super::metrics::GatewayMetrics;
use crate::allowlist::Policy;
use crate::filter::TenantFilter;
use crate::pseudonym::{KeyStore, period_for};
use crate::sink::Publisher;

/// How often a tenant's current key is looked up again (to notice `veil keys rotate`).
const KEY_RECHECK: Duration = Duration::from_secs(60);

/// Distinct dropped-field labels exported before further ones count as `*`.
const MAX_FIELD_LABELS: usize = 1024;

struct CachedFilter {
    filter: Arc<TenantFilter>,
    period: String,
    checked: Instant,
}

/// The gateway's shared state.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    pub(crate) policy: Arc<Policy>,
    pub(crate) write_keys: WriteKeyIndex,
    keystore: KeyStore,
    filters: RwLock<HashMap<String, CachedFilter>>,
    pub(crate) publisher: Arc<dyn Publisher>,
    sanitized_topics: HashMap<Region, Arc<str>>,
    pub(crate) rejections_topic: Arc<str>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    pub(crate) metrics: GatewayMetrics,
    field_labels: Mutex<HashSet<String>>,
    pub(crate) shutting_down: AtomicBool,
    backpressure: AtomicBool,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Refuses new ingest requests with 503 and `Retry-After` while `on` (clients retry later):
    /// backpressure from downstream, such as `veil up`'s embedded broker whose log is bounded.
    pub fn set_backpressure(&self, on: bool) {
        self.backpressure
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether ingest is paused by [`Gateway::set_backpressure`].
    pub fn backpressure(&self) -> bool {
        self.backpressure.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Assembles the state from loaded parts.
    pub fn new(
        config: GatewayConfig,
        policy: Arc<Policy>,
        write_keys: WriteKeyIndex,
        keystore: KeyStore,
        topics: &TopicsConfig,
        publisher: Arc<dyn Publisher>,
    ) -> Gateway {
        let limiter = NonZeroU32::new(config.rate_limit_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst.max(rate.get())).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let sanitized_topics = Region::ALL
            .iter()
            .map(|region| (*region, Arc::from(topics.sanitized_topic(*region))))
            .collect();
        Gateway {
            config,
            policy,
            write_keys,
            keystore,
            filters: RwLock::new(HashMap::new()),
            publisher,
            sanitized_topics,
            rejections_topic: Arc::from(topics.rejections.as_str()),
            limiter,
            metrics: GatewayMetrics::default(),
            field_labels: Mutex::new(HashSet::new()),
            shutting_down: AtomicBool::new(false),
            backpressure: AtomicBool::new(false),
        }
    }

    /// The digest of the policy being enforced.
    pub fn policy_digest(&self) -> &str {
        self.policy.digest()
    }

    /// The metrics, for `/metrics` and tests.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    pub(crate) fn sanitized_topic(&self, region: Region) -> Arc<str> {
        self.sanitized_topics
            .get(&region)
            .cloned()
            .unwrap_or_else(|| Arc::from(region.as_str()))
    }

    /// The filter for `tenant` under its current key epoch.
    pub(crate) fn filter_for(
        &self,
        tenant: &Tenant,
        now: OffsetDateTime,
    ) -> Result<Arc<TenantFilter>, ApiError> {
        let period = period_for(tenant.tier, now);
        if let Ok(filters) = self.filters.read()
            && let Some(cached) = filters.get(&tenant.id)
            && cached.period == period
            && cached.checked.elapsed() < KEY_RECHECK
        {
            return Ok(cached.filter.clone());
        }
        let key = self
            .keystore
            .current(&tenant.id, tenant.tier, now)
            .map_err(|error| {
                tracing::error!(tenant = %tenant.id, %error, "tenant key unavailable");
                ApiError::Unavailable {
                    retry_after_seconds: u64::from(self.config.retry_after_seconds),
                }
            })?;
        let mut filters = self.filters.write().map_err(|_| ApiError::ShuttingDown)?;
        let reuse = filters
            .get(&tenant.id)
            .filter(|cached| cached.filter.key_epoch() == key.epoch())
            .map(|cached| cached.filter.clone());
        let filter = reuse.unwrap_or_else(|| {
            Arc::new(TenantFilter::new(
                self.policy.clone(),
                &tenant.id,
                tenant.tier,
                key,
            ))
        });
        filters.insert(
            tenant.id.clone(),
            CachedFilter {
                filter: filter.clone(),
                period,
                checked: Instant::now(),
            },
        );
        Ok(filter)
    }

    /// Admits `messages` for `write_key`, or says how long to wait (429), or, when the request
    /// carries more messages than the burst and so could never be admitted, refuses it for good.
    pub(crate) fn admit(&self, write_key: &str, messages: usize) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let count = NonZeroU32::new(u32::try_from(messages.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let wait = match limiter.check_key_n(&write_key.to_owned(), count) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(not_until)) => not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
            // A 429 here would be retried forever: waiting never makes room for it.
            Err(governor::InsufficientCapacity(limit)) => {
                return Err(ApiError::TooManyMessages { limit });
            }
        };
        Err(ApiError::RateLimited {
            retry_after_seconds: wait.as_secs() + 1,
        })
    }

    /// A dropped-field label with bounded cardinality.
    pub(crate) fn field_label(&self, path: &str) -> String {
        let Ok(mut labels) = self.field_labels.lock() else {
            return "*".to_owned();
        };
        if labels.contains(path) {
            return path.to_owned();
        }
        if labels.len() >= MAX_FIELD_LABELS {
            return "*".to_owned();
        }
        labels.insert(path.to_owned());
        path.to_owned()
    }
}
