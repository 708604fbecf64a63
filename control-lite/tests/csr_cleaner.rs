//! The CSR cleaner's apply layer against the real in-process apiserver: a
//! clock moved past a deadline makes the sweep delete exactly the requests
//! whose time has come (denied after 1 h, pending after 24 h).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

mod support;

use support::{eventually, Plane};

fn request(name: &str) -> Result<CertificateSigningRequest> {
    let (pem, _) = bosun_control::auth::csr::generate(name, &[])?;
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"request": base64_encode(pem.as_bytes()), "signerName": "example.com/nobody",
            "usages": ["digital signature"]}
    }))?)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_deletes_requests_past_their_deadlines_only() -> Result<()> {
    let mut plane = Plane::apiserver().await?;
    let api: Api<CertificateSigningRequest> = Api::all(plane.client.clone());
    for name in ["pending", "denied"] {
        api.create(&PostParams::default(), &request(name)?).await?;
    }
    let now = jiff::Timestamp::now().to_string();
    let denied = json!({"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "Test",
        "message": "no", "lastUpdateTime": now, "lastTransitionTime": now}]}});
    api.patch_approval("denied", &PatchParams::default(), &Patch::Merge(denied)).await?;

    // The clock runs `offset` seconds ahead of the wall clock.
    let offset = Arc::new(AtomicI64::new(2 * 3600));
    let ahead = offset.clone();
    let clock =
        Arc::new(move || jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ahead.load(Ordering::Relaxed)));
    plane.tasks.push(tokio::spawn(bosun_control::controllers::csr::clean::run_with(
        plane.client.clone(),
        plane.token.clone(),
        Duration::from_millis(100),
        clock,
    )));
    let within = Duration::from_secs(60);
    eventually("the denied request deleted 2 h on", within, || async {
        Ok(api.get_opt("denied").await?.is_none().then_some(()))
    })
    .await?;
    assert!(api.get_opt("pending").await?.is_some(), "a pending request is kept for a day");

    offset.store(25 * 3600, Ordering::Relaxed);
    eventually("the pending request deleted a day on", within, || async {
        Ok(api.get_opt("pending").await?.is_none().then_some(()))
    })
    .await?;
    support::stop(plane.token.clone(), std::mem::take(&mut plane.tasks)).await;
    Ok(())
}
