//! Store micro-benchmark (plain `main`, no harness):
//! `cargo bench -p bosun-control --bench store`.
//!
//! Prints ops/s for sequential and concurrent creates on a file database
//! (WAL, `synchronous=FULL`), list latency, get latency while writers keep
//! the store busy, and watch fan-out latency (from the start of a write to its
//! delivery to each of many watchers). First it
//! measures plain single-row SQLite transactions with the same pragmas in the
//! same directory, since fsync speed varies a lot between disks and with load.
//! `BOSUN_BENCH_DIR` picks the directory (default: a temp dir).
//!
//! Then the same numbers on the etcd backend: a one-member etcd on loopback
//! (Debian's `/usr/bin/etcd`, data in a temp dir), through the same `Store` API.

use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_control::store::{EtcdOptions, Options, Store};
use bosun_testing::etcd::EtcdCluster;

const SEQUENTIAL: usize = 2_000;
const CONCURRENT_TASKS: usize = 64;
const CONCURRENT_PER_TASK: usize = 100;
const LIST_KEYS: usize = 1_000;
const WATCHERS: usize = 100;
const FANOUT_WRITES: usize = 500;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = match std::env::var_os("BOSUN_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let baseline = dir.path().join("baseline.db");
    let start = Instant::now();
    raw_sqlite(&baseline, SEQUENTIAL)?;
    report_rate("baseline: raw rusqlite single-row tx", SEQUENTIAL, start.elapsed());

    println!("== sqlite (file, WAL, synchronous=FULL)");
    let store = Store::open(&dir.path().join("bench.db"))?;
    exercise(&store).await?;
    println!("== etcd (one member on loopback)");
    let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(1)).await??;
    let store = Store::connect_etcd(EtcdOptions::new(etcd.endpoints()), Options::default()).await?;
    exercise(&store).await?;
    Ok(())
}

/// The numbers for one store.
async fn exercise(store: &Store) -> anyhow::Result<()> {
    let start = Instant::now();
    for i in 0..SEQUENTIAL {
        store.create(&format!("/seq/{i:06}"), vec![b'x'; 512]).await?;
    }
    report_rate("sequential creates (1 in flight)", SEQUENTIAL, start.elapsed());

    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..CONCURRENT_PER_TASK {
                    store.create(&format!("/conc/{t:03}/{i:06}"), vec![b'x'; 512]).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let label = format!("concurrent creates ({CONCURRENT_TASKS} in flight)");
    report_rate(&label, CONCURRENT_TASKS * CONCURRENT_PER_TASK, start.elapsed());

    for i in 0..LIST_KEYS {
        store.create(&format!("/list/{i:06}"), vec![b'x'; 2048]).await?;
    }
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        let (kvs, _) = store.list("/list/").await?;
        anyhow::ensure!(kvs.len() == LIST_KEYS, "list returned {}", kvs.len());
    }
    let per = start.elapsed() / rounds;
    println!("list of {LIST_KEYS} keys x 2 KiB: {:.2} ms", per.as_secs_f64() * 1e3);

    reads_under_write_load(store).await?;
    fanout(store).await?;
    store.close().await;
    Ok(())
}

/// Latency of `get` while `CONCURRENT_TASKS` writers keep the store busy
/// (reads are served between group commits, so they wait for one commit).
async fn reads_under_write_load(store: &Store) -> anyhow::Result<()> {
    let token = tokio_util::sync::CancellationToken::new();
    let writers: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|t| {
            let (store, token) = (store.clone(), token.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !token.is_cancelled() {
                    store.create(&format!("/load/{t:03}/{i:06}"), vec![b'x'; 512]).await?;
                    i += 1;
                }
                anyhow::Ok(i)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut delays = Vec::new();
    for i in 0..500 {
        let start = Instant::now();
        store.get(&format!("/seq/{i:06}")).await?.context("seeded key")?;
        delays.push(start.elapsed());
        // Spread the samples over many commits.
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    token.cancel();
    let mut writes = 0;
    for writer in writers {
        writes += writer.await??;
    }
    delays.sort_unstable();
    let pct = |p: usize| delays[(delays.len() - 1) * p / 100].as_secs_f64() * 1e3;
    println!(
        "get while {CONCURRENT_TASKS} writers run: p50 {:.2} ms, p99 {:.2} ms ({writes} writes meanwhile)",
        pct(50),
        pct(99)
    );
    Ok(())
}

/// `WATCHERS` watchers on one prefix; `FANOUT_WRITES` sequential writes whose
/// value is the write's start time; each watcher records its delivery delay.
async fn fanout(store: &Store) -> anyhow::Result<()> {
    let opts = Options::default();
    let base = Instant::now();
    let mut receivers = Vec::new();
    for _ in 0..WATCHERS {
        receivers.push(store.watch("/fan/", store.current_revision()).await?);
    }
    let watchers: Vec<_> = receivers
        .into_iter()
        .map(|mut rx| {
            tokio::spawn(async move {
                let mut delays = Vec::with_capacity(FANOUT_WRITES);
                while delays.len() < FANOUT_WRITES {
                    let event = rx.recv().await.context("watch closed early")?;
                    let bytes: [u8; 8] = event.kv.value.as_slice().try_into()?;
                    let sent = Duration::from_nanos(u64::from_le_bytes(bytes));
                    delays.push(base.elapsed().saturating_sub(sent));
                }
                anyhow::Ok(delays)
            })
        })
        .collect();
    let start = Instant::now();
    for i in 0..FANOUT_WRITES {
        let sent = u64::try_from(base.elapsed().as_nanos())?;
        store.create(&format!("/fan/{i:06}"), sent.to_le_bytes().to_vec()).await?;
    }
    let writes = start.elapsed();
    let mut all = Vec::new();
    for watcher in watchers {
        all.extend(watcher.await??);
    }
    all.sort_unstable();
    let pct = |p: usize| all[(all.len() - 1) * p / 100].as_secs_f64() * 1e3;
    println!(
        "watch fan-out, {WATCHERS} watchers (deadline {:?}), {FANOUT_WRITES} writes: write-start to delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; writes {:.0}/s",
        opts.watch_deadline,
        pct(50),
        pct(99),
        pct(100),
        FANOUT_WRITES as f64 / writes.as_secs_f64()
    );
    Ok(())
}

/// `n` single-row transactions straight on rusqlite (WAL, `synchronous=FULL`).
fn raw_sqlite(path: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, v BLOB)")?;
    for i in 0..n {
        conn.execute_batch("BEGIN")?;
        conn.execute(
            "INSERT INTO t (key, v) VALUES (?1, ?2)",
            rusqlite::params![format!("/raw/{i}"), vec![b'x'; 512]],
        )?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(())
}

fn report_rate(label: &str, ops: usize, elapsed: Duration) {
    println!("{label}: {ops} ops in {:.2} s = {:.0} ops/s", elapsed.as_secs_f64(), ops as f64 / elapsed.as_secs_f64());
}
