use super::*;

const FILE: &str = r#"
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
port: 10260
maxPods: 50
clusterDNS: ["10.96.0.10"]
clusterDomain: example.local
staticPodPath: /etc/kubernetes/manifests
containerRuntimeEndpoint: unix:///run/k3s/containerd.sock
registerWithTaints: [{key: role, value: edge, effect: NoSchedule}]
featureGates: {}
authentication: {anonymous: {enabled: false}}
"#;

#[test]
fn the_file_gives_honoured_fields_and_names_the_rest() {
    let file = parse_config_file(FILE).unwrap();
    let s = &file.settings;
    assert_eq!((s.port, s.max_pods), (Some(10260), Some(50)));
    assert_eq!(s.cluster_dns, Some(vec!["10.96.0.10".parse().unwrap()]));
    assert_eq!(s.cluster_domain.as_deref(), Some("example.local"));
    assert_eq!(s.static_pod_path, Some(PathBuf::from("/etc/kubernetes/manifests")));
    assert_eq!(s.runtime_endpoint, Some(PathBuf::from("/run/k3s/containerd.sock")));
    assert_eq!(s.register_with_taints.as_ref().map(|t| t[0].key.as_str()), Some("role"));
    assert_eq!(file.ignored, vec!["featureGates".to_string()]);
}

#[test]
fn a_wrong_kind_or_bad_value_is_an_error_naming_it() {
    let wrong = parse_config_file("apiVersion: v1\nkind: Pod\n").unwrap_err();
    assert!(wrong.to_string().contains("KubeletConfiguration"), "{wrong}");
    let head = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";
    for (body, field) in [("port: 70000", "port"), ("maxPods: -1", "maxPods"), ("clusterDNS: [nope]", "clusterDNS")] {
        let error = parse_config_file(&format!("{head}{body}\n")).unwrap_err();
        assert!(matches!(&error, Error::Field { field: f, .. } if f == field), "{body}: {error}");
    }
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let file = parse_config_file(FILE).unwrap().settings;
    let flags = Flags {
        max_pods: Some(30),
        runtime_endpoint: Some("unix:///tmp/c.sock".into()),
        register_with_taints: Some("dedicated=kubelet:NoSchedule,spot:PreferNoSchedule".into()),
        node_labels: Some("tier=edge,zone=b".into()),
        ..Default::default()
    };
    let s = resolve(&flags, &file).unwrap();
    assert_eq!(s.max_pods, 30, "flag");
    assert_eq!(s.port, 10260, "file");
    assert_eq!(s.cluster_domain, "example.local", "file");
    assert_eq!(s.runtime_endpoint, PathBuf::from("/tmp/c.sock"), "flag, unix:// stripped");
    assert_eq!(s.taints.len(), 2, "the flag's taints replace the file's");
    assert_eq!((s.taints[0].key.as_str(), s.taints[0].value.as_deref()), ("dedicated", Some("kubelet")));
    assert_eq!((s.taints[1].key.as_str(), s.taints[1].value.as_deref()), ("spot", None));
    assert_eq!(s.node_labels.get("zone").map(String::as_str), Some("b"));
    let defaults = resolve(&Flags::default(), &FileSettings::default()).unwrap();
    assert_eq!((defaults.port, defaults.max_pods), (DEFAULT_PORT, DEFAULT_MAX_PODS));
    assert_eq!(defaults.runtime_endpoint, PathBuf::from(DEFAULT_RUNTIME_ENDPOINT));
    assert_eq!(defaults.cluster_domain, "cluster.local");
}

#[test]
fn bad_labels_taints_and_dns_name_the_entry() {
    assert!(matches!(parse_node_labels("a=1,b"), Err(Error::Label { entry, .. }) if entry == "b"));
    assert!(matches!(parse_taints("k=v:Sometimes"), Err(Error::Taint { entry, .. }) if entry == "k=v:Sometimes"));
    assert!(matches!(parse_taints("novalue"), Err(Error::Taint { .. })));
    let flags = Flags { cluster_dns: Some("10.0.0.10,dns".into()), ..Default::default() };
    assert_eq!(resolve(&flags, &FileSettings::default()), Err(Error::ClusterDns { entry: "dns".into() }));
}

#[test]
fn container_log_limits_combine_like_the_rest() {
    let text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerLogMaxSize: 5Mi\ncontainerLogMaxFiles: 3\n";
    let parsed = parse_config_file(text).unwrap();
    assert!(parsed.ignored.is_empty(), "{:?}", parsed.ignored);
    let file = parsed.settings;
    let from_file = resolve(&Flags::default(), &file).unwrap().log_limits;
    assert_eq!((from_file.max_size, from_file.max_files), (5 << 20, 3));
    let flags = Flags { container_log_max_size: Some("100Ki".into()), ..Default::default() };
    let mixed = resolve(&flags, &file).unwrap().log_limits;
    assert_eq!((mixed.max_size, mixed.max_files), (100 << 10, 3), "flag wins, file fills the rest");
    let defaults = resolve(&Flags::default(), &FileSettings::default()).unwrap().log_limits;
    assert_eq!(defaults, crate::log_rotation::DEFAULT_LIMITS);
    let bad = Flags { container_log_max_size: Some("lots".into()), ..Default::default() };
    assert!(matches!(resolve(&bad, &file), Err(Error::LogMaxSize { .. })));
}

#[test]
fn image_gc_fields_come_from_the_file_unless_a_flag_says_otherwise() {
    let head = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";
    let text = format!("{head}imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 0s\n");
    let file = parse_config_file(&text).unwrap();
    assert!(file.ignored.is_empty(), "{:?}", file.ignored);
    let images = resolve(&Flags::default(), &file.settings).unwrap().gc.images;
    assert_eq!((images.high_threshold_percent, images.low_threshold_percent), (1, 0));
    assert_eq!(images.min_age, std::time::Duration::ZERO);
    let flags = Flags {
        gc: crate::gc::config::Flags { image_gc_high_threshold: Some(90), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(resolve(&flags, &file.settings).unwrap().gc.images.high_threshold_percent, 90);
    let bad = parse_config_file(&format!("{head}imageGCHighThresholdPercent: 50\nimageGCLowThresholdPercent: 60\n"));
    let error = resolve(&Flags::default(), &bad.unwrap().settings).unwrap_err();
    assert!(error.to_string().contains("imageGCLowThresholdPercent (60)"), "{error}");
}

#[test]
fn resolv_conf_defaults_to_etc_and_empty_turns_host_dns_off() {
    let file = |text: &str| parse_config_file(text).unwrap().settings;
    let defaults = resolve(&Flags::default(), &FileSettings::default()).unwrap();
    assert_eq!(defaults.resolv_conf, Some(PathBuf::from(DEFAULT_RESOLV_CONF)));
    let from_file = file(
        r#"{"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "resolvConf": "/run/r.conf"}"#,
    );
    assert_eq!(resolve(&Flags::default(), &from_file).unwrap().resolv_conf, Some(PathBuf::from("/run/r.conf")));
    let off = Flags { resolv_conf: Some(String::new()), ..Default::default() };
    assert_eq!(resolve(&off, &from_file).unwrap().resolv_conf, None, "the flag wins, empty means off");
}
