//! Reading a v1 cgroup: `cpuacct.usage`, `cpu.stat`, `memory.usage_in_bytes`,
//! `memory.stat`, `memory.limit_in_bytes`, `pids.current`, `pids.max`, and
//! the pressure files of the hybrid unified tree when there is one.

use super::{parse, read_parsed, read_psi, CgroupStats, CpuStats, MemoryStats, PidsStats, Result, V1Dirs};

/// Reads the stats of the v1 cgroup at `dirs`.
pub(super) fn read(dirs: &V1Dirs) -> Result<CgroupStats> {
    Ok(CgroupStats {
        cpu: read_cpu(dirs)?,
        memory: read_memory(dirs)?,
        pids: read_pids(dirs)?,
        psi: match &dirs.unified {
            Some(dir) => read_psi(dir)?,
            None => None,
        },
    })
}

fn read_cpu(dirs: &V1Dirs) -> Result<Option<CpuStats>> {
    let Some(usage_nanos) = read_parsed(&dirs.cpuacct.join("cpuacct.usage"), parse::single_u64)? else {
        return Ok(None);
    };
    let stat = read_parsed(&dirs.cpu.join("cpu.stat"), |text| Ok(cpu_throttling(text)))?.unwrap_or_default();
    Ok(Some(CpuStats { usage_nanos, user_nanos: None, system_nanos: None, ..stat }))
}

/// The throttling counters of a v1 `cpu.stat` (`throttled_time` is in ns).
pub(super) fn cpu_throttling(text: &str) -> CpuStats {
    let stat = parse::flat_keyed(text);
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    CpuStats {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_nanos: get("throttled_time"),
        ..CpuStats::default()
    }
}

fn read_memory(dirs: &V1Dirs) -> Result<Option<MemoryStats>> {
    let Some(usage_bytes) = read_parsed(&dirs.memory.join("memory.usage_in_bytes"), parse::single_u64)? else {
        return Ok(None);
    };
    let limit_bytes = read_parsed(&dirs.memory.join("memory.limit_in_bytes"), parse::v1_memory_limit)?.flatten();
    let stat = read_parsed(&dirs.memory.join("memory.stat"), |text| Ok(memory_stat(text, usage_bytes)))?;
    Ok(Some(MemoryStats { limit_bytes, ..stat.unwrap_or_else(|| memory_stat("", usage_bytes)) }))
}

/// Memory numbers from a v1 `memory.stat` (the hierarchical `total_*` keys)
/// and the usage; working set = usage - total_inactive_file, floored at 0.
pub(super) fn memory_stat(text: &str, usage_bytes: u64) -> MemoryStats {
    let stat = parse::flat_keyed(text);
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    MemoryStats {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(get("total_inactive_file")),
        rss_bytes: get("total_rss"),
        page_faults: get("total_pgfault"),
        major_page_faults: get("total_pgmajfault"),
        limit_bytes: None,
    }
}

fn read_pids(dirs: &V1Dirs) -> Result<Option<PidsStats>> {
    let Some(current) = read_parsed(&dirs.pids.join("pids.current"), parse::single_u64)? else {
        return Ok(None);
    };
    let limit = read_parsed(&dirs.pids.join("pids.max"), parse::limit)?.flatten();
    Ok(Some(PidsStats { current, limit }))
}
