//! Renderings as data, and the provider against the fake CRI runtime with
//! cgroup files in a temp dir.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bosun_cgroups::stats::{CgroupStats, CpuStats, Hierarchy, MemoryStats, PidsStats, Pressure, PsiLine, PsiStats};
use bosun_cri::testing::FakeCri;
use bosun_cri::{ClientOptions, CriClient};
use bosun_proto::cri as api;
use jiff::Timestamp;

use super::locate::testing::FakeLocator;
use super::sample::{sum, Collection, ContainerSample, NodeSample, PodSample, Usage};
use super::*;
use crate::labels;
use crate::pod_manager::PodRegistry;

fn usage(cpu_nanos: u64, rate: Option<u64>, working_set: u64, tasks: u64) -> Usage {
    Usage {
        stats: CgroupStats {
            cpu: Some(CpuStats {
                usage_nanos: cpu_nanos,
                periods: 10,
                throttled_periods: 4,
                throttled_nanos: 300_000_000,
                ..Default::default()
            }),
            memory: Some(MemoryStats {
                usage_bytes: working_set + 100,
                working_set_bytes: working_set,
                rss_bytes: working_set / 2,
                page_faults: 3,
                major_page_faults: 1,
                limit_bytes: Some(64 << 20),
            }),
            pids: Some(PidsStats { current: tasks, limit: None }),
            psi: None,
        },
        cpu_rate: rate,
    }
}

fn collection() -> Collection {
    let at = Timestamp::from_second(1_700_000_000).unwrap();
    let container = |name: &str, u: Usage| ContainerSample {
        name: name.into(),
        id: format!("id-{name}"),
        start_time: Some(Timestamp::from_second(1_699_999_000).unwrap()),
        usage: u,
    };
    let mut node = usage(50_000_000_000, Some(1_500_000_000), 2_000_000_000, 300);
    node.stats.memory = node.stats.memory.map(|m| MemoryStats { limit_bytes: None, ..m });
    node.stats.psi = Some(PsiStats {
        cpu: Some(Pressure { some: PsiLine { avg10: 1.5, avg60: 0.5, avg300: 0.1, total_micros: 42 }, full: None }),
        ..Default::default()
    });
    Collection {
        at,
        node: NodeSample { name: "node-a".into(), memory_capacity_bytes: 8_000_000_000, usage: node },
        pods: vec![PodSample {
            namespace: "shop".into(),
            name: "web".into(),
            uid: "u-1".into(),
            start_time: None,
            cgroup: None,
            containers: vec![
                container("app", usage(3_000_000_000, Some(100_000_000), 30 << 20, 2)),
                container("side\"car", usage(1_000_000_000, Some(5_000_000), 10 << 20, 1)),
            ],
        }],
    }
}

#[test]
fn summary_has_the_kubelet_shape_and_numbers() {
    let json = serde_json::to_value(summary::build(&collection())).unwrap();
    assert_eq!(json["node"]["nodeName"], "node-a");
    assert_eq!(json["node"]["cpu"]["usageNanoCores"], 1_500_000_000u64);
    assert_eq!(json["node"]["cpu"]["usageCoreNanoSeconds"], 50_000_000_000u64);
    assert_eq!(json["node"]["cpu"]["psi"]["some"]["avg10"], 1.5);
    assert_eq!(json["node"]["cpu"]["psi"]["full"]["total"], 0, "a missing full line reads as zero");
    assert_eq!(json["node"]["memory"]["workingSetBytes"], 2_000_000_000u64);
    assert_eq!(json["node"]["memory"]["availableBytes"], 6_000_000_000u64, "capacity - working set");
    assert_eq!(json["node"]["cpu"]["time"], "2023-11-14T22:13:20Z");

    let pod = &json["pods"][0];
    assert_eq!(pod["podRef"], serde_json::json!({"name": "web", "namespace": "shop", "uid": "u-1"}));
    assert_eq!(pod["cpu"]["usageNanoCores"], 105_000_000u64, "pod rate = sum of its containers'");
    assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 4_000_000_000u64);
    assert_eq!(pod["memory"]["workingSetBytes"], 40u64 << 20);
    assert!(pod["memory"].get("availableBytes").is_none(), "summed limits mean nothing");
    assert_eq!(pod["process_stats"]["process_count"], 3);
    let app = &pod["containers"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["memory"]["availableBytes"], (64u64 << 20) - (30 << 20), "limit - working set");
    assert_eq!(app["startTime"], "2023-11-14T21:56:40Z");
    assert!(app["cpu"].get("psi").is_none());
}

#[test]
fn pod_usage_prefers_the_pod_cgroup_and_needs_every_rate_to_sum() {
    let mut pod = collection().pods.remove(0);
    assert_eq!(pod.usage().cpu_rate, Some(105_000_000));
    pod.containers[1].usage.cpu_rate = None;
    assert_eq!(pod.usage().cpu_rate, None, "a container without a rate yet leaves the pod without one");
    let own = usage(9, Some(9), 9, 9);
    pod.cgroup = Some(own);
    assert_eq!(pod.usage(), own);
    assert_eq!(sum([]).cpu_rate, None);
    assert_eq!(sum([]).stats, CgroupStats::default());
}

#[test]
fn resource_metrics_use_upstream_series_and_escape_labels() {
    let text = metrics::render_resource(&collection());
    for line in [
        "container_cpu_usage_seconds_total{container=\"app\",namespace=\"shop\",pod=\"web\"} 3 1700000000000",
        "container_memory_working_set_bytes{container=\"side\\\"car\",namespace=\"shop\",pod=\"web\"} 10485760 1700000000000",
        "container_start_time_seconds{container=\"app\",namespace=\"shop\",pod=\"web\"} 1699999000 1700000000000",
        "node_cpu_usage_seconds_total 50 1700000000000",
        "node_memory_working_set_bytes 2000000000 1700000000000",
        "pod_cpu_usage_seconds_total{namespace=\"shop\",pod=\"web\"} 4 1700000000000",
        "pod_memory_working_set_bytes{namespace=\"shop\",pod=\"web\"} 41943040 1700000000000",
        "resource_scrape_error 0",
        "# TYPE container_cpu_usage_seconds_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let cadvisor = metrics::render_cadvisor(&collection());
    for line in [
        "container_cpu_cfs_periods_total{container=\"app\",namespace=\"shop\",pod=\"web\"} 10 1700000000000",
        "container_cpu_cfs_throttled_periods_total{container=\"app\",namespace=\"shop\",pod=\"web\"} 4 1700000000000",
        "container_cpu_cfs_throttled_seconds_total{container=\"app\",namespace=\"shop\",pod=\"web\"} 0.3 1700000000000",
    ] {
        assert!(cadvisor.lines().any(|l| l == line), "missing {line:?} in\n{cadvisor}");
    }
}

fn write_v1_cgroup(root: &Path, path: &str, cpu_nanos: u64, memory: u64) {
    let files = [
        ("cpuacct", "cpuacct.usage", cpu_nanos.to_string()),
        ("cpu", "cpu.stat", "nr_periods 5\nnr_throttled 2\nthrottled_time 7\n".to_string()),
        ("memory", "memory.usage_in_bytes", memory.to_string()),
        ("memory", "memory.stat", "total_inactive_file 1000\n".to_string()),
        ("pids", "pids.current", "1\n".to_string()),
    ];
    for (controller, file, text) in files {
        let dir = root.join(controller).join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }
}

#[tokio::test]
async fn provider_groups_running_containers_by_pod_and_computes_rates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = tokio_util::sync::CancellationToken::new();
    let fake = FakeCri::new().with_image("busybox:1.36");
    let _server = fake.serve(dir.path().join("cri.sock"), token.clone())?;
    let client = CriClient::connect(dir.path().join("cri.sock"), ClientOptions::default()).await?;
    let recipe = bosun_cri::testing::PodRecipe::new("shop", "web", "busybox:1.36");
    let sandbox_config = recipe.sandbox_config();
    let sandbox = client.run_pod_sandbox(&sandbox_config, "").await?;
    let mut ids = Vec::new();
    for name in ["app", "exited"] {
        let mut config = recipe.container_config();
        config.metadata = Some(api::ContainerMetadata { name: name.into(), attempt: 0 });
        config.labels = HashMap::from([
            (labels::POD_UID.to_string(), "u-1".to_string()),
            (labels::POD_NAMESPACE.to_string(), "shop".to_string()),
            (labels::POD_NAME.to_string(), "web".to_string()),
            (labels::CONTAINER_NAME.to_string(), name.to_string()),
        ]);
        let id = client.create_container(&sandbox, &config, &sandbox_config).await?;
        client.start_container(&id).await?;
        ids.push(id);
    }
    fake.exit_container(&ids[1], 0)?;

    let cgroups = dir.path().join("cgroupfs");
    write_v1_cgroup(&cgroups, "/", 10_000_000_000, 1 << 30);
    write_v1_cgroup(&cgroups, "/k8s.io/app", 1_000_000_000, 5000);
    let hierarchy = Hierarchy::detect(&cgroups);
    let locator = FakeLocator {
        containers: HashMap::from([(ids[0].clone(), hierarchy.dirs("/k8s.io/app"))]),
        ..Default::default()
    };
    let provider = StatsProvider::new(StatsDeps {
        runtime: Arc::new(client.clone()),
        locator: Arc::new(locator),
        registry: PodRegistry::default(),
        hierarchy,
        node_name: "node-a".into(),
        memory_capacity_bytes: 4 << 30,
        min_window: Duration::from_millis(20),
        max_open_files: 64,
    });

    let first = provider.collect().await?;
    assert_eq!(first.pods.len(), 1, "{first:?}");
    let pod = &first.pods[0];
    assert_eq!((pod.namespace.as_str(), pod.name.as_str(), pod.uid.as_str()), ("shop", "web", "u-1"));
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app"], "only running containers count");
    assert_eq!(pod.containers[0].usage.stats.memory.map(|m| m.working_set_bytes), Some(4000));
    assert_eq!(pod.containers[0].usage.cpu_rate, None, "one sample has no rate");
    assert!(Arc::ptr_eq(&first, &provider.current().await?), "a scrape within the window reuses the collection");

    tokio::time::sleep(Duration::from_millis(30)).await;
    write_v1_cgroup(&cgroups, "/k8s.io/app", 2_000_000_000, 5000);
    let second = provider.collect().await?;
    let rate = second.pods[0].containers[0].usage.cpu_rate.expect("a rate after two samples");
    assert!(rate > 1_000_000_000, "1 s of CPU in well under a second is more than a core: {rate}");
    assert_eq!(second.node.usage.cpu_rate, Some(0), "the node's counter did not move");
    Ok(())
}
