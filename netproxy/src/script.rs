//! Pure rendering of nft script text (`nft -f -` input).
//!
//! [`full_script`] recreates the whole table atomically
//! (`table; delete table; table { ... }` in one transaction, so there is no
//! window without rules); [`ops_script`] turns diff operations into element
//! deletes followed by element adds; [`delete_script`] removes the table
//! whether or not it exists.

use std::fmt::{self, Display, Formatter};

use crate::diff::{diff, Element, Op};
use crate::ruleset::{bucket_tiers, Frontend, Ruleset};
use crate::table::*;

mod affinity;

/// Script that atomically replaces the whole table with `ruleset`.
pub fn full_script(spec: &TableSpec, ruleset: &Ruleset) -> String {
    FullScript { spec, ruleset }.to_string()
}

/// Script applying `ops` to the live table in one transaction; empty if
/// there is nothing to do.
pub fn ops_script(table: &str, ops: &[Op]) -> String {
    OpsScript { table, ops }.to_string()
}

/// Script deleting the table; succeeds whether or not it exists.
pub fn delete_script(table: &str) -> String {
    format!("table ip {table}\ndelete table ip {table}\n")
}

/// Pseudo-container of [`Element::Affinity`]: objects, not elements.
const AFFINITY_OBJECTS: &str = "";

/// The set or map an element lives in.
fn container(element: &Element) -> &'static str {
    let by_kind = |addr: &Frontend, ip, node_port| match addr {
        Frontend::Ip(_) => ip,
        Frontend::NodePort { .. } => node_port,
    };
    match element {
        Element::Dispatch { addr, .. } => by_kind(addr, SERVICE_PORTS_MAP, NODE_PORTS_MAP),
        Element::Backend { addr, .. } => by_kind(addr, BACKENDS_MAP, NODE_PORT_BACKENDS_MAP),
        Element::NoEndpoints(addr) => by_kind(addr, NO_ENDPOINTS_SET, NODE_PORT_NO_ENDPOINTS_SET),
        Element::NoLocalEndpoints(addr) => by_kind(addr, NO_LOCAL_ENDPOINTS_SET, NODE_PORT_NO_LOCAL_ENDPOINTS_SET),
        Element::Masquerade(addr) => by_kind(addr, MASQUERADE_ADDRS_SET, MASQUERADE_NODE_PORTS_SET),
        Element::Firewalled(_) => FIREWALLED_SET,
        Element::SourceRange(..) => SOURCE_RANGES_SET,
        Element::Affinity(..) => AFFINITY_OBJECTS,
        Element::AffinityLookup(addr, _) => by_kind(addr, AFFINITY_PORTS_MAP, AFFINITY_NODE_PORTS_MAP),
        Element::AffinityRecord(addr, _) => by_kind(addr, AFFINITY_RECORD_MAP, AFFINITY_RECORD_NODE_PORTS_MAP),
        Element::Hairpin(_) => HAIRPIN_SET,
    }
}

/// Every set and map an ops script may touch, in the order it writes them.
const CONTAINERS: [&str; 17] = [
    SERVICE_PORTS_MAP,
    BACKENDS_MAP,
    NO_ENDPOINTS_SET,
    NO_LOCAL_ENDPOINTS_SET,
    NODE_PORTS_MAP,
    NODE_PORT_BACKENDS_MAP,
    NODE_PORT_NO_ENDPOINTS_SET,
    NODE_PORT_NO_LOCAL_ENDPOINTS_SET,
    MASQUERADE_ADDRS_SET,
    MASQUERADE_NODE_PORTS_SET,
    FIREWALLED_SET,
    SOURCE_RANGES_SET,
    AFFINITY_PORTS_MAP,
    AFFINITY_NODE_PORTS_MAP,
    AFFINITY_RECORD_MAP,
    AFFINITY_RECORD_NODE_PORTS_MAP,
    HAIRPIN_SET,
];

fn write_addr(f: &mut Formatter<'_>, addr: &Frontend) -> fmt::Result {
    match addr {
        Frontend::Ip(addr) => write!(f, "{} . {} . {}", addr.ip, addr.protocol.nft_name(), addr.port),
        Frontend::NodePort { protocol, port } => write!(f, "{} . {port}", protocol.nft_name()),
    }
}

/// Writes an element's key, and its value too when `with_value`.
fn write_element(f: &mut Formatter<'_>, element: &Element, with_value: bool) -> fmt::Result {
    match element {
        Element::Dispatch { addr, buckets } => {
            write_addr(f, addr)?;
            if with_value {
                let prefix = match addr {
                    Frontend::Ip(_) => BUCKETS_CHAIN_PREFIX,
                    Frontend::NodePort { .. } => NODE_PORT_BUCKETS_CHAIN_PREFIX,
                };
                write!(f, " : goto {prefix}{buckets}")?;
            }
        }
        Element::Backend { addr, bucket, endpoint } => {
            write_addr(f, addr)?;
            write!(f, " . {bucket}")?;
            if with_value {
                write!(f, " : {} . {}", endpoint.ip, endpoint.port)?;
            }
        }
        Element::NoEndpoints(addr) | Element::NoLocalEndpoints(addr) | Element::Masquerade(addr) => {
            write_addr(f, addr)?
        }
        Element::Firewalled(addr) => write_addr(f, &Frontend::Ip(*addr))?,
        Element::SourceRange(addr, range) => {
            write_addr(f, &Frontend::Ip(*addr))?;
            write!(f, " . {range}")?;
        }
        Element::Affinity(addr, timeout) => f.write_str(&affinity::name(addr, *timeout))?,
        Element::AffinityLookup(addr, timeout) => {
            write_addr(f, addr)?;
            if with_value {
                write!(f, " : jump {}", affinity::name(addr, *timeout))?;
            }
        }
        Element::AffinityRecord(addr, timeout) => {
            write_addr(f, addr)?;
            if with_value {
                write!(f, " : jump {}", affinity::record_name(addr, *timeout))?;
            }
        }
        Element::Hairpin(ip) => write!(f, "{ip} . {ip}")?,
    }
    Ok(())
}

/// Writes `elements = { ... }` for a set body, or nothing if empty.
fn write_elements<'a>(f: &mut Formatter<'_>, elements: impl Iterator<Item = Element> + 'a) -> fmt::Result {
    let mut first = true;
    for element in elements {
        f.write_str(if first { "    elements = {\n      " } else { ",\n      " })?;
        write_element(f, &element, true)?;
        first = false;
    }
    if !first {
        f.write_str("\n    }\n")?;
    }
    Ok(())
}

struct FullScript<'a> {
    spec: &'a TableSpec,
    ruleset: &'a Ruleset,
}

/// Declarations of the table's dynamic sets and maps (name, kind, type).
const DECLARATIONS: [(&str, &str, &str); 17] = [
    (SERVICE_PORTS_MAP, "map", "type ipv4_addr . inet_proto . inet_service : verdict"),
    (BACKENDS_MAP, "map", "typeof ip daddr . meta l4proto . th dport . numgen random mod 16 : ip daddr . th dport"),
    (NO_ENDPOINTS_SET, "set", "type ipv4_addr . inet_proto . inet_service"),
    (NO_LOCAL_ENDPOINTS_SET, "set", "type ipv4_addr . inet_proto . inet_service"),
    (NODE_PORTS_MAP, "map", "type inet_proto . inet_service : verdict"),
    (NODE_PORT_BACKENDS_MAP, "map", "typeof meta l4proto . th dport . numgen random mod 16 : ip daddr . th dport"),
    (NODE_PORT_NO_ENDPOINTS_SET, "set", "type inet_proto . inet_service"),
    (NODE_PORT_NO_LOCAL_ENDPOINTS_SET, "set", "type inet_proto . inet_service"),
    (MASQUERADE_ADDRS_SET, "set", "type ipv4_addr . inet_proto . inet_service"),
    (MASQUERADE_NODE_PORTS_SET, "set", "type inet_proto . inet_service"),
    (FIREWALLED_SET, "set", "type ipv4_addr . inet_proto . inet_service"),
    (SOURCE_RANGES_SET, "set", "type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval"),
    (AFFINITY_PORTS_MAP, "map", "type ipv4_addr . inet_proto . inet_service : verdict"),
    (AFFINITY_NODE_PORTS_MAP, "map", "type inet_proto . inet_service : verdict"),
    (AFFINITY_RECORD_MAP, "map", "type ipv4_addr . inet_proto . inet_service : verdict"),
    (AFFINITY_RECORD_NODE_PORTS_MAP, "map", "type inet_proto . inet_service : verdict"),
    (HAIRPIN_SET, "set", "type ipv4_addr . ipv4_addr"),
];

impl FullScript<'_> {
    fn write_chains(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let service_key = "ip daddr . meta l4proto . th dport";
        let port_key = "meta l4proto . th dport";
        let svc = self.spec.service_cidr;
        let pods = self.spec.cluster_cidr;
        let mark = format!("meta mark set meta mark or {MASQUERADE_MARK:#x}");
        for buckets in bucket_tiers() {
            writeln!(
                f,
                "  chain {BUCKETS_CHAIN_PREFIX}{buckets} {{\n    dnat ip to {service_key} . numgen random mod {buckets} map @{BACKENDS_MAP}\n  }}"
            )?;
            writeln!(
                f,
                "  chain {NODE_PORT_BUCKETS_CHAIN_PREFIX}{buckets} {{\n    dnat ip to {port_key} . numgen random mod {buckets} map @{NODE_PORT_BACKENDS_MAP}\n  }}"
            )?;
        }
        writeln!(
            f,
            "  chain {NODE_PORTS_CHAIN} {{\n    {port_key} @{MASQUERADE_NODE_PORTS_SET} {mark}\n    {port_key} vmap @{AFFINITY_NODE_PORTS_MAP}\n    {port_key} vmap @{NODE_PORTS_MAP}\n  }}"
        )?;
        // Node ports: on the node-port addresses that are local, never on
        // loopback (as upstream's nftables proxier).
        let node_port_dst = format!("ip daddr != 127.0.0.0/8 ip daddr @{NODE_PORT_ADDRESSES_SET} fib daddr type local");
        writeln!(
            f,
            "  chain {SERVICES_CHAIN} {{\n    {service_key} @{MASQUERADE_ADDRS_SET} {mark}\n    {service_key} vmap @{AFFINITY_PORTS_MAP}\n    {service_key} vmap @{SERVICE_PORTS_MAP}\n    {node_port_dst} jump {NODE_PORTS_CHAIN}\n  }}"
        )?;
        for (chain, hook, priority) in
            [(NAT_PREROUTING_CHAIN, "prerouting", "dstnat"), (NAT_OUTPUT_CHAIN, "output", "-100")]
        {
            writeln!(
                f,
                "  chain {chain} {{\n    type nat hook {hook} priority {priority}; policy accept;\n    jump {SERVICES_CHAIN}\n  }}"
            )?;
        }
        // Record the endpoint a new connection to an affinity frontend got
        // (`ct original proto-dst` needs the protocol known, hence one rule
        // per protocol).
        writeln!(f, "  chain {AFFINITY_RECORD_CHAIN} {{")?;
        for protocol in ["tcp", "udp", "sctp"] {
            let new = format!("meta l4proto {protocol} ct status dnat");
            let (daddr, port) = ("ct original ip daddr", "meta l4proto . ct original proto-dst");
            writeln!(f, "    {new} {daddr} . {port} vmap @{AFFINITY_RECORD_MAP}")?;
            writeln!(
                f,
                "    {new} {daddr} != {svc} {daddr} @{NODE_PORT_ADDRESSES_SET} {port} vmap @{AFFINITY_RECORD_NODE_PORTS_MAP}"
            )?;
        }
        writeln!(f, "  }}")?;
        // ClusterIP traffic from outside the pod range is masqueraded (so
        // replies come back through this node); with `masquerade_all`, all.
        let outside = if self.spec.masquerade_all { String::new() } else { format!(" ip saddr != {pods}") };
        writeln!(
            f,
            "  chain {NAT_POSTROUTING_CHAIN} {{\n    type nat hook postrouting priority srcnat; policy accept;\n\
                 jump {AFFINITY_RECORD_CHAIN}\n\
                 meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade\n\
                 ct status dnat ct original ip daddr {svc}{outside} masquerade\n\
                 ct status dnat ct original ip daddr {svc} ip saddr . ip daddr @{HAIRPIN_SET} masquerade\n  }}"
        )?;
        writeln!(
            f,
            "  chain {FIREWALL_CHAIN} {{\n    type filter hook prerouting priority dstnat - 10; policy accept;\n\
                 {service_key} @{FIREWALLED_SET} {service_key} . ip saddr != @{SOURCE_RANGES_SET} drop\n  }}"
        )?;
        writeln!(
            f,
            "  chain {REJECT_CHAIN} {{\n\
                 {service_key} @{NO_LOCAL_ENDPOINTS_SET} drop\n\
                 {node_port_dst} {port_key} @{NODE_PORT_NO_LOCAL_ENDPOINTS_SET} drop\n\
                 {service_key} @{NO_ENDPOINTS_SET} meta l4proto tcp reject with tcp reset\n\
                 {service_key} @{NO_ENDPOINTS_SET} reject\n\
                 {node_port_dst} {port_key} @{NODE_PORT_NO_ENDPOINTS_SET} meta l4proto tcp reject with tcp reset\n\
                 {node_port_dst} {port_key} @{NODE_PORT_NO_ENDPOINTS_SET} reject\n\
                 ip daddr {svc} meta l4proto tcp reject with tcp reset\n\
                 ip daddr {svc} reject\n  }}"
        )?;
        for (chain, hook) in
            [(FILTER_INPUT_CHAIN, "input"), (FILTER_FORWARD_CHAIN, "forward"), (FILTER_OUTPUT_CHAIN, "output")]
        {
            writeln!(
                f,
                "  chain {chain} {{\n    type filter hook {hook} priority filter; policy accept;\n    jump {REJECT_CHAIN}\n  }}"
            )?;
        }
        Ok(())
    }

    /// The static node-port address set (empty config: every address).
    fn write_node_port_addresses(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "  set {NODE_PORT_ADDRESSES_SET} {{\n    type ipv4_addr; flags interval")?;
        let ranges: Vec<String> = self.spec.node_port_addresses.iter().map(ToString::to_string).collect();
        let ranges = if ranges.is_empty() { "0.0.0.0/0".to_owned() } else { ranges.join(", ") };
        writeln!(f, "    elements = {{ {ranges} }}\n  }}")
    }
}

impl Display for FullScript<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let table = &self.spec.name;
        writeln!(f, "table ip {table}\ndelete table ip {table}\ntable ip {table} {{")?;
        // Everything the table holds is what a diff from empty would add.
        let elements: Vec<Element> = diff(&Ruleset::default(), self.ruleset)
            .into_iter()
            .filter_map(|op| match op {
                Op::Add(element) => Some(element),
                Op::Delete(_) | Op::Flush(_) => None,
            })
            .collect();
        for element in &elements {
            if let Element::Affinity(addr, timeout) = element {
                affinity::write_block(f, addr, *timeout)?;
            }
        }
        for (name, kind, declaration) in DECLARATIONS {
            writeln!(f, "  {kind} {name} {{\n    {declaration}")?;
            write_elements(f, elements.iter().filter(|element| container(element) == name).copied())?;
            writeln!(f, "  }}")?;
        }
        self.write_node_port_addresses(f)?;
        self.write_chains(f)?;
        writeln!(f, "}}")
    }
}

struct OpsScript<'a> {
    table: &'a str,
    ops: &'a [Op],
}

impl Display for OpsScript<'_> {
    /// Phases, so every reference is valid at each step: element deletes
    /// (which drop the jumps to affinity objects), affinity flushes and
    /// creations, element adds, and last the affinity objects' deletion.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.write_elements(f, false)?;
        for op in self.ops {
            match op {
                Op::Flush(Element::Affinity(addr, timeout)) => affinity::write_flush(f, self.table, addr, *timeout)?,
                Op::Add(Element::Affinity(addr, timeout)) => affinity::write_add(f, self.table, addr, *timeout)?,
                _ => {}
            }
        }
        self.write_elements(f, true)?;
        for op in self.ops {
            if let Op::Delete(Element::Affinity(addr, timeout)) = op {
                affinity::write_delete(f, self.table, addr, *timeout)?;
            }
        }
        Ok(())
    }
}

impl OpsScript<'_> {
    /// Element deletes or adds, one command per set or map.
    fn write_elements(&self, f: &mut Formatter<'_>, adding: bool) -> fmt::Result {
        for name in CONTAINERS {
            let mut first = true;
            for op in self.ops {
                let element = match (op, adding) {
                    (Op::Delete(element), false) | (Op::Add(element), true) => element,
                    _ => continue,
                };
                if container(element) != name {
                    continue;
                }
                if first {
                    let verb = if adding { "add" } else { "delete" };
                    write!(f, "{verb} element ip {} {name} {{ ", self.table)?;
                } else {
                    f.write_str(", ")?;
                }
                write_element(f, element, adding)?;
                first = false;
            }
            if !first {
                f.write_str(" }\n")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
