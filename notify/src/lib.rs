//! bosun-notify: what bosun's daemons tell the service manager that runs
//! them (systemd's `sd_notify` protocol, through the `sd-notify` crate).
//!
//! Owns: `READY=1` once a daemon serves, `STOPPING=1` when it begins to shut
//! down, and the watchdog: `WATCHDOG=1` at half of `WATCHDOG_USEC` for as
//! long as the daemon's own health check passes, so that a wedged daemon is
//! restarted by systemd (`WatchdogSec=` in its unit).
//! Must not: decide what "serving" or "healthy" means (each daemon passes
//! its own check), or fail its callers: without `NOTIFY_SOCKET` (not run by
//! systemd, or by a test) every call does nothing, and a failed send is
//! logged, never returned.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// The daemon's side of the protocol, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// How often to send `WATCHDOG=1`; `None` when no watchdog is armed.
    ping_every: Option<Duration>,
}

/// How often to ping a watchdog that fires after `timeout` without a ping:
/// half of it, as `sd_watchdog_enabled(3)` advises, so that one late tick
/// on a loaded machine does not get the daemon killed. A zero timeout
/// means no watchdog.
pub fn ping_period(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then(|| timeout / 2)
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (a watchdog
    /// armed for another pid, e.g. a parent, is not ours).
    pub fn from_env() -> Notifier {
        Notifier { ping_every: sd_notify::watchdog_enabled().and_then(ping_period) }
    }

    /// The watchdog ping period, if systemd armed a watchdog for us.
    pub fn ping_period(&self) -> Option<Duration> {
        self.ping_every
    }

    /// `READY=1`: the daemon serves. `status` is shown by `systemctl status`.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STOPPING=1`: the daemon began to shut down.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// The daemon's main loop: until `token` is cancelled, sends
    /// `WATCHDOG=1` every ping period when `healthy` passes within that
    /// period. A failing or hanging check skips the ping (logged), so a
    /// daemon that stays unhealthy for the whole `WatchdogSec` is restarted.
    /// Without a watchdog it just waits for `token`.
    pub async fn watchdog<F, Fut>(&self, mut healthy: F, token: &CancellationToken)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let Some(period) = self.ping_every else {
            token.cancelled().await;
            return;
        };
        tracing::info!(?period, "systemd watchdog armed");
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            match tokio::time::timeout(period, healthy()).await {
                Ok(Ok(())) => send(&[NotifyState::Watchdog]),
                Ok(Err(reason)) => tracing::warn!(%reason, "unhealthy: no watchdog ping"),
                Err(_) => tracing::warn!(?period, "health check hung: no watchdog ping"),
            }
        }
    }
}

/// Sends `states` if `NOTIFY_SOCKET` is set; a failure is only logged (the
/// service manager going away must not stop the daemon).
fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_watchdog_timeout() {
        let cases = [
            (Duration::from_secs(30), Some(Duration::from_secs(15))),
            (Duration::from_micros(3), Some(Duration::from_nanos(1500))),
            (Duration::ZERO, None),
        ];
        for (timeout, expected) in cases {
            assert_eq!(ping_period(timeout), expected, "timeout {timeout:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_watchdog_waits_for_cancellation_and_never_checks_health() {
        let token = CancellationToken::new();
        let checks = std::sync::atomic::AtomicUsize::new(0);
        let notifier = Notifier { ping_every: None };
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(120)).await;
            cancel.cancel();
        });
        notifier
            .watchdog(
                || {
                    checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async { Ok(()) }
                },
                &token,
            )
            .await;
        assert_eq!(checks.into_inner(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn checks_health_once_per_period_until_cancelled() {
        let token = CancellationToken::new();
        let checks = std::sync::atomic::AtomicUsize::new(0);
        let notifier = Notifier { ping_every: Some(Duration::from_secs(10)) };
        let cancel = token.clone();
        tokio::spawn(async move {
            // Ticks at 0, 10, 20 and 30 s; cancelled before the one at 40 s.
            tokio::time::sleep(Duration::from_secs(35)).await;
            cancel.cancel();
        });
        notifier
            .watchdog(
                || {
                    checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async { Err("not yet".to_string()) }
                },
                &token,
            )
            .await;
        assert_eq!(checks.into_inner(), 4);
    }
}
