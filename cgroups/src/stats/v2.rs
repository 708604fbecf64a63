//! Reading a v2 cgroup: `cpu.stat`, `memory.current`, `memory.stat`,
//! `memory.max`, `pids.current`, `pids.max` and the pressure files.

use std::path::Path;

use super::{parse, read_parsed, read_psi, CgroupStats, CpuStats, MemoryStats, PidsStats, Result};

/// Reads the stats of the v2 cgroup in `dir`.
pub(super) fn read(dir: &Path) -> Result<CgroupStats> {
    let cpu = read_parsed(&dir.join("cpu.stat"), cpu_stat)?;
    let memory = match read_parsed(&dir.join("memory.current"), parse::single_u64)? {
        None => None,
        Some(usage) => {
            let limit_bytes = read_parsed(&dir.join("memory.max"), parse::limit)?.flatten();
            let stat = read_parsed(&dir.join("memory.stat"), |text| Ok(memory_stat(text, usage)))?;
            Some(MemoryStats { limit_bytes, ..stat.unwrap_or_else(|| memory_stat("", usage)) })
        }
    };
    let pids = match read_parsed(&dir.join("pids.current"), parse::single_u64)? {
        None => None,
        Some(current) => {
            Some(PidsStats { current, limit: read_parsed(&dir.join("pids.max"), parse::limit)?.flatten() })
        }
    };
    Ok(CgroupStats { cpu, memory, pids, psi: read_psi(dir)? })
}

/// A v2 `cpu.stat` (microsecond counters) as nanoseconds. The throttling
/// keys exist only where the cpu controller is enabled; they read as 0.
pub(super) fn cpu_stat(text: &str) -> Result<CpuStats, String> {
    let stat = parse::flat_keyed(text);
    let micros = |key: &str| stat.get(key).map(|v| v.saturating_mul(1000));
    let usage_nanos = micros("usage_usec").ok_or_else(|| "no usage_usec".to_string())?;
    Ok(CpuStats {
        usage_nanos,
        user_nanos: micros("user_usec"),
        system_nanos: micros("system_usec"),
        periods: stat.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
        throttled_nanos: micros("throttled_usec").unwrap_or(0),
    })
}

/// Memory numbers from a v2 `memory.stat` and `memory.current`;
/// working set = usage - inactive_file, floored at 0.
pub(super) fn memory_stat(text: &str, usage_bytes: u64) -> MemoryStats {
    let stat = parse::flat_keyed(text);
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    MemoryStats {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(get("inactive_file")),
        rss_bytes: get("anon"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        limit_bytes: None,
    }
}
