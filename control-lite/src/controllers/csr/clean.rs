//! The CSR cleaner (kube-controller-manager's `csrcleaner`): requests are
//! kept only while someone may still want them. [`plan`] decides, per
//! request, whether it is done with and why ([`Reason`]):
//!
//! - pending (neither Approved, Denied nor Failed) for [`PENDING_TTL`]
//!   after its creation;
//! - Denied or Failed for [`DECIDED_TTL`] after that condition;
//! - Approved (issued or not) for [`DECIDED_TTL`] after that condition;
//! - issued with a certificate that has expired, whatever its age.
//!
//! [`run`] sweeps every [`SWEEP_PERIOD`] and deletes what the plan says
//! (with the request's uid as a precondition, so a request recreated under
//! the same name is not deleted by mistake).
//!
//! Must not: delete anything but CertificateSigningRequests.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::apiserver::certificates::{APPROVED, DENIED, FAILED};
use crate::controllers::nodelifecycle::Clock;
use crate::controllers::{is_conflict, is_not_found};

/// How long a request nobody decided on is kept.
pub const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a request is kept after it was approved, denied or failed.
pub const DECIDED_TTL: Duration = Duration::from_secs(3600);
/// How often the cleaner looks (upstream: hourly; more often here so a
/// request goes soon after its time).
pub const SWEEP_PERIOD: Duration = Duration::from_secs(5 * 60);

/// Why a request is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Pending,
    Denied,
    Failed,
    Approved,
    CertificateExpired,
}

impl Reason {
    /// The reason as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Pending => "pending past its deadline",
            Reason::Denied => "denied past its deadline",
            Reason::Failed => "failed past its deadline",
            Reason::Approved => "approved past its deadline",
            Reason::CertificateExpired => "its certificate expired",
        }
    }
}

/// When condition `kind` (status True) of `csr` was last set.
fn condition_time(csr: &CertificateSigningRequest, kind: &str) -> Option<Option<jiff::Timestamp>> {
    let conditions = csr.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == kind && c.status == "True")?;
    let times = [c.last_update_time.as_ref().map(|t| t.0), c.last_transition_time.as_ref().map(|t| t.0)];
    Some(times.into_iter().flatten().max())
}

/// The expiry (notAfter) of the first certificate of `pem`.
pub fn certificate_not_after(pem: &[u8]) -> Option<jiff::Timestamp> {
    use rustls_pki_types::pem::PemObject as _;
    use x509_parser::prelude::FromDer as _;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).ok()?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).ok()?;
    jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}

/// Whether `csr` is done with at `now`, and why.
pub fn plan(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> Option<Reason> {
    let older_than = |t: Option<jiff::Timestamp>, ttl: Duration| {
        let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
        // Without a time (a condition written without one), the creation counts.
        let since = t.or(csr.metadata.creation_timestamp.as_ref().map(|t| t.0));
        since.is_some_and(|since| now.duration_since(since) > ttl)
    };
    let certificate = csr.status.as_ref().and_then(|s| s.certificate.as_ref()).filter(|c| !c.0.is_empty());
    if let Some(cert) = certificate {
        if certificate_not_after(&cert.0).is_some_and(|not_after| not_after <= now) {
            return Some(Reason::CertificateExpired);
        }
    }
    for (kind, reason) in [(DENIED, Reason::Denied), (FAILED, Reason::Failed), (APPROVED, Reason::Approved)] {
        if let Some(at) = condition_time(csr, kind) {
            return older_than(at, DECIDED_TTL).then_some(reason);
        }
    }
    older_than(None, PENDING_TTL).then_some(Reason::Pending)
}

/// Runs the cleaner with the wall clock.
pub async fn run(client: Client, token: CancellationToken) {
    run_with(client, token, SWEEP_PERIOD, Arc::new(jiff::Timestamp::now)).await;
}

/// Runs the cleaner with an explicit period and clock.
pub async fn run_with(client: Client, token: CancellationToken, period: Duration, clock: Clock) {
    let api: Api<CertificateSigningRequest> = Api::all(client);
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let now = clock();
                for csr in &list.items {
                    if let Some(reason) = plan(csr, now) {
                        delete(&api, csr, reason).await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "listing certificate signing requests to clean"),
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

async fn delete(api: &Api<CertificateSigningRequest>, csr: &CertificateSigningRequest, reason: Reason) {
    let name = csr.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: csr.metadata.uid.clone(), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!(csr = name, reason = reason.as_str(), "certificate signing request cleaned up"),
        Err(error) if is_not_found(&error) || is_conflict(&error) => {}
        Err(error) => tracing::warn!(%error, csr = name, "deleting a certificate signing request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestCondition, CertificateSigningRequestStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::ByteString;

    /// A certificate valid until `not_after` (unix seconds).
    fn cert_until(not_after: jiff::Timestamp) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        let secs = u64::try_from(not_after.as_second()).expect("after 1970");
        params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs);
        params.self_signed(&key).expect("cert").pem().into_bytes()
    }

    fn csr(
        now: jiff::Timestamp,
        created_mins: i64,
        condition: Option<(&str, i64)>,
        cert_left_mins: Option<i64>,
    ) -> CertificateSigningRequest {
        let ago = |m: i64| Time(now - jiff::SignedDuration::from_mins(m));
        let conditions = condition.map(|(kind, mins)| {
            vec![CertificateSigningRequestCondition {
                type_: kind.into(),
                status: "True".into(),
                last_update_time: Some(ago(mins)),
                ..CertificateSigningRequestCondition::default()
            }]
        });
        let certificate = cert_left_mins.map(|m| ByteString(cert_until(now + jiff::SignedDuration::from_mins(m))));
        CertificateSigningRequest {
            metadata: ObjectMeta { creation_timestamp: Some(ago(created_mins)), ..ObjectMeta::default() },
            status: Some(CertificateSigningRequestStatus { conditions, certificate }),
            ..CertificateSigningRequest::default()
        }
    }

    #[test]
    fn requests_go_after_their_deadlines() {
        let now = jiff::Timestamp::from_second(2_000_000_000).expect("now");
        let day = 24 * 60;
        let cases: Vec<(&str, CertificateSigningRequest, Option<Reason>)> = vec![
            ("pending, young", csr(now, day - 1, None, None), None),
            ("pending, a day old", csr(now, day + 1, None, None), Some(Reason::Pending)),
            ("denied just now", csr(now, day + 1, Some((DENIED, 1)), None), None),
            ("denied an hour ago", csr(now, 90, Some((DENIED, 61)), None), Some(Reason::Denied)),
            ("failed an hour ago", csr(now, 90, Some((FAILED, 61)), None), Some(Reason::Failed)),
            ("approved, unissued, recent", csr(now, 90, Some((APPROVED, 30)), None), None),
            ("approved, unissued, old", csr(now, 90, Some((APPROVED, 61)), None), Some(Reason::Approved)),
            ("issued, recent", csr(now, 10, Some((APPROVED, 10)), Some(600)), None),
            ("issued an hour ago", csr(now, 70, Some((APPROVED, 61)), Some(600)), Some(Reason::Approved)),
            ("issued, expired", csr(now, 10, Some((APPROVED, 10)), Some(-1)), Some(Reason::CertificateExpired)),
        ];
        for (what, c, want) in cases {
            assert_eq!(plan(&c, now), want, "{what}");
        }
    }

    #[test]
    fn a_condition_without_a_time_counts_from_the_creation() {
        let now = jiff::Timestamp::from_second(2_000_000_000).expect("now");
        let mut old = csr(now, 61, Some((DENIED, 0)), None);
        let mut young = csr(now, 59, Some((DENIED, 0)), None);
        for c in [&mut old, &mut young] {
            let cond = &mut c.status.as_mut().expect("status").conditions.as_mut().expect("conditions")[0];
            cond.last_update_time = None;
        }
        assert_eq!(plan(&old, now), Some(Reason::Denied));
        assert_eq!(plan(&young, now), None);
        assert_eq!(plan(&CertificateSigningRequest::default(), now), None, "no times at all: kept");
    }
}
