//! Reading alias links from a table, partition by partition: links are read over a tenant's whole
//! history for every report, while a flush changes only the current day's partition. So each
//! partition's links are cached with the fingerprint of its files, and a report reads again only
//! the partitions whose files changed (a compaction, erasure or retention run changes them too).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use datafusion::prelude::SessionContext;
use veil_processor::tables;

use crate::ReportingError;
use crate::data::{Warehouse, literal, query, strings};

/// One link: (tenant, previous user key, current user key), keys as `epoch/pseudonym`.
pub(crate) type Link = (String, String, String);

/// A (table, tenant, date) partition.
type Partition = (&'static str, String, String);

/// A partition's links and the fingerprint of the files they were read from.
type CachedLinks = (u64, Arc<Vec<Link>>);

/// Alias links per partition, with the fingerprint of the files they were read from.
#[derive(Debug, Default)]
pub struct LinkCache {
    partitions: Mutex<HashMap<Partition, CachedLinks>>,
}

/// The error for a link cache left inconsistent by a panic.
fn poisoned() -> ReportingError {
    ReportingError::Server("alias link cache poisoned".to_owned())
}

/// Where a table keeps its alias links: the columns of the previous and the current user id.
pub(crate) struct LinkSource {
    pub(crate) table: &'static str,
    pub(crate) previous: &'static str,
    pub(crate) current: &'static str,
    /// A further condition that the current id is a `userId`'s.
    pub(crate) signed_in: &'static str,
}

impl LinkSource {
    /// Every distinct link in the table's partitions of `tenant` (or of every tenant).
    pub(crate) async fn links(
        &self,
        warehouse: &Warehouse,
        context: &SessionContext,
        tenant: Option<&str>,
    ) -> Result<Vec<Link>, ReportingError> {
        let Some(cache) = warehouse.link_cache() else {
            let mut links = Vec::new();
            for (_, partition_links) in self.read(context, tenant, None).await? {
                links.extend(partition_links);
            }
            return Ok(links);
        };
        let partitions = warehouse.partition_fingerprints(self.table, tenant);
        let mut links = Vec::new();
        let mut missing: Vec<(String, String, u64)> = Vec::new();
        {
            // A link left out would count one person as several: no answer without every link.
            let cached = cache.partitions.lock().map_err(|_| poisoned())?;
            for (owner, date, fingerprint) in partitions.iter().cloned() {
                match cached.get(&(self.table, owner.clone(), date.clone())) {
                    Some((known, partition_links)) if *known == fingerprint => {
                        links.extend(partition_links.iter().cloned());
                    }
                    _ => missing.push((owner, date, fingerprint)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(links);
        }
        // Only the changed partitions, unless every one changed (a first read).
        let only = (missing.len() < partitions.len()).then_some(missing.as_slice());
        let mut read = self.read(context, tenant, only).await?;
        let mut cached = cache.partitions.lock().map_err(|_| poisoned())?;
        for (owner, date, fingerprint) in missing {
            let partition_links = read
                .remove(&(owner.clone(), date.clone()))
                .unwrap_or_default();
            links.extend(partition_links.iter().cloned());
            cached.insert(
                (self.table, owner, date),
                (fingerprint, Arc::new(partition_links)),
            );
        }
        // Partitions gone since (retention, erasure) leave the cache.
        let present: HashSet<(&str, &str)> = partitions
            .iter()
            .map(|(owner, date, _)| (owner.as_str(), date.as_str()))
            .collect();
        cached.retain(|(table, owner, date), _| {
            *table != self.table
                || tenant.is_some_and(|wanted| wanted != owner)
                || present.contains(&(owner.as_str(), date.as_str()))
        });
        Ok(links)
    }

    /// The links of the table's partitions of `tenant` (or of every tenant), only of the
    /// `only` partitions when given, by (tenant, date).
    async fn read(
        &self,
        context: &SessionContext,
        tenant: Option<&str>,
        only: Option<&[(String, String, u64)]>,
    ) -> Result<HashMap<(String, String), Vec<Link>>, ReportingError> {
        let LinkSource {
            table,
            previous,
            current,
            signed_in,
        } = self;
        let date = tables::DATE_PARTITION;
        let mut filter = tenant
            .map(|tenant| format!(" AND tenant = {}", literal(tenant)))
            .unwrap_or_default();
        if let Some(only) = only {
            let list = |values: &mut dyn Iterator<Item = &String>| {
                let distinct: HashSet<&String> = values.collect();
                let literals: Vec<String> =
                    distinct.into_iter().map(|value| literal(value)).collect();
                literals.join(", ")
            };
            let tenants = list(&mut only.iter().map(|(owner, _, _)| owner));
            let dates = list(&mut only.iter().map(|(_, date, _)| date));
            filter.push_str(&format!(
                " AND tenant IN ({tenants}) AND \"{date}\" IN ({dates})"
            ));
        }
        // `alias` sorts before every other message type, so Parquet row groups without alias
        // messages are skipped by their statistics.
        let sql = format!(
            "SELECT tenant, \"{date}\", key_epoch, \"{previous}\", \"{current}\" FROM {table} \
             WHERE \"type\" = 'alias' AND \"{previous}\" IS NOT NULL \
             AND \"{current}\" IS NOT NULL{signed_in}{filter} GROUP BY 1, 2, 3, 4, 5"
        );
        let batches = query(context, &sql).await?;
        let [tenants, dates, epochs, previous, current] =
            [0, 1, 2, 3, 4].map(|index| strings(&batches, index));
        let (tenants, dates, epochs, previous, current) =
            (tenants?, dates?, epochs?, previous?, current?);
        let mut by_partition: HashMap<(String, String), Vec<Link>> = HashMap::new();
        for row in 0..tenants.len() {
            let (Some(owner), Some(day), Some(epoch)) = (&tenants[row], &dates[row], &epochs[row])
            else {
                continue;
            };
            let key = |user: &Option<String>| Some(format!("{epoch}/{}", user.as_deref()?));
            let (Some(one), Some(other)) = (key(&previous[row]), key(&current[row])) else {
                continue;
            };
            by_partition
                .entry((owner.clone(), day.clone()))
                .or_default()
                .push((owner.clone(), one, other));
        }
        Ok(by_partition)
    }
}
