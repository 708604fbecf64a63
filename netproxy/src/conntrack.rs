//! Stale connection-tracking entries of UDP and SCTP service ports.
//!
//! NAT is decided on a flow's first packet and kept in its conntrack entry,
//! so a UDP client that keeps sending from the same source port stays on
//! the endpoint it got first, even after that endpoint left the Service,
//! until the entry times out. And datagrams sent while the port had no
//! endpoints created entries with no NAT at all, which keep bypassing the
//! DNAT once endpoints appear. TCP does not need this (a dead endpoint's
//! connections fail and clients reconnect). As kube-proxy does, after each
//! sync:
//! - for an endpoint that left a UDP/SCTP frontend: delete that frontend's
//!   entries NATed to the endpoint;
//! - for a UDP/SCTP frontend that went from no endpoints to some: delete
//!   every entry of the frontend.
//!
//! [`stale_flows`] decides (pure); [`ConntrackFlush`] applies, with
//! [`ConntrackCommand`] running the `conntrack` tool (conntrack-tools).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::model::Protocol;
use crate::ruleset::{Frontend, Ruleset, Target};

/// Entries to delete: those of `frontend` (original destination), and if
/// `endpoint` is set only those NATed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleFlows {
    pub frontend: Frontend,
    pub endpoint: Option<Ipv4Addr>,
}

/// The frontend's protocol.
fn protocol(frontend: &Frontend) -> Protocol {
    match frontend {
        Frontend::Ip(addr) => addr.protocol,
        Frontend::NodePort { protocol, .. } => *protocol,
    }
}

fn endpoint_ips(target: Option<&Target>) -> BTreeSet<Ipv4Addr> {
    target.map(|t| t.buckets.iter().map(|e| e.ip).collect()).unwrap_or_default()
}

/// The entries made stale by a sync: `before` holds each frontend the sync
/// touched with what it rendered to before (`None`: absent), `after` is
/// the rendered content after the sync.
pub fn stale_flows(before: &BTreeMap<Frontend, Option<Target>>, after: &Ruleset) -> Vec<StaleFlows> {
    let mut stale = Vec::new();
    for (frontend, old) in before {
        if protocol(frontend) == Protocol::Tcp {
            continue;
        }
        let old = endpoint_ips(old.as_ref());
        let new = endpoint_ips(after.services.get(frontend));
        if old.is_empty() && !new.is_empty() {
            stale.push(StaleFlows { frontend: *frontend, endpoint: None });
            continue;
        }
        stale.extend(old.difference(&new).map(|ip| StaleFlows { frontend: *frontend, endpoint: Some(*ip) }));
    }
    stale
}

/// The `conntrack` arguments deleting `flows`.
pub fn delete_args(flows: &StaleFlows) -> Vec<String> {
    let mut args = vec!["-D".to_string(), "-p".to_string()];
    let (protocol, port) = match flows.frontend {
        Frontend::Ip(addr) => (addr.protocol, addr.port),
        Frontend::NodePort { protocol, port } => (protocol, port),
    };
    args.push(
        match protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
        .to_string(),
    );
    if let Frontend::Ip(addr) = flows.frontend {
        args.extend(["--orig-dst".to_string(), addr.ip.to_string()]);
    }
    args.extend(["--orig-port-dst".to_string(), port.to_string()]);
    if let Some(endpoint) = flows.endpoint {
        args.extend(["--dst-nat".to_string(), endpoint.to_string()]);
    }
    args
}

/// Errors deleting entries.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The tool could not be run.
    #[error("running {program:?}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    /// The tool failed.
    #[error("{program:?} {args:?} failed ({status}): {stderr}")]
    Failed { program: PathBuf, args: Vec<String>, status: std::process::ExitStatus, stderr: String },
}

/// Deletes conntrack entries.
pub trait ConntrackFlush: Send + Sync {
    /// Deletes the entries of `flows`; returns how many were deleted.
    fn flush(&self, flows: &StaleFlows) -> Result<u64, ConntrackError>;
}

/// Most bytes of the tool's stderr kept in an error.
const STDERR_LIMIT: usize = 2048;

/// The real flusher: `[prefix...] conntrack -D ...`.
#[derive(Debug, Clone)]
pub struct ConntrackCommand {
    program: PathBuf,
    prefix: Vec<OsString>,
}

impl ConntrackCommand {
    /// Runs `program` (usually `conntrack`) directly.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), prefix: Vec::new() }
    }

    /// Runs `program` behind a command prefix, e.g. `["ip", "netns", "exec", "ns1"]`.
    pub fn with_prefix<I, S>(program: impl Into<PathBuf>, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self { program: program.into(), prefix: prefix.into_iter().map(Into::into).collect() }
    }
}

/// The count in conntrack's summary line ("N flow entries have been deleted.").
pub fn deleted_count(stderr: &str) -> Option<u64> {
    let (_, tail) = stderr.rsplit_once("): ")?;
    tail.split_whitespace().next()?.parse().ok().filter(|_| tail.contains("flow entries have been deleted"))
}

impl ConntrackFlush for ConntrackCommand {
    fn flush(&self, flows: &StaleFlows) -> Result<u64, ConntrackError> {
        let args = delete_args(flows);
        let mut parts = self.prefix.clone();
        parts.push(self.program.clone().into_os_string());
        parts.extend(args.iter().map(OsString::from));
        let program = PathBuf::from(&parts[0]);
        let output = Command::new(&parts[0])
            .args(&parts[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ConntrackError::Spawn { program: program.clone(), source })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Exit status 1 with "0 flow entries" is "nothing to delete".
        match deleted_count(&stderr) {
            Some(count) => Ok(count),
            None if output.status.success() => Ok(0),
            None => {
                let mut stderr = stderr.trim().to_string();
                stderr.truncate(stderr.floor_char_boundary(STDERR_LIMIT));
                Err(ConntrackError::Failed { program, args, status: output.status, stderr })
            }
        }
    }
}

/// A recording fake.
pub mod testing {
    use std::sync::Mutex;

    use super::{ConntrackError, ConntrackFlush, StaleFlows};

    /// Records every flush; deletes nothing.
    #[derive(Debug, Default)]
    pub struct RecordingConntrack {
        pub flushed: Mutex<Vec<StaleFlows>>,
    }

    impl ConntrackFlush for RecordingConntrack {
        fn flush(&self, flows: &StaleFlows) -> Result<u64, ConntrackError> {
            self.flushed.lock().unwrap_or_else(|e| e.into_inner()).push(*flows);
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests;
