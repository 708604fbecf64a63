//! An in-memory CRI runtime for tests: [`FakeCri`].
//!
//! Owns: a fake runtime served over a real unix socket with the real gRPC
//! services, so code under test uses the real [`CriClient`](crate::CriClient).
//! It keeps images, sandboxes and containers in memory, records every call,
//! and lets a test inject failures and delays, make containers exit, and
//! restart the server on the same socket (state survives, like containerd's).
//! Sandboxes get loopback "pod IPs" (127.88.x.y) so probes stay on the host.
//!
//! Must not: start processes or touch the host beyond its socket file.
//! Real-containerd tests live in the workspace `tests/`.

mod image_service;
mod images;
mod recipe;
mod server;
mod service;
mod world;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tonic::{Code, Status};

use crate::runtime::ExecOutput;
use world::World;

pub use recipe::{PodRecipe, StartedPod};
pub use server::{FakeCriHandle, FakeServeError};

/// Runtime condition reported by `Status`: containers can run.
pub const RUNTIME_READY: &str = "RuntimeReady";
/// Runtime condition reported by `Status`: pod networking is set up.
pub const NETWORK_READY: &str = "NetworkReady";

/// One call the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// CRI method name, e.g. `RunPodSandbox`.
    pub method: &'static str,
    /// What it was about: sandbox `namespace/name` or id, container id, image.
    pub target: String,
}

#[derive(Debug, Default)]
struct Inner {
    world: World,
    faults: HashMap<String, VecDeque<Code>>,
    delays: HashMap<String, Duration>,
    calls: Vec<Call>,
    conditions: BTreeMap<String, bool>,
    pod_cidr: String,
    exec_results: HashMap<String, ExecOutput>,
    usage: HashMap<String, (u64, u64)>,
}

/// An in-memory CRI runtime. Clones share state; keep one in the test and
/// hand the socket of [`FakeCri::serve`] to the code under test.
#[derive(Clone, Debug)]
pub struct FakeCri {
    inner: Arc<Mutex<Inner>>,
}

impl Default for FakeCri {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeCri {
    /// A fake with no images, ready runtime and network.
    pub fn new() -> Self {
        let mut inner = Inner::default();
        inner.conditions.insert(RUNTIME_READY.to_string(), true);
        inner.conditions.insert(NETWORK_READY.to_string(), true);
        FakeCri { inner: Arc::new(Mutex::new(inner)) }
    }

    /// Builder form of [`FakeCri::add_image`].
    pub fn with_image(self, reference: &str) -> Self {
        self.add_image(reference);
        self
    }

    /// Builder form of [`FakeCri::add_pullable`].
    pub fn with_pullable(self, reference: &str) -> Self {
        self.add_pullable(reference);
        self
    }

    /// Makes `reference` present on the node (no pull needed).
    pub fn add_image(&self, reference: &str) {
        self.lock().world.images.add_present(reference);
    }

    /// Makes a pull of `reference` succeed; pulls of anything else fail with NotFound.
    pub fn add_pullable(&self, reference: &str) {
        self.lock().world.images.add_pullable(reference);
    }

    /// Whether `reference` (or image id) is present on the node.
    pub fn has_image(&self, reference: &str) -> bool {
        self.lock().world.images.find(reference).is_some()
    }

    /// The running container's process exits with `exit_code`
    /// (reason `Completed` for 0, `Error` otherwise).
    pub fn exit_container(&self, id: &str, exit_code: i32) -> Result<(), Status> {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        self.lock().world.exit_container(id, exit_code, reason, now_nanos())
    }

    /// The running container is killed by the OOM killer (137, `OOMKilled`).
    pub fn oom_kill_container(&self, id: &str) -> Result<(), Status> {
        self.lock().world.exit_container(id, world::KILLED_EXIT_CODE, "OOMKilled", now_nanos())
    }

    /// The next call of `method` (e.g. `"RunPodSandbox"`) fails with `code`.
    /// Several queued failures are used up in order.
    pub fn fail_next(&self, method: &str, code: Code) {
        self.lock().faults.entry(method.to_string()).or_default().push_back(code);
    }

    /// Every later call of `method` waits `delay` before answering
    /// (`Duration::ZERO` removes the delay).
    pub fn set_delay(&self, method: &str, delay: Duration) {
        let mut inner = self.lock();
        if delay.is_zero() {
            inner.delays.remove(method);
        } else {
            inner.delays.insert(method.to_string(), delay);
        }
    }

    /// Sets a runtime condition reported by `Status` (see [`RUNTIME_READY`], [`NETWORK_READY`]).
    pub fn set_condition(&self, condition: &str, ready: bool) {
        self.lock().conditions.insert(condition.to_string(), ready);
    }

    /// What `ExecSync` in container `id` answers (default: exit 0, no output).
    pub fn set_exec_result(&self, id: &str, output: ExecOutput) {
        self.lock().exec_results.insert(id.to_string(), output);
    }

    /// Usage reported by `ContainerStats` for container `id` (default: zero).
    pub fn set_container_usage(&self, id: &str, cpu_core_nanos: u64, memory_working_set_bytes: u64) {
        self.lock().usage.insert(id.to_string(), (cpu_core_nanos, memory_working_set_bytes));
    }

    /// The pod CIDR last set with `UpdateRuntimeConfig` (empty if never).
    pub fn pod_cidr(&self) -> String {
        self.lock().pod_cidr.clone()
    }

    /// Names of the calls received so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.iter().map(|c| c.method.to_string()).collect()
    }

    /// The calls received so far with their targets.
    pub fn call_log(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a call and says whether to fail it or delay it first.
    fn enter(&self, method: &'static str, target: String) -> Result<Option<Duration>, Status> {
        let mut inner = self.lock();
        inner.calls.push(Call { method, target });
        if let Some(code) = inner.faults.get_mut(method).and_then(VecDeque::pop_front) {
            return Err(Status::new(code, format!("injected failure of {method}")));
        }
        Ok(inner.delays.get(method).copied())
    }
}

/// Wall-clock time in nanoseconds, as CRI timestamps are.
fn now_nanos() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}
