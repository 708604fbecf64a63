//! POST `pods/<name>/eviction`: reads the pod and the budgets of its
//! namespace, applies [`decide`]'s outcome (a budget is spent with a
//! resourceVersion precondition before the pod is deleted), and starts
//! over on a conflict, a bounded number of times.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;

use super::decision::{decide, Decision, MANY_BUDGETS, VIOLATES_BUDGET};
use crate::apiserver::crud::{self, UpdateScope, RETRIES};
use crate::apiserver::deletion::{self, DeleteOptions};
use crate::apiserver::objects::{meta_str, WriteOptions};
use crate::apiserver::registry::{by_kind, Kind};
use crate::apiserver::selectors::Selectors;
use crate::apiserver::status::{conflict, ApiError, Result};
use crate::apiserver::ApiState;

/// The DeleteOptions an Eviction body carries (`deleteOptions`), over the
/// request's `dryRun` query.
pub fn delete_options(eviction: &Value, dry_run: bool) -> DeleteOptions {
    let base = DeleteOptions { dry_run, ..DeleteOptions::default() };
    match eviction.get("deleteOptions") {
        Some(opts) if opts.is_object() => base.merge_body(opts),
        _ => base,
    }
}

/// Evicts pod `name` of `ns` as `eviction` (a policy/v1 Eviction) asks.
pub async fn evict(state: &ApiState, ns: &str, name: &str, eviction: &Value, dry_run: bool) -> Result<()> {
    if meta_str(eviction, "name").is_some_and(|n| !n.is_empty() && n != name) {
        return Err(ApiError::BadRequest("name in URL does not match name in Eviction object".into()));
    }
    if meta_str(eviction, "namespace").is_some_and(|n| !n.is_empty() && n != ns) {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        ));
    }
    let mut opts = delete_options(eviction, dry_run);
    let pods = by_kind(Kind::Pod);
    let budgets = by_kind(Kind::PodDisruptionBudget);
    for _ in 0..RETRIES {
        let (pod_json, _) = crud::get(state, pods, Some(ns), name).await?;
        let pod: Pod = typed(pod_json)?;
        // The pod the budget was spent on is the one deleted.
        if opts.uid.is_none() {
            opts.uid.clone_from(&pod.metadata.uid);
        }
        let (items, _) = crud::list(state, budgets, Some(ns), &Selectors::default()).await?;
        let pdbs = items.into_iter().map(typed).collect::<Result<Vec<PodDisruptionBudget>>>()?;
        match decide(&pod, &pdbs, jiff::Timestamp::now()) {
            Decision::Delete => return delete(state, ns, name, &opts).await,
            Decision::Spend(next) => {
                if !opts.dry_run {
                    let pdb_name = next.metadata.name.clone().unwrap_or_default();
                    let body = serde_json::to_value(&*next).map_err(|e| ApiError::Internal(e.to_string()))?;
                    let written = crud::update(
                        state,
                        budgets,
                        Some(ns),
                        &pdb_name,
                        UpdateScope::Status,
                        WriteOptions::default(),
                        |_| Ok(body.clone()),
                    )
                    .await;
                    match written {
                        Ok(_) => {}
                        // Someone else wrote the budget since it was read: decide again.
                        Err(ApiError::Conflict { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                return delete(state, ns, name, &opts).await;
            }
            Decision::Refuse { cause, retry_after_seconds } => {
                return Err(ApiError::DisruptionBudget { message: VIOLATES_BUDGET.into(), cause, retry_after_seconds })
            }
            Decision::Forbidden { pdb, reason } => {
                return Err(ApiError::Forbidden(format!(
                    "poddisruptionbudgets.policy \"{pdb}\" is forbidden: {reason}"
                )))
            }
            Decision::ManyBudgets => return Err(ApiError::Internal(MANY_BUDGETS.into())),
        }
    }
    Err(conflict(pods, name))
}

async fn delete(state: &ApiState, ns: &str, name: &str, opts: &DeleteOptions) -> Result<()> {
    deletion::delete(state, by_kind(Kind::Pod), Some(ns), name, opts).await.map(|_| ())
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| ApiError::Internal(format!("decoding a stored object: {e}")))
}
