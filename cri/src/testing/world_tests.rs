//! Tests of the fake runtime's sandbox and container state machine.

use std::collections::HashMap;

use bosun_proto::cri::{self as api, ContainerState, PodSandboxState};
use tonic::Code;

use super::{World, KILLED_EXIT_CODE};

fn sandbox_config(namespace: &str, name: &str, attempt: u32, app: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: namespace.into(),
            attempt,
        }),
        labels: HashMap::from([("app".to_string(), app.to_string())]),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(api::ImageSpec { image: image.into(), ..Default::default() }),
        ..Default::default()
    }
}

fn world_with_busybox() -> World {
    let mut world = World::default();
    world.images.add_present("busybox");
    world
}

fn container_state(world: &World, id: &str) -> (ContainerState, i32, String) {
    let status = world.container_status(id).expect("container exists");
    let state = ContainerState::try_from(status.state).expect("valid state");
    (state, status.exit_code, status.reason)
}

#[test]
fn sandbox_runs_ready_with_a_loopback_ip_and_reserves_its_name() {
    let mut world = World::default();
    let id = world.run_sandbox(sandbox_config("default", "web-1", 0, "web"), "", 10).expect("first sandbox");
    let status = world.sandbox_status(&id).expect("status");
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(status.created_at, 10);
    let ip = status.network.expect("network").ip;
    assert!(ip.starts_with("127.88."), "{ip}");

    let again = world.run_sandbox(sandbox_config("default", "web-1", 0, "web"), "", 11).expect_err("name reserved");
    assert_eq!(again.code(), Code::Unknown);
    assert!(again.message().contains(&id));

    world.run_sandbox(sandbox_config("default", "web-1", 1, "web"), "", 12).expect("next attempt is a new name");
}

#[test]
fn sandbox_without_metadata_is_rejected() {
    let mut world = World::default();
    let err = world.run_sandbox(api::PodSandboxConfig::default(), "", 1).expect_err("no metadata");
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[test]
fn container_walks_created_running_exited() {
    let mut world = world_with_busybox();
    let sb = world.run_sandbox(sandbox_config("default", "web-1", 0, "web"), "", 1).expect("sandbox");
    let id = world.create_container(&sb, container_config("app", "busybox:latest"), 2).expect("create");
    assert_eq!(container_state(&world, &id).0, ContainerState::ContainerCreated);

    world.start_container(&id, 3).expect("start");
    assert_eq!(container_state(&world, &id).0, ContainerState::ContainerRunning);
    let twice = world.start_container(&id, 4).expect_err("already running");
    assert_eq!(twice.code(), Code::FailedPrecondition);

    world.exit_container(&id, 3, "Error", 5).expect("exit");
    assert_eq!(container_state(&world, &id), (ContainerState::ContainerExited, 3, "Error".to_string()));
    let status = world.container_status(&id).expect("status");
    assert_eq!((status.started_at, status.finished_at), (3, 5));

    world.stop_container(&id, 6).expect("stopping an exited container is fine");
    assert_eq!(container_state(&world, &id).1, 3, "exit code kept");

    world.remove_container(&id).expect("remove");
    let gone = world.remove_container(&id).expect_err("already removed");
    assert_eq!(gone.code(), Code::NotFound);
}

#[test]
fn create_container_checks_sandbox_image_and_name() {
    let mut world = world_with_busybox();
    let sb = world.run_sandbox(sandbox_config("default", "web-1", 0, "web"), "", 1).expect("sandbox");

    let cases = [
        ("no-such-sandbox", container_config("app", "busybox"), Code::NotFound),
        (sb.as_str(), container_config("app", "nginx"), Code::NotFound),
        (sb.as_str(), api::ContainerConfig::default(), Code::InvalidArgument),
    ];
    for (sandbox, config, want) in cases {
        let err = world.create_container(sandbox, config, 2).expect_err("must fail");
        assert_eq!(err.code(), want, "{}", err.message());
    }

    world.create_container(&sb, container_config("app", "busybox"), 2).expect("first");
    let dup = world.create_container(&sb, container_config("app", "busybox"), 3).expect_err("same name and attempt");
    assert_eq!(dup.code(), Code::Unknown);

    world.stop_sandbox(&sb, 4).expect("stop");
    let stopped = world.create_container(&sb, container_config("other", "busybox"), 5).expect_err("sandbox not ready");
    assert_eq!(stopped.code(), Code::FailedPrecondition);
}

#[test]
fn stopping_a_sandbox_kills_its_running_containers_and_removing_it_removes_them() {
    let mut world = world_with_busybox();
    let sb = world.run_sandbox(sandbox_config("default", "web-1", 0, "web"), "", 1).expect("sandbox");
    let running = world.create_container(&sb, container_config("app", "busybox"), 2).expect("create");
    world.start_container(&running, 3).expect("start");
    let created = world.create_container(&sb, container_config("sidecar", "busybox"), 4).expect("create");

    world.stop_sandbox(&sb, 5).expect("stop");
    let status = world.sandbox_status(&sb).expect("status");
    assert_eq!(status.state, PodSandboxState::SandboxNotready as i32);
    assert_eq!(
        container_state(&world, &running),
        (ContainerState::ContainerExited, KILLED_EXIT_CODE, "Error".to_string())
    );
    assert_eq!(container_state(&world, &created).0, ContainerState::ContainerCreated);

    world.remove_sandbox(&sb);
    world.remove_sandbox(&sb);
    assert_eq!(world.sandbox_status(&sb).expect_err("gone").code(), Code::NotFound);
    assert!(world.list_containers(None).is_empty());
    assert_eq!(world.stop_sandbox(&sb, 6).expect_err("gone").code(), Code::NotFound);
}

#[test]
fn list_filters_are_anded() {
    let mut world = world_with_busybox();
    let web = world.run_sandbox(sandbox_config("default", "web-1", 0, "web"), "", 1).expect("web");
    let db = world.run_sandbox(sandbox_config("default", "db-1", 0, "db"), "", 1).expect("db");
    world.stop_sandbox(&db, 2).expect("stop db");
    let in_web = world.create_container(&web, container_config("app", "busybox"), 3).expect("create");
    world.start_container(&in_web, 4).expect("start");
    let in_db = world.create_container(&web, container_config("init", "busybox"), 3).expect("create");

    let ready = |state: PodSandboxState| Some(api::PodSandboxStateValue { state: state as i32 });
    let sandbox_cases = [
        (None, vec![db.clone(), web.clone()]),
        (
            Some(api::PodSandboxFilter { state: ready(PodSandboxState::SandboxReady), ..Default::default() }),
            vec![web.clone()],
        ),
        (
            Some(api::PodSandboxFilter {
                label_selector: HashMap::from([("app".to_string(), "db".to_string())]),
                ..Default::default()
            }),
            vec![db.clone()],
        ),
        (
            Some(api::PodSandboxFilter {
                id: web.clone(),
                label_selector: HashMap::from([("app".to_string(), "db".to_string())]),
                ..Default::default()
            }),
            vec![],
        ),
    ];
    for (filter, want) in sandbox_cases {
        let mut got: Vec<String> = world.list_sandboxes(filter.as_ref()).into_iter().map(|s| s.id).collect();
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{filter:?}");
    }

    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue { state: ContainerState::ContainerRunning as i32 }),
        ..Default::default()
    };
    let ids: Vec<String> = world.list_containers(Some(&running)).into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![in_web.clone()]);

    let by_sandbox = api::ContainerFilter { pod_sandbox_id: web.clone(), ..Default::default() };
    assert_eq!(world.list_containers(Some(&by_sandbox)).len(), 2);
    let by_id = api::ContainerFilter { id: in_db.clone(), ..Default::default() };
    let listed = world.list_containers(Some(&by_id));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].pod_sandbox_id, web);
    assert!(listed[0].image_ref.starts_with("sha256:"));
}
