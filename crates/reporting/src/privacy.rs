//! k-anonymity for every number a report shows.
//!
//! - A **cell** counts the distinct users of a group (or that group's events). It is shown only
//!   when the group has at least k distinct users, or none at all (an empty group describes
//!   nobody); otherwise it reads `< k`.
//! - A **breakdown** splits one population (a tenant's active users in a month) by a dimension
//!   (feature, event, product, version, platform). Its groups cover the population: users and
//!   events without the dimension form the group `(not set)`. Suppressed groups are pooled into
//!   one `Other` row (their union of users and their summed events). When that pool itself would
//!   have 1 to k−1 users, the smallest shown group is suppressed too and pooled (complementary
//!   suppression), until the pool has ≥ k users. So `total − shown rows = Other`, itself a group of
//!   ≥ k users: subtraction recovers no group below k.
//! - A total over **disjoint** groups (tenants in the license view) is summed over shown cells
//!   only, so it equals the sum of what is on the screen.

use std::collections::HashSet;

use serde::{Serialize, Serializer};

/// The k-anonymity threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(pub u32);

/// One published count: shown, or suppressed because its group has fewer than k users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// The exact count.
    Shown(u64),
    /// Withheld; reads `< k`.
    Suppressed(u32),
    /// A group of k or more users withheld by complementary suppression; reads `withheld`.
    Withheld,
}

impl Cell {
    /// The shown value, if any.
    pub fn value(self) -> Option<u64> {
        match self {
            Cell::Shown(value) => Some(value),
            Cell::Suppressed(_) | Cell::Withheld => None,
        }
    }

    /// How the cell reads on a page.
    pub fn display(self) -> String {
        match self {
            Cell::Shown(value) => group_digits(value),
            Cell::Suppressed(k) => format!("< {k}"),
            Cell::Withheld => "withheld".to_owned(),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Shown(value) => serializer.serialize_u64(*value),
            Cell::Suppressed(k) => serializer.serialize_str(&format!("< {k}")),
            Cell::Withheld => serializer.serialize_str("withheld"),
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn group_digits(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl Threshold {
    /// Whether a group of `users` distinct users may be shown.
    pub fn allows(self, users: u64) -> bool {
        users == 0 || users >= u64::from(self.0)
    }

    /// A distinct-user count as a cell.
    pub fn users(self, users: u64) -> Cell {
        if self.allows(users) {
            Cell::Shown(users)
        } else {
            Cell::Suppressed(self.0)
        }
    }

    /// Any count (events, shares' numerators) of a group with `users` distinct users.
    pub fn of_group(self, users: u64, value: u64) -> Cell {
        if self.allows(users) {
            Cell::Shown(value)
        } else {
            Cell::Suppressed(self.0)
        }
    }
}

/// One group of a breakdown before suppression: its users (interned ids) and its events.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The dimension's value (`(not set)` when absent).
    pub label: String,
    /// Distinct users in the group.
    pub users: HashSet<u32>,
    /// Events in the group.
    pub events: u64,
}

/// One published row of a breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct BreakdownRow {
    /// The dimension's value.
    pub label: String,
    /// Distinct users.
    pub users: Cell,
    /// Events.
    pub events: Cell,
    /// Users as a share of the population's users (0..1), when both are shown.
    pub share: Option<f64>,
}

/// The pool of suppressed groups.
#[derive(Debug, Clone, Serialize)]
pub struct OtherRow {
    /// How many groups it pools.
    pub groups: usize,
    /// Distinct users in the union of the pooled groups.
    pub users: Cell,
    /// Their events.
    pub events: Cell,
    /// Users as a share of the population.
    pub share: Option<f64>,
}

/// A suppressed breakdown of one population.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Distinct users of the population.
    pub total_users: Cell,
    /// Events of the population.
    pub total_events: Cell,
    /// Shown groups, most users first.
    pub rows: Vec<BreakdownRow>,
    /// Pooled suppressed groups, if any.
    pub other: Option<OtherRow>,
    /// Labels of the pooled groups with their cell (`< k`, or withheld by complementary
    /// suppression); kept for views that list fixed categories (license products), never
    /// serialized.
    #[serde(skip)]
    pub pooled: Vec<(String, Cell)>,
}

fn share(users: Cell, total: Cell) -> Option<f64> {
    match (users, total) {
        (Cell::Shown(part), Cell::Shown(whole)) if whole > 0 => Some(part as f64 / whole as f64),
        _ => None,
    }
}

/// Suppresses a breakdown whose `groups` cover one population (see the module docs).
pub fn breakdown(mut groups: Vec<Group>, k: Threshold) -> Breakdown {
    let population: HashSet<u32> = groups
        .iter()
        .flat_map(|g| g.users.iter().copied())
        .collect();
    let total_events: u64 = groups.iter().map(|g| g.events).sum();
    let total_users = k.users(population.len() as u64);
    let total_events = k.of_group(population.len() as u64, total_events);
    groups.sort_by(|a, b| {
        b.users
            .len()
            .cmp(&a.users.len())
            .then_with(|| a.label.cmp(&b.label))
    });
    let mut suppressed: Vec<bool> = groups
        .iter()
        .map(|g| !k.allows(g.users.len() as u64))
        .collect();
    let pooled = |suppressed: &[bool]| -> (HashSet<u32>, u64) {
        let mut users = HashSet::new();
        let mut events = 0;
        for (group, _) in groups.iter().zip(suppressed).filter(|(_, s)| **s) {
            users.extend(group.users.iter().copied());
            events += group.events;
        }
        (users, events)
    };
    let (mut pool_users, mut pool_events) = pooled(&suppressed);
    // Complementary suppression: a pool of 1..k-1 users would be recoverable as total − shown.
    while suppressed.iter().any(|s| *s) && !k.allows(pool_users.len() as u64) {
        let Some(smallest) = (0..groups.len()).rev().find(|at| !suppressed[*at]) else {
            break;
        };
        suppressed[smallest] = true;
        (pool_users, pool_events) = pooled(&suppressed);
    }
    let rows = groups
        .iter()
        .zip(&suppressed)
        .filter(|(_, s)| !**s)
        .map(|(group, _)| {
            let users = k.users(group.users.len() as u64);
            BreakdownRow {
                label: group.label.clone(),
                users,
                events: k.of_group(group.users.len() as u64, group.events),
                share: share(users, total_users),
            }
        })
        .collect();
    let pooled_count = suppressed.iter().filter(|s| **s).count();
    let pooled = groups
        .iter()
        .zip(&suppressed)
        .filter(|(_, s)| **s)
        .map(|(group, _)| {
            let cell = if k.allows(group.users.len() as u64) {
                Cell::Withheld
            } else {
                Cell::Suppressed(k.0)
            };
            (group.label.clone(), cell)
        })
        .collect();
    let other = (pooled_count > 0).then(|| {
        let users = k.users(pool_users.len() as u64);
        OtherRow {
            groups: pooled_count,
            users,
            events: k.of_group(pool_users.len() as u64, pool_events),
            share: share(users, total_users),
        }
    });
    debug_assert!(
        other
            .as_ref()
            .is_none_or(|o| o.users.value().is_some() || total_users.value().is_none())
    );
    Breakdown {
        total_users,
        total_events,
        rows,
        other,
        pooled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(label: &str, users: std::ops::Range<u32>, events: u64) -> Group {
        Group {
            label: label.to_owned(),
            users: users.collect(),
            events,
        }
    }

    #[test]
    fn cells_below_k_read_less_than_k() {
        let k = Threshold(5);
        assert_eq!(k.users(4).display(), "< 5");
        assert_eq!(k.users(5).display(), "5");
        assert_eq!(k.users(0).display(), "0");
        assert_eq!(k.users(1_234_567).display(), "1,234,567");
        assert_eq!(serde_json::to_string(&k.users(3)).expect("json"), "\"< 5\"");
    }

    #[test]
    fn a_lone_small_group_drags_the_smallest_shown_group_into_other() {
        // Disjoint groups: total − shown would give the small group exactly without complement.
        let result = breakdown(
            vec![
                group("a", 0..20, 200),
                group("b", 20..30, 90),
                group("c", 30..32, 7),
            ],
            Threshold(5),
        );
        assert_eq!(result.total_users, Cell::Shown(32));
        let labels: Vec<&str> = result.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["a"]);
        let other = result.other.expect("pooled");
        assert_eq!(
            (other.groups, other.users, other.events),
            (2, Cell::Shown(12), Cell::Shown(97))
        );
        let shown: u64 = result.rows.iter().filter_map(|r| r.events.value()).sum();
        assert_eq!(
            shown + 97,
            297,
            "total = shown + other: nothing below k is left to subtract"
        );
    }

    #[test]
    fn several_small_groups_pool_without_complement_when_the_pool_reaches_k() {
        let result = breakdown(
            vec![
                group("a", 0..20, 1),
                group("b", 20..23, 1),
                group("c", 23..26, 1),
            ],
            Threshold(5),
        );
        assert_eq!(result.rows.len(), 1);
        assert_eq!(result.other.expect("pool").users, Cell::Shown(6));
    }

    #[test]
    fn a_population_below_k_shows_nothing() {
        let result = breakdown(
            vec![group("a", 0..3, 10), group("b", 3..4, 1)],
            Threshold(5),
        );
        assert_eq!(result.total_users, Cell::Suppressed(5));
        assert_eq!(result.total_events, Cell::Suppressed(5));
        assert!(result.rows.is_empty());
        assert_eq!(result.other.expect("pool").users, Cell::Suppressed(5));
    }

    #[test]
    fn no_random_disjoint_breakdown_leaks_a_small_group_by_subtraction() {
        let mut state: u64 = 0x1234_5678;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % below
        };
        for _ in 0..2_000 {
            let k = Threshold(2 + next(8) as u32);
            let count = 1 + next(8) as usize;
            let mut groups = Vec::new();
            let mut user = 0u32;
            for index in 0..count {
                let size = if next(2) == 0 { next(5) } else { next(40) } as u32;
                groups.push(Group {
                    label: format!("g{index}"),
                    users: (user..user + size).collect(),
                    events: u64::from(size) * (1 + next(5)),
                });
                user += size;
            }
            let total_events: u64 = groups.iter().map(|g| g.events).sum();
            let result = breakdown(groups.clone(), k);
            let total = u64::from(user);
            if !k.allows(total) {
                assert!(result.rows.is_empty());
                continue;
            }
            let shown_users: u64 = result
                .rows
                .iter()
                .map(|r| r.users.value().expect("shown"))
                .sum();
            let shown_events: u64 = result
                .rows
                .iter()
                .map(|r| r.events.value().expect("shown"))
                .sum();
            for row in &result.rows {
                assert!(k.allows(row.users.value().unwrap_or(0)));
            }
            let residual = total - shown_users;
            assert!(
                residual == 0 || residual >= u64::from(k.0),
                "total − shown = {residual} < k"
            );
            match &result.other {
                None => assert_eq!(residual, 0),
                Some(other) => {
                    assert_eq!(other.users, Cell::Shown(residual));
                    assert_eq!(other.events, Cell::Shown(total_events - shown_events));
                }
            }
        }
    }
}
