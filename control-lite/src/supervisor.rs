//! Component isolation: runs one control-plane component (a controller, the
//! scheduler) and restarts it alone when it panics, fails or stops early.
//!
//! Owns: the restart policy as a pure decision (`Backoff`: exponential
//! delay that resets after a stable run) and a thin runner (`supervise`)
//! that spawns each attempt as its own task, so a panic is caught as a
//! `JoinError` instead of taking the process down. Each attempt gets a
//! child cancellation token that is cancelled when the attempt ends, so the
//! background tasks it started (informers, delayed requeues) end with it.
//! Must not: know what a component does.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a component may take to stop once cancelled before its task
/// is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Restart delays: `initial`, doubling up to `max`; a run that lasted at
/// least `stable` starts the sequence over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    stable: Duration,
    failures: u32,
}

impl Default for Backoff {
    /// 1 s doubling to 60 s, reset after 60 s of stable running.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60), Duration::from_secs(60))
    }
}

impl Backoff {
    /// A policy with explicit bounds.
    pub fn new(initial: Duration, max: Duration, stable: Duration) -> Self {
        Backoff { initial, max, stable, failures: 0 }
    }

    /// Records a failure after a run of `ran_for` and returns how long to
    /// wait before the next start.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable {
            self.failures = 0;
        }
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        let delay = self.initial.checked_mul(factor).unwrap_or(self.max).min(self.max);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// How one attempt of a component ended.
pub trait Exit {
    /// `Some(reason)` if the component failed.
    fn failure(self) -> Option<String>;
}

impl Exit for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: Display> Exit for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| format!("{e:#}"))
    }
}

/// Runs `start(child_token)` until `token` is cancelled, restarting it with
/// `backoff` whenever it panics, returns an error, or returns early. On
/// cancellation it waits `STOP_GRACE` for the component, then aborts it.
pub async fn supervise<F, Fut>(name: &'static str, token: CancellationToken, mut backoff: Backoff, mut start: F)
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Exit + Send + 'static,
{
    loop {
        let attempt = token.child_token();
        let started = Instant::now();
        let mut task = tokio::spawn(start(attempt.clone()));
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = token.cancelled() => {
                // The attempt's token is a child: it is cancelled too.
                if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                    tracing::warn!(component = name, "did not stop in time; aborting it");
                    task.abort();
                }
                return;
            }
        };
        // Stop whatever the attempt left running before starting another.
        attempt.cancel();
        if token.is_cancelled() {
            return;
        }
        let reason = match joined {
            Ok(exit) => exit.failure().unwrap_or_else(|| "stopped unexpectedly".to_string()),
            Err(error) if error.is_panic() => format!("panicked: {}", panic_message(error.into_panic())),
            Err(error) => format!("task failed: {error}"),
        };
        let delay = backoff.next_delay(started.elapsed());
        tracing::error!(component = name, %reason, ?delay, restarts = backoff.failures(), "component failed; restarting it");
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The text of a panic payload (`&str` or `String`), if it has one.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(|| "non-text panic".to_string(), |s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn delays_double_cap_and_reset_after_a_stable_run() {
        let secs = Duration::from_secs;
        let mut backoff = Backoff::new(secs(1), secs(60), secs(60));
        let quick = secs(0);
        let got: Vec<u64> = (0..9).map(|_| backoff.next_delay(quick).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.next_delay(secs(59)).as_secs(), 60, "not stable yet");
        assert_eq!(backoff.next_delay(secs(60)).as_secs(), 1, "stable run resets");
        assert_eq!(backoff.next_delay(quick).as_secs(), 2);
    }

    #[test]
    fn delays_never_overflow() {
        let mut backoff = Backoff::new(Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..100 {
            assert_eq!(backoff.next_delay(Duration::ZERO), Duration::MAX);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_component_is_restarted_with_backoff_until_it_runs() {
        let token = CancellationToken::new();
        let starts = Arc::new(AtomicU32::new(0));
        let t0 = Instant::now();
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let supervisor = {
            let (starts, times, token) = (starts.clone(), times.clone(), token.clone());
            tokio::spawn(supervise("flaky", token, Backoff::default(), move |attempt: CancellationToken| {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                times.lock().expect("times").push(t0.elapsed().as_secs());
                async move {
                    assert!(n >= 3, "attempt {n} fails");
                    attempt.cancelled().await;
                }
            }))
        };
        // Paused time auto-advances through the backoff sleeps.
        while starts.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 4, "runs once it stops panicking");
        assert_eq!(*times.lock().expect("times"), [0, 1, 3, 7], "waits 1, 2, 4 s between attempts");
        token.cancel();
        supervisor.await.expect("supervisor ends on cancellation");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_early_returns_restart_and_cancel_the_attempt_token() {
        let token = CancellationToken::new();
        let attempts: Arc<std::sync::Mutex<Vec<CancellationToken>>> = Arc::default();
        let supervisor = {
            let (attempts, token) = (attempts.clone(), token.clone());
            tokio::spawn(supervise("erring", token, Backoff::default(), move |attempt: CancellationToken| {
                let mut seen = attempts.lock().expect("attempts");
                seen.push(attempt);
                let n = seen.len();
                async move {
                    match n {
                        1 => Err("broken"),
                        2 => Ok(()),
                        3 => std::future::pending().await,
                        _ => Ok(()),
                    }
                }
            }))
        };
        while attempts.lock().expect("attempts").len() < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        {
            let seen = attempts.lock().expect("attempts");
            assert!(seen[0].is_cancelled() && seen[1].is_cancelled(), "ended attempts are cancelled");
            assert!(!seen[2].is_cancelled(), "the running attempt is not");
        }
        token.cancel();
        supervisor.await.expect("supervisor ends, aborting the attempt that ignores cancellation");
        let seen = attempts.lock().expect("attempts");
        assert_eq!(seen.len(), 3, "no restart after cancellation");
        assert!(seen[2].is_cancelled());
    }
}
