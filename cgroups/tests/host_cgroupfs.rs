//! The tree on this host's real cgroupfs (v1 hybrid on the project's
//! machines, v2 elsewhere), under a private cgroup root so it cannot touch
//! the node's `kubepods`: each QoS class lands in its place with its values
//! read back from the kernel's files, and removal leaves nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bosun_cgroups::{Backend, CgroupDriver, Limits, Naming, NodeTree, QosClass};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

#[test]
fn builds_limits_and_removes_the_pod_tree_on_the_host() {
    let backend = Backend::detect(Path::new("/sys/fs/cgroup")).expect("a cgroup hierarchy on this host");
    let root = format!("/bosun-cgtest-{}", std::process::id());
    let tree = NodeTree::new(Arc::new(backend.clone()), Naming::Cgroupfs, &root);
    let kubepods = Limits { cpu_shares: Some(2048), memory_bytes: Some(1 << 30), ..Limits::default() };
    tree.ensure_top(&kubepods).expect("kubepods");
    let guaranteed = Limits {
        cpu_shares: Some(256),
        cpu_quota_us: Some(25_000),
        cpu_period_us: Some(100_000),
        memory_bytes: Some(64 << 20),
        pids_max: Some(1024),
    };
    let burstable = Limits { cpu_shares: Some(102), ..Limits::default() };
    let besteffort = Limits { cpu_shares: Some(2), ..Limits::default() };
    let cases = [
        (QosClass::Guaranteed, "g", guaranteed, format!("{root}/kubepods/podg")),
        (QosClass::Burstable, "b", burstable, format!("{root}/kubepods/burstable/podb")),
        (QosClass::BestEffort, "e", besteffort, format!("{root}/kubepods/besteffort/pode")),
    ];
    for (qos, uid, limits, want) in &cases {
        assert_eq!(&tree.ensure_pod(uid, *qos, limits).expect("pod"), want);
    }
    let relative = |p: &str| p.trim_start_matches('/').to_string();
    match &backend {
        Backend::V1(v1) => {
            let file = |controller: &str, cgroup: &str, name: &str| {
                read(&v1.dir_of(controller, &relative(cgroup)).expect(controller).join(name))
            };
            let top = format!("{root}/kubepods");
            assert_eq!(file("cpu", &top, "cpu.shares"), "2048");
            assert_eq!(file("memory", &top, "memory.limit_in_bytes"), (1u64 << 30).to_string());
            assert_eq!(file("cpu", &format!("{top}/besteffort"), "cpu.shares"), "2");
            let (g, b, e) = (&cases[0].3, &cases[1].3, &cases[2].3);
            assert_eq!(file("cpu", g, "cpu.shares"), "256");
            assert_eq!(file("cpu", g, "cpu.cfs_quota_us"), "25000");
            assert_eq!(file("cpu", g, "cpu.cfs_period_us"), "100000");
            assert_eq!(file("memory", g, "memory.limit_in_bytes"), (64u64 << 20).to_string());
            assert_eq!(file("pids", g, "pids.max"), "1024");
            assert_eq!(file("cpu", b, "cpu.shares"), "102");
            assert_eq!(file("cpu", b, "cpu.cfs_quota_us"), "-1");
            assert_eq!(file("cpu", e, "cpu.shares"), "2");
            if v1.dir_of("cpuset", "").is_some() {
                assert!(!file("cpuset", g, "cpuset.cpus").is_empty(), "cpuset copied down so tasks can join");
            }
        }
        Backend::V2(_) => {
            let file = |cgroup: &str, name: &str| read(&Path::new("/sys/fs/cgroup").join(relative(cgroup)).join(name));
            assert_eq!(file(&cases[0].3, "cpu.max"), "25000 100000");
            assert_eq!(file(&cases[0].3, "memory.max"), (64u64 << 20).to_string());
            assert_eq!(file(&cases[2].3, "cpu.weight"), "1");
        }
    }
    assert_eq!(tree.pods().expect("pods").len(), 3);
    let removed = tree.remove_orphans(&BTreeSet::from(["b".to_string()])).expect("orphans");
    assert_eq!(removed.len(), 2);
    tree.remove_pod("b").expect("remove");
    assert!(tree.pods().expect("pods").is_empty());
    backend.remove(&relative(&root)).expect("remove the test root");
    assert!(!backend.exists(&relative(&root)), "nothing left under {root}");
}
