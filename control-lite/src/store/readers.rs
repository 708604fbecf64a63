//! Read-only connections that serve `get` and `list` of a file database
//! beside the writer, on tokio's blocking pool.
//!
//! In WAL mode a reader sees every transaction committed before its read
//! began and never waits for the writer, so reads do not queue behind a
//! group commit's fsync. A `list` reads its keys and the store revision in
//! one read transaction, so the revision matches the snapshot. Watches stay
//! on the worker thread: their history must line up with live publication.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::snapshot::list_page;
use super::sqlite::{get_live, list_live, stored_revision};
use super::{Error, KeyValue, ListPage, ListRange, Result, Revision};

/// Idle connections kept for reuse; more are opened under load and closed
/// after use.
const MAX_IDLE: usize = 4;
/// How long a reader waits on a lock (only WAL recovery takes one).
const READER_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of each reader, in KiB (SQLite's `cache_size` pragma, negative
/// for KiB): a quarter of SQLite's 2 MiB default, since up to `MAX_IDLE`
/// readers stay open beside the writer and the OS page cache already holds
/// the file; a list reads each page once.
const READER_CACHE_KIB: i64 = 512;

/// A pool of read-only connections to one database file.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Readers {
        Readers { path, idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }

    /// The live value of `key`.
    pub(crate) async fn get(self: &Arc<Self>, key: String) -> Result<Option<KeyValue>> {
        self.run(move |conn| get_live(conn, &key)).await
    }

    /// Live keys with `prefix` and the revision of the snapshot they come from.
    pub(crate) async fn list(self: &Arc<Self>, prefix: String) -> Result<(Vec<KeyValue>, Revision)> {
        self.run(move |conn| {
            conn.execute_batch("BEGIN").map_err(|source| Error::Sqlite {
                op: "begin read",
                key: prefix.clone(),
                source,
            })?;
            let kvs = list_live(conn, &prefix)?;
            let revision = stored_revision(conn)?;
            conn.execute_batch("COMMIT").map_err(|source| Error::Sqlite { op: "end read", key: prefix, source })?;
            Ok((kvs, revision))
        })
        .await
    }

    /// One page of `range`, read in one transaction.
    pub(crate) async fn list_page(self: &Arc<Self>, range: ListRange) -> Result<ListPage> {
        self.run(move |conn| {
            let key = range.prefix.clone();
            conn.execute_batch("BEGIN").map_err(|source| Error::Sqlite {
                op: "begin read",
                key: key.clone(),
                source,
            })?;
            let page = list_page(conn, &range)?;
            conn.execute_batch("COMMIT").map_err(|source| Error::Sqlite { op: "end read", key, source })?;
            Ok(page)
        })
        .await
    }

    /// Fails every later read with `Closed` and closes the idle connections.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle_conns().clear();
    }

    async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.with_conn(read)).await.map_err(|source| Error::ReadTask { source })?
    }

    /// Runs `read` on an idle connection (or a new one) and keeps the
    /// connection for reuse if it is clean.
    fn with_conn<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let popped = self.idle_conns().pop();
        let conn = match popped {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn);
        // A failed read may leave its transaction open; such a connection
        // is not reused.
        if conn.is_autocommit() && !self.closed.load(Ordering::Acquire) {
            let mut idle = self.idle_conns();
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }

    fn open(&self) -> Result<Connection> {
        let open_err = |source| Error::Open { path: self.path.clone(), source };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(open_err)?;
        conn.busy_timeout(READER_BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB).map_err(open_err)?;
        Ok(conn)
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The list stays valid even if a holder panicked.
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
