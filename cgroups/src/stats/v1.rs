//! Reading a v1 cgroup: `cpuacct.usage`, `cpu.stat`, `memory.usage_in_bytes`,
//! `memory.stat`, `memory.limit_in_bytes`, `pids.current`, `pids.max`, and
//! the pressure files of the hybrid unified tree when there is one.

use super::{
    parse, read_parsed, read_psi, CgroupStats, Changes, CpuStats, Fetch, MemoryStats, PidsStats, Result, V1Dirs,
};

/// Reads the stats of the v1 cgroup at `dirs`.
pub(super) fn read(f: &mut impl Fetch, dirs: &V1Dirs) -> Result<CgroupStats> {
    Ok(CgroupStats {
        cpu: read_cpu(f, dirs)?,
        memory: read_memory(f, dirs)?,
        pids: read_pids(f, dirs)?,
        psi: match &dirs.unified {
            Some(dir) => read_psi(f, dir)?,
            None => None,
        },
    })
}

fn read_cpu(f: &mut impl Fetch, dirs: &V1Dirs) -> Result<Option<CpuStats>> {
    let Some(usage_nanos) = read_parsed(f, &dirs.cpuacct, "cpuacct.usage", Changes::Always, parse::single_u64)? else {
        return Ok(None);
    };
    let stat =
        read_parsed(f, &dirs.cpu, "cpu.stat", Changes::Always, |text| Ok(cpu_throttling(text)))?.unwrap_or_default();
    Ok(Some(CpuStats { usage_nanos, user_nanos: None, system_nanos: None, ..stat }))
}

/// The throttling counters of a v1 `cpu.stat` (`throttled_time` is in ns).
pub(super) fn cpu_throttling(text: &str) -> CpuStats {
    let [periods, throttled_periods, throttled_nanos] =
        parse::pick(text, ["nr_periods", "nr_throttled", "throttled_time"]).map(|v| v.unwrap_or(0));
    CpuStats { periods, throttled_periods, throttled_nanos, ..CpuStats::default() }
}

fn read_memory(f: &mut impl Fetch, dirs: &V1Dirs) -> Result<Option<MemoryStats>> {
    let usage = read_parsed(f, &dirs.memory, "memory.usage_in_bytes", Changes::Always, parse::single_u64)?;
    let Some(usage_bytes) = usage else {
        return Ok(None);
    };
    let limit_bytes =
        read_parsed(f, &dirs.memory, "memory.limit_in_bytes", Changes::Rarely, parse::v1_memory_limit)?.flatten();
    let stat = read_parsed(f, &dirs.memory, "memory.stat", Changes::Always, |text| Ok(memory_stat(text, usage_bytes)))?;
    Ok(Some(MemoryStats { limit_bytes, ..stat.unwrap_or_else(|| memory_stat("", usage_bytes)) }))
}

/// Memory numbers from a v1 `memory.stat` (the hierarchical `total_*` keys)
/// and the usage; working set = usage - total_inactive_file, floored at 0.
pub(super) fn memory_stat(text: &str, usage_bytes: u64) -> MemoryStats {
    let [inactive_file, rss_bytes, page_faults, major_page_faults] =
        parse::pick(text, ["total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"])
            .map(|v| v.unwrap_or(0));
    MemoryStats {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(inactive_file),
        rss_bytes,
        page_faults,
        major_page_faults,
        limit_bytes: None,
    }
}

fn read_pids(f: &mut impl Fetch, dirs: &V1Dirs) -> Result<Option<PidsStats>> {
    let Some(current) = read_parsed(f, &dirs.pids, "pids.current", Changes::Always, parse::single_u64)? else {
        return Ok(None);
    };
    let limit = read_parsed(f, &dirs.pids, "pids.max", Changes::Rarely, parse::limit)?.flatten();
    Ok(Some(PidsStats { current, limit }))
}
