//! A real systemd (the host's `/lib/systemd/systemd`) as PID 1 of a
//! private PID + mount (+ UTS, IPC) namespace, to run units as a node
//! would, on a machine whose own PID 1 is not systemd (or is, and must not
//! be touched).
//!
//! What keeps the host untouched:
//! - systemd loads units only from `/etc/systemd/system`, over which the
//!   caller's unit directory is bound (`SYSTEMD_UNIT_PATH`; no generators):
//!   none of the host's units (`systemd-tmpfiles-setup`, `systemd-sysctl`,
//!   fstab mounts, swap...) can be pulled in. [`write_base_units`] adds the
//!   empty targets default dependencies name and journald.
//! - Writes to `/etc`, `/usr/local`, `/var` (or whatever the caller lists)
//!   go to upper directories of overlays, below the caller's directory.
//! - `/run` and `/sys/fs/cgroup` are private tmpfs (systemd remounts the
//!   latter read-only), with the host's cgroup hierarchies moved in; systemd
//!   starts in a cgroup of its own (`bosun-systemd-<pid>-<n>` below the
//!   test's, in every hierarchy), so its `init.scope` and `system.slice` are
//!   created there and removed at the end.
//! - The network namespace is the host's: the test reaches the apiserver
//!   and pods as usual.
//!
//! [`SystemdNamespace::kill`] (and drop) SIGKILLs the namespace's PID 1,
//! which kills every process in it; its mounts go with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// How long booting and one `systemctl` call may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The target systemd starts (`--unit`): nothing but journald.
pub const BOOT_TARGET: &str = "bosun-test.target";

/// What the namespace looks like.
pub struct NamespaceSpec {
    /// Scratch space of the helper (overlay work dirs, systemd's output).
    pub dir: PathBuf,
    /// Bound on `/etc/systemd/system`: the only unit directory.
    pub units: PathBuf,
    /// `(host directory, upper directory)`: the directory is overlaid in
    /// the namespace, its changes going to the upper directory.
    pub overlays: Vec<(PathBuf, PathBuf)>,
    /// `(link, target)` symlinks made in the namespace's fresh `/run`.
    pub run_links: Vec<(PathBuf, PathBuf)>,
}

/// The empty targets that default dependencies and `[Install]` sections
/// name, the boot target, and journald (socket + service) which the boot
/// target pulls in, so that `journalctl` works.
pub fn write_base_units(units: &Path) -> Result<()> {
    std::fs::create_dir_all(units)?;
    for target in ["sysinit", "basic", "shutdown", "network", "network-online", "multi-user", "sockets", "local-fs"] {
        std::fs::write(units.join(format!("{target}.target")), format!("[Unit]\nDescription={target}\n"))?;
    }
    std::fs::write(
        units.join(BOOT_TARGET),
        "[Unit]\nDescription=bosun test boot\nWants=systemd-journald.socket systemd-journald.service\n",
    )?;
    // Debian's socket unit as it is; the service without the sockets this
    // namespace lacks (/dev/log, audit) and without its sandbox.
    std::fs::copy("/lib/systemd/system/systemd-journald.socket", units.join("systemd-journald.socket"))
        .context("copying systemd-journald.socket (Debian's systemd package)")?;
    std::fs::write(
        units.join("systemd-journald.service"),
        "[Unit]\nDescription=Journal Service\nDefaultDependencies=no\nRequires=systemd-journald.socket\n\
         After=systemd-journald.socket\n\n[Service]\nType=notify\nExecStart=/lib/systemd/systemd-journald\n\
         Sockets=systemd-journald.socket\nRuntimeDirectory=systemd/journal\nRuntimeDirectoryPreserve=yes\n\
         StandardOutput=null\nRestart=always\nRestartSec=0\n",
    )?;
    Ok(())
}

/// A booted systemd in its namespaces.
pub struct SystemdNamespace {
    /// Host pid of the namespace's PID 1 (systemd).
    pub pid: i32,
    unshare: Option<Child>,
    cgroups: Vec<PathBuf>,
    log: PathBuf,
}

impl SystemdNamespace {
    /// Boots systemd and waits until [`BOOT_TARGET`] is active.
    pub fn boot(spec: &NamespaceSpec) -> Result<SystemdNamespace> {
        ensure!(
            Path::new("/lib/systemd/systemd").exists(),
            "/lib/systemd/systemd is missing (Debian's systemd package)"
        );
        write_base_units(&spec.units)?;
        std::fs::create_dir_all(&spec.dir)?;
        let attached_before = attached_controllers()?;
        let group = format!("bosun-systemd-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let cgroups = own_cgroups(&group)?;
        // Built first, so that its drop removes what is made from here on.
        let mut namespace =
            SystemdNamespace { pid: 0, unshare: None, cgroups: cgroups.clone(), log: spec.dir.join("systemd.log") };
        for dir in &cgroups {
            std::fs::create_dir(dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
            // A new v1 cpuset has no CPUs or memory nodes: no process may
            // join it until it gets its parent's.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Some(parent) = dir.parent().filter(|_| dir.join(file).exists()) {
                    std::fs::write(dir.join(file), std::fs::read_to_string(parent.join(file))?)?;
                }
            }
        }
        let script = namespace.script(spec)?;
        let log = std::fs::File::create(&namespace.log)?;
        // setpriv: if this test dies, unshare gets SIGKILL and (--kill-child)
        // so does systemd, taking the namespace with it.
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "SIGKILL", "--", "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc"])
            .args(["--propagation", "private", "--kill-child", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning unshare")?;
        let unshare_pid = child.id() as i32;
        namespace.unshare = Some(child);
        let started = Instant::now();
        namespace.pid = loop {
            if let Some(pid) = child_named(unshare_pid, "systemd") {
                break pid;
            }
            if let Some(status) = namespace.unshare.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("the namespace ended ({status}) before systemd ran:\n{}", namespace.log_text());
            }
            ensure!(started.elapsed() < COMMAND_TIMEOUT, "systemd did not start:\n{}", namespace.log_text());
            std::thread::sleep(Duration::from_millis(20));
        };
        loop {
            let out = namespace.run("systemctl", &["is-active", BOOT_TARGET], Duration::from_secs(10));
            if out.as_ref().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "active") {
                let attached_after = attached_controllers()?;
                ensure!(
                    attached_before == attached_after,
                    "systemd attached cgroup controllers to new hierarchies (before {attached_before:?}, \
                     after {attached_after:?}): this host's containerd can no longer report OOM kills"
                );
                return Ok(namespace);
            }
            ensure!(started.elapsed() < COMMAND_TIMEOUT, "{BOOT_TARGET} not active: {out:?}\n{}", namespace.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The shell script unshare runs as the namespace's PID 1 before it
    /// execs systemd.
    fn script(&self, spec: &NamespaceSpec) -> Result<String> {
        let q = |p: &Path| shell_quote(&p.display().to_string());
        let mut s = String::from("set -eu\nmount -t tmpfs -o mode=755 tmpfs /run\nmount -t proc proc /proc\n");
        // Keep the host's cgroup hierarchies, on a private tmpfs.
        let mounts = cgroup_mounts()?;
        s.push_str("mkdir -p /run/bosun-ns/cg\n");
        for (i, mount) in mounts.iter().enumerate() {
            s.push_str(&format!("mkdir /run/bosun-ns/cg/{i}\nmount --bind {} /run/bosun-ns/cg/{i}\n", q(&mount.point)));
        }
        s.push_str("mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup\n");
        for (i, mount) in mounts.iter().enumerate() {
            s.push_str(&format!("mkdir -p {0}\nmount --move /run/bosun-ns/cg/{i} {0}\n", q(&mount.point)));
        }
        // systemd mounts every enabled controller that has no hierarchy yet
        // (hugetlb, perf_event, net_cls,net_prio on a typical host) unless
        // something is mounted where it would go. Mounting one creates a
        // new v1 hierarchy for the whole kernel, which outlives this
        // namespace; containerd then cannot follow its tasks' cgroups and
        // reports no OOM kills. An empty tmpfs there keeps systemd off.
        for name in unattached_mount_names(&std::fs::read_to_string("/proc/cgroups")?) {
            s.push_str(&format!(
                "mkdir -p /sys/fs/cgroup/{name}\nmount -t tmpfs -o size=4k tmpfs /sys/fs/cgroup/{name}\n"
            ));
        }
        for dir in &self.cgroups {
            s.push_str(&format!("echo 0 > {}\n", q(&dir.join("cgroup.procs"))));
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        for (n, (target, upper)) in spec.overlays.iter().enumerate() {
            // An overlay shows its lower directory without the mounts below
            // it (a container's bind-mounted /etc/resolv.conf, say).
            let below = mountinfo
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .find(|p| Path::new(p).starts_with(target) && Path::new(p) != target.as_path());
            ensure!(below.is_none(), "{} has a mount below it ({below:?}): cannot overlay it", target.display());
            let work = spec.dir.join(format!("overlay-work-{n}"));
            std::fs::create_dir_all(&work)?;
            std::fs::create_dir_all(upper)?;
            let options =
                format!("lowerdir={},upperdir={},workdir={}", target.display(), upper.display(), work.display());
            s.push_str(&format!("mount -t overlay overlay -o {} {}\n", shell_quote(&options), q(target)));
        }
        s.push_str(&format!("mount --bind {} /etc/systemd/system\n", q(&spec.units)));
        for (link, target) in &spec.run_links {
            ensure!(link.starts_with("/run"), "{} is not below /run", link.display());
            if let Some(parent) = link.parent() {
                s.push_str(&format!("mkdir -p {}\n", q(parent)));
            }
            s.push_str(&format!("ln -s {} {}\n", q(target), q(link)));
        }
        let generators = spec.dir.join("no-generators");
        std::fs::create_dir_all(&generators)?;
        s.push_str(&format!(
            "exec env -i container=bosun-test SYSTEMD_UNIT_PATH=/etc/systemd/system SYSTEMD_GENERATOR_PATH={} \
             PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
             /lib/systemd/systemd --system --unit={BOOT_TARGET}\n",
            q(&generators)
        ));
        Ok(s)
    }

    /// Runs `program args` in the namespaces (nsenter), killed after `timeout`.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Output> {
        Command::new("timeout")
            .args(["-k", "5", &format!("{}", timeout.as_secs().max(1))])
            .args(["nsenter", "-t", &self.pid.to_string(), "-m", "-p", "-u", "-i", "--", program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program} {args:?} in the namespace"))
    }

    /// `systemctl args` (within [`COMMAND_TIMEOUT`]), which must succeed; its stdout.
    pub fn systemctl(&self, args: &[&str]) -> Result<String> {
        let out = self.run("systemctl", args, COMMAND_TIMEOUT)?;
        ensure!(
            out.status.success(),
            "systemctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One property of a unit (`systemctl show -p NAME --value`).
    pub fn show(&self, unit: &str, property: &str) -> Result<String> {
        Ok(self.systemctl(&["show", "-p", property, "--value", unit])?.trim().to_string())
    }

    /// The unit's main pid, as the namespace numbers it (0: none).
    pub fn main_pid(&self, unit: &str) -> Result<u32> {
        Ok(self.show(unit, "MainPID")?.parse()?)
    }

    /// `journalctl -u unit` (all of it, no pager).
    pub fn journal(&self, unit: &str) -> Result<String> {
        let out = self.run("journalctl", &["--no-pager", "-o", "short-monotonic", "-u", unit], COMMAND_TIMEOUT)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `path` of the namespace's file system, seen from the host.
    pub fn host_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(path.trim_start_matches('/'))
    }

    /// What systemd printed (its own status lines, before journald ran).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILLs the namespace's PID 1 (every process in the namespace dies
    /// with it, its mounts go) and removes its cgroups.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut unshare) = self.unshare.take() {
            if self.pid > 0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = unshare.kill();
            unshare.wait()?;
        }
        // The kernel reaps the namespace's processes before PID 1's exit
        // completes; cgroups may still be busy for a moment after.
        let deadline = Instant::now() + Duration::from_secs(30);
        for dir in std::mem::take(&mut self.cgroups) {
            while let Err(e) = remove_cgroup_tree(&dir) {
                ensure!(Instant::now() < deadline, "removing cgroup {}: {e}", dir.display());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

impl Drop for SystemdNamespace {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("systemd namespace teardown: {e:#}");
        }
    }
}

/// Removes cgroup `relative` (e.g. a test agent's `cgroupRoot`) and its
/// sub-cgroups from every hierarchy mounted on the host.
pub fn remove_cgroup_everywhere(relative: &str) -> Result<()> {
    for mount in cgroup_mounts()? {
        let dir = mount.point.join(relative.trim_start_matches('/'));
        remove_cgroup_tree(&dir).with_context(|| format!("removing cgroup {}", dir.display()))?;
    }
    Ok(())
}

/// Removes a cgroup directory and its sub-cgroups, deepest first.
fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// A cgroup file system mounted on the host.
struct CgroupMount {
    point: PathBuf,
    /// The hierarchy's path of this process, as a directory of the host.
    own: PathBuf,
}

/// The host's cgroup mounts below /sys/fs/cgroup, each with this process's
/// cgroup in it.
fn cgroup_mounts() -> Result<Vec<CgroupMount>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let membership = std::fs::read_to_string("/proc/self/cgroup")?;
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        // `id parent major:minor root point options [optional...] - type source super`
        let (head, tail) = line.split_once(" - ").context("mountinfo line")?;
        let head: Vec<&str> = head.split(' ').collect();
        let tail: Vec<&str> = tail.split(' ').collect();
        let (Some(root), Some(point), Some(fstype), Some(options)) =
            (head.get(3), head.get(4), tail.first(), tail.get(2))
        else {
            continue;
        };
        if !point.starts_with("/sys/fs/cgroup/") || !matches!(*fstype, "cgroup" | "cgroup2") {
            continue;
        }
        let options: Vec<&str> = options.split(',').collect();
        // /proc/self/cgroup: `id:controllers:path`; cgroup2 has no controllers.
        let path = membership.lines().find_map(|l| {
            let mut fields = l.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let matches = if *fstype == "cgroup2" {
                controllers.is_empty()
            } else {
                !controllers.is_empty() && controllers.split(',').all(|c| options.contains(&c))
            };
            matches.then(|| path.to_string())
        });
        let Some(path) = path else { continue };
        let relative = path.strip_prefix(root).unwrap_or(&path).trim_start_matches('/').to_string();
        mounts.push(CgroupMount { point: PathBuf::from(point), own: Path::new(point).join(relative) });
    }
    ensure!(
        !mounts.is_empty(),
        "no cgroup v1 hierarchies below /sys/fs/cgroup (a cgroup v2-only host is not supported)"
    );
    Ok(mounts)
}

/// The directories below /sys/fs/cgroup where systemd would mount the
/// enabled controllers of `proc_cgroups` (the text of `/proc/cgroups`) that
/// are in no v1 hierarchy (hierarchy 0), named as systemd names them
/// (`cpu,cpuacct` and `net_cls,net_prio` together when both are free).
pub fn unattached_mount_names(proc_cgroups: &str) -> Vec<String> {
    let free: Vec<&str> = proc_cgroups
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1] == "0" && f[3] == "1").then_some(f[0])
        })
        .collect();
    let mut names = Vec::new();
    for c in &free {
        let pair = match *c {
            "cpu" | "cpuacct" => Some(("cpu", "cpuacct")),
            "net_cls" | "net_prio" => Some(("net_cls", "net_prio")),
            _ => None,
        };
        let name = match pair {
            Some((a, b)) if free.contains(&a) && free.contains(&b) => format!("{a},{b}"),
            _ => c.to_string(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The controllers of `/proc/cgroups` attached to a v1 hierarchy: what a
/// test checks is unchanged after systemd ran (a new hierarchy cannot be
/// undone and breaks containerd's OOM reporting for every later test).
pub fn attached_controllers() -> Result<Vec<String>> {
    let text = std::fs::read_to_string("/proc/cgroups")?;
    let mut attached: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1] != "0").then(|| f[0].to_string())
        })
        .collect();
    attached.sort();
    Ok(attached)
}

/// `group` below this process's cgroup in every hierarchy.
fn own_cgroups(group: &str) -> Result<Vec<PathBuf>> {
    Ok(cgroup_mounts()?.into_iter().map(|m| m.own.join(group)).collect())
}

/// The child of `parent` whose command name is `comm`.
fn child_named(parent: i32, comm: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") ")) else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) && name == comm {
            return Some(pid);
        }
    }
    None
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn unattached_controllers_are_named_as_systemd_mounts_them() {
        let proc_cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
            cpuset\t3\t1\t1\ncpu\t1\t1\t1\ncpuacct\t2\t1\t1\nmemory\t4\t1\t1\n\
            net_cls\t0\t1\t1\nperf_event\t0\t1\t1\nnet_prio\t0\t1\t1\nhugetlb\t0\t1\t1\nrdma\t0\t1\t0\n";
        assert_eq!(super::unattached_mount_names(proc_cgroups), ["net_cls,net_prio", "perf_event", "hugetlb"]);
        let lone = "cpu\t0\t1\t1\ncpuacct\t2\t1\t1\n";
        assert_eq!(super::unattached_mount_names(lone), ["cpu"]);
    }
}
