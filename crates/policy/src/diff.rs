//! `veil allowlist diff`: what a new policy lets out that the old one did not.

use std::collections::BTreeMap;
use std::fmt;

use veil_sanitized::{MessageKind, Tier};

use super::{Allowlist, FieldAction, Scope};

/// One thing the new allowlist lets out that the old one did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    /// The messages concerned: `identify`, `track "Document Opened"`, ...
    pub messages: String,
    /// The field, or `None` when the event or page name itself is newly let out.
    pub path: Option<String>,
    /// What now leaves: `keep string for baseline tenants`.
    pub now: String,
    /// What left before, if anything did.
    pub before: Option<String>,
}

impl fmt::Display for Widening {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "+ {}", self.messages)?;
        if let Some(path) = &self.path {
            write!(formatter, ": {path}")?;
        }
        write!(formatter, " ({})", self.now)?;
        if let Some(before) = &self.before {
            write!(formatter, ", was ({before})")?;
        }
        Ok(())
    }
}

/// What leaves for one (messages, field) pair: the action and the least tier that gets it.
type Grants = BTreeMap<(String, Option<String>), (Option<FieldAction>, Tier)>;

fn describe(action: Option<&FieldAction>, tier: Tier) -> String {
    let tenants = match tier {
        Tier::Baseline => "all tenants",
        Tier::Enhanced => "enhanced tenants",
    };
    match action {
        Some(action) => format!("{} for {tenants}", action.describe()),
        None => format!("accepted for {tenants}"),
    }
}

fn grants(allowlist: &Allowlist) -> Grants {
    let mut grants = Grants::new();
    let mut scopes: Vec<(String, Vec<Scope>, Tier)> = Vec::new();
    for kind in &allowlist.kinds {
        if *kind != MessageKind::Track {
            scopes.push((
                kind.as_str().to_owned(),
                vec![Scope::Common, Scope::Kind(*kind)],
                Tier::Baseline,
            ));
        }
    }
    for name in &allowlist.names {
        let messages = format!("{} {:?}", name.kind.as_str(), name.name);
        if name.kind == MessageKind::Track {
            let applicable = vec![
                Scope::Common,
                Scope::Kind(MessageKind::Track),
                Scope::Event(name.name.clone()),
            ];
            scopes.push((messages, applicable, name.tier));
        } else {
            grants.insert((messages, None), (None, name.tier));
        }
    }
    for (messages, applicable, message_tier) in scopes {
        grants.insert((messages.clone(), None), (None, message_tier));
        for field in allowlist
            .fields
            .iter()
            .filter(|field| applicable.contains(&field.scope))
        {
            let tier = if message_tier == Tier::Enhanced {
                Tier::Enhanced
            } else {
                field.tier
            };
            grants.insert(
                (messages.clone(), Some(field.path.clone())),
                (Some(field.action.clone()), tier),
            );
        }
    }
    grants
}

/// Everything `new` lets out that `old` did not: new messages and fields, fields moved from
/// pseudonymized to kept or to another type, ranges widened or removed, and fields opened from
/// enhanced to all tenants.
pub fn widenings(old: &Allowlist, new: &Allowlist) -> Vec<Widening> {
    let old_grants = grants(old);
    let mut found = Vec::new();
    for ((messages, path), (action, tier)) in grants(new) {
        let before = old_grants.get(&(messages.clone(), path.clone()));
        let widened = match before {
            None => true,
            Some((old_action, old_tier)) => {
                let more = match (&action, old_action) {
                    (Some(action), Some(old_action)) => action.lets_out_more_than(old_action),
                    (action, old_action) => action != old_action,
                };
                more || (*old_tier == Tier::Enhanced && tier == Tier::Baseline)
            }
        };
        if widened {
            found.push(Widening {
                messages,
                path,
                now: describe(action.as_ref(), tier),
                before: before
                    .map(|(old_action, old_tier)| describe(old_action.as_ref(), *old_tier)),
            });
        }
    }
    found
}
