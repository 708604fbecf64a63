//! Behaviour tests of the store through its public API, each on both backends
//! (in memory, and on a temp-dir file with reader connections).

use std::time::Duration;

use super::*;
use anyhow::Context;

pub(super) fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Receives the next event or fails after a second.
pub(super) async fn next(rx: &mut WatchReceiver) -> anyhow::Result<Event> {
    tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .context("timed out waiting for event")?
        .context("watch channel closed")
}

/// Runs `check` on an in-memory store (reads served by the worker) and on a
/// file store (reads on the reader pool), closing each afterwards.
async fn on_each_backend<F, Fut>(opts: Options, check: F) -> anyhow::Result<()>
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let memory = Store::open_in_memory_with(opts.clone())?;
    let file = Store::open_with(&dir.path().join("store.db"), opts)?;
    for (name, store) in [("memory", memory), ("file", file)] {
        check(store.clone()).await.with_context(|| format!("on the {name} backend"))?;
        store.close().await;
    }
    Ok(())
}

pub(super) fn summary(e: &Event) -> (EventKind, String, Revision) {
    (e.kind, e.kv.key.clone(), e.revision())
}

#[tokio::test]
async fn create_update_delete_follow_their_preconditions() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        assert_eq!(s.current_revision(), 0);
        assert_eq!(s.create("/a", v("1")).await?, 1);
        assert!(matches!(s.create("/a", v("x")).await, Err(Error::AlreadyExists { key }) if key == "/a"));
        assert!(matches!(s.update("/a", v("2"), Some(7)).await, Err(Error::Conflict { expected: 7, actual: 1, .. })));
        assert_eq!(s.update("/a", v("2"), Some(1)).await?, 2);
        assert_eq!(s.update("/a", v("3"), None).await?, 3);
        let got = s.get("/a").await?.context("live")?;
        assert_eq!(got, KeyValue { key: "/a".into(), value: v("3"), create_revision: 1, mod_revision: 3 });
        assert!(matches!(s.delete("/a", Some(2)).await, Err(Error::Conflict { expected: 2, actual: 3, .. })));
        let (rev, deleted) = s.delete("/a", Some(3)).await?;
        assert_eq!((rev, deleted), (4, got));
        assert_eq!(s.get("/a").await?, None);
        assert!(matches!(s.update("/a", v("x"), None).await, Err(Error::NotFound { .. })));
        assert!(matches!(s.delete("/a", None).await, Err(Error::NotFound { .. })));
        assert_eq!(s.current_revision(), 4, "refused writes take no revision");
        assert_eq!(s.create("/a", v("again")).await?, 5);
        let again = s.get("/a").await?.context("live")?;
        assert_eq!((again.create_revision, again.mod_revision), (5, 5));
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn list_returns_live_prefixed_keys_sorted_with_store_revision() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        for key in ["/r/pods/ns/b", "/r/pods/ns/a", "/r/pods/other/c", "/r/podsx", "/r/services/ns/a"] {
            s.create(key, v(key)).await?;
        }
        s.delete("/r/pods/other/c", None).await?;
        s.update("/r/pods/ns/b", v("b2"), None).await?;
        let (kvs, rev) = s.list("/r/pods/").await?;
        let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/r/pods/ns/a", "/r/pods/ns/b"]);
        assert_eq!(kvs[1].value, v("b2"));
        assert_eq!(rev, 7);
        let (all, _) = s.list("").await?;
        assert_eq!(all.len(), 4);
        let (none, rev) = s.list("/nothing/").await?;
        assert!(none.is_empty());
        assert_eq!(rev, 7);
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn object_counts_follow_commits_and_survive_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    let s = Store::open(&path)?;
    s.create("/registry/core/pods/a/p1", v("1")).await?;
    s.create("/registry/core/pods/a/p2", v("2")).await?;
    s.update("/registry/core/pods/a/p2", v("2b"), None).await?;
    s.create("/registry/apps/deployments/a/d", v("d")).await?;
    s.delete("/registry/core/pods/a/p1", None).await?;
    // A failed write (already exists) counts nothing.
    assert!(s.create("/registry/core/pods/a/p2", v("again")).await.is_err());
    let want = vec![("deployments.apps".to_string(), 1), ("pods".to_string(), 1)];
    assert_eq!(s.object_counts().snapshot(), want);
    s.close().await;

    let s = Store::open(&path)?;
    assert_eq!(s.object_counts().snapshot(), want, "counted again from the live keys");
    s.close().await;
    Ok(())
}

#[tokio::test]
async fn revision_survives_reopen_even_after_compacting_newest_rows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    let s = Store::open(&path)?;
    s.create("/a", v("a")).await?;
    s.create("/b", v("b")).await?;
    s.delete("/b", None).await?;
    s.compact(3).await?;
    s.close().await;
    assert!(matches!(s.get("/a").await, Err(Error::Closed)));

    let s = Store::open(&path)?;
    assert_eq!(s.current_revision(), 3);
    assert_eq!(s.compacted_revision(), 3);
    assert_eq!(s.create("/c", v("c")).await?, 4);
    assert_eq!(s.get("/a").await?.map(|kv| kv.value), Some(v("a")));
    assert_eq!(s.get("/b").await?, None);
    s.close().await;
    Ok(())
}

#[tokio::test]
async fn second_open_of_the_same_file_fails_while_the_first_is_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.db");
    let opts = Options { lock_timeout: Duration::from_millis(100), ..Options::default() };
    let first = Store::open_with(&path, opts.clone())?;
    first.create("/a", v("a")).await?;
    let second = Store::open_with(&path, opts.clone());
    assert!(matches!(second, Err(Error::Lock { .. })), "got {second:?}");
    first.close().await;
    let third = Store::open_with(&path, opts)?;
    assert_eq!(third.current_revision(), 1);
    third.close().await;
    Ok(())
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_events() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        s.create("/p/a", v("1")).await?; // 1
        s.create("/q/x", v("1")).await?; // 2
        s.update("/p/a", v("2"), None).await?; // 3
        s.create("/p/b", v("1")).await?; // 4
        let mut rx = s.watch("/p/", 1).await?;
        s.delete("/p/a", None).await?; // 5
        s.create("/q/y", v("1")).await?; // 6
        s.create("/p/c", v("1")).await?; // 7

        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(next(&mut rx).await?);
        }
        let kinds: Vec<_> = got.iter().map(summary).collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Put, "/p/a".into(), 3),
                (EventKind::Put, "/p/b".into(), 4),
                (EventKind::Delete, "/p/a".into(), 5),
                (EventKind::Put, "/p/c".into(), 7),
            ]
        );
        let update = &got[0];
        assert_eq!(update.prev.as_ref().map(|p| (p.value.clone(), p.mod_revision)), Some((v("1"), 1)));
        assert_eq!(update.kv.create_revision, 1);
        let delete = &got[2];
        assert_eq!(delete.kv.value, v("2"), "delete carries the last value");
        assert_eq!(delete.prev.as_ref().map(|p| p.mod_revision), Some(3));
        assert!(got[3].prev.is_none(), "a create has no prev");
        assert!(rx.try_recv().is_none(), "nothing else");
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn watch_from_the_future_starts_above_after() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        let mut rx = s.watch("", 2).await?;
        for key in ["/a", "/b", "/c"] {
            s.create(key, v(key)).await?;
        }
        assert_eq!(next(&mut rx).await?.revision(), 3);
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn watch_below_the_compacted_revision_fails() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        for i in 0..5 {
            s.create(&format!("/k{i}"), v("x")).await?;
        }
        s.compact(3).await?;
        assert_eq!(s.compacted_revision(), 3);
        assert!(matches!(s.watch("", 2).await, Err(Error::Compacted { requested: 2, compacted: 3 })));
        let mut rx = s.watch("", 3).await?;
        assert_eq!(next(&mut rx).await?.revision(), 4);
        s.compact(100).await?;
        assert_eq!(s.compacted_revision(), 5, "clamped to the current revision");
        anyhow::Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_closed_and_writers_do_not_wait() -> anyhow::Result<()> {
    // Deadlines, not buffer sizes, decide: the slow watcher (never reads) has a
    // tiny deadline; the reading one has a generous one and must see everything
    // however long the machine stalls it.
    on_each_backend(Options::default(), |s| async move {
        let mut slow = s.watch_with_deadline("", 0, Duration::from_millis(1)).await?;
        let mut fast = s.watch_with_deadline("", 0, Duration::from_secs(3600)).await?;
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(e) = fast.recv().await {
                seen.push(e.revision());
            }
            seen
        });
        let writes = async {
            let mut n: Revision = 0;
            // Write until the slow watcher has been dropped (at least 100 writes).
            while n < 100 || !slow.is_closed() {
                n = s.create(&format!("/k{n}"), v("x")).await?;
            }
            // One write after the drop, which the slow watcher must not see.
            Ok::<_, anyhow::Error>(s.create("/after", v("x")).await?)
        };
        let written = tokio::time::timeout(Duration::from_secs(60), writes).await.context("writers blocked")??;
        let mut seen = Vec::new();
        while let Some(e) = slow.recv().await {
            seen.push(e.revision());
        }
        assert!(!seen.is_empty() && seen.len() < usize::try_from(written)?, "slow saw {} of {written}", seen.len());
        assert_eq!(seen, (1..=Revision::try_from(seen.len())?).collect::<Vec<_>>(), "a prefix, then closed");
        s.close().await;
        let fast_seen = tokio::time::timeout(Duration::from_secs(60), reader).await??;
        assert_eq!(fast_seen, (1..=written).collect::<Vec<_>>(), "a watcher that keeps reading sees everything");
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn full_command_queue_makes_callers_wait_not_fail() -> anyhow::Result<()> {
    let opts = Options { queue_capacity: 1, ..Options::default() };
    on_each_backend(opts, |s| async move {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.create(&format!("/q{i}"), v("x")).await })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        assert_eq!(s.list("/q").await?.0.len(), 50);
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn concurrent_writes_get_unique_revisions_in_watch_order() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        let mut rx = s.watch("", 0).await?;
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let key = format!("/k{i:03}");
                    let rev = s.create(&key, v("x")).await?;
                    // A read after the acknowledgement sees the write.
                    let seen = s.get(&key).await?.map(|kv| kv.mod_revision);
                    anyhow::ensure!(seen == Some(rev), "{key}: wrote {rev}, read {seen:?}");
                    anyhow::Ok(rev)
                })
            })
            .collect();
        let mut revs = Vec::new();
        for t in tasks {
            revs.push(t.await??);
        }
        revs.sort_unstable();
        assert_eq!(revs, (1..=200).collect::<Vec<_>>());
        for want in 1..=200 {
            assert_eq!(next(&mut rx).await?.revision(), want);
        }
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn exactly_one_of_racing_conditional_updates_wins() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        let base = s.create("/a", v("0")).await?;
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.update("/a", v(&i.to_string()), Some(base)).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await? {
                Ok(_) => wins += 1,
                Err(Error::Conflict { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(s.current_revision(), 2);
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn close_fails_later_calls_and_ends_watches() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        let mut rx = s.watch("", 0).await?;
        let other = s.clone();
        s.close().await;
        assert!(matches!(other.create("/a", v("a")).await, Err(Error::Closed)));
        assert!(matches!(other.get("/a").await, Err(Error::Closed)));
        assert!(matches!(other.list("").await, Err(Error::Closed)));
        assert!(rx.recv().await.is_none());
        other.close().await; // closing twice is harmless
        anyhow::Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_registered_during_writes_see_every_later_revision_once() -> anyhow::Result<()> {
    const WRITES: usize = 2_000;
    // Watchers are read only at the end: their deadline outlasts the test.
    let opts = Options { watch_deadline: Duration::from_secs(3600), ..Options::default() };
    on_each_backend(opts, |s| async move {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..WRITES / 4 {
                        s.create(&format!("/w{w}/{i}"), v("x")).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        let mut watches = Vec::new();
        while watches.len() < 20 {
            let after = s.current_revision();
            watches.push((after, s.watch("", after).await?));
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
        for w in writers {
            w.await??;
        }
        let end = Revision::try_from(WRITES)?;
        for (after, mut rx) in watches {
            let mut want = after + 1;
            while want <= end {
                let got = next(&mut rx).await?.revision();
                assert_eq!(got, want, "watch from {after}: gap or duplicate");
                want += 1;
            }
            assert!(rx.try_recv().is_none(), "watch from {after}: event beyond the last write");
        }
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn compactor_keeps_the_last_revisions_until_cancelled() -> anyhow::Result<()> {
    on_each_backend(Options::default(), |s| async move {
        for i in 0..30 {
            s.create(&format!("/k{i}"), v("x")).await?;
        }
        let token = tokio_util::sync::CancellationToken::new();
        let task = spawn_compactor(s.clone(), Duration::from_millis(5), 10, token.clone());
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while s.compacted_revision() != 20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "compactor did not compact to 20");
        assert!(matches!(s.watch("", 19).await, Err(Error::Compacted { .. })));
        assert_eq!(s.watch("", 20).await?.recv().await.map(|e| e.revision()), Some(21));
        token.cancel();
        tokio::time::timeout(Duration::from_secs(1), task).await??;
        anyhow::Ok(())
    })
    .await
}

#[tokio::test]
async fn each_group_commit_is_timed_in_the_given_histogram() -> anyhow::Result<()> {
    let histogram = crate::metrics::commit_histogram();
    let opts = Options { commit_duration: Some(histogram.clone()), ..Options::default() };
    let store = Store::open_in_memory_with(opts)?;
    store.create("/a", v("1")).await?;
    store.create("/b", v("1")).await?;
    store.get("/a").await?;
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register("commits", "", histogram);
    let text = bosun_metrics::render(&registry);
    assert!(text.contains("commits_count 2"), "{text}");
    store.close().await;
    Ok(())
}
