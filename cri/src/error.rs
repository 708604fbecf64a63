//! Errors of the CRI client.
//!
//! Owns: the one error type every `CriClient` call returns. Each variant names
//! what failed (socket path, CRI call, and the image, pod sandbox or container
//! it was about) so a log line is enough to know which object was hit.

use std::path::PathBuf;
use std::time::Duration;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a CRI call failed.
///
/// `target` strings describe the object of the call, for example
/// `pod sandbox "default/web-1"`, `container "3f2a..."` or `image "busybox:1.36"`.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The CRI socket path does not exist (the runtime is not running or the path is wrong).
    #[error("CRI socket {} does not exist", socket.display())]
    SocketMissing {
        /// The socket path that was looked for.
        socket: PathBuf,
    },
    /// The socket exists but a gRPC connection could not be made over it.
    #[error("connecting to CRI socket {}", socket.display())]
    Connect {
        /// The socket path that was dialled.
        socket: PathBuf,
        /// The transport failure.
        source: tonic::transport::Error,
    },
    /// The runtime answered a call with an error status.
    #[error("CRI {call} for {target}: {}", describe(status))]
    Rpc {
        /// CRI method name, e.g. `RunPodSandbox`.
        call: &'static str,
        /// The object of the call.
        target: String,
        /// The runtime's answer.
        status: tonic::Status,
    },
    /// The call did not complete within its deadline.
    #[error("CRI {call} for {target}: no answer after {after:?}")]
    Timeout {
        /// CRI method name.
        call: &'static str,
        /// The object of the call.
        target: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// Pulling an image failed; the message carries the runtime's (and so the
    /// registry's) answer verbatim.
    #[error("pulling image {image:?}: {}", describe(status))]
    ImagePull {
        /// The image reference that was asked for.
        image: String,
        /// The runtime's answer.
        status: tonic::Status,
    },
}

impl Error {
    /// True when the runtime reported that the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(tonic::Code::NotFound)
    }

    /// The gRPC code of the failure: the runtime's status code for `Rpc` and
    /// `ImagePull`, `DeadlineExceeded` for `Timeout`, and `None` when no call
    /// was made (`SocketMissing`, `Connect`).
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Rpc { status, .. } | Error::ImagePull { status, .. } => Some(status.code()),
            Error::Timeout { .. } => Some(tonic::Code::DeadlineExceeded),
            Error::SocketMissing { .. } | Error::Connect { .. } => None,
        }
    }
}

/// `NotFound: image "x" not found` - the code's name and the runtime's own text.
fn describe(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_the_object_and_the_runtime_answer() {
        let cases = [
            (
                Error::Rpc {
                    call: "RunPodSandbox",
                    target: "pod sandbox \"default/web-1\"".into(),
                    status: tonic::Status::unavailable("runtime is restarting"),
                },
                "CRI RunPodSandbox for pod sandbox \"default/web-1\": Unavailable: runtime is restarting",
            ),
            (
                Error::Rpc {
                    call: "StartContainer",
                    target: "container \"abc\"".into(),
                    status: tonic::Status::new(tonic::Code::Internal, ""),
                },
                "CRI StartContainer for container \"abc\": Internal",
            ),
            (
                Error::Timeout { call: "PullImage", target: "image \"busybox\"".into(), after: Duration::from_secs(3) },
                "CRI PullImage for image \"busybox\": no answer after 3s",
            ),
            (
                Error::ImagePull { image: "nope:1".into(), status: tonic::Status::not_found("nope:1: not found") },
                "pulling image \"nope:1\": NotFound: nope:1: not found",
            ),
            (Error::SocketMissing { socket: "/run/x.sock".into() }, "CRI socket /run/x.sock does not exist"),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }

    #[test]
    fn codes_and_not_found() {
        let not_found = Error::Rpc {
            call: "ContainerStatus",
            target: "container \"x\"".into(),
            status: tonic::Status::not_found("gone"),
        };
        assert!(not_found.is_not_found());
        assert_eq!(not_found.code(), Some(tonic::Code::NotFound));

        let timeout = Error::Timeout { call: "Version", target: "runtime".into(), after: Duration::from_secs(1) };
        assert!(!timeout.is_not_found());
        assert_eq!(timeout.code(), Some(tonic::Code::DeadlineExceeded));

        let missing = Error::SocketMissing { socket: "/nope".into() };
        assert_eq!(missing.code(), None);
    }
}
