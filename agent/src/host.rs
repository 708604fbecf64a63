//! Facts about the machine the agent runs on, for the Node object: CPUs,
//! memory, OS image, kernel, machine and boot IDs, hostname, node IP.
//! Parsing is pure and tested; [`HostInfo::read`] only reads the files.
//!
//! Must not: cache anything; callers decide how often to read.

use std::net::Ipv4Addr;
use std::path::Path;

/// The machine, as the Node status reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// Online CPUs.
    pub cpus: usize,
    /// MemTotal in KiB.
    pub memory_kib: u64,
    /// PRETTY_NAME of /etc/os-release.
    pub os_image: String,
    /// Kernel release (`uname -r`).
    pub kernel_version: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// /proc/sys/kernel/random/boot_id.
    pub boot_id: String,
    /// DMI product UUID when readable, else the machine ID.
    pub system_uuid: String,
    /// The host name.
    pub hostname: String,
}

/// `MemTotal` from /proc/meminfo text, in KiB.
pub fn parse_meminfo_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Number of CPUs in a kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut count = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                count += b.checked_sub(a)? + 1;
            }
            None => {
                part.parse::<usize>().ok()?;
                count += 1;
            }
        }
    }
    (count > 0).then_some(count)
}

/// `PRETTY_NAME` from /etc/os-release text (unquoted).
pub fn parse_os_release(text: &str) -> Option<String> {
    let value = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(value.trim().trim_matches('"').to_string())
}

/// The interface of the IPv4 default route, from /proc/net/route text.
pub fn default_route_interface(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let is_default = fields.get(1) == Some(&"00000000") && fields.get(7) == Some(&"00000000");
        is_default.then(|| fields[0].to_string())
    })
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

impl HostInfo {
    /// Reads the running machine's facts; unreadable ones stay empty.
    pub fn read() -> Self {
        let machine_id = read_trimmed("/etc/machine-id");
        let cpus = parse_cpu_list(&read_trimmed("/sys/devices/system/cpu/online"))
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        let system_uuid = match read_trimmed("/sys/class/dmi/id/product_uuid") {
            uuid if uuid.is_empty() => machine_id.clone(),
            uuid => uuid,
        };
        Self {
            cpus,
            memory_kib: parse_meminfo_kib(&read_trimmed("/proc/meminfo")).unwrap_or(0),
            os_image: parse_os_release(&read_trimmed("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
            kernel_version: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            system_uuid,
            machine_id,
            hostname: hostname(),
        }
    }
}

/// The host name, lowercased (node names must be DNS labels).
pub fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().to_lowercase()).unwrap_or_else(|_| "localhost".into())
}

/// The first IPv4 address of the default-route interface; failing that, the
/// first non-loopback IPv4 address of any interface.
pub fn detect_node_ip() -> Option<Ipv4Addr> {
    let route_if = default_route_interface(&read_trimmed("/proc/net/route"));
    let addrs: Vec<(String, Ipv4Addr)> = nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|ifa| {
            let ip = ifa.address.as_ref()?.as_sockaddr_in()?.ip();
            (!ip.is_loopback()).then_some((ifa.interface_name, ip))
        })
        .collect();
    route_if
        .and_then(|name| addrs.iter().find(|(n, _)| *n == name).map(|(_, ip)| *ip))
        .or_else(|| addrs.first().map(|(_, ip)| *ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_meminfo_kib("MemTotal:        8039532 kB\nMemFree: 1 kB\n"), Some(8_039_532));
        assert_eq!(parse_meminfo_kib("nothing"), None);
        let cpus = [("0-1", Some(2)), ("0", Some(1)), ("0-3,6,8-9", Some(7)), ("", None), ("x", None)];
        for (text, want) in cpus {
            assert_eq!(parse_cpu_list(text), want, "{text}");
        }
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(parse_os_release(os).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    }

    #[test]
    fn finds_default_route_interface() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     br0\t0000F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }
}
