//! Configuration of the private stack, rendered as pure functions.

use std::path::{Path, PathBuf};

/// The pod network containerd's CRI sets up through CNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniNetwork {
    /// Linux bridge name (at most 15 bytes), e.g. `bosun0`.
    pub bridge: String,
    /// The node's pod subnet, e.g. `10.244.0.0/24`.
    pub subnet: String,
}

/// Everything that makes one stack distinct from another on the same host.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// All state lives below this directory.
    pub dir: PathBuf,
    /// `host:port` of the loopback registry.
    pub registry: String,
    /// More plain-HTTP registries containerd may pull from (`host:port`),
    /// e.g. a private registry on the node's network.
    pub insecure_registries: Vec<String>,
    pub network: CniNetwork,
    /// Where the CNI plugin binaries are (Debian: `/usr/lib/cni`).
    pub cni_bin_dir: PathBuf,
}

impl StackConfig {
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd").join("containerd.sock")
    }
    pub fn containerd_config_path(&self) -> PathBuf {
        self.dir.join("containerd").join("config.toml")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni").join("net.d")
    }
    pub fn cni_ipam_dir(&self) -> PathBuf {
        self.dir.join("cni").join("ipam")
    }
    pub fn registry_dir(&self) -> PathBuf {
        self.dir.join("registry")
    }
    /// The sandbox image every pod's pause container runs.
    pub fn sandbox_image(&self) -> String {
        format!("{}/{}:{}", self.registry, bosun_images::PAUSE_REPOSITORY, bosun_images::PAUSE_TAG)
    }
    /// The app image (busybox) as pods reference it.
    pub fn app_image(&self) -> String {
        format!("{}/{}:{}", self.registry, bosun_images::APP_REPOSITORY, bosun_images::APP_TAG)
    }
}

fn quote(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).unwrap_or_default()
}

/// containerd 1.6 configuration (version 2) for a private instance.
///
/// Notes: `restrict_oom_score_adj` is required where the process lacks
/// CAP_SYS_RESOURCE (FACTS.md); the plain-HTTP loopback registry needs a
/// mirror entry; network namespaces and runc state live under our state dir
/// so nothing is shared with a host containerd.
pub fn render_containerd_config(config: &StackConfig) -> String {
    let root = config.dir.join("containerd");
    let registry = &config.registry;
    format!(
        r#"version = 2
root = {root}
state = {state}
oom_score = 0

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc_root}
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
{insecure}"#,
        insecure = insecure_mirrors(&config.insecure_registries),
        root = quote(&root.join("root")),
        state = quote(&root.join("state")),
        socket = quote(&config.containerd_socket()),
        ttrpc = quote(&root.join("containerd.sock.ttrpc")),
        opt = quote(&root.join("opt")),
        sandbox_image = config.sandbox_image(),
        runc_root = quote(&root.join("state").join("runc")),
        cni_bin = quote(&config.cni_bin_dir),
        cni_conf = quote(&config.cni_conf_dir()),
    )
}

/// CNI conflist: a bridge with host-local IPAM on the node's pod subnet, and
/// portmap. (containerd adds the loopback interface itself.)
pub fn render_cni_conflist(config: &StackConfig) -> String {
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "bosun",
        "plugins": [
            {
                "type": "bridge",
                "bridge": config.network.bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": config.network.subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": config.cni_ipam_dir().display().to_string(),
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&conflist).unwrap_or_default()
}

/// One mirror entry per extra plain-HTTP registry (containerd 1.6 pulls
/// over HTTP only from a registry listed as its own mirror).
fn insecure_mirrors(registries: &[String]) -> String {
    registries
        .iter()
        .map(|r| format!("\n  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{r}\"]\n    endpoint = [\"http://{r}\"]\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StackConfig {
        StackConfig {
            dir: "/tmp/bosun stack".into(),
            registry: "127.0.0.1:5000".into(),
            insecure_registries: vec!["127.0.0.1:5001".into()],
            network: CniNetwork { bridge: "bosun0".into(), subnet: "10.244.0.0/24".into() },
            cni_bin_dir: "/usr/lib/cni".into(),
        }
    }

    #[test]
    fn containerd_config_is_private_and_has_the_required_cri_settings() {
        let text = render_containerd_config(&config());
        for expected in [
            r#"root = "/tmp/bosun stack/containerd/root""#,
            r#"address = "/tmp/bosun stack/containerd/containerd.sock""#,
            "restrict_oom_score_adj = true",
            r#"sandbox_image = "127.0.0.1:5000/bosun/pause:1.0""#,
            r#"registry.mirrors."127.0.0.1:5000"]"#,
            r#"endpoint = ["http://127.0.0.1:5000"]"#,
            r#"registry.mirrors."127.0.0.1:5001"]"#,
            r#"endpoint = ["http://127.0.0.1:5001"]"#,
            r#"conf_dir = "/tmp/bosun stack/cni/net.d""#,
            r#"Root = "/tmp/bosun stack/containerd/state/runc""#,
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn cni_conflist_uses_the_bridge_subnet_and_a_private_ipam_dir() {
        let value: serde_json::Value = serde_json::from_str(&render_cni_conflist(&config())).unwrap();
        let bridge = &value["plugins"][0];
        assert_eq!(bridge["bridge"], "bosun0");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.0.0/24");
        assert_eq!(bridge["ipam"]["dataDir"], "/tmp/bosun stack/cni/ipam");
        assert_eq!(value["plugins"][1]["type"], "portmap");
    }
}
