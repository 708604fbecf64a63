//! The apiserver's revisioned, crash-safe key-value store (the k3s/kine
//! model): an append-only log of writes in one SQLite database (WAL,
//! `synchronous=FULL`), written by one dedicated thread.
//!
//! [`Store`] is a facade over a closed set of backends with one contract:
//! SQLite (`local.rs` and the worker; the default, described below) and an
//! etcd v3 cluster ([`etcd`], `--datastore-endpoint`), where the revision is
//! etcd's revision and the same events, errors and preconditions hold
//! (`tests/store_contract.rs` runs one suite on both).
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
pub mod etcd;
mod local;
mod plan;
mod readers;
mod snapshot;
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
use std::time::Duration;

pub use compactor::{compaction_target, spawn_compactor, Retention, RevisionClock};
pub use etcd::EtcdOptions;
pub use watch::WatchReceiver;

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

/// A part of the keys under a prefix, at one revision: what a page of a
/// list (`limit`/`continue`) or a list at an exact `resourceVersion` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRange {
    /// Keys starting with it.
    pub prefix: String,
    /// The first key to read (inclusive); `None` or a key before `prefix`:
    /// from the start of the prefix.
    pub start: Option<String>,
    /// Most keys returned; `None`: all.
    pub limit: Option<usize>,
    /// The revision to read at; `None`: the current one. `Compacted` below
    /// the compacted revision, `FutureRevision` above the current one.
    pub revision: Option<Revision>,
}

impl ListRange {
    /// Every key under `prefix`, now.
    pub fn prefix(prefix: &str) -> ListRange {
        ListRange { prefix: prefix.to_owned(), start: None, limit: None, revision: None }
    }
}

/// One page of a [`ListRange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The keys, sorted, as they were at `revision`.
    pub kvs: Vec<KeyValue>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// How many keys of the range follow the page (0: it is the last page).
    pub remaining: i64,
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
    #[error("revision {requested} is newer than the store's revision {current}")]
    FutureRevision { requested: Revision, current: Revision },
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
    #[error("etcd {op} (key {key:?})")]
    Etcd {
        op: &'static str,
        key: String,
        #[source]
        source: Box<etcd_client::Error>,
    },
    #[error("etcd {op} (key {key:?}) got no answer within {after:?}")]
    EtcdTimeout { op: &'static str, key: String, after: Duration },
    #[error("connect to etcd at {endpoints}")]
    EtcdConnect {
        endpoints: String,
        #[source]
        source: Box<Error>,
    },
    #[error("value of key {key:?} is {size} bytes, above the {max} bytes etcd takes in one request")]
    ValueTooLarge { key: String, size: usize, max: usize },
}

impl Error {
    /// Whether the backend could not be reached (etcd down, no quorum, a
    /// timeout): the apiserver answers 503, the client may retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Etcd { .. } | Error::EtcdTimeout { .. } | Error::EtcdConnect { .. })
    }
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
    /// Raises the current revision to `rev` if it is newer (etcd headers
    /// arrive out of order from concurrent calls).
    pub(crate) fn raise_current(&self, rev: Revision) {
        self.current.fetch_max(rev, Ordering::AcqRel);
    }
    /// Raises the compacted revision to `rev` if it is newer.
    pub(crate) fn raise_compacted(&self, rev: Revision) {
        self.compacted.fetch_max(rev, Ordering::AcqRel);
    }
    pub(crate) fn current(&self) -> Revision {
        self.current.load(Ordering::Acquire)
    }
    pub(crate) fn compacted(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }
}

/// Handle to the store: cheap to clone; every clone talks to the same backend.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// Where the store keeps its data: a closed set of backends.
#[derive(Clone)]
enum Backend {
    /// One local SQLite database (or memory), written by one worker thread.
    Sqlite(local::Local),
    /// An etcd v3 cluster.
    Etcd(etcd::Etcd),
}

/// Dispatches `$call` to the backend, which has the same method.
macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($b) => $call,
            Backend::Etcd($b) => $call,
        }
    };
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
        Ok(Store { backend: Backend::Sqlite(local::Local::open_with(path, options)?) })
    }

    /// A store in memory, gone when the last handle drops (for tests).
    pub fn open_in_memory() -> Result<Store> {
        Store::open_in_memory_with(Options::default())
    }

    /// Like [`Store::open_in_memory`], with explicit [`Options`].
    pub fn open_in_memory_with(options: Options) -> Result<Store> {
        Ok(Store { backend: Backend::Sqlite(local::Local::open_in_memory_with(options)?) })
    }

    /// Connects to the etcd cluster at `etcd.endpoints` (see [`etcd`]); fails
    /// if no endpoint answers a read within `etcd.request_timeout`. Of
    /// `options`, the watch deadline and backlog apply.
    pub async fn connect_etcd(etcd: EtcdOptions, options: Options) -> Result<Store> {
        Ok(Store { backend: Backend::Etcd(etcd::Etcd::connect(etcd, options).await?) })
    }

    /// Which backend this is: `"sqlite"` or `"etcd"` (for logs).
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Etcd(_) => "etcd",
        }
    }

    /// Creates `key`; `AlreadyExists` if it is live. Returns its revision.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        dispatch!(self, b => b.create(key, value).await)
    }

    /// Replaces the value of live `key`; `NotFound` if it is not live,
    /// `Conflict` if `expected_mod_revision` is set and is not its mod revision.
    pub async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: Option<Revision>) -> Result<Revision> {
        dispatch!(self, b => b.update(key, value, expected_mod_revision).await)
    }

    /// Deletes live `key` (same preconditions as [`Store::update`]). Returns
    /// the delete's revision and the key's last value as it was before the
    /// delete (its `mod_revision` is that of its last write).
    pub async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<(Revision, KeyValue)> {
        dispatch!(self, b => b.delete(key, expected_mod_revision).await)
    }

    /// The live value of `key`, if any (a read after an acknowledged write sees it).
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        dispatch!(self, b => b.get(key).await)
    }

    /// Live keys starting with `prefix`, sorted by key, and the store revision
    /// they were read at (the list's resourceVersion).
    pub async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        dispatch!(self, b => b.list(prefix).await)
    }

    /// One page of keys under a prefix at one revision ([`ListRange`]); the
    /// pages of one list read at the first page's revision are consistent
    /// as long as that revision is not compacted.
    pub async fn list_page(&self, mut range: ListRange) -> Result<ListPage> {
        // etcd reads a limit of 0 as "no limit"; so does every backend.
        range.limit = range.limit.filter(|n| *n > 0);
        dispatch!(self, b => b.list_page(range).await)
    }

    /// Whether the worker's command queue is full now (a caller would wait
    /// for room): lets the apiserver refuse new writes instead of queuing
    /// them. Always `false` on etcd, which has no local queue.
    pub fn queue_is_full(&self) -> bool {
        dispatch!(self, b => b.queue_is_full())
    }

    /// Live objects per resource, kept current by the backend.
    pub fn object_counts(&self) -> counts::ObjectCounts {
        dispatch!(self, b => b.object_counts())
    }

    /// The revision of the last committed write this handle knows of (0 for
    /// an empty SQLite store; on etcd the newest header revision seen).
    pub fn current_revision(&self) -> Revision {
        dispatch!(self, b => b.current_revision())
    }

    /// The revision history is compacted up to (0 if never compacted; on
    /// etcd, as far as this process compacted or learnt).
    pub fn compacted_revision(&self) -> Revision {
        dispatch!(self, b => b.compacted_revision())
    }

    /// Every event with revision `> after` on keys starting with `prefix`, in
    /// revision order: first the history, then live events. `Compacted` if
    /// `after` is below the compacted revision. The watch ends when the
    /// watcher has had events pending for `watch_deadline` without taking one,
    /// or the store closes; the client then re-lists.
    pub async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        dispatch!(self, b => b.watch(prefix, after).await)
    }

    /// Like [`Store::watch`] with this watcher's own deadline.
    pub async fn watch_with_deadline(
        &self,
        prefix: &str,
        after: Revision,
        deadline: Duration,
    ) -> Result<WatchReceiver> {
        dispatch!(self, b => b.watch_with_deadline(prefix, after, deadline).await)
    }

    /// Drops superseded history at or below `keep_revisions_after` (clamped to
    /// the current revision). A no-op if already compacted that far.
    pub async fn compact(&self, keep_revisions_after: Revision) -> Result<()> {
        dispatch!(self, b => b.compact(keep_revisions_after).await)
    }

    /// Finishes the queued commands, closes the database (or the etcd
    /// client's watches) and stops the worker. Every handle's later calls
    /// fail with `Closed`; watch channels close.
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
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
