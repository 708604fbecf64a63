//! Leader election, as kube-controller-manager's: several `bosun control`
//! processes on one etcd all serve the API, but only the holder of the
//! `coordination.k8s.io/v1` Lease `kube-system/bosun-control-lite` runs the
//! scheduler and the controllers.
//!
//! Owns: campaigning for the Lease, renewing it, and running the leader's
//! work under a cancellation token that is cancelled when the Lease is lost
//! ([`run`]); the decision itself is pure ([`decide`]). Every write of the
//! Lease is an update conditioned on the resourceVersion read (or a create,
//! which fails if the Lease exists), so two candidates cannot both win.
//!
//! A leader that cannot renew for the renew deadline, or finds another
//! holder, stops its work and campaigns again (the apiserver in the same
//! process keeps serving; upstream's controller-manager exits instead,
//! because it is a process of its own). On shutdown the leader releases
//! the Lease so a standby takes over at once. A standby reads the Lease
//! every retry period and, when it expires sooner, exactly at its expiry:
//! after a leader's `kill -9` a standby leads within the lease duration
//! of the leader's last renewal.
//!
//! Must not: know what the leader's work is.

pub mod decide;

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use decide::{decide, renewal_overdue, wait_time, Decision, Observed};

/// Namespace of the Lease.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// Name of the Lease.
pub const LEASE_NAME: &str = "bosun-control-lite";
/// Longest the leader's work may take to stop once the Lease is lost
/// before its task is aborted (shortened by [`Config::stop_grace`]).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Timing and identity of one candidate.
#[derive(Debug, Clone)]
pub struct Config {
    /// This process's identity (`holderIdentity`), unique per process.
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby reads the Lease.
    pub retry_period: Duration,
}

impl Config {
    /// How long a former leader's work may run on after it gave up the
    /// Lease (at the renew deadline): it must be gone before a standby can
    /// take the Lease (at its expiry), so half the gap between the two.
    pub fn stop_grace(&self) -> Duration {
        (self.lease_duration.saturating_sub(self.renew_deadline) / 2).min(STOP_GRACE)
    }

    /// The defaults (12 s lease, 8 s renew deadline, 2 s retry; upstream's
    /// are 15/10/2, which put a takeover after `kill -9` just past 15 s) for
    /// a fresh identity: this host's name and a random suffix.
    pub fn new(host: &str) -> Config {
        Config {
            identity: format!("{host}_{}", uuid::Uuid::new_v4()),
            lease_duration: Duration::from_secs(12),
            renew_deadline: Duration::from_secs(8),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks upstream's rules: lease duration > renew deadline > retry period > 0.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = self.lease_duration > self.renew_deadline
            && self.renew_deadline > self.retry_period
            && self.retry_period > Duration::ZERO;
        ok.then_some(()).ok_or(Error::Timing {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        })
    }
}

/// Errors of leader election.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error(
        "leader election needs lease duration ({lease_duration:?}) > renew deadline ({renew_deadline:?}) > retry period ({retry_period:?}) > 0"
    )]
    Timing { lease_duration: Duration, renew_deadline: Duration, retry_period: Duration },
    #[error("{op} Lease {LEASE_NAMESPACE}/{LEASE_NAME}")]
    Api {
        op: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{op} Lease {LEASE_NAMESPACE}/{LEASE_NAME}: no answer within {after:?}")]
    Timeout { op: &'static str, after: Duration },
}

fn api_error(op: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api { op, source: Box::new(source) }
}

/// Campaigns for the Lease until `token` is cancelled; while this process
/// holds it, runs `lead(leading)`, cancelling `leading` when the Lease is
/// lost (and waiting for the work to stop before campaigning again).
pub async fn run<F, Fut>(client: kube::Client, config: Config, token: CancellationToken, mut lead: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let identity = config.identity.as_str();
    loop {
        if !acquire(&api, &config, &token).await {
            return;
        }
        tracing::info!(identity, "leader election: acquired the Lease; starting the scheduler and controllers");
        let leading = token.child_token();
        let mut work = tokio::spawn(lead(leading.clone()));
        keep(&api, &config, &token).await;
        leading.cancel();
        if tokio::time::timeout(config.stop_grace(), &mut work).await.is_err() {
            tracing::warn!("leader election: the leader's work did not stop in time; aborting it");
            work.abort();
        }
        if token.is_cancelled() {
            if let Err(error) = release(&api, &config).await {
                tracing::warn!(error = format!("{error:#}"), "leader election: could not release the Lease");
            }
            return;
        }
        tracing::warn!(identity, "leader election: lost the Lease; stopped the scheduler and controllers");
    }
}

/// The Lease's state as [`decide`] reads it.
fn observe(lease: &Lease) -> Observed {
    let spec = lease.spec.as_ref();
    Observed {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
        duration: spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|d| u64::try_from(d).ok())
            .map(Duration::from_secs),
    }
}

/// The Lease held by `config.identity`, renewed at `now`; `current` is the
/// Lease read (its resourceVersion conditions the update; a new holder
/// counts a transition and sets the acquire time).
fn held(config: &Config, current: Option<&Lease>, now: Timestamp) -> Lease {
    let old = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    let ours = old.holder_identity.as_deref() == Some(config.identity.as_str());
    let transitions = old.lease_transitions.unwrap_or(0);
    let seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if ours { old.acquire_time } else { Some(MicroTime(now)) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || current.is_none() {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..LeaseSpec::default()
        }),
    }
}

/// Outcome of one attempt to take or renew the Lease.
enum Attempt {
    /// We hold it now.
    Held,
    /// Another holder's Lease is valid until then.
    Busy(Timestamp),
    /// Someone else wrote it first (409): read again now.
    Raced,
}

/// One read-decide-write round.
async fn attempt(api: &Api<Lease>, config: &Config) -> Result<Attempt, Error> {
    let current = api.get_opt(LEASE_NAME).await.map_err(api_error("get"))?;
    let now = Timestamp::now();
    let decision = decide(current.as_ref().map(observe).as_ref(), &config.identity, now, config.lease_duration);
    let desired = held(config, current.as_ref(), now);
    let written = match decision {
        Decision::Wait { until, .. } => return Ok(Attempt::Busy(until)),
        Decision::Create => api.create(&PostParams::default(), &desired).await,
        Decision::Acquire | Decision::Renew => api.replace(LEASE_NAME, &PostParams::default(), &desired).await,
    };
    match written {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Raced),
        Err(error) => Err(api_error("write")(error)),
    }
}

/// Campaigns until this process holds the Lease (`true`) or `token` is
/// cancelled (`false`).
async fn acquire(api: &Api<Lease>, config: &Config, token: &CancellationToken) -> bool {
    loop {
        let pause = match attempt(api, config).await {
            Ok(Attempt::Held) => return true,
            Ok(Attempt::Raced) => Duration::ZERO,
            Ok(Attempt::Busy(until)) => wait_time(until, Timestamp::now(), config.retry_period),
            Err(error) => {
                tracing::debug!(error = format!("{error:#}"), "leader election: campaign round failed");
                config.retry_period
            }
        };
        tokio::select! {
            () = token.cancelled() => return false,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Renews the Lease every retry period until it is lost (another holder,
/// or no successful renewal within the renew deadline) or `token` is
/// cancelled.
async fn keep(api: &Api<Lease>, config: &Config, token: &CancellationToken) {
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(config.retry_period) => {}
        }
        let left = config.renew_deadline.saturating_sub(renewed.elapsed());
        let outcome = tokio::select! {
            () = token.cancelled() => return,
            outcome = tokio::time::timeout(left, attempt(api, config)) => outcome,
        };
        match outcome {
            Ok(Ok(Attempt::Held)) => renewed = Instant::now(),
            Ok(Ok(Attempt::Busy(_))) => return,
            Ok(Ok(Attempt::Raced)) => tracing::info!("leader election: renewal raced another write"),
            Ok(Err(error)) => tracing::warn!(error = format!("{error:#}"), "leader election: renewal failed"),
            Err(_) => tracing::warn!(after = ?left, "leader election: renewal got no answer"),
        }
        if renewal_overdue(renewed.elapsed(), config.renew_deadline) {
            return;
        }
    }
}

/// Gives the Lease up if this process holds it, so a standby need not wait
/// for it to expire.
async fn release(api: &Api<Lease>, config: &Config) -> Result<(), Error> {
    let op = async {
        let Some(mut lease) = api.get_opt(LEASE_NAME).await.map_err(api_error("get"))? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.metadata.managed_fields = None;
        api.replace(LEASE_NAME, &PostParams::default(), &lease).await.map_err(api_error("release"))?;
        tracing::info!(identity = config.identity, "leader election: released the Lease");
        Ok(())
    };
    tokio::time::timeout(config.retry_period, op)
        .await
        .unwrap_or(Err(Error::Timeout { op: "release", after: config.retry_period }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config { identity: "me".into(), ..Config::new("host") }
    }

    fn lease_of(holder: &str, rv: &str, transitions: i32) -> Lease {
        Lease {
            metadata: ObjectMeta { resource_version: Some(rv.into()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_transitions: Some(transitions),
                acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn writes_are_conditioned_on_the_version_read_and_count_transitions() {
        let now = Timestamp::from_second(1_800_000_000).expect("now");
        let created = held(&config(), None, now);
        assert_eq!(created.metadata.resource_version, None, "a create");
        let spec = created.spec.expect("spec");
        assert_eq!((spec.lease_transitions, spec.lease_duration_seconds), (Some(0), Some(12)));

        let taken = held(&config(), Some(&lease_of("other", "7", 2)), now);
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("7"));
        let spec = taken.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(3), "a new holder is a transition");
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));

        let renewed = held(&config(), Some(&lease_of("me", "9", 3)), now).spec.expect("spec");
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)), "kept");
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn timing_must_leave_room_to_renew_before_expiry() {
        assert!(config().validate().is_ok());
        let bad = Config { renew_deadline: Duration::from_secs(12), ..config() };
        assert!(matches!(bad.validate(), Err(Error::Timing { .. })));
        let zero = Config { retry_period: Duration::ZERO, ..config() };
        assert!(zero.validate().is_err());
    }
}
