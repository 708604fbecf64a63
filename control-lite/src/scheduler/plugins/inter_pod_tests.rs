//! Table tests of pod affinity and anti-affinity over many fake nodes.

use super::*;
use serde_json::{json, Value};
use std::sync::Arc;

/// Nodes n0..n5 in zones a (n0-n2) and b (n3-n5).
fn nodes(pods: &[(usize, Value)]) -> Snapshot {
    let nodes = (0..6)
        .map(|i| {
            let zone = if i < 3 { "a" } else { "b" };
            let node = serde_json::from_value(json!({"metadata": {"name": format!("n{i}"),
                "labels": {"kubernetes.io/hostname": format!("n{i}"), "zone": zone}}}))
            .expect("node");
            let pods = pods.iter().filter(|(n, _)| *n == i).map(|(_, p)| Arc::new(pod(p.clone()))).collect();
            NodeInfo::new(Arc::new(node), pods)
        })
        .collect();
    let namespaces = [("default", json!({"team": "x"})), ("other", json!({"team": "y"}))]
        .into_iter()
        .map(|(n, l)| (n.to_string(), serde_json::from_value(l).expect("labels")))
        .collect();
    Snapshot { nodes, namespaces }
}

fn pod(v: Value) -> Pod {
    let mut base = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": []}});
    for (k, val) in v.as_object().cloned().unwrap_or_default() {
        match k.as_str() {
            "labels" => base["metadata"]["labels"] = val,
            "namespace" => base["metadata"]["namespace"] = val,
            _ => base["spec"][k] = val,
        }
    }
    serde_json::from_value(base).expect("pod")
}

fn term(key: &str, app: &str) -> Value {
    json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
}

fn required(kind: &str, terms: Value) -> Value {
    json!({kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}})
}

/// Names of the nodes that pass, or the set of reasons.
fn feasible(incoming: Value, placed: &[(usize, Value)]) -> (Vec<String>, Vec<String>) {
    let snapshot = nodes(placed);
    let p = pod(incoming);
    let state = prepare(&p, &snapshot);
    let mut ok = Vec::new();
    let mut reasons = Vec::new();
    for info in &snapshot.nodes {
        match filter(&state, info) {
            Ok(()) => ok.push(info.name().to_string()),
            Err(r) => reasons.extend(r.reasons),
        }
    }
    reasons.sort();
    reasons.dedup();
    (ok, reasons)
}

/// (name, incoming pod, placed pods by node index, nodes that pass).
type AffinityCase = (&'static str, Value, Vec<(usize, Value)>, Vec<String>);

#[test]
fn required_affinity_and_anti_affinity() {
    let web = json!({"labels": {"app": "web"}});
    let db = json!({"labels": {"app": "db"}});
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: Vec<AffinityCase> = vec![
        ("no terms: everywhere", json!({}), vec![(0, web.clone())], names(&["n0", "n1", "n2", "n3", "n4", "n5"])),
        (
            "affinity by host: only where a web pod runs",
            json!({"affinity": required("podAffinity", json!([term("kubernetes.io/hostname", "web")]))}),
            vec![(4, web.clone())],
            names(&["n4"]),
        ),
        (
            "affinity by zone: the whole zone",
            json!({"affinity": required("podAffinity", json!([term("zone", "web")]))}),
            vec![(4, web.clone())],
            names(&["n3", "n4", "n5"]),
        ),
        (
            "affinity with no match anywhere: nowhere",
            json!({"affinity": required("podAffinity", json!([term("zone", "web")]))}),
            vec![(4, db.clone())],
            vec![],
        ),
        (
            "first pod of a self-selecting group goes anywhere",
            json!({"labels": {"app": "web"}, "affinity": required("podAffinity", json!([term("zone", "web")]))}),
            vec![(4, db.clone())],
            names(&["n0", "n1", "n2", "n3", "n4", "n5"]),
        ),
        (
            "affinity in another namespace does not count",
            json!({"affinity": required("podAffinity", json!([term("zone", "web")]))}),
            vec![(4, json!({"labels": {"app": "web"}, "namespace": "other"}))],
            vec![],
        ),
        (
            "namespaces list reaches another namespace",
            json!({"affinity": required("podAffinity", json!([{"labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "zone", "namespaces": ["other"]}]))}),
            vec![(4, json!({"labels": {"app": "web"}, "namespace": "other"}))],
            names(&["n3", "n4", "n5"]),
        ),
        (
            "namespaceSelector by namespace labels",
            json!({"affinity": required("podAffinity", json!([{"labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "zone", "namespaceSelector": {"matchLabels": {"team": "y"}}}]))}),
            vec![(1, json!({"labels": {"app": "web"}, "namespace": "other"}))],
            names(&["n0", "n1", "n2"]),
        ),
        (
            "anti-affinity by host keeps off hosts with web",
            json!({"affinity": required("podAntiAffinity", json!([term("kubernetes.io/hostname", "web")]))}),
            vec![(0, web.clone()), (4, web.clone())],
            names(&["n1", "n2", "n3", "n5"]),
        ),
        (
            "anti-affinity by zone keeps off the zone",
            json!({"affinity": required("podAntiAffinity", json!([term("zone", "web")]))}),
            vec![(4, web.clone())],
            names(&["n0", "n1", "n2"]),
        ),
        (
            "an existing pod's anti-affinity keeps the pod off its zone",
            web.clone(),
            vec![(
                1,
                json!({"labels": {"app": "db"}, "affinity": required("podAntiAffinity", json!([term("zone", "web")]))}),
            )],
            names(&["n3", "n4", "n5"]),
        ),
        (
            "matchLabelKeys narrows the selector to the pod's own value",
            json!({"labels": {"app": "web", "rev": "2"}, "affinity": required("podAntiAffinity", json!([{
                "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
                "matchLabelKeys": ["rev"]}]))}),
            vec![
                (0, json!({"labels": {"app": "web", "rev": "1"}})),
                (1, json!({"labels": {"app": "web", "rev": "2"}})),
            ],
            names(&["n0", "n2", "n3", "n4", "n5"]),
        ),
        (
            "a term without labelSelector matches no pod",
            json!({"affinity": required("podAntiAffinity", json!([{"topologyKey": "zone"}]))}),
            vec![(0, web.clone())],
            names(&["n0", "n1", "n2", "n3", "n4", "n5"]),
        ),
    ];
    for (name, incoming, placed, want) in cases {
        assert_eq!(feasible(incoming, &placed).0, want, "{name}");
    }
}

#[test]
fn rejections_use_upstream_reasons_and_resolvability() {
    let web = json!({"labels": {"app": "web"}});
    let anti = json!({"affinity": required("podAntiAffinity", json!([term("zone", "web")]))});
    let (_, reasons) = feasible(anti, &[(0, web.clone()), (3, web.clone())]);
    assert_eq!(reasons, [ANTI_AFFINITY_REASON]);
    let (_, reasons) = feasible(json!({"affinity": required("podAffinity", json!([term("zone", "db")]))}), &[]);
    assert_eq!(reasons, [AFFINITY_REASON]);
    let snapshot = nodes(&[(
        0,
        json!({"labels": {"app": "db"}, "affinity": required("podAntiAffinity", json!([term("zone", "web")]))}),
    )]);
    let state = prepare(&pod(web), &snapshot);
    let err = filter(&state, &snapshot.nodes[1]).expect_err("zone a closed");
    assert_eq!(err, Rejection::resolvable(EXISTING_ANTI_AFFINITY_REASON));
}

#[test]
fn preferred_terms_score_domains_both_ways() {
    let preferred = |kind: &str, weight: i64| {
        json!({kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight,
            "podAffinityTerm": term("zone", "web")}]}})
    };
    let snapshot = nodes(&[(4, json!({"labels": {"app": "web"}}))]);
    let scores = |p: &Pod| {
        let state = prepare(p, &snapshot);
        snapshot.nodes.iter().map(|i| score(&state, i)).collect::<Vec<_>>()
    };
    assert_eq!(scores(&pod(json!({"affinity": preferred("podAffinity", 10)}))), [0, 0, 0, 10, 10, 10]);
    assert_eq!(scores(&pod(json!({"affinity": preferred("podAntiAffinity", 10)}))), [0, 0, 0, -10, -10, -10]);
    // Symmetry: a placed pod preferring web pods near it draws a web pod.
    let snapshot = nodes(&[(1, json!({"labels": {"app": "db"}, "affinity": preferred("podAffinity", 5)}))]);
    let state = prepare(&pod(json!({"labels": {"app": "web"}})), &snapshot);
    let got: Vec<i64> = snapshot.nodes.iter().map(|i| score(&state, i)).collect();
    assert_eq!(got, [5, 5, 5, 0, 0, 0]);
}
