//! Pulling a container's image with the pod's `imagePullSecrets`: read the
//! Secrets (a missing one is a warning Event, not a failure, as upstream),
//! then try each matching credential in turn, or pull anonymously when none
//! matches (see [`crate::pull_secrets`] for the matching).

use k8s_openapi::api::core::v1::Pod;

use super::PodWorker;
use crate::events::EventType;
use crate::pull_secrets::{self, Credential};
use bosun_proto::cri as api;

impl PodWorker {
    /// Credentials from the pod's pull secrets; a secret that cannot be
    /// fetched is reported once per pull and skipped.
    async fn pull_credentials(&self, pod: &Pod, container: &str) -> Result<Vec<Credential>, String> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let names = pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()).map(|r| r.name.as_str());
        let mut credentials = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match self.deps.api.secret(namespace, name).await {
                Ok(Some(secret)) => credentials.extend(pull_secrets::parse_secret(&secret).map_err(|e| e.to_string())?),
                Ok(None) => missing.push(format!("{namespace}/{name}")),
                Err(error) => missing.push(format!("{namespace}/{name} ({error})")),
            }
        }
        if !missing.is_empty() {
            let message = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            );
            self.event(pod, container, EventType::Warning, "FailedToRetrieveImagePullSecret", &message).await;
        }
        Ok(credentials)
    }

    /// Pulls `image` for `container`: each matching credential until one
    /// works, else anonymously. The error joins every attempt's message.
    pub(super) async fn pull_with_secrets(
        &self,
        pod: &Pod,
        container: &str,
        image: &str,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String, String> {
        let credentials = self.pull_credentials(pod, container).await?;
        let matching = pull_secrets::lookup(&credentials, image);
        if matching.is_empty() {
            return self.deps.runtime.pull_image(image, None, sandbox).await.map_err(|e| e.message);
        }
        let mut errors = Vec::new();
        for credential in matching {
            // No server_address: containerd 1.6 url-parses it and drops the
            // credentials on a schemeless key such as `127.0.0.1:5001`; the
            // match was already made here.
            let auth = api::AuthConfig {
                username: credential.username.clone(),
                password: credential.password.clone(),
                identity_token: credential.identity_token.clone(),
                ..Default::default()
            };
            match self.deps.runtime.pull_image(image, Some(auth), sandbox).await {
                Ok(image_ref) => return Ok(image_ref),
                Err(error) => errors.push(error.message),
            }
        }
        Err(errors.join("; "))
    }
}
