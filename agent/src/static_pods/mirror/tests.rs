use super::*;
use crate::static_pods::static_pod;

fn static_web(image: &str) -> Arc<Pod> {
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: a\n      image: {image}\n");
    Arc::new(static_pod("web.yaml", text.as_bytes(), "n1").expect("valid manifest"))
}

fn in_api(mirror: Pod, uid: &str) -> Pod {
    let mut pod = mirror;
    pod.metadata.uid = Some(uid.to_string());
    pod
}

#[test]
fn a_static_pod_without_mirror_gets_one_owned_by_the_node() {
    let web = static_web("app:1");
    let actions = decide(std::slice::from_ref(&web), &[], "n1", Some("node-uid"));
    let [MirrorAction::Create(mirror)] = actions.as_slice() else { panic!("one create: {actions:?}") };
    assert_eq!(mirror.metadata.name.as_deref(), Some("web-n1"));
    assert_eq!(mirror.metadata.uid, None);
    assert_eq!(annotation(mirror, CONFIG_MIRROR), annotation(&web, CONFIG_HASH));
    let owner = &mirror.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Node", "n1", "node-uid"));
    // Without a registered Node there is no owner yet: wait.
    assert!(decide(&[web], &[], "n1", None).is_empty());
}

#[test]
fn a_current_mirror_is_left_alone() {
    let web = static_web("app:1");
    let mirror = in_api(mirror_of(&web, "n1", "u"), "m1");
    assert!(decide(&[web], &[mirror], "n1", Some("u")).is_empty());
}

#[test]
fn stale_deleted_and_orphaned_mirrors_are_deleted_and_current_ones_created() {
    let old = static_web("app:1");
    let new = static_web("app:2");
    let stale = in_api(mirror_of(&old, "n1", "u"), "m-old");
    let delete =
        |uid: &str| MirrorAction::Delete { namespace: "default".into(), name: "web-n1".into(), uid: uid.into() };
    // The file changed: the old mirror goes, a new one comes.
    let actions = decide(std::slice::from_ref(&new), std::slice::from_ref(&stale), "n1", Some("u"));
    assert_eq!(actions, vec![delete("m-old"), MirrorAction::Create(Box::new(mirror_of(&new, "n1", "u")))]);
    // The file was removed: the mirror goes.
    assert_eq!(decide(&[], &[stale], "n1", Some("u")), vec![delete("m-old")]);
    // Someone deleted the mirror: it is deleted for good and created again.
    let mut deleting = in_api(mirror_of(&new, "n1", "u"), "m-new");
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
    let actions = decide(std::slice::from_ref(&new), &[deleting], "n1", Some("u"));
    assert_eq!(actions, vec![delete("m-new"), MirrorAction::Create(Box::new(mirror_of(&new, "n1", "u")))]);
}

#[test]
fn pods_that_are_not_mirrors_are_never_touched() {
    let web = static_web("app:1");
    let mut plain = mirror_of(&web, "n1", "u");
    plain.metadata.annotations = None;
    plain.metadata.uid = Some("p".into());
    assert_eq!(decide(&[], &[plain], "n1", Some("u")), vec![]);
}
