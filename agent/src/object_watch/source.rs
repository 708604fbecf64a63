//! Where object events come from: a kube-rs watcher per object, or a fake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::mpsc;

use super::{Kind, Object, ObjectKey};

/// One object's watch, already folded: a completed list says what is
/// there; then every change.
#[derive(Debug, Clone)]
pub enum ObjectEvent {
    /// A (re)list completed: the object, or `None` if it does not exist.
    Listed(Option<Object>),
    /// Created or updated.
    Changed(Object),
    /// Deleted.
    Deleted,
}

/// Opens watches of single objects.
pub trait ObjectSource: Send + Sync {
    /// The events of `key`, forever (re-listing after errors).
    fn watch(&self, key: &ObjectKey) -> BoxStream<'static, ObjectEvent>;
}

/// [`ObjectSource`] over a kube client: a watcher with
/// `fieldSelector=metadata.name=<name>` and kube's default backoff.
pub struct KubeObjectSource {
    client: kube::Client,
}

impl KubeObjectSource {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn events<K>(api: Api<K>, key: &ObjectKey, wrap: fn(K) -> Object) -> BoxStream<'static, ObjectEvent>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
    let mut listing: Option<Object> = None;
    let key = key.clone();
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let out = match event {
                Ok(watcher::Event::Init) => {
                    listing = None;
                    None
                }
                Ok(watcher::Event::InitApply(object)) => {
                    listing = Some(wrap(object));
                    None
                }
                Ok(watcher::Event::InitDone) => Some(ObjectEvent::Listed(listing.take())),
                Ok(watcher::Event::Apply(object)) => Some(ObjectEvent::Changed(wrap(object))),
                Ok(watcher::Event::Delete(_)) => Some(ObjectEvent::Deleted),
                Err(error) => {
                    tracing::debug!(?key, %error, "object watch failed; retrying");
                    None
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

impl ObjectSource for KubeObjectSource {
    fn watch(&self, key: &ObjectKey) -> BoxStream<'static, ObjectEvent> {
        match key.kind {
            Kind::ConfigMap => events(Api::<ConfigMap>::namespaced(self.client.clone(), &key.namespace), key, |o| {
                Object::ConfigMap(Arc::new(o))
            }),
            Kind::Secret => events(Api::<Secret>::namespaced(self.client.clone(), &key.namespace), key, |o| {
                Object::Secret(Arc::new(o))
            }),
        }
    }
}

/// A fake source: tests push events per key with [`FakeObjectSource::send`].
#[derive(Default)]
pub struct FakeObjectSource {
    senders: Mutex<HashMap<ObjectKey, mpsc::UnboundedSender<ObjectEvent>>>,
    /// Every key a watch was opened for, in order.
    pub opened: Mutex<Vec<ObjectKey>>,
}

impl FakeObjectSource {
    /// Delivers `event` to the open watch of `key`; false if none is open.
    pub fn send(&self, key: &ObjectKey, event: ObjectEvent) -> bool {
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders.get(key).is_some_and(|tx| tx.send(event).is_ok())
    }
}

impl ObjectSource for FakeObjectSource {
    fn watch(&self, key: &ObjectKey) -> BoxStream<'static, ObjectEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.senders.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), tx);
        self.opened.lock().unwrap_or_else(|p| p.into_inner()).push(key.clone());
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed()
    }
}
