//! The host's resolver configuration (`resolv.conf`), parsed as glibc reads
//! it: `nameserver`, `search` (a later `domain` or `search` line replaces
//! the earlier one), `options`; comments start with `#` or `;`.
//!
//! Pure: the caller reads the file. [`ResolvConf::upstreams`] picks the
//! servers the cluster DNS forwards to: loopback resolvers are skipped, as
//! upstream Kubernetes does for its cluster DNS (kubelet hands CoreDNS the
//! host's file, and a loopback address there is a stub such as
//! systemd-resolved's 127.0.0.53 or the forwarder itself, i.e. a loop).

use std::net::{IpAddr, SocketAddr};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// What a `resolv.conf` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order (unparsable ones dropped).
    pub nameservers: Vec<IpAddr>,
    /// The last `search` or `domain` line's domains.
    pub searches: Vec<String>,
    /// `options` words, in order (`ndots:2`, `edns0`, ...).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses the text of a `resolv.conf`.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped IPv6 address (`fe80::1%eth0`) names an
                    // interface the pods do not have: drop it.
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search" | "domain") => {
                    conf.searches =
                        words.map(|w| w.trim_end_matches('.').to_string()).filter(|w| !w.is_empty()).collect();
                }
                Some("options") => conf.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        conf
    }

    /// The servers to forward non-cluster names to: the nameservers that
    /// are not loopback addresses, on port 53.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.nameservers.iter().filter(|ip| !ip.is_loopback()).map(|ip| SocketAddr::new(*ip, DNS_PORT)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers_searches_and_options_as_glibc() {
        let text = "# generated\nnameserver 10.0.0.2\nnameserver bogus\nnameserver 127.0.0.53 ; stub\n\
                    domain corp.example\nsearch a.example. b.example\noptions ndots:2 edns0\noptions rotate\n\
                    nameserver fe80::1%eth0\nnameserver 2001:db8::53\n";
        let conf = ResolvConf::parse(text);
        assert_eq!(
            conf.nameservers,
            vec!["10.0.0.2".parse::<IpAddr>().unwrap(), "127.0.0.53".parse().unwrap(), "2001:db8::53".parse().unwrap()]
        );
        assert_eq!(conf.searches, vec!["a.example", "b.example"]);
        assert_eq!(conf.options, vec!["ndots:2", "edns0", "rotate"]);
    }

    #[test]
    fn upstreams_skip_loopback_resolvers() {
        let cases: &[(&str, &[&str])] = &[
            ("nameserver 127.0.0.53\n", &[]),
            ("nameserver 127.0.0.1\nnameserver 192.0.2.53\n", &["192.0.2.53:53"]),
            ("nameserver ::1\nnameserver 2001:db8::1\n", &["[2001:db8::1]:53"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let got: Vec<String> = ResolvConf::parse(text).upstreams().iter().map(ToString::to_string).collect();
            assert_eq!(&got, want, "{text:?}");
        }
    }
}
