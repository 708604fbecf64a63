//! A finished pod's cgroup goes with it: the removal is retried a few times
//! with backoff, as a cgroup is busy while the pod's last processes are
//! still exiting; only when all tries fail is it left to the orphan sweep.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::PodWorker;

/// How many times a busy pod cgroup's removal is tried again.
const RETRIES: u32 = 6;
/// The pause before the first retry; each next one doubles it.
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// The pause before retry `retry` (0-based), or `None` once the retries are
/// used up: 0.25 s, 0.5 s, ... 8 s, about 16 s in all.
fn pause_before(retry: u32) -> Option<Duration> {
    (retry < RETRIES).then(|| FIRST_PAUSE.saturating_mul(1u32 << retry.min(RETRIES)))
}

impl PodWorker {
    /// Removes the pod's cgroup, retrying while it is busy; gives up on
    /// cancellation (the sweep then removes it).
    pub(super) async fn remove_cgroup(&self, token: &CancellationToken) {
        let mut retry = 0;
        loop {
            match self.deps.cgroups.remove(&self.uid).await {
                Ok(()) => {
                    tracing::info!(uid = %self.uid, tries = retry + 1, "removed the pod cgroup with the pod");
                    return;
                }
                Err(error) => {
                    let Some(pause) = pause_before(retry) else {
                        tracing::warn!(%error, uid = %self.uid, "removing the pod cgroup; left for the orphan sweep");
                        return;
                    };
                    tracing::debug!(%error, uid = %self.uid, ?pause, "pod cgroup busy; trying again");
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    retry += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_then_stop() {
        let pauses: Vec<Duration> = (0..).map_while(pause_before).collect();
        let millis: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [250, 500, 1000, 2000, 4000, 8000]);
        assert_eq!(pause_before(RETRIES), None);
        assert_eq!(pause_before(u32::MAX), None);
    }
}
