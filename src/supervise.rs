//! `bosun up`'s children and keeping them running.
//!
//! Owns: how each child is started ([`Spec`]), the running handle
//! ([`Running`]), and [`Supervised`], which restarts one child alone when it
//! exits, after the delay [`policy::restart_delay`] computes from its past
//! runs. A crash of any child, containerd included, only restarts that
//! child: containerd comes back on the same config, root and state dirs and
//! re-attaches to the shims that kept the pods running; the agent's CRI
//! client dials the socket again and its event stream resubscribes.
//! Tearing the cluster down is `up`'s job, on an explicit stop only.
//! [`leftovers`] finds what a SIGKILLed `bosun up` left.
//!
//! Must not: remove pods, touch nftables or kill shims.

pub mod leftovers;
pub mod policy;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bosun_stack::process::Daemon;
use bosun_stack::{Containerd, Registry, StackConfig};

use policy::{record, restart_delay, RestartPolicy};

/// How a child is started.
#[derive(Debug, Clone)]
pub enum Spec {
    /// The loopback registry (its images stay on disk across restarts).
    Registry(StackConfig),
    /// Our containerd (same config and dirs on every start).
    Containerd(StackConfig),
    /// `bosun control` or `bosun agent`.
    Bosun { binary: String, args: Vec<String>, log: PathBuf },
}

/// A started child.
#[derive(Debug)]
pub enum Running {
    Registry(Registry),
    Containerd(Containerd),
    Bosun(Daemon),
}

impl Spec {
    async fn start(&self, name: &'static str) -> Result<Running, bosun_stack::Error> {
        Ok(match self {
            Spec::Registry(config) => Running::Registry(Registry::start(config).await?),
            Spec::Containerd(config) => Running::Containerd(Containerd::start(config).await?),
            Spec::Bosun { binary, args, log } => Running::Bosun(Daemon::spawn(name, binary, args, log)?),
        })
    }
}

impl Running {
    fn check_running(&mut self) -> Result<(), bosun_stack::Error> {
        match self {
            Running::Registry(registry) => registry.check_running(),
            Running::Containerd(containerd) => containerd.check_running(),
            Running::Bosun(daemon) => daemon.check_running(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Running::Registry(registry) => registry.pid(),
            Running::Containerd(containerd) => containerd.pid(),
            Running::Bosun(daemon) => daemon.pid(),
        }
    }

    async fn stop(self, grace: Duration) {
        match self {
            Running::Registry(registry) => registry.stop().await,
            Running::Containerd(containerd) => containerd.stop().await,
            Running::Bosun(daemon) => daemon.stop(grace).await,
        }
    }
}

/// One child of `bosun up`, restarted alone when it exits.
pub struct Supervised {
    pub name: &'static str,
    spec: Spec,
    policy: RestartPolicy,
    running: Option<Running>,
    /// How long past runs lasted, oldest first.
    runs: Vec<Duration>,
    started: Instant,
    next_start: Instant,
}

impl Supervised {
    /// Starts the child now.
    pub async fn start(
        name: &'static str,
        spec: Spec,
        policy: RestartPolicy,
    ) -> Result<Supervised, bosun_stack::Error> {
        let running = spec.start(name).await?;
        Ok(Supervised::adopt(name, spec, policy, running))
    }

    /// Supervises a child started by the caller.
    pub fn adopt(name: &'static str, spec: Spec, policy: RestartPolicy, running: Running) -> Supervised {
        let now = Instant::now();
        Supervised { name, spec, policy, running: Some(running), runs: Vec::new(), started: now, next_start: now }
    }

    /// Fails if the child has exited (start-up checks).
    pub fn check_running(&mut self) -> Result<(), bosun_stack::Error> {
        match &mut self.running {
            Some(running) => running.check_running(),
            None => Ok(()),
        }
    }

    /// Notices an exit (and schedules the restart) or restarts the child
    /// when its delay is over.
    pub async fn keep_running(&mut self) {
        if let Some(running) = &mut self.running {
            let Err(err) = running.check_running() else { return };
            tracing::error!(child = self.name, "{err}");
            self.running = None;
            self.ended();
        }
        if Instant::now() < self.next_start {
            return;
        }
        self.started = Instant::now();
        match self.spec.start(self.name).await {
            Ok(running) => {
                tracing::warn!(child = self.name, pid = running.pid(), restarts = self.runs.len(), "restarted");
                self.running = Some(running);
            }
            Err(err) => {
                tracing::error!(child = self.name, "restart failed: {err}");
                self.ended();
            }
        }
    }

    /// Records the run that just ended and when to start the next.
    fn ended(&mut self) {
        record(&mut self.runs, self.started.elapsed());
        let delay = restart_delay(&self.policy, &self.runs);
        self.next_start = Instant::now() + delay;
        tracing::warn!(child = self.name, ?delay, "restarting after a delay");
    }

    /// The running child, started now if it is down (for teardown, which
    /// needs containerd).
    pub async fn ensure_running(&mut self) -> Option<&mut Running> {
        if let Some(running) = &mut self.running {
            if running.check_running().is_ok() {
                return self.running.as_mut();
            }
        }
        match self.spec.start(self.name).await {
            Ok(running) => self.running = Some(running),
            Err(err) => {
                tracing::error!(child = self.name, "starting: {err}");
                self.running = None;
            }
        }
        self.running.as_mut()
    }

    /// Stops the child (SIGTERM, SIGKILL after `grace`).
    pub async fn stop(self, grace: Duration) {
        if let Some(running) = self.running {
            running.stop(grace).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(name: &'static str, script: &str, dir: &std::path::Path) -> Spec {
        Spec::Bosun {
            binary: "sh".into(),
            args: vec!["-c".into(), script.into()],
            log: dir.join(format!("{name}.log")),
        }
    }

    const FAST: RestartPolicy = RestartPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        stable: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn a_crashing_child_is_restarted_alone_with_growing_delays() {
        let dir = tempfile::tempdir().unwrap();
        let mut crasher = Supervised::start("crasher", shell("crasher", "exit 3", dir.path()), FAST).await.unwrap();
        let mut steady = Supervised::start("steady", shell("steady", "sleep 60", dir.path()), FAST).await.unwrap();
        let pid = |child: &Supervised| child.running.as_ref().and_then(Running::pid);
        let steady_pid = pid(&steady);
        let deadline = Instant::now() + Duration::from_secs(30);
        while crasher.runs.len() < 5 {
            assert!(Instant::now() < deadline, "crasher restarted {} times in 30 s", crasher.runs.len());
            crasher.keep_running().await;
            steady.keep_running().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pid(&steady), steady_pid, "the steady child was not restarted");
        assert!(steady.runs.is_empty());
        assert_eq!(restart_delay(&FAST, &crasher.runs), FAST.max, "delays grew to the cap");
        std::fs::metadata(dir.path().join("crasher.log")).unwrap();
        crasher.stop(Duration::from_secs(1)).await;
        steady.stop(Duration::from_secs(1)).await;
    }
}
