//! Prometheus text pages rendered from a [`Collection`] (pure):
//! `/metrics/resource` with the upstream kubelet's series (what
//! metrics-server scrapes), and `/metrics/cadvisor` with the CFS throttling
//! series cAdvisor names (`container_cpu_cfs_*`), which the resource page
//! does not carry upstream.

use std::fmt::Write;

use super::sample::Collection;

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// One container's labels.
fn container_labels(container: &str, namespace: &str, pod: &str) -> String {
    format!("container=\"{}\",namespace=\"{}\",pod=\"{}\"", escape(container), escape(namespace), escape(pod))
}

/// `/metrics/resource`.
pub fn render_resource(c: &Collection) -> String {
    let ms = c.at.as_millisecond();
    let mut out = String::new();
    let node = &c.node.usage.stats;

    header(
        &mut out,
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    for pod in &c.pods {
        for ct in &pod.containers {
            if let Some(cpu) = ct.usage.stats.cpu {
                let labels = container_labels(&ct.name, &pod.namespace, &pod.name);
                let _ =
                    writeln!(out, "container_cpu_usage_seconds_total{{{labels}}} {} {ms}", seconds(cpu.usage_nanos));
            }
        }
    }
    header(
        &mut out,
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    );
    for pod in &c.pods {
        for ct in &pod.containers {
            if let Some(memory) = ct.usage.stats.memory {
                let labels = container_labels(&ct.name, &pod.namespace, &pod.name);
                let _ =
                    writeln!(out, "container_memory_working_set_bytes{{{labels}}} {} {ms}", memory.working_set_bytes);
            }
        }
    }
    header(
        &mut out,
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    );
    for pod in &c.pods {
        for ct in &pod.containers {
            if let Some(start) = ct.start_time {
                let labels = container_labels(&ct.name, &pod.namespace, &pod.name);
                let started = start.as_millisecond() as f64 / 1e3;
                let _ = writeln!(out, "container_start_time_seconds{{{labels}}} {started} {ms}");
            }
        }
    }
    header(
        &mut out,
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    );
    if let Some(cpu) = node.cpu {
        let _ = writeln!(out, "node_cpu_usage_seconds_total {} {ms}", seconds(cpu.usage_nanos));
    }
    header(&mut out, "node_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the node in bytes");
    if let Some(memory) = node.memory {
        let _ = writeln!(out, "node_memory_working_set_bytes {} {ms}", memory.working_set_bytes);
    }
    header(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    );
    for pod in &c.pods {
        if let Some(cpu) = pod.usage().stats.cpu {
            let labels = format!("namespace=\"{}\",pod=\"{}\"", escape(&pod.namespace), escape(&pod.name));
            let _ = writeln!(out, "pod_cpu_usage_seconds_total{{{labels}}} {} {ms}", seconds(cpu.usage_nanos));
        }
    }
    header(&mut out, "pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes");
    for pod in &c.pods {
        if let Some(memory) = pod.usage().stats.memory {
            let labels = format!("namespace=\"{}\",pod=\"{}\"", escape(&pod.namespace), escape(&pod.name));
            let _ = writeln!(out, "pod_memory_working_set_bytes{{{labels}}} {} {ms}", memory.working_set_bytes);
        }
    }
    header(
        &mut out,
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    );
    let _ = writeln!(out, "resource_scrape_error 0");
    out
}

/// `/metrics/cadvisor` (the CFS throttling series only).
pub fn render_cadvisor(c: &Collection) -> String {
    let mut out = String::new();
    type Pick = fn(&bosun_cgroups::stats::CpuStats) -> f64;
    let series: [(&str, &str, Pick); 3] = [
        ("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", |s| s.periods as f64),
        ("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", |s| {
            s.throttled_periods as f64
        }),
        ("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", |s| {
            seconds(s.throttled_nanos)
        }),
    ];
    let ms = c.at.as_millisecond();
    for (name, help, pick) in series {
        header(&mut out, name, "counter", help);
        for pod in &c.pods {
            for ct in &pod.containers {
                if let Some(cpu) = ct.usage.stats.cpu {
                    let labels = container_labels(&ct.name, &pod.namespace, &pod.name);
                    let _ = writeln!(out, "{name}{{{labels}}} {} {ms}", pick(&cpu));
                }
            }
        }
    }
    out
}
