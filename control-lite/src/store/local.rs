//! The SQLite backend's handle: commands to the worker thread, reads on
//! the reader pool (see the revision model in the parent module).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::plan::{WriteKind, WriteRequest};
use super::worker::{self, Command, Query, Reply};
use super::{
    counts, readers, sqlite, Error, KeyValue, ListPage, ListRange, Options, Result, Revision, Revisions, WatchReceiver,
};

/// The SQLite backend: cheap to clone, all clones share one worker thread.
#[derive(Clone)]
pub(super) struct Local {
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

impl Local {
    /// Opens (creating if needed) the database at `path`. Only one `Store`
    /// (in any process) may have a database open at a time; opening waits up
    /// to `lock_timeout` for it, then fails with `Lock`. Blocking: call it at
    /// startup or from `spawn_blocking`.
    /// Like [`Store::open`], with explicit [`Options`].
    pub(super) fn open_with(path: &Path, options: Options) -> Result<Local> {
        let db = sqlite::Db::open(path, options.lock_timeout)?;
        let readers = Arc::new(readers::Readers::new(path.to_owned()));
        Local::start(db, options, Some(readers))
    }

    /// A store in memory, gone when the last handle drops (for tests).
    /// Like [`Store::open_in_memory`], with explicit [`Options`].
    pub(super) fn open_in_memory_with(options: Options) -> Result<Local> {
        let db = sqlite::Db::open_in_memory()?;
        Local::start(db, options, None)
    }

    pub(super) fn start(db: sqlite::Db, options: Options, readers: Option<Arc<readers::Readers>>) -> Result<Local> {
        let state = Arc::new(Revisions::default());
        state.set_current(db.current_revision());
        state.set_compacted(db.compacted_revision());
        let watch_deadline = options.watch_deadline;
        let counts = counts::ObjectCounts::default();
        counts.reset(db.live_keys()?.iter().map(String::as_str));
        let commands = worker::spawn(db, options, state.clone(), counts.clone())?;
        Ok(Local { shared: Arc::new(Shared { commands, watch_deadline, state, readers, counts }) })
    }

    /// Creates `key`; `AlreadyExists` if it is live. Returns its revision.
    pub(super) async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let req = WriteRequest { key: key.to_owned(), kind: WriteKind::Create { value } };
        self.call(|reply| Command::Write(req, Reply::Revision(reply))).await
    }

    /// Replaces the value of live `key`; `NotFound` if it is not live,
    /// `Conflict` if `expected_mod_revision` is set and is not its mod revision.
    pub(super) async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: Option<Revision>,
    ) -> Result<Revision> {
        let req =
            WriteRequest { key: key.to_owned(), kind: WriteKind::Update { value, expected: expected_mod_revision } };
        self.call(|reply| Command::Write(req, Reply::Revision(reply))).await
    }

    /// Deletes live `key` (same preconditions as [`Store::update`]). Returns
    /// the delete's revision and the key's last value as it was before the
    /// delete (its `mod_revision` is that of its last write).
    pub(super) async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<(Revision, KeyValue)> {
        let req = WriteRequest { key: key.to_owned(), kind: WriteKind::Delete { expected: expected_mod_revision } };
        self.call(|reply| Command::Write(req, Reply::Deleted(reply))).await
    }

    /// The live value of `key`, if any.
    pub(super) async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        match &self.shared.readers {
            Some(readers) => readers.get(key).await,
            None => self.call(|reply| Command::Query(Query::Get { key, reply })).await,
        }
    }

    /// Live keys starting with `prefix`, sorted by key, and the store revision
    /// they were read at (the list's resourceVersion).
    pub(super) async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let prefix = prefix.to_owned();
        match &self.shared.readers {
            Some(readers) => readers.list(prefix).await,
            None => self.call(|reply| Command::Query(Query::List { prefix, reply })).await,
        }
    }

    /// One page of `range` at its revision.
    pub(super) async fn list_page(&self, range: ListRange) -> Result<ListPage> {
        match &self.shared.readers {
            Some(readers) => readers.list_page(range).await,
            None => self.call(|reply| Command::Query(Query::ListPage { range, reply })).await,
        }
    }

    /// Whether the worker's command queue is full now (a caller would wait
    /// for room): lets the apiserver refuse new writes instead of queuing them.
    pub(super) fn queue_is_full(&self) -> bool {
        self.shared.commands.capacity() == 0
    }

    /// Live objects per resource, kept current by the worker.
    pub(super) fn object_counts(&self) -> counts::ObjectCounts {
        self.shared.counts.clone()
    }

    /// The revision of the last committed write (0 for an empty store).
    pub(super) fn current_revision(&self) -> Revision {
        self.shared.state.current.load(Ordering::Acquire)
    }

    /// The revision history is compacted up to (0 if never compacted).
    pub(super) fn compacted_revision(&self) -> Revision {
        self.shared.state.compacted.load(Ordering::Acquire)
    }

    /// Every event with revision `> after` on keys starting with `prefix`, in
    /// revision order: first the history, then live events. `Compacted` if
    /// `after` is below the compacted revision. The watch ends when the
    /// watcher has had events pending for `watch_deadline` without taking one,
    /// or the store closes; the client then re-lists.
    pub(super) async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        self.watch_with_deadline(prefix, after, self.shared.watch_deadline).await
    }

    /// Like [`Store::watch`] with this watcher's own deadline.
    pub(super) async fn watch_with_deadline(
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
    pub(super) async fn compact(&self, keep_revisions_after: Revision) -> Result<()> {
        self.call(|reply| Command::Query(Query::Compact { revision: keep_revisions_after, reply })).await
    }

    /// Finishes the queued commands, closes the database and stops the worker.
    /// Every handle's later calls fail with `Closed`; watch channels close.
    pub(super) async fn close(&self) {
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
