//! A static pod's status goes to its mirror pod: the API knows the mirror by
//! its own UID, so [`MirrorStatusApi`] swaps the static pod's UID for the
//! mirror's (learnt by the mirror controller, [`MirrorUids`]) in the status
//! write's UID precondition. Until a mirror exists the write fails as "pod
//! gone" and the status manager writes again on the worker's next sync.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::{ConfigMap, PodStatus, Secret, Service};

use crate::pod_api::{IssuedToken, PodApi, Result, TokenPod};

/// Static pod UID -> UID of its current mirror pod. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct MirrorUids(Arc<RwLock<HashMap<String, String>>>);

impl MirrorUids {
    /// Replaces the whole map.
    pub fn set(&self, map: HashMap<String, String>) {
        if let Ok(mut current) = self.0.write() {
            *current = map;
        }
    }

    /// The mirror's UID for static pod `uid`, if it has one.
    pub fn get(&self, uid: &str) -> Option<String> {
        self.0.read().ok()?.get(uid).cloned()
    }
}

/// [`PodApi`] that writes static pods' statuses to their mirror pods.
pub struct MirrorStatusApi {
    inner: Arc<dyn PodApi>,
    mirrors: MirrorUids,
}

impl MirrorStatusApi {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PodApi>, mirrors: MirrorUids) -> Self {
        Self { inner, mirrors }
    }
}

#[async_trait::async_trait]
impl PodApi for MirrorStatusApi {
    async fn patch_status(&self, namespace: &str, name: &str, uid: &str, status: &PodStatus) -> Result<()> {
        let uid = self.mirrors.get(uid).unwrap_or_else(|| uid.to_string());
        self.inner.patch_status(namespace, name, &uid, status).await
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<()> {
        self.inner.delete_pod(namespace, name, uid).await
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>> {
        self.inner.config_map(namespace, name).await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>> {
        self.inner.secret(namespace, name).await
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>> {
        self.inner.services(namespace).await
    }

    async fn request_token(&self, pod: &TokenPod<'_>, audience: &str, expiration_seconds: i64) -> Result<IssuedToken> {
        let uid = self.mirrors.get(pod.uid).unwrap_or_else(|| pod.uid.to_string());
        self.inner.request_token(&TokenPod { uid: &uid, ..*pod }, audience, expiration_seconds).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the UID of every status write.
    #[derive(Default)]
    struct Uids(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl PodApi for Uids {
        async fn patch_status(&self, _: &str, _: &str, uid: &str, _: &PodStatus) -> Result<()> {
            self.0.lock().expect("lock").push(uid.to_string());
            Ok(())
        }
        async fn delete_pod(&self, _: &str, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>> {
            Ok(None)
        }
        async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>> {
            Ok(None)
        }
        async fn services(&self, _: &str) -> Result<Vec<Service>> {
            Ok(Vec::new())
        }
        async fn request_token(&self, _: &TokenPod<'_>, _: &str, _: i64) -> Result<IssuedToken> {
            Ok(IssuedToken { token: String::new(), expires: 0 })
        }
    }

    #[tokio::test]
    async fn a_static_pods_status_is_written_under_its_mirrors_uid() -> Result<()> {
        let recorded = Arc::new(Uids::default());
        let mirrors = MirrorUids::default();
        mirrors.set([("static-uid".to_string(), "mirror-uid".to_string())].into());
        let api = MirrorStatusApi::new(recorded.clone(), mirrors);
        let status = PodStatus::default();
        api.patch_status("default", "web-n1", "static-uid", &status).await?;
        api.patch_status("default", "other", "api-uid", &status).await?;
        assert_eq!(*recorded.0.lock().expect("lock"), vec!["mirror-uid".to_string(), "api-uid".to_string()]);
        Ok(())
    }
}
