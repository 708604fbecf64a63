//! Pure parsers of cgroupfs file contents. Each takes the text the kernel
//! writes and returns a value or a message saying what was wrong; none
//! touches the filesystem, so they are table-tested on literal contents.

use std::collections::HashMap;

use super::{Pressure, PsiLine};

/// v1 memory limits at or above this mean "no limit" (the kernel writes
/// `PAGE_COUNTER_MAX * PAGE_SIZE`, 0x7FFFFFFFFFFFF000 on x86-64).
pub const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// A single unsigned number (`memory.current`, `cpuacct.usage`).
pub fn single_u64(text: &str) -> Result<u64, String> {
    let value = text.trim();
    value.parse().map_err(|_| format!("not a number: {value:?}"))
}

/// A limit file: a number, or `max` for none (`memory.max`, `pids.max`).
pub fn limit(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        _ => single_u64(text).map(Some),
    }
}

/// A v1 memory limit: a number where the near-`i64::MAX` sentinel is "none".
pub fn v1_memory_limit(text: &str) -> Result<Option<u64>, String> {
    let value = single_u64(text)?;
    Ok((value < V1_UNLIMITED_FLOOR).then_some(value))
}

/// A flat keyed file (`key value` per line: `cpu.stat`, `memory.stat`).
/// Lines that do not have that shape are skipped, as the kernel may add
/// keys with other shapes in later versions.
pub fn flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_ascii_whitespace();
            let key = parts.next()?;
            let value = parts.next()?.parse().ok()?;
            parts.next().is_none().then_some((key, value))
        })
        .collect()
}

/// The values of `keys` in a flat keyed file, in the order asked (`None`
/// for a key that is absent or malformed), in one pass without building a
/// map: the hot path reads only a few keys of files with dozens.
pub fn pick<const N: usize>(text: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut found = [None; N];
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else { continue };
        if let Some(i) = keys.iter().position(|k| *k == key) {
            found[i] = value.parse().ok();
        }
    }
    found
}

/// One line of a pressure file, `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`,
/// without its leading kind word.
fn psi_line(fields: &str) -> Result<PsiLine, String> {
    let mut line = PsiLine::default();
    let mut seen = 0u8;
    for field in fields.split_ascii_whitespace() {
        let (key, value) = field.split_once('=').ok_or_else(|| format!("field without '=': {field:?}"))?;
        let bad = || format!("bad {key} value: {value:?}");
        match key {
            "avg10" => line.avg10 = value.parse().map_err(|_| bad())?,
            "avg60" => line.avg60 = value.parse().map_err(|_| bad())?,
            "avg300" => line.avg300 = value.parse().map_err(|_| bad())?,
            "total" => line.total_micros = value.parse().map_err(|_| bad())?,
            _ => continue,
        }
        seen += 1;
    }
    if seen < 4 {
        return Err(format!("incomplete pressure line: {fields:?}"));
    }
    Ok(line)
}

/// A pressure file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
pub fn pressure(text: &str) -> Result<Pressure, String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (kind, fields) = line.split_once(' ').ok_or_else(|| format!("bad pressure line: {line:?}"))?;
        match kind {
            "some" => some = Some(psi_line(fields)?),
            "full" => full = Some(psi_line(fields)?),
            _ => return Err(format!("unknown pressure kind: {kind:?}")),
        }
    }
    let some = some.ok_or_else(|| "no 'some' line".to_string())?;
    Ok(Pressure { some, full })
}

/// The cgroups of a process, from `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// v1 hierarchies: controller name (`memory`, `cpu`, `cpuacct`, `pids`,
    /// `name=systemd`) -> path inside that hierarchy.
    pub v1: HashMap<String, String>,
    /// The path in the unified (v2) hierarchy, from the `0::` line.
    pub unified: Option<String>,
}

/// Parses `/proc/<pid>/cgroup` (`hierarchy-id:controllers:path` per line;
/// the path may itself contain `:`).
pub fn proc_cgroup(text: &str) -> Result<ProcCgroup, String> {
    let mut parsed = ProcCgroup::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad cgroup line: {line:?}"));
        };
        if !path.starts_with('/') {
            return Err(format!("cgroup path is not absolute: {line:?}"));
        }
        if id == "0" && controllers.is_empty() {
            parsed.unified = Some(path.to_string());
            continue;
        }
        for controller in controllers.split(',').filter(|c| !c.is_empty()) {
            parsed.v1.insert(controller.to_string(), path.to_string());
        }
    }
    Ok(parsed)
}
