//! nft text of the ClientIP affinity objects of one frontend (see the
//! crate docs): a dynamic map `client -> endpoint` whose elements expire
//! after the timeout, a lookup chain that DNATs a known client to its
//! endpoint (a miss returns, and the frontend's buckets choose), and a
//! record chain that `nat_postrouting` jumps to for every new connection of
//! the frontend, which stores (or refreshes) the endpoint just chosen.

use std::fmt::{self, Formatter};

use crate::ruleset::Frontend;

/// Most clients an affinity map remembers per frontend.
pub const AFFINITY_MAP_SIZE: u32 = 65_536;

/// Name of the map and lookup chain of `addr` with `timeout`; the record
/// chain adds the `rec` prefix. Hex, protocol and numbers only, so it is a
/// valid nft identifier and distinct per frontend and timeout.
pub fn name(addr: &Frontend, timeout: u32) -> String {
    match addr {
        Frontend::Ip(addr) => {
            format!("aff_{:08x}_{}_{}_{timeout}", u32::from(addr.ip), addr.protocol.nft_name(), addr.port)
        }
        Frontend::NodePort { protocol, port } => format!("aff_np_{}_{port}_{timeout}", protocol.nft_name()),
    }
}

/// The record chain's name.
pub fn record_name(addr: &Frontend, timeout: u32) -> String {
    format!("rec{}", name(addr, timeout))
}

fn map_body(timeout: u32) -> String {
    format!(
        "typeof ip saddr : ip daddr . th dport; size {AFFINITY_MAP_SIZE}; flags dynamic,timeout; timeout {timeout}s;"
    )
}

fn lookup_rule(map: &str) -> String {
    format!("meta l4proto {{ tcp, udp, sctp }} dnat ip to ip saddr map @{map}")
}

fn record_rule(map: &str) -> String {
    format!("update @{map} {{ ip saddr : ip daddr . th dport }}")
}

/// Declarations inside a `table { ... }` block (full load).
pub fn write_block(f: &mut Formatter<'_>, addr: &Frontend, timeout: u32) -> fmt::Result {
    let map = name(addr, timeout);
    writeln!(f, "  map {map} {{\n    {}\n  }}", map_body(timeout))?;
    writeln!(f, "  chain {map} {{\n    {}\n  }}", lookup_rule(&map))?;
    writeln!(f, "  chain {} {{\n    {}\n  }}", record_name(addr, timeout), record_rule(&map))
}

/// Commands creating the objects in the live table.
pub fn write_add(f: &mut Formatter<'_>, table: &str, addr: &Frontend, timeout: u32) -> fmt::Result {
    let map = name(addr, timeout);
    let record = record_name(addr, timeout);
    writeln!(f, "add map ip {table} {map} {{ {} }}", map_body(timeout))?;
    writeln!(f, "add chain ip {table} {map}\nadd rule ip {table} {map} {}", lookup_rule(&map))?;
    writeln!(f, "add chain ip {table} {record}\nadd rule ip {table} {record} {}", record_rule(&map))
}

/// Commands deleting the objects (after the elements that jump to them).
pub fn write_delete(f: &mut Formatter<'_>, table: &str, addr: &Frontend, timeout: u32) -> fmt::Result {
    let map = name(addr, timeout);
    let record = record_name(addr, timeout);
    writeln!(f, "delete chain ip {table} {map}\ndelete chain ip {table} {record}\ndelete map ip {table} {map}")
}

/// Command forgetting every pinned client.
pub fn write_flush(f: &mut Formatter<'_>, table: &str, addr: &Frontend, timeout: u32) -> fmt::Result {
    writeln!(f, "flush map ip {table} {}", name(addr, timeout))
}
