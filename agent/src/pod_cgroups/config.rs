//! The kubelet's cgroup settings: `cgroupsPerQOS`, `cgroupDriver`,
//! `cgroupRoot`, `podPidsLimit`, `systemReserved`, `kubeReserved` (file
//! fields, and the flags of the same names); flags win over the file, as
//! upstream. Pure; [`node_reserved`] computes what node allocatable leaves
//! out (capacity minus system-reserved, kube-reserved and the hard memory
//! eviction threshold).

use std::collections::BTreeMap;

use bosun_cgroups::Naming;

use crate::kubelet_config::{Error, Result};

/// The file fields this module honours.
pub const FIELDS: &[&str] =
    &["cgroupsPerQOS", "cgroupDriver", "cgroupRoot", "podPidsLimit", "systemReserved", "kubeReserved"];

/// Upstream's default hard eviction threshold for memory.available (100Mi),
/// kept out of allocatable. The eviction manager's configured threshold
/// replaces it once it is wired here.
pub const DEFAULT_EVICTION_HARD_MEMORY: i64 = 100 * 1024 * 1024;

/// The cgroup flags of `bosun agent` (kubelet names).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CgroupFlags {
    /// Create the QoS and pod cgroup tree (`kubepods`) and put pods in it (default true).
    #[arg(long)]
    pub cgroups_per_qos: Option<bool>,
    /// Cgroup naming: `cgroupfs` (default) or `systemd` (slice names; must match the runtime's).
    #[arg(long)]
    pub cgroup_driver: Option<String>,
    /// The cgroup the `kubepods` tree goes under (default `/`).
    #[arg(long)]
    pub cgroup_root: Option<String>,
    /// Largest number of processes per pod (default -1: unlimited).
    #[arg(long)]
    pub pod_max_pids: Option<i64>,
    /// Resources kept for the system: `cpu=500m,memory=1Gi`.
    #[arg(long)]
    pub system_reserved: Option<String>,
    /// Resources kept for the kubelet and runtime: `cpu=500m,memory=1Gi`.
    #[arg(long)]
    pub kube_reserved: Option<String>,
}

/// What a file sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupFileSettings {
    pub cgroups_per_qos: Option<bool>,
    pub cgroup_driver: Option<String>,
    pub cgroup_root: Option<String>,
    pub pod_pids_limit: Option<i64>,
    pub system_reserved: Option<BTreeMap<String, String>>,
    pub kube_reserved: Option<BTreeMap<String, String>>,
}

/// Resources kept out of allocatable, in millicores and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
}

/// Flags, file and defaults combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSettings {
    pub per_qos: bool,
    pub naming: Naming,
    pub root: String,
    pub pod_pids_limit: i64,
    /// systemReserved + kubeReserved.
    pub reserved: Reserved,
}

impl Default for CgroupSettings {
    fn default() -> Self {
        Self {
            per_qos: true,
            naming: Naming::Cgroupfs,
            root: "/".into(),
            pod_pids_limit: -1,
            reserved: Reserved::default(),
        }
    }
}

fn bad(field: &str, message: impl Into<String>) -> Error {
    Error::Field { field: field.to_string(), message: message.into() }
}

/// Reads this module's fields of a parsed `KubeletConfiguration`.
pub fn parse_file(map: &serde_json::Map<String, serde_json::Value>) -> Result<CgroupFileSettings> {
    fn get<T: serde::de::DeserializeOwned>(
        map: &serde_json::Map<String, serde_json::Value>,
        name: &str,
    ) -> Result<Option<T>> {
        match map.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| bad(name, e.to_string())),
        }
    }
    Ok(CgroupFileSettings {
        cgroups_per_qos: get(map, "cgroupsPerQOS")?,
        cgroup_driver: get(map, "cgroupDriver")?,
        cgroup_root: get(map, "cgroupRoot")?,
        pod_pids_limit: get(map, "podPidsLimit")?,
        system_reserved: get(map, "systemReserved")?,
        kube_reserved: get(map, "kubeReserved")?,
    })
}

/// `cpu=500m,memory=1Gi` as a map.
fn parse_pairs(field: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry.split_once('=').ok_or_else(|| bad(field, format!("{entry:?}: want name=quantity")))?;
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// The cpu and memory of a reservation map (other resources are ignored, as
/// bosun reports none).
fn reserved_of(field: &str, map: &BTreeMap<String, String>) -> Result<Reserved> {
    let quantity = |name: &str, parse: fn(&str) -> Result<i64, bosun_resources::QuantityError>| -> Result<i64> {
        match map.get(name) {
            None => Ok(0),
            Some(text) => match parse(text) {
                Ok(v) if v >= 0 => Ok(v),
                Ok(_) => Err(bad(field, format!("{name}={text}: must not be negative"))),
                Err(e) => Err(bad(field, format!("{name}={text}: {e}"))),
            },
        }
    };
    Ok(Reserved {
        cpu_milli: quantity("cpu", bosun_resources::milli_value)?,
        memory_bytes: quantity("memory", bosun_resources::plain_value)?,
    })
}

/// Combines flags over the file over the defaults.
pub fn resolve(flags: &CgroupFlags, file: &CgroupFileSettings) -> Result<CgroupSettings> {
    let defaults = CgroupSettings::default();
    let naming = match flags.cgroup_driver.as_ref().or(file.cgroup_driver.as_ref()) {
        Some(text) => {
            Naming::parse(text).ok_or_else(|| bad("cgroupDriver", format!("{text:?}: want cgroupfs or systemd")))?
        }
        None => defaults.naming,
    };
    let root = flags.cgroup_root.clone().or_else(|| file.cgroup_root.clone()).unwrap_or(defaults.root);
    if !root.starts_with('/') || root.split('/').any(|c| c == "..") {
        return Err(bad("cgroupRoot", format!("{root:?}: want an absolute cgroup path")));
    }
    let reservation =
        |field: &str, flag: &Option<String>, file: &Option<BTreeMap<String, String>>| -> Result<Reserved> {
            match (flag, file) {
                (Some(text), _) => reserved_of(field, &parse_pairs(field, text)?),
                (None, Some(map)) => reserved_of(field, map),
                (None, None) => Ok(Reserved::default()),
            }
        };
    let system = reservation("systemReserved", &flags.system_reserved, &file.system_reserved)?;
    let kube = reservation("kubeReserved", &flags.kube_reserved, &file.kube_reserved)?;
    Ok(CgroupSettings {
        per_qos: flags.cgroups_per_qos.or(file.cgroups_per_qos).unwrap_or(defaults.per_qos),
        naming,
        root,
        pod_pids_limit: flags.pod_max_pids.or(file.pod_pids_limit).unwrap_or(defaults.pod_pids_limit),
        reserved: Reserved {
            cpu_milli: system.cpu_milli.saturating_add(kube.cpu_milli),
            memory_bytes: system.memory_bytes.saturating_add(kube.memory_bytes),
        },
    })
}

/// What Node allocatable leaves out of capacity: the reservations plus the
/// hard memory eviction threshold.
pub fn node_reserved(settings: &CgroupSettings, eviction_hard_memory: i64) -> Reserved {
    Reserved {
        cpu_milli: settings.reserved.cpu_milli,
        memory_bytes: settings.reserved.memory_bytes.saturating_add(eviction_hard_memory.max(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> CgroupFileSettings {
        let value: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("yaml");
        parse_file(value.as_object().expect("map")).expect("fields")
    }

    #[test]
    fn flags_win_over_the_file_over_defaults() {
        let f = file(
            "cgroupDriver: systemd\ncgroupRoot: /bosun\npodPidsLimit: 512\ncgroupsPerQOS: false\n\
             systemReserved: {cpu: 250m, memory: 100Mi}\nkubeReserved: {cpu: '1', memory: 1Gi}\n",
        );
        let got = resolve(&CgroupFlags::default(), &f).expect("settings");
        assert_eq!(
            got,
            CgroupSettings {
                per_qos: false,
                naming: Naming::Systemd,
                root: "/bosun".into(),
                pod_pids_limit: 512,
                reserved: Reserved { cpu_milli: 1250, memory_bytes: (100 << 20) + (1 << 30) },
            }
        );
        let flags = CgroupFlags {
            cgroup_driver: Some("cgroupfs".into()),
            system_reserved: Some("cpu=100m".into()),
            pod_max_pids: Some(-1),
            ..CgroupFlags::default()
        };
        let got = resolve(&flags, &f).expect("settings");
        assert_eq!((got.naming, got.pod_pids_limit), (Naming::Cgroupfs, -1));
        assert_eq!(got.reserved, Reserved { cpu_milli: 1100, memory_bytes: 1 << 30 });
        assert_eq!(
            resolve(&CgroupFlags::default(), &CgroupFileSettings::default()).expect("defaults"),
            CgroupSettings::default()
        );
    }

    #[test]
    fn bad_values_are_errors_naming_the_field() {
        let cases = [
            (CgroupFlags { cgroup_driver: Some("docker".into()), ..CgroupFlags::default() }, "cgroupDriver"),
            (CgroupFlags { cgroup_root: Some("relative".into()), ..CgroupFlags::default() }, "cgroupRoot"),
            (CgroupFlags { cgroup_root: Some("/a/../b".into()), ..CgroupFlags::default() }, "cgroupRoot"),
            (CgroupFlags { kube_reserved: Some("cpu".into()), ..CgroupFlags::default() }, "kubeReserved"),
            (CgroupFlags { kube_reserved: Some("memory=-1Gi".into()), ..CgroupFlags::default() }, "kubeReserved"),
            (CgroupFlags { system_reserved: Some("cpu=lots".into()), ..CgroupFlags::default() }, "systemReserved"),
        ];
        for (flags, field) in cases {
            match resolve(&flags, &CgroupFileSettings::default()) {
                Err(Error::Field { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{flags:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn allocatable_leaves_out_reservations_and_the_eviction_threshold() {
        let settings = CgroupSettings {
            reserved: Reserved { cpu_milli: 500, memory_bytes: 1 << 30 },
            ..CgroupSettings::default()
        };
        assert_eq!(
            node_reserved(&settings, DEFAULT_EVICTION_HARD_MEMORY),
            Reserved { cpu_milli: 500, memory_bytes: (1 << 30) + (100 << 20) }
        );
    }
}
