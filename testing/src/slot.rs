//! Slots: what keeps clusters on one host apart.
//!
//! A cluster takes a free slot by locking `/run/bosun-testing/slot-<n>.lock`
//! (flock; the kernel releases it when the process dies, so a crashed test
//! frees its slot). The slot number alone decides everything two clusters
//! must not share: the pod subnet, the Service range, the bridge and the
//! proxy's nftables table ([`SlotNetwork::of`], pure). Ports come from the
//! kernel (bound and released), and directories are fresh temp dirs.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::Error;

/// How many clusters may run on one host at once.
pub const MAX_SLOTS: u8 = 32;

/// Where the slot locks live (tmpfs: gone after a reboot).
pub const SLOT_DIR: &str = "/run/bosun-testing";

/// The network identity of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotNetwork {
    /// The node's pod subnet, also the cluster CIDR (one node).
    pub pod_cidr: String,
    /// The Service ClusterIP range.
    pub service_cidr: String,
    /// The pod bridge (at most 15 bytes).
    pub bridge: String,
    /// The proxy's nftables table (family `ip`).
    pub proxy_table: String,
}

impl SlotNetwork {
    /// The slot's network: `10.203.<n>.0/24` for pods, `10.<100+n>.0.0/16`
    /// for Services, bridge `bsc<n>`, table `bosun_t<n>`. None of it meets
    /// the defaults of `bosun up` (10.244/16, 10.96/16, bosun0, bosun) or the
    /// ranges the project's other test harnesses use (10.201, 10.202).
    pub fn of(slot: u8) -> SlotNetwork {
        SlotNetwork {
            pod_cidr: format!("10.203.{slot}.0/24"),
            service_cidr: format!("10.{}.0.0/16", 100 + u16::from(slot)),
            bridge: format!("bsc{slot}"),
            proxy_table: format!("bosun_t{slot}"),
        }
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    pub number: u8,
    _lock: Flock<File>,
}

impl Slot {
    /// Takes the first free slot in `dir`.
    pub fn take(dir: &Path) -> Result<Slot, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::Io { what: format!("creating {}", dir.display()), source })?;
        for number in 0..MAX_SLOTS {
            let path = slot_path(dir, number);
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| Error::Io { what: format!("opening {}", path.display()), source })?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Slot { number, _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, errno)) => {
                    return Err(Error::Io { what: format!("locking {}", path.display()), source: errno.into() })
                }
            }
        }
        Err(Error::NoSlot(MAX_SLOTS))
    }
}

fn slot_path(dir: &Path, number: u8) -> PathBuf {
    dir.join(format!("slot-{number}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_share_no_network_resource() {
        let all: Vec<SlotNetwork> = (0..MAX_SLOTS).map(SlotNetwork::of).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(a.bridge.len() <= 15, "{}", a.bridge);
            for b in &all[i + 1..] {
                assert_ne!(a.pod_cidr, b.pod_cidr);
                assert_ne!(a.service_cidr, b.service_cidr);
                assert_ne!(a.bridge, b.bridge);
                assert_ne!(a.proxy_table, b.proxy_table);
            }
        }
        assert_eq!(SlotNetwork::of(31).service_cidr, "10.131.0.0/16");
    }

    #[test]
    fn a_held_slot_is_not_handed_out_again_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = Slot::take(dir.path()).unwrap();
        let second = Slot::take(dir.path()).unwrap();
        assert_eq!((first.number, second.number), (0, 1));
        drop(first);
        assert_eq!(Slot::take(dir.path()).unwrap().number, 0, "a dropped slot is free again");
    }
}
