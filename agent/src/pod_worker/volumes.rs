//! The pod worker's side of volumes: fetch what the pod's volumes name,
//! plan and set them up before the sandbox exists (a failure is a
//! FailedMount Event and the pod waits, retried with backoff), set them up
//! again when a ConfigMap or Secret they show changes (the node's
//! `object_watch` wakes the worker) or the pod's labels/annotations change
//! (downward API), give each container its CRI mounts, and tear the volumes
//! down when the pod goes. Without watches (`WorkerDeps::objects` unset)
//! API-data volumes are re-read at most once per steady interval.
//! Projected `serviceAccountToken` sources get a token bound to the pod
//! (TokenRequest with the node's identity), requested again once 80% of its
//! lifetime has passed ([`refresh_after`], as upstream's kubelet), which
//! makes the volume due for another setup.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::Notify;

use super::{pod_key, PodWorker};
use crate::actions::{PodActions, Waiting};
use crate::enums::WaitingReason;
use crate::events::{pod_reference, EventType};
use crate::object_watch::interest::{freshness, Freshness};
use crate::object_watch::{Kind, Object, ObjectKey};
use crate::pod_api::TokenPod;
use crate::volumes::plan::{self, Setup, Sources, TokenKey, VolumePlan};
use crate::volumes::{apply, mounts};

/// Longest wait between two attempts to set up a pod's volumes.
const MAX_RETRY: Duration = Duration::from_secs(32);

/// Volume state of one pod worker.
#[derive(Debug, Default)]
pub(super) struct VolumeState {
    /// The volumes as last set up (file contents dropped), once they all are.
    ready: Option<Arc<Vec<VolumePlan>>>,
    last_refresh: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Why the last setup failed.
    last_error: Option<String>,
    /// Watch revisions of the objects the volumes were set up from.
    seen: BTreeMap<ObjectKey, Option<u64>>,
    /// Hash of the pod's labels and annotations at that setup.
    pod_metadata: u64,
    /// Wakes this worker (set when it runs); given to the object watches.
    pub(super) wake: Option<Arc<Notify>>,
    /// ServiceAccount tokens issued for the pod's projected volumes.
    tokens: BTreeMap<TokenKey, HeldToken>,
}

/// A token the worker holds and when to ask for a fresh one.
#[derive(Debug, Clone)]
struct HeldToken {
    token: String,
    refresh_at: Instant,
}

/// Longest a token is kept before it is requested again (upstream: 24 h).
const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long after it was issued a token with `lifetime` left is requested
/// again: at 80% of its lifetime, at most after a day (upstream's rule).
pub fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.8).min(MAX_TOKEN_AGE)
}

/// The pod's labels and annotations, hashed: what downward API volumes show
/// that can change while the pod runs.
fn metadata_hash(pod: &Pod) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pod.metadata.labels.hash(&mut hasher);
    pod.metadata.annotations.hash(&mut hasher);
    hasher.finish()
}

/// The watch keys of what the pod's volumes name.
fn object_keys(pod: &Pod) -> BTreeSet<ObjectKey> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let refs = plan::references(pod);
    let key = |kind, name: String| ObjectKey { kind, namespace: namespace.clone(), name };
    refs.config_maps
        .into_iter()
        .map(|n| key(Kind::ConfigMap, n))
        .chain(refs.secrets.into_iter().map(|n| key(Kind::Secret, n)))
        .collect()
}

fn without_files(plans: Vec<VolumePlan>) -> Vec<VolumePlan> {
    plans
        .into_iter()
        .map(|mut p| {
            if let Setup::Files { files, .. } = &mut p.setup {
                files.clear();
            }
            p
        })
        .collect()
}

impl PodWorker {
    /// Sets up (or refreshes) the pod's volumes. While they are not all set
    /// up, nothing new is created: the sandbox and container starts are
    /// dropped from `actions`, a retry is queued, and the containers held
    /// back are returned as `ContainerCreating` with the failure as message
    /// (the FailedMount Event is already recorded).
    pub(super) async fn sync_volumes(&mut self, pod: &Pod, actions: &mut PodActions) -> BTreeMap<String, Waiting> {
        let Some(wait) = self.set_up_volumes(pod).await else { return BTreeMap::new() };
        actions.create_sandbox = None;
        actions.requeue_after = Some(actions.requeue_after.map_or(wait, |r| r.min(wait)));
        let message = self.volumes.last_error.clone().unwrap_or_default();
        actions
            .start_containers
            .drain(..)
            .map(|s| (s.name, Waiting { reason: WaitingReason::ContainerCreating, message: message.clone() }))
            .collect()
    }

    /// `None` when every volume is set up, else how long until the next try.
    async fn set_up_volumes(&mut self, pod: &Pod) -> Option<Duration> {
        let has_volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_some_and(|v| !v.is_empty());
        let now = Instant::now();
        let state = &self.volumes;
        if !has_volumes {
            if state.ready.is_none() {
                self.volumes.ready = Some(Arc::default());
            }
            return None;
        }
        if state.ready.is_some() {
            if !self.volumes_due(pod, now) {
                return None;
            }
        } else if let Some(at) = state.retry_at.filter(|at| *at > now) {
            return Some(at - now);
        }
        let set_up = match self.refresh_tokens(pod, now).await {
            Ok(()) => self.set_up_once(pod).await,
            Err(message) => Err(message),
        };
        match set_up {
            Ok((plans, seen)) => {
                self.volumes = VolumeState {
                    ready: Some(Arc::new(plans)),
                    last_refresh: Some(now),
                    seen,
                    pod_metadata: metadata_hash(pod),
                    wake: self.volumes.wake.take(),
                    tokens: std::mem::take(&mut self.volumes.tokens),
                    ..Default::default()
                };
                None
            }
            Err(message) => {
                tracing::warn!(pod = %pod_key(pod), %message, "volume setup failed");
                self.deps.events.record(&pod_reference(pod, None), EventType::Warning, "FailedMount", &message).await;
                if self.volumes.ready.is_some() {
                    // Containers run with the content they have; retry on the next resync.
                    self.volumes.last_refresh = Some(now);
                    return None;
                }
                self.volumes.failures = self.volumes.failures.saturating_add(1);
                let wait = Duration::from_secs(1u64 << (self.volumes.failures - 1).min(5)).min(MAX_RETRY);
                self.volumes.retry_at = Some(now + wait);
                self.volumes.last_error = Some(message);
                Some(wait)
            }
        }
    }

    /// Whether set-up volumes must be set up again: a watched object or the
    /// pod's metadata changed; without watches (or before a watch listed),
    /// once per steady interval.
    fn volumes_due(&self, pod: &Pod, now: Instant) -> bool {
        if !plan::has_api_data(pod) {
            return false;
        }
        let state = &self.volumes;
        if state.tokens.values().any(|t| t.refresh_at <= now) {
            return true;
        }
        let poll_due = state.last_refresh.is_none_or(|t| now.duration_since(t) >= self.deps.timing.steady);
        let Some(objects) = &self.deps.objects else { return poll_due };
        if state.pod_metadata != metadata_hash(pod) {
            return true;
        }
        match freshness(&state.seen, |key| objects.revision(key)) {
            Freshness::Current => false,
            Freshness::Changed => true,
            Freshness::Unknown => poll_due,
        }
    }

    /// Requests the tokens the pod's projected volumes need that the worker
    /// does not hold or that are due for refresh. A refresh that fails while
    /// an older token is still held keeps that one (retried next time).
    async fn refresh_tokens(&mut self, pod: &Pod, now: Instant) -> Result<(), String> {
        let keys = plan::token_keys(pod);
        self.volumes.tokens.retain(|k, _| keys.contains(k));
        let due: Vec<TokenKey> =
            keys.into_iter().filter(|k| self.volumes.tokens.get(k).is_none_or(|held| held.refresh_at <= now)).collect();
        if due.is_empty() {
            return Ok(());
        }
        let service_account = crate::volumes::service_account_of(pod);
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let target = TokenPod { namespace: &namespace, name: &name, uid: &self.uid, service_account: &service_account };
        for key in due {
            match self.deps.api.request_token(&target, &key.audience, key.expiration_seconds).await {
                Ok(issued) => {
                    let left = issued.expires.saturating_sub(jiff::Timestamp::now().as_second());
                    let lifetime = Duration::from_secs(u64::try_from(left).unwrap_or(0));
                    let held = HeldToken { token: issued.token, refresh_at: now + refresh_after(lifetime) };
                    self.volumes.tokens.insert(key, held);
                }
                Err(error) if self.volumes.tokens.contains_key(&key) => {
                    tracing::warn!(pod = %pod_key(pod), %error, "service account token refresh failed; keeping the current one");
                }
                Err(error) => return Err(format!("MountVolume.SetUp failed: {error}")),
            }
        }
        Ok(())
    }

    /// Sets the volumes up once; returns the plans and the watch revisions
    /// of the objects they came from.
    async fn set_up_once(&self, pod: &Pod) -> Result<(Vec<VolumePlan>, BTreeMap<ObjectKey, Option<u64>>), String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let keys = object_keys(pod);
        if let (Some(objects), Some(wake)) = (&self.deps.objects, &self.volumes.wake) {
            objects.set_interest(&self.uid, keys.clone(), wake.clone());
        }
        let tokens = self.volumes.tokens.iter().map(|(k, held)| (k.clone(), held.token.clone())).collect();
        let mut sources = Sources { node: self.deps.allocatable, tokens, ..Default::default() };
        let mut seen = BTreeMap::new();
        for key in keys {
            let cached = self.deps.objects.as_ref().and_then(|o| o.lookup(&key)).filter(|l| l.revision.is_some());
            seen.insert(key.clone(), cached.as_ref().and_then(|l| l.revision));
            match (key.kind, cached.and_then(|l| l.object)) {
                (Kind::ConfigMap, Some(Object::ConfigMap(cm))) => {
                    drop(sources.config_maps.insert(key.name, (*cm).clone()))
                }
                (Kind::Secret, Some(Object::Secret(s))) => drop(sources.secrets.insert(key.name, (*s).clone())),
                (_, Some(_)) => {}
                (_, None) if seen[&key].is_some() => {} // listed: absent
                (Kind::ConfigMap, None) => match self.deps.api.config_map(&namespace, &key.name).await {
                    Ok(Some(cm)) => drop(sources.config_maps.insert(key.name, cm)),
                    Ok(None) => {}
                    Err(error) => return Err(format!("MountVolume.SetUp failed: {error}")),
                },
                (Kind::Secret, None) => match self.deps.api.secret(&namespace, &key.name).await {
                    Ok(Some(secret)) => drop(sources.secrets.insert(key.name, secret)),
                    Ok(None) => {}
                    Err(error) => return Err(format!("MountVolume.SetUp failed: {error}")),
                },
            }
        }
        let plans = plan::plan_volumes(pod, &sources, &self.deps.root_dir).map_err(|e| e.to_string())?;
        let mounter = self.deps.mounter.clone();
        let stamp = apply::stamp(jiff::Timestamp::now());
        let fs_group = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|sc| sc.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        let task = tokio::task::spawn_blocking(move || {
            for p in &plans {
                if apply::setup(p, mounter.as_ref(), &stamp, fs_group)? {
                    tracing::debug!(volume = %p.name, path = %p.path.display(), "volume content updated");
                }
            }
            Ok::<_, crate::volumes::Error>(plans)
        });
        match task.await {
            Ok(Ok(plans)) => Ok((without_files(plans), seen)),
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(format!("volume setup task failed: {error}")),
        }
    }

    /// The CRI mounts of `container`; `envs` is its resolved environment.
    pub(super) async fn container_mounts(
        &self,
        container: &Container,
        envs: &[bosun_proto::cri::KeyValue],
    ) -> Result<Vec<bosun_proto::cri::Mount>, String> {
        if container.volume_mounts.as_ref().is_none_or(|m| m.is_empty()) {
            return Ok(Vec::new());
        }
        let Some(plans) = self.volumes.ready.clone() else {
            return Err("volumes are not set up yet".to_string());
        };
        let env: BTreeMap<&str, &str> = envs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
        let requests = mounts::mount_requests(container, &plans, &env).map_err(|e| e.to_string())?;
        let name = container.name.clone();
        let task = tokio::task::spawn_blocking(move || {
            requests.iter().map(|r| apply::resolve(&name, r)).collect::<Result<Vec<_>, _>>()
        });
        match task.await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(error) => Err(format!("mount task failed: {error}")),
        }
    }

    /// Unmounts and removes the pod's volumes; failures are logged (the
    /// orphan sweep retries).
    pub(super) async fn tear_down_volumes(&self) {
        if let Some(objects) = &self.deps.objects {
            objects.forget(&self.uid);
        }
        let (root, uid, mounter) = (self.deps.root_dir.clone(), self.uid.clone(), self.deps.mounter.clone());
        let result = tokio::task::spawn_blocking(move || apply::teardown_pod(&root, &uid, mounter.as_ref())).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, uid = %self.uid, "volume teardown failed; the orphan sweep retries")
            }
            Err(error) => tracing::warn!(%error, uid = %self.uid, "volume teardown task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_at_80_percent_of_its_lifetime_and_at_least_daily() {
        assert_eq!(refresh_after(Duration::from_secs(3607)), Duration::from_secs_f64(3607.0 * 0.8));
        assert_eq!(refresh_after(Duration::from_secs(600)), Duration::from_secs(480));
        assert_eq!(refresh_after(Duration::from_secs(7 * 24 * 3600)), MAX_TOKEN_AGE);
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }
}
