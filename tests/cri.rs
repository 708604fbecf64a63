//! The CRI client against the real stack: our containerd + runc + CNI, images
//! pulled from our loopback registry.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_cri::api;
use bosun_cri::{ClientOptions, CriClient};
use support::TestStack;

fn sandbox_config(name: &str, log_dir: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        labels: [("app".to_string(), name.to_string())].into(),
        linux: Some(api::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

fn container_config(image: &str, script: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: "app".into(), attempt: 0 }),
        image: Some(api::ImageSpec { image: image.into(), ..Default::default() }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        envs: vec![api::KeyValue { key: "GREETING".into(), value: "hello-from-bosun".into() }],
        log_path: "app/0.log".into(),
        linux: Some(api::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// The cgroup directories (all hierarchies) of a process.
fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let base = match controllers {
                "" => PathBuf::from("/sys/fs/cgroup"),
                "memory" | "pids" => PathBuf::from("/sys/fs/cgroup").join(controllers),
                _ => return None,
            };
            Some(base.join(path.trim_start_matches('/')))
        })
        .filter(|dir| dir.is_dir())
        .collect()
}

/// The pid of a process whose command line contains `needle`.
fn find_process(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        cmdline.contains(needle).then_some(pid)
    })
}

async fn http_get(url: &str) -> Result<String> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
    Ok(client.get(url).send().await?.error_for_status()?.text().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_on_real_containerd_leaves_nothing_behind() -> Result<()> {
    let stack = TestStack::start().await?;
    let result = lifecycle(&stack).await;
    let teardown = stack.teardown().await;
    result?;
    teardown
}

async fn lifecycle(stack: &TestStack) -> Result<()> {
    let cri = &stack.cri;
    let version = cri.version().await?;
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    // Pull from the loopback registry through CRI.
    let image = stack.app_image();
    let image_ref = cri.pull_image(&image, None, None).await?;
    assert!(image_ref.starts_with("sha256:"), "image ref {image_ref}");
    let status = cri.image_status(&image).await?.context("pulled image has a status")?;
    assert!(status.repo_tags.contains(&image), "{:?}", status.repo_tags);

    // A missing image: the error names the image and carries the registry's answer.
    let missing = format!("{}/bosun/does-not-exist:1", stack.config.registry);
    let err = cri.pull_image(&missing, None, None).await.expect_err("pulling a missing image fails");
    let message = err.to_string();
    assert!(message.contains(&missing), "error names the image: {message}");
    assert!(message.contains("not found"), "error carries the registry answer: {message}");

    // Sandbox: gets an IP from CNI in our subnet.
    let log_dir = stack.config.dir.join("pods").join("default_web");
    let sandbox = sandbox_config("web", &log_dir);
    let sandbox_id = cri.run_pod_sandbox(&sandbox, "").await?;
    let sandbox_status = cri.pod_sandbox_status(&sandbox_id).await?;
    assert_eq!(sandbox_status.state, api::PodSandboxState::SandboxReady as i32);
    let ip = sandbox_status.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
    let subnet_prefix = stack.config.network.subnet.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
    assert!(ip.starts_with(&subnet_prefix), "pod IP {ip} in {}", stack.config.network.subnet);

    // Container: prints a line, then serves HTTP.
    let script = "echo $GREETING; echo served-by-bosun > /www/index.html; exec httpd -f -p 8080 -h /www";
    let container_id = cri.create_container(&sandbox_id, &container_config(&image, script), &sandbox).await?;
    cri.start_container(&container_id).await?;
    let status = cri.container_status(&container_id).await?;
    assert_eq!(status.state, api::ContainerState::ContainerRunning as i32);

    // HTTP to the pod IP answers.
    let url = format!("http://{ip}:8080/");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match http_get(&url).await {
            Ok(body) => break body,
            Err(err) if Instant::now() > deadline => bail!("pod at {url} never answered: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(body.trim(), "served-by-bosun");

    // The container runs in its own cgroups, which must go away with it.
    let httpd = find_process("httpd -f -p 8080 -h /www").context("httpd process on the host")?;
    let cgroups = cgroup_dirs(httpd);
    assert!(!cgroups.is_empty(), "container cgroups found for pid {httpd}");

    // The log file is in CRI format: `<RFC3339Nano> stdout F <line>`.
    let log = std::fs::read_to_string(log_dir.join("app/0.log")).context("container log file")?;
    let line = log.lines().find(|l| l.ends_with("hello-from-bosun")).context(format!("greeting in log: {log:?}"))?;
    let fields: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(fields.len(), 4, "{line}");
    assert!(fields[0].contains('T') && fields[0].ends_with('Z'), "RFC 3339 timestamp: {line}");
    assert_eq!((fields[1], fields[2]), ("stdout", "F"), "{line}");

    // exec-sync: output and exit codes come back.
    let out =
        cri.exec_sync(&container_id, vec!["cat".into(), "/www/index.html".into()], Duration::from_secs(10)).await?;
    assert_eq!((String::from_utf8_lossy(&out.stdout).trim(), out.exit_code), ("served-by-bosun", 0));
    let out = cri
        .exec_sync(
            &container_id,
            vec!["sh".into(), "-c".into(), "echo oops >&2; exit 3".into()],
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!((String::from_utf8_lossy(&out.stderr).trim(), out.exit_code), ("oops", 3));

    // Stats of a running container.
    let stats = cri.container_stats(&container_id).await?;
    assert!(stats.memory.and_then(|m| m.working_set_bytes).is_some_and(|w| w.value > 0), "memory stats");

    // Stop and remove: nothing left in the runtime, cgroups gone.
    cri.stop_container(&container_id, 2).await?;
    assert_eq!(cri.container_status(&container_id).await?.state, api::ContainerState::ContainerExited as i32);
    cri.remove_container(&container_id).await?;
    cri.stop_pod_sandbox(&sandbox_id).await?;
    cri.remove_pod_sandbox(&sandbox_id).await?;
    assert!(cri.list_containers(None).await?.is_empty(), "no containers left");
    assert!(cri.list_pod_sandboxes(None).await?.is_empty(), "no sandboxes left");
    for dir in &cgroups {
        assert!(!dir.exists(), "cgroup {} removed", dir.display());
    }
    // Removing again is not an error (idempotent teardown).
    cri.remove_pod_sandbox(&sandbox_id).await?;
    Ok(())
}

#[tokio::test]
async fn absent_socket_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-containerd.sock");
    let Err(err) = CriClient::connect(&socket, ClientOptions::default()).await else {
        panic!("connecting to an absent socket must fail");
    };
    assert!(err.to_string().contains(&socket.display().to_string()), "{err}");
    assert!(matches!(err, bosun_cri::Error::SocketMissing { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_containerd_restarts() -> Result<()> {
    let mut stack = TestStack::start().await?;
    let result = async {
        let before = stack.cri.version().await?;
        stack.restart_containerd().await?;
        // The same client (same channel) works again without being rebuilt.
        let after = stack.cri.version().await?;
        assert_eq!(before.runtime_version, after.runtime_version);
        stack.cri.pull_image(&stack.app_image(), None, None).await?;
        anyhow::Ok(())
    }
    .await;
    let teardown = stack.teardown().await;
    result?;
    teardown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_archive_imports_into_containerd_without_a_registry() -> Result<()> {
    let stack = TestStack::start().await?;
    let result = async {
        let dir = stack.config.dir.join("airgap");
        let layout =
            bosun_images::write_layout(&dir.join("layout"), &bosun_images::app_image(Path::new("/bin/busybox")))?;
        // A name no registry serves: only the import can make it known.
        let reference = "airgap.invalid/bosun/app:1.0";
        let archive = bosun_images::publish::stage_archive(&layout, reference, &dir.join("images"))?;
        assert!(stack.cri.image_status(reference).await?.is_none(), "not there before the import");
        let socket = stack.config.containerd_socket();
        tokio::task::spawn_blocking(move || bosun_images::publish::import_archive(&archive, &socket, "k8s.io"))
            .await??;
        let status = stack.cri.image_status(reference).await?.context("imported image visible through CRI")?;
        assert!(status.repo_tags.iter().any(|t| t == reference), "{status:?}");
        anyhow::Ok(())
    }
    .await;
    let teardown = stack.teardown().await;
    result?;
    teardown
}
