//! Service ClusterIP allocation from the service CIDR, and the decision of
//! what a Service write does to its address ([`plan`], pure): allocate,
//! reserve a requested address, keep the stored one, or release it.
//!
//! Rules (upstream's): an ExternalName Service has no ClusterIP; a Service
//! changing to ExternalName releases its address; one changing away from
//! ExternalName gets a fresh address (or the one it asks for, inside the
//! CIDR); otherwise `clusterIP` is immutable once set. Every requested
//! address is checked against the CIDR on every path (create, PUT, each
//! PATCH type, dry runs).
//!
//! The allocator is rebuilt from stored Services at startup, so allocations
//! survive restarts without a separate bitmap object. `.1` is reserved for the
//! `kubernetes` Service.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Mutex;

mod plan;

pub use plan::{drop_type_dependent_fields, plan, repair, IpAction, IpPlan};

/// Allocation failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The CIDR flag is not an IPv4 CIDR.
    #[error("invalid service CIDR {0:?}")]
    Cidr(String),
    /// Every address is taken.
    #[error("no ClusterIP left in {0}")]
    Exhausted(String),
    /// The requested address is outside the range or malformed.
    #[error("{ip}: the provided IP is not in the valid range. The range of valid IPs is {cidr}")]
    OutOfRange { ip: String, cidr: String },
    /// The requested address is in use.
    #[error("{0}: provided IP is already allocated")]
    InUse(String),
}

/// A parsed IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Cidr, Error> {
        let err = || Error::Cidr(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        if !(8..=30).contains(&prefix) {
            return Err(err());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr { base: u32::from(ip) & mask, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The `n`th address (the `kubernetes` Service gets n = 1).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + n)
    }

    /// Whether `ip` is an assignable address of the range (not network, not broadcast).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset(ip).is_some()
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let v = u32::from(ip);
        let off = v.checked_sub(self.base)?;
        (off > 0 && off < self.size() - 1).then_some(off)
    }
}

/// Allocator state: the CIDR, the used offsets and where the next search starts.
///
/// Allocation goes round the range from just after the last address handed
/// out, so an address freed by a deleted Service is not given to the next new
/// Service at once (clients and conntrack entries may still hold it).
#[derive(Debug)]
pub struct Allocator {
    cidr: Cidr,
    used: Mutex<Used>,
}

#[derive(Debug)]
struct Used {
    offsets: BTreeSet<u32>,
    next: u32,
}

impl Allocator {
    /// New allocator with `.1` reserved.
    pub fn new(cidr: Cidr) -> Allocator {
        Allocator { cidr, used: Mutex::new(Used { offsets: BTreeSet::from([1]), next: 2 }) }
    }

    /// The CIDR.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks an address of an existing Service used (startup rebuild). Out-of-range addresses are ignored.
    pub fn mark(&self, ip: &str) {
        if let Some(off) = ip.parse().ok().and_then(|ip| self.cidr.offset(ip)) {
            self.used().offsets.insert(off);
        }
    }

    /// Reserves a specific address requested by a user (or the `kubernetes` Service's `.1`).
    pub fn reserve(&self, ip: &str, allow_reserved: bool) -> Result<(), Error> {
        let out = || Error::OutOfRange { ip: ip.to_string(), cidr: self.cidr.to_string() };
        let off = ip.parse().ok().and_then(|ip| self.cidr.offset(ip)).ok_or_else(out)?;
        if off == 1 && allow_reserved {
            return Ok(());
        }
        if !self.used().offsets.insert(off) {
            return Err(Error::InUse(ip.to_string()));
        }
        Ok(())
    }

    /// Allocates the first free address at or after the rotating cursor
    /// (wrapping; `.0`, `.1` and the broadcast address are never handed out).
    pub fn allocate(&self) -> Result<Ipv4Addr, Error> {
        let mut used = self.used();
        let (first, end) = (2, self.cidr.size() - 1);
        let start = used.next.clamp(first, end.saturating_sub(1).max(first));
        let off = (start..end)
            .chain(first..start)
            .find(|o| !used.offsets.contains(o))
            .ok_or_else(|| Error::Exhausted(self.cidr.to_string()))?;
        used.offsets.insert(off);
        used.next = if off + 1 >= end { first } else { off + 1 };
        Ok(self.cidr.nth(off))
    }

    /// Frees an address (Service deleted or create failed). `.1` stays reserved.
    pub fn release(&self, ip: &str) {
        if let Some(off) = ip.parse().ok().and_then(|ip| self.cidr.offset(ip)) {
            if off != 1 {
                self.used().offsets.remove(&off);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_round_the_range_skipping_reserved_marked_and_just_freed() {
        let a = Allocator::new("10.96.0.0/16".parse().expect("cidr"));
        a.mark("10.96.0.2");
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 3)));
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 4)));
        a.release("10.96.0.3");
        // A just-freed address is not handed out again at once.
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(10, 96, 0, 5)));
        assert_eq!(a.reserve("10.96.0.4", false), Err(Error::InUse("10.96.0.4".into())));
        assert!(matches!(a.reserve("10.97.0.4", false), Err(Error::OutOfRange { .. })));
        assert_eq!(a.reserve("10.96.0.1", true), Ok(()));
        assert_eq!(a.reserve("10.96.0.1", false), Err(Error::InUse("10.96.0.1".into())));
    }

    #[test]
    fn allocation_wraps_round_to_freed_addresses() {
        let a = Allocator::new("192.168.7.0/29".parse().expect("cidr"));
        let all: Vec<_> = (0..5).map(|_| a.allocate().expect("free address")).collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(192, 168, 7, 2)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(192, 168, 7, 6)));
        assert!(matches!(a.allocate(), Err(Error::Exhausted(_))));
        a.release("192.168.7.3");
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(192, 168, 7, 3)));
    }

    #[test]
    fn small_ranges_exhaust_and_bad_cidrs_are_rejected() {
        let a = Allocator::new("192.168.7.0/30".parse().expect("cidr"));
        assert_eq!(a.allocate(), Ok(Ipv4Addr::new(192, 168, 7, 2)));
        assert!(matches!(a.allocate(), Err(Error::Exhausted(_))));
        assert!("10.96.0.0".parse::<Cidr>().is_err());
        assert!("10.96.0.0/33".parse::<Cidr>().is_err());
        assert_eq!("10.96.3.4/16".parse::<Cidr>().expect("cidr").to_string(), "10.96.0.0/16");
    }
}
