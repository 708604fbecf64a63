use serde_json::json;

use super::*;

fn pod(spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([]);
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec})).expect("pod")
}

fn settings(cluster_dns: &[&str], host: Option<&str>) -> PodDnsSettings {
    PodDnsSettings {
        cluster_dns: cluster_dns.iter().map(|ip| ip.parse().unwrap()).collect(),
        cluster_domain: "cluster.local".into(),
        host: host.map(ResolvConf::parse),
    }
}

fn config(servers: &[&str], searches: &[&str], options: &[&str]) -> api::DnsConfig {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    api::DnsConfig { servers: strings(servers), searches: strings(searches), options: strings(options) }
}

const HOST: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

#[test]
fn each_policy_gets_the_resolv_conf_upstream_gives_it() {
    let cluster = settings(&["10.244.0.1"], Some(HOST));
    let cluster_search = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"];
    let cases = [
        // ClusterFirst is the default.
        (json!({}), &cluster, config(&["10.244.0.1"], &cluster_search, &["ndots:5"])),
        (json!({"dnsPolicy": "ClusterFirst"}), &cluster, config(&["10.244.0.1"], &cluster_search, &["ndots:5"])),
        // On the host network ClusterFirst means Default ...
        (json!({"hostNetwork": true}), &cluster, config(&["192.0.2.53"], &["corp.example"], &["edns0"])),
        // ... unless asked for explicitly.
        (
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
            &cluster,
            config(&["10.244.0.1"], &cluster_search, &["ndots:5"]),
        ),
        (json!({"dnsPolicy": "Default"}), &cluster, config(&["192.0.2.53"], &["corp.example"], &["edns0"])),
        (
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
            &cluster,
            config(&["1.1.1.1"], &[], &[]),
        ),
    ];
    for (spec, settings, want) in cases {
        assert_eq!(dns_config(&pod(spec.clone()), settings), want, "{spec}");
    }
}

#[test]
fn without_cluster_dns_or_host_file_it_falls_back_as_upstream() {
    let no_cluster = settings(&[], Some(HOST));
    assert_eq!(dns_config(&pod(json!({})), &no_cluster), config(&["192.0.2.53"], &["corp.example"], &["edns0"]));
    let no_host = settings(&[], None);
    assert_eq!(dns_config(&pod(json!({"dnsPolicy": "Default"})), &no_host), config(&["127.0.0.1"], &["."], &[]));
    let cluster_no_host = settings(&["10.244.0.1"], None);
    assert_eq!(
        dns_config(&pod(json!({})), &cluster_no_host),
        config(&["10.244.0.1"], &["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"], &["ndots:5"])
    );
}

#[test]
fn pod_dns_config_merges_into_every_policy() {
    let got = dns_config(
        &pod(json!({"dnsConfig": {"nameservers": ["10.244.0.1", "9.9.9.9"], "searches": ["extra.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": ""}]}})),
        &settings(&["10.244.0.1"], Some(HOST)),
    );
    assert_eq!(
        got,
        config(
            &["10.244.0.1", "9.9.9.9"],
            &["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "extra.example"],
            &["ndots:2", "edns0"],
        )
    );
}

#[test]
fn limits_cut_nameservers_and_searches() {
    let host = "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n";
    let got = dns_config(&pod(json!({"dnsPolicy": "Default"})), &settings(&[], Some(host)));
    assert_eq!(got.servers, vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let got = dns_config(&pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": many}})), &settings(&[], None));
    assert_eq!(got.searches.len(), MAX_SEARCHES);
    let long: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(250))).collect();
    let got = dns_config(&pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": long}})), &settings(&[], None));
    assert_eq!(got.searches.len(), 8, "8 x 251 + 7 spaces fit in 2048, a 9th does not");
}
