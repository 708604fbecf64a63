//! The garbage collector's apply layer against the fake CRI runtime (served
//! over a unix socket, driven through the real `CriClient`): what a pass
//! removes, what it keeps, and the Node Events of image GC.

use std::collections::BTreeSet;
use std::sync::Arc;

use bosun_agent::events::FakeEvents;
use bosun_agent::gc::apply::{Collector, Error, ImageFs, CONTAINER_GC_FAILED, FREE_DISK_SPACE_FAILED, IMAGE_GC_FAILED};
use bosun_agent::gc::containers::ContainerPolicy;
use bosun_agent::gc::images::{FsStats, ImagePolicy};
use bosun_agent::gc::{Deps, GcSettings, PodStates};
use bosun_cri::testing::{FakeCri, PodRecipe};
use bosun_cri::{api, ClientOptions, CriClient};
use tokio_util::sync::CancellationToken;

const USED: &str = "docker.io/library/busybox:1.36";
const UNUSED: &str = "docker.io/library/unused:1";
const PAUSE: &str = "docker.io/library/pause:1";

struct Pods {
    known: BTreeSet<String>,
}

impl PodStates for Pods {
    fn all_known(&self) -> bool {
        true
    }
    fn is_known(&self, uid: &str) -> bool {
        self.known.contains(uid)
    }
}

/// A half-empty disk.
struct HalfFull;

#[async_trait::async_trait]
impl ImageFs for HalfFull {
    async fn stats(&self) -> Result<FsStats, Error> {
        Ok(FsStats { capacity: 100 << 30, available: 50 << 30 })
    }
}

/// Creates (and starts) container attempt `attempt` of `recipe` in `sandbox`.
async fn container(client: &CriClient, recipe: &PodRecipe, sandbox: &str, attempt: u32) -> anyhow::Result<String> {
    let mut config = recipe.container_config();
    config.metadata = Some(api::ContainerMetadata { name: recipe.container.clone(), attempt });
    let id = client.create_container(sandbox, &config, &recipe.sandbox_config()).await?;
    client.start_container(&id).await?;
    Ok(id)
}

#[tokio::test]
async fn a_pass_removes_what_upstreams_policy_says_and_keeps_the_rest() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let token = CancellationToken::new();
    let fake = FakeCri::new().with_image(USED).with_image(UNUSED).with_image(PAUSE);
    let _handle = fake.serve(&socket, token.clone())?;
    let client = CriClient::connect(&socket, ClientOptions::default()).await?;

    // A live pod crash-looping: attempts 0 and 1 dead, 2 running.
    let live = PodRecipe::new("default", "live", USED);
    let live_sandbox = client.run_pod_sandbox(&live.sandbox_config(), "").await?;
    let mut live_ids = Vec::new();
    for attempt in 0..3 {
        let id = container(&client, &live, &live_sandbox, attempt).await?;
        if attempt < 2 {
            fake.exit_container(&id, 1)?;
        }
        live_ids.push(id);
    }
    // A pod deleted while its sandbox was down: stopped sandbox, dead container.
    let gone = PodRecipe::new("default", "gone", USED);
    let gone_sandbox = client.run_pod_sandbox(&gone.sandbox_config(), "").await?;
    let gone_id = container(&client, &gone, &gone_sandbox, 0).await?;
    fake.exit_container(&gone_id, 0)?;
    client.stop_pod_sandbox(&gone_sandbox).await?;

    let events = Arc::new(FakeEvents::default());
    let deps = Deps {
        runtime: Arc::new(client.clone()),
        pods: Arc::new(Pods { known: [live.uid.clone()].into() }),
        image_fs: Arc::new(HalfFull),
        events: events.clone(),
        node_name: "n1".into(),
    };
    let settings = GcSettings {
        containers: ContainerPolicy::default(),
        images: ImagePolicy { high_threshold_percent: 1, low_threshold_percent: 0, min_age: std::time::Duration::ZERO },
        sandbox_image: Some(PAUSE.into()),
    };
    let mut collector = Collector::new(deps, settings);

    collector.collect_containers().await?;
    let left: Vec<String> = client.list_containers(None).await?.into_iter().map(|c| c.id).collect();
    assert_eq!(
        left.iter().collect::<BTreeSet<_>>(),
        [&live_ids[1], &live_ids[2]].into_iter().collect(),
        "the running instance and the newest dead one stay; the deleted pod's container goes"
    );
    let sandboxes: Vec<String> = client.list_pod_sandboxes(None).await?.into_iter().map(|s| s.id).collect();
    assert_eq!(sandboxes, vec![live_sandbox], "the deleted pod's stopped sandbox goes");

    collector.collect_images().await;
    assert!(fake.has_image(USED), "an image a container uses stays");
    assert!(fake.has_image(PAUSE), "the sandbox image stays");
    assert!(!fake.has_image(UNUSED), "the unused image goes");
    assert_eq!(events.reasons(), [FREE_DISK_SPACE_FAILED], "0% is out of reach: upstream's Event");
    let recorded = events.recorded.lock().map(|r| r[0].clone()).expect("event");
    assert_eq!(recorded.0, "n1", "on the Node");
    assert!(recorded.3.starts_with("Failed to garbage collect required amount of images."), "{}", recorded.3);

    collector.collect_images().await;
    assert_eq!(
        events.reasons(),
        [FREE_DISK_SPACE_FAILED, FREE_DISK_SPACE_FAILED, IMAGE_GC_FAILED],
        "a repeated failure is also ImageGCFailed"
    );
    token.cancel();
    Ok(())
}

#[tokio::test]
async fn a_failed_container_pass_is_a_node_event() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("cri.sock");
    let token = CancellationToken::new();
    let fake = FakeCri::new();
    let _handle = fake.serve(&socket, token.clone())?;
    let client = CriClient::connect(&socket, ClientOptions::default()).await?;
    let events = Arc::new(FakeEvents::default());
    let deps = Deps {
        runtime: Arc::new(client),
        pods: Arc::new(Pods { known: BTreeSet::new() }),
        image_fs: Arc::new(HalfFull),
        events: events.clone(),
        node_name: "n1".into(),
    };
    let mut collector = Collector::new(deps, GcSettings::default());
    fake.fail_next("ListPodSandbox", tonic::Code::Internal);
    collector.collect_containers_or_report().await;
    assert_eq!(events.reasons(), [CONTAINER_GC_FAILED]);
    collector.collect_containers_or_report().await;
    assert_eq!(events.reasons(), [CONTAINER_GC_FAILED], "the next pass succeeds");
    token.cancel();
    Ok(())
}
