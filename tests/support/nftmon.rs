//! Watching the proxy's nftables table without listing it: `nft monitor`
//! streams every element added to or deleted from our table, and a reader
//! thread timestamps them. (With 10,000 Services `nft get element` or a
//! listing fetches the whole map and takes seconds per call.)

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use super::cluster::PROXY_TABLE;

#[derive(Default)]
struct Seen {
    /// ClusterIPs with a `service_ports` element, and when it appeared.
    services: HashMap<String, Instant>,
    /// Per ClusterIP, the endpoint IPs in its `backends` elements and when
    /// each was last added.
    backends: HashMap<String, HashMap<String, Instant>>,
}

/// A running `nft monitor` of the proxy's table; stopped on drop.
pub struct NftMonitor {
    child: Child,
    seen: Arc<Mutex<Seen>>,
}

impl Drop for NftMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The elements of one monitor line: (`add`?, set name, elements).
fn parse(line: &str) -> Option<(bool, &str, Vec<&str>)> {
    let (verb, rest) = line.split_once(" element ip ")?;
    let added = match verb {
        "add" => true,
        "delete" => false,
        _ => return None,
    };
    let rest = rest.strip_prefix(PROXY_TABLE)?.trim_start();
    let (set, body) = rest.split_once(' ')?;
    let body = body.trim().strip_prefix('{')?.strip_suffix('}')?;
    Some((added, set, body.split(',').map(str::trim).filter(|e| !e.is_empty()).collect()))
}

impl Seen {
    fn record(&mut self, line: &str, at: Instant) {
        let Some((added, set, elements)) = parse(line) else { return };
        for element in elements {
            let Some(ip) = element.split(" . ").next().map(str::to_string) else { continue };
            match (set, added) {
                ("service_ports", true) => {
                    self.services.entry(ip).or_insert(at);
                }
                ("service_ports", false) => {
                    self.services.remove(&ip);
                }
                ("backends", true) => {
                    let endpoint = element.split(" : ").nth(1).and_then(|v| v.split(" . ").next());
                    if let Some(endpoint) = endpoint {
                        self.backends.entry(ip).or_default().insert(endpoint.to_string(), at);
                    }
                }
                _ => {}
            }
        }
    }
}

impl NftMonitor {
    /// Starts `nft monitor elements` (line-buffered) and a reader thread.
    pub fn start() -> Result<NftMonitor> {
        let mut child = Command::new("stdbuf")
            .args(["-oL", "nft", "monitor", "elements"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nft monitor")?;
        let stdout = child.stdout.take().context("nft monitor stdout")?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let writer = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                writer.lock().unwrap_or_else(PoisonError::into_inner).record(&line, at);
            }
        });
        Ok(NftMonitor { child, seen })
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// When the `service_ports` element of `ip` appeared, if it is there.
    pub fn service_at(&self, ip: &str) -> Option<Instant> {
        self.with(|s| s.services.get(ip).copied())
    }

    /// How many of `ips` have a `service_ports` element.
    pub fn services_present(&self, ips: &[String]) -> usize {
        self.with(|s| ips.iter().filter(|ip| s.services.contains_key(*ip)).count())
    }

    /// When `endpoint` was last added to the backends of `ip`.
    pub fn backend_at(&self, ip: &str, endpoint: &str) -> Option<Instant> {
        self.with(|s| s.backends.get(ip).and_then(|b| b.get(endpoint)).copied())
    }

    /// Waits until the monitor has seen the element of `ip` (proves it runs).
    pub fn wait_service(&self, ip: &str, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.service_at(ip) {
                return Ok(at);
            }
            ensure!(Instant::now() < deadline, "nft monitor did not see service {ip} within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The distinct endpoint IPs seen for `ip`.
    pub fn endpoints_of(&self, ip: &str) -> HashSet<String> {
        self.with(|s| s.backends.get(ip).map(|b| b.keys().cloned().collect()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn monitor_lines_are_parsed_into_elements() {
        use std::collections::HashSet;
        let now = std::time::Instant::now();
        let mut seen = super::Seen::default();
        seen.record("add element ip bosun service_ports { 10.96.0.7 . tcp . 80 : goto buckets_16 }", now);
        seen.record(
            "add element ip bosun backends { 10.96.0.7 . tcp . 80 . 0 : 10.202.1.2 . 8080, 10.96.0.7 . tcp . 80 . 1 : 10.202.1.3 . 8080 }",
            now,
        );
        seen.record("add element ip other service_ports { 10.96.0.9 . tcp . 80 : goto x }", now);
        assert!(seen.services.contains_key("10.96.0.7"));
        assert!(!seen.services.contains_key("10.96.0.9"), "other tables are ignored");
        let endpoints: HashSet<&str> = seen.backends["10.96.0.7"].keys().map(String::as_str).collect();
        assert_eq!(endpoints, HashSet::from(["10.202.1.2", "10.202.1.3"]));
        seen.record("delete element ip bosun service_ports { 10.96.0.7 . tcp . 80 : goto buckets_16 }", now);
        assert!(seen.services.is_empty());
    }
}
