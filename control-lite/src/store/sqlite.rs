//! The SQLite side of the store: schema, pragmas and every statement.
//!
//! Owns the writer connection ([`Db`], worker thread only) and the read
//! statements shared with the reader connections (`get_live`, `list_live`).
//! Nothing here is async. Transactions are begun and ended by the worker,
//! which batches several writes into one commit.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::plan::prefix_end;
use super::{Error, Event, EventKind, KeyValue, ListPage, ListRange, Result, Revision};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT    NOT NULL,
    value           BLOB    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER,
    deleted         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live (
    key      TEXT    PRIMARY KEY,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

const META_COMPACTED: &str = "compacted_revision";

const GET_LIVE: &str = "SELECT l.key, l.value, l.create_revision, l.revision
    FROM live v JOIN log l ON l.revision = v.revision
    WHERE v.key = ?1";

pub(crate) const LIST_RANGE: &str = "SELECT l.key, l.value, l.create_revision, l.revision
    FROM live v JOIN log l ON l.revision = v.revision
    WHERE v.key >= ?1 AND v.key < ?2 ORDER BY v.key";

pub(crate) const LIST_FROM: &str = "SELECT l.key, l.value, l.create_revision, l.revision
    FROM live v JOIN log l ON l.revision = v.revision
    WHERE v.key >= ?1 ORDER BY v.key";

pub(crate) fn sqlite_err<'a>(op: &'static str, key: &'a str) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
    move |source| Error::Sqlite { op, key: key.to_owned(), source }
}

pub(crate) fn row_kv(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue { key: row.get(0)?, value: row.get(1)?, create_revision: row.get(2)?, mod_revision: row.get(3)? })
}

/// The open database and the revisions read from it.
pub(crate) struct Db {
    conn: Connection,
    current: Revision,
    compacted: Revision,
    /// The held `<db>.lock` file of a file database; closing it unlocks.
    _owner: Option<File>,
}

impl Db {
    /// Opens `path` in WAL mode with `synchronous=FULL`, after taking the
    /// exclusive lock on `<path>.lock` (waiting up to `lock_timeout`).
    pub(crate) fn open(path: &Path, lock_timeout: Duration) -> Result<Db> {
        // One process owns the log: the revision counter lives in its memory.
        let owner = lock_owner(path, lock_timeout)?;
        let open_err = |source| Error::Open { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(lock_timeout).map_err(open_err)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}, want wal"))));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        let mut db = Db::init(conn).map_err(|e| match e {
            Error::Sqlite { source, .. } => open_err(source),
            other => other,
        })?;
        db._owner = Some(owner);
        Ok(db)
    }

    /// A private in-memory database (no durability; for tests).
    pub(crate) fn open_in_memory() -> Result<Db> {
        let conn = Connection::open_in_memory().map_err(sqlite_err("open in memory", ""))?;
        Db::init(conn)
    }

    fn init(conn: Connection) -> Result<Db> {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_err("lock", ""))?;
        conn.execute_batch(SCHEMA).map_err(sqlite_err("create schema", ""))?;
        let current = stored_revision(&conn)?;
        let compacted = compacted_revision(&conn)?;
        conn.execute_batch("COMMIT").map_err(sqlite_err("commit schema", ""))?;
        Ok(Db { conn, current, compacted, _owner: None })
    }

    /// Revision of the last committed write.
    pub(crate) fn current_revision(&self) -> Revision {
        self.current
    }

    /// Revision history is compacted up to.
    pub(crate) fn compacted_revision(&self) -> Revision {
        self.compacted
    }

    /// Starts a write transaction.
    pub(crate) fn begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_err("begin", ""))
    }

    /// Commits the write transaction; `last` is the revision of its last write.
    pub(crate) fn commit(&mut self, last: Revision) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(sqlite_err("commit", ""))?;
        self.current = last;
        Ok(())
    }

    /// Rolls back the write transaction, if one is open.
    pub(crate) fn rollback(&self) {
        if !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(%error, "store: rollback failed");
            }
        }
    }

    /// The live value of `key`.
    pub(crate) fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        get_live(&self.conn, key)
    }

    /// Live keys with `prefix`, sorted by key.
    /// Every live key (start-up only: the object counts begin from it).
    pub(crate) fn live_keys(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT key FROM live").map_err(sqlite_err("list live keys", ""))?;
        let keys = stmt
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .map_err(sqlite_err("list live keys", ""))?;
        Ok(keys)
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        list_live(&self.conn, prefix)
    }

    /// One page of `range` at its revision.
    pub(crate) fn list_page(&self, range: &ListRange) -> Result<ListPage> {
        super::snapshot::list_page(&self.conn, range)
    }

    /// Persists an event planned by `plan_write` (inside a transaction).
    pub(crate) fn append(&self, event: &Event) -> Result<()> {
        let kv = &event.kv;
        let deleted = event.kind == EventKind::Delete;
        self.conn
            .prepare_cached(
                "INSERT INTO log (revision, key, value, create_revision, prev_revision, deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    kv.mod_revision,
                    kv.key,
                    kv.value,
                    kv.create_revision,
                    event.prev.as_ref().map(|p| p.mod_revision),
                    deleted,
                ])
            })
            .map_err(sqlite_err("append", &kv.key))?;
        let live = if deleted {
            self.conn.prepare_cached("DELETE FROM live WHERE key = ?1").and_then(|mut stmt| stmt.execute([&kv.key]))
        } else {
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO live (key, revision) VALUES (?1, ?2)")
                .and_then(|mut stmt| stmt.execute(params![kv.key, kv.mod_revision]))
        };
        live.map_err(sqlite_err("update live", &kv.key))?;
        Ok(())
    }

    /// Events with revision `> after` on keys with `prefix`, in order.
    pub(crate) fn history(&self, prefix: &str, after: Revision) -> Result<Vec<Event>> {
        let end = prefix_end(prefix);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT l.key, l.value, l.create_revision, l.revision, l.deleted,
                        p.value, p.create_revision, p.revision
                 FROM log l LEFT JOIN log p ON p.revision = l.prev_revision
                 WHERE l.revision > ?1 AND l.key >= ?2 AND (?3 IS NULL OR l.key < ?3)
                 ORDER BY l.revision",
            )
            .map_err(sqlite_err("prepare history", prefix))?;
        let rows = stmt
            .query_map(params![after, prefix, end], |row| {
                let kv = row_kv(row)?;
                let deleted: bool = row.get(4)?;
                let prev_revision: Option<Revision> = row.get(7)?;
                let prev = match prev_revision {
                    Some(mod_revision) => Some(KeyValue {
                        key: kv.key.clone(),
                        value: row.get(5)?,
                        create_revision: row.get(6)?,
                        mod_revision,
                    }),
                    None => None,
                };
                let kind = if deleted { EventKind::Delete } else { EventKind::Put };
                Ok(Event { kind, kv, prev })
            })
            .map_err(sqlite_err("history", prefix))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite_err("history", prefix))
    }

    /// Deletes superseded rows and tombstones at or below `target` in one
    /// transaction (see the design note in `store/mod.rs`). `target` must not
    /// exceed the current revision.
    pub(crate) fn compact(&mut self, target: Revision) -> Result<()> {
        let from = self.compacted;
        if target <= from {
            return Ok(());
        }
        let key = "";
        let tx = self.conn.transaction().map_err(sqlite_err("begin compact", key))?;
        // Rows replaced by an update or delete in (from, target]; rows at or
        // below `from` that survived earlier compactions were live then, so
        // their successors, if any, are above `from`.
        tx.execute(
            "DELETE FROM log WHERE revision IN (
                 SELECT prev_revision FROM log
                 WHERE revision > ?1 AND revision <= ?2 AND prev_revision IS NOT NULL)",
            params![from, target],
        )
        .map_err(sqlite_err("compact superseded", key))?;
        tx.execute("DELETE FROM log WHERE revision > ?1 AND revision <= ?2 AND deleted = 1", params![from, target])
            .map_err(sqlite_err("compact tombstones", key))?;
        tx.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)", params![META_COMPACTED, target])
            .map_err(sqlite_err("record compaction", key))?;
        tx.commit().map_err(sqlite_err("commit compact", key))?;
        self.compacted = target;
        Ok(())
    }

    /// Number of rows in the log (for tests of compaction).
    #[cfg(test)]
    pub(crate) fn log_rows(&self) -> Result<i64> {
        self.conn.query_row("SELECT COUNT(*) FROM log", [], |r| r.get(0)).map_err(sqlite_err("count log", ""))
    }

    /// Runs raw SQL (for tests that inject failures with triggers).
    #[cfg(test)]
    pub(crate) fn execute_for_test(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(sqlite_err("test sql", ""))
    }
}

/// The live value of `key`.
pub(crate) fn get_live(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    let mut stmt = conn.prepare_cached(GET_LIVE).map_err(sqlite_err("prepare get", key))?;
    stmt.query_row([key], row_kv).optional().map_err(sqlite_err("get", key))
}

/// Live keys with `prefix`, sorted by key.
pub(crate) fn list_live(conn: &Connection, prefix: &str) -> Result<Vec<KeyValue>> {
    // Two statements so SQLite bounds the index scan on both ends; an
    // `?2 IS NULL OR` form would scan every key after the prefix.
    let end = prefix_end(prefix);
    let sql = if end.is_some() { LIST_RANGE } else { LIST_FROM };
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_err("prepare list", prefix))?;
    let rows = match &end {
        Some(end) => stmt.query_map(params![prefix, end], row_kv),
        None => stmt.query_map(params![prefix], row_kv),
    }
    .map_err(sqlite_err("list", prefix))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite_err("list", prefix))
}

/// The revision of the last committed write, as seen by `conn`'s snapshot.
pub(crate) fn stored_revision(conn: &Connection) -> Result<Revision> {
    let rev = conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'log'", [], |r| r.get(0))
        .optional()
        .map_err(sqlite_err("read revision", ""))?;
    Ok(rev.unwrap_or(0))
}

/// The revision history is compacted up to, as seen by `conn`'s snapshot.
pub(crate) fn compacted_revision(conn: &Connection) -> Result<Revision> {
    let rev = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [META_COMPACTED], |r| r.get(0))
        .optional()
        .map_err(sqlite_err("read compacted revision", ""))?;
    Ok(rev.unwrap_or(0))
}

/// Takes the exclusive `flock` on `<path>.lock`, retrying until `timeout`.
fn lock_owner(path: &Path, timeout: Duration) -> Result<File> {
    let mut lock_path = PathBuf::from(path);
    lock_path.as_mut_os_string().push(".lock");
    let io_err = |source| Error::Lock { path: lock_path.clone(), source };
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err)?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(io_err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "another process has this store open",
                )));
            }
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        }
    }
}
