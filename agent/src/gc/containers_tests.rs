use super::*;

const SEC: i64 = 1_000_000_000;
const NOW: i64 = 1_000 * SEC;

fn c(id: &str, sandbox: &str, uid: &str, name: &str, created_s: i64, state: ContainerState) -> RuntimeContainer {
    RuntimeContainer {
        id: id.into(),
        sandbox_id: sandbox.into(),
        pod_uid: uid.into(),
        name: name.into(),
        created_at: created_s * SEC,
        state,
    }
}

fn s(id: &str, uid: &str, created_s: i64, ready: bool) -> RuntimeSandbox {
    RuntimeSandbox { id: id.into(), pod_uid: uid.into(), created_at: created_s * SEC, ready }
}

use ContainerState::{Created, Exited, Running, Unknown};

fn none_deleted(_: &str) -> bool {
    false
}

struct Case {
    name: &'static str,
    containers: Vec<RuntimeContainer>,
    sandboxes: Vec<RuntimeSandbox>,
    deleted: &'static [&'static str],
    policy: ContainerPolicy,
    want_containers: &'static [&'static str],
    want_sandboxes: &'static [&'static str],
}

fn default_case(name: &'static str) -> Case {
    Case {
        name,
        containers: vec![],
        sandboxes: vec![],
        deleted: &[],
        policy: ContainerPolicy::default(),
        want_containers: &[],
        want_sandboxes: &[],
    }
}

#[test]
fn container_gc_follows_the_upstream_policy() {
    let cases = vec![
        Case {
            containers: vec![
                c("a0", "s1", "p", "app", 10, Exited),
                c("a1", "s1", "p", "app", 20, Exited),
                c("a2", "s1", "p", "app", 30, Exited),
                c("a3", "s1", "p", "app", 40, Running),
            ],
            sandboxes: vec![s("s1", "p", 1, true)],
            want_containers: &["a0", "a1"],
            ..default_case("a crash loop keeps only the newest dead instance beside the running one")
        },
        Case {
            containers: vec![c("a0", "s1", "p", "app", 10, Exited), c("a1", "s1", "p", "app", 20, Exited)],
            sandboxes: vec![s("s1", "p", 1, true)],
            want_containers: &["a0"],
            ..default_case("in backoff the newest dead instance stays for logs --previous")
        },
        Case {
            containers: vec![
                c("a0", "s1", "p", "app", 10, Exited),
                c("b0", "s1", "p", "side", 11, Exited),
                c("a0q", "s2", "q", "app", 12, Exited),
            ],
            sandboxes: vec![s("s1", "p", 1, true), s("s2", "q", 2, true)],
            ..default_case("units are per pod and container name")
        },
        Case {
            containers: vec![c("r", "s1", "p", "app", 10, Running), c("u", "s1", "p", "app", 5, Unknown)],
            sandboxes: vec![s("s1", "p", 1, true)],
            deleted: &["p"],
            ..default_case("running and unknown containers are never removed, even of a deleted pod")
        },
        Case {
            containers: vec![c("a0", "s1", "gone", "app", 10, Exited), c("i0", "s1", "gone", "init", 5, Created)],
            sandboxes: vec![s("s0", "gone", 0, false), s("s1", "gone", 1, false)],
            deleted: &["gone"],
            want_containers: &["i0", "a0"],
            want_sandboxes: &["s0", "s1"],
            ..default_case("a deleted pod loses every dead container and sandbox")
        },
        Case {
            containers: vec![c("a0", "s1", "gone", "app", 10, Exited)],
            sandboxes: vec![s("s1", "gone", 1, true)],
            deleted: &["gone"],
            want_containers: &["a0"],
            ..default_case("a ready sandbox of a deleted pod is left to the pod worker")
        },
        Case {
            containers: vec![
                c("a0", "s1", "p", "app", 10, Exited),
                c("a1", "s1", "p", "app", 998, Exited),
                c("a2", "s1", "p", "app", 999, Exited),
            ],
            policy: ContainerPolicy { min_age: Duration::from_secs(60), max_per_pod_container: Some(1) },
            ..default_case("containers younger than the minimum age are not considered")
        },
        Case {
            containers: vec![
                c("a0", "s1", "p", "app", 10, Exited),
                c("a1", "s1", "p", "app", 20, Exited),
                c("a2", "s1", "p", "app", 30, Exited),
            ],
            policy: ContainerPolicy { min_age: Duration::ZERO, max_per_pod_container: None },
            ..default_case("no per-container limit keeps every dead instance of a live pod")
        },
        Case {
            containers: vec![
                c("a0", "s1", "p", "app", 10, Exited),
                c("a1", "s1", "p", "app", 20, Exited),
                c("a2", "s1", "p", "app", 30, Exited),
            ],
            policy: ContainerPolicy { min_age: Duration::ZERO, max_per_pod_container: Some(2) },
            want_containers: &["a0"],
            ..default_case("a larger per-container limit keeps more")
        },
        Case {
            containers: vec![c("a0", "s1", "p", "app", 10, Exited), c("a1", "s3", "p", "app", 30, Running)],
            sandboxes: vec![s("s1", "p", 1, false), s("s2", "p", 2, false), s("s3", "p", 3, true)],
            want_sandboxes: &["s2"],
            ..default_case("an old sandbox still holding the kept dead container stays; an empty one goes")
        },
        Case {
            containers: vec![c("a0", "s1", "p", "app", 10, Exited), c("a1", "s2", "p", "app", 30, Exited)],
            sandboxes: vec![s("s1", "p", 1, false), s("s2", "p", 2, false)],
            want_containers: &["a0"],
            want_sandboxes: &["s1"],
            ..default_case("a sandbox emptied by this pass is removed in the same pass")
        },
        Case {
            sandboxes: vec![s("s1", "p", 1, false)],
            ..default_case("the newest sandbox of a live pod stays even when not ready")
        },
        Case {
            containers: vec![c("a1", "s1", "p", "app", 20, Exited), c("a2", "s1", "p", "app", 30, Created)],
            ..default_case("the instance being created does not push out the previous one")
        },
        Case {
            containers: vec![
                c("a0", "s1", "p", "app", 10, Exited),
                c("a1", "s1", "p", "app", 20, Created),
                c("a2", "s1", "p", "app", 30, Running),
            ],
            want_containers: &["a1"],
            ..default_case("a created container with a newer sibling is stale")
        },
        Case {
            containers: vec![c("x", "sx", "", "app", 10, Exited)],
            sandboxes: vec![s("sx", "", 1, false), s("sy", "", 2, false)],
            deleted: &[""],
            ..default_case("objects without a pod UID are not the agent's")
        },
    ];
    for case in cases {
        let deleted = |uid: &str| case.deleted.contains(&uid);
        let got = compute_container_gc(&case.containers, &case.sandboxes, &deleted, case.policy, NOW);
        assert_eq!(got.remove_containers, case.want_containers, "{}: containers", case.name);
        assert_eq!(got.remove_sandboxes, case.want_sandboxes, "{}: sandboxes", case.name);
    }
}

#[test]
fn nothing_is_deleted_before_the_pods_are_known() {
    let containers = vec![c("a0", "s1", "p", "app", 10, Exited)];
    let sandboxes = vec![s("s1", "p", 1, false)];
    let plan = compute_container_gc(&containers, &sandboxes, &none_deleted, ContainerPolicy::default(), NOW);
    assert!(plan.is_empty(), "{plan:?}");
}
