//! The thin poster: callers queue events without waiting; one background
//! task per recorder correlates them in order and writes the decisions
//! (POST a new Event, or merge-PATCH `count`/`lastTimestamp`/`message`).
//! The task ends when every clone of the recorder is dropped.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::correlator::{Action, Config, Correlator};

/// Events queued beyond this are dropped (logged), so a burst never
/// blocks the caller or grows memory without bound.
const QUEUE: usize = 4096;

/// Queues events for posting on behalf of one source. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    source: EventSource,
    queue: mpsc::Sender<Event>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder posting as `component` (on `host`, for node agents) with
    /// upstream's correlation limits. Must be called inside a tokio runtime.
    pub fn new(client: Client, component: &str, host: Option<&str>) -> Self {
        Recorder::with_config(client, component, host, Config::default())
    }

    /// A recorder with explicit correlation limits.
    pub fn with_config(client: Client, component: &str, host: Option<&str>, config: Config) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(post_loop(client, Correlator::new(config), rx));
        let source = EventSource { component: Some(component.to_string()), host: host.map(str::to_string) };
        Recorder { source, queue }
    }

    /// Queues an event about `involved`; never waits, never fails.
    pub fn record(&self, involved: ObjectReference, type_: &str, reason: &str, message: &str) {
        let event = crate::render(involved, &self.source, type_, reason, message, Timestamp::now());
        if let Err(error) = self.queue.try_send(event) {
            let component = self.source.component.as_deref().unwrap_or_default();
            tracing::debug!(component, reason, %error, "event dropped");
        }
    }
}

async fn post_loop(client: Client, mut correlator: Correlator, mut rx: mpsc::Receiver<Event>) {
    while let Some(event) = rx.recv().await {
        post(&client, &mut correlator, event).await;
    }
}

/// Writes one correlated event; an update of an Event that is gone (swept
/// by the TTL) creates a new one.
async fn post(client: &Client, correlator: &mut Correlator, event: Event) {
    let reason = event.reason.clone().unwrap_or_default();
    let now = event.last_timestamp.as_ref().map_or_else(Timestamp::now, |t| t.0);
    let mut decided = correlator.correlate(event.clone(), now);
    if let Action::Update(update) = &decided.action {
        let api: Api<Event> = Api::namespaced(client.clone(), &update.namespace);
        let patched = api.patch(&update.name, &PatchParams::default(), &Patch::Merge(&update.patch())).await;
        match patched {
            Ok(_) => return,
            // Any other failure: drop this repeat (events are best effort)
            // rather than risk a duplicate Event.
            Err(error) if !matches!(&error, kube::Error::Api(status) if status.code == 404) => {
                tracing::debug!(%reason, %error, "could not update event");
                return;
            }
            Err(error) => {
                tracing::debug!(%reason, %error, "event is gone; creating a new one");
                correlator.forget(&decided.key);
                decided = correlator.correlate(event, now);
            }
        }
    }
    match decided.action {
        Action::Create(event) => {
            let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
            let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
            if let Err(error) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(%reason, %error, "could not post event");
                correlator.forget(&decided.key);
            }
        }
        Action::Skip => tracing::debug!(%reason, "event rate-limited"),
        Action::Update(_) => {}
    }
}
