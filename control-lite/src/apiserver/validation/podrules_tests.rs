//! Table tests of the pod spec rules: each case names the field paths it must produce.

use super::*;
use serde_json::{json, Value};

fn check(spec: Value, of: SpecOf) -> Vec<String> {
    let spec: PodSpec = serde_json::from_value(spec).expect("pod spec");
    let mut out = Vec::new();
    validate_spec_rules(&spec, "spec", of, &mut out);
    out.into_iter().map(|c| c.field).collect()
}

fn c(extra: Value) -> Value {
    let mut base = json!({"name": "c", "image": "i"});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

fn mount(extra: Value) -> Value {
    let mut m = json!({"name": "v", "mountPath": "/m"});
    if let (Some(b), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    c(json!({"volumeMounts": [m]}))
}

fn env(value_from: Value) -> Value {
    c(json!({"env": [{"name": "E", "valueFrom": value_from}]}))
}

#[test]
fn spec_rule_cases() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"containers": [c(json!({}))]}), vec![]),
        (
            json!({"containers": [c(json!({}))], "ephemeralContainers": [{"name": "dbg", "image": "i"}]}),
            vec!["spec.ephemeralContainers"],
        ),
        (json!({"containers": [c(json!({}))], "os": {"name": "plan9"}}), vec!["spec.os.name"]),
        (
            json!({"containers": [c(json!({}))], "shareProcessNamespace": true, "hostPID": true}),
            vec!["spec.securityContext.shareProcessNamespace"],
        ),
        (
            json!({"containers": [c(json!({}))], "dnsPolicy": "None", "dnsConfig": {}}),
            vec!["spec.dnsConfig.nameservers"],
        ),
        (
            json!({"containers": [c(json!({}))], "dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}}),
            vec!["spec.dnsConfig.nameservers"],
        ),
        (json!({"containers": [mount(json!({"subPath": "a/b"}))]}), vec![]),
        (
            json!({"containers": [mount(json!({"subPath": "/etc"}))]}),
            vec!["spec.containers[0].volumeMounts[0].subPath"],
        ),
        (
            json!({"containers": [mount(json!({"subPath": "a/../../b"}))]}),
            vec!["spec.containers[0].volumeMounts[0].subPath"],
        ),
        (
            json!({"containers": [mount(json!({"subPath": "a", "subPathExpr": "$(X)"}))]}),
            vec!["spec.containers[0].volumeMounts[0].subPathExpr"],
        ),
        (
            json!({"containers": [mount(json!({"mountPropagation": "Sideways"}))]}),
            vec!["spec.containers[0].volumeMounts[0].mountPropagation"],
        ),
        (
            json!({"containers": [mount(json!({"mountPropagation": "Bidirectional"}))]}),
            vec!["spec.containers[0].volumeMounts[0].mountPropagation"],
        ),
        (
            json!({"containers": [c(json!({"securityContext": {"privileged": true},
                "volumeMounts": [{"name": "v", "mountPath": "/m", "mountPropagation": "Bidirectional"}]}))]}),
            vec![],
        ),
        (
            json!({"containers": [mount(json!({"recursiveReadOnly": "Enabled"}))]}),
            vec!["spec.containers[0].volumeMounts[0].recursiveReadOnly"],
        ),
        (json!({"containers": [mount(json!({"recursiveReadOnly": "Enabled", "readOnly": true}))]}), vec![]),
        (
            json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "hostPath": {"path": "/x", "type": "Folder"}},
                {"name": "w", "configMap": {"name": "m", "items": [{"key": "k", "path": "../x"}, {"key": "", "path": "/abs"}]}}]}),
            vec![
                "spec.volumes[0].hostPath.type",
                "spec.volumes[1].configMap.items[0].path",
                "spec.volumes[1].configMap.items[1].key",
                "spec.volumes[1].configMap.items[1].path",
            ],
        ),
        (json!({"containers": [env(json!({"fieldRef": {"fieldPath": "metadata.labels['app']"}}))]}), vec![]),
        (
            json!({"containers": [env(json!({"fieldRef": {"fieldPath": "status.phase"}}))]}),
            vec!["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"],
        ),
        (
            json!({"containers": [env(json!({"fieldRef": {"fieldPath": "metadata.labels"}}))]}),
            vec!["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"],
        ),
        (
            json!({"containers": [env(json!({"resourceFieldRef": {"resource": "limits.gpu"}}))]}),
            vec!["spec.containers[0].env[0].valueFrom.resourceFieldRef.resource"],
        ),
        (
            json!({"containers": [env(json!({"resourceFieldRef": {"resource": "limits.cpu", "divisor": "2"}}))]}),
            vec!["spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor"],
        ),
        (
            json!({"containers": [env(json!({"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}))]}),
            vec![],
        ),
        (
            json!({"containers": [c(json!({"securityContext": {"runAsUser": -1, "privileged": true,
                "allowPrivilegeEscalation": false, "procMount": "Weird"}}))]}),
            vec![
                "spec.containers[0].securityContext.runAsUser",
                "spec.containers[0].securityContext.procMount",
                "spec.containers[0].securityContext",
            ],
        ),
        (
            json!({"containers": [c(json!({}))], "securityContext": {"fsGroup": -5, "seccompProfile": {"type": "Localhost"},
                "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "kernel.shm_rmid_forced", "value": "0"},
                    {"name": "Bad_Name", "value": "1"}]}}),
            vec![
                "spec.securityContext.fsGroup",
                "spec.securityContext.seccompProfile.localhostProfile",
                "spec.securityContext.sysctls[1].name",
                "spec.securityContext.sysctls[2].name",
            ],
        ),
        (
            json!({"containers": [c(json!({}))], "hostNetwork": true, "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}),
            vec!["spec.securityContext.sysctls[0].name"],
        ),
        (
            json!({"containers": [c(json!({"ports": [{"containerPort": 80, "hostPort": 8080}]})),
                c(json!({"name": "d", "ports": [{"containerPort": 81, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}]}))]}),
            vec!["spec.containers[1].ports[0].hostPort"],
        ),
        (
            json!({"containers": [c(json!({}))], "initContainers": [c(json!({"name": "i", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}))]}),
            vec!["spec.initContainers[0].lifecycle"],
        ),
        (
            json!({"containers": [c(json!({}))], "initContainers": [c(json!({"name": "i", "restartPolicy": "Always", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}))]}),
            vec![],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(check(spec.clone(), SpecOf::Pod), want, "{spec}");
    }
}

#[test]
fn ephemeral_containers_are_refused_with_upstream_wording() {
    let spec: PodSpec = serde_json::from_value(json!({"containers": [c(json!({}))],
        "ephemeralContainers": [{"name": "dbg", "image": "i"}]}))
    .expect("spec");
    for (of, message) in [
        (SpecOf::Pod, "Forbidden: cannot be set on create"),
        (SpecOf::Template, "Forbidden: ephemeral containers not allowed in pod template"),
    ] {
        let mut out = Vec::new();
        validate_spec_rules(&spec, "spec", of, &mut out);
        assert_eq!(out.iter().map(|c| c.message.as_str()).collect::<Vec<_>>(), vec![message]);
    }
}
