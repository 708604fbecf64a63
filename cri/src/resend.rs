//! When a failed call is sent a second time.
//!
//! Owns: the one decision the client makes about failures. A runtime restart
//! kills the client's connection; a call made at that moment fails inside
//! the client without the runtime having answered. Such a call is sent once
//! more (the channel dials the socket again) when doing so cannot do anything
//! twice:
//! - the request never left the client (hyper dropped it unsent), for any call;
//! - the connection failed under an idempotent call (reads, stop/remove, pull).
//!
//! Answers the runtime itself sent are never resent; they carry no local
//! error source, which is how they are told apart.

/// Calls that must not run twice: a second RunPodSandbox/CreateContainer
/// would collide with the first, a second StartContainer or ExecSync would
/// fail or run the command again.
const NOT_IDEMPOTENT: &[&str] = &["RunPodSandbox", "CreateContainer", "StartContainer", "ExecSync"];

/// Whether running `call` twice has the same effect as once.
pub(crate) fn is_idempotent(call: &str) -> bool {
    !NOT_IDEMPOTENT.contains(&call)
}

/// True when the client's connection dropped the request before writing it.
pub(crate) fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(hyper_err) = err.downcast_ref::<hyper::Error>() {
            return hyper_err.is_canceled();
        }
        source = err.source();
    }
    false
}

/// True when the failure happened in the client's transport, not in the
/// runtime: tonic attaches the local error as the status' source, while a
/// status decoded from the runtime's answer has none.
fn failed_locally(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Whether a failed `call` is sent once more.
pub(crate) fn should_resend(call: &str, status: &tonic::Status) -> bool {
    never_sent(status) || (is_idempotent(call) && failed_locally(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken_pipe() -> tonic::Status {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        tonic::Status::from_error(Box::new(io))
    }

    #[test]
    fn resends_only_local_failures_and_only_of_idempotent_calls() {
        let cases = [
            ("ListContainers", tonic::Status::unavailable("restarting"), false),
            ("ListContainers", broken_pipe(), true),
            ("StopContainer", broken_pipe(), true),
            ("PullImage", broken_pipe(), true),
            ("RunPodSandbox", broken_pipe(), false),
            ("StartContainer", broken_pipe(), false),
            ("ExecSync", tonic::Status::cancelled("by server"), false),
        ];
        for (call, status, want) in cases {
            assert_eq!(should_resend(call, &status), want, "{call}: {status:?}");
        }
    }

    #[test]
    fn only_hyper_cancellations_count_as_never_sent() {
        assert!(!never_sent(&broken_pipe()));
        assert!(!never_sent(&tonic::Status::unavailable("down")));
    }
}
