//! Decides what to do with one DNS query: answer it from the zone, forward
//! it upstream, or refuse it. Pure: no sockets, no clock.
//!
//! Answers follow Kubernetes' DNS specification (and CoreDNS's behaviour
//! where the spec leaves room): a ClusterIP Service's name has its cluster
//! IPs; a headless Service's name has its ready endpoints' addresses, and
//! each endpoint its own name (its hostname, or its dashed IP); named ports
//! have SRV records (`_<port>._<proto>.<svc>.<ns>.svc.<domain>`) whose
//! targets come with their addresses in the additional section; an
//! ExternalName Service is a CNAME; `<a-b-c-d>.<ns>.pod.<domain>` is
//! answered from the name itself (CoreDNS's `pods insecure`). A name of the
//! domain that does not exist is NXDOMAIN, a name without records of the
//! asked type NODATA, both with the zone's SOA so resolvers cache them for
//! its TTL.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::names::{classify, dashed, ClusterName};
use crate::zone::{ServiceInfo, ServiceKind, Zone};

/// TTL of every cluster record (CoreDNS's default).
pub const TTL: u32 = 5;
/// Largest UDP answer we send to an EDNS client (the DNS flag day value).
pub const MAX_EDNS_UDP: u16 = 1232;
/// Largest UDP answer to a client without EDNS.
pub const MAX_PLAIN_UDP: usize = 512;

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send this reply.
    Reply(Box<Message>),
    /// Not a cluster name: relay the query to the upstream resolvers.
    Forward,
    /// Not a query (e.g. a response): say nothing.
    Ignore,
}

/// The cluster domain, ready to answer in.
#[derive(Debug, Clone)]
pub struct ClusterDomain {
    domain: String,
    soa: Record,
}

impl ClusterDomain {
    /// The domain `cluster.local` (any case, root dot optional). `None` if
    /// it is not a valid DNS name.
    pub fn new(domain: &str) -> Option<Self> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let apex = fqdn(&domain)?;
        let soa = SOA::new(
            fqdn(&format!("ns.dns.{domain}"))?,
            fqdn(&format!("hostmaster.{domain}"))?,
            1,
            7200,
            1800,
            86400,
            TTL,
        );
        Some(Self { domain, soa: Record::from_rdata(apex, TTL, RData::SOA(soa)) })
    }

    /// The domain, lowercase, without the root dot.
    pub fn name(&self) -> &str {
        &self.domain
    }
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

/// The records of one answer (before it becomes a message).
#[derive(Debug, Default)]
struct Answer {
    code: Option<ResponseCode>,
    answers: Vec<Record>,
    additionals: Vec<Record>,
}

impl Answer {
    fn nxdomain() -> Self {
        Self { code: Some(ResponseCode::NXDomain), ..Self::default() }
    }
}

/// Decides what to do with `request`.
pub fn decide(request: &Message, zone: &Zone, domain: &ClusterDomain) -> Decision {
    if request.metadata.message_type != MessageType::Query {
        return Decision::Ignore;
    }
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.checking_disabled = request.metadata.checking_disabled;
    reply.metadata.recursion_available = true;
    reply.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_EDNS_UDP);
        reply.set_edns(edns);
    }
    let query = match (request.metadata.op_code, request.queries.as_slice()) {
        (OpCode::Query, [query]) => query,
        (OpCode::Query, _) => return reply_with(reply, ResponseCode::FormErr),
        _ => return reply_with(reply, ResponseCode::NotImp),
    };
    let name = query.name().to_ascii();
    let class_in = query.query_class() == DNSClass::IN;
    let answer = match classify(&name, domain.name()) {
        ClusterName::Outside => return Decision::Forward,
        _ if !class_in => return reply_with(reply, ResponseCode::Refused),
        ClusterName::Apex => apex(query.query_type(), domain),
        ClusterName::Structural => Answer::default(),
        ClusterName::Namespace { namespace } if zone.has_namespace(&namespace) => Answer::default(),
        ClusterName::Namespace { .. } | ClusterName::Unknown => Answer::nxdomain(),
        ClusterName::Service { namespace, service } => match zone.service(&namespace, &service) {
            Some(info) => service_answer(query.name(), query.query_type(), zone, &namespace, &service, info, domain),
            None => Answer::nxdomain(),
        },
        ClusterName::Endpoint { namespace, service, host } => {
            endpoint_answer(query.name(), query.query_type(), zone, &namespace, &service, &host)
        }
        ClusterName::Srv { namespace, service, port, protocol } => match zone.service(&namespace, &service) {
            Some(info) if query.query_type() == RecordType::SRV || query.query_type() == RecordType::ANY => {
                let found =
                    srv_records(query.name(), zone, &namespace, &service, info, Some((&port, &protocol)), domain);
                if found.answers.is_empty() {
                    Answer::nxdomain()
                } else {
                    found
                }
            }
            Some(_) => Answer::default(),
            None => Answer::nxdomain(),
        },
        ClusterName::Pod { ip } => address_answer(query.name(), query.query_type(), std::iter::once(IpAddr::V4(ip))),
    };
    reply.metadata.authoritative = true;
    reply.metadata.response_code = answer.code.unwrap_or(ResponseCode::NoError);
    if answer.answers.is_empty() {
        reply.add_authority(domain.soa.clone());
    }
    reply.add_answers(answer.answers);
    reply.add_additionals(answer.additionals);
    Decision::Reply(Box::new(reply))
}

fn reply_with(mut reply: Message, code: ResponseCode) -> Decision {
    reply.metadata.response_code = code;
    Decision::Reply(Box::new(reply))
}

fn apex(qtype: RecordType, domain: &ClusterDomain) -> Answer {
    let answers = match qtype {
        RecordType::SOA | RecordType::ANY => vec![domain.soa.clone()],
        _ => Vec::new(),
    };
    Answer { answers, ..Answer::default() }
}

/// A/AAAA records of `name` for the addresses of the asked family.
fn address_records(name: &Name, qtype: RecordType, ips: impl IntoIterator<Item = IpAddr>) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    for ip in ips {
        let rdata = match (ip, qtype) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
            _ => continue,
        };
        if !records.iter().any(|r| r.data == rdata) {
            records.push(Record::from_rdata(name.clone(), TTL, rdata));
        }
    }
    records
}

fn address_answer(name: &Name, qtype: RecordType, ips: impl IntoIterator<Item = IpAddr>) -> Answer {
    Answer { answers: address_records(name, qtype, ips), ..Answer::default() }
}

/// Ready endpoints of a Service: (address, the endpoint's label).
fn ready_endpoints(zone: &Zone, namespace: &str, service: &str) -> Vec<(IpAddr, String)> {
    let mut found: Vec<(IpAddr, String)> = Vec::new();
    for slice in zone.slices_of(namespace, service) {
        for endpoint in slice.endpoints.iter().filter(|e| e.ready) {
            for ip in &endpoint.addresses {
                let label = endpoint.hostname.clone().unwrap_or_else(|| dashed(*ip));
                if !found.iter().any(|(seen, _)| seen == ip) {
                    found.push((*ip, label));
                }
            }
        }
    }
    found.sort();
    found
}

fn service_answer(
    name: &Name,
    qtype: RecordType,
    zone: &Zone,
    namespace: &str,
    service: &str,
    info: &ServiceInfo,
    domain: &ClusterDomain,
) -> Answer {
    if let ServiceKind::ExternalName(target) = &info.kind {
        let Some(target) = fqdn(target) else { return Answer::default() };
        let record = Record::from_rdata(name.clone(), TTL, RData::CNAME(CNAME(target)));
        return Answer { answers: vec![record], ..Answer::default() };
    }
    if qtype == RecordType::SRV {
        return srv_records(name, zone, namespace, service, info, None, domain);
    }
    match &info.kind {
        ServiceKind::ClusterIp(ips) => address_answer(name, qtype, ips.iter().copied()),
        _ => address_answer(name, qtype, ready_endpoints(zone, namespace, service).into_iter().map(|(ip, _)| ip)),
    }
}

fn endpoint_answer(name: &Name, qtype: RecordType, zone: &Zone, namespace: &str, service: &str, host: &str) -> Answer {
    match zone.service(namespace, service) {
        Some(ServiceInfo { kind: ServiceKind::Headless, .. }) => {}
        _ => return Answer::nxdomain(),
    }
    let ips: Vec<IpAddr> = ready_endpoints(zone, namespace, service)
        .into_iter()
        .filter(|(_, label)| label == host)
        .map(|(ip, _)| ip)
        .collect();
    if ips.is_empty() {
        return Answer::nxdomain();
    }
    address_answer(name, qtype, ips)
}

/// SRV records of a Service's named ports (only `port`/`protocol` if
/// given), targets' addresses as additionals.
fn srv_records(
    name: &Name,
    zone: &Zone,
    namespace: &str,
    service: &str,
    info: &ServiceInfo,
    only: Option<(&str, &str)>,
    domain: &ClusterDomain,
) -> Answer {
    let wanted = |port_name: &str, protocol: &str| {
        !port_name.is_empty() && only.is_none_or(|(p, proto)| p == port_name && proto == protocol)
    };
    let service_fqdn = format!("{service}.{namespace}.svc.{}", domain.name());
    let mut answer = Answer::default();
    match &info.kind {
        ServiceKind::ClusterIp(ips) => {
            let Some(target) = fqdn(&service_fqdn) else { return answer };
            for port in info.ports.iter().filter(|p| wanted(&p.name, &p.protocol)) {
                let srv = SRV::new(0, 100, port.port, target.clone());
                answer.answers.push(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)));
            }
            if !answer.answers.is_empty() {
                answer.additionals = address_records(&target, RecordType::ANY, ips.iter().copied());
            }
        }
        ServiceKind::Headless => {
            let endpoints = ready_endpoints(zone, namespace, service);
            let weight = u16::try_from(100 / endpoints.len().max(1)).unwrap_or(1).max(1);
            let mut ports: Vec<u16> = Vec::new();
            for slice in zone.slices_of(namespace, service) {
                ports.extend(slice.ports.iter().filter(|p| wanted(&p.name, &p.protocol)).map(|p| p.port));
            }
            ports.sort_unstable();
            ports.dedup();
            for (ip, label) in &endpoints {
                let Some(target) = fqdn(&format!("{label}.{service_fqdn}")) else { continue };
                for port in &ports {
                    let srv = SRV::new(0, weight, *port, target.clone());
                    answer.answers.push(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)));
                }
                if !ports.is_empty() {
                    answer.additionals.extend(address_records(&target, RecordType::ANY, [*ip]));
                }
            }
        }
        ServiceKind::ExternalName(_) => {}
    }
    answer
}

/// The reply as bytes for a client that accepts at most `limit` bytes: a
/// reply that does not fit is sent truncated (TC set, no records), so the
/// client asks again over TCP.
pub fn encode(reply: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let mut truncated = reply.truncate();
    truncated.metadata.id = reply.metadata.id;
    truncated.to_vec().ok()
}

/// The UDP size limit a request asks for (EDNS payload, clamped).
pub fn udp_limit(request: &Message) -> usize {
    match &request.edns {
        Some(edns) => usize::from(edns.max_payload().clamp(512, MAX_EDNS_UDP)),
        None => MAX_PLAIN_UDP,
    }
}

#[cfg(test)]
mod tests;
