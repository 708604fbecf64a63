//! Cgroup names as the kubelet spells them. A [`CgroupName`] is a list of
//! components (`["kubepods", "burstable", "pod<uid>"]`); a [`Naming`] turns
//! it into the path under a hierarchy, either the cgroupfs way
//! (`/kubepods/burstable/pod<uid>`) or the systemd way
//! (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`,
//! dashes in components escaped to underscores, as upstream's `ToSystemd`).

/// The node's pod cgroup under the root.
pub const KUBEPODS: &str = "kubepods";
/// The Burstable QoS cgroup under [`KUBEPODS`].
pub const BURSTABLE: &str = "burstable";
/// The BestEffort QoS cgroup under [`KUBEPODS`].
pub const BESTEFFORT: &str = "besteffort";
/// The prefix of a pod cgroup's component (`pod<uid>`).
pub const POD_PREFIX: &str = "pod";
/// The suffix of a systemd slice.
const SLICE: &str = ".slice";

/// A pod's QoS class (computed by `bosun-resources`, parsed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QosClass {
    /// Requests equal limits for cpu and memory in every container.
    Guaranteed,
    /// Some request or limit, not Guaranteed.
    Burstable,
    /// No request or limit at all.
    BestEffort,
}

impl QosClass {
    /// Parses the API's spelling; anything unknown is the most restricted class, BestEffort.
    pub fn parse(text: &str) -> Self {
        match text {
            "Guaranteed" => Self::Guaranteed,
            "Burstable" => Self::Burstable,
            _ => Self::BestEffort,
        }
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }

    /// The component of the class's cgroup under `kubepods` (none for Guaranteed).
    pub fn component(self) -> Option<&'static str> {
        match self {
            Self::Guaranteed => None,
            Self::Burstable => Some(BURSTABLE),
            Self::BestEffort => Some(BESTEFFORT),
        }
    }
}

/// A cgroup's name as components, independent of the driver's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CgroupName(pub Vec<String>);

impl CgroupName {
    /// The name of `root` (a `--cgroup-root` such as `/` or `/bosun`), split on `/`.
    pub fn root(root: &str) -> Self {
        Self(root.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect())
    }

    /// This name with one more component.
    pub fn child(&self, component: &str) -> Self {
        let mut parts = self.0.clone();
        parts.push(component.to_string());
        Self(parts)
    }

    /// The `kubepods` cgroup under `root`.
    pub fn kubepods(root: &Self) -> Self {
        root.child(KUBEPODS)
    }

    /// The cgroup of QoS class `qos` (`kubepods` itself for Guaranteed).
    pub fn qos(root: &Self, qos: QosClass) -> Self {
        let kubepods = Self::kubepods(root);
        match qos.component() {
            Some(component) => kubepods.child(component),
            None => kubepods,
        }
    }

    /// The cgroup of pod `uid` in class `qos`.
    pub fn pod(root: &Self, qos: QosClass, uid: &str) -> Self {
        Self::qos(root, qos).child(&format!("{POD_PREFIX}{uid}"))
    }
}

/// How cgroup names are spelled on disk (the kubelet's `cgroupDriver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    /// Plain directories: `/kubepods/burstable/pod<uid>` (the default).
    #[default]
    Cgroupfs,
    /// systemd slices: `/kubepods.slice/kubepods-burstable.slice/...`.
    Systemd,
}

impl Naming {
    /// Parses a `cgroupDriver` value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cgroupfs" => Some(Self::Cgroupfs),
            "systemd" => Some(Self::Systemd),
            _ => None,
        }
    }

    /// The absolute path of `name` in a hierarchy (what CRI's `cgroup_parent` takes).
    pub fn path(self, name: &CgroupName) -> String {
        match self {
            Self::Cgroupfs => format!("/{}", name.0.join("/")),
            Self::Systemd => {
                let mut path = String::new();
                let mut prefix = String::new();
                for component in &name.0 {
                    let escaped = component.replace('-', "_");
                    if !prefix.is_empty() {
                        prefix.push('-');
                    }
                    prefix.push_str(&escaped);
                    path.push('/');
                    path.push_str(&prefix);
                    path.push_str(SLICE);
                }
                if path.is_empty() {
                    path.push('/');
                }
                path
            }
        }
    }

    /// The path of `name` relative to a hierarchy's root directory.
    pub fn relative(self, name: &CgroupName) -> String {
        self.path(name).trim_start_matches('/').to_string()
    }

    /// The pod uid a pod cgroup's directory name (last path component)
    /// stands for, or `None` for anything else.
    pub fn pod_uid(self, dir_name: &str) -> Option<String> {
        let component = match self {
            Self::Cgroupfs => dir_name,
            Self::Systemd => dir_name.strip_suffix(SLICE)?.rsplit('-').next()?,
        };
        let uid = component.strip_prefix(POD_PREFIX)?;
        if uid.is_empty() {
            return None;
        }
        Some(match self {
            Self::Cgroupfs => uid.to_string(),
            Self::Systemd => uid.replace('_', "-"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f1e2d3c-aaaa-bbbb-cccc-000000000001";

    #[test]
    fn names_pod_cgroups_in_both_conventions() {
        let root = CgroupName::root("/");
        let cases = [
            (QosClass::Guaranteed, Naming::Cgroupfs, format!("/kubepods/pod{UID}")),
            (QosClass::Burstable, Naming::Cgroupfs, format!("/kubepods/burstable/pod{UID}")),
            (QosClass::BestEffort, Naming::Cgroupfs, format!("/kubepods/besteffort/pod{UID}")),
            (QosClass::Guaranteed, Naming::Systemd, "/kubepods.slice/kubepods-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice".into()),
            (
                QosClass::Burstable,
                Naming::Systemd,
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice"
                    .into(),
            ),
            (
                QosClass::BestEffort,
                Naming::Systemd,
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_aaaa_bbbb_cccc_000000000001.slice"
                    .into(),
            ),
        ];
        for (qos, naming, want) in cases {
            let name = CgroupName::pod(&root, qos, UID);
            assert_eq!(naming.path(&name), want, "{qos:?} {naming:?}");
            let leaf = want.rsplit('/').next().unwrap();
            assert_eq!(naming.pod_uid(leaf).as_deref(), Some(UID), "{leaf} parses back");
        }
    }

    #[test]
    fn a_cgroup_root_prefixes_the_tree() {
        let root = CgroupName::root("/bosun/node-a/");
        let name = CgroupName::pod(&root, QosClass::Burstable, "u1");
        assert_eq!(Naming::Cgroupfs.path(&name), "/bosun/node-a/kubepods/burstable/podu1");
        assert_eq!(Naming::Cgroupfs.relative(&name), "bosun/node-a/kubepods/burstable/podu1");
        assert_eq!(
            Naming::Systemd.path(&CgroupName::kubepods(&root)),
            "/bosun.slice/bosun-node_a.slice/bosun-node_a-kubepods.slice"
        );
        assert_eq!(Naming::Systemd.path(&CgroupName::root("/")), "/");
    }

    #[test]
    fn only_pod_directories_parse_as_pods() {
        for (naming, dir) in [
            (Naming::Cgroupfs, "burstable"),
            (Naming::Cgroupfs, "pod"),
            (Naming::Cgroupfs, "cgroup.procs"),
            (Naming::Systemd, "kubepods-burstable.slice"),
            (Naming::Systemd, "podabc"),
        ] {
            assert_eq!(naming.pod_uid(dir), None, "{dir}");
        }
    }

    #[test]
    fn qos_classes_parse_from_the_api_spelling() {
        for qos in [QosClass::Guaranteed, QosClass::Burstable, QosClass::BestEffort] {
            assert_eq!(QosClass::parse(qos.as_str()), qos);
        }
        assert_eq!(QosClass::parse("nonsense"), QosClass::BestEffort);
    }
}
