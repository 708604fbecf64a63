//! Reading a v2 cgroup: `cpu.stat`, `memory.current`, `memory.stat`,
//! `memory.max`, `pids.current`, `pids.max` and the pressure files.

use std::path::Path;

use super::{parse, read_parsed, read_psi, CgroupStats, Changes, CpuStats, Fetch, MemoryStats, PidsStats, Result};

/// Reads the stats of the v2 cgroup in `dir`.
pub(super) fn read(f: &mut impl Fetch, dir: &Path) -> Result<CgroupStats> {
    let cpu = read_parsed(f, dir, "cpu.stat", Changes::Always, cpu_stat)?;
    let memory = match read_parsed(f, dir, "memory.current", Changes::Always, parse::single_u64)? {
        None => None,
        Some(usage) => {
            let limit_bytes = read_parsed(f, dir, "memory.max", Changes::Rarely, parse::limit)?.flatten();
            let stat = read_parsed(f, dir, "memory.stat", Changes::Always, |text| Ok(memory_stat(text, usage)))?;
            Some(MemoryStats { limit_bytes, ..stat.unwrap_or_else(|| memory_stat("", usage)) })
        }
    };
    let pids = match read_parsed(f, dir, "pids.current", Changes::Always, parse::single_u64)? {
        None => None,
        Some(current) => {
            let limit = read_parsed(f, dir, "pids.max", Changes::Rarely, parse::limit)?.flatten();
            Some(PidsStats { current, limit })
        }
    };
    Ok(CgroupStats { cpu, memory, pids, psi: read_psi(f, dir)? })
}

/// A v2 `cpu.stat` (microsecond counters) as nanoseconds. The throttling
/// keys exist only where the cpu controller is enabled; they read as 0.
pub(super) fn cpu_stat(text: &str) -> Result<CpuStats, String> {
    let [usage, user, system, periods, throttled, throttled_usec] =
        parse::pick(text, ["usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"]);
    let nanos = |micros: Option<u64>| micros.map(|v| v.saturating_mul(1000));
    Ok(CpuStats {
        usage_nanos: nanos(usage).ok_or_else(|| "no usage_usec".to_string())?,
        user_nanos: nanos(user),
        system_nanos: nanos(system),
        periods: periods.unwrap_or(0),
        throttled_periods: throttled.unwrap_or(0),
        throttled_nanos: nanos(throttled_usec).unwrap_or(0),
    })
}

/// Memory numbers from a v2 `memory.stat` and `memory.current`;
/// working set = usage - inactive_file, floored at 0.
pub(super) fn memory_stat(text: &str, usage_bytes: u64) -> MemoryStats {
    let [inactive_file, rss_bytes, page_faults, major_page_faults] =
        parse::pick(text, ["inactive_file", "anon", "pgfault", "pgmajfault"]).map(|v| v.unwrap_or(0));
    MemoryStats {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(inactive_file),
        rss_bytes,
        page_faults,
        major_page_faults,
        limit_bytes: None,
    }
}
