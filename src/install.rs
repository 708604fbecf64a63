//! `bosun install`: puts this binary, the systemd units and a default
//! configuration in place, below `--root` (`/` on a real node; a package
//! build or a test points it at a directory of its own).
//!
//! [`plan`] decides what to write (pure: units and the binary are always
//! replaced, config files only when missing or with `--force-config`, so an
//! upgrade keeps what the admin edited); [`apply`] writes it. Nothing here
//! talks to systemd: the last step is the `systemctl` hint it prints.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the units' `ExecStart=` expects the binary.
pub const BINARY: &str = "usr/local/bin/bosun";
/// The agent's static pod directory (`staticPodPath` in the default config).
const MANIFESTS: &str = "etc/bosun/manifests";

/// The files shipped in `systemd/`, compiled into the binary.
const AGENT_UNIT: &str = include_str!("../systemd/bosun-agent.service");
const CONTROL_UNIT: &str = include_str!("../systemd/bosun-control.service");
/// The agent's default KubeletConfiguration.
pub const KUBELET_CONFIG: &str = include_str!("../systemd/kubelet-config.yaml");
const AGENT_ENV: &str = include_str!("../systemd/agent.env");
const CONTROL_ENV: &str = include_str!("../systemd/control.env");

#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Install below this directory instead of the real root.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The binary to install (default: the running one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Also overwrite config files in /etc/bosun that already exist.
    #[arg(long)]
    pub force_config: bool,
}

/// What one installed file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// A copy of the bosun binary.
    Binary,
    Text(String),
}

/// One file to write, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub path: &'static str,
    pub contents: Contents,
    pub mode: u32,
}

/// The files `bosun install` owns, and whether each is admin-edited
/// config (kept when present).
fn files() -> Vec<(Step, bool)> {
    let text = |s: &str| Contents::Text(s.to_string());
    vec![
        (Step { path: BINARY, contents: Contents::Binary, mode: 0o755 }, false),
        (Step { path: "etc/systemd/system/bosun-agent.service", contents: text(AGENT_UNIT), mode: 0o644 }, false),
        (Step { path: "etc/systemd/system/bosun-control.service", contents: text(CONTROL_UNIT), mode: 0o644 }, false),
        (Step { path: "etc/bosun/kubelet-config.yaml", contents: text(KUBELET_CONFIG), mode: 0o644 }, true),
        (Step { path: "etc/bosun/agent.env", contents: text(AGENT_ENV), mode: 0o644 }, true),
        (Step { path: "etc/bosun/control.env", contents: text(CONTROL_ENV), mode: 0o644 }, true),
    ]
}

/// The steps to run, given which paths (relative to the root) exist.
pub fn plan(exists: impl Fn(&str) -> bool, force_config: bool) -> Vec<Step> {
    files()
        .into_iter()
        .filter(|(step, config)| !*config || force_config || !exists(step.path))
        .map(|(step, _)| step)
        .collect()
}

/// Writes `steps` below `root`: each file goes to a temporary name first
/// and is renamed over the old one, so a running binary is replaced, never
/// overwritten in place ("text file busy").
pub fn apply(root: &Path, steps: &[Step], binary: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for step in steps {
        let target = root.join(step.path);
        let dir = target.parent().context("installed path has a parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let staged = dir.join(format!(".{}.bosun-install", target.file_name().unwrap_or_default().to_string_lossy()));
        match &step.contents {
            Contents::Binary => std::fs::copy(binary, &staged)
                .map(drop)
                .with_context(|| format!("copying {} to {}", binary.display(), staged.display()))?,
            Contents::Text(text) => {
                std::fs::write(&staged, text).with_context(|| format!("writing {}", staged.display()))?
            }
        }
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(step.mode))
            .with_context(|| format!("setting the mode of {}", staged.display()))?;
        std::fs::rename(&staged, &target).with_context(|| format!("installing {}", target.display()))?;
    }
    let manifests = root.join(MANIFESTS);
    std::fs::create_dir_all(&manifests).with_context(|| format!("creating {}", manifests.display()))
}

pub fn run(args: InstallArgs) -> Result<()> {
    let binary = match args.binary {
        Some(binary) => binary,
        None => std::env::current_exe().context("locating the bosun binary")?,
    };
    let steps = plan(|path| args.root.join(path).exists(), args.force_config);
    apply(&args.root, &steps, &binary)?;
    for step in &steps {
        println!("installed {}", args.root.join(step.path).display());
    }
    let kept: Vec<String> = files()
        .into_iter()
        .filter(|(file, _)| !steps.iter().any(|step| step.path == file.path))
        .map(|(file, _)| args.root.join(file.path).display().to_string())
        .collect();
    if !kept.is_empty() {
        println!("kept (already there; --force-config replaces them): {}", kept.join(", "));
    }
    println!("Now run: systemctl daemon-reload && systemctl enable --now bosun-control bosun-agent");
    println!("The agent needs containerd with a CNI config for its pod CIDR (see systemd/README.md).");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(|step| step.path).collect()
    }

    #[test]
    fn a_fresh_install_writes_everything() {
        let steps = plan(|_| false, false);
        assert_eq!(steps.len(), files().len());
        assert_eq!(steps[0], Step { path: BINARY, contents: Contents::Binary, mode: 0o755 });
    }

    #[test]
    fn an_upgrade_replaces_binary_and_units_but_keeps_edited_config() {
        let steps = plan(|_| true, false);
        assert_eq!(
            paths(&steps),
            [BINARY, "etc/systemd/system/bosun-agent.service", "etc/systemd/system/bosun-control.service"]
        );
        assert_eq!(plan(|_| true, true).len(), files().len(), "--force-config rewrites config too");
    }

    #[test]
    fn units_start_the_installed_binary() {
        for unit in [AGENT_UNIT, CONTROL_UNIT] {
            assert!(unit.contains(&format!("ExecStart=/{BINARY} ")), "{unit}");
        }
    }

    #[test]
    fn the_default_kubelet_config_is_honoured_in_full() {
        let file = bosun_agent::kubelet_config::parse_config_file(KUBELET_CONFIG).expect("default config parses");
        assert!(file.ignored.is_empty(), "fields the agent would ignore: {:?}", file.ignored);
        assert_eq!(file.settings.static_pod_path.as_deref(), Some(Path::new("/etc/bosun/manifests")));
    }

    /// The kubeconfigs hold certificates of the CA control makes at its
    /// first start, so control writes them (install cannot): the agent
    /// reads the node kubeconfig where control writes it.
    #[test]
    fn the_agent_reads_the_node_kubeconfig_control_writes() {
        let flag = |unit: &str, name: &str| {
            let at = unit.find(name).map(|i| i + name.len()).unwrap_or_default();
            unit[at..].split_whitespace().next().unwrap_or_default().to_string()
        };
        let written = flag(CONTROL_UNIT, "--node-kubeconfig-out ");
        assert!(written.starts_with("/var/lib/bosun-control/"), "in control's StateDirectory: {written}");
        assert_eq!(flag(AGENT_UNIT, "--kubeconfig "), written);
    }
}
