use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey { kind: Kind::ConfigMap, namespace: "ns".into(), name: name.into() }
}

fn cm(name: &str, version: &str) -> Object {
    Object::ConfigMap(Arc::new(ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), resource_version: Some(version.into()), ..Default::default() },
        ..Default::default()
    }))
}

fn version_of(lookup: &Lookup) -> Option<String> {
    match &lookup.object {
        Some(Object::ConfigMap(cm)) => cm.metadata.resource_version.clone(),
        _ => None,
    }
}

async fn woken(wake: &Notify) -> bool {
    tokio::time::timeout(Duration::from_secs(5), wake.notified()).await.is_ok()
}

async fn wait_revision(watches: &ObjectWatches, key: &ObjectKey, not: Option<u64>) -> Option<u64> {
    for _ in 0..500 {
        let revision = watches.revision(key);
        if revision.is_some() && revision != not {
            return revision;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn a_change_wakes_the_users_and_moves_the_revision() {
    let source = Arc::new(FakeObjectSource::default());
    let watches = ObjectWatches::new(source.clone(), CancellationToken::new());
    let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    watches.set_interest("pod-a", BTreeSet::from([key("x")]), a.clone());
    watches.set_interest("pod-b", BTreeSet::from([key("x"), key("y")]), b.clone());
    assert_eq!(*source.opened.lock().unwrap(), vec![key("x"), key("y")], "one watch per object");
    assert_eq!(watches.revision(&key("x")), None, "not listed yet");

    assert!(source.send(&key("x"), ObjectEvent::Listed(Some(cm("x", "1")))));
    assert!(woken(&a).await && woken(&b).await);
    let listed = wait_revision(&watches, &key("x"), None).await.expect("listed");
    assert_eq!(version_of(&watches.lookup(&key("x")).unwrap()).as_deref(), Some("1"));

    // A relist with the same object changes nothing.
    source.send(&key("x"), ObjectEvent::Listed(Some(cm("x", "1"))));
    source.send(&key("x"), ObjectEvent::Changed(cm("x", "2")));
    assert!(woken(&a).await);
    let changed = wait_revision(&watches, &key("x"), Some(listed)).await.expect("changed");
    assert_eq!(changed, listed + 1, "the unchanged relist did not count");
    assert_eq!(version_of(&watches.lookup(&key("x")).unwrap()).as_deref(), Some("2"));

    source.send(&key("x"), ObjectEvent::Deleted);
    assert!(woken(&a).await);
    wait_revision(&watches, &key("x"), Some(changed)).await.expect("deleted");
    assert!(watches.lookup(&key("x")).unwrap().object.is_none());
}

#[tokio::test]
async fn the_last_user_leaving_stops_the_watch_and_a_new_one_starts_fresh() {
    let source = Arc::new(FakeObjectSource::default());
    let watches = ObjectWatches::new(source.clone(), CancellationToken::new());
    let wake = Arc::new(Notify::new());
    watches.set_interest("pod-a", BTreeSet::from([key("x")]), wake.clone());
    source.send(&key("x"), ObjectEvent::Listed(None));
    let first = wait_revision(&watches, &key("x"), None).await.expect("listed");
    watches.forget("pod-a");
    assert_eq!(watches.watched(), 0);
    assert!(watches.lookup(&key("x")).is_none());
    watches.set_interest("pod-b", BTreeSet::from([key("x")]), wake.clone());
    assert_eq!(source.opened.lock().unwrap().len(), 2, "watched again");
    source.send(&key("x"), ObjectEvent::Listed(None));
    let second = wait_revision(&watches, &key("x"), None).await.expect("listed again");
    assert!(second > first, "revisions never repeat across watches");
}
