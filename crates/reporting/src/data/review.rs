//! The compliance reviewer's reports: the active allowlist with reasons and digest, the policy
//! digests found in stored data and over which dates, the gateway's rejections and dropped fields
//! by reason over time (names and counts only), enhanced tenants with their consent records, and
//! key epochs with shred dates.

use datafusion::prelude::SessionContext;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use veil_config::TenantsFile;
use veil_policy::{Allowlist, Scope};

use super::{EVENTS, REJECTIONS, Scope as Partitions, Warehouse, integers, query, strings};
use crate::ReportingError;

/// One allowlisted field as reviewed.
#[derive(Debug, Clone, Serialize)]
pub struct FieldEntry {
    /// Where it applies (`common`, `track`, `event: Search Performed`, …).
    pub scope: String,
    /// The dotted path.
    pub path: String,
    /// `keep string`, `pseudonymize user`, …
    pub action: String,
    /// `baseline` (everyone) or `enhanced` (opt-in tenants only).
    pub tier: String,
    /// Why it is collected.
    pub reason: String,
    /// Line in the allowlist file.
    pub line: usize,
}

/// One allowlisted event, page or screen name.
#[derive(Debug, Clone, Serialize)]
pub struct NameEntry {
    /// `track`, `page` or `screen`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// Tier.
    pub tier: String,
    /// Why.
    pub reason: String,
    /// Line in the allowlist file.
    pub line: usize,
}

/// The active allowlist as reviewers read it.
#[derive(Debug, Clone, Serialize)]
pub struct AllowlistView {
    /// `sha256:…` of the file.
    pub digest: String,
    /// Accepted message types.
    pub kinds: Vec<String>,
    /// Fields in file order.
    pub fields: Vec<FieldEntry>,
    /// Event and view names in file order.
    pub names: Vec<NameEntry>,
}

/// The allowlist, rendered.
pub fn allowlist_view(allowlist: &Allowlist) -> AllowlistView {
    AllowlistView {
        digest: allowlist.digest.clone(),
        kinds: allowlist
            .kinds
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
        fields: allowlist
            .fields
            .iter()
            .map(|rule| FieldEntry {
                scope: match &rule.scope {
                    Scope::Common => "common".to_owned(),
                    Scope::Kind(kind) => kind.as_str().to_owned(),
                    Scope::Event(event) => format!("event: {event}"),
                },
                path: rule.path.clone(),
                action: rule.action.describe(),
                tier: rule.tier.as_str().to_owned(),
                reason: rule.reason.clone(),
                line: rule.line,
            })
            .collect(),
        names: allowlist
            .names
            .iter()
            .map(|rule| NameEntry {
                kind: rule.kind.as_str().to_owned(),
                name: rule.name.clone(),
                tier: rule.tier.as_str().to_owned(),
                reason: rule.reason.clone(),
                line: rule.line,
            })
            .collect(),
    }
}

/// A policy digest found in stored events.
#[derive(Debug, Clone, Serialize)]
pub struct DigestUse {
    /// `sha256:…`.
    pub digest: String,
    /// Whether it is the active allowlist's digest.
    pub active: bool,
    /// First day with events under it.
    pub first_date: String,
    /// Last day with events under it.
    pub last_date: String,
    /// Tenants with events under it.
    pub tenants: u64,
    /// Events stored under it.
    pub events: u64,
}

/// Which digests appear in stored data, over which dates.
pub async fn digests(
    warehouse: &Warehouse,
    context: &SessionContext,
    active: &str,
) -> Result<Vec<DigestUse>, ReportingError> {
    // Grouped by partition (cheap: the tenant and date are directory values), folded here.
    let batches = warehouse
        .cached_query(
            context,
            &format!(
                "SELECT policy, tenant, date, count(*) FROM {EVENTS} GROUP BY policy, tenant, date"
            ),
            Partitions {
                table: EVENTS,
                tenant: None,
                from: "0000-00-00",
                to: "9999-99-99",
            },
        )
        .await?;
    let policy = strings(&batches, 0)?;
    let tenant = strings(&batches, 1)?;
    let date = strings(&batches, 2)?;
    let events = integers(&batches, 3)?;
    let mut found: std::collections::BTreeMap<
        String,
        (String, String, std::collections::BTreeSet<String>, u64),
    > = std::collections::BTreeMap::new();
    for i in 0..policy.len() {
        let (Some(policy), Some(tenant), Some(date)) = (&policy[i], &tenant[i], &date[i]) else {
            continue;
        };
        let entry = found
            .entry(policy.clone())
            .or_insert_with(|| (date.clone(), date.clone(), Default::default(), 0));
        if *date < entry.0 {
            entry.0 = date.clone();
        }
        if *date > entry.1 {
            entry.1 = date.clone();
        }
        entry.2.insert(tenant.clone());
        entry.3 += events[i].max(0) as u64;
    }
    let mut uses: Vec<DigestUse> = found
        .into_iter()
        .map(
            |(digest, (first_date, last_date, tenants, events))| DigestUse {
                active: digest == active,
                digest,
                first_date,
                last_date,
                tenants: tenants.len() as u64,
                events,
            },
        )
        .collect();
    uses.sort_by(|a, b| (&a.first_date, &a.digest).cmp(&(&b.first_date, &b.digest)));
    Ok(uses)
}

/// Rejected messages or dropped fields of one day, reason (and field) — counts of messages and
/// fields, not of people.
#[derive(Debug, Clone, Serialize)]
pub struct RejectionCount {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `rejected` (a message) or `dropped` (a field).
    pub kind: String,
    /// The reason code.
    pub reason: String,
    /// The field, for dropped fields and field-specific rejections.
    pub field: Option<String>,
    /// How many.
    pub count: u64,
}

/// The gateway's audit records by day, kind, reason and field; `None` while the processor has
/// not written the rejections table.
pub async fn rejections(
    warehouse: &Warehouse,
    context: &SessionContext,
) -> Result<Option<Vec<RejectionCount>>, ReportingError> {
    if !warehouse.has_table(REJECTIONS) {
        return Ok(None);
    }
    let batches = query(
        context,
        &format!(
            "SELECT date, kind, reason, field, sum(\"count\") FROM {REJECTIONS} \
             GROUP BY date, kind, reason, field ORDER BY date, kind, reason, field"
        ),
    )
    .await?;
    let date = strings(&batches, 0)?;
    let kind = strings(&batches, 1)?;
    let reason = strings(&batches, 2)?;
    let field = strings(&batches, 3)?;
    let count = integers(&batches, 4)?;
    Ok(Some(
        (0..date.len())
            .map(|i| RejectionCount {
                date: date[i].clone().unwrap_or_default(),
                kind: kind[i].clone().unwrap_or_default(),
                reason: reason[i].clone().unwrap_or_default(),
                field: field[i].clone(),
                count: count[i].max(0) as u64,
            })
            .collect(),
    ))
}

/// A tenant on the enhanced tier and its consent record.
#[derive(Debug, Clone, Serialize)]
pub struct EnhancedTenant {
    /// The tenant.
    pub tenant: String,
    /// Who consented (a role or ticket reference).
    pub consent_by: Option<String>,
    /// When (RFC 3339).
    pub consent_at: Option<String>,
}

/// Tenants on the `enhanced` tier.
pub fn enhanced_tenants(tenants: &TenantsFile) -> Vec<EnhancedTenant> {
    tenants
        .tenants
        .iter()
        .filter(|t| t.tier == veil_sanitized::Tier::Enhanced)
        .map(|t| EnhancedTenant {
            tenant: t.id.clone(),
            consent_by: t.consent.as_ref().map(|c| c.by.clone()),
            consent_at: t.consent.as_ref().and_then(|c| c.at.format(&Rfc3339).ok()),
        })
        .collect()
}
