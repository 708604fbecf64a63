//! Container restarts measured from the runtime's own timestamps: for a pod,
//! the gap from its container's first exit (`finished_at` of attempt 0) to
//! its restart starting (`created_at` of attempt 1), both recorded by
//! containerd in nanoseconds, so slow kubectl calls do not enter the numbers.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_cri::{api, CriClient};

/// Label the agent puts on every container: the pod's UID.
const POD_UID: &str = "io.kubernetes.pod.uid";
/// Label the agent puts on every container: the pod's name.
const POD_NAME: &str = "io.kubernetes.pod.name";

/// UIDs of the pods named `name` that have containers in the runtime, with
/// the number of running containers of each.
pub async fn runtime_pods(cri: &CriClient, name: &str) -> Result<Vec<(String, usize)>> {
    let filter = api::ContainerFilter {
        label_selector: [(POD_NAME.to_string(), name.to_string())].into(),
        ..Default::default()
    };
    let mut pods: std::collections::BTreeMap<String, usize> = Default::default();
    for c in cri.list_containers(Some(filter)).await? {
        let running = usize::from(c.state == api::ContainerState::ContainerRunning as i32);
        *pods.entry(c.labels.get(POD_UID).cloned().unwrap_or_default()).or_default() += running;
    }
    Ok(pods.into_iter().collect())
}

/// Pods `<prefix>-<i>` whose container exits (code 3, then crash-loops) at
/// the Unix second `exit_at(i)`, so exits can be spread apart and away from
/// the burst of pod starts.
pub fn crashing_pods(image: &str, prefix: &str, count: usize, exit_at: impl Fn(usize) -> u64) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {prefix}-{i}\n  labels:\n    app: {prefix}\nspec:\n  \
                 terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      image: {image}\n      \
                 command: [\"sh\", \"-c\", \"while [ $(date +%s) -lt {} ]; do sleep 0.05; done; exit 3\"]\n",
                exit_at(i)
            )
        })
        .collect()
}

/// Now as Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Exit of attempt 0 and creation of attempt 1 of pod `uid`'s container
/// (ns since the epoch), once both exist.
pub async fn first_restart(cri: &CriClient, uid: &str) -> Result<Option<(i64, i64)>> {
    let filter =
        api::ContainerFilter { label_selector: [(POD_UID.to_string(), uid.to_string())].into(), ..Default::default() };
    let containers = cri.list_containers(Some(filter)).await?;
    let (mut exited, mut created) = (None, None);
    for c in containers {
        let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or_default();
        match attempt {
            0 => {
                let status = cri.container_status(&c.id).await?;
                if status.finished_at > 0 {
                    exited = Some(status.finished_at);
                }
            }
            1 => created = Some(c.created_at),
            _ => {}
        }
    }
    Ok(exited.zip(created))
}

/// Exit of attempt 0 and creation of attempt 1 (ns since the epoch) of
/// each pod, waiting up to `deadline` for all. Read as soon as each restart
/// shows: the agent's garbage collection removes attempt 0 once attempt 2
/// exists.
pub async fn first_restarts(cri: &CriClient, uids: &[String], deadline: Duration) -> Result<Vec<(i64, i64)>> {
    let until = tokio::time::Instant::now() + deadline;
    let mut found = vec![None; uids.len()];
    while found.iter().any(Option::is_none) {
        for (uid, slot) in uids.iter().zip(found.iter_mut()).filter(|(_, s)| s.is_none()) {
            *slot = first_restart(cri, uid).await?;
        }
        ensure!(tokio::time::Instant::now() < until, "not every pod restarted within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(found.into_iter().flatten().collect())
}

/// The first-restart gap of each pod, waiting up to `deadline` for all.
pub async fn first_restart_gaps(cri: &CriClient, uids: &[String], deadline: Duration) -> Result<Vec<Duration>> {
    first_restarts(cri, uids, deadline)
        .await?
        .into_iter()
        .map(|(exited, created)| {
            let nanos = u64::try_from(created - exited).context("restart created before the exit")?;
            Ok(Duration::from_nanos(nanos))
        })
        .collect()
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}
