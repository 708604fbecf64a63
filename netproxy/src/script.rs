//! Pure rendering of nft script text (`nft -f -` input).
//!
//! [`full_script`] recreates the whole table atomically
//! (`table; delete table; table { ... }` in one transaction, so there is no
//! window without rules); [`ops_script`] turns diff operations into element
//! deletes followed by element adds; [`delete_script`] removes the table
//! whether or not it exists.

use std::fmt::{self, Display, Formatter};

use crate::diff::{Element, Op};
use crate::ruleset::{bucket_tiers, Ruleset, ServiceAddr};
use crate::table::*;

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

/// The set or map an element lives in.
fn container(element: &Element) -> &'static str {
    match element {
        Element::Dispatch { .. } => SERVICE_PORTS_MAP,
        Element::Backend { .. } => BACKENDS_MAP,
        Element::NoEndpoints(_) => NO_ENDPOINTS_SET,
        Element::Hairpin(_) => HAIRPIN_SET,
    }
}

fn write_addr(f: &mut Formatter<'_>, addr: &ServiceAddr) -> fmt::Result {
    write!(f, "{} . {} . {}", addr.ip, addr.protocol.nft_name(), addr.port)
}

/// Writes an element's key, and its value too when `with_value`.
fn write_element(f: &mut Formatter<'_>, element: &Element, with_value: bool) -> fmt::Result {
    match element {
        Element::Dispatch { addr, buckets } => {
            write_addr(f, addr)?;
            if with_value {
                write!(f, " : goto {BUCKETS_CHAIN_PREFIX}{buckets}")?;
            }
        }
        Element::Backend { addr, bucket, endpoint } => {
            write_addr(f, addr)?;
            write!(f, " . {bucket}")?;
            if with_value {
                write!(f, " : {} . {}", endpoint.ip, endpoint.port)?;
            }
        }
        Element::NoEndpoints(addr) => write_addr(f, addr)?,
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

impl FullScript<'_> {
    fn dispatch(&self) -> impl Iterator<Item = Element> + '_ {
        self.ruleset
            .services
            .iter()
            .filter(|(_, buckets)| !buckets.is_empty())
            .map(|(addr, buckets)| Element::Dispatch { addr: *addr, buckets: buckets.len() })
    }

    fn backends(&self) -> impl Iterator<Item = Element> + '_ {
        self.ruleset.services.iter().flat_map(|(addr, buckets)| {
            buckets.iter().enumerate().map(|(bucket, endpoint)| Element::Backend {
                addr: *addr,
                bucket,
                endpoint: *endpoint,
            })
        })
    }

    fn no_endpoints(&self) -> impl Iterator<Item = Element> + '_ {
        self.ruleset
            .services
            .iter()
            .filter(|(_, buckets)| buckets.is_empty())
            .map(|(addr, _)| Element::NoEndpoints(*addr))
    }

    fn write_chains(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let service_key = "ip daddr . meta l4proto . th dport";
        let svc = self.spec.service_cidr;
        let pods = self.spec.cluster_cidr;
        writeln!(f, "  chain {SERVICES_CHAIN} {{\n    {service_key} vmap @{SERVICE_PORTS_MAP}\n  }}")?;
        for buckets in bucket_tiers() {
            writeln!(
                f,
                "  chain {BUCKETS_CHAIN_PREFIX}{buckets} {{\n    dnat ip to {service_key} . numgen random mod {buckets} map @{BACKENDS_MAP}\n  }}"
            )?;
        }
        for (chain, hook, priority) in
            [(NAT_PREROUTING_CHAIN, "prerouting", "dstnat"), (NAT_OUTPUT_CHAIN, "output", "-100")]
        {
            writeln!(
                f,
                "  chain {chain} {{\n    type nat hook {hook} priority {priority}; policy accept;\n    jump {SERVICES_CHAIN}\n  }}"
            )?;
        }
        writeln!(
            f,
            "  chain {NAT_POSTROUTING_CHAIN} {{\n    type nat hook postrouting priority srcnat; policy accept;\n\
                 ct status dnat ct original ip daddr {svc} ip saddr != {pods} masquerade\n\
                 ct status dnat ct original ip daddr {svc} ip saddr . ip daddr @{HAIRPIN_SET} masquerade\n  }}"
        )?;
        writeln!(
            f,
            "  chain {REJECT_CHAIN} {{\n\
                 {service_key} @{NO_ENDPOINTS_SET} meta l4proto tcp reject with tcp reset\n\
                 {service_key} @{NO_ENDPOINTS_SET} reject\n\
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
}

impl Display for FullScript<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let table = &self.spec.name;
        writeln!(f, "table ip {table}\ndelete table ip {table}\ntable ip {table} {{")?;
        writeln!(f, "  map {SERVICE_PORTS_MAP} {{\n    type ipv4_addr . inet_proto . inet_service : verdict")?;
        write_elements(f, self.dispatch())?;
        writeln!(f, "  }}")?;
        writeln!(
            f,
            "  map {BACKENDS_MAP} {{\n    typeof ip daddr . meta l4proto . th dport . numgen random mod 16 : ip daddr . th dport"
        )?;
        write_elements(f, self.backends())?;
        writeln!(f, "  }}")?;
        writeln!(f, "  set {NO_ENDPOINTS_SET} {{\n    type ipv4_addr . inet_proto . inet_service")?;
        write_elements(f, self.no_endpoints())?;
        writeln!(f, "  }}")?;
        writeln!(f, "  set {HAIRPIN_SET} {{\n    type ipv4_addr . ipv4_addr")?;
        write_elements(f, self.ruleset.hairpin.iter().map(|ip| Element::Hairpin(*ip)))?;
        writeln!(f, "  }}")?;
        self.write_chains(f)?;
        writeln!(f, "}}")
    }
}

struct OpsScript<'a> {
    table: &'a str,
    ops: &'a [Op],
}

impl Display for OpsScript<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let containers = [SERVICE_PORTS_MAP, BACKENDS_MAP, NO_ENDPOINTS_SET, HAIRPIN_SET];
        for adding in [false, true] {
            for name in containers {
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
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
