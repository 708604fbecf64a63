//! Escalation prevention's pure core (upstream's `validation.Covers`):
//! whether the rules a user holds cover every permission of rules they ask
//! to grant, and which are missing, written as upstream's refusal lists them.
//!
//! Requested rules are broken down into one-verb, one-group, one-resource
//! (one-name, one-URL) rules, each of which must be covered by a single held
//! rule. The breakdown is the product of a rule's lists, so it is capped at
//! [`MAX_SUBRULES`]: a grant larger than that is refused unchecked.

use super::PolicyRule;

const ALL: &str = "*";

/// The most broken-down rules one check examines.
pub const MAX_SUBRULES: usize = 100_000;

/// Why requested rules are not covered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCovered {
    /// These (broken-down, then compacted) rules are held by no rule.
    #[error("{} permissions not held", .0.len())]
    Missing(Vec<PolicyRule>),
    /// The requested rules break down into more than [`MAX_SUBRULES`] rules.
    #[error("the rules combine into more than {MAX_SUBRULES} permissions")]
    TooLarge,
}

fn one(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

/// One rule as upstream's `BreakdownRule` splits it, appended to `out`
/// (`Err` once `out` would exceed [`MAX_SUBRULES`]).
fn breakdown(rule: &PolicyRule, out: &mut Vec<PolicyRule>) -> Result<(), NotCovered> {
    let names = rule.resource_names.len().max(1);
    let resource_count = rule
        .api_groups
        .len()
        .checked_mul(rule.resources.len())
        .and_then(|n| n.checked_mul(rule.verbs.len()))
        .and_then(|n| n.checked_mul(names));
    let url_count = rule.non_resource_urls.len().checked_mul(rule.verbs.len());
    let total =
        resource_count.zip(url_count).and_then(|(a, b)| a.checked_add(b)).and_then(|n| n.checked_add(out.len()));
    if total.is_none_or(|n| n > MAX_SUBRULES) {
        return Err(NotCovered::TooLarge);
    }
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    out.extend(
                        rule.resource_names.iter().map(|n| PolicyRule { resource_names: one(n), ..base.clone() }),
                    );
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule { verbs: one(verb), non_resource_urls: one(url), ..Default::default() });
        }
    }
    Ok(())
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == want)
}

fn has_all(list: &[String], wants: &[String]) -> bool {
    wants.iter().all(|w| has(list, w))
}

/// Upstream's `resourceCoversAll`: `*`, exact, or `*/sub` for `res/sub`.
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) {
        return true;
    }
    wanted
        .iter()
        .all(|path| has(owner, path) || path.split_once('/').is_some_and(|(_, sub)| has(owner, &format!("*/{sub}"))))
}

/// Upstream's `nonResourceURLsCoversAll`: `*`, exact, or a held `prefix*`.
fn urls_cover(owner: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|url| {
        owner.iter().any(|held| {
            held == ALL || held == url || held.strip_suffix('*').is_some_and(|prefix| url.starts_with(prefix))
        })
    })
}

/// Whether one held rule covers one (broken-down) rule (upstream's `ruleCovers`).
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    // A named held rule covers only named requests of its names.
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs
        && groups
        && resources_cover(&owner.resources, &sub.resources)
        && urls_cover(&owner.non_resource_urls, &sub.non_resource_urls)
        && names
}

/// `Ok` if `owner` covers every permission of `requested`; else what is missing.
pub fn covers(owner: &[PolicyRule], requested: &[PolicyRule]) -> Result<(), NotCovered> {
    let mut subrules = Vec::new();
    for rule in requested {
        breakdown(rule, &mut subrules)?;
    }
    let missing: Vec<PolicyRule> =
        subrules.into_iter().filter(|sub| !owner.iter().any(|held| rule_covers(held, sub))).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NotCovered::Missing(compact(missing)))
    }
}

/// Upstream's `CompactRules`: broken-down rules of one group and one
/// resource (no names, no URLs) merged into one rule with all their verbs.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    let mut merged: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for rule in rules {
        let simple = rule.resource_names.is_empty()
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !simple {
            out.push(rule);
            continue;
        }
        let key = (rule.api_groups[0].clone(), rule.resources[0].clone());
        match merged.get(&key).and_then(|&i| out.get_mut(i)) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                merged.insert(key, out.len());
                out.push(rule);
            }
        }
    }
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn quoted_list(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// Upstream's `CompactString` of a rule: `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
pub fn compact_string(rule: &PolicyRule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(field, list)| format!("{field}:{}", quoted_list(list)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Upstream's refusal (after `<resource> "<name>" is forbidden: `): the user,
/// its groups, and the missing rules as a sorted set, one per line.
pub fn escalation_message(user: &str, groups: &[String], missing: &NotCovered) -> String {
    let lines = match missing {
        NotCovered::Missing(rules) => {
            let set: std::collections::BTreeSet<String> = rules.iter().map(compact_string).collect();
            set.into_iter().collect::<Vec<_>>().join("\n")
        }
        NotCovered::TooLarge => missing.to_string(),
    };
    format!(
        "user {user:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{lines}",
        quoted_list(groups)
    )
}

#[cfg(test)]
#[path = "covers_tests.rs"]
mod tests;
