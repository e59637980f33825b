//! Identity links from Segment `alias` calls: `alias(newId)` says that the `userId` a client used
//! before (`previousId`) and the one it uses now are one person. The rollup keeps them as two
//! `userId` pseudonyms, so without this a person who changed ids would count twice, and a group
//! of three people could pass a k of 5.
//!
//! Links hold within a tenant and a key epoch only: a pseudonym means nothing outside its epoch,
//! and the gateway pseudonymizes both ids of an alias under the same key. Every link of the
//! tenant's history joins its two ids, whatever period a report covers, so one person counts as
//! one user in every report of a month (a link that needed both ids in the report's own rows
//! would count a chain through an earlier id as one person in a six-month view and as two in a
//! one-month view). Linking can only merge users, so every count it changes goes down: each group
//! shown still has at least k distinct `userId` pseudonyms. The cost falls on the safe side: two
//! people who each alias one shared device's anonymous id count as one.
//!
//! The processor keeps each alias's link in the rollup (`previous_user`), so links last as long
//! as the counts (730 days by default), not only as long as the raw events (90).

use std::cmp::Ordering;
use std::collections::HashMap;

use datafusion::prelude::SessionContext;
use veil_processor::rollup;

use super::{DAILY_ACTIVITY, EVENTS, Warehouse};
use crate::ReportingError;

mod links;

pub use links::LinkCache;
use links::{Link, LinkSource};

/// The person each linked user key stands for: (tenant, user key) → the smallest key of its
/// linked group, user keys as [`super::rollup_user_keys`] writes them (`epoch/pseudonym`).
/// Resolved once per load, so each report's rows only look their keys up.
#[derive(Debug, Default)]
pub struct Aliases {
    representatives: HashMap<Node, String>,
}

/// A (tenant, user key) pair.
type Node = (String, String);

impl Aliases {
    /// The links of `tenant` (or of every tenant): the rollup's alias rows, which last as long as
    /// the counts they correct, and the raw `alias` messages, which also hold the links of files
    /// the processor wrote before the rollup kept them.
    pub async fn load(
        warehouse: &Warehouse,
        context: &SessionContext,
        tenant: Option<&str>,
    ) -> Result<Aliases, ReportingError> {
        let mut links = Vec::new();
        if warehouse.has_table(DAILY_ACTIVITY) {
            let source = LinkSource {
                table: DAILY_ACTIVITY,
                previous: rollup::PREVIOUS_USER,
                current: rollup::USER,
                signed_in: r#" AND "identified""#,
            };
            links.extend(source.links(warehouse, context, tenant).await?);
        }
        if warehouse.has_table(EVENTS) && warehouse.has_event_column("previousId") {
            let source = LinkSource {
                table: EVENTS,
                previous: "previousId",
                current: "userId",
                signed_in: "",
            };
            links.extend(source.links(warehouse, context, tenant).await?);
        }
        Ok(Aliases::from_links(links))
    }

    /// Aliases of the given links: (tenant, one user key, another user key).
    pub fn from_links(links: impl IntoIterator<Item = Link>) -> Aliases {
        // Union-find over the linked keys; the smaller of two roots becomes the root, so a
        // person's key does not depend on the order the links are read in.
        let mut parent: HashMap<Node, Node> = HashMap::new();
        fn root(parent: &HashMap<Node, Node>, node: &Node) -> Node {
            let mut current = node.clone();
            while let Some(next) = parent.get(&current).filter(|next| **next != current) {
                current = next.clone();
            }
            current
        }
        for (tenant, one, other) in links {
            let (one, other) = ((tenant.clone(), one), (tenant, other));
            let (one_root, other_root) = (root(&parent, &one), root(&parent, &other));
            parent.entry(one).or_insert_with_key(Clone::clone);
            parent.entry(other).or_insert_with_key(Clone::clone);
            match one_root.cmp(&other_root) {
                Ordering::Less => parent.insert(other_root, one_root),
                Ordering::Greater => parent.insert(one_root, other_root),
                Ordering::Equal => None,
            };
        }
        let representatives = parent
            .keys()
            .map(|node| (node.clone(), root(&parent, node).1))
            .filter(|((_, key), representative)| key != representative)
            .collect();
        Aliases { representatives }
    }

    /// Each row's user key (with its tenant) replaced by the person it stands for: the smallest
    /// key of its linked group.
    pub fn people<'t>(
        &self,
        rows: impl IntoIterator<Item = (&'t str, Option<String>)>,
    ) -> Vec<Option<String>> {
        rows.into_iter()
            .map(|(tenant, user)| {
                let user = user?;
                if self.representatives.is_empty() {
                    return Some(user);
                }
                let node = (tenant.to_owned(), user);
                Some(match self.representatives.get(&node) {
                    Some(representative) => representative.clone(),
                    None => node.1,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str, &str)]) -> Aliases {
        Aliases::from_links(
            pairs.iter().map(|(tenant, one, other)| {
                (tenant.to_string(), one.to_string(), other.to_string())
            }),
        )
    }

    fn people(aliases: &Aliases, rows: &[(&'static str, &str)]) -> Vec<String> {
        aliases
            .people(
                rows.iter()
                    .map(|(tenant, user)| (*tenant, Some(user.to_string()))),
            )
            .into_iter()
            .map(|person| person.expect("a user"))
            .collect()
    }

    #[test]
    fn linked_keys_share_the_smallest_key_of_their_group_in_any_order() {
        let rows = [
            ("t", "e/a"),
            ("t", "e/b"),
            ("t", "e/c"),
            ("t", "e/x"),
            ("t", "e/y"),
            ("t", "e/z"),
            ("u", "e/b"),
        ];
        let forward = links(&[
            ("t", "e/b", "e/c"),
            ("t", "e/c", "e/a"),
            ("t", "e/x", "e/y"),
        ]);
        let backward = links(&[
            ("t", "e/y", "e/x"),
            ("t", "e/a", "e/c"),
            ("t", "e/c", "e/b"),
        ]);
        for aliases in [forward, backward] {
            assert_eq!(
                people(&aliases, &rows),
                ["e/a", "e/a", "e/a", "e/x", "e/x", "e/z", "e/b"],
                "a chain, a pair, an unlinked key, and another tenant's key"
            );
        }
        assert_eq!(
            Aliases::default().people([("t", None), ("t", Some("e/a".to_owned()))]),
            [None, Some("e/a".to_owned())]
        );
    }

    #[test]
    fn a_person_is_one_user_whichever_of_their_ids_a_report_sees() {
        // `a` and `b` each aliased the earlier `c`: in a report that sees only `a` and `b` (the
        // month after `c` was last used) they are still one person, as in one that sees all three.
        let aliases = links(&[("t", "e/c", "e/a"), ("t", "e/c", "e/b")]);
        assert_eq!(
            people(&aliases, &[("t", "e/a"), ("t", "e/b")]),
            ["e/a", "e/a"]
        );
        assert_eq!(
            people(&aliases, &[("t", "e/a"), ("t", "e/b"), ("t", "e/c")]),
            ["e/a", "e/a", "e/a"]
        );
        // A self-alias and a cycle change nothing else.
        let aliases = links(&[
            ("t", "e/a", "e/a"),
            ("t", "e/x", "e/y"),
            ("t", "e/y", "e/x"),
        ]);
        assert_eq!(
            people(&aliases, &[("t", "e/a"), ("t", "e/y"), ("t", "e/x")]),
            ["e/a", "e/x", "e/x"]
        );
    }
}
