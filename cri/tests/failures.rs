//! How `CriClient` reports failures, deadlines and a restarted runtime.

use std::time::{Duration, Instant};

use bosun_cri::api;
use bosun_cri::testing::{FakeCri, PodRecipe};
use bosun_cri::{ClientOptions, CriClient, Error};
use tokio_util::sync::CancellationToken;
use tonic::Code;

fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(1),
        call_timeout: Duration::from_millis(300),
        pull_timeout: Duration::from_millis(600),
    }
}

#[tokio::test]
async fn absent_socket_is_reported_with_its_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("containerd.sock");
    let err = CriClient::connect(&socket, fast_options()).await.expect_err("no socket");
    assert!(matches!(&err, Error::SocketMissing { socket: s } if *s == socket), "{err:?}");
    assert!(err.to_string().contains(&socket.display().to_string()));
    Ok(())
}

#[tokio::test]
async fn socket_without_a_listener_is_a_connect_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket)?);
    let err = CriClient::connect(&socket, fast_options()).await.expect_err("nobody listens");
    assert!(matches!(&err, Error::Connect { socket: s, .. } if *s == socket), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn runtime_that_does_not_answer_fails_connect_within_connect_timeout() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new();
    fake.set_delay("Version", Duration::from_secs(30));
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let opts = ClientOptions { connect_timeout: Duration::from_millis(200), ..ClientOptions::default() };
    let err = CriClient::connect(server.socket(), opts).await.expect_err("no answer");
    assert!(
        matches!(&err, Error::Timeout { call: "Version", after, .. } if *after == Duration::from_millis(200)),
        "{err:?}"
    );
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn injected_failure_names_the_call_and_the_pod() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new().with_image("busybox");
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), fast_options()).await?;
    let recipe = PodRecipe::new("default", "web-1", "busybox");

    fake.fail_next("RunPodSandbox", Code::Unavailable);
    let err = recipe.start(&client, "").await.expect_err("injected");
    assert_eq!(err.code(), Some(Code::Unavailable));
    assert!(err.to_string().starts_with("CRI RunPodSandbox for pod sandbox \"default/web-1\": Unavailable"), "{err}");

    let pod = recipe.start(&client, "").await?;
    fake.fail_next("StartContainer", Code::Internal);
    let err = client.start_container(&pod.container_id).await.expect_err("injected");
    assert!(
        matches!(&err, Error::Rpc { call: "StartContainer", target, .. }
        if target.contains(&pod.container_id)),
        "{err:?}"
    );
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn missing_objects_are_not_found_and_name_the_object() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new().with_image("busybox");
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), fast_options()).await?;

    let err = client.container_status("nope").await.expect_err("absent");
    assert!(err.is_not_found());
    assert!(err.to_string().contains("container \"nope\""), "{err}");
    let err = client.pod_sandbox_status("nope").await.expect_err("absent");
    assert!(err.is_not_found());

    let pod = PodRecipe::new("default", "web-1", "busybox").start(&client, "").await?;
    client.stop_container(&pod.container_id, 0).await?;
    let err = client
        .exec_sync(&pod.container_id, vec!["true".into()], Duration::from_secs(1))
        .await
        .expect_err("exited container");
    assert_eq!(err.code(), Some(Code::FailedPrecondition));
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn failed_pull_carries_the_registry_answer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new();
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let client = CriClient::connect(server.socket(), fast_options()).await?;

    let err = client.pull_image("127.0.0.1:5000/missing:v9", None, None).await.expect_err("not in registry");
    assert!(matches!(&err, Error::ImagePull { image, .. } if image == "127.0.0.1:5000/missing:v9"));
    assert!(err.is_not_found());
    assert!(err.to_string().contains("127.0.0.1:5000/missing:v9: not found"), "{err}");
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn slow_calls_time_out_with_their_deadline() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fake = FakeCri::new().with_pullable("busybox");
    let server = fake.serve(dir.path().join("cri.sock"), CancellationToken::new())?;
    let opts = fast_options();
    let client = CriClient::connect(server.socket(), opts.clone()).await?;

    fake.set_delay("ListContainers", Duration::from_secs(30));
    let started = Instant::now();
    let err = client.list_containers(None).await.expect_err("too slow");
    let waited = started.elapsed();
    assert!(
        matches!(&err, Error::Timeout { call: "ListContainers", after, .. } if *after == opts.call_timeout),
        "{err:?}"
    );
    assert!(waited >= opts.call_timeout && waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(err.code(), Some(Code::DeadlineExceeded));

    // Pulls get their own, longer deadline: 450ms passes a pull but not a call.
    fake.set_delay("PullImage", Duration::from_millis(450));
    client.pull_image("busybox", None, None).await?;
    fake.set_delay("PullImage", Duration::from_secs(30));
    let err = client.pull_image("busybox", None, None).await.expect_err("too slow");
    assert!(matches!(&err, Error::Timeout { call: "PullImage", after, .. } if *after == opts.pull_timeout));

    // Other calls are unaffected by the delays.
    fake.set_delay("ListContainers", Duration::ZERO);
    assert!(client.list_containers(None).await?.is_empty());
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn client_reconnects_after_the_runtime_restarts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let fake = FakeCri::new().with_image("busybox");
    let token = CancellationToken::new();
    let server = fake.serve(&socket, token.clone())?;
    let client = CriClient::connect(&socket, fast_options()).await?;
    let pod = PodRecipe::new("default", "web-1", "busybox").start(&client, "").await?;

    server.shutdown().await?;
    assert!(!socket.exists(), "shutdown removes the socket file");
    let err = client.version().await.expect_err("runtime is down");
    assert_eq!(err.code(), Some(Code::Unavailable), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&socket.display().to_string()) && message.contains("No such file"), "{message}");

    let server = fake.serve(&socket, token.clone())?;
    let sandbox = client.pod_sandbox_status(&pod.sandbox_id).await?;
    assert_eq!(sandbox.state, api::PodSandboxState::SandboxReady as i32);
    client.version().await?;

    // Restart again without a call in between: the first call after it works.
    server.shutdown().await?;
    let server = fake.serve(&socket, token.clone())?;
    client.version().await?;

    token.cancel();
    drop(server);
    assert!(!socket.exists(), "dropping the handle removes the socket file");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_the_runtime_is_killed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let fake = FakeCri::new().with_image("busybox");
    let token = CancellationToken::new();
    for round in 0..20 {
        let server = fake.serve(&socket, token.clone())?;
        let client = CriClient::connect(&socket, fast_options()).await?;
        server.crash().await?;
        // Back up at once: the very next (idempotent) call finds the new
        // server, even if it first meets the dead connection.
        let server = fake.serve(&socket, token.clone())?;
        client.list_containers(None).await.map_err(|e| anyhow::anyhow!("round {round}: {e:?}"))?;
        // Calls that must not run twice work once the connection is fresh.
        let recipe = PodRecipe::new("default", &format!("web-{round}"), "busybox");
        recipe.start(&client, "").await?;
        server.shutdown().await?;
    }
    Ok(())
}

#[tokio::test]
async fn unmodelled_calls_answer_unimplemented() -> anyhow::Result<()> {
    use bosun_cri::api::runtime_service_client::RuntimeServiceClient;
    use hyper_util::rt::TokioIo;

    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let fake = FakeCri::new();
    let server = fake.serve(&socket, CancellationToken::new())?;
    let path = socket.clone();
    let channel = tonic::transport::Endpoint::from_static("http://fake")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    let mut raw = RuntimeServiceClient::new(channel);
    let err = raw
        .pod_sandbox_stats(api::PodSandboxStatsRequest { pod_sandbox_id: "x".into() })
        .await
        .expect_err("not modelled");
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(fake.calls(), ["PodSandboxStats"]);
    server.shutdown().await?;
    Ok(())
}
