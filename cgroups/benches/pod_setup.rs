//! The pod-start overhead of the cgroup setup on this host's real cgroupfs:
//! `ensure_pod` (create the pod cgroup in every hierarchy, write its limits)
//! for 100 Guaranteed pods under a private cgroup root, then their removal.
//! Prints per-pod wall time (p50, p99) and the process CPU time per pod.
//! Goal: under 2 ms per pod. Run: `cargo bench -p bosun-cgroups --bench pod_setup`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_cgroups::{Backend, CgroupDriver, Limits, Naming, NodeTree, QosClass};

const PODS: usize = 100;

fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| Duration::from_micros((t.tv_sec() * 1_000_000 + t.tv_usec()) as u64);
    micros(usage.user_time()) + micros(usage.system_time())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn main() {
    let backend = Backend::detect(Path::new("/sys/fs/cgroup")).expect("cgroupfs");
    let root = format!("/bosun-cgbench-{}", std::process::id());
    let tree = NodeTree::new(Arc::new(backend.clone()), Naming::Cgroupfs, &root);
    tree.ensure_top(&Limits::default()).expect("top");
    let limits = Limits {
        cpu_shares: Some(256),
        cpu_quota_us: Some(25_000),
        cpu_period_us: Some(100_000),
        memory_bytes: Some(64 << 20),
        pids_max: Some(1024),
    };
    let mut setup = Vec::with_capacity(PODS);
    let cpu_before = cpu_time();
    for i in 0..PODS {
        let started = Instant::now();
        tree.ensure_pod(&format!("bench-{i}"), QosClass::Guaranteed, &limits).expect("pod");
        setup.push(started.elapsed());
    }
    let setup_cpu = cpu_time() - cpu_before;
    let mut removal = Vec::with_capacity(PODS);
    for i in 0..PODS {
        let started = Instant::now();
        tree.remove_pod(&format!("bench-{i}")).expect("remove");
        removal.push(started.elapsed());
    }
    backend.remove(root.trim_start_matches('/')).expect("remove the bench root");
    setup.sort();
    removal.sort();
    println!(
        "cgroup setup per pod ({} backend, {PODS} pods): p50 {:?}, p99 {:?}, cpu {:?}/pod; removal p50 {:?}, p99 {:?}",
        backend.version(),
        percentile(&setup, 50),
        percentile(&setup, 99),
        setup_cpu / PODS as u32,
        percentile(&removal, 50),
        percentile(&removal, 99),
    );
}
