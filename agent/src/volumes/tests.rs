//! Unit tests of volume decisions (plan, payload, mounts) as data, and of
//! the atomic writer and applier in temp dirs with a recording mounter.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, VolumeMount};
use k8s_openapi::ByteString;

use super::atomic_writer::{self, DATA_LINK};
use super::mounts::{mount_requests, MountRequest};
use super::payload::{format_map, FileEntry, NodeAllocatable};
use super::plan::{plan_volumes, references, HostPathType, Medium, Setup, Sources};
use super::plan::{token_keys, TokenKey};
use super::{apply, parse_mount_points, Error, FakeMounter, Mounter};
use bosun_proto::cri::MountPropagation;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "p", "namespace": "ns", "uid": "u1", "labels": { "b": "2", "a": "1" } },
        "spec": {
            "containers": [{ "name": "c", "resources": { "limits": { "cpu": "250m", "memory": "64Mi" } } }],
            "volumes": volumes
        }
    }))
    .expect("pod")
}

fn sources() -> Sources {
    let cm = ConfigMap {
        data: Some(BTreeMap::from([("a".into(), "A".into()), ("b".into(), "B".into())])),
        ..Default::default()
    };
    let secret = Secret { data: Some(BTreeMap::from([("k".into(), ByteString(b"S".to_vec()))])), ..Default::default() };
    Sources {
        config_maps: BTreeMap::from([("cm".into(), cm)]),
        secrets: BTreeMap::from([("s".into(), secret)]),
        node: NodeAllocatable { cpu_millis: 2000, memory_bytes: 1 << 30 },
        tokens: BTreeMap::from([(TokenKey { audience: String::new(), expiration_seconds: 3600 }, "T".into())]),
    }
}

fn files_of(pod: &Pod) -> Vec<FileEntry> {
    let plans = plan_volumes(pod, &sources(), Path::new("/r")).expect("plan");
    match &plans[0].setup {
        Setup::Files { files, .. } => files.clone(),
        other => panic!("not files: {other:?}"),
    }
}

fn file(path: &str, data: &str, mode: u32) -> FileEntry {
    FileEntry { path: path.into(), data: data.as_bytes().to_vec(), mode }
}

#[test]
fn empty_dir_plans_disk_or_tmpfs_with_size_under_the_pod_dir() {
    let p = pod(serde_json::json!([
        { "name": "d", "emptyDir": {} },
        { "name": "m", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } }
    ]));
    let plans = plan_volumes(&p, &sources(), Path::new("/r")).expect("plan");
    assert_eq!(plans[0].path, Path::new("/r/pods/u1/volumes/kubernetes.io~empty-dir/d"));
    assert_eq!(plans[0].setup, Setup::EmptyDir { medium: Medium::Disk });
    assert_eq!(plans[1].setup, Setup::EmptyDir { medium: Medium::Memory { size_bytes: Some(16 << 20) } });
    assert!(!plans[0].read_only);
}

#[test]
fn config_map_files_honour_items_modes_and_default_mode() {
    let all = files_of(&pod(serde_json::json!([{ "name": "v", "configMap": { "name": "cm", "defaultMode": 0o400 } }])));
    assert_eq!(all, vec![file("a", "A", 0o400), file("b", "B", 0o400)]);
    let items = files_of(&pod(serde_json::json!([{ "name": "v", "configMap": {
        "name": "cm", "items": [{ "key": "b", "path": "x/y", "mode": 0o600 }, { "key": "a", "path": "z" }] } }])));
    assert_eq!(items, vec![file("x/y", "B", 0o600), file("z", "A", 0o644)]);
}

#[test]
fn missing_sources_fail_unless_optional() {
    let root = Path::new("/r");
    let missing = pod(serde_json::json!([{ "name": "v", "configMap": { "name": "nope" } }]));
    let err = plan_volumes(&missing, &sources(), root).expect_err("missing configmap");
    assert_eq!(err.to_string(), "MountVolume.SetUp failed for volume \"v\" : configmap \"nope\" not found");
    let optional = pod(serde_json::json!([{ "name": "v", "secret": { "secretName": "nope", "optional": true } }]));
    assert!(files_of(&optional).is_empty());
    let bad_key = pod(
        serde_json::json!([{ "name": "v", "secret": { "secretName": "s", "items": [{ "key": "zz", "path": "p" }] } }]),
    );
    assert!(matches!(plan_volumes(&bad_key, &sources(), root), Err(Error::KeyMissing { .. })));
}

#[test]
fn secrets_downward_and_projected_live_in_memory_and_mount_read_only() {
    let p = pod(serde_json::json!([
        { "name": "s", "secret": { "secretName": "s" } },
        { "name": "d", "downwardAPI": { "items": [{ "path": "n", "fieldRef": { "fieldPath": "metadata.name" } }] } }
    ]));
    let plans = plan_volumes(&p, &sources(), Path::new("/r")).expect("plan");
    for plan in &plans {
        assert!(plan.read_only, "{}", plan.name);
        assert!(matches!(plan.setup, Setup::Files { medium: Medium::Memory { size_bytes: None }, .. }));
    }
}

#[test]
fn downward_api_formats_fields_and_resources_like_upstream() {
    let files = files_of(&pod(serde_json::json!([{ "name": "d", "downwardAPI": { "items": [
        { "path": "labels", "fieldRef": { "fieldPath": "metadata.labels" } },
        { "path": "a", "fieldRef": { "fieldPath": "metadata.labels['a']" } },
        { "path": "uid", "fieldRef": { "fieldPath": "metadata.uid" } },
        { "path": "cpu", "resourceFieldRef": { "containerName": "c", "resource": "limits.cpu", "divisor": "1m" } },
        { "path": "cores", "resourceFieldRef": { "containerName": "c", "resource": "limits.cpu" } },
        { "path": "mem", "resourceFieldRef": { "containerName": "c", "resource": "limits.memory", "divisor": "1Mi" } },
        { "path": "req", "resourceFieldRef": { "containerName": "c", "resource": "requests.memory" } }
    ] } }])));
    let text: Vec<(&str, String)> =
        files.iter().map(|f| (f.path.as_str(), String::from_utf8_lossy(&f.data).into_owned())).collect();
    assert_eq!(
        text,
        vec![
            ("labels", "a=\"1\"\nb=\"2\"".to_string()),
            ("a", "1".into()),
            ("uid", "u1".into()),
            ("cpu", "250".into()),
            ("cores", "1".into()),
            ("mem", "64".into()),
            ("req", "0".into()),
        ]
    );
    assert_eq!(format_map(Some(&BTreeMap::from([("k".into(), "a\"b\n".into())]))), "k=\"a\\\"b\\n\"");
}

#[test]
fn projected_combines_sources_and_writes_the_issued_token() {
    let files = files_of(&pod(serde_json::json!([{ "name": "p", "projected": { "defaultMode": 0o440, "sources": [
        { "configMap": { "name": "cm", "items": [{ "key": "a", "path": "cm-a" }] } },
        { "secret": { "name": "s" } },
        { "downwardAPI": { "items": [{ "path": "name", "fieldRef": { "fieldPath": "metadata.name" } }] } },
        { "serviceAccountToken": { "path": "token" } }
    ] } }])));
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["cm-a", "k", "name", "token"]);
    assert!(files.iter().all(|f| f.mode == 0o440));
    assert_eq!(files[3].data, b"T");
    let vault = pod(serde_json::json!([{ "name": "p", "projected": { "sources": [
        { "serviceAccountToken": { "path": "token", "audience": "vault", "expirationSeconds": 600 } }
    ] } }]));
    assert_eq!(
        token_keys(&vault).into_iter().collect::<Vec<_>>(),
        [TokenKey { audience: "vault".into(), expiration_seconds: 600 }]
    );
    assert!(
        matches!(plan_volumes(&vault, &sources(), Path::new("/r")), Err(Error::TokenMissing { .. })),
        "no token issued for that audience yet"
    );
    let twice = pod(serde_json::json!([{ "name": "p", "projected": { "sources": [
        { "configMap": { "name": "cm", "items": [{ "key": "a", "path": "x" }] } },
        { "secret": { "name": "s", "items": [{ "key": "k", "path": "x" }] } }
    ] } }]));
    assert!(matches!(plan_volumes(&twice, &sources(), Path::new("/r")), Err(Error::InvalidPath { .. })));
}

#[test]
fn unsupported_types_bad_paths_and_modes_are_refused_with_the_reason() {
    let cases = [
        (
            serde_json::json!({ "name": "v", "persistentVolumeClaim": { "claimName": "c" } }),
            "unsupported volume type persistentVolumeClaim",
        ),
        (serde_json::json!({ "name": "v", "nfs": { "server": "s", "path": "/" } }), "unsupported volume type nfs"),
        (serde_json::json!({ "name": "v", "csi": { "driver": "d" } }), "unsupported volume type csi"),
        (serde_json::json!({ "name": "v" }), "no volume source set"),
        (
            serde_json::json!({ "name": "v", "configMap": { "name": "cm", "items": [{ "key": "a", "path": "../x" }] } }),
            "invalid path",
        ),
        (
            serde_json::json!({ "name": "v", "configMap": { "name": "cm", "items": [{ "key": "a", "path": "/x" }] } }),
            "invalid path",
        ),
        (serde_json::json!({ "name": "v", "configMap": { "name": "cm", "defaultMode": 0o1777 } }), "invalid file mode"),
        (serde_json::json!({ "name": "v", "hostPath": { "path": "/x", "type": "Bogus" } }), "unknown hostPath type"),
        (serde_json::json!({ "name": "v", "emptyDir": { "medium": "HugePages" } }), "unsupported volume type"),
    ];
    for (volume, want) in cases {
        let err = plan_volumes(&pod(serde_json::json!([volume])), &sources(), Path::new("/r")).expect_err(want);
        assert!(err.to_string().contains(want), "{err} should say {want}");
    }
}

#[test]
fn references_collect_config_maps_and_secrets_of_all_volume_kinds() {
    let p = pod(serde_json::json!([
        { "name": "a", "configMap": { "name": "cm1" } },
        { "name": "b", "secret": { "secretName": "s1" } },
        { "name": "c", "projected": { "sources": [{ "configMap": { "name": "cm2" } }, { "secret": { "name": "s2" } }] } }
    ]));
    let refs = references(&p);
    assert_eq!(refs.config_maps, BTreeSet::from(["cm1".to_string(), "cm2".to_string()]));
    assert_eq!(refs.secrets, BTreeSet::from(["s1".to_string(), "s2".to_string()]));
}

fn container(mounts: serde_json::Value) -> Container {
    let mounts: Vec<VolumeMount> = serde_json::from_value(mounts).expect("mounts");
    Container { name: "c".into(), volume_mounts: Some(mounts), ..Default::default() }
}

#[test]
fn mounts_carry_read_only_sub_paths_and_propagation() {
    let p = pod(serde_json::json!([{ "name": "e", "emptyDir": {} }, { "name": "cm", "configMap": { "name": "cm" } }]));
    let plans = plan_volumes(&p, &sources(), Path::new("/r")).expect("plan");
    let c = container(serde_json::json!([
        { "name": "e", "mountPath": "/a", "readOnly": true, "mountPropagation": "HostToContainer" },
        { "name": "e", "mountPath": "/b", "subPathExpr": "logs/$(POD)" },
        { "name": "cm", "mountPath": "/c", "mountPropagation": "Bidirectional" }
    ]));
    let env = BTreeMap::from([("POD", "p1")]);
    let got = mount_requests(&c, &plans, &env).expect("mounts");
    let e = plans[0].path.clone();
    assert_eq!(
        got,
        vec![
            MountRequest {
                volume_path: e.clone(),
                sub_path: None,
                container_path: "/a".into(),
                read_only: true,
                propagation: MountPropagation::PropagationHostToContainer
            },
            MountRequest {
                volume_path: e,
                sub_path: Some("logs/p1".into()),
                container_path: "/b".into(),
                read_only: false,
                propagation: MountPropagation::PropagationPrivate
            },
            MountRequest {
                volume_path: plans[1].path.clone(),
                sub_path: None,
                container_path: "/c".into(),
                read_only: true,
                propagation: MountPropagation::PropagationBidirectional
            },
        ]
    );
    for (bad, want) in [
        (serde_json::json!([{ "name": "e", "mountPath": "/x", "subPath": "../up" }]), "must not contain '..'"),
        (serde_json::json!([{ "name": "e", "mountPath": "/x", "subPath": "/abs" }]), "relative"),
        (serde_json::json!([{ "name": "zz", "mountPath": "/x" }]), "not found in pod volumes"),
        (
            serde_json::json!([{ "name": "e", "mountPath": "/x", "mountPropagation": "Sideways" }]),
            "unknown mountPropagation",
        ),
    ] {
        let err = mount_requests(&container(bad), &plans, &env).expect_err(want);
        assert!(err.to_string().contains(want), "{err} should say {want}");
    }
}

fn read_dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn atomic_writer_swaps_data_link_and_keeps_user_names_as_links() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("v");
    let v1 = [file("a", "1", 0o644), file("sub/b", "2", 0o400)];
    assert!(atomic_writer::write(&dir, &v1, "t1").expect("write"));
    assert_eq!(read_dir_names(&dir), BTreeSet::from(["..t1", DATA_LINK, "a", "sub"].map(String::from)));
    assert_eq!(std::fs::read_link(dir.join("a")).expect("link"), Path::new("..data/a"));
    assert_eq!(std::fs::read_to_string(dir.join("sub/b")).expect("read"), "2");
    let mode = std::fs::metadata(dir.join("sub/b")).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);

    // Unchanged: nothing is rewritten.
    assert!(!atomic_writer::write(&dir, &v1, "t2").expect("write"));
    assert_eq!(std::fs::read_link(dir.join(DATA_LINK)).expect("link"), Path::new("..t1"));

    // Changed: a new payload dir, `..data` swapped, gone names unlinked, old dir removed.
    let v2 = [file("a", "1-new", 0o644), file("c", "3", 0o644)];
    assert!(atomic_writer::write(&dir, &v2, "t3").expect("write"));
    assert_eq!(read_dir_names(&dir), BTreeSet::from(["..t3", DATA_LINK, "a", "c"].map(String::from)));
    assert_eq!(std::fs::read_to_string(dir.join("a")).expect("read"), "1-new");

    // A mode change alone is an update too.
    let v3 = [file("a", "1-new", 0o600), file("c", "3", 0o644)];
    assert!(atomic_writer::write(&dir, &v3, "t3").expect("write"));
    assert_eq!(std::fs::read_link(dir.join(DATA_LINK)).expect("link"), Path::new("..t3_1"));
}

#[test]
fn applier_mounts_tmpfs_once_and_teardown_unmounts_then_removes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let p = pod(serde_json::json!([
        { "name": "m", "emptyDir": { "medium": "Memory", "sizeLimit": "1Mi" } },
        { "name": "s", "secret": { "secretName": "s" } },
        { "name": "d", "emptyDir": {} }
    ]));
    let plans = plan_volumes(&p, &sources(), root).expect("plan");
    let mounter = FakeMounter::default();
    for _ in 0..2 {
        for plan in &plans {
            apply::setup(plan, &mounter, "t", None).expect("setup");
        }
    }
    let base = root.join("pods/u1/volumes");
    let m = base.join("kubernetes.io~empty-dir/m");
    let s = base.join("kubernetes.io~secret/s");
    assert_eq!(
        mounter.calls(),
        vec![format!("tmpfs {} Some(1048576)", m.display()), format!("tmpfs {} None", s.display())]
    );
    assert_eq!(std::fs::read_to_string(s.join("k")).expect("secret file"), "S");
    let mode = std::fs::metadata(base.join("kubernetes.io~empty-dir/d")).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o777);

    // Orphans are pod dirs only, never log dirs.
    std::fs::create_dir_all(root.join("pods/ns_p_u1")).expect("log dir");
    assert_eq!(apply::orphaned_pod_dirs(root, &BTreeSet::new()), vec!["u1".to_string()]);
    assert!(apply::orphaned_pod_dirs(root, &BTreeSet::from(["u1".to_string()])).is_empty());

    apply::teardown_pod(root, "u1", &mounter).expect("teardown");
    assert!(mounter.mount_points_under(root).expect("mounts").is_empty());
    assert!(!root.join("pods/u1").exists());
    assert!(root.join("pods/ns_p_u1").exists(), "log dirs are not volume dirs");
}

#[test]
fn teardown_keeps_the_dir_when_an_unmount_fails() {
    struct Stuck;
    impl Mounter for Stuck {
        fn mount_tmpfs(&self, _: &Path, _: Option<u64>) -> std::io::Result<()> {
            Ok(())
        }
        fn unmount(&self, _: &Path) -> std::io::Result<()> {
            Err(std::io::Error::other("busy"))
        }
        fn mount_points_under(&self, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
            Ok(vec![dir.join("volumes/x")])
        }
    }
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(tmp.path().join("pods/u1/volumes/x")).expect("dir");
    assert!(apply::teardown_pod(tmp.path(), "u1", &Stuck).is_err());
    assert!(tmp.path().join("pods/u1/volumes/x").exists());
}

#[test]
fn host_path_types_are_checked_and_created_as_upstream() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("new/dir");
    apply::check_host_path("v", &dir, HostPathType::DirectoryOrCreate).expect("created");
    assert!(dir.is_dir());
    let file = tmp.path().join("f");
    apply::check_host_path("v", &file, HostPathType::FileOrCreate).expect("created");
    assert_eq!(std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o644);
    let no_parent = tmp.path().join("missing/f");
    assert!(apply::check_host_path("v", &no_parent, HostPathType::FileOrCreate).is_err(), "parent is not created");
    let cases = [
        (&dir, HostPathType::File, "is not a file"),
        (&file, HostPathType::Directory, "is not a directory"),
        (&file, HostPathType::Socket, "is not a socket"),
        (&file, HostPathType::CharDevice, "is not a character device"),
        (&file, HostPathType::BlockDevice, "is not a block device"),
        (&file, HostPathType::DirectoryOrCreate, "is not a directory"),
    ];
    for (path, check, want) in cases {
        let err = apply::check_host_path("v", path, check).expect_err(want);
        assert!(err.to_string().contains(want), "{err}");
    }
    apply::check_host_path("v", Path::new("/dev/null"), HostPathType::CharDevice).expect("char device");
    apply::check_host_path("v", &tmp.path().join("nothing"), HostPathType::Unchecked).expect("unchecked");
}

#[test]
fn sub_paths_are_created_inside_the_volume_and_may_not_escape_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let vol = tmp.path().join("vol");
    std::fs::create_dir_all(&vol).expect("vol");
    std::os::unix::fs::symlink("/etc", vol.join("escape")).expect("symlink");
    let req = |sub: &str| MountRequest {
        volume_path: vol.clone(),
        sub_path: Some(sub.into()),
        container_path: "/x".into(),
        read_only: false,
        propagation: MountPropagation::PropagationPrivate,
    };
    let mount = apply::resolve("c", &req("a/b")).expect("created");
    assert!(vol.join("a/b").is_dir());
    assert_eq!(mount.host_path, std::fs::canonicalize(vol.join("a/b")).expect("real").display().to_string());
    let err = apply::resolve("c", &req("escape")).expect_err("escapes");
    assert!(err.to_string().contains("outside the volume"), "{err}");
}

#[test]
fn mountinfo_mount_points_are_unescaped() {
    let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                37 35 0:5 / /var/lib/x/pods/u1/volumes/kubernetes.io~empty-dir/m rw - tmpfs tmpfs rw,size=1024k\n";
    assert_eq!(
        parse_mount_points(text),
        vec![
            Path::new("/mnt/with space").to_path_buf(),
            Path::new("/var/lib/x/pods/u1/volumes/kubernetes.io~empty-dir/m").to_path_buf()
        ]
    );
}
