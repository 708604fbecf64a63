//! Table tests of field management decisions.

use serde_json::{json, Value};

use super::*;

const NOW: &str = "2026-01-01T00:00:00Z";

fn writer(manager: &str) -> Writer<'_> {
    Writer { manager, subresource: "", api_version: "apps/v1", part: Part::MainWithoutStatus, now: NOW }
}

fn deployment(replicas: i64, env: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1", "env": env}]}}}})
}

fn entries(obj: &Value) -> Vec<(String, String, Value)> {
    managed::live_entries(obj)
        .into_iter()
        .map(|e| (e.owner.manager.clone(), e.owner.operation.as_str().to_string(), e.set.to_fields_v1()))
        .collect()
}

#[test]
fn field_set_of_a_deployment_is_upstreams_fields_v1() {
    let config = deployment(2, json!([{"name": "A", "value": "1"}]));
    let set =
        fieldset::of_config(merge::tracked(&config, Part::MainWithoutStatus).as_object().expect("obj")).expect("set");
    assert_eq!(
        set.to_fields_v1(),
        json!({"f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {},
                "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {
                        "k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                        "f:image": {}, "f:name": {}}}}}}})
    );
    let paths: Vec<String> = set.paths().iter().map(ToString::to_string).collect();
    assert!(paths.contains(&".spec.template.spec.containers[name=\"app\"].env[name=\"A\"].value".to_string()));
    // Round trip through the stored form; set lists use values.
    assert_eq!(Set::from_fields_v1(&set.to_fields_v1()).expect("parse"), set);
    let ports = json!({"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}]});
    let ports = fieldset::of_config(ports.as_object().expect("o")).expect("ports");
    let keys: Vec<String> = ports.paths().iter().map(ToString::to_string).filter(|p| p.ends_with(']')).collect();
    assert_eq!(
        keys,
        vec![
            ".containers[name=\"a\"]",
            ".containers[name=\"a\"].ports[containerPort=53,protocol=\"UDP\"]",
            ".containers[name=\"a\"].ports[containerPort=80,protocol=\"TCP\"]"
        ]
    );
    let fin = fieldset::of_config(json!({"metadata": {"finalizers": ["a/b"]}}).as_object().expect("o")).expect("s");
    assert_eq!(fin.to_fields_v1(), json!({"f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}}}));
}

#[test]
fn hostile_configs_are_bounded() {
    let mut deep = json!("x");
    for _ in 0..200 {
        deep = json!({"a": deep});
    }
    assert!(matches!(apply(None, &json!({"spec": deep}), &writer("m"), false), Err(Error::TooDeep { .. })));
    let wide: serde_json::Map<String, Value> = (0..300_000).map(|i| (format!("k{i}"), json!(1))).collect();
    let err = apply(None, &json!({"data": wide}), &writer("m"), false).expect_err("too many");
    assert!(matches!(err, Error::TooManyFields { .. }), "{err}");
    let mut nested = json!({});
    for _ in 0..100 {
        nested = json!({"f:x": nested});
    }
    assert!(Set::from_fields_v1(&nested).is_err());
}

/// One step of a scenario: who writes what, and what must follow.
struct Step {
    manager: &'static str,
    apply: bool,
    force: bool,
    object: Value,
    /// `Err(paths)`: the conflicts expected.
    expect: Result<(), Vec<&'static str>>,
}

fn run(steps: Vec<Step>) -> Value {
    let mut live: Option<Value> = None;
    for (i, s) in steps.into_iter().enumerate() {
        let w = writer(s.manager);
        let out = if s.apply {
            apply(live.as_ref(), &s.object, &w, s.force)
        } else {
            let mut next = s.object.clone();
            record_update(live.as_ref(), &mut next, &w).map(|()| next)
        };
        match (out, s.expect) {
            (Ok(next), Ok(())) => live = Some(next),
            (Err(Error::Conflicts(c)), Err(paths)) => {
                let got: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
                assert_eq!(got, paths, "step {i}");
            }
            (out, expect) => panic!("step {i}: got {out:?}, expected {expect:?}"),
        }
    }
    live.expect("an object")
}

fn step(manager: &'static str, apply: bool, object: Value) -> Step {
    Step { manager, apply, force: false, object, expect: Ok(()) }
}

#[test]
fn apply_decisions() {
    let env_ab = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    let env_a = json!([{"name": "A", "value": "1"}]);
    // Dropping an env var from the applied configuration removes it.
    let out = run(vec![
        step("kubectl", true, deployment(1, env_ab.clone())),
        step("kubectl", true, deployment(1, env_a.clone())),
    ]);
    assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["env"], env_a);
    assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
    // A conflict between two appliers on a different value; force takes it.
    let out = run(vec![
        step("a", true, deployment(1, env_a.clone())),
        Step { expect: Err(vec![".spec.replicas"]), ..step("b", true, json!({"spec": {"replicas": 3}})) },
        Step { force: true, ..step("b", true, json!({"spec": {"replicas": 3}})) },
    ]);
    assert_eq!(out["spec"]["replicas"], 3);
    let owners = entries(&out);
    assert!(owners[0].2.pointer("/f:spec/f:replicas").is_none(), "{owners:?}");
    assert_eq!(owners[1].2, json!({"f:spec": {"f:replicas": {}}}));
    // The same value shares the field; then the first dropping it keeps it (still owned).
    let out = run(vec![
        step("a", true, deployment(1, env_a.clone())),
        step("b", true, json!({"spec": {"replicas": 1}})),
        step("a", true, json!({"metadata": {"labels": {"app": "web"}}})),
    ]);
    assert_eq!(out["spec"]["replicas"], 1);
    assert!(out["spec"].get("template").is_none(), "a's other fields went: {out}");
    // An Update (kubectl scale) owns what it changed: a later apply of another value conflicts.
    let mut scaled = deployment(1, env_a.clone());
    scaled["spec"]["replicas"] = json!(4);
    let out = run(vec![
        step("kubectl", true, deployment(1, env_a.clone())),
        step("kubectl-scale", false, scaled),
        Step { expect: Err(vec![".spec.replicas"]), ..step("kubectl", true, deployment(2, env_a.clone())) },
        step("kubectl", true, deployment(4, env_a.clone())),
    ]);
    let owners = entries(&out);
    assert_eq!(owners[1].0, "kubectl-scale");
    assert_eq!(owners[1].2, json!({"f:spec": {"f:replicas": {}}}));
    // Disjoint fields of two appliers coexist.
    let out = run(vec![
        step("a", true, json!({"metadata": {"name": "c"}, "data": {"x": "1"}})),
        step("b", true, json!({"metadata": {"name": "c"}, "data": {"y": "2"}})),
        step("a", true, json!({"metadata": {"name": "c"}, "data": {"x": "3"}})),
    ]);
    assert_eq!(out["data"], json!({"x": "3", "y": "2"}));
}

#[test]
fn conflict_messages_are_upstreams() {
    let owner = Owner { manager: "kubectl-scale".into(), operation: Operation::Update, subresource: "scale".into() };
    let one = Conflict { owner: owner.describe("apps/v1"), path: ".spec.replicas".into() };
    assert_eq!(one.message(), "conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1");
    assert_eq!(
        conflict_message(std::slice::from_ref(&one)),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    let apply_owner = Owner { manager: "a".into(), operation: Operation::Apply, subresource: String::new() };
    let two = Conflict { owner: apply_owner.describe("v1"), path: ".data.x".into() };
    assert_eq!(
        conflict_message(&[one, two]),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.x\nconflicts with \"kubectl-scale\" with subresource \"scale\" using apps/v1:\n- .spec.replicas"
    );
}

#[test]
fn updates_take_changed_fields_and_managed_fields_can_be_reset() {
    let created = json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1"}});
    let out = run(vec![
        step("kubectl-create", false, created.clone()),
        step("kubectl-edit", false, json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "2"}})),
    ]);
    let owners = entries(&out);
    assert_eq!(
        owners[0],
        (
            "kubectl-create".into(),
            "Update".into(),
            json!({"f:data": {}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        )
    );
    assert_eq!(owners[1].2, json!({"f:data": {"f:x": {}}}));
    // `[]` keeps the live entries; `[{}]` clears them.
    let mut keep = out.clone();
    keep["metadata"]["managedFields"] = json!([]);
    record_update(Some(&out), &mut keep, &writer("x")).expect("keep");
    assert_eq!(entries(&keep), owners);
    let mut reset = out.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&out), &mut reset, &writer("x")).expect("reset");
    assert!(reset["metadata"].get("managedFields").is_none());
    // Reset with a change: only this writer's change is left.
    let mut reset = out.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    reset["data"]["x"] = json!("3");
    record_update(Some(&out), &mut reset, &writer("x")).expect("reset");
    assert_eq!(entries(&reset), vec![("x".into(), "Update".into(), json!({"f:data": {"f:x": {}}}))]);
}

#[test]
fn client_side_apply_upgrades_without_conflicts() {
    let first = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
    let mut csa = first.clone();
    csa["metadata"]["annotations"] = json!({LAST_APPLIED: first.to_string()});
    // Without the annotation the same apply conflicts with the client-side writer.
    let mut plain = first.clone();
    plain["data"]["x"] = json!("1");
    run(vec![
        step("kubectl-client-side-apply", false, plain),
        Step {
            expect: Err(vec![".data.x"]),
            ..step("kubectl", true, json!({"metadata": {"name": "c"}, "data": {"x": "9"}}))
        },
    ]);
    // With it, the applier owns last-applied's fields: changes go through and
    // a field dropped from the configuration goes.
    let out = run(vec![
        step("kubectl-client-side-apply", false, csa),
        step("kubectl", true, json!({"metadata": {"name": "c"}, "data": {"x": "9"}})),
    ]);
    assert_eq!(out["data"], json!({"x": "9"}));
    let last: Value =
        serde_json::from_str(out["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap_or_default()).expect("json");
    assert_eq!(last, json!({"metadata": {"name": "c"}, "data": {"x": "9"}}), "refreshed for client-side apply");
    let owners = entries(&out);
    assert!(owners.iter().any(|o| o.0 == "kubectl" && o.1 == "Apply"), "{owners:?}");
}

#[test]
fn unrecorded_writes_keep_the_live_entries() {
    let live = run(vec![step("a", true, json!({"metadata": {"name": "c"}, "data": {"x": "1"}}))]);
    for (sent, kept) in [(None, true), (Some(json!([])), true), (Some(json!([{}])), false)] {
        let mut next = json!({"metadata": {"name": "c"}, "data": {"x": "2"}});
        if let Some(sent) = sent {
            next["metadata"]["managedFields"] = sent;
        }
        keep_entries(Some(&live), &mut next);
        assert_eq!(next["metadata"].get("managedFields") == live["metadata"].get("managedFields"), kept);
    }
}

#[test]
fn ports_are_keyed_by_number_and_protocol() {
    let pod = |udp_name: &str| {
        json!({"metadata": {"name": "dns"}, "spec": {"containers": [{"name": "dns", "image": "coredns",
            "ports": [{"containerPort": 53, "name": "tcp"}, {"containerPort": 53, "protocol": "UDP", "name": udp_name}]}]}})
    };
    let out = run(vec![step("a", true, pod("udp")), step("a", true, pod("dns"))]);
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 53, "name": "tcp"}, {"containerPort": 53, "protocol": "UDP", "name": "dns"}])
    );
    // A dropped port goes; the other stays.
    let mut one = pod("dns");
    one["spec"]["containers"][0]["ports"] = json!([{"containerPort": 53, "protocol": "UDP", "name": "dns"}]);
    let out = run(vec![step("a", true, pod("dns")), step("a", true, one)]);
    assert_eq!(out["spec"]["containers"][0]["ports"], json!([{"containerPort": 53, "protocol": "UDP", "name": "dns"}]));
}

#[test]
fn a_repeated_apply_changes_nothing() {
    let config = deployment(1, json!([{"name": "A", "value": "1"}]));
    let first = run(vec![step("a", true, config.clone())]);
    let later = Writer { now: "2030-01-01T00:00:00Z", ..writer("a") };
    let again = apply(Some(&first), &config, &later, false).expect("apply");
    assert_eq!(again, first, "same object and entries (time included)");
}

#[test]
fn an_entry_without_time_or_api_version_stays_without_them() {
    let sent = json!([{"manager": "tool", "operation": "Update", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}}]);
    let mut obj = deployment(1, json!([]));
    obj["metadata"]["managedFields"] = sent.clone();
    let managed::Recorded::Entries(read) = managed::read(&obj).expect("read") else { panic!("entries") };
    managed::write(&mut obj, &read);
    assert_eq!(obj["metadata"]["managedFields"], sent, "round trip");
    // A write by another manager keeps the entry without a time, and the
    // object still reads as a typed Deployment (`"time": ""` would not).
    let live = obj.clone();
    let mut next = deployment(3, json!([]));
    next["metadata"]["managedFields"] = sent;
    record_update(Some(&live), &mut next, &writer("kubectl")).expect("record");
    let list = next["metadata"]["managedFields"].as_array().expect("entries");
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[0].get("time").is_none() && list[0].get("apiVersion").is_none(), "{list:?}");
    assert_eq!(list[1]["time"], NOW);
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(next).expect("typed");
    assert_eq!(typed.metadata.managed_fields.map(|m| m.len()), Some(2));
}

/// What the HTTP layer does: the configuration merged into the live object,
/// normalised as stored objects are, projected back onto the configuration.
fn normalized(live: Option<&Value>, config: &Value) -> Value {
    let merged = merged_config(live, config).expect("merge");
    let typed =
        crate::apiserver::schema::normalize(crate::apiserver::registry::Kind::Deployment, &merged).expect("typed");
    normalized_config(config, typed).expect("project")
}

#[test]
fn reapplying_numeric_quantities_and_unknown_fields_is_a_no_op_and_shares_equal_values() {
    let mut config = deployment(1, json!([]));
    let container = &mut config["spec"]["template"]["spec"]["containers"][0];
    container["resources"] = json!({"limits": {"cpu": 1, "memory": 33554432}});
    container["ports"] = json!([{"containerPort": 80}]);
    config["spec"]["bogus"] = json!(true);
    let created = apply(None, &normalized(None, &config), &writer("kubectl"), false).expect("create");
    let live =
        crate::apiserver::schema::normalize(crate::apiserver::registry::Kind::Deployment, &created).expect("typed");
    assert_eq!(live.pointer("/spec/template/spec/containers/0/resources/limits/cpu"), Some(&json!("1")));
    assert!(live.pointer("/spec/bogus").is_none());
    // Raw, the numbers and the unknown field look changed.
    let raw = apply(Some(&live), &config, &writer("kubectl"), false).expect("raw");
    assert_ne!(raw, live, "the raw configuration differs from the stored object");
    let again = apply(Some(&live), &normalized(Some(&live), &config), &writer("kubectl"), false).expect("again");
    assert_eq!(again, live, "a re-apply stores nothing");
    // Another manager applying the same numeric value shares it.
    let limits = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": 1}}}]}}}});
    let shared = apply(Some(&live), &normalized(Some(&live), &limits), &writer("other"), false).expect("no conflict");
    let owners: Vec<String> = entries(&shared)
        .into_iter()
        .filter(|(_, _, f)| {
            f.pointer("/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"app\"}/f:resources/f:limits/f:cpu")
                .is_some()
        })
        .map(|(m, _, _)| m)
        .collect();
    assert_eq!(owners, ["kubectl", "other"]);
}
