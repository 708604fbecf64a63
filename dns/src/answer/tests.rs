use hickory_proto::op::Query;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;
use crate::zone::tests::{service, slice};
use crate::zone::SERVICE_NAME_LABEL;

fn zone() -> Zone {
    let mut zone = Zone::default();
    for s in [
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        json!({"metadata": {"name": "db", "namespace": "prod"}, "spec": {"clusterIP": "None",
            "ports": [{"name": "pg", "port": 5432}]}}),
        json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName",
            "externalName": "db.example.com"}}),
    ] {
        zone.service_event(Event::Apply(service(s)));
    }
    zone.slice_event(Event::Apply(slice(json!({"metadata": {"name": "db-a", "namespace": "prod",
        "labels": {SERVICE_NAME_LABEL: "db"}}, "addressType": "IPv4", "ports": [{"name": "pg", "port": 15432}],
        "endpoints": [{"addresses": ["10.244.0.7"], "hostname": "db-0"}, {"addresses": ["10.244.0.8"]},
                      {"addresses": ["10.244.0.9"], "conditions": {"ready": false}}]}))));
    zone
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = 77;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message
}

/// (rcode, answers as "name type data", additionals, has SOA authority)
fn ask(name: &str, qtype: RecordType) -> (ResponseCode, Vec<String>, Vec<String>, bool) {
    let domain = ClusterDomain::new("cluster.local").unwrap();
    let Decision::Reply(reply) = decide(&query(name, qtype), &zone(), &domain) else { panic!("{name}: no reply") };
    assert_eq!(reply.metadata.id, 77);
    let show = |records: &[Record]| -> Vec<String> {
        records.iter().map(|r| format!("{} {} {}", r.name, r.record_type(), r.data)).collect()
    };
    (reply.metadata.response_code, show(&reply.answers), show(&reply.additionals), !reply.authorities.is_empty())
}

#[test]
fn answers_cluster_names_by_the_kubernetes_dns_schema() {
    use RecordType::*;
    let no = ResponseCode::NoError;
    let nx = ResponseCode::NXDomain;
    let cases: Vec<(&str, RecordType, ResponseCode, Vec<&str>)> = vec![
        ("web.default.svc.cluster.local.", A, no, vec!["web.default.svc.cluster.local. A 10.96.0.10"]),
        ("WEB.default.svc.cluster.local.", A, no, vec!["WEB.default.svc.cluster.local. A 10.96.0.10"]),
        ("web.default.svc.cluster.local.", AAAA, no, vec![]),
        ("nope.default.svc.cluster.local.", A, nx, vec![]),
        ("web.other.svc.cluster.local.", A, nx, vec![]),
        (
            "_http._tcp.web.default.svc.cluster.local.",
            SRV,
            no,
            vec!["_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."],
        ),
        (
            "_dns._udp.web.default.svc.cluster.local.",
            SRV,
            no,
            vec!["_dns._udp.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local."],
        ),
        ("_http._udp.web.default.svc.cluster.local.", SRV, nx, vec![]),
        ("_http._tcp.web.default.svc.cluster.local.", A, no, vec![]),
        (
            "db.prod.svc.cluster.local.",
            A,
            no,
            vec!["db.prod.svc.cluster.local. A 10.244.0.7", "db.prod.svc.cluster.local. A 10.244.0.8"],
        ),
        ("db-0.db.prod.svc.cluster.local.", A, no, vec!["db-0.db.prod.svc.cluster.local. A 10.244.0.7"]),
        ("10-244-0-8.db.prod.svc.cluster.local.", A, no, vec!["10-244-0-8.db.prod.svc.cluster.local. A 10.244.0.8"]),
        ("10-244-0-9.db.prod.svc.cluster.local.", A, nx, vec![]),
        ("x.web.default.svc.cluster.local.", A, nx, vec![]),
        (
            "_pg._tcp.db.prod.svc.cluster.local.",
            SRV,
            no,
            vec![
                "_pg._tcp.db.prod.svc.cluster.local. SRV 0 50 15432 db-0.db.prod.svc.cluster.local.",
                "_pg._tcp.db.prod.svc.cluster.local. SRV 0 50 15432 10-244-0-8.db.prod.svc.cluster.local.",
            ],
        ),
        ("ext.default.svc.cluster.local.", A, no, vec!["ext.default.svc.cluster.local. CNAME db.example.com."]),
        ("10-244-3-4.any.pod.cluster.local.", A, no, vec!["10-244-3-4.any.pod.cluster.local. A 10.244.3.4"]),
        ("default.svc.cluster.local.", A, no, vec![]),
        ("missing.svc.cluster.local.", A, nx, vec![]),
        ("svc.cluster.local.", A, no, vec![]),
        (
            "cluster.local.",
            SOA,
            no,
            vec!["cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"],
        ),
        ("foo.cluster.local.", A, nx, vec![]),
    ];
    for (name, qtype, code, want) in cases {
        let (got_code, answers, _, soa) = ask(name, qtype);
        assert_eq!((got_code, &answers), (code, &want.iter().map(|s| s.to_string()).collect()), "{name} {qtype}");
        assert_eq!(soa, answers.is_empty(), "{name}: SOA in authority exactly when there is no answer");
    }
}

#[test]
fn srv_targets_come_with_their_addresses() {
    let (_, _, additionals, _) = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(additionals, vec!["web.default.svc.cluster.local. A 10.96.0.10"]);
    let (_, _, additionals, _) = ask("_pg._tcp.db.prod.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        additionals,
        vec!["db-0.db.prod.svc.cluster.local. A 10.244.0.7", "10-244-0-8.db.prod.svc.cluster.local. A 10.244.0.8"]
    );
}

#[test]
fn other_names_are_forwarded_and_odd_messages_refused() {
    let domain = ClusterDomain::new("cluster.local.").unwrap();
    let zone = zone();
    assert_eq!(decide(&query("example.com.", RecordType::A), &zone, &domain), Decision::Forward);
    assert_eq!(decide(&query("4.3.2.1.in-addr.arpa.", RecordType::PTR), &zone, &domain), Decision::Forward);
    let mut response = query("web.default.svc.cluster.local.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    assert_eq!(decide(&response, &zone, &domain), Decision::Ignore);
    let mut two = query("a.cluster.local.", RecordType::A);
    two.add_query(Query::query(Name::from_ascii("b.cluster.local.").unwrap(), RecordType::A));
    let Decision::Reply(reply) = decide(&two, &zone, &domain) else { panic!("no reply") };
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    let mut update = query("web.default.svc.cluster.local.", RecordType::A);
    update.metadata.op_code = OpCode::Update;
    let Decision::Reply(reply) = decide(&update, &zone, &domain) else { panic!("no reply") };
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
}

#[test]
fn a_reply_too_big_for_udp_is_truncated_and_fits_over_tcp() {
    let mut zone = Zone::default();
    zone.service_event(Event::Apply(service(json!({"metadata": {"name": "big", "namespace": "default"},
        "spec": {"clusterIP": "None"}}))));
    let endpoints: Vec<_> = (0..100).map(|i| json!({"addresses": [format!("10.244.1.{i}")]})).collect();
    zone.slice_event(Event::Apply(slice(json!({"metadata": {"name": "big-1", "namespace": "default",
        "labels": {SERVICE_NAME_LABEL: "big"}}, "addressType": "IPv4", "endpoints": endpoints}))));
    let domain = ClusterDomain::new("cluster.local").unwrap();
    let request = query("big.default.svc.cluster.local.", RecordType::A);
    let Decision::Reply(reply) = decide(&request, &zone, &domain) else { panic!("no reply") };
    assert_eq!(reply.answers.len(), 100);
    let udp = Message::from_vec(&encode(&reply, udp_limit(&request)).unwrap()).unwrap();
    assert!(udp.metadata.truncation);
    assert!(udp.answers.is_empty());
    assert_eq!(udp.metadata.id, 77);
    let tcp = Message::from_vec(&encode(&reply, 65535).unwrap()).unwrap();
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100);
}
