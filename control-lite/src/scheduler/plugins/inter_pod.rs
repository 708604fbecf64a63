//! InterPodAffinity: `affinity.podAffinity` and `podAntiAffinity`, required
//! (filter) and preferred (score), with `topologyKey`, `namespaces`,
//! `namespaceSelector`, `matchLabelKeys` and `mismatchLabelKeys`, as
//! upstream's plugin; existing pods' required anti-affinity is honoured too
//! (symmetry), as are their preferred terms in the score.
//!
//! Owns: `prepare` (one pass over every placed pod, counting matches per
//! topology domain) and the filter/score that read those counts. Pure.

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::{HashMap, HashSet};

use super::{pod_labels, pod_namespace, NodeInfo, Rejection, Snapshot};
use crate::controllers::selector;

/// The pod's required affinity has no matching pod in the node's domain.
pub const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
/// A pod matching the pod's required anti-affinity is in the node's domain.
pub const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
/// A placed pod's required anti-affinity forbids the pod in the node's domain.
pub const EXISTING_ANTI_AFFINITY_REASON: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// A topology domain: (topology key, value).
type Domain = (String, String);

/// One affinity term, resolved against the pod that carries it.
struct Term {
    /// `None`: a term without `labelSelector` matches no pod.
    selector: Option<LabelSelector>,
    namespaces: HashSet<String>,
    /// `Some`: namespaces whose labels match are included too (`{}`: all).
    namespace_selector: Option<LabelSelector>,
    topology_key: String,
}

impl Term {
    fn new(term: &PodAffinityTerm, owner: &Pod) -> Term {
        let labels = pod_labels(owner);
        let selector = term.label_selector.clone().map(|mut s| {
            let extra = |keys: &Option<Vec<String>>, operator: &str| {
                keys.iter()
                    .flatten()
                    .filter_map(|k| labels.get(k).map(|v| (k, v)))
                    .map(|(k, v)| LabelSelectorRequirement {
                        key: k.clone(),
                        operator: operator.to_string(),
                        values: Some(vec![v.clone()]),
                    })
                    .collect::<Vec<_>>()
            };
            let mut more = extra(&term.match_label_keys, "In");
            more.extend(extra(&term.mismatch_label_keys, "NotIn"));
            if !more.is_empty() {
                s.match_expressions.get_or_insert_with(Vec::new).extend(more);
            }
            s
        });
        let mut namespaces: HashSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(pod_namespace(owner).to_string());
        }
        Term {
            selector,
            namespaces,
            namespace_selector: term.namespace_selector.clone(),
            topology_key: term.topology_key.clone(),
        }
    }

    fn matches(&self, pod: &Pod, snapshot: &Snapshot) -> bool {
        let Some(selector) = &self.selector else { return false };
        let ns = pod_namespace(pod);
        let ns_ok = self.namespaces.contains(ns)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                selector::is_empty(s) || snapshot.namespaces.get(ns).is_some_and(|labels| selector::matches(s, labels))
            });
        ns_ok && selector::matches(selector, pod_labels(pod))
    }

    fn domain_of(&self, info: &NodeInfo) -> Option<Domain> {
        info.label(&self.topology_key).map(|v| (self.topology_key.clone(), v.to_string()))
    }
}

/// The pod's own required and preferred terms.
#[derive(Default)]
struct Terms {
    affinity: Vec<Term>,
    anti: Vec<Term>,
    preferred: Vec<(i64, Term)>,
}

fn terms_of(pod: &Pod) -> Terms {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else { return Terms::default() };
    let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<Term> {
        terms.into_iter().flatten().map(|t| Term::new(t, pod)).collect()
    };
    let weighted = |terms: Option<&Vec<WeightedPodAffinityTerm>>, sign: i64| -> Vec<(i64, Term)> {
        terms
            .into_iter()
            .flatten()
            .map(|w| (sign.saturating_mul(i64::from(w.weight)), Term::new(&w.pod_affinity_term, pod)))
            .collect()
    };
    let pa = affinity.pod_affinity.as_ref();
    let anti = affinity.pod_anti_affinity.as_ref();
    let mut preferred = weighted(pa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()), 1);
    preferred.extend(weighted(anti.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()), -1));
    Terms {
        affinity: required(pa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
        anti: required(anti.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
        preferred,
    }
}

/// True if `pod` carries pod affinity or anti-affinity terms.
pub fn has_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

/// What the filter and score need, computed once per pod.
#[derive(Default)]
pub struct State {
    affinity: Vec<Term>,
    anti: Vec<Term>,
    /// Per required affinity term: matching placed pods per domain.
    affinity_counts: Vec<HashMap<Domain, usize>>,
    /// Per required anti-affinity term: matching placed pods per domain.
    anti_counts: Vec<HashMap<Domain, usize>>,
    /// Domains a placed pod's required anti-affinity closes to this pod.
    existing_anti: HashSet<Domain>,
    /// Weight per domain from preferred terms (both directions).
    preferred: HashMap<Domain, i64>,
    /// The pod matches all of its own required affinity terms.
    self_affinity: bool,
}

/// Counts, over every placed pod, what the pod's terms match and what the
/// placed pods' terms say about the pod.
pub fn prepare(pod: &Pod, snapshot: &Snapshot) -> State {
    let own = terms_of(pod);
    let mut state = State {
        affinity_counts: vec![HashMap::new(); own.affinity.len()],
        anti_counts: vec![HashMap::new(); own.anti.len()],
        self_affinity: own.affinity.iter().all(|t| t.matches(pod, snapshot)),
        ..State::default()
    };
    let uid = pod.metadata.uid.as_deref();
    // Without terms of its own, only placed pods with terms can matter.
    let own_terms = !(own.affinity.is_empty() && own.anti.is_empty() && own.preferred.is_empty());
    for info in &snapshot.nodes {
        let candidates: Box<dyn Iterator<Item = &std::sync::Arc<Pod>>> =
            if own_terms { Box::new(info.live_pods()) } else { Box::new(info.live_pods_with_affinity()) };
        for other in candidates.filter(|o| uid.is_none() || o.metadata.uid.as_deref() != uid) {
            let count = |terms: &[Term], counts: &mut [HashMap<Domain, usize>]| {
                for (term, counts) in terms.iter().zip(counts.iter_mut()) {
                    if let (true, Some(domain)) = (term.matches(other, snapshot), term.domain_of(info)) {
                        *counts.entry(domain).or_default() += 1;
                    }
                }
            };
            count(&own.affinity, &mut state.affinity_counts);
            count(&own.anti, &mut state.anti_counts);
            for (weight, term) in &own.preferred {
                if let (true, Some(domain)) = (term.matches(other, snapshot), term.domain_of(info)) {
                    let entry = state.preferred.entry(domain).or_default();
                    *entry = entry.saturating_add(*weight);
                }
            }
            if !has_affinity(other) {
                continue;
            }
            let theirs = terms_of(other);
            for term in theirs.anti.iter().filter(|t| t.matches(pod, snapshot)) {
                state.existing_anti.extend(term.domain_of(info));
            }
            for (weight, term) in theirs.preferred.iter().filter(|(_, t)| t.matches(pod, snapshot)) {
                if let Some(domain) = term.domain_of(info) {
                    let entry = state.preferred.entry(domain).or_default();
                    *entry = entry.saturating_add(*weight);
                }
            }
        }
    }
    state.affinity = own.affinity;
    state.anti = own.anti;
    state
}

/// The filter: existing pods' anti-affinity, then the pod's anti-affinity
/// (both resolvable by evicting pods), then its affinity (not resolvable).
pub fn filter(state: &State, info: &NodeInfo) -> Result<(), Rejection> {
    let labels = info.node().metadata.labels.iter().flatten();
    let closed = !state.existing_anti.is_empty()
        && labels.map(|(k, v)| (k.clone(), v.clone())).any(|d| state.existing_anti.contains(&d));
    if closed {
        return Err(Rejection::resolvable(EXISTING_ANTI_AFFINITY_REASON));
    }
    for (term, counts) in state.anti.iter().zip(&state.anti_counts) {
        if term.domain_of(info).is_some_and(|d| counts.get(&d).copied().unwrap_or(0) > 0) {
            return Err(Rejection::resolvable(ANTI_AFFINITY_REASON));
        }
    }
    let satisfied = state
        .affinity
        .iter()
        .zip(&state.affinity_counts)
        .all(|(term, counts)| term.domain_of(info).is_some_and(|d| counts.get(&d).copied().unwrap_or(0) > 0));
    // The first pod of a group that selects itself may go anywhere its
    // terms' topology keys exist (upstream's special case).
    let first_of_group = state.affinity_counts.iter().all(HashMap::is_empty)
        && state.self_affinity
        && state.affinity.iter().all(|t| t.domain_of(info).is_some());
    if satisfied || first_of_group {
        Ok(())
    } else {
        Err(Rejection::unresolvable(AFFINITY_REASON))
    }
}

/// Raw score: the preferred weights of the node's domains (may be negative;
/// normalised min-max).
pub fn score(state: &State, info: &NodeInfo) -> i64 {
    state
        .preferred
        .iter()
        .filter(|((key, value), _)| info.label(key) == Some(value.as_str()))
        .fold(0i64, |sum, (_, w)| sum.saturating_add(*w))
}

#[cfg(test)]
#[path = "inter_pod_tests.rs"]
mod tests;
