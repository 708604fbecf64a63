//! Incremental rendering: the model ([`ProxyState`]) and its rendered element
//! content ([`Ruleset`]) kept side by side, so that replacing one Service
//! re-renders only that Service's ports and yields the element operations
//! for exactly what changed.
//!
//! A sync therefore costs O(changed services), not O(all services): there
//! is no full re-render and no full diff on the sync path. The result is by
//! construction what [`render_ruleset`] would give for the whole state (a
//! duplicate address goes to the first claiming key; a hairpin IP stays
//! while any winning service port with endpoints lists it), which
//! [`Rendered::is_consistent`] checks on the periodic resync.
//!
//! Pure and synchronous: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::conntrack::{stale_flows, StaleFlows};
use crate::diff::{diff, Op};
use crate::model::{ProxyState, ServiceKey, ServiceName, ServicePortState};
use crate::ruleset::{port_frontends, render_frontend, render_ruleset, Frontend, Ruleset, Target};

/// The model, its rendered content and the changes not yet taken.
#[derive(Debug, Default)]
pub struct Rendered {
    state: ProxyState,
    ruleset: Ruleset,
    /// Service ports claiming each frontend (the first key wins).
    claims: HashMap<Frontend, BTreeSet<ServiceKey>>,
    /// Hairpin IPs each rendered frontend contributes (its winner's local
    /// IPs, if it has endpoints).
    contributed: HashMap<Frontend, Vec<Ipv4Addr>>,
    /// How many rendered addresses contribute each hairpin IP.
    hairpin_refs: HashMap<Ipv4Addr, usize>,
    /// Content before the first change since the last [`Self::take_ops`]:
    /// per touched frontend its target (`None`: absent), per touched
    /// hairpin IP whether it was present.
    before_services: BTreeMap<Frontend, Option<Target>>,
    before_hairpin: BTreeMap<Ipv4Addr, bool>,
    /// Conntrack entries made stale by the ops taken so far, not yet taken.
    stale_flows: Vec<StaleFlows>,
}

impl Rendered {
    /// Nothing rendered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model as last replaced.
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// The rendered content of the whole model.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// Replaces every port of the Service `name` with `ports` and re-renders
    /// the frontends involved. Cost: O(ports and endpoints of this Service
    /// and of the ports sharing its frontends), plus O(log n) lookups.
    pub fn replace_service(&mut self, name: &ServiceName, ports: Vec<(ServiceKey, ServicePortState)>) {
        let start = ServiceKey { namespace: name.namespace.clone(), name: name.name.clone(), port_name: String::new() };
        let stale: Vec<ServiceKey> = self
            .state
            .services
            .range(start..)
            .take_while(|(key, _)| key.namespace == name.namespace && key.name == name.name)
            .map(|(key, _)| key.clone())
            .collect();
        let mut touched = BTreeSet::new();
        for key in stale {
            let Some(old) = self.state.services.remove(&key) else { continue };
            for addr in port_frontends(&old) {
                if let Some(claims) = self.claims.get_mut(&addr) {
                    claims.remove(&key);
                    if claims.is_empty() {
                        self.claims.remove(&addr);
                    }
                }
                touched.insert(addr);
            }
        }
        for (key, port) in ports {
            for addr in port_frontends(&port) {
                self.claims.entry(addr).or_default().insert(key.clone());
                touched.insert(addr);
            }
            self.state.services.insert(key, port);
        }
        for addr in touched {
            self.refresh(addr);
        }
    }

    /// Re-renders one frontend from its current winner.
    fn refresh(&mut self, addr: Frontend) {
        let winner = self.claims.get(&addr).and_then(|claims| claims.first());
        let port = winner.and_then(|key| self.state.services.get(key));
        let target = port.map(|port| render_frontend(port, addr));
        let local: Vec<Ipv4Addr> = match (port, &target) {
            (Some(port), Some(target)) if !target.buckets.is_empty() => port.local_ips.clone(),
            _ => Vec::new(),
        };
        if self.ruleset.services.get(&addr) == target.as_ref()
            && self.contributed.get(&addr).map_or(&[][..], Vec::as_slice) == local.as_slice()
        {
            return;
        }
        self.before_services.entry(addr).or_insert_with(|| self.ruleset.services.get(&addr).cloned());
        for ip in self.contributed.remove(&addr).unwrap_or_default() {
            self.change_hairpin(ip, false);
        }
        for ip in &local {
            self.change_hairpin(*ip, true);
        }
        if !local.is_empty() {
            self.contributed.insert(addr, local);
        }
        match target {
            Some(target) => self.ruleset.services.insert(addr, target),
            None => self.ruleset.services.remove(&addr),
        };
    }

    fn change_hairpin(&mut self, ip: Ipv4Addr, add: bool) {
        let refs = self.hairpin_refs.entry(ip).or_default();
        self.before_hairpin.entry(ip).or_insert(*refs > 0);
        if add {
            *refs += 1;
        } else {
            *refs = refs.saturating_sub(1);
        }
        match *refs {
            0 => {
                self.hairpin_refs.remove(&ip);
                self.ruleset.hairpin.remove(&ip);
            }
            _ => {
                self.ruleset.hairpin.insert(ip);
            }
        }
    }

    /// The element operations that turn the content as of the previous call
    /// (or of [`Self::forget_changes`]) into the current content, and
    /// forgets them. Cost: O(touched addresses and IPs).
    pub fn take_ops(&mut self) -> Vec<Op> {
        let mut before = Ruleset::default();
        let mut after = Ruleset::default();
        self.stale_flows.extend(stale_flows(&self.before_services, &self.ruleset));
        for (addr, old) in std::mem::take(&mut self.before_services) {
            if let Some(old) = old {
                before.services.insert(addr, old);
            }
            if let Some(new) = self.ruleset.services.get(&addr) {
                after.services.insert(addr, new.clone());
            }
        }
        for (ip, was_present) in std::mem::take(&mut self.before_hairpin) {
            if was_present {
                before.hairpin.insert(ip);
            }
            if self.ruleset.hairpin.contains(&ip) {
                after.hairpin.insert(ip);
            }
        }
        diff(&before, &after)
    }

    /// The conntrack entries made stale by the ops taken since the last call
    /// (UDP/SCTP endpoints that left; see [`crate::conntrack`]).
    pub fn take_stale_flows(&mut self) -> Vec<StaleFlows> {
        std::mem::take(&mut self.stale_flows)
    }

    /// Forgets pending changes (the whole content is about to be loaded).
    pub fn forget_changes(&mut self) {
        self.stale_flows.extend(stale_flows(&self.before_services, &self.ruleset));
        self.before_services.clear();
        self.before_hairpin.clear();
    }

    /// Whether the incrementally kept content equals a full render of the
    /// model (O(all); run on the periodic resync as a self-check).
    pub fn is_consistent(&self) -> bool {
        render_ruleset(&self.state) == self.ruleset
    }
}

#[cfg(test)]
mod tests;
