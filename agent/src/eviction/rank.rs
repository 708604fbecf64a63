//! Which pod goes first (pure, upstream's rankers) and the words an evicted
//! pod gets. Memory: pods whose usage exceeds their requests first
//! (BestEffort requests nothing, so any usage exceeds), then lower
//! priority, then more usage above requests; a Guaranteed pod within its
//! requests comes last. PIDs: lower priority, then more processes. Disk:
//! exceeding requests, priority, then usage.

use std::cmp::Reverse;

use super::thresholds::Signal;

/// `status.reason` of an evicted pod.
pub const REASON: &str = "Evicted";
/// The `DisruptionTarget` condition's reason for a kubelet eviction.
pub const DISRUPTION_REASON: &str = "TerminationByKubelet";

/// One container's usage of the resource being reclaimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// Usage (bytes for memory and disk, processes for pids).
    pub usage: i64,
    /// Its request of that resource (0: none).
    pub request: i64,
}

/// A pod as the ranking sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// Per container usage of the resource being reclaimed.
    pub containers: Vec<ContainerUsage>,
}

impl PodUsage {
    fn usage(&self) -> i64 {
        self.containers.iter().fold(0i64, |a, c| a.saturating_add(c.usage))
    }

    fn request(&self) -> i64 {
        self.containers.iter().fold(0i64, |a, c| a.saturating_add(c.request))
    }

    fn exceeds_requests(&self) -> bool {
        self.usage() > self.request()
    }
}

/// `pods` in eviction order for `signal` (first = evicted first).
pub fn rank_for(signal: Signal, mut pods: Vec<PodUsage>) -> Vec<PodUsage> {
    match signal {
        Signal::MemoryAvailable | Signal::NodeFsAvailable => pods.sort_by_key(|p| {
            (Reverse(p.exceeds_requests()), p.priority, Reverse(p.usage().saturating_sub(p.request())))
        }),
        Signal::PidAvailable => pods.sort_by_key(|p| (p.priority, Reverse(p.usage()))),
    }
    pods
}

/// A byte amount as the API prints quantities (`100Mi`, `52360Ki`, `1234`).
pub fn format_amount(signal: Signal, amount: i64) -> String {
    if signal == Signal::PidAvailable {
        return amount.to_string();
    }
    for (suffix, unit) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if amount != 0 && amount % unit == 0 {
            return format!("{}{suffix}", amount / unit);
        }
    }
    amount.to_string()
}

/// Upstream's Evicted message (`nodeLowMessageFmt` + `containerMessageFmt`
/// for each container using more than it requested).
pub fn evicted_message(signal: Signal, threshold: i64, available: i64, pod: &PodUsage) -> String {
    let resource = signal.resource();
    let mut message = format!(
        "The node was low on resource: {resource}. Threshold quantity: {}, available: {}. ",
        format_amount(signal, threshold),
        format_amount(signal, available)
    );
    if signal != Signal::PidAvailable {
        for c in pod.containers.iter().filter(|c| c.usage > c.request) {
            message.push_str(&format!(
                "Container {} was using {}, request is {}, has larger consumption of {resource}. ",
                c.name,
                format_amount(signal, c.usage),
                format_amount(signal, c.request)
            ));
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: i64 = 1 << 20;

    fn pod(name: &str, priority: i32, usage_mi: i64, request_mi: i64) -> PodUsage {
        PodUsage {
            namespace: "d".into(),
            name: name.into(),
            uid: format!("u-{name}"),
            priority,
            containers: vec![ContainerUsage { name: "app".into(), usage: usage_mi * MI, request: request_mi * MI }],
        }
    }

    fn names(pods: Vec<PodUsage>) -> Vec<String> {
        pods.into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn memory_ranking_as_upstream() {
        let pods = vec![
            pod("guaranteed-big", 0, 900, 1000), // within requests
            pod("besteffort-small", 0, 10, 0),   // exceeds (BestEffort)
            pod("burstable-over", 0, 300, 100),  // exceeds by 200
            pod("besteffort-hog", 0, 500, 0),    // exceeds by 500
            pod("critical-hog", 1000, 800, 0),   // exceeds, but higher priority
            pod("burstable-under", 0, 50, 100),  // within requests
        ];
        assert_eq!(
            names(rank_for(Signal::MemoryAvailable, pods)),
            [
                "besteffort-hog",
                "burstable-over",
                "besteffort-small",
                "critical-hog",
                "burstable-under",
                "guaranteed-big"
            ]
        );
    }

    #[test]
    fn pid_ranking_is_priority_then_processes() {
        let mut a = pod("a", 0, 0, 0);
        a.containers[0].usage = 5;
        let mut b = pod("b", 0, 0, 0);
        b.containers[0].usage = 50;
        let mut c = pod("c", -5, 0, 0);
        c.containers[0].usage = 1;
        assert_eq!(names(rank_for(Signal::PidAvailable, vec![a, b, c])), ["c", "b", "a"]);
    }

    #[test]
    fn message_is_upstreams() {
        let hog = pod("hog", 0, 180, 0);
        assert_eq!(
            evicted_message(Signal::MemoryAvailable, 100 * MI, 52 * MI + 512, &hog),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 54526464. \
             Container app was using 180Mi, request is 0, has larger consumption of memory. "
        );
        let within = pod("ok", 0, 10, 100);
        assert_eq!(
            evicted_message(Signal::MemoryAvailable, 100 * MI, 50 * MI, &within),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
        );
        assert_eq!(format_amount(Signal::MemoryAvailable, 2 << 30), "2Gi");
        assert_eq!(format_amount(Signal::MemoryAvailable, 3 << 10), "3Ki");
    }
}
