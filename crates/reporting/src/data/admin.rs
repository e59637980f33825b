//! The tenant administrator's reports: active users (daily, weekly, monthly and their trend),
//! feature and event adoption, app/version/platform mix, and change against the previous month.

use std::collections::{BTreeMap, HashMap, HashSet};

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::aliases::Aliases;
use super::period::{Month, iso};
use super::{
    DAILY_ACTIVITY, Interner, ROLLUP_HAS_USER, ROLLUP_USER_COLUMNS, Scope, Warehouse, integers,
    literal, rollup_user_keys, strings,
};
use crate::ReportingError;
use crate::privacy::{Breakdown, Cell, Group, Threshold, breakdown};

/// The dimensions a month is broken down by, in the order the query's grouping sets name them.
pub const DIMENSIONS: [&str; 5] = ["feature", "event", "product", "version", "platform"];

/// Active users of one day.
#[derive(Debug, Clone, Serialize)]
pub struct DayPoint {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Distinct active users.
    pub users: Cell,
}

/// Active users of one ISO week, clipped to the month.
#[derive(Debug, Clone, Serialize)]
pub struct WeekPoint {
    /// `W48`.
    pub week: String,
    /// First day (inside the month).
    pub from: String,
    /// Last day (inside the month).
    pub to: String,
    /// Distinct active users.
    pub users: Cell,
}

/// Active users and events of one month.
#[derive(Debug, Clone, Serialize)]
pub struct MonthPoint {
    /// `YYYY-MM`.
    pub month: String,
    /// Distinct active users.
    pub users: Cell,
    /// Events.
    pub events: Cell,
}

/// DAU, WAU and MAU of a month, and MAU over the six months up to it.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    /// The tenant.
    pub tenant: String,
    /// The month.
    pub month: String,
    /// One point per day of the month.
    pub daily: Vec<DayPoint>,
    /// One point per (clipped) ISO week.
    pub weekly: Vec<WeekPoint>,
    /// Six months, oldest first, ending with `month`.
    pub monthly: Vec<MonthPoint>,
}

/// A month's breakdowns by feature, event, product, version and platform.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdowns {
    /// The tenant.
    pub tenant: String,
    /// The month.
    pub month: String,
    /// By dimension name ([`DIMENSIONS`]).
    pub by: BTreeMap<String, Breakdown>,
}

/// One adoption row compared with the previous month.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptionChange {
    /// Feature or event.
    pub label: String,
    /// Share of active users this month (when shown).
    pub share: Option<f64>,
    /// Share the month before (when shown).
    pub previous_share: Option<f64>,
    /// Difference in percentage points (when both are shown).
    pub change_points: Option<f64>,
}

/// The month against the month before.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The tenant.
    pub tenant: String,
    /// The month.
    pub month: String,
    /// The month before.
    pub previous: String,
    /// Active users this month.
    pub users: Cell,
    /// Active users the month before.
    pub previous_users: Cell,
    /// Relative change of active users (0.1 = +10%), when both are shown.
    pub users_change: Option<f64>,
    /// Events this month.
    pub events: Cell,
    /// Events the month before.
    pub previous_events: Cell,
    /// Relative change of events, when both are shown.
    pub events_change: Option<f64>,
    /// Feature adoption, this month against the month before.
    pub features: Vec<AdoptionChange>,
}

fn month_filter(tenant: &str, first: &str, last: &str) -> String {
    format!(
        "tenant = {} AND date >= {} AND date <= {} AND {ROLLUP_HAS_USER}",
        literal(tenant),
        literal(first),
        literal(last)
    )
}

/// DAU, WAU, MAU and the MAU trend.
pub async fn activity(
    warehouse: &Warehouse,
    context: &SessionContext,
    tenant: &str,
    month: Month,
    k: Threshold,
) -> Result<Activity, ReportingError> {
    let mut months = vec![month];
    for _ in 0..5 {
        let before = months[months.len() - 1].previous();
        months.push(before);
    }
    months.reverse();
    // One scan of six months of the rollup: (day, user) pairs with their events; sets are
    // built here.
    let (from, to) = (iso(months[0].first_day()), iso(month.last_day()));
    let pairs = warehouse
        .cached_query(
            context,
            &format!(
                "SELECT date, {ROLLUP_USER_COLUMNS}, sum(events) FROM {DAILY_ACTIVITY} WHERE {} \
                 GROUP BY date, {ROLLUP_USER_COLUMNS}",
                month_filter(tenant, &from, &to)
            ),
            Scope {
                table: DAILY_ACTIVITY,
                tenant: Some(tenant),
                from: &from,
                to: &to,
            },
        )
        .await?;
    let dates = strings(&pairs, 0)?;
    let aliases = Aliases::load(warehouse, context, Some(tenant)).await?;
    let users = aliases.people(
        rollup_user_keys(&pairs, 1)?
            .into_iter()
            .map(|user| (tenant, user)),
    );
    let counts = integers(&pairs, 4)?;
    let mut interner = Interner::default();
    let mut by_day: HashMap<String, HashSet<u32>> = HashMap::new();
    let mut by_month: HashMap<String, (HashSet<u32>, u64)> = HashMap::new();
    for ((date, user), count) in dates.into_iter().zip(users).zip(counts) {
        let (Some(date), Some(user)) = (date, user) else {
            continue;
        };
        let id = interner.id(user);
        let entry = by_month
            .entry(date[..7.min(date.len())].to_owned())
            .or_default();
        entry.0.insert(id);
        entry.1 += count.max(0) as u64;
        by_day.entry(date).or_default().insert(id);
    }
    let daily = month
        .days()
        .into_iter()
        .map(|day| {
            let date = iso(day);
            let users = by_day.get(&date).map_or(0, |set| set.len() as u64);
            DayPoint {
                date,
                users: k.users(users),
            }
        })
        .collect();
    let weekly = month
        .weeks()
        .into_iter()
        .map(|(week, from, to)| {
            let mut union = HashSet::new();
            let mut day = Some(from);
            while let Some(current) = day.filter(|current| *current <= to) {
                if let Some(set) = by_day.get(&iso(current)) {
                    union.extend(set.iter().copied());
                }
                day = current.next_day();
            }
            WeekPoint {
                week,
                from: iso(from),
                to: iso(to),
                users: k.users(union.len() as u64),
            }
        })
        .collect();
    let monthly = months
        .iter()
        .map(|m| {
            let (users, events) = by_month
                .get(&m.to_string())
                .map_or((0, 0), |(set, events)| (set.len() as u64, *events));
            MonthPoint {
                month: m.to_string(),
                users: k.users(users),
                events: k.of_group(users, events),
            }
        })
        .collect();
    Ok(Activity {
        tenant: tenant.to_owned(),
        month: month.to_string(),
        daily,
        weekly,
        monthly,
    })
}

/// The rollup columns a dimension's label is made of (the raw events' `properties.feature`,
/// `context.app.name`, `context.app.version`, `context.os.name`, `event`, `type`, `name`).
fn label_columns(dimension: &str) -> &'static [&'static str] {
    match dimension {
        "feature" => &["feature"],
        "event" => &["event", "type", "name"],
        "product" => &["product"],
        "version" => &["product", "app_version"],
        _ => &["os_name"],
    }
}

/// A group's label from its label columns (missing values are the group `(not set)`).
fn label(dimension: &str, values: &[Option<String>]) -> String {
    let not_set = || "(not set)".to_owned();
    match (dimension, values) {
        ("event", [Some(event), _, _]) => event.clone(),
        ("event", [None, Some(kind), Some(name)]) => format!("{kind}: {name}"),
        ("event", [None, Some(kind), None]) => kind.clone(),
        ("version", [app, version]) => format!(
            "{} {}",
            app.clone().unwrap_or_else(not_set),
            version.clone().unwrap_or_else(not_set)
        ),
        (_, [value, ..]) => value.clone().unwrap_or_else(not_set),
        _ => not_set(),
    }
}

/// The month broken down by `dimensions` (of [`DIMENSIONS`]): one query over the rollup per
/// dimension grouping by its label columns and the user, run concurrently (no string is built
/// per stored row).
pub async fn breakdowns(
    warehouse: &Warehouse,
    context: &SessionContext,
    tenant: &str,
    month: Month,
    dimensions: &[&'static str],
    k: Threshold,
) -> Result<Breakdowns, ReportingError> {
    let (first, last) = (iso(month.first_day()), iso(month.last_day()));
    let filter = month_filter(tenant, &first, &last);
    // The product breakdown is the version one's groups merged by product (the same rows,
    // users united and events summed), so it needs no query of its own when both are asked for.
    let source = |dimension: &'static str| -> &'static str {
        if dimension == "product" && dimensions.contains(&"version") {
            "version"
        } else {
            dimension
        }
    };
    let mut running = tokio::task::JoinSet::new();
    for dimension in dimensions.iter().copied() {
        if source(dimension) != dimension {
            continue;
        }
        let columns = label_columns(dimension)
            .iter()
            .map(|name| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, {ROLLUP_USER_COLUMNS}, sum(events) FROM {DAILY_ACTIVITY} \
             WHERE {filter} GROUP BY {columns}, {ROLLUP_USER_COLUMNS}"
        );
        let (warehouse, context) = (warehouse.clone(), context.clone());
        let (tenant, first, last) = (tenant.to_owned(), first.clone(), last.clone());
        running.spawn(async move {
            let scope = Scope {
                table: DAILY_ACTIVITY,
                tenant: Some(&tenant),
                from: &first,
                to: &last,
            };
            let batches = warehouse.cached_query(&context, &sql, scope).await?;
            Ok::<_, ReportingError>((dimension, batches))
        });
    }
    let mut results = HashMap::new();
    while let Some(done) = running.join_next().await {
        let (dimension, batches) =
            done.map_err(|error| ReportingError::Query(error.to_string()))??;
        results.insert(dimension, batches);
    }
    let aliases = Aliases::load(warehouse, context, Some(tenant)).await?;
    let mut by = BTreeMap::new();
    for dimension in dimensions.iter().copied() {
        let from = source(dimension);
        let batches = results.get(from).cloned().unwrap_or_default();
        // The source's label columns start with this dimension's (product, then version).
        let width = label_columns(dimension).len();
        let source_width = label_columns(from).len();
        debug_assert!(label_columns(from).starts_with(label_columns(dimension)));
        let values: Vec<Vec<Option<String>>> = (0..width)
            .map(|index| strings(&batches, index))
            .collect::<Result<_, _>>()?;
        let users = aliases.people(
            rollup_user_keys(&batches, source_width)?
                .into_iter()
                .map(|user| (tenant, user)),
        );
        let counts = integers(&batches, source_width + 3)?;
        let mut interner = Interner::default();
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for (row, (user, count)) in users.into_iter().zip(counts).enumerate() {
            let Some(user) = user else { continue };
            let row_values: Vec<Option<String>> =
                values.iter().map(|column| column[row].clone()).collect();
            let group = groups
                .entry(label(dimension, &row_values))
                .or_insert_with_key(|label| Group {
                    label: label.clone(),
                    ..Group::default()
                });
            group.users.insert(interner.id(user));
            group.events += count.max(0) as u64;
        }
        by.insert(
            (*dimension).to_owned(),
            breakdown(groups.into_values().collect(), k),
        );
    }
    Ok(Breakdowns {
        tenant: tenant.to_owned(),
        month: month.to_string(),
        by,
    })
}

fn relative(now: Cell, before: Cell) -> Option<f64> {
    match (now, before) {
        (Cell::Shown(now), Cell::Shown(before)) if before > 0 => {
            Some(now as f64 / before as f64 - 1.0)
        }
        _ => None,
    }
}

/// The month against the month before: active users, events and feature adoption.
pub fn compare(current: &Breakdowns, previous: &Breakdowns) -> Comparison {
    let now = &current.by["feature"];
    let before = &previous.by["feature"];
    let previous_shares: HashMap<&str, Option<f64>> = before
        .rows
        .iter()
        .map(|row| (row.label.as_str(), row.share))
        .collect();
    let features = now
        .rows
        .iter()
        .map(|row| {
            let previous_share = previous_shares.get(row.label.as_str()).copied().flatten();
            AdoptionChange {
                label: row.label.clone(),
                share: row.share,
                previous_share,
                change_points: match (row.share, previous_share) {
                    (Some(now), Some(before)) => Some((now - before) * 100.0),
                    _ => None,
                },
            }
        })
        .collect();
    Comparison {
        tenant: current.tenant.clone(),
        month: current.month.clone(),
        previous: previous.month.clone(),
        users: now.total_users,
        previous_users: before.total_users,
        users_change: relative(now.total_users, before.total_users),
        events: now.total_events,
        previous_events: before.total_events,
        events_change: relative(now.total_events, before.total_events),
        features,
    }
}
