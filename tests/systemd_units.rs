//! bosun's systemd units under a real systemd (issue 14): the units
//! `bosun install` writes run as a node runs them, in a systemd booted as
//! PID 1 of its own PID + mount namespace ([`support::systemd_ns`]), with
//! containerd as a unit of the same systemd (Debian's `containerd.service`
//! with a drop-in pointing it at the stack's config: `bosun_stack`'s own
//! containerd config and CNI conflist). Checked:
//! - the README's `systemctl enable --now bosun-control bosun-agent`
//!   returns only once both `Type=notify` units are ready: the apiserver
//!   answers `/readyz` (also at the advertised address) and the Node exists
//!   right after; the agent's `Wants=` started containerd, and the agent
//!   ran only after containerd and control were ready; the node gets Ready
//!   and a Deployment's pod runs in its pod cgroup;
//! - SIGKILL of the agent's main process: systemd restarts it (new MainPID,
//!   NRestarts + 1), the node is Ready again and the pod's container is the
//!   same one, never restarted; likewise for control-lite, whose objects
//!   are all still there, and for a `systemctl restart containerd`;
//! - `journalctl -u bosun-agent` has the agent's own log lines;
//! - `systemctl stop bosun-agent` ends cleanly (SIGTERM, not the timeout)
//!   well within TimeoutStopSec and leaves the pod's container running
//!   (KillMode=process; containerd's unit holds the shims); the next start
//!   adopts it;
//! - the watchdog (shortened by a drop-in): WATCHDOG=1 keeps coming, and a
//!   wedged (SIGSTOPped) agent is aborted and restarted;
//! - a deleted pod's cgroup goes with it.
//!
//! The host keeps its own files: `/etc`, `/usr/local` and `/var` are
//! overlays in the namespace whose writes land in the test's directory.
//! Node name, ports, pod CIDR, bridge, nftables table and cgroup root are
//! the test's own
//! (edited into the installed config files, as an admin would).
//!
//! `flock /tmp/bosun-host.lock cargo test -p bosun --test systemd_units`

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_cri::{api, ClientOptions, CriClient};
use bosun_images::ImageSource;
use bosun_stack::{teardown, CniNetwork, Registry, StackConfig};
use serde_json::Value;
use support::cluster::bosun;
use support::systemd_ns::{remove_cgroup_everywhere, NamespaceSpec, SystemdNamespace};
use support::wait::wait_until;
use support::{free_port, pause_binary};

const AGENT: &str = "bosun-agent.service";
const CONTROL: &str = "bosun-control.service";
const CONTAINERD: &str = "containerd.service";
/// How soon after a deleted pod is gone its cgroup must be gone: generous
/// for a loaded machine; the agent's log then says its pod worker removed
/// it (its orphan sweep runs every 45 s).
const CGROUP_REMOVAL: Duration = Duration::from_secs(90);
/// The watchdog drop-in's `WatchdogSec=`: long enough that a loaded 2-core
/// machine never misses a ping (the agent pings every half of it).
const WATCHDOG: Duration = Duration::from_secs(20);
/// The agent unit's `TimeoutStopSec=`.
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// This test's node: names and addresses no other test uses. The pod
/// range is 10.204/16 (cluster CIDR included): `bosun_testing` slots use
/// 10.203.<slot>.0/24 with Services in 10.100-10.131, other harnesses
/// 10.201 and 10.202, `bosun up` 10.244 and 10.96; Services here are in
/// 10.97/16. The node has no NodePort Service, so its nft table matches no
/// other cluster's node ports.
struct Node {
    name: String,
    pod_cidr: String,
    bridge: String,
    proxy_table: String,
    /// The agent's `cgroupRoot`: its pod cgroups, and its orphan sweep,
    /// stay apart from other agents' on the host.
    cgroup_root: String,
    api: String,
    /// The node's IP, as the agent finds it; control advertises it.
    ip: std::net::Ipv4Addr,
}

impl Node {
    fn new() -> Result<Node> {
        let id = std::process::id() % 250;
        Ok(Node {
            name: format!("bosun-systemd-{id}"),
            pod_cidr: format!("10.204.{id}.0/24"),
            bridge: format!("bsd{id}"),
            proxy_table: format!("bosun_systemd_{id}"),
            cgroup_root: format!("/bosun-systemd-{id}"),
            api: format!("127.0.0.1:{}", free_port()),
            ip: bosun_agent::host::detect_node_ip().context("this host has no IPv4 address for the node")?,
        })
    }
}

/// Everything the test made; dropped in an order that leaves nothing:
/// pods removed through CRI while containerd still runs, then the
/// namespace killed, then what lives in the host's network namespace.
struct Env {
    ns: SystemdNamespace,
    /// The namespace's unit directory, as the host sees it.
    units: PathBuf,
    node: Node,
    stack: StackConfig,
    kubeconfig: PathBuf,
    runtime: tokio::runtime::Runtime,
    registry: Option<Registry>,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_journals();
        }
        let _ = self.ns.run("systemctl", &["stop", AGENT, CONTROL], Duration::from_secs(40));
        let socket = self.stack.containerd_socket();
        let _ = self.runtime.block_on(async {
            let cri = CriClient::connect(&socket, ClientOptions::default()).await?;
            teardown::remove_all_pods(&cri, Duration::from_secs(5)).await.map_err(anyhow::Error::from)
        });
        if let Err(e) = self.ns.kill() {
            eprintln!("{e:#}");
        }
        let _ = teardown::delete_link(&self.stack.network.bridge);
        let _ = Command::new("nft").args(["delete", "table", "ip", &self.node.proxy_table]).output();
        if let Err(e) = remove_cgroup_everywhere(&self.node.cgroup_root) {
            eprintln!("{e:#}");
        }
        if let Some(registry) = self.registry.take() {
            self.runtime.block_on(registry.stop());
        }
    }
}

impl Env {
    /// The units' journals and systemd's own output, for a failed test.
    fn dump_journals(&self) {
        for unit in [CONTROL, AGENT, CONTAINERD] {
            eprintln!("--- journal of {unit}:\n{}", self.ns.journal(unit).unwrap_or_default());
        }
        eprintln!("--- systemd:\n{}", self.ns.log_text());
    }

    fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("kubectl").arg("--kubeconfig").arg(&self.kubeconfig).args(args).output()?;
        ensure!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&all)?)?)
    }

    fn apply(&self, manifest: &str) -> Result<()> {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, manifest.as_bytes())?;
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    fn node_ready(&self) -> Result<bool> {
        let node = self.json(&["get", "node", &self.node.name])?;
        Ok(node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"))
    }

    fn wait_node_ready(&self) -> Result<()> {
        wait_until("node Ready", || Ok(self.node_ready().unwrap_or(false).then_some(())))
    }

    /// The app pod once Running and ready: (name, container ID, restartCount).
    fn running_pod(&self) -> Result<Option<(String, String, i64)>> {
        let pods = self.json(&["get", "pods", "-l", "app=sd"])?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .find(|p| p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][0]["ready"] == true)
            .map(|p| {
                let status = &p["status"]["containerStatuses"][0];
                (
                    p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    status["containerID"].as_str().unwrap_or_default().to_string(),
                    status["restartCount"].as_i64().unwrap_or(-1),
                )
            }))
    }

    /// The container's state as containerd reports it (the agent may be down).
    fn container_state(&self, container_id: &str) -> Result<i32> {
        let id = container_id.trim_start_matches("containerd://").to_string();
        let socket = self.stack.containerd_socket();
        self.runtime.block_on(async {
            let cri = CriClient::connect(&socket, ClientOptions::default()).await?;
            Ok(cri.container_status(&id).await?.state)
        })
    }

    /// SIGKILLs the unit's main process (from inside the namespace, as an
    /// admin's `kill -9` would) and waits for systemd to have started it
    /// again; returns the time that took.
    fn kill_main_and_wait_restart(&self, unit: &str) -> Result<Duration> {
        let old = self.ns.main_pid(unit)?;
        let restarts: u32 = self.ns.show(unit, "NRestarts")?.parse()?;
        ensure!(old > 0, "{unit} has a main process");
        let killed = Instant::now();
        let out = self.ns.run("kill", &["-9", &old.to_string()], Duration::from_secs(10))?;
        ensure!(out.status.success(), "kill -9 {old}: {}", String::from_utf8_lossy(&out.stderr));
        wait_until(&format!("{unit} restarted"), || {
            let state = self.ns.show(unit, "ActiveState")?;
            let pid = self.ns.main_pid(unit)?;
            Ok((state == "active" && pid != 0 && pid != old).then_some(()))
        })?;
        let took = killed.elapsed();
        let now: u32 = self.ns.show(unit, "NRestarts")?.parse()?;
        ensure!(now == restarts + 1, "{unit}: NRestarts {restarts} -> {now}");
        Ok(took)
    }
}

/// Sets the line of `path` that starts with `prefix` to `line` (the line
/// must be there: the shipped file changed otherwise).
fn set_line(path: &Path, prefix: &str, line: &str) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    ensure!(text.lines().any(|l| l.starts_with(prefix)), "no {prefix:?} line in {}", path.display());
    let edited: Vec<String> =
        text.lines().map(|l| if l.starts_with(prefix) { line.to_string() } else { l.to_string() }).collect();
    std::fs::write(path, edited.join("\n") + "\n")?;
    Ok(())
}

/// `bosun install --root root`, then the admin's edits for this node.
fn install(root: &Path, node: &Node) -> Result<()> {
    let out = bosun().args(["install", "--root"]).arg(root).output()?;
    ensure!(out.status.success(), "bosun install: {}", String::from_utf8_lossy(&out.stderr));
    let etc = root.join("etc/bosun");
    set_line(
        &etc.join("control.env"),
        "BOSUN_CONTROL_ARGS=",
        &format!(
            "BOSUN_CONTROL_ARGS=\"--listen {} --advertise-address {} --service-cidr 10.97.0.0/16 --node-name {}\"",
            node.api, node.ip, node.name
        ),
    )?;
    set_line(
        &etc.join("agent.env"),
        "BOSUN_AGENT_ARGS=",
        &format!(
            "BOSUN_AGENT_ARGS=\"--cluster-cidr 10.204.0.0/16 --service-cidr 10.97.0.0/16 --node-name {} \
             --proxy-table {} --healthz-port {} --proxy-metrics-address 127.0.0.1:{}\"",
            node.name,
            node.proxy_table,
            free_port(),
            free_port()
        ),
    )?;
    let config = etc.join("kubelet-config.yaml");
    set_line(&config, "port:", &format!("port: {}", free_port()))?;
    set_line(&config, "podCIDR:", &format!("podCIDR: {}", node.pod_cidr))?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!("cgroupRoot: {}\n", node.cgroup_root));
    std::fs::write(&config, text)?;
    Ok(())
}

/// Debian's containerd unit, with a drop-in that starts it on the stack's
/// config (and loads no kernel module).
fn containerd_unit(units: &Path, stack: &StackConfig) -> Result<()> {
    std::fs::copy("/lib/systemd/system/containerd.service", units.join("containerd.service"))
        .context("Debian's containerd package installs /lib/systemd/system/containerd.service")?;
    let dropin = units.join("containerd.service.d");
    std::fs::create_dir_all(&dropin)?;
    std::fs::write(
        dropin.join("bosun-test.conf"),
        format!(
            "[Service]\nExecStartPre=\nExecStart=\nExecStart=/usr/bin/containerd --config {}\n",
            stack.containerd_config_path().display()
        ),
    )?;
    Ok(())
}

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: sd\nspec:\n  replicas: 1\n  selector:\n    \
         matchLabels:\n      app: sd\n  template:\n    metadata:\n      labels:\n        app: sd\n    spec:\n      \
         terminationGracePeriodSeconds: 1\n      containers:\n        - name: main\n          image: {image}\n          \
         command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; echo started; sleep 3600 & wait\"]\n"
    )
}

fn boot(node: Node) -> Result<Env> {
    let dir = tempfile::Builder::new().prefix("bosun-systemd-").tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let stack = StackConfig {
        dir: dir.path().join("stack"),
        registry: format!("127.0.0.1:{}", free_port()),
        insecure_registries: Vec::new(),
        network: CniNetwork { bridge: node.bridge.clone(), subnet: node.pod_cidr.clone() },
        cni_bin_dir: "/usr/lib/cni".into(),
    };
    let registry = runtime.block_on(Registry::start(&stack))?;
    let source = ImageSource { pause_binary: pause_binary(), busybox: "/bin/busybox".into() };
    runtime.block_on(registry.publish_images(source, &dir.path().join("images")))?;
    bosun_stack::containerd::write_config(&stack)?;

    let root = dir.path().join("root");
    install(&root, &node)?;
    // The units go to the namespace's only unit directory; the rest of the
    // install root is the upper layer of the namespace's /etc and /usr/local.
    let units = dir.path().join("units");
    std::fs::rename(root.join("etc/systemd/system"), &units)?;
    containerd_unit(&units, &stack)?;
    let spec = NamespaceSpec {
        dir: dir.path().join("ns"),
        units,
        overlays: vec![
            ("/etc".into(), root.join("etc")),
            ("/usr/local".into(), root.join("usr/local")),
            ("/var".into(), dir.path().join("var")),
        ],
        run_links: vec![("/run/containerd/containerd.sock".into(), stack.containerd_socket())],
    };
    let ns = SystemdNamespace::boot(&spec)?;
    Ok(Env {
        ns,
        units: spec.units,
        node,
        stack,
        kubeconfig: dir.path().join("admin.kubeconfig"),
        runtime,
        registry: Some(registry),
        _dir: dir,
    })
}

#[test]
fn installed_units_run_a_node_under_systemd() -> Result<()> {
    let started = Instant::now();
    let env = boot(Node::new()?)?;
    let result = scenario(&env);
    if result.is_err() {
        env.dump_journals();
    }
    result?;
    println!("systemd_units: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn scenario(env: &Env) -> Result<()> {
    let ns = &env.ns;

    // The README's command. Type=notify: it returns once both units sent
    // READY=1, which control sends once it serves and the agent once its
    // Node is registered; the agent starts only once control is ready.
    ns.systemctl(&["daemon-reload"])?;
    let t = Instant::now();
    ns.systemctl(&["enable", "--now", CONTROL, AGENT])?;
    println!("systemctl enable --now {CONTROL} {AGENT}: {:.2} s", t.elapsed().as_secs_f64());
    for unit in [CONTROL, AGENT] {
        assert_eq!(ns.show(unit, "Type")?, "notify");
        assert_eq!(ns.show(unit, "ActiveState")?, "active", "{unit}");
        assert_eq!(ns.show(unit, "UnitFileState")?, "enabled", "{unit}");
    }
    // The agent's Wants= brought containerd up; After= ran it after both.
    assert_eq!(ns.show(CONTAINERD, "ActiveState")?, "active");
    let agent_exec: u64 = ns.show(AGENT, "ExecMainStartTimestampMonotonic")?.parse()?;
    for unit in [CONTROL, CONTAINERD] {
        let ready: u64 = ns.show(unit, "ActiveEnterTimestampMonotonic")?.parse()?;
        ensure!(agent_exec >= ready, "the agent ran at {agent_exec}, before {unit} was ready at {ready}");
    }
    std::fs::copy(ns.host_path("/var/lib/bosun-control/admin.kubeconfig"), &env.kubeconfig)
        .context("control wrote the admin kubeconfig in its StateDirectory")?;
    assert_eq!(env.kubectl(&["get", "--raw", "/readyz"])?, "ok", "serving when start returned");
    env.json(&["get", "node", &env.node.name]).context("the Node is registered when start returned")?;
    // The sandboxed control serves at the advertised address too, which the
    // `kubernetes` Service points pods at.
    let port = env.node.api.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
    let advertised = format!("https://{}:{port}", env.node.ip);
    assert_eq!(env.kubectl(&["--server", &advertised, "get", "--raw", "/readyz"])?, "ok");
    let endpoints = env.json(&["get", "endpoints", "kubernetes"])?;
    assert_eq!(endpoints["subsets"][0]["addresses"][0]["ip"], env.node.ip.to_string(), "{endpoints}");
    env.wait_node_ready()?;

    env.apply(&deployment(&env.stack.app_image()))?;
    let (pod, container, restarts) = wait_until("the app pod running", || env.running_pod())?;
    assert_eq!(restarts, 0);
    // Pod cgroups work under systemd (the agent creates them in every
    // hierarchy, beside systemd's own tree; the host shares the hierarchies).
    let uid = env.json(&["get", "pod", &pod])?["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let cgroup = PathBuf::from(format!("/sys/fs/cgroup/memory{}/kubepods/besteffort/pod{uid}", env.node.cgroup_root));
    assert!(cgroup.is_dir(), "{} exists", cgroup.display());

    // The agent killed: systemd restarts it; the pod is left alone.
    let took = env.kill_main_and_wait_restart(AGENT)?;
    println!("agent SIGKILL -> active again: {:.2} s", took.as_secs_f64());
    env.wait_node_ready()?;
    let after = wait_until("the pod running after the agent restart", || env.running_pod())?;
    assert_eq!(after, (pod.clone(), container.clone(), 0), "same pod, same container, no restart");

    // Control killed: restarted on its state; the objects are all there.
    let took = env.kill_main_and_wait_restart(CONTROL)?;
    println!("control SIGKILL -> active again: {:.2} s", took.as_secs_f64());
    env.json(&["get", "deployment", "sd"]).context("the Deployment survives control's restart")?;
    env.wait_node_ready()?;
    let after = wait_until("the pod running after the control restart", || env.running_pod())?;
    assert_eq!(after, (pod.clone(), container.clone(), 0));

    // containerd restarted (its own unit, KillMode=process): the shims
    // keep the pod running and the agent keeps the node Ready.
    ns.systemctl(&["restart", CONTAINERD])?;
    env.wait_node_ready()?;
    let after = wait_until("the pod running after the containerd restart", || env.running_pod())?;
    assert_eq!(after, (pod.clone(), container.clone(), 0));

    // The agent's log is in the journal, with systemd's record of the kill.
    let journal = ns.journal(AGENT)?;
    assert!(journal.contains("bosun-agent.service: Main process exited, code=killed, status=9/KILL"), "{journal}");
    assert!(journal.contains(" bosun["), "the agent's own lines are in the journal:\n{journal}");

    // A clean stop well within TimeoutStopSec; the pod keeps running.
    let t = Instant::now();
    ns.systemctl(&["stop", AGENT])?;
    let took = t.elapsed();
    println!("systemctl stop {AGENT}: {:.2} s", took.as_secs_f64());
    ensure!(took < AGENT_STOP_TIMEOUT, "stop took {took:?}");
    assert_eq!(ns.show(AGENT, "ActiveState")?, "inactive");
    assert_eq!(ns.show(AGENT, "Result")?, "success", "exited on SIGTERM, not killed after the timeout");
    assert_eq!(env.container_state(&container)?, api::ContainerState::ContainerRunning as i32, "pod left running");
    ns.systemctl(&["start", AGENT])?;
    env.wait_node_ready()?;
    let after = wait_until("the pod adopted by the started agent", || env.running_pod())?;
    assert_eq!(after, (pod.clone(), container.clone(), 0));

    // The watchdog, shortened by a drop-in: WATCHDOG=1 keeps coming while
    // the agent is healthy; a wedged (stopped) agent is aborted and
    // restarted, and the pod is left alone again. The drop-in is removed
    // afterwards: the rest runs under the shipped unit.
    watchdog(env)?;
    let after = wait_until("the pod running after the watchdog restart", || env.running_pod())?;
    assert_eq!(after, (pod, container, 0));
    std::fs::remove_dir_all(env.units.join("bosun-agent.service.d"))?;
    ns.systemctl(&["daemon-reload"])?;
    ns.systemctl(&["restart", AGENT])?;
    assert_eq!(ns.show(AGENT, "WatchdogUSec")?, "1min", "the shipped unit's watchdog again");
    env.wait_node_ready()?;

    // The pod goes through the agent, which removes its cgroups and volumes.
    env.kubectl(&["delete", "deployment", "sd", "--wait=false"])?;
    wait_until("the app pod gone", || {
        Ok(env.json(&["get", "pods", "-l", "app=sd"])?["items"].as_array().is_some_and(|i| i.is_empty()).then_some(()))
    })?;
    // The agent removes the pod's cgroup with the pod, not at its next
    // orphan sweep (every 45 s).
    let gone = Instant::now();
    while cgroup.exists() {
        ensure!(gone.elapsed() < CGROUP_REMOVAL, "{} still there {CGROUP_REMOVAL:?} after the pod", cgroup.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("pod gone -> its cgroup gone: {:.2} s", gone.elapsed().as_secs_f64());
    let journal = ns.journal(AGENT)?;
    assert!(!journal.contains("no pod cgroups"), "{journal}");
    let by_worker = journal.lines().any(|l| l.contains("removed the pod cgroup with the pod") && l.contains(&uid));
    let by_sweep = journal.lines().any(|l| l.contains("removed the cgroup of a pod that is gone") && l.contains(&uid));
    println!(
        "the pod cgroup removed by: {}",
        if by_worker {
            "the pod worker"
        } else if by_sweep {
            "the orphan sweep"
        } else {
            "?"
        }
    );
    ensure!(by_worker, "the pod worker removed the cgroup, not the sweep (sweep: {by_sweep}):\n{journal}");
    Ok(())
}

/// [`WATCHDOG`] instead of the unit's 60 s, and no core file from the
/// abort (the namespace's `/` is the host's).
fn watchdog_dropin() -> String {
    format!("[Service]\nWatchdogSec={}s\nLimitCORE=0\n", WATCHDOG.as_secs())
}

fn watchdog(env: &Env) -> Result<()> {
    let ns = &env.ns;
    let dropin = env.units.join("bosun-agent.service.d");
    std::fs::create_dir_all(&dropin)?;
    std::fs::write(dropin.join("test-watchdog.conf"), watchdog_dropin())?;
    ns.systemctl(&["daemon-reload"])?;
    ns.systemctl(&["restart", AGENT])?;
    assert_eq!(ns.show(AGENT, "WatchdogUSec")?, format!("{}s", WATCHDOG.as_secs()));
    let ping = || ns.show(AGENT, "WatchdogTimestampMonotonic");
    let first = ping()?;
    let second = wait_until("a WATCHDOG=1", || Ok(Some(ping()?).filter(|p| *p != first)))?;
    wait_until("another WATCHDOG=1", || Ok(Some(ping()?).filter(|p| *p != second)))?;
    let restarts: u32 = ns.show(AGENT, "NRestarts")?.parse()?;
    let wedged = ns.main_pid(AGENT)?;
    let out = ns.run("kill", &["-STOP", &wedged.to_string()], Duration::from_secs(10))?;
    ensure!(out.status.success(), "kill -STOP: {}", String::from_utf8_lossy(&out.stderr));
    wait_until("the wedged agent restarted", || {
        let pid = ns.main_pid(AGENT)?;
        Ok((pid != 0 && pid != wedged && ns.show(AGENT, "ActiveState")? == "active").then_some(()))
    })?;
    let now: u32 = ns.show(AGENT, "NRestarts")?.parse()?;
    ensure!(now == restarts + 1, "NRestarts {restarts} -> {now}");
    let journal = ns.journal(AGENT)?;
    assert!(journal.contains("Watchdog timeout"), "{journal}");
    env.wait_node_ready()
}
