//! The vendor's license-compliance report: licensed seats (tenants file) against distinct active
//! users per tenant, month and product.
//!
//! Per tenant, the products form a breakdown of the tenant's active users (k-suppressed with
//! complementary suppression, see [`crate::privacy`]); the cross-tenant total of a product sums
//! shown cells only (tenants are disjoint), with the seats of the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::prelude::SessionContext;
use serde::Serialize;
use veil_config::TenantsFile;

use super::aliases::Aliases;
use super::csv::text_cell;
use super::period::{Month, iso};
use super::{
    DAILY_ACTIVITY, Interner, ROLLUP_HAS_USER, ROLLUP_USER_COLUMNS, Scope, Warehouse, integers,
    literal, rollup_user_keys, strings,
};
use crate::ReportingError;
use crate::privacy::{Cell, Group, Threshold, breakdown};

/// One tenant's use of one product in one month.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseRow {
    /// The tenant.
    pub tenant: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The product (`context.app.name`).
    pub product: String,
    /// Licensed seats (0 when the tenants file lists none for the product).
    pub seats: u64,
    /// Distinct active users.
    pub active_users: Cell,
    /// Active users / seats, when active users are shown and seats > 0.
    pub utilization: Option<f64>,
    /// Active users beyond the seats (over-deployment), when shown.
    pub over_deployed: Option<u64>,
    /// Seats nobody used, when shown.
    pub unused_seats: Option<u64>,
}

/// A product's total over the shown cells of every tenant.
#[derive(Debug, Clone, Serialize)]
pub struct ProductTotal {
    /// The product.
    pub product: String,
    /// Seats of the rows whose active users are shown.
    pub seats_of_shown: u64,
    /// Sum of shown active-user cells.
    pub active_users_of_shown: u64,
    /// Rows withheld from the sum.
    pub suppressed_rows: usize,
}

/// The license report of one month (or every month, for CSV).
#[derive(Debug, Clone, Serialize)]
pub struct LicenseReport {
    /// Months covered.
    pub months: Vec<String>,
    /// One row per tenant, month and product (products with seats or use).
    pub rows: Vec<LicenseRow>,
    /// Totals per product over shown cells.
    pub totals: Vec<ProductTotal>,
}

fn row(tenant: &str, month: &str, product: &str, seats: u64, active_users: Cell) -> LicenseRow {
    let (utilization, over_deployed, unused_seats) = match active_users.value() {
        Some(active) => (
            (seats > 0).then(|| active as f64 / seats as f64),
            Some(active.saturating_sub(seats)),
            Some(seats.saturating_sub(active)),
        ),
        None => (None, None, None),
    };
    LicenseRow {
        tenant: tenant.to_owned(),
        month: month.to_owned(),
        product: product.to_owned(),
        seats,
        active_users,
        utilization,
        over_deployed,
        unused_seats,
    }
}

/// Seats against active users for `months` (ascending), every tenant of the tenants file (and
/// any tenant found in the data).
pub async fn license(
    warehouse: &Warehouse,
    context: &SessionContext,
    tenants: &TenantsFile,
    months: &[Month],
    k: Threshold,
) -> Result<LicenseReport, ReportingError> {
    let (Some(first), Some(last)) = (months.first(), months.last()) else {
        return Ok(LicenseReport {
            months: vec![],
            rows: vec![],
            totals: vec![],
        });
    };
    let sql = format!(
        "SELECT tenant, date, product, {ROLLUP_USER_COLUMNS}, sum(events) FROM {DAILY_ACTIVITY} \
         WHERE date >= {} AND date <= {} AND {ROLLUP_HAS_USER} \
         GROUP BY tenant, date, product, {ROLLUP_USER_COLUMNS}",
        literal(&iso(first.first_day())),
        literal(&iso(last.last_day()))
    );
    let (from, to) = (iso(first.first_day()), iso(last.last_day()));
    let batches = warehouse
        .cached_query(
            context,
            &sql,
            Scope {
                table: DAILY_ACTIVITY,
                tenant: None,
                from: &from,
                to: &to,
            },
        )
        .await?;
    let tenant_col = strings(&batches, 0)?;
    let date_col = strings(&batches, 1)?;
    let product_col = strings(&batches, 2)?;
    let aliases = Aliases::load(warehouse, context, None).await?;
    let user_col = aliases.people(
        tenant_col
            .iter()
            .map(|tenant| tenant.as_deref().unwrap_or_default())
            .zip(rollup_user_keys(&batches, 3)?),
    );
    let count_col = integers(&batches, 6)?;
    let mut interner = Interner::default();
    // (tenant, month) → product → group
    let mut used: BTreeMap<(String, String), BTreeMap<String, Group>> = BTreeMap::new();
    for index in 0..tenant_col.len() {
        let (Some(tenant), Some(date), Some(user)) = (
            &tenant_col[index],
            &date_col[index],
            user_col[index].clone(),
        ) else {
            continue;
        };
        let month = date.get(..7).unwrap_or_default().to_owned();
        let product = product_col[index]
            .clone()
            .unwrap_or_else(|| "(not set)".to_owned());
        let group = used
            .entry((tenant.clone(), month))
            .or_default()
            .entry(product.clone())
            .or_insert_with(|| Group {
                label: product,
                ..Group::default()
            });
        group.users.insert(interner.id(user));
        group.events += count_col[index].max(0) as u64;
    }
    let mut tenant_ids: BTreeSet<String> = tenants.tenants.iter().map(|t| t.id.clone()).collect();
    tenant_ids.extend(used.keys().map(|(tenant, _)| tenant.clone()));
    let mut rows = Vec::new();
    for month in months {
        let month = month.to_string();
        for tenant in &tenant_ids {
            let seats: HashMap<&str, u64> = tenants
                .tenant(tenant)
                .map(|t| {
                    t.seats
                        .iter()
                        .map(|(p, s)| (p.as_str(), u64::from(*s)))
                        .collect()
                })
                .unwrap_or_default();
            let groups = used
                .remove(&(tenant.clone(), month.clone()))
                .unwrap_or_default();
            let result = breakdown(groups.into_values().collect(), k);
            let mut products: BTreeMap<String, Cell> = BTreeMap::new();
            for shown in &result.rows {
                products.insert(shown.label.clone(), shown.users);
            }
            for (product, cell) in &result.pooled {
                // Used by fewer than k ("< k"), or pooled by complementary suppression (withheld).
                products.insert(product.clone(), *cell);
            }
            for product in seats.keys() {
                // Licensed, used by nobody: an empty group describes nobody.
                products
                    .entry((*product).to_owned())
                    .or_insert(Cell::Shown(0));
            }
            for (product, active) in products {
                let seats = seats.get(product.as_str()).copied().unwrap_or(0);
                rows.push(row(tenant, &month, &product, seats, active));
            }
        }
    }
    let mut totals: BTreeMap<String, ProductTotal> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.month == months[months.len() - 1].to_string())
    {
        let total = totals
            .entry(row.product.clone())
            .or_insert_with(|| ProductTotal {
                product: row.product.clone(),
                seats_of_shown: 0,
                active_users_of_shown: 0,
                suppressed_rows: 0,
            });
        match row.active_users.value() {
            Some(active) => {
                total.seats_of_shown += row.seats;
                total.active_users_of_shown += active;
            }
            None => total.suppressed_rows += 1,
        }
    }
    Ok(LicenseReport {
        months: months.iter().map(Month::to_string).collect(),
        rows,
        totals: totals.into_values().collect(),
    })
}

/// The report as CSV (suppressed cells read `< k`; empty where a derived value is withheld).
/// Text cells (tenant, product) that would start a spreadsheet formula get a leading `'`.
pub fn csv(report: &LicenseReport) -> String {
    let mut out = String::from(
        "month,tenant,product,seats,active_users,utilization,over_deployed,unused_seats\n",
    );
    for row in &report.rows {
        let active = match row.active_users {
            Cell::Shown(value) => value.to_string(),
            other => other.display(),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            text_cell(&row.month),
            text_cell(&row.tenant),
            text_cell(&row.product),
            row.seats,
            text_cell(&active),
            row.utilization
                .map(|u| format!("{u:.3}"))
                .unwrap_or_default(),
            row.over_deployed.map(|v| v.to_string()).unwrap_or_default(),
            row.unused_seats.map(|v| v.to_string()).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_export_makes_formula_names_inert_and_keeps_numbers() {
        let report = LicenseReport {
            months: vec!["2026-11".to_owned()],
            rows: vec![
                row(
                    "t-1000",
                    "2026-11",
                    r#"=HYPERLINK("http://evil/x")"#,
                    8,
                    Cell::Shown(10),
                ),
                row("@t-1001", "2026-11", "-DMS, Web", 10, Cell::Suppressed(5)),
            ],
            totals: vec![],
        };
        let csv = csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[1],
            r#"2026-11,t-1000,"'=HYPERLINK(""http://evil/x"")",8,10,1.250,2,0"#
        );
        assert_eq!(lines[2], r#"2026-11,'@t-1001,"'-DMS, Web",10,< 5,,,"#);
    }
}
