//! exec: CRI ExecSync in the container; exit code 0 is success.

use std::time::Duration;

use super::{Outcome, Target};

/// Output kept for messages (as upstream: 10 KiB).
const MAX_OUTPUT: usize = 10 * 1024;

fn text(stdout: &[u8], stderr: &[u8]) -> String {
    let mut bytes: Vec<u8> = stdout.iter().chain(stderr.iter()).copied().take(MAX_OUTPUT).collect();
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(super) async fn run(target: &Target, command: &[String], timeout: Duration) -> Outcome {
    let call = target.runtime.exec_sync(&target.container_id, command.to_vec(), timeout);
    // The runtime enforces the timeout; ours adds a margin for a slow runtime.
    let bound = timeout.saturating_add(Duration::from_secs(2));
    match tokio::time::timeout(bound, call).await {
        Err(_) => Outcome::Failure(format!("command {:?} timed out", command.join(" "))),
        Ok(Err(error)) if error.message.contains("timeout") || error.message.contains("deadline") => {
            Outcome::Failure(format!("command {:?} timed out", command.join(" ")))
        }
        Ok(Err(error)) => Outcome::Failure(error.message),
        Ok(Ok(out)) if out.exit_code == 0 => Outcome::Success(text(&out.stdout, &out.stderr)),
        Ok(Ok(out)) => {
            let output = text(&out.stdout, &out.stderr);
            if output.is_empty() {
                Outcome::Failure(format!("command {:?} exited with {}", command.join(" "), out.exit_code))
            } else {
                Outcome::Failure(output)
            }
        }
    }
}
