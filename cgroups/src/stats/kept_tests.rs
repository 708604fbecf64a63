//! [`StatsReader`] against a temp-dir cgroupfs: kept files see new values,
//! limits and absent files are looked at again only on refresh, sweeps
//! close what was not read, and the descriptor budget holds.

use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

/// A v2 cgroup `/pod` with cpu, memory and pids files (no PSI).
fn v2_cgroup(root: &Path) -> CgroupDirs {
    write(root, "cgroup.controllers", "cpu memory pids\n");
    let dir = root.join("pod");
    write(&dir, "cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n");
    write(&dir, "memory.current", "1000\n");
    write(&dir, "memory.max", "4096\n");
    write(&dir, "memory.stat", "inactive_file 100\nanon 800\n");
    write(&dir, "pids.current", "2\n");
    write(&dir, "pids.max", "max\n");
    Hierarchy::detect(root).dirs("/pod")
}

#[test]
fn kept_files_read_fresh_counters_and_match_one_shot_reads() {
    let root = tempfile::tempdir().unwrap();
    let dirs = v2_cgroup(root.path());
    let mut reader = StatsReader::new(100, 5);
    assert_eq!(reader.read(&dirs).unwrap(), read(&dirs).unwrap());
    // cpu.stat, memory.current, memory.stat, pids.current stay open; limits do not.
    assert_eq!(reader.open_files(), 4);
    // Rewritten in place (same inode, as cgroupfs regenerates content).
    std::fs::write(root.path().join("pod/cpu.stat"), "usage_usec 2000000\n").unwrap();
    std::fs::write(root.path().join("pod/memory.current"), "3000\n").unwrap();
    let stats = reader.read(&dirs).unwrap();
    assert_eq!(stats.cpu.map(|c| c.usage_nanos), Some(2_000_000_000));
    assert_eq!(stats.memory.map(|m| (m.usage_bytes, m.working_set_bytes)), Some((3000, 2900)));
    assert_eq!(stats, read(&dirs).unwrap());
}

#[test]
fn limits_and_absent_files_are_looked_at_again_every_refresh_reads() {
    let root = tempfile::tempdir().unwrap();
    let dirs = v2_cgroup(root.path());
    let mut reader = StatsReader::new(100, 3);
    assert_eq!(reader.read(&dirs).unwrap().psi, None);
    std::fs::write(root.path().join("pod/memory.max"), "8192\n").unwrap();
    write(&root.path().join("pod"), "cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n");
    // Reads 2 and 3: the old limit, no PSI (not looked at again yet).
    for _ in 0..2 {
        let stats = reader.read(&dirs).unwrap();
        assert_eq!(stats.memory.and_then(|m| m.limit_bytes), Some(4096));
        assert_eq!(stats.psi, None);
    }
    // Read 4 refreshes.
    let stats = reader.read(&dirs).unwrap();
    assert_eq!(stats.memory.and_then(|m| m.limit_bytes), Some(8192));
    assert_eq!(stats.psi.and_then(|p| p.cpu).map(|p| p.some.total_micros), Some(7));
}

#[test]
fn sweep_forgets_cgroups_not_read_since_the_last_sweep() {
    let root = tempfile::tempdir().unwrap();
    let dirs = v2_cgroup(root.path());
    let other = Hierarchy::detect(root.path()).dirs("/other");
    write(&root.path().join("other"), "cpu.stat", "usage_usec 1\n");
    let mut reader = StatsReader::new(100, 5);
    reader.read(&dirs).unwrap();
    reader.read(&other).unwrap();
    assert_eq!((reader.cgroups(), reader.open_files()), (2, 5));
    reader.sweep();
    reader.read(&dirs).unwrap();
    reader.sweep();
    assert_eq!((reader.cgroups(), reader.open_files()), (1, 4));
}

#[test]
fn over_the_descriptor_budget_files_are_opened_per_read() {
    let root = tempfile::tempdir().unwrap();
    let dirs = v2_cgroup(root.path());
    let mut reader = StatsReader::new(2, 5);
    reader.read(&dirs).unwrap();
    assert_eq!(reader.open_files(), 2);
    std::fs::write(root.path().join("pod/pids.current"), "9\n").unwrap();
    assert_eq!(reader.read(&dirs).unwrap().pids.map(|p| p.current), Some(9));
    assert_eq!(reader.open_files(), 2);
}

#[test]
fn a_cgroup_that_is_gone_reads_as_empty() {
    let root = tempfile::tempdir().unwrap();
    let dirs = v2_cgroup(root.path());
    let mut reader = StatsReader::new(100, 5);
    assert!(reader.read(&dirs).unwrap().cpu.is_some());
    std::fs::remove_dir_all(root.path().join("pod")).unwrap();
    // A regular file stays readable after unlink (cgroupfs answers ENODEV);
    // a fresh reader finds nothing.
    assert_eq!(StatsReader::new(100, 5).read(&dirs).unwrap(), CgroupStats::default());
}

#[test]
fn pick_takes_the_asked_keys_in_order() {
    let text = "a 1\nb 2\nbogus\nc x\nd 4 5\ne 5\n";
    assert_eq!(parse::pick(text, ["e", "a", "c", "d", "z"]), [Some(5), Some(1), None, None, None]);
}

#[test]
fn this_hosts_root_cgroup_reads_the_same_kept_or_not() {
    let hierarchy = Hierarchy::detect(Path::new("/sys/fs/cgroup"));
    let mut reader = StatsReader::new(100, 5);
    let (first, second) = (reader.read(&hierarchy.root_dirs()).unwrap(), reader.read(&hierarchy.root_dirs()).unwrap());
    assert_eq!(first.cpu.is_some(), second.cpu.is_some());
    assert_eq!(first.memory.is_some(), second.memory.is_some());
    if let (Some(a), Some(b)) = (first.cpu, second.cpu) {
        assert!(b.usage_nanos >= a.usage_nanos, "cpu counter went back: {a:?} {b:?}");
    }
}
