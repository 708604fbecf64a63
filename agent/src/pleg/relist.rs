//! The relist: one `ListContainers`, compared with the previous one, naming
//! the pods whose containers changed (the safety net under the event
//! stream), and the container-to-pod map events are routed by.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bosun_proto::cri as api;
use tokio_util::sync::CancellationToken;

use crate::labels;
use crate::runtime::{Runtime, RuntimeError};

/// Container id -> state, per pod UID.
pub type Snapshot = HashMap<String, BTreeMap<String, i32>>;

/// The runtime's containers as of the last relist.
#[derive(Debug, Default)]
pub struct Relister {
    last: Snapshot,
    owners: HashMap<String, String>,
}

/// Groups containers by their pod UID label (others are not ours).
pub fn snapshot(containers: &[api::Container]) -> Snapshot {
    let mut now = Snapshot::new();
    for c in containers {
        if let Some(uid) = c.labels.get(labels::POD_UID) {
            now.entry(uid.clone()).or_default().insert(c.id.clone(), c.state);
        }
    }
    now
}

/// The pods whose set or states of containers differ between two snapshots.
pub fn changed(before: &Snapshot, now: &Snapshot) -> BTreeSet<String> {
    before.keys().chain(now.keys()).filter(|uid| before.get(*uid) != now.get(*uid)).cloned().collect()
}

impl Relister {
    /// Lists the runtime's containers; returns the pods that changed since
    /// the previous relist.
    pub async fn relist(&mut self, runtime: &dyn Runtime) -> Result<BTreeSet<String>, RuntimeError> {
        let containers = runtime.list_containers(None).await?;
        let now = snapshot(&containers);
        let changed = changed(&self.last, &now);
        self.owners = now.iter().flat_map(|(uid, ids)| ids.keys().map(move |id| (id.clone(), uid.clone()))).collect();
        self.last = now;
        Ok(changed)
    }

    /// The containers of the last relist, per pod UID.
    pub fn last(&self) -> &Snapshot {
        &self.last
    }

    /// Container id -> pod UID, as of the last relist.
    pub fn owners(&self) -> &HashMap<String, String> {
        &self.owners
    }
}

/// Waits (polling `ContainerStatus` every `every`, at most `limit`) until the
/// runtime reports container `id` exited or gone. Returns whether it did.
pub async fn wait_exited(
    runtime: &dyn Runtime,
    id: &str,
    every: Duration,
    limit: Duration,
    token: &CancellationToken,
) -> bool {
    let started = tokio::time::Instant::now();
    loop {
        match runtime.container_status(id).await {
            Ok(status) if status.state == api::ContainerState::ContainerExited as i32 => return true,
            Err(error) if error.not_found => return true,
            _ => {}
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::select! {
            () = token.cancelled() => return false,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, uid: Option<&str>, state: api::ContainerState) -> api::Container {
        let mut c = api::Container { id: id.to_string(), state: state as i32, ..Default::default() };
        if let Some(uid) = uid {
            c.labels.insert(labels::POD_UID.to_string(), uid.to_string());
        }
        c
    }

    #[test]
    fn names_pods_whose_containers_appeared_changed_state_or_vanished() {
        use api::ContainerState::{ContainerExited as Exited, ContainerRunning as Running};
        let before = snapshot(&[
            container("a1", Some("a"), Running),
            container("b1", Some("b"), Running),
            container("c1", Some("c"), Running),
            container("x", None, Running),
        ]);
        let now = snapshot(&[
            container("a1", Some("a"), Running),
            container("b1", Some("b"), Exited),
            container("d1", Some("d"), Running),
            container("x", None, Exited),
        ]);
        let want: BTreeSet<String> = ["b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(changed(&before, &now), want);
        assert!(changed(&now, &now).is_empty());
    }
}
