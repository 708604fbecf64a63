//! Waiting on a condition with a generous deadline (never on a sleep).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

/// How long [`wait_until`] waits: generous, for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(120);

/// Polls `check` every 200 ms until it finds something (`Some`), for at
/// most [`WAIT`]; an error of `check` ends the wait.
pub fn wait_until<T>(what: &str, check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    wait_within(what, WAIT, check)
}

/// [`wait_until`] with a deadline of `wait` (for conditions that take
/// minutes by design, such as a certificate's lifetime passing).
#[allow(dead_code)]
pub fn wait_within<T>(what: &str, wait: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(found) = check()? {
            return Ok(found);
        }
        ensure!(Instant::now() < deadline, "{what} not seen within {wait:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
