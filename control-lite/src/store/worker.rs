//! The store's worker thread: the single owner of the database connection
//! and of the watch hub, serving commands from the async handles.
//!
//! Loop: wait for a command, then take whatever else is queued (up to
//! `max_batch` writes). Reads, watch registrations and compactions are served
//! at once from committed state; the writes are applied in one transaction
//! (group commit) and acknowledged only after `COMMIT` returned, then their
//! events go to the watchers. A read served before a queued write commits is
//! linearizable: that write has not been acknowledged yet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::counts::ObjectCounts;
use super::plan::{plan_write, WriteRequest};
use super::sqlite::Db;
use super::watch::{Hub, WatchReceiver};
use super::{Error, Event, KeyValue, ListPage, ListRange, Options, Result, Revision, Revisions};

/// Where a write's outcome goes.
pub(crate) enum Reply {
    Revision(oneshot::Sender<Result<Revision>>),
    Deleted(oneshot::Sender<Result<(Revision, KeyValue)>>),
}

/// A request from a [`Store`](super::Store) handle.
pub(crate) enum Command {
    Write(WriteRequest, Reply),
    Query(Query),
    Close { reply: oneshot::Sender<()> },
}

/// A command served at once from committed state.
pub(crate) enum Query {
    Get { key: String, reply: oneshot::Sender<Result<Option<KeyValue>>> },
    List { prefix: String, reply: oneshot::Sender<Result<(Vec<KeyValue>, Revision)>> },
    ListPage { range: ListRange, reply: oneshot::Sender<Result<ListPage>> },
    Watch { prefix: String, after: Revision, deadline: Duration, reply: oneshot::Sender<Result<WatchReceiver>> },
    Compact { revision: Revision, reply: oneshot::Sender<Result<()>> },
}

/// Starts the worker thread; it runs until `Close` or until every sender
/// is dropped.
pub(crate) fn spawn(
    db: Db,
    options: Options,
    state: Arc<Revisions>,
    counts: ObjectCounts,
) -> Result<mpsc::Sender<Command>> {
    let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
    let worker = Worker {
        db,
        hub: Hub::new(options.watch_max_backlog),
        state,
        counts,
        max_batch: options.max_batch.max(1),
        commit_duration: options.commit_duration,
    };
    std::thread::Builder::new()
        .name("bosun-store".to_owned())
        .spawn(move || worker.run(rx))
        .map_err(|source| Error::Spawn { source })?;
    Ok(tx)
}

struct Worker {
    db: Db,
    hub: Hub,
    state: Arc<Revisions>,
    counts: ObjectCounts,
    max_batch: usize,
    commit_duration: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch: Vec<(WriteRequest, Reply)> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut close = None;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Write(req, reply) => batch.push((req, reply)),
                    Command::Close { reply } => {
                        close = Some(reply);
                        break;
                    }
                    Command::Query(query) => self.serve(query),
                }
                if batch.len() < self.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit_batch(std::mem::take(&mut batch));
            }
            if let Some(reply) = close {
                rx.close();
                self.drain_closed(&mut rx);
                drop(self);
                // The caller may have stopped waiting; nothing to do then.
                let _ = reply.send(());
                return;
            }
        }
    }

    /// After `Close`, fails everything still queued.
    fn drain_closed(&self, rx: &mut mpsc::Receiver<Command>) {
        while let Ok(command) = rx.try_recv() {
            // Dropping a reply sender makes the waiting call return `Closed`.
            if let Command::Close { reply } = command {
                let _ = reply.send(());
            }
        }
    }

    /// Serves a query from committed state.
    fn serve(&mut self, query: Query) {
        // A failed `send` means the caller went away; there is nobody to tell.
        match query {
            Query::Get { key, reply } => {
                let _ = reply.send(self.db.get(&key));
            }
            Query::List { prefix, reply } => {
                let result = self.db.list(&prefix).map(|kvs| (kvs, self.db.current_revision()));
                let _ = reply.send(result);
            }
            Query::ListPage { range, reply } => {
                let _ = reply.send(self.db.list_page(&range));
            }
            Query::Watch { prefix, after, deadline, reply } => {
                let _ = reply.send(self.register_watch(prefix, after, deadline));
            }
            Query::Compact { revision, reply } => {
                let target = revision.min(self.db.current_revision());
                let result = self.db.compact(target);
                self.state.set_compacted(self.db.compacted_revision());
                let _ = reply.send(result);
            }
        }
    }

    fn register_watch(&mut self, prefix: String, after: Revision, deadline: Duration) -> Result<WatchReceiver> {
        let compacted = self.db.compacted_revision();
        if after < compacted {
            return Err(Error::Compacted { requested: after, compacted });
        }
        let history = self.db.history(&prefix, after)?;
        Ok(self.hub.register(prefix, after, deadline, history, Instant::now()))
    }

    /// Applies `batch` in one transaction, acknowledges it after the commit
    /// and publishes its events. A write that fails its precondition is
    /// answered and skipped; an SQLite error fails the whole batch, whose
    /// other writes are retried in a new transaction.
    fn commit_batch(&mut self, batch: Vec<(WriteRequest, Reply)>) {
        let started = Instant::now();
        self.commit_and_ack(batch);
        if let Some(histogram) = &self.commit_duration {
            histogram.observe(started.elapsed().as_secs_f64());
        }
    }

    fn commit_and_ack(&mut self, mut batch: Vec<(WriteRequest, Reply)>) {
        while !batch.is_empty() {
            match self.try_batch(&batch) {
                Ok(outcomes) => {
                    let events: Vec<Event> = outcomes.iter().filter_map(|o| o.as_ref().ok().cloned()).collect();
                    self.state.set_current(self.db.current_revision());
                    self.hub.publish(&events, Instant::now());
                    self.counts.apply(&events);
                    for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                        respond(reply, outcome);
                    }
                    return;
                }
                Err(BatchError::Op { index, error }) => {
                    let (_, reply) = batch.remove(index);
                    respond(reply, Err(error));
                }
                Err(BatchError::Commit(error)) => {
                    // Nothing of this batch is durable: fail every write.
                    for (req, reply) in batch {
                        respond(reply, Err(copy_sqlite_error(&error, &req.key)));
                    }
                    return;
                }
            }
        }
    }

    /// One attempt at a batch. `Ok` has one outcome per write: its event, or
    /// the precondition it failed.
    fn try_batch(&mut self, batch: &[(WriteRequest, Reply)]) -> Result<Vec<Result<Event>>, BatchError> {
        let base = self.db.current_revision();
        self.db.begin().map_err(BatchError::Commit)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut last = base;
        for (index, (req, _)) in batch.iter().enumerate() {
            let applied = self.db.get(&req.key).and_then(|current| {
                match plan_write(req, current.as_ref(), last + 1) {
                    Ok(event) => self.db.append(&event).map(|()| Ok(event)),
                    // A failed precondition is an outcome, not a batch failure.
                    Err(refused) => Ok(Err(refused)),
                }
            });
            match applied {
                Ok(outcome) => {
                    if let Ok(event) = &outcome {
                        last = event.revision();
                    }
                    outcomes.push(outcome);
                }
                Err(error) => {
                    self.db.rollback();
                    return Err(BatchError::Op { index, error });
                }
            }
        }
        if last == base {
            // Every write was refused; nothing to make durable.
            self.db.rollback();
            return Ok(outcomes);
        }
        if let Err(error) = self.db.commit(last) {
            self.db.rollback();
            return Err(BatchError::Commit(error));
        }
        Ok(outcomes)
    }
}

enum BatchError {
    /// Write `index` hit an SQLite error; the transaction was rolled back.
    Op { index: usize, error: Error },
    /// Begin or commit failed; the transaction was rolled back.
    Commit(Error),
}

fn respond(reply: Reply, outcome: Result<Event>) {
    // A failed `send` means the caller went away; the write stands regardless.
    match reply {
        Reply::Revision(tx) => {
            let _ = tx.send(outcome.map(|e| e.revision()));
        }
        Reply::Deleted(tx) => {
            let _ = tx.send(outcome.and_then(|e| match e.prev {
                Some(prev) => Ok((e.kv.mod_revision, prev)),
                None => Err(Error::NotFound { key: e.kv.key }),
            }));
        }
    }
}

/// The same SQLite failure for each write of a failed commit (the source
/// error is not `Clone`).
fn copy_sqlite_error(error: &Error, key: &str) -> Error {
    let source = match error {
        Error::Sqlite { source: rusqlite::Error::SqliteFailure(code, message), .. } => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    Error::Sqlite { op: "commit", key: key.to_owned(), source }
}
