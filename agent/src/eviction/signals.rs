//! Node observations for the eviction signals, from file contents (pure).
//! `memory.available` = capacity - working set of the root memory cgroup,
//! working set = usage - inactive file pages (upstream's definition: v1
//! `memory.usage_in_bytes` and `total_inactive_file` from `memory.stat`; v2
//! `memory.current` - `inactive_file`); `nodefs.available` from statvfs of
//! the agent's root dir; `pid.available` = `kernel.pid_max` - processes
//! (the total in `/proc/loadavg`).

use super::thresholds::Signal;

/// One signal's observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// What is left.
    pub available: i64,
    /// The whole (percent thresholds are of this).
    pub capacity: i64,
}

/// What the node observed, per signal (`None`: not observable here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observations {
    /// `memory.available`.
    pub memory: Option<Observation>,
    /// `nodefs.available`.
    pub nodefs: Option<Observation>,
    /// `pid.available`.
    pub pids: Option<Observation>,
}

impl Observations {
    /// The observation of `signal`.
    pub fn get(&self, signal: Signal) -> Option<Observation> {
        match signal {
            Signal::MemoryAvailable => self.memory,
            Signal::NodeFsAvailable => self.nodefs,
            Signal::PidAvailable => self.pids,
        }
    }
}

fn stat_value(stat: &str, key: &str) -> Option<i64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The working set from a memory cgroup's usage and `memory.stat` text
/// (v1 key `total_inactive_file`, v2 key `inactive_file`), never negative.
pub fn working_set(usage: i64, memory_stat: &str) -> i64 {
    let inactive = stat_value(memory_stat, "total_inactive_file").or_else(|| stat_value(memory_stat, "inactive_file"));
    usage.saturating_sub(inactive.unwrap_or(0).min(usage)).max(0)
}

/// `memory.available` from the machine's memory and the root cgroup's files.
pub fn memory(capacity: i64, usage_text: &str, memory_stat: &str) -> Option<Observation> {
    let usage: i64 = usage_text.trim().parse().ok()?;
    Some(Observation { available: capacity.saturating_sub(working_set(usage, memory_stat)), capacity })
}

/// `pid.available` from `/proc/sys/kernel/pid_max` and `/proc/loadavg` texts.
pub fn pids(pid_max_text: &str, loadavg_text: &str) -> Option<Observation> {
    let max: i64 = pid_max_text.trim().parse().ok()?;
    let running = loadavg_text.split_whitespace().nth(3)?.split_once('/')?.1.parse::<i64>().ok()?;
    Some(Observation { available: max.saturating_sub(running), capacity: max })
}

/// `nodefs.available` from statvfs numbers (blocks available to unprivileged users).
pub fn nodefs(fragment_size: u64, blocks: u64, blocks_available: u64) -> Observation {
    let bytes = |n: u64| i64::try_from(n.saturating_mul(fragment_size)).unwrap_or(i64::MAX);
    Observation { available: bytes(blocks_available), capacity: bytes(blocks) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_set_is_usage_less_inactive_file() {
        let v1 = "cache 100\ninactive_file 7\ntotal_inactive_file 300\n";
        let v2 = "anon 10\ninactive_file 300\n";
        let cases = [(1000, v1, 700), (1000, v2, 700), (1000, "", 1000), (100, v1, 0)];
        for (usage, stat, want) in cases {
            assert_eq!(working_set(usage, stat), want, "{usage} {stat:?}");
        }
        assert_eq!(memory(4000, "1000\n", v1), Some(Observation { available: 3300, capacity: 4000 }));
        assert_eq!(memory(4000, "junk", v1), None);
    }

    #[test]
    fn pids_and_nodefs() {
        assert_eq!(
            pids("4194304\n", "0.52 0.58 0.59 3/1024 12345\n"),
            Some(Observation { available: 4_193_280, capacity: 4_194_304 })
        );
        assert_eq!(pids("x", "0 0 0 1/2 3"), None);
        assert_eq!(nodefs(4096, 100, 25), Observation { available: 102_400, capacity: 409_600 });
    }
}
