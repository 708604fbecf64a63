//! Table tests: each check's reason text, the level evaluation and the
//! label parsing.

use serde_json::{json, Value};

use super::admission::{admit, existing_pod_warnings, validate_namespace};
use super::*;
use crate::apiserver::registry::{by_kind, Kind};
use crate::apiserver::status::ApiError;

/// A pod with one container `c` whose securityContext is `sc`, merged with
/// the pod-level `spec` fields.
fn pod(spec: Value, sc: Value) -> Value {
    let mut s = json!({"containers": [{"name": "c", "image": "busybox", "securityContext": sc}]});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    json!({"metadata": {"name": "p"}, "spec": s})
}

/// A container securityContext that satisfies `restricted`.
fn restricted_sc() -> Value {
    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
}

/// A pod spec (pod level) that satisfies `restricted`.
fn restricted_pod_fields() -> Value {
    json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}})
}

fn reasons(level: Level, obj: &Value) -> Vec<String> {
    evaluate(level, &PodView::of(obj).expect("spec")).iter().map(ToString::to_string).collect()
}

#[test]
fn baseline_checks_report_upstream_reasons() {
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        ("privileged", json!({}), json!({"privileged": true}),
         "privileged (container \"c\" must not set securityContext.privileged=true)"),
        ("host namespaces", json!({"hostNetwork": true, "hostPID": true}), json!({}),
         "host namespaces (hostNetwork=true, hostPID=true)"),
        ("hostPath", json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), json!({}),
         "hostPath volumes (volume \"h\")"),
        ("capabilities", json!({}), json!({"capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}),
         "non-default capabilities (container \"c\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)"),
        ("hostProcess", json!({}), json!({"windowsOptions": {"hostProcess": true}}),
         "hostProcess (container \"c\" must not set securityContext.windowsOptions.hostProcess=true)"),
        ("seccomp", json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}), json!({}),
         "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"),
        ("selinux", json!({}), json!({"seLinuxOptions": {"type": "spc_t", "user": "root"}}),
         "seLinuxOptions (container \"c\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user \"root\")"),
        ("procMount", json!({}), json!({"procMount": "Unmasked"}),
         "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")"),
        ("sysctls", json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                                        {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}), json!({}),
         "forbidden sysctls (kernel.msgmax)"),
        ("apparmor", json!({}), json!({"appArmorProfile": {"type": "Unconfined"}}),
         "forbidden AppArmor profile (container \"c\" must not set securityContext.appArmorProfile.type to \"Unconfined\")"),
    ];
    for (name, spec, sc, want) in cases {
        assert_eq!(reasons(Level::Baseline, &pod(spec, sc)), vec![want.to_string()], "{name}");
    }
}

#[test]
fn host_ports_and_apparmor_annotation() {
    let mut p = pod(json!({}), json!({}));
    p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
    assert_eq!(reasons(Level::Baseline, &p), vec!["hostPort (container \"c\" uses hostPort 8080)"]);
    let mut p = pod(json!({}), json!({}));
    p["metadata"]["annotations"] = json!({"container.apparmor.security.beta.kubernetes.io/c": "unconfined"});
    assert_eq!(
        reasons(Level::Baseline, &p),
        vec!["forbidden AppArmor profile (annotation \"container.apparmor.security.beta.kubernetes.io/c\"=\"unconfined\")"]
    );
}

#[test]
fn restricted_checks_report_upstream_reasons() {
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        ("escalation", restricted_pod_fields(), json!({"capabilities": {"drop": ["ALL"]}}),
         "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"),
        ("drop", restricted_pod_fields(), json!({"allowPrivilegeEscalation": false}),
         "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])"),
        ("add", restricted_pod_fields(),
         json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]}}),
         "unrestricted capabilities (container \"c\" must not include \"CHOWN\" in securityContext.capabilities.add)"),
        ("non-root", json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}), restricted_sc(),
         "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true)"),
        ("root user", json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "Localhost"}}}),
         restricted_sc(), "runAsUser=0 (pod must not set runAsUser=0)"),
        ("seccomp", json!({"securityContext": {"runAsNonRoot": true}}), restricted_sc(),
         "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"),
        ("volumes", {
            let mut f = restricted_pod_fields();
            f["volumes"] = json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}, {"name": "e", "emptyDir": {}}]);
            f
        }, restricted_sc(), "restricted volume types (volume \"n\" uses restricted volume type \"nfs\")"),
    ];
    for (name, spec, sc, want) in cases {
        assert_eq!(reasons(Level::Restricted, &pod(spec, sc)), vec![want.to_string()], "{name}");
    }
}

#[test]
fn restricted_replaces_baseline_checks_and_covers_every_container() {
    let mut p = pod(json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), json!({"privileged": true}));
    p["spec"]["initContainers"] = json!([{"name": "i", "image": "x"}]);
    p["spec"]["ephemeralContainers"] = json!([{"name": "e", "image": "x"}]);
    assert_eq!(
        reasons(Level::Restricted, &p),
        vec![
            "privileged (container \"c\" must not set securityContext.privileged=true)",
            "allowPrivilegeEscalation != false (containers \"i\", \"c\", \"e\" must set securityContext.allowPrivilegeEscalation=false)",
            "unrestricted capabilities (containers \"i\", \"c\", \"e\" must set securityContext.capabilities.drop=[\"ALL\"])",
            "restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")",
            "runAsNonRoot != true (pod or containers \"i\", \"c\", \"e\" must set securityContext.runAsNonRoot=true)",
            "seccompProfile (pod or containers \"i\", \"c\", \"e\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
        ]
    );
}

#[test]
fn levels_nest() {
    let compliant = pod(restricted_pod_fields(), restricted_sc());
    let plain = pod(json!({}), json!({}));
    let privileged = pod(json!({}), json!({"privileged": true}));
    let cases = [(&compliant, [0, 0, 0]), (&plain, [0, 0, 4]), (&privileged, [0, 1, 5])];
    for (obj, want) in cases {
        let got = [Level::Privileged, Level::Baseline, Level::Restricted].map(|l| reasons(l, obj).len());
        assert_eq!(got, want, "{obj}");
    }
}

fn labels(pairs: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    pairs.iter().map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), json!(v))).collect()
}

#[test]
fn labels_parse_into_policy() {
    let lv = |level, version: &str| LevelVersion { level, version: version.into() };
    // Labels, then the expected enforce, audit and warn, then how many errors.
    type Case<'a> = (Vec<(&'a str, &'a str)>, [LevelVersion; 3], usize);
    let cases: Vec<Case> = vec![
        (
            vec![],
            [lv(Level::Privileged, "latest"), lv(Level::Privileged, "latest"), lv(Level::Privileged, "latest")],
            0,
        ),
        (
            vec![("enforce", "baseline"), ("enforce-version", "v1.30")],
            [lv(Level::Baseline, "v1.30"), lv(Level::Privileged, "latest"), lv(Level::Baseline, "v1.30")],
            0,
        ),
        (
            vec![("enforce", "baseline"), ("warn", "restricted"), ("audit", "restricted")],
            [lv(Level::Baseline, "latest"), lv(Level::Restricted, "latest"), lv(Level::Restricted, "latest")],
            0,
        ),
        (
            vec![("enforce", "bogus")],
            [lv(Level::Restricted, "latest"), lv(Level::Privileged, "latest"), lv(Level::Privileged, "latest")],
            1,
        ),
        (
            vec![("enforce", "baseline"), ("enforce-version", "v2")],
            [lv(Level::Restricted, "latest"), lv(Level::Privileged, "latest"), lv(Level::Privileged, "latest")],
            1,
        ),
        (
            vec![("warn", "loud")],
            [lv(Level::Privileged, "latest"), lv(Level::Privileged, "latest"), lv(Level::Privileged, "latest")],
            1,
        ),
    ];
    for (pairs, [enforce, audit, warn], errors) in cases {
        let map = labels(&pairs);
        let (policy, errs) = Policy::from_labels(Some(&map));
        assert_eq!(policy, Policy { enforce, audit, warn }, "{pairs:?}");
        assert_eq!(errs.len(), errors, "{pairs:?}");
    }
}

fn namespace(pairs: &[(&str, &str)]) -> Value {
    json!({"metadata": {"name": "team", "labels": labels(pairs)}})
}

#[test]
fn enforce_refuses_pods_with_upstream_message_and_warns_workloads() {
    let ns = namespace(&[("enforce", "baseline")]);
    let bad = pod(json!({}), json!({"privileged": true}));
    let err = admit(&Default::default(), None, by_kind(Kind::Pod), &ns, &bad, None).expect_err("refused");
    assert!(
        matches!(&err, ApiError::Forbidden(m) if m == "pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"),
        "{err:?}"
    );
    let deploy = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": bad["spec"].clone()}}});
    let warnings =
        admit(&Default::default(), None, by_kind(Kind::Deployment), &ns, &deploy, None).expect("never refused");
    assert_eq!(warnings, vec!["would violate PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"]);
    // A pod update that only changes metadata is not evaluated again; an
    // image change is.
    let mut labelled = bad.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(
        admit(&Default::default(), None, by_kind(Kind::Pod), &ns, &labelled, Some(&bad)).expect("skipped"),
        Vec::<String>::new()
    );
    let mut bumped = bad.clone();
    bumped["spec"]["containers"][0]["image"] = json!("busybox:2");
    assert!(admit(&Default::default(), None, by_kind(Kind::Pod), &ns, &bumped, Some(&bad)).is_err());
}

#[test]
fn warn_only_namespace_warns_and_invalid_enforce_is_restricted() {
    let plain = pod(json!({}), json!({}));
    let warn = namespace(&[("warn", "restricted")]);
    let warnings = admit(&Default::default(), None, by_kind(Kind::Pod), &warn, &plain, None).expect("allowed");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false")
    );
    let invalid = namespace(&[("enforce", "bogus")]);
    let err = admit(&Default::default(), None, by_kind(Kind::Pod), &invalid, &plain, None).expect_err("restricted");
    assert!(err.to_string().contains("violates PodSecurity \"restricted:latest\""), "{err}");
    let mirror = {
        let mut p = pod(json!({"hostNetwork": true}), json!({}));
        p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc"});
        p
    };
    assert!(admit(
        &Default::default(),
        None,
        by_kind(Kind::Pod),
        &namespace(&[("enforce", "baseline")]),
        &mirror,
        None
    )
    .is_err());
}

#[test]
fn namespace_labels_are_validated_when_changed() {
    let bad = namespace(&[("enforce", "bogus")]);
    assert_eq!(validate_namespace(&bad, None).len(), 1);
    assert!(validate_namespace(&bad, Some(&bad)).is_empty(), "unchanged labels stay");
    assert!(validate_namespace(&namespace(&[("audit", "baseline"), ("audit-version", "v1.31")]), None).is_empty());
}

#[test]
fn existing_pods_are_grouped_by_reasons_and_capped() {
    let enforce = LevelVersion { level: Level::Baseline, version: "latest".into() };
    let named = |name: &str, spec: Value, sc: Value| {
        let mut p = pod(spec, sc);
        p["metadata"]["name"] = json!(name);
        p
    };
    let pods = vec![
        named("z", json!({}), json!({"privileged": true})),
        named("b", json!({}), json!({"privileged": true})),
        named("h", json!({"hostPID": true}), json!({})),
        named("ok", json!({}), json!({})),
    ];
    assert_eq!(
        existing_pod_warnings("team", &enforce, &pods, 4),
        vec![
            "existing pods in namespace \"team\" violate the new PodSecurity enforce level \"baseline:latest\"",
            "b (and 1 other pod): privileged",
            "h: host namespaces",
        ]
    );
    let last = existing_pod_warnings("team", &enforce, &pods[3..], 5000);
    assert_eq!(last, vec!["new PodSecurity enforce level only checked against the first 1 of 5000 existing pods"]);
}

#[test]
fn enforce_changes_that_need_a_dry_run() {
    let cases = [
        (vec![], vec![("enforce", "baseline")], true),
        (vec![("enforce", "baseline")], vec![("enforce", "baseline")], false),
        (vec![("enforce", "restricted")], vec![("enforce", "baseline")], false),
        (vec![("enforce", "baseline")], vec![("enforce", "privileged")], false),
        (vec![("enforce", "restricted")], vec![("enforce", "baseline"), ("enforce-version", "v1.30")], true),
    ];
    for (old, new, want) in cases {
        let got = super::admission::changed_enforce(&Default::default(), &namespace(&old), &namespace(&new)).is_some();
        assert_eq!(got, want, "{old:?} -> {new:?}");
    }
}

#[test]
fn cluster_defaults_apply_to_unlabelled_namespaces_and_exemptions_skip_evaluation() {
    use super::config::{Exemptions, PodSecurityConfig};
    let baseline = LevelVersion { level: Level::Baseline, version: "latest".into() };
    let config = PodSecurityConfig {
        defaults: Policy { enforce: baseline.clone(), audit: baseline.clone(), warn: baseline },
        exemptions: Exemptions {
            usernames: ["system:admin-tool".to_string()].into(),
            namespaces: ["kube-system".to_string()].into(),
            runtime_classes: ["kata".to_string()].into(),
        },
    };
    let bad = pod(json!({}), json!({"privileged": true}));
    let unlabelled = json!({"metadata": {"name": "team"}});
    let err = admit(&config, Some("alice"), by_kind(Kind::Pod), &unlabelled, &bad, None);
    assert!(matches!(err, Err(ApiError::Forbidden(_))), "the default enforce level applies: {err:?}");
    // A namespace's own label wins over the default.
    let opted_out = namespace(&[("enforce", "privileged")]);
    assert!(admit(&config, Some("alice"), by_kind(Kind::Pod), &opted_out, &bad, None).is_ok());
    // Exempt namespace, user, runtime class: not evaluated, no warning.
    let system = json!({"metadata": {"name": "kube-system"}});
    assert_eq!(
        admit(&config, Some("alice"), by_kind(Kind::Pod), &system, &bad, None).expect("exempt"),
        Vec::<String>::new()
    );
    assert!(admit(&config, Some("system:admin-tool"), by_kind(Kind::Pod), &unlabelled, &bad, None).is_ok());
    let mut kata = bad.clone();
    kata["spec"]["runtimeClassName"] = json!("kata");
    assert!(admit(&config, Some("alice"), by_kind(Kind::Pod), &unlabelled, &kata, None).is_ok());
    // Raising an exempt namespace's level checks no existing pods.
    let raised = json!({"metadata": {"name": "kube-system", "labels": labels(&[("enforce", "restricted")])}});
    assert!(super::admission::changed_enforce(&config, &system, &raised).is_none());
    assert!(super::admission::changed_enforce(&config, &unlabelled, &namespace(&[("enforce", "restricted")])).is_some());
}
