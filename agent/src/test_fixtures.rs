//! Shared unit-test fixtures: a pod exercising env, downward API, ports and
//! resources, and the ConfigMap/Secret it refers to.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::json;

use crate::env::EnvSources;

pub(crate) fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("valid pod json")
}

pub(crate) fn web_pod() -> Pod {
    pod(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "sa",
            "containers": [{
                "name": "main",
                "image": "busybox:1.36",
                "command": ["sh", "-c"],
                "args": ["echo $(GREETING) $$HOME $(UNKNOWN)"],
                "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}],
                "env": [
                    {"name": "GREETING", "value": "hello"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "MSG", "value": "$(GREETING) world"},
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": true}}}
                ],
                "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
            }]
        }
    }))
}

pub(crate) fn sources() -> EnvSources {
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"color": "blue"}})).expect("configmap");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "data": {"password": "czNjcjN0"}}))
            .expect("secret");
    EnvSources {
        host_ip: "192.0.2.10".into(),
        pod_ip: Some("10.244.0.7".into()),
        config_maps: BTreeMap::from([("cfg".to_string(), cm)]),
        secrets: BTreeMap::from([("creds".to_string(), secret)]),
        ..Default::default()
    }
}
