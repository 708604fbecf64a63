//! `bosun up`'s start-up steps, timed: each step is logged when it ends
//! (`step`, `elapsed_ms`), and one summary line is printed once the node
//! is Ready (`bosun: node Ready in 9.8s (registry 0.4s, images 2.1s, ...)`).
//!
//! The timing and the summary are pure ([`Steps`]); the Ready check reads
//! the Node from the apiserver with the admin kubeconfig `bosun up` wrote.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Finished steps and how long each took.
#[derive(Debug, Clone)]
pub struct Steps {
    started: Instant,
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Steps {
    /// Steps timed from `now`.
    pub fn start(now: Instant) -> Self {
        Self { started: now, last: now, done: Vec::new() }
    }

    /// Ends `step` at `now` (it began when the previous one ended) and logs it.
    pub fn done(&mut self, step: &'static str, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.done.push((step, elapsed));
        tracing::info!(step, elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX), "start-up step done");
    }

    /// Time since the first step began.
    pub fn total(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// One line: the total and each step, in order.
    pub fn summary(&self, outcome: &str, now: Instant) -> String {
        let steps: Vec<String> =
            self.done.iter().map(|(step, took)| format!("{step} {:.1}s", took.as_secs_f64())).collect();
        format!("bosun: {outcome} in {:.1}s ({})", self.total(now).as_secs_f64(), steps.join(", "))
    }
}

/// Whether a Node object (JSON) has condition Ready=True.
pub fn node_is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether node `node` is Ready, as the apiserver of `kubeconfig` says
/// (`None`: not known yet, e.g. the client or the read failed).
async fn read_ready(kubeconfig: &Path, node: &str) -> Option<bool> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await.ok()?;
    let client = kube::Client::try_from(config).ok()?;
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let object = api.get(node).await.ok()?;
    Some(node_is_ready(&serde_json::to_value(object).ok()?))
}

/// Prints `line` on stdout; a reader that went away is not an error.
fn print_line(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Waits (polling every 200 ms, at most `timeout`) until node `node` is
/// Ready on the apiserver of `kubeconfig`, then logs and prints the summary.
pub async fn report_when_ready(
    mut steps: Steps,
    kubeconfig: PathBuf,
    node: String,
    timeout: Duration,
    token: CancellationToken,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if read_ready(&kubeconfig, &node).await == Some(true) {
            steps.done("node ready", Instant::now());
            print_line(&steps.summary("node Ready", Instant::now()));
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(node, ?timeout, "the node is not Ready yet; see the agent's log");
            print_line(&steps.summary("started, node not Ready yet,", Instant::now()));
            return;
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_takes_the_time_since_the_previous_one_and_the_summary_lists_them() {
        let t0 = Instant::now();
        let mut steps = Steps::start(t0);
        steps.done("registry", t0 + Duration::from_millis(400));
        steps.done("images", t0 + Duration::from_millis(2500));
        steps.done("control", t0 + Duration::from_millis(3000));
        assert_eq!(
            steps.summary("node Ready", t0 + Duration::from_millis(3050)),
            "bosun: node Ready in 3.0s (registry 0.4s, images 2.1s, control 0.5s)"
        );
    }

    #[test]
    fn only_a_true_ready_condition_is_ready() {
        let node = |status: &str| {
            serde_json::json!({"status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": status},
            ]}})
        };
        assert!(node_is_ready(&node("True")));
        assert!(!node_is_ready(&node("False")));
        assert!(!node_is_ready(&node("Unknown")));
        assert!(!node_is_ready(&serde_json::json!({"status": {}})));
    }
}
