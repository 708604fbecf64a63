//! Every `CriClient` call against `FakeCri` over a real unix socket.

use std::time::Duration;

use bosun_cri::api::{self, ContainerState, PodSandboxState};
use bosun_cri::testing::{FakeCri, PodRecipe, NETWORK_READY, RUNTIME_READY};
use bosun_cri::{ClientOptions, CriClient, ExecOutput};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn runtime_calls_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new();
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), ClientOptions::default()).await?;
    assert_eq!(client.socket(), server.socket());

    let version = client.version().await?;
    assert_eq!(version.runtime_api_version, "v1");
    assert_eq!(version.runtime_name, "fake-cri");

    fake.set_condition(NETWORK_READY, false);
    let status = client.status().await?;
    let conditions: Vec<(String, bool)> = status.conditions.iter().map(|c| (c.r#type.clone(), c.status)).collect();
    assert_eq!(conditions, vec![(NETWORK_READY.to_string(), false), (RUNTIME_READY.to_string(), true)]);

    client.update_runtime_config("10.244.0.0/24").await?;
    assert_eq!(fake.pod_cidr(), "10.244.0.0/24");
    assert_eq!(fake.calls(), ["Version", "Version", "Status", "UpdateRuntimeConfig"]);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn image_calls_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new().with_pullable("127.0.0.1:5000/app:v1");
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), ClientOptions::default()).await?;

    assert_eq!(client.image_status("127.0.0.1:5000/app:v1").await?, None);
    let image_ref = client.pull_image("127.0.0.1:5000/app:v1", None, None).await?;
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let image = client.image_status("127.0.0.1:5000/app:v1").await?.expect("pulled image is present");
    assert_eq!(image.id, image_ref);
    assert!(fake.has_image(&image_ref));

    let listed = client.list_images().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].repo_tags, ["127.0.0.1:5000/app:v1"]);

    client.remove_image("127.0.0.1:5000/app:v1").await?;
    client.remove_image("127.0.0.1:5000/app:v1").await?;
    assert_eq!(client.image_status(&image_ref).await?, None);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn pod_lifecycle_round_trips() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new().with_image("busybox");
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), ClientOptions::default()).await?;
    fake.clear_calls();

    let recipe = PodRecipe::new("default", "web-1", "busybox").with_command(&["sleep", "3600"]);
    let pod = recipe.start(&client, "").await?;
    assert_eq!(fake.calls(), ["RunPodSandbox", "CreateContainer", "StartContainer"]);
    assert_eq!(fake.call_log()[0].target, "default/web-1");

    let sandbox = client.pod_sandbox_status(&pod.sandbox_id).await?;
    assert_eq!(sandbox.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(sandbox.metadata.as_ref().map(|m| m.name.as_str()), Some("web-1"));
    let listed = client
        .list_pod_sandboxes(Some(api::PodSandboxFilter {
            label_selector: [("io.kubernetes.pod.name".to_string(), "web-1".to_string())].into(),
            ..Default::default()
        }))
        .await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, pod.sandbox_id);

    let status = client.container_status(&pod.container_id).await?;
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    let containers = client.list_containers(None).await?;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].pod_sandbox_id, pod.sandbox_id);

    let reply = ExecOutput { stdout: b"ok\n".to_vec(), stderr: Vec::new(), exit_code: 3 };
    fake.set_exec_result(&pod.container_id, reply.clone());
    let output =
        client.exec_sync(&pod.container_id, vec!["cat".into(), "/ready".into()], Duration::from_secs(1)).await?;
    assert_eq!(output, reply);

    fake.set_container_usage(&pod.container_id, 5_000, 4096);
    let stats = client.container_stats(&pod.container_id).await?;
    assert_eq!(stats.cpu.and_then(|c| c.usage_core_nano_seconds).map(|v| v.value), Some(5_000));
    assert_eq!(stats.memory.and_then(|m| m.working_set_bytes).map(|v| v.value), Some(4096));
    client.reopen_container_log(&pod.container_id).await?;

    fake.exit_container(&pod.container_id, 2)?;
    let exited = client.container_status(&pod.container_id).await?;
    assert_eq!(exited.state, ContainerState::ContainerExited as i32);
    assert_eq!((exited.exit_code, exited.reason.as_str()), (2, "Error"));

    client.stop_container(&pod.container_id, 10).await?;
    client.remove_container(&pod.container_id).await?;
    client.remove_container(&pod.container_id).await?;
    client.stop_container(&pod.container_id, 0).await?;

    pod.teardown(&client).await?;
    pod.teardown(&client).await?;
    assert!(client.list_pod_sandboxes(None).await?.is_empty());
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn oom_kill_is_reported_with_its_reason() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new().with_image("busybox");
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), ClientOptions::default()).await?;
    let pod = PodRecipe::new("default", "hog", "busybox").start(&client, "").await?;

    fake.oom_kill_container(&pod.container_id)?;
    let status = client.container_status(&pod.container_id).await?;
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "OOMKilled"));
    server.shutdown().await?;
    Ok(())
}
