//! The pod worker's view of the API server: patch a pod's status, delete a
//! terminated pod, read the ConfigMaps/Secrets its env refers to. A narrow
//! trait so worker tests use a recording fake while production uses kube.
//!
//! Must not: decide what to write (see `status`).

use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};

/// A failed API call, with the call and object.
#[derive(Debug, thiserror::Error)]
#[error("API {call} {object}: {source}")]
pub struct ApiError {
    /// What was attempted (`patch pod status`, `delete pod`, ...).
    pub call: &'static str,
    /// `namespace/name` of the object.
    pub object: String,
    /// The client error.
    #[source]
    pub source: kube::Error,
}

impl ApiError {
    /// The object is gone, or was replaced by another with the same name
    /// (a UID precondition failed): retrying cannot succeed.
    pub fn is_gone(&self) -> bool {
        is_gone(&self.source)
    }
}

/// Result of an API call.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// API calls of the pod worker.
#[async_trait::async_trait]
pub trait PodApi: Send + Sync {
    /// Strategic-merge-patches `status` onto pod `namespace/name` if its UID is still
    /// `uid` (a pod re-created under the same name gets a 409, not our status).
    async fn patch_status(&self, namespace: &str, name: &str, uid: &str, status: &PodStatus) -> Result<()>;
    /// Deletes pod `namespace/name` now (grace 0) if its UID is still `uid`.
    /// A pod already gone or replaced is not an error.
    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<()>;
    /// ConfigMap `namespace/name`, `None` if absent.
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>>;
    /// Secret `namespace/name`, `None` if absent.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>>;
    /// Every Service of `namespace` (for Service environment variables).
    async fn services(&self, namespace: &str) -> Result<Vec<Service>>;
    /// A token of `pod`'s ServiceAccount bound to it (TokenRequest).
    async fn request_token(&self, pod: &TokenPod<'_>, audience: &str, expiration_seconds: i64) -> Result<IssuedToken>;
}

/// The pod a token is requested for.
#[derive(Debug, Clone, Copy)]
pub struct TokenPod<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub service_account: &'a str,
}

/// A token the apiserver issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// When it expires (unix seconds).
    pub expires: i64,
}

/// [`PodApi`] over a kube client.
#[derive(Clone)]
pub struct KubePodApi {
    client: kube::Client,
}

impl KubePodApi {
    /// Wraps `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found() || s.is_conflict())
}

#[async_trait::async_trait]
impl PodApi for KubePodApi {
    async fn patch_status(&self, namespace: &str, name: &str, uid: &str, status: &PodStatus) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut patch = serde_json::json!({ "metadata": { "uid": uid }, "status": status });
        crate::resize::report::delete_absent_conditions(&mut patch["status"]);
        pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map(|_| ())
            .map_err(|source| ApiError { call: "patch pod status", object: format!("{namespace}/{name}"), source })
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..Default::default()
        };
        match pods.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(source) => Err(ApiError { call: "delete pod", object: format!("{namespace}/{name}"), source }),
        }
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name).await.map_err(|source| ApiError {
            call: "get configmap",
            object: format!("{namespace}/{name}"),
            source,
        })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name).await.map_err(|source| ApiError {
            call: "get secret",
            object: format!("{namespace}/{name}"),
            source,
        })
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(source) => Err(ApiError { call: "list services", object: namespace.to_string(), source }),
        }
    }

    async fn request_token(&self, pod: &TokenPod<'_>, audience: &str, expiration_seconds: i64) -> Result<IssuedToken> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), pod.namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() { Vec::new() } else { vec![audience.to_string()] },
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod.name.to_string()),
                    uid: Some(pod.uid.to_string()),
                }),
            },
            ..Default::default()
        };
        let error = |source| ApiError {
            call: "create serviceaccount token",
            object: format!("{}/{}", pod.namespace, pod.service_account),
            source,
        };
        let issued: TokenRequest = api
            .create_subresource("token", pod.service_account, &PostParams::default(), &request)
            .await
            .map_err(error)?;
        let status = issued.status.ok_or_else(|| {
            error(kube::Error::Api(kube::core::Status::failure("no token in the response", "InternalError").boxed()))
        })?;
        Ok(IssuedToken { token: status.token, expires: status.expiration_timestamp.0.as_second() })
    }
}

/// Recording fake of [`PodApi`] for worker tests.
#[derive(Debug, Default)]
pub struct FakePodApi {
    /// Every status patched, in order, with `namespace/name`.
    pub statuses: Mutex<Vec<(String, PodStatus)>>,
    /// Every deletion, as `namespace/name/uid`.
    pub deletions: Mutex<Vec<String>>,
    /// ConfigMaps served, by `namespace/name`.
    pub config_maps: Mutex<Vec<(String, ConfigMap)>>,
    /// This many status patches fail (HTTP 500) before patches succeed again.
    pub failing_patches: Mutex<u32>,
    /// Status patches of these `namespace/name`s fail with 404 (pod gone).
    pub gone: Mutex<Vec<String>>,
    /// Services served (every namespace).
    pub services: Mutex<Vec<Service>>,
    /// Every token issued, in order.
    pub tokens: Mutex<Vec<String>>,
}

impl FakePodApi {
    /// The last status patched for `namespace/name`.
    pub fn last_status(&self, object: &str) -> Option<PodStatus> {
        let statuses = self.statuses.lock().ok()?;
        statuses.iter().rev().find(|(o, _)| o == object).map(|(_, s)| s.clone())
    }
}

#[async_trait::async_trait]
impl PodApi for FakePodApi {
    async fn patch_status(&self, namespace: &str, name: &str, _uid: &str, status: &PodStatus) -> Result<()> {
        let object = format!("{namespace}/{name}");
        let fail = |code: u16, reason: &str| ApiError {
            call: "patch pod status",
            object: object.clone(),
            source: kube::Error::Api(kube::core::Status::failure("injected", reason).with_code(code).boxed()),
        };
        if self.gone.lock().is_ok_and(|gone| gone.contains(&object)) {
            return Err(fail(404, "NotFound"));
        }
        if let Ok(mut failing) = self.failing_patches.lock() {
            if *failing > 0 {
                *failing -= 1;
                return Err(fail(500, "InternalError"));
            }
        }
        if let Ok(mut statuses) = self.statuses.lock() {
            statuses.push((object.clone(), status.clone()));
        }
        Ok(())
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<()> {
        if let Ok(mut deletions) = self.deletions.lock() {
            deletions.push(format!("{namespace}/{name}/{uid}"));
        }
        Ok(())
    }

    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>> {
        let key = format!("{namespace}/{name}");
        let maps = self.config_maps.lock().map(|m| m.clone()).unwrap_or_default();
        Ok(maps.into_iter().find(|(k, _)| *k == key).map(|(_, cm)| cm))
    }

    async fn secret(&self, _namespace: &str, _name: &str) -> Result<Option<Secret>> {
        Ok(None)
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>> {
        let all = self.services.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(all.into_iter().filter(|s| s.metadata.namespace.as_deref() == Some(namespace)).collect())
    }

    async fn request_token(&self, pod: &TokenPod<'_>, audience: &str, expiration_seconds: i64) -> Result<IssuedToken> {
        let token = format!("token:{}/{}:{}:{audience}", pod.namespace, pod.service_account, pod.name);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.push(token.clone());
        }
        let now = jiff::Timestamp::now().as_second();
        Ok(IssuedToken { token, expires: now.saturating_add(expiration_seconds) })
    }
}
