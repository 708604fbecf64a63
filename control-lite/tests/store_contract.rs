//! The store contract: the same test functions against every backend,
//! SQLite in memory, SQLite on a file, a one-member etcd and a three-member
//! etcd (Debian's `/usr/bin/etcd` on loopback, `bosun_testing::etcd`).
//!
//! Revisions are checked relative to the store's revision when the test
//! starts (an empty etcd is at revision 1, an empty SQLite store at 0).
//! Nothing sleeps to synchronise: waits poll a condition with a deadline.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bosun_control::store::{
    Error, EtcdOptions, Event, EventKind, ListPage, ListRange, Options, Revision, Store, WatchReceiver,
};
use bosun_testing::etcd::EtcdCluster;

/// Generous: etcd on a loaded 2-core machine, elections after a kill.
const DEADLINE: Duration = Duration::from_secs(60);

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    File,
    Etcd1,
    Etcd3,
}

/// A store of one kind and what keeps it alive.
struct Fixture {
    kind: Kind,
    store: Store,
    _dir: tempfile::TempDir,
    path: PathBuf,
    etcd: Option<EtcdCluster>,
}

async fn connect(endpoints: Vec<String>) -> Result<Store> {
    Ok(Store::connect_etcd(EtcdOptions::new(endpoints), Options::default()).await?)
}

impl Fixture {
    async fn open(kind: Kind) -> Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("store.db");
        let (store, etcd) = match kind {
            Kind::Memory => (Store::open_in_memory()?, None),
            Kind::File => (Store::open(&path)?, None),
            Kind::Etcd1 | Kind::Etcd3 => {
                let size = if matches!(kind, Kind::Etcd1) { 1 } else { 3 };
                let cluster = tokio::task::spawn_blocking(move || EtcdCluster::start(size)).await??;
                (connect(cluster.endpoints()).await?, Some(cluster))
            }
        };
        Ok(Fixture { kind, store, _dir: dir, path, etcd })
    }

    /// A second handle on the same data: on etcd a client of the last
    /// member alone (another connection, another member); on SQLite a clone
    /// (a database has one owner).
    async fn other_handle(&self) -> Result<Store> {
        match &self.etcd {
            Some(cluster) => connect(cluster.endpoints().split_off(cluster.endpoints().len() - 1)).await,
            None => Ok(self.store.clone()),
        }
    }
}

/// Runs `test` on a fresh store of `kind`, timing it.
async fn run<F, Fut>(kind: Kind, test: F) -> Result<()>
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let started = Instant::now();
    let fixture = Fixture::open(kind).await.with_context(|| format!("open {kind:?}"))?;
    let result = test(fixture).await.with_context(|| format!("on {kind:?}"));
    println!("contract on {kind:?}: {:?}", started.elapsed());
    result
}

/// One `#[tokio::test]` per backend for each contract function.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> anyhow::Result<()> { super::run(super::Kind::Memory, super::$name).await } )* }
        mod file { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> anyhow::Result<()> { super::run(super::Kind::File, super::$name).await } )* }
        mod etcd1 { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> anyhow::Result<()> { super::run(super::Kind::Etcd1, super::$name).await } )* }
        mod etcd3 { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> anyhow::Result<()> { super::run(super::Kind::Etcd3, super::$name).await } )* }
    };
}

contract!(
    writes_follow_their_preconditions,
    reads_see_every_acknowledged_write,
    revisions_are_gapless_across_keys,
    watch_replays_in_order_then_streams_live,
    watch_resumes_from_the_last_seen_revision,
    watch_from_a_compacted_revision_fails,
    pages_read_one_revision,
    acknowledged_writes_survive_killing_the_client,
);

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Re-watches an etcd watch may need: etcd ends watches on a member that
/// lost its leader (an election), and the contract's answer is a watch
/// from the last revision seen. SQLite watches never end here.
const ETCD_RESUMES: usize = 3;

/// A watch of `prefix` as a client follows it: on etcd, a watch that ends
/// is resumed from the last revision seen (a few times); events must still
/// come in order, each once.
struct Follow {
    store: Store,
    prefix: String,
    last: Revision,
    resumes_left: usize,
    rx: WatchReceiver,
}

impl Follow {
    async fn start(f: &Fixture, prefix: &str, after: Revision) -> Result<Follow> {
        let rx = f.store.watch(prefix, after).await?;
        let resumes_left = if f.etcd.is_some() { ETCD_RESUMES } else { 0 };
        Ok(Follow { store: f.store.clone(), prefix: prefix.to_owned(), last: after, resumes_left, rx })
    }

    async fn next(&mut self) -> Result<Event> {
        loop {
            let got = tokio::time::timeout(DEADLINE, self.rx.recv()).await.context("no event within the deadline")?;
            match got {
                Some(event) => {
                    self.last = event.revision();
                    return Ok(event);
                }
                None if self.resumes_left > 0 => {
                    self.resumes_left -= 1;
                    println!("watch of {} ended after {}; resuming", self.prefix, self.last);
                    self.rx = self.store.watch(&self.prefix, self.last).await?;
                }
                None => bail!("watch of {} ended after {}", self.prefix, self.last),
            }
        }
    }
}

fn summary(e: &Event) -> (EventKind, String, Revision) {
    (e.kind, e.kv.key.clone(), e.revision())
}

async fn writes_follow_their_preconditions(f: Fixture) -> Result<()> {
    let s = &f.store;
    let base = s.current_revision();
    assert_eq!(s.create("/a", v("1")).await?, base + 1);
    assert!(matches!(s.create("/a", v("x")).await, Err(Error::AlreadyExists { key }) if key == "/a"));
    let stale = base + 7;
    match s.update("/a", v("2"), Some(stale)).await {
        Err(Error::Conflict { expected, actual, .. }) => assert_eq!((expected, actual), (stale, base + 1)),
        other => bail!("update with a stale revision: {other:?}"),
    }
    assert_eq!(s.update("/a", v("2"), Some(base + 1)).await?, base + 2);
    assert_eq!(s.update("/a", v("3"), None).await?, base + 3);
    let got = s.get("/a").await?.context("live")?;
    assert_eq!((got.value.clone(), got.create_revision, got.mod_revision), (v("3"), base + 1, base + 3));
    assert!(matches!(s.delete("/a", Some(base + 2)).await, Err(Error::Conflict { .. })));
    let (rev, deleted) = s.delete("/a", Some(base + 3)).await?;
    assert_eq!((rev, deleted), (base + 4, got));
    assert_eq!(s.get("/a").await?, None);
    assert!(matches!(s.update("/a", v("x"), None).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.update("/a", v("x"), Some(0)).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.delete("/a", None).await, Err(Error::NotFound { .. })));
    assert_eq!(s.current_revision(), base + 4, "refused writes take no revision");
    assert_eq!(s.create("/a", v("again")).await?, base + 5);
    // Racing conditional updates: exactly one wins.
    let racers = (0..8).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.update("/a", v(&format!("r{i}")), Some(base + 5)).await })
    });
    let mut wins = 0;
    for racer in racers {
        match racer.await? {
            Ok(_) => wins += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => bail!("racer: {e}"),
        }
    }
    assert_eq!(wins, 1);
    Ok(())
}

async fn reads_see_every_acknowledged_write(f: Fixture) -> Result<()> {
    let other = f.other_handle().await?;
    for i in 0..50 {
        let key = format!("/r/k{i:03}");
        let rev = f.store.create(&key, v("x")).await?;
        // Linearizable: another client (on etcd, of another member) sees it at once.
        let got = other.get(&key).await?.with_context(|| format!("{key} not visible after its create"))?;
        assert_eq!(got.mod_revision, rev);
        let (kvs, list_rev) = other.list("/r/").await?;
        ensure!(kvs.len() == i + 1 && list_rev >= rev, "list after create {i}: {} keys at {list_rev}", kvs.len());
    }
    Ok(())
}

async fn revisions_are_gapless_across_keys(f: Fixture) -> Result<()> {
    let base = f.store.current_revision();
    let writers = (0..8).map(|w| {
        let s = f.store.clone();
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..25 {
                revs.push(s.create(&format!("/g/w{w}/k{i}"), v("x")).await?);
            }
            anyhow::Ok(revs)
        })
    });
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await??);
    }
    all.sort_unstable();
    let want: Vec<Revision> = (base + 1..=base + 200).collect();
    assert_eq!(all, want, "one revision per write, no gaps, no duplicates");
    let (kvs, rev) = f.store.list("/g/").await?;
    assert_eq!((kvs.len(), rev), (200, base + 200));
    Ok(())
}

async fn watch_replays_in_order_then_streams_live(f: Fixture) -> Result<()> {
    let s = &f.store;
    let base = s.current_revision();
    s.create("/p/a", v("1")).await?; // +1
    s.create("/q/x", v("1")).await?; // +2
    s.update("/p/a", v("2"), None).await?; // +3
    s.create("/p/b", v("1")).await?; // +4
    let mut rx = Follow::start(&f, "/p/", base + 1).await?;
    s.delete("/p/a", None).await?; // +5
    s.create("/q/y", v("1")).await?; // +6
    s.create("/p/c", v("1")).await?; // +7
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(rx.next().await?);
    }
    let summaries: Vec<_> = got.iter().map(summary).collect();
    assert_eq!(
        summaries,
        [
            (EventKind::Put, "/p/a".into(), base + 3),
            (EventKind::Put, "/p/b".into(), base + 4),
            (EventKind::Delete, "/p/a".into(), base + 5),
            (EventKind::Put, "/p/c".into(), base + 7),
        ]
    );
    assert_eq!(got[0].prev.as_ref().map(|p| (p.value.clone(), p.mod_revision)), Some((v("1"), base + 1)));
    assert_eq!(got[0].kv.create_revision, base + 1);
    assert_eq!(got[2].kv.value, v("2"), "a delete carries the last value");
    assert_eq!(got[2].prev.as_ref().map(|p| p.mod_revision), Some(base + 3));
    assert!(got[1].prev.is_none() && got[3].prev.is_none(), "a create has no prev");
    // Many live writes: in order, none lost, none twice.
    let mut all = Follow::start(&f, "/live/", s.current_revision()).await?;
    let mut written = Vec::new();
    for i in 0..100 {
        written.push(s.create(&format!("/live/{i}"), v("x")).await?);
    }
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.push(all.next().await?.revision());
    }
    assert_eq!(seen, written);
    assert!(all.rx.try_recv().is_none(), "nothing else");
    Ok(())
}

async fn watch_resumes_from_the_last_seen_revision(f: Fixture) -> Result<()> {
    let s = &f.store;
    let base = s.current_revision();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                s.create(&format!("/w/{i}"), v("x")).await?;
            }
            anyhow::Ok(())
        })
    };
    // Read a while, drop the watch mid-stream, resume from the last seen revision.
    let mut seen = Vec::new();
    let mut last = base;
    while seen.len() < 200 {
        let mut rx = Follow::start(&f, "/w/", last).await?;
        for _ in 0..37 {
            if seen.len() == 200 {
                break;
            }
            let event = rx.next().await?;
            last = event.revision();
            seen.push(last);
        }
    }
    writer.await??;
    let want: Vec<Revision> = (base + 1..=base + 200).collect();
    assert_eq!(seen, want, "every revision once, in order, across resumes");
    Ok(())
}

async fn watch_from_a_compacted_revision_fails(f: Fixture) -> Result<()> {
    let s = &f.store;
    let base = s.current_revision();
    for i in 0..5 {
        s.create(&format!("/c/k{i}"), v("x")).await?;
    }
    s.compact(base + 3).await?;
    assert_eq!(s.compacted_revision(), base + 3);
    match s.watch("", base + 2).await {
        Err(Error::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (base + 2, base + 3)),
        other => bail!("watch below the compaction: {other:?}"),
    }
    let mut rx = Follow::start(&f, "", base + 3).await?;
    assert_eq!(rx.next().await?.revision(), base + 4);
    s.compact(base + 100).await?;
    assert_eq!(s.compacted_revision(), base + 5, "clamped to the current revision");
    // A fresh handle (on etcd: one that did not compact) refuses it too,
    // with etcd's compacted revision, which it then reports.
    if f.etcd.is_some() {
        let other = f.other_handle().await?;
        match other.watch("/c/", base + 1).await {
            Err(Error::Compacted { compacted, .. }) => assert_eq!(compacted, base + 5),
            other => bail!("watch below the compaction on a fresh handle: {other:?}"),
        }
        assert_eq!(other.compacted_revision(), base + 5);
    }
    // Still readable and writable.
    assert_eq!(s.list("/c/").await?.0.len(), 5);
    assert_eq!(s.create("/c/after", v("x")).await?, base + 6);
    Ok(())
}

/// A page request (`limit`/`continue`) of keys under `/p/`.
fn page(start: Option<&str>, limit: usize, revision: Option<Revision>) -> ListRange {
    ListRange { prefix: "/p/".into(), start: start.map(|k| format!("{k}\0")), limit: Some(limit), revision }
}

fn keys(page: &ListPage) -> Vec<&str> {
    page.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

async fn pages_read_one_revision(f: Fixture) -> Result<()> {
    let s = &f.store;
    for i in 0..10 {
        s.create(&format!("/p/k{i}"), v("x")).await?;
    }
    s.create("/q/x", v("x")).await?;
    let first = s.list_page(page(None, 4, None)).await?;
    assert_eq!(keys(&first), ["/p/k0", "/p/k1", "/p/k2", "/p/k3"]);
    assert_eq!(first.remaining, 6);
    let at = first.revision;
    assert_eq!(at, s.current_revision());
    let k5 = s.get("/p/k5").await?.context("k5")?;

    // Writes between pages: none of them shows in the next pages.
    s.update("/p/k5", v("y"), None).await?;
    s.delete("/p/k7", None).await?;
    s.create("/p/k45", v("x")).await?;
    s.delete("/p/k1", None).await?;
    s.create("/p/k99", v("x")).await?;

    let second = s.list_page(page(Some("/p/k3"), 4, Some(at))).await?;
    assert_eq!(keys(&second), ["/p/k4", "/p/k5", "/p/k6", "/p/k7"]);
    assert_eq!(second.kvs[1], k5, "k5 as it was at the first page's revision");
    assert_eq!((second.revision, second.remaining), (at, 2));
    let third = s.list_page(page(Some("/p/k7"), 4, Some(at))).await?;
    assert_eq!(keys(&third), ["/p/k8", "/p/k9"]);
    assert_eq!(third.remaining, 0);
    let whole = s.list_page(ListRange { limit: None, ..page(None, 0, Some(at)) }).await?;
    assert_eq!(whole.kvs.len(), 10, "the whole prefix at the old revision");

    // Now: the writes are there.
    let now = s.list_page(page(Some("/p/k3"), 10, None)).await?;
    assert_eq!(keys(&now), ["/p/k4", "/p/k45", "/p/k5", "/p/k6", "/p/k8", "/p/k9", "/p/k99"]);
    assert_eq!(now.kvs[2].value, v("y"));
    assert_eq!(now.revision, s.current_revision());

    // A revision from the future, and one compacted away.
    let future = s.current_revision() + 100;
    match s.list_page(page(None, 2, Some(future))).await {
        Err(Error::FutureRevision { requested, .. }) => assert_eq!(requested, future),
        other => bail!("page from the future: {other:?}"),
    }
    s.compact(s.current_revision()).await?;
    match s.list_page(page(Some("/p/k3"), 4, Some(at))).await {
        Err(Error::Compacted { requested, .. }) => assert_eq!(requested, at),
        other => bail!("page at a compacted revision: {other:?}"),
    }
    Ok(())
}

/// Environment of the writer child: where its store is.
const CHILD_STORE: &str = "BOSUN_CONTRACT_CHILD_STORE";

/// Child role of the client-kill test: writes keys from 8 tasks and prints
/// `ack <key> <revision>` for each acknowledged one, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_child() -> Result<()> {
    let Ok(target) = std::env::var(CHILD_STORE) else { return Ok(()) };
    let store = match target.strip_prefix("etcd:") {
        Some(endpoints) => connect(endpoints.split(',').map(str::to_owned).collect()).await?,
        None => Store::open(std::path::Path::new(&target))?,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for w in 0..8 {
        let (s, tx) = (store.clone(), tx.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/w{w}/{i}");
                if let Ok(rev) = s.create(&key, v("x")).await {
                    let _ = tx.send(format!("ack {key} {rev}"));
                }
            }
        });
    }
    // The parent kills this process; stop by ourselves if it does not.
    let limit = tokio::time::Instant::now() + DEADLINE;
    while let Ok(Some(line)) = tokio::time::timeout_at(limit, rx.recv()).await {
        println!("{line}");
    }
    Ok(())
}

/// Kills a writer child (the store's client) with SIGKILL mid-writes; every
/// write it acknowledged is there afterwards.
async fn acknowledged_writes_survive_killing_the_client(f: Fixture) -> Result<()> {
    let target = match (&f.etcd, f.kind) {
        (Some(cluster), _) => format!("etcd:{}", cluster.endpoints().join(",")),
        (None, Kind::File) => {
            f.store.close().await;
            f.path.display().to_string()
        }
        // Memory dies with its process: nothing to check.
        (None, _) => return Ok(()),
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_STORE, &target)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let kill_after = 300;
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let Some(rest) = line.strip_prefix("ack ") else { continue };
            let (key, rev) = rest.split_once(' ').context("ack line")?;
            acked.push((key.to_owned(), rev.parse::<Revision>()?));
            if acked.len() == kill_after {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
            }
        }
        child.wait()?;
        anyhow::Ok(acked)
    })
    .await??;
    ensure!(acked.len() >= kill_after, "the child acknowledged only {} writes", acked.len());
    let store = match &f.etcd {
        Some(cluster) => connect(cluster.endpoints()).await?,
        None => Store::open(&f.path)?,
    };
    let (kvs, _) = store.list("/crash/").await?;
    let live: BTreeSet<(String, Revision)> = kvs.into_iter().map(|kv| (kv.key, kv.mod_revision)).collect();
    for ack in &acked {
        ensure!(live.contains(ack), "acknowledged write {ack:?} is missing");
    }
    println!("{:?}: {} acknowledged writes all there ({} stored)", f.kind, acked.len(), live.len());
    store.close().await;
    Ok(())
}

/// A member of a three-member etcd is killed with SIGKILL mid-writes: the
/// store keeps writing through the others, every acknowledged write is
/// there, and the member, restarted, serves them all (linearizably).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd3_acknowledged_writes_survive_killing_a_member() -> Result<()> {
    let started = Instant::now();
    let mut cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(3)).await??;
    let store = connect(cluster.endpoints()).await?;
    let (tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, tx, stop) = (store.clone(), tx.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut failed = 0u32;
            for i in 0.. {
                if stop.is_cancelled() {
                    break;
                }
                let key = format!("/m/w{w}/{i}");
                match s.create(&key, v("x")).await {
                    Ok(rev) => drop(tx.send((key, rev))),
                    // Unacknowledged (e.g. its member just died): not promised.
                    Err(_) => failed += 1,
                }
            }
            failed
        }));
    }
    drop(tx);
    let mut acked = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while acked.len() < 200 {
        acked.push(tokio::time::timeout_at(deadline, acks.recv()).await?.context("writers ended")?);
    }
    tokio::task::block_in_place(|| cluster.kill(0))?;
    let at_kill = acked.len();
    while acked.len() < at_kill + 300 {
        let ack = tokio::time::timeout_at(deadline, acks.recv()).await.context("no writes after the kill")?;
        acked.push(ack.context("writers ended")?);
    }
    stop.cancel();
    let mut failed = 0;
    for writer in writers {
        failed += writer.await?;
    }
    while let Some(ack) = acks.recv().await {
        acked.push(ack);
    }
    let check = |kvs: Vec<bosun_control::store::KeyValue>| -> Result<()> {
        let live: BTreeSet<(String, Revision)> = kvs.into_iter().map(|kv| (kv.key, kv.mod_revision)).collect();
        for ack in &acked {
            ensure!(live.contains(ack), "acknowledged write {ack:?} is missing");
        }
        Ok(())
    };
    check(store.list("/m/").await?.0)?;
    // The killed member comes back and catches up.
    tokio::task::block_in_place(|| {
        cluster.spawn(0)?;
        cluster.wait_healthy(DEADLINE)
    })?;
    let member0 = connect(cluster.endpoints()[..1].to_vec()).await?;
    check(member0.list("/m/").await?.0)?;
    println!(
        "etcd3 member kill: {} acknowledged ({} after the kill), {failed} failed, all there; {:?}",
        acked.len(),
        acked.len() - at_kill,
        started.elapsed()
    );
    Ok(())
}

/// The etcd backend with nothing listening: a clear connect error, fast.
#[tokio::test]
async fn etcd_unreachable_is_a_clear_error() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut options = EtcdOptions::new(vec![format!("http://127.0.0.1:{port}")]);
    options.request_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = Store::connect_etcd(options, Options::default()).await.err().context("connected to nothing")?;
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    Ok(())
}

/// A value above what one etcd request takes is refused before it is sent.
#[tokio::test]
async fn etcd_refuses_values_above_its_request_limit() -> Result<()> {
    let fixture = Fixture::open(Kind::Etcd1).await?;
    let big = vec![b'x'; 3 * 512 * 1024];
    assert!(matches!(fixture.store.create("/big", big).await, Err(Error::ValueTooLarge { .. })));
    let fits = vec![b'x'; 1024 * 1024];
    fixture.store.create("/fits", fits).await?;
    Ok(())
}

/// etcd down: calls fail fast with an "unavailable" error (503 in the
/// apiserver) and open watches end (the client re-watches); etcd back on its
/// data dir: the same handle works again and nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_is_unavailable_then_recovers() -> Result<()> {
    let mut cluster = tokio::task::spawn_blocking(|| EtcdCluster::start(1)).await??;
    let mut options = EtcdOptions::new(cluster.endpoints());
    options.request_timeout = Duration::from_secs(2);
    let store = Store::connect_etcd(options, Options::default()).await?;
    let rev = store.create("/o/before", v("x")).await?;
    let mut rx = store.watch("/o/", rev).await?;
    tokio::task::block_in_place(|| cluster.kill(0))?;
    let started = Instant::now();
    let err = store.create("/o/during", v("x")).await.err().context("a write with etcd down succeeded")?;
    let refused_in = started.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(refused_in < Duration::from_secs(10), "failed after {refused_in:?}");
    let ended = tokio::time::timeout(DEADLINE, rx.recv()).await.context("the watch did not end")?;
    assert!(ended.is_none(), "no event was written: {ended:?}");
    tokio::task::block_in_place(|| {
        cluster.spawn(0)?;
        cluster.wait_healthy(DEADLINE)
    })?;
    // The same handle reconnects (poll: the client redials with backoff).
    let deadline = Instant::now() + DEADLINE;
    let after = loop {
        match store.create("/o/after", v("x")).await {
            Ok(rev) => break rev,
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e.into()),
        }
    };
    assert_eq!(after, rev + 1, "the write refused while etcd was down took no revision");
    let (kvs, _) = store.list("/o/").await?;
    let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/o/after", "/o/before"]);
    println!("etcd outage: write refused in {refused_in:?}; written again {:?} after the kill", started.elapsed());
    Ok(())
}

/// Keys another etcd client wrote that are not UTF-8 are skipped by a list,
/// even when they fill whole pages (a list reads 256 keys a page): the list
/// ends, with each valid key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_list_skips_keys_that_are_not_utf8() -> Result<()> {
    let fixture = Fixture::open(Kind::Etcd1).await?;
    let cluster = fixture.etcd.as_ref().context("etcd")?;
    let mut raw = etcd_client::Client::connect(cluster.endpoints(), None).await?;
    for i in 0..3 {
        fixture.store.create(&format!("/u/a{i}"), v("x")).await?;
    }
    // 600 keys "/u/b\xff<i>": more than two pages of nothing a store key can be.
    let keys: Vec<Vec<u8>> =
        (0..600).map(|i| [b"/u/b\xff".as_slice(), format!("{i:03}").as_bytes()].concat()).collect();
    for batch in keys.chunks(100) {
        let puts: Vec<etcd_client::TxnOp> =
            batch.iter().map(|k| etcd_client::TxnOp::put(k.clone(), "x", None)).collect();
        raw.txn(etcd_client::Txn::new().and_then(puts)).await?;
    }
    for i in 0..3 {
        fixture.store.create(&format!("/u/c{i}"), v("x")).await?;
    }
    let (kvs, _) =
        tokio::time::timeout(DEADLINE, fixture.store.list("/u/")).await.context("the list did not end")??;
    let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/u/a0", "/u/a1", "/u/a2", "/u/c0", "/u/c1", "/u/c2"]);
    Ok(())
}
