use super::*;

fn desired(ips: &[&str], port: u16) -> Desired {
    Desired::new(ips.iter().map(|ip| ip.parse().expect("ip")), port).expect("desired")
}

/// The desired slice as the store gives it back: with a resourceVersion.
fn stored_slice(d: &Desired) -> EndpointSlice {
    let mut slice = d.slice();
    slice.metadata.resource_version = Some("7".into());
    slice
}

fn stored_endpoints(d: &Desired) -> Endpoints {
    let mut endpoints = d.endpoints();
    endpoints.metadata.resource_version = Some("8".into());
    endpoints
}

fn slice_ips(slice: &EndpointSlice) -> Vec<String> {
    slice.endpoints.iter().flat_map(|e| e.addresses.clone()).collect()
}

#[test]
fn desired_keeps_one_family_and_needs_an_address_and_port() {
    let d = desired(&["fd00::1", "192.0.2.2", "0.0.0.0", "10.0.0.1"], 6443);
    assert_eq!(slice_ips(&d.slice()), ["10.0.0.1", "192.0.2.2"], "IPv4 first, sorted, no wildcard");
    assert_eq!(d.slice().address_type, "IPv4");
    assert_eq!(desired(&["fd00::1"], 6443).slice().address_type, "IPv6");
    assert_eq!(Desired::new([], 6443), None);
    assert_eq!(Desired::new(["192.0.2.2".parse().expect("ip")], 0), None);
}

#[test]
fn the_slice_names_the_service_and_the_https_port() {
    let slice = desired(&["192.0.2.2"], 6443).slice();
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(SERVICE_NAME_LABEL).map(String::as_str), Some("kubernetes"));
    assert_eq!(
        (slice.metadata.namespace.as_deref(), slice.metadata.name.as_deref()),
        (Some("default"), Some("kubernetes"))
    );
    let port = &slice.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("https"), Some(6443), Some("TCP")));
    let ready = slice.endpoints[0].conditions.as_ref().and_then(|c| c.ready);
    assert_eq!(ready, Some(true));
}

#[test]
fn slice_plan_creates_keeps_fixes_and_recreates() {
    let d = desired(&["192.0.2.2"], 6443);
    let right = stored_slice(&d);
    let with = |edit: fn(&mut EndpointSlice)| {
        let mut s = right.clone();
        edit(&mut s);
        s
    };
    let admin_label = with(|s| {
        s.metadata.labels.get_or_insert_with(Default::default).insert("team".into(), "ops".into());
    });
    let wrong_port = with(|s| s.ports = Some(vec![SlicePort { port: Some(1), ..Default::default() }]));
    let wrong_ip = with(|s| s.endpoints[0].addresses = vec!["10.9.9.9".into()]);
    let extra = with(|s| {
        let mut other = s.endpoints[0].clone();
        other.addresses = vec!["10.9.9.9".into()];
        s.endpoints.push(other);
    });
    let not_ready =
        with(|s| s.endpoints[0].conditions = Some(EndpointConditions { ready: Some(false), ..Default::default() }));
    let no_conditions = with(|s| s.endpoints[0].conditions = None);
    let unlabelled = with(|s| s.metadata.labels = None);
    let v6 = with(|s| s.address_type = "IPv6".into());
    let cases: Vec<(&str, Option<&EndpointSlice>, &str)> = vec![
        ("deleted", None, "create"),
        ("right", Some(&right), "keep"),
        ("an administrator's label", Some(&admin_label), "keep"),
        ("no conditions read as ready", Some(&no_conditions), "keep"),
        ("edited port", Some(&wrong_port), "update"),
        ("edited address", Some(&wrong_ip), "update"),
        ("an address added", Some(&extra), "update"),
        ("marked not ready", Some(&not_ready), "update"),
        ("labels removed", Some(&unlabelled), "update"),
        ("other address type", Some(&v6), "recreate"),
    ];
    for (name, stored, want) in cases {
        let action = plan_slice(&d, stored);
        let got = match &action {
            Action::Keep => "keep",
            Action::Create(s) | Action::Recreate(s) | Action::Update(s) => {
                assert_eq!(slice_content(s), slice_content(&d.slice()), "{name}: writes the desired content");
                match action {
                    Action::Create(_) => "create",
                    Action::Recreate(_) => "recreate",
                    _ => "update",
                }
            }
        };
        assert_eq!(got, want, "{name}");
        if let Action::Update(fixed) = plan_slice(&d, stored) {
            assert_eq!(fixed.metadata.resource_version.as_deref(), Some("7"), "{name}: an update is conditional");
            let labels = fixed.metadata.labels.unwrap_or_default();
            assert_eq!(labels.get(SERVICE_NAME_LABEL).map(String::as_str), Some("kubernetes"), "{name}");
        }
    }
}

#[test]
fn slice_lists_every_apiserver_in_any_stored_order() {
    let d = desired(&["192.0.2.3", "192.0.2.2"], 6443);
    let mut stored = stored_slice(&d);
    stored.endpoints.reverse();
    assert_eq!(plan_slice(&d, Some(&stored)), Action::Keep);
    let one = stored_slice(&desired(&["192.0.2.2"], 6443));
    let Action::Update(fixed) = plan_slice(&d, Some(&one)) else { panic!("a second apiserver is added") };
    assert_eq!(slice_ips(&fixed), ["192.0.2.2", "192.0.2.3"]);
}

#[test]
fn endpoints_plan_creates_keeps_and_fixes() {
    let d = desired(&["192.0.2.2"], 6443);
    let right = stored_endpoints(&d);
    assert!(matches!(plan_endpoints(&d, None), Action::Create(_)));
    assert_eq!(plan_endpoints(&d, Some(&right)), Action::Keep);
    let mut moved = right.clone();
    moved.subsets = desired(&["10.9.9.9"], 443).endpoints().subsets;
    let mut not_ready = right.clone();
    if let Some(subset) = not_ready.subsets.as_mut().and_then(|s| s.first_mut()) {
        subset.not_ready_addresses = subset.addresses.take();
    }
    let mut emptied = right.clone();
    emptied.subsets = None;
    for (name, stored) in [("moved", moved), ("not ready", not_ready), ("emptied", emptied)] {
        let Action::Update(fixed) = plan_endpoints(&d, Some(&stored)) else { panic!("{name}: fixed") };
        assert_eq!(endpoints_content(&fixed), endpoints_content(&d.endpoints()), "{name}");
        assert_eq!(fixed.metadata.resource_version.as_deref(), Some("8"), "{name}");
    }
}
