//! The apiserver's revisioned, crash-safe key-value store (the k3s/kine
//! model): an append-only log of writes in one SQLite database (WAL,
//! `synchronous=FULL`), written by one dedicated thread.
//!
//! Owns: the on-disk log, the global revision counter, watch fan-out and
//! compaction. Must not: know about Kubernetes objects; values are opaque
//! bytes and keys opaque strings (the apiserver uses `/registry/<res>/<ns>/<name>`).
//!
//! # Revision model (design note)
//!
//! * **One global revision.** Every successful write (create, update,
//!   delete) appends one row to the `log` table and gets the next revision,
//!   the row's `INTEGER PRIMARY KEY`. Revisions are strictly increasing across
//!   all keys, so a single number orders every change in the store. That
//!   number is the Kubernetes `resourceVersion`: of an object (its key's
//!   `mod_revision`), of a list (the store revision when the list was read)
//!   and of a watch bookmark. Clients can resume a watch from any revision
//!   they saw, on any prefix, without per-resource counters. `AUTOINCREMENT`
//!   keeps the high-water mark in `sqlite_sequence`, so the revision never
//!   goes backwards, not after a restart and not after compaction deleted
//!   the newest rows.
//! * **Current values.** A small `live` table maps each live key to the
//!   revision of its latest row; a delete appends a tombstone row (carrying
//!   the last value) and removes the key from `live`. Get and list read
//!   `live` joined to `log`.
//! * **Writes and durability.** All writes run on one thread that owns the
//!   only writable connection. Writes queued while the previous commit was
//!   syncing are applied together in one transaction (group commit); each
//!   caller's future resolves only after that transaction's `COMMIT` returned,
//!   and with WAL + `synchronous=FULL` that means the write is on disk: an
//!   acknowledged write survives `kill -9` and power loss. One process at a
//!   time owns a database (an `flock` on `<db>.lock`), since the revision
//!   counter lives in the writer's memory.
//! * **Reads.** For a file database, `get` and `list` run on read-only
//!   connections on tokio's blocking pool: a WAL reader sees every commit
//!   that finished before it started (so a read after an acknowledged write
//!   sees it) and never waits for the writer's fsync. A list reads its keys
//!   and the revision in one read transaction. In memory, the worker serves
//!   reads between commits.
//! * **Watch replay without gaps or duplicates.** Registering a watch is a
//!   command on the writer thread, handled between commits: it reads every row
//!   with `revision > after` for the prefix from the log and registers the
//!   watcher in the same step. Later commits publish their events to
//!   registered watchers after they commit, so the replay ends exactly where
//!   the live stream starts. Events arrive in revision order. Each watcher has
//!   its own queue and a deadline: a watcher that has had events pending
//!   without taking one for its deadline is dropped at the next commit (its
//!   queue closes after the queued events) and must re-list, as with the
//!   Kubernetes "too old resource version" error. A watcher that keeps reading
//!   is not dropped (only a backlog above `watch_max_backlog`, a memory
//!   backstop, drops it early). Writers never wait for watchers.
//! * **Backpressure.** The command queue to the worker is bounded
//!   (`queue_capacity`): when it is full, callers wait for room instead of
//!   queuing unbounded work.
//! * **Compaction.** `compact(c)` deletes the history at or below `c` that
//!   is superseded: every row at or below `c` that has a newer row at or
//!   below `c` for the same key, and every tombstone at or below `c`. It keeps
//!   the latest row at or below `c` of each key that was live at `c`, which is
//!   both the value of still-live keys and the `prev` of later events. A watch
//!   from `after < c` then fails with [`Error::Compacted`] since events in
//!   `(after, c]` may be gone. [`spawn_compactor`] keeps the last N revisions
//!   and everything younger than a time window, up to a hard cap
//!   ([`Retention`]).

mod compactor;
pub mod counts;
mod plan;
mod readers;
mod sqlite;
mod watch;
mod worker;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod sqlite_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use compactor::{compaction_target, spawn_compactor, Retention, RevisionClock};
use plan::{WriteKind, WriteRequest};
pub use watch::WatchReceiver;
use worker::{Command, Query, Reply};

/// One global, strictly increasing revision: the Kubernetes `resourceVersion`.
pub type Revision = i64;

/// A key with its value and the revisions that created and last modified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// What a write did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key, as delivered to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The new value; for a delete, the last value with `mod_revision` set to
    /// the delete's revision.
    pub kv: KeyValue,
    /// The value before this change (`None` for a create).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the write that produced this event.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Errors of the store.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("conflict on key {key:?}: expected mod revision {expected}, found {actual}")]
    Conflict { key: String, expected: Revision, actual: Revision },
    #[error("revision {requested} is compacted (history kept after revision {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    #[error("sqlite {op} (key {key:?})")]
    Sqlite {
        op: &'static str,
        key: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("open store database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("start store worker thread")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("lock store database {path} for this process")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store read task failed")]
    ReadTask {
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("store is closed")]
    Closed,
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tuning knobs; [`Options::default`] is what production uses.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a watcher may have events pending without taking one before
    /// it is dropped ([`Store::watch`]; [`Store::watch_with_deadline`] overrides it).
    pub watch_deadline: Duration,
    /// Live events queued for one watcher above which it is dropped even
    /// before its deadline (a memory backstop).
    pub watch_max_backlog: usize,
    /// Commands (writes, reads of a memory store, watch registrations) queued
    /// for the worker before callers wait for room.
    pub queue_capacity: usize,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// How long opening waits for another process holding the database.
    pub lock_timeout: Duration,
    /// Where each group commit's latency is observed (`None`: nowhere).
    pub commit_duration: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            watch_deadline: Duration::from_secs(60),
            watch_max_backlog: 100_000,
            queue_capacity: 4096,
            max_batch: 512,
            lock_timeout: Duration::from_secs(5),
            commit_duration: None,
        }
    }
}

/// Handle to the store; cheap to clone, all clones share one worker thread.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// State shared by the handles and the worker thread.
struct Shared {
    commands: mpsc::Sender<Command>,
    watch_deadline: Duration,
    state: Arc<Revisions>,
    /// Read-only connections of a file database (`None` in memory).
    readers: Option<Arc<readers::Readers>>,
    /// Live objects per resource.
    counts: counts::ObjectCounts,
}

/// Revisions published by the worker after each commit, readable without a
/// round trip.
#[derive(Debug, Default)]
pub(crate) struct Revisions {
    current: AtomicI64,
    compacted: AtomicI64,
}

impl Revisions {
    pub(crate) fn set_current(&self, rev: Revision) {
        self.current.store(rev, Ordering::Release);
    }
    pub(crate) fn set_compacted(&self, rev: Revision) {
        self.compacted.store(rev, Ordering::Release);
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`. Only one `Store`
    /// (in any process) may have a database open at a time; opening waits up
    /// to `lock_timeout` for it, then fails with `Lock`. Blocking: call it at
    /// startup or from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, Options::default())
    }

    /// Like [`Store::open`], with explicit [`Options`].
    pub fn open_with(path: &Path, options: Options) -> Result<Store> {
        let db = sqlite::Db::open(path, options.lock_timeout)?;
        let readers = Arc::new(readers::Readers::new(path.to_owned()));
        Store::start(db, options, Some(readers))
    }

    /// A store in memory, gone when the last handle drops (for tests).
    pub fn open_in_memory() -> Result<Store> {
        Store::open_in_memory_with(Options::default())
    }

    /// Like [`Store::open_in_memory`], with explicit [`Options`].
    pub fn open_in_memory_with(options: Options) -> Result<Store> {
        let db = sqlite::Db::open_in_memory()?;
        Store::start(db, options, None)
    }

    fn start(db: sqlite::Db, options: Options, readers: Option<Arc<readers::Readers>>) -> Result<Store> {
        let state = Arc::new(Revisions::default());
        state.set_current(db.current_revision());
        state.set_compacted(db.compacted_revision());
        let watch_deadline = options.watch_deadline;
        let counts = counts::ObjectCounts::default();
        counts.reset(db.live_keys()?.iter().map(String::as_str));
        let commands = worker::spawn(db, options, state.clone(), counts.clone())?;
        Ok(Store { shared: Arc::new(Shared { commands, watch_deadline, state, readers, counts }) })
    }

    /// Creates `key`; `AlreadyExists` if it is live. Returns its revision.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let req = WriteRequest { key: key.to_owned(), kind: WriteKind::Create { value } };
        self.call(|reply| Command::Write(req, Reply::Revision(reply))).await
    }

    /// Replaces the value of live `key`; `NotFound` if it is not live,
    /// `Conflict` if `expected_mod_revision` is set and is not its mod revision.
    pub async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        let req =
            WriteRequest { key: key.to_owned(), kind: WriteKind::Update { value, expected: expected_mod_revision } };
        self.call(|reply| Command::Write(req, Reply::Revision(reply))).await
    }

    /// Deletes live `key` (same preconditions as [`Store::update`]). Returns
    /// the delete's revision and the key's last value as it was before the
    /// delete (its `mod_revision` is that of its last write).
    pub async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let req = WriteRequest { key: key.to_owned(), kind: WriteKind::Delete { expected: expected_mod_revision } };
        self.call(|reply| Command::Write(req, Reply::Deleted(reply))).await
    }

    /// The live value of `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        match &self.shared.readers {
            Some(readers) => readers.get(key).await,
            None => self.call(|reply| Command::Query(Query::Get { key, reply })).await,
        }
    }

    /// Live keys starting with `prefix`, sorted by key, and the store revision
    /// they were read at (the list's resourceVersion).
    pub async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let prefix = prefix.to_owned();
        match &self.shared.readers {
            Some(readers) => readers.list(prefix).await,
            None => self.call(|reply| Command::Query(Query::List { prefix, reply })).await,
        }
    }

    /// Whether the worker's command queue is full now (a caller would wait
    /// for room): lets the apiserver refuse new writes instead of queuing them.
    pub fn queue_is_full(&self) -> bool {
        self.shared.commands.capacity() == 0
    }

    /// Live objects per resource, kept current by the worker.
    pub fn object_counts(&self) -> counts::ObjectCounts {
        self.shared.counts.clone()
    }

    /// The revision of the last committed write (0 for an empty store).
    pub fn current_revision(&self) -> Revision {
        self.shared.state.current.load(Ordering::Acquire)
    }

    /// The revision history is compacted up to (0 if never compacted).
    pub fn compacted_revision(&self) -> Revision {
        self.shared.state.compacted.load(Ordering::Acquire)
    }

    /// Every event with revision `> after` on keys starting with `prefix`, in
    /// revision order: first the history, then live events. `Compacted` if
    /// `after` is below the compacted revision. The watch ends when the
    /// watcher has had events pending for `watch_deadline` without taking one,
    /// or the store closes; the client then re-lists.
    pub async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        self.watch_with_deadline(prefix, after, self.shared.watch_deadline).await
    }

    /// Like [`Store::watch`] with this watcher's own deadline.
    pub async fn watch_with_deadline(
        &self,
        prefix: &str,
        after: Revision,
        deadline: Duration,
    ) -> Result<WatchReceiver> {
        let prefix = prefix.to_owned();
        self.call(|reply| Command::Query(Query::Watch { prefix, after, deadline, reply })).await
    }

    /// Drops superseded history at or below `keep_revisions_after` (clamped to
    /// the current revision). A no-op if already compacted that far.
    pub async fn compact(&self, keep_revisions_after: Revision) -> Result<()> {
        self.call(|reply| Command::Query(Query::Compact { revision: keep_revisions_after, reply })).await
    }

    /// Finishes the queued commands, closes the database and stops the worker.
    /// Every handle's later calls fail with `Closed`; watch channels close.
    pub async fn close(&self) {
        if let Some(readers) = &self.shared.readers {
            readers.close();
        }
        let (reply, done) = oneshot::channel();
        if self.shared.commands.send(Command::Close { reply }).await.is_ok() {
            // An error means the worker is already gone, which is the goal.
            let _ = done.await;
        }
    }

    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (reply, response) = oneshot::channel();
        // A full queue makes the caller wait here: backpressure, not unbounded work.
        self.shared.commands.send(command(reply)).await.map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("current_revision", &self.current_revision())
            .field("compacted_revision", &self.compacted_revision())
            .finish()
    }
}
