//! Crash test: a child process (this test binary, re-executed in the child
//! role) writes keys concurrently and prints each acknowledged revision; the
//! parent kills it with SIGKILL mid-stream, reopens the database and checks
//! that every acknowledged write is there.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Store;

/// Set in the child's environment to the database path.
const CHILD_ENV: &str = "BOSUN_STORE_CRASH_CHILD_DB";
const TEST_NAME: &str = "store::crash_tests::acknowledged_writes_survive_kill_9";
/// Concurrent writers in the child, so kills land inside group commits.
const WRITERS: usize = 8;
/// The child stops by itself after this long, in case the parent is gone.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn acknowledged_writes_survive_kill_9() -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        return run_child(Path::new(&path));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn child")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let kill_after: usize = rand::random_range(200..1200);

    let mut acked: Vec<(String, i64)> = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Some(ack) = line.strip_prefix("ACK ") else {
            continue;
        };
        let (key, rev) = ack.split_once(' ').context("ack line")?;
        acked.push((key.to_owned(), rev.parse()?));
        if !killed && acked.len() >= kill_after {
            child.kill().context("kill -9 child")?;
            killed = true;
        }
        // Lines read after the kill were printed before it: still acknowledged.
    }
    let status = child.wait()?;
    assert_eq!(status.signal(), Some(9), "child was killed mid-stream, not finished: {status:?}");
    assert!(acked.len() >= kill_after);

    let store = Store::open(&path)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let max = acked.iter().map(|(_, rev)| *rev).max().unwrap_or(0);
        assert!(store.current_revision() >= max);
        for (key, rev) in &acked {
            let kv = store.get(key).await?.with_context(|| format!("acknowledged {key} lost"))?;
            assert_eq!(kv.mod_revision, *rev, "{key}");
        }
        let next = store.create("/after-crash", Vec::new()).await?;
        assert!(next > max, "revision went backwards: {next} <= {max}");
        store.close().await;
        anyhow::Ok(())
    })?;
    eprintln!("crash test: {} acknowledged writes survived kill -9", acked.len());
    Ok(())
}

/// The child role: writes until killed (or `CHILD_LIMIT`), printing
/// `ACK <key> <revision>` after each acknowledged create.
fn run_child(path: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let store = Store::open(path)?;
        let start = Instant::now();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while start.elapsed() < CHILD_LIMIT {
                        let key = format!("/crash/{w}/{i}");
                        let rev = store.create(&key, vec![b'x'; 256]).await?;
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {key} {rev}")?;
                        out.flush()?;
                        i += 1;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for writer in writers {
            writer.await??;
        }
        anyhow::Ok(())
    })
}
