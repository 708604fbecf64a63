use super::*;

const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: app\n      image: r/app:1.0\n";

#[test]
fn a_manifest_becomes_a_pod_bound_to_the_node_named_after_it() -> Result<(), Error> {
    let pod = static_pod("web.yaml", WEB.as_bytes(), "node-1")?;
    assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert!(is_static(&pod) && !is_mirror(&pod));
    let uid = pod.metadata.uid.clone().expect("uid");
    assert_eq!(annotation(&pod, CONFIG_HASH), Some(uid.as_str()));
    Ok(())
}

#[test]
fn the_uid_follows_the_file_and_the_node_and_nothing_else() -> Result<(), Error> {
    let uid = |bytes: &str, node: &str| static_pod("f", bytes.as_bytes(), node).map(|p| p.metadata.uid);
    assert_eq!(uid(WEB, "n1")?, uid(WEB, "n1")?);
    assert_ne!(uid(WEB, "n1")?, uid(WEB, "n2")?);
    assert_ne!(uid(WEB, "n1")?, uid(&WEB.replace("1.0", "2.0"), "n1")?);
    Ok(())
}

#[test]
fn refuses_what_is_not_a_runnable_pod() {
    let bad = [
        "kind: Service\nmetadata:\n  name: x\n",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: b}]\n",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: []\n",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n",
        ": not yaml : [",
    ];
    for text in bad {
        assert!(matches!(static_pod("f", text.as_bytes(), "n"), Err(Error::Parse { .. })), "{text}");
    }
}

#[test]
fn reads_the_directory_skipping_hidden_files_and_reporting_bad_ones() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("web.yaml"), WEB)?;
    std::fs::write(dir.path().join(".web.yaml.swp"), "garbage")?;
    std::fs::write(dir.path().join("broken.yaml"), "kind: Pod\n")?;
    let (pods, errors) = read_dir(dir.path(), "n");
    assert_eq!(pods.len(), 1);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("broken.yaml"), "{}", errors[0]);
    let (pods, errors) = read_dir(&dir.path().join("missing"), "n");
    assert!(pods.is_empty() && errors.is_empty());
    Ok(())
}

/// inotify, not the poll, wakes the source: with an hour-long poll period a
/// new, a rewritten and a removed manifest each show within seconds.
#[tokio::test]
async fn manifest_changes_are_seen_through_inotify_not_the_poll() -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("web.yaml"), WEB)?;
    let (tx, mut rx) = watch::channel(Vec::new());
    let token = CancellationToken::new();
    let _stop = token.clone().drop_guard();
    let source = watch_dir(dir.path().to_path_buf(), "n1".into(), Duration::from_secs(3600), tx, token.clone());
    tokio::spawn(source);
    // The first read publishes web (and the watch was set before it).
    tokio::time::timeout(Duration::from_secs(60), rx.changed()).await??;
    assert_eq!(rx.borrow_and_update().len(), 1);
    // Generous on a loaded machine, and far below the poll period.
    let limit = Duration::from_secs(10);
    let mut reactions = Vec::new();
    type Step = (&'static str, Box<dyn Fn(&Path) -> std::io::Result<()>>, usize);
    let steps: [Step; 3] = [
        (
            "new file moved in",
            Box::new(|d: &Path| {
                std::fs::write(d.join(".db.tmp"), WEB.replace("web", "db"))?;
                std::fs::rename(d.join(".db.tmp"), d.join("db.yaml"))
            }),
            2,
        ),
        ("file rewritten", Box::new(|d: &Path| std::fs::write(d.join("db.yaml"), WEB.replace("web", "db2"))), 2),
        ("file removed", Box::new(|d: &Path| std::fs::remove_file(d.join("web.yaml"))), 1),
    ];
    for (what, change, want) in steps {
        let started = Instant::now();
        change(dir.path())?;
        tokio::time::timeout(limit, rx.changed())
            .await
            .map_err(|_| anyhow::anyhow!("{what}: no change within {limit:?}"))??;
        reactions.push((what, started.elapsed()));
        assert_eq!(rx.borrow_and_update().len(), want, "{what}");
    }
    println!("static pod manifest reaction times (inotify): {reactions:?}");
    Ok(())
}
