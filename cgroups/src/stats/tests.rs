//! Table tests of the parsers on literal file contents, and the v1/v2
//! readers against cgroup files written into a temp dir.

use std::path::Path;

use super::parse::{self, ProcCgroup};
use super::*;

#[test]
fn single_values_and_limits_parse_as_the_kernel_writes_them() {
    let cases: &[(&str, Result<Option<u64>, ()>)] = &[
        ("max\n", Ok(None)),
        ("67108864\n", Ok(Some(67_108_864))),
        ("0", Ok(Some(0))),
        ("-1\n", Err(())),
        ("", Err(())),
        ("12k", Err(())),
    ];
    for (text, want) in cases {
        assert_eq!(parse::limit(text).map_err(|_| ()), *want, "{text:?}");
    }
    assert_eq!(parse::single_u64(" 42 \n"), Ok(42));
    assert!(parse::single_u64("18446744073709551616").is_err(), "overflow is an error, not a wrap");
}

#[test]
fn v1_memory_limit_sentinel_means_unlimited() {
    let cases = [("9223372036854771712\n", None), ("9223372036854775807\n", None), ("67108864\n", Some(67_108_864))];
    for (text, want) in cases {
        assert_eq!(parse::v1_memory_limit(text), Ok(want), "{text:?}");
    }
}

#[test]
fn flat_keyed_skips_malformed_lines() {
    let stat = parse::flat_keyed("nr_periods 10\nbogus\nnr_throttled x\nthree part line\nthrottled_time 5\n");
    assert_eq!(stat.len(), 2);
    assert_eq!(stat["nr_periods"], 10);
    assert_eq!(stat["throttled_time"], 5);
}

#[test]
fn pressure_files_parse_with_and_without_full() {
    let both =
        "some avg10=0.09 avg60=0.72 avg300=0.38 total=13090614622\nfull avg10=1.50 avg60=0.00 avg300=0.00 total=7\n";
    let parsed = parse::pressure(both).unwrap();
    assert_eq!(parsed.some.avg10, 0.09);
    assert_eq!(parsed.some.avg60, 0.72);
    assert_eq!(parsed.some.total_micros, 13_090_614_622);
    assert_eq!(parsed.full.map(|f| (f.avg10, f.total_micros)), Some((1.5, 7)));

    let some_only = parse::pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=3\n").unwrap();
    assert_eq!(some_only.full, None);
    assert_eq!(some_only.some.total_micros, 3);

    for bad in ["", "full avg10=0 avg60=0 avg300=0 total=0", "some avg10=0", "some avg10=x avg60=0 avg300=0 total=0"] {
        assert!(parse::pressure(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn proc_cgroup_parses_hybrid_v1_and_v2_lines() {
    let hybrid =
        "9:name=systemd:/\n8:pids:/k8s.io/abc\n3:cpu,cpuacct:/k8s.io/abc\n4:memory:/k8s.io/abc\n0::/k8s.io/abc\n";
    let parsed = parse::proc_cgroup(hybrid).unwrap();
    assert_eq!(parsed.v1["memory"], "/k8s.io/abc");
    assert_eq!(parsed.v1["cpu"], "/k8s.io/abc");
    assert_eq!(parsed.v1["cpuacct"], "/k8s.io/abc");
    assert_eq!(parsed.v1["name=systemd"], "/");
    assert_eq!(parsed.unified.as_deref(), Some("/k8s.io/abc"));

    let v2 = parse::proc_cgroup("0::/kubepods.slice/x:y\n").unwrap();
    assert!(v2.v1.is_empty());
    assert_eq!(v2.unified.as_deref(), Some("/kubepods.slice/x:y"), "a ':' in the path is kept");

    for bad in ["garbage", "1:memory:relative"] {
        assert!(parse::proc_cgroup(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn working_set_is_usage_minus_inactive_file_floored_at_zero() {
    let cases = [
        // (usage, inactive_file, want working set)
        (100_000, 30_000, 70_000),
        (100_000, 0, 100_000),
        (10_000, 30_000, 0),
    ];
    for (usage, inactive, want) in cases {
        let v1_text = format!("inactive_file 1\ntotal_inactive_file {inactive}\ntotal_rss 5\n");
        assert_eq!(v1::memory_stat(&v1_text, usage).working_set_bytes, want, "v1 {usage} {inactive}");
        let v2_text = format!("anon 5\ninactive_file {inactive}\n");
        assert_eq!(v2::memory_stat(&v2_text, usage).working_set_bytes, want, "v2 {usage} {inactive}");
    }
}

#[test]
fn v2_cpu_stat_is_converted_to_nanoseconds() {
    let text =
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 40\nnr_throttled 30\nthrottled_usec 2000\n";
    let cpu = v2::cpu_stat(text).unwrap();
    assert_eq!(
        cpu,
        CpuStats {
            usage_nanos: 1_500_000,
            user_nanos: Some(1_000_000),
            system_nanos: Some(500_000),
            periods: 40,
            throttled_periods: 30,
            throttled_nanos: 2_000_000,
        }
    );
    // Without the cpu controller enabled only the usage keys exist.
    let bare = v2::cpu_stat("usage_usec 7\nuser_usec 4\nsystem_usec 3\n").unwrap();
    assert_eq!((bare.usage_nanos, bare.periods, bare.throttled_nanos), (7_000, 0, 0));
    assert!(v2::cpu_stat("user_usec 4\n").is_err());
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn v1_reader_reads_each_controller_directory() {
    let root = tempfile::tempdir().unwrap();
    let path = "/k8s.io/abc";
    let base = |c: &str| root.path().join(c).join("k8s.io/abc");
    write(&base("cpuacct"), "cpuacct.usage", "123456789\n");
    write(&base("cpu"), "cpu.stat", "nr_periods 50\nnr_throttled 20\nthrottled_time 999\n");
    write(&base("memory"), "memory.usage_in_bytes", "1000000\n");
    write(&base("memory"), "memory.limit_in_bytes", "67108864\n");
    write(
        &base("memory"),
        "memory.stat",
        "total_inactive_file 200000\ntotal_rss 600000\ntotal_pgfault 9\ntotal_pgmajfault 1\n",
    );
    write(&base("pids"), "pids.current", "3\n");
    write(&base("pids"), "pids.max", "max\n");
    write(&root.path().join("unified"), "cgroup.procs", "");
    write(&base("unified"), "memory.pressure", "some avg10=1.00 avg60=0.00 avg300=0.00 total=5\n");
    write(&base("unified"), "cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=2\n");

    let hierarchy = Hierarchy::detect(root.path());
    assert_eq!(hierarchy, Hierarchy::V1 { root: root.path().to_path_buf(), unified: true });
    let stats = read(&hierarchy.dirs(path)).unwrap();
    assert_eq!(
        stats.cpu,
        Some(CpuStats {
            usage_nanos: 123_456_789,
            periods: 50,
            throttled_periods: 20,
            throttled_nanos: 999,
            ..Default::default()
        })
    );
    assert_eq!(
        stats.memory,
        Some(MemoryStats {
            usage_bytes: 1_000_000,
            working_set_bytes: 800_000,
            rss_bytes: 600_000,
            page_faults: 9,
            major_page_faults: 1,
            limit_bytes: Some(67_108_864),
        })
    );
    assert_eq!(stats.pids, Some(PidsStats { current: 3, limit: None }));
    let psi = stats.psi.unwrap();
    let totals = (psi.cpu.map(|c| c.some.total_micros), psi.memory.map(|m| m.some.total_micros), psi.io);
    assert_eq!(totals, (Some(2), Some(5), None));

    // The same cgroup found through a process's /proc/<pid>/cgroup.
    let proc = parse::proc_cgroup(
        "4:memory:/k8s.io/abc\n2:cpuacct:/k8s.io/abc\n1:cpu:/k8s.io/abc\n8:pids:/k8s.io/abc\n0::/k8s.io/abc\n",
    )
    .unwrap();
    assert_eq!(hierarchy.dirs_of_process(&proc).unwrap(), hierarchy.dirs(path));
}

#[test]
fn v1_reader_reports_absent_controllers_and_gone_cgroups_as_none() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("memory/gone-soon");
    write(&base, "memory.usage_in_bytes", "4096\n");
    let hierarchy = Hierarchy::detect(root.path());
    let stats = read(&hierarchy.dirs("/gone-soon")).unwrap();
    assert_eq!(stats.cpu, None);
    assert_eq!(stats.pids, None);
    assert_eq!(stats.psi, None);
    assert_eq!(stats.memory.map(|m| (m.usage_bytes, m.working_set_bytes, m.limit_bytes)), Some((4096, 4096, None)));
    assert_eq!(read(&hierarchy.dirs("/never-was")).unwrap(), CgroupStats::default());
}

#[test]
fn v1_reader_names_the_file_it_could_not_parse() {
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join("cpuacct/x"), "cpuacct.usage", "lots\n");
    let error = read(&Hierarchy::detect(root.path()).dirs("/x")).unwrap_err();
    assert!(error.to_string().contains("cpuacct.usage"), "{error}");
}

#[test]
fn v2_reader_reads_one_directory() {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "cgroup.controllers", "cpu memory pids\n");
    let dir = root.path().join("kubepods.slice/pod1");
    write(
        &dir,
        "cpu.stat",
        "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300\n",
    );
    write(&dir, "memory.current", "500000\n");
    write(&dir, "memory.max", "max\n");
    write(&dir, "memory.stat", "anon 300000\ninactive_file 100000\npgfault 12\npgmajfault 2\n");
    write(&dir, "pids.current", "7\n");
    write(&dir, "pids.max", "1024\n");
    write(
        &dir,
        "cpu.pressure",
        "some avg10=2.00 avg60=1.00 avg300=0.50 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    );

    let hierarchy = Hierarchy::detect(root.path());
    assert_eq!(hierarchy, Hierarchy::V2 { root: root.path().to_path_buf() });
    let stats = read(&hierarchy.dirs("/kubepods.slice/pod1")).unwrap();
    let cpu = stats.cpu.unwrap();
    assert_eq!((cpu.usage_nanos, cpu.throttled_periods, cpu.throttled_nanos), (2_000_000, 4, 300_000));
    assert_eq!(
        stats.memory,
        Some(MemoryStats {
            usage_bytes: 500_000,
            working_set_bytes: 400_000,
            rss_bytes: 300_000,
            page_faults: 12,
            major_page_faults: 2,
            limit_bytes: None,
        })
    );
    assert_eq!(stats.pids, Some(PidsStats { current: 7, limit: Some(1024) }));
    assert_eq!(stats.psi.and_then(|p| p.cpu).map(|c| c.some.avg10), Some(2.0));

    let proc = ProcCgroup { unified: Some("/kubepods.slice/pod1".into()), ..Default::default() };
    assert_eq!(hierarchy.dirs_of_process(&proc).unwrap(), CgroupDirs::V2(dir));
    assert!(hierarchy.dirs_of_process(&ProcCgroup::default()).is_err());
}

#[test]
fn this_hosts_root_cgroup_reads_without_error() {
    // Real cgroupfs: the node's own accounting must parse on this kernel.
    let root = Path::new("/sys/fs/cgroup");
    if !root.exists() {
        return;
    }
    let stats = read(&Hierarchy::detect(root).root_dirs()).unwrap();
    let memory = stats.memory.expect("the root memory cgroup is accounted");
    assert!(memory.usage_bytes > 0 && memory.working_set_bytes <= memory.usage_bytes);
    assert!(stats.cpu.expect("root cpu usage").usage_nanos > 0);
}
