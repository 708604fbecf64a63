//! Kubernetes enums of the pod API as types: restart policies, image pull
//! policy, pod phase, container waiting/terminated reasons and pod failure
//! reasons. Parsed once from the spec; turned back into the API's strings
//! only at the boundary (`as_str`).
//!
//! Must not: decide anything beyond the defaults upstream documents.

use k8s_openapi::api::core::v1::{Container, Pod};

/// Restart policy of a pod (`spec.restartPolicy`, default Always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Always restart.
    Always,
    /// Restart on non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy of `pod` (default Always).
    pub fn of(pod: &Pod) -> Self {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Whether a container that exited with `exit_code` restarts.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }

    /// The policy an init container of a pod with this policy follows: a
    /// failed init container is retried unless the pod never restarts.
    pub fn for_init(self) -> Self {
        match self {
            Self::Never => Self::Never,
            Self::Always | Self::OnFailure => Self::OnFailure,
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::OnFailure => "OnFailure",
            Self::Never => "Never",
        }
    }
}

/// True for a native sidecar: an init container with `restartPolicy: Always`.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Image pull policy of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every container start.
    Always,
    /// Pull when the image is not present.
    IfNotPresent,
    /// Never pull; fail when the image is not present.
    Never,
}

impl PullPolicy {
    /// The effective policy of `container` (default: `Always` for `:latest`
    /// or untagged images, `IfNotPresent` otherwise).
    pub fn of(container: &Container) -> Self {
        match container.image_pull_policy.as_deref() {
            Some("Always") => return Self::Always,
            Some("Never") => return Self::Never,
            Some("IfNotPresent") => return Self::IfNotPresent,
            _ => {}
        }
        let image = container.image.as_deref().unwrap_or_default();
        let name = image.split('@').next().unwrap_or_default();
        let last = name.rsplit('/').next().unwrap_or_default();
        match last.split_once(':') {
            Some((_, "latest")) | None if !image.contains('@') => Self::Always,
            _ => Self::IfNotPresent,
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Pod phase (`status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted, not all containers started.
    Pending,
    /// Bound, containers running or restarting.
    Running,
    /// All containers terminated successfully, none restarts.
    Succeeded,
    /// All containers terminated, at least one failed, none restarts.
    Failed,
    /// The state could not be obtained.
    Unknown,
}

impl PodPhase {
    /// The phase of `pod` as last written (None when unset or unknown text).
    pub fn of(pod: &Pod) -> Option<Self> {
        match pod.status.as_ref()?.phase.as_deref()? {
            "Pending" => Some(Self::Pending),
            "Running" => Some(Self::Running),
            "Succeeded" => Some(Self::Succeeded),
            "Failed" => Some(Self::Failed),
            "Unknown" => Some(Self::Unknown),
            _ => None,
        }
    }

    /// Succeeded or Failed: a pod never leaves these.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Unknown => "Unknown",
        }
    }
}

/// Why a container is not running (`state.waiting.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitingReason {
    /// Not created yet (sandbox, pull or create in progress).
    ContainerCreating,
    /// Waiting for the pod's init containers.
    PodInitializing,
    /// Restart held back by the crash-loop backoff.
    CrashLoopBackOff,
    /// Pull held back by the image pull backoff.
    ImagePullBackOff,
    /// The last pull failed.
    ErrImagePull,
    /// Image absent with pull policy Never.
    ErrImageNeverPull,
    /// The container config could not be built (env sources, quantities).
    CreateContainerConfigError,
    /// The runtime refused to create the container.
    CreateContainerError,
    /// The runtime refused to start the container.
    RunContainerError,
    /// The runtime does not know the container's state.
    ContainerStatusUnknown,
}

impl WaitingReason {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerCreating => "ContainerCreating",
            Self::PodInitializing => "PodInitializing",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::ErrImagePull => "ErrImagePull",
            Self::ErrImageNeverPull => "ErrImageNeverPull",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::CreateContainerError => "CreateContainerError",
            Self::RunContainerError => "RunContainerError",
            Self::ContainerStatusUnknown => "ContainerStatusUnknown",
        }
    }

    /// A backoff hold (reported as a `BackOff` Event), not a failure.
    pub fn is_backoff(self) -> bool {
        matches!(self, Self::CrashLoopBackOff | Self::ImagePullBackOff)
    }
}

/// Why a container terminated (`state.terminated.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminatedReason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit code.
    Error,
    /// Killed by the kernel's OOM killer.
    OOMKilled,
}

impl TerminatedReason {
    /// The reason of an exit with `exit_code`, given the runtime's reason.
    pub fn of(exit_code: i32, runtime_reason: &str) -> Self {
        if runtime_reason == "OOMKilled" {
            Self::OOMKilled
        } else if exit_code == 0 {
            Self::Completed
        } else {
            Self::Error
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "Completed",
            Self::Error => "Error",
            Self::OOMKilled => "OOMKilled",
        }
    }
}

/// Why the agent failed a whole pod (`status.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFailureReason {
    /// `activeDeadlineSeconds` passed.
    DeadlineExceeded,
}

impl PodFailureReason {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeadlineExceeded => "DeadlineExceeded",
        }
    }
}
