//! Settings every Veil service shares: where Kafka is and what its topics are called, and the
//! tenants file that maps write keys to tenants.
//!
//! Each service keeps its own settings next to its code; only what crosses services lives here.

mod kafka;
mod tenants;

pub use kafka::{ErrorLogLimit, KafkaConfig, Region, TopicsConfig};
pub use tenants::{Consent, Tenant, TenantsError, TenantsFile, WriteKeyIndex};
