use serde_json::json;

use super::*;

fn pod(spec: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "team"}, "spec": spec})
}

fn sa() -> Value {
    json!({"metadata": {"name": "default", "namespace": "team", "uid": "u"}})
}

#[test]
fn a_pod_runs_as_default_and_gets_the_token_volume_in_every_container() {
    let mut p = pod(json!({"initContainers": [{"name": "i"}], "containers": [{"name": "a"}, {"name": "b",
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}));
    admit_pod(&mut p, Some(&sa()), "abcde").expect("admitted");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    assert_eq!(p["spec"]["volumes"], json!([token_volume("kube-api-access-abcde")]));
    let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": MOUNT_PATH});
    assert_eq!(p["spec"]["initContainers"][0]["volumeMounts"], json!([mount]));
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([mount]));
    assert_eq!(p["spec"]["containers"][1]["volumeMounts"][1], mount);
    let sources = &p["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
}

#[test]
fn a_missing_service_account_is_refused() {
    let mut p = pod(json!({"serviceAccountName": "builder", "containers": [{"name": "a"}]}));
    assert_eq!(
        admit_pod(&mut p, None, "abcde"),
        Err("error looking up service account team/builder: serviceaccount \"builder\" not found".into())
    );
}

#[test]
fn automount_false_on_the_pod_or_the_service_account_adds_nothing_and_the_pod_wins() {
    let no_mount_sa = json!({"metadata": {"name": "default"}, "automountServiceAccountToken": false});
    for (pod_says, sa, want_volume) in [
        (Some(false), sa(), false),
        (None, no_mount_sa.clone(), false),
        (Some(true), no_mount_sa, true),
        (None, sa(), true),
    ] {
        let mut spec = json!({"containers": [{"name": "a"}]});
        if let Some(v) = pod_says {
            spec["automountServiceAccountToken"] = json!(v);
        }
        let mut p = pod(spec);
        admit_pod(&mut p, Some(&sa), "abcde").expect("admitted");
        assert_eq!(p["spec"].get("volumes").is_some(), want_volume, "{pod_says:?}");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
    }
}

#[test]
fn a_container_that_mounts_the_path_itself_keeps_its_mount_and_mirror_pods_are_untouched() {
    let own = json!({"name": "mine", "mountPath": MOUNT_PATH});
    let mut p = pod(json!({"containers": [{"name": "a", "volumeMounts": [own]}]}));
    admit_pod(&mut p, Some(&sa()), "abcde").expect("admitted");
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([own]));
    assert!(p["spec"].get("volumes").is_none(), "no unused volume");
    let mut mirror = pod(json!({"containers": [{"name": "a"}]}));
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    let before = mirror.clone();
    admit_pod(&mut mirror, None, "abcde").expect("mirror pods need no service account");
    assert_eq!(mirror, before);
}
