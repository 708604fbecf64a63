//! Pages of a list at a past revision on SQLite: what `limit`/`continue`
//! and `resourceVersionMatch=Exact` read.
//!
//! The log keeps every row newer than the compacted revision and, for each
//! key, its latest row at or below it. So the state of a key range at
//! revision R is: the live rows of keys not written after R, plus, for each
//! key written after R, the row its first later write replaced
//! (`prev_revision`; none if that write created the key). The writes after
//! R are read by revision, the log's primary key, so a page at a recent
//! revision costs the page plus what changed since, never a scan of the
//! whole history. Runs inside one read transaction, so the revisions, the
//! live rows and the history agree.

use std::collections::BTreeMap;
use std::ops::Bound;

use rusqlite::{params, Connection, OptionalExtension};

use super::plan::prefix_end;
use super::sqlite::{compacted_revision, row_kv, sqlite_err, stored_revision, LIST_FROM, LIST_RANGE};
use super::{Error, KeyValue, ListPage, ListRange, Result, Revision};

/// A key written after the page's revision.
#[derive(Debug, Clone, Copy)]
struct Changed {
    /// Its row at the page's revision (`None`: it did not exist then).
    then: Option<Revision>,
    /// Whether it is live now.
    live_now: bool,
}

/// Reads one page of `range` (call inside a read transaction).
pub(crate) fn list_page(conn: &Connection, range: &ListRange) -> Result<ListPage> {
    let key = range.prefix.as_str();
    let current = stored_revision(conn)?;
    let at = match range.revision {
        None => current,
        Some(requested) if requested > current => return Err(Error::FutureRevision { requested, current }),
        Some(requested) => {
            let compacted = compacted_revision(conn)?;
            if requested < compacted {
                return Err(Error::Compacted { requested, compacted });
            }
            requested
        }
    };
    let end = prefix_end(&range.prefix);
    let start = match &range.start {
        Some(start) if start.as_str() > key => start.clone(),
        _ => range.prefix.clone(),
    };
    let changed = if at < current { changed_since(conn, at, &start, end.as_deref())? } else { BTreeMap::new() };

    let want = range.limit.map_or(usize::MAX, |n| n.saturating_add(1));
    let mut kvs = Vec::new();
    let mut live_stmt = match &end {
        Some(_) => conn.prepare_cached(LIST_RANGE),
        None => conn.prepare_cached(LIST_FROM),
    }
    .map_err(sqlite_err("prepare page", key))?;
    let live = match &end {
        Some(end) => live_stmt.query_map(params![start, end], row_kv),
        None => live_stmt.query_map(params![start], row_kv),
    }
    .map_err(sqlite_err("page", key))?;
    // Live rows of keys not written after `at`, merged in key order with
    // the rows written-after keys had at `at`.
    let mut live = live.filter(|row| row.as_ref().map_or(true, |kv| !changed.contains_key(&kv.key))).peekable();
    let mut older = changed.iter().filter_map(|(k, c)| c.then.map(|rev| (k, rev))).peekable();
    while kvs.len() < want {
        let take_live = match (live.peek(), older.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Err(_)), Some(_)) => true,
            (Some(Ok(kv)), Some((k, _))) => kv.key.as_str() < k.as_str(),
        };
        if take_live {
            if let Some(row) = live.next() {
                kvs.push(row.map_err(sqlite_err("page", key))?);
            }
        } else if let Some((k, rev)) = older.next() {
            kvs.push(row_at(conn, k, rev)?);
        }
    }
    drop(live);

    let remaining = match range.limit {
        Some(limit) if kvs.len() > limit => {
            kvs.truncate(limit);
            let last = kvs.last().map_or(start.as_str(), |kv| kv.key.as_str());
            remaining_after(conn, last, end.as_deref(), &changed)?
        }
        _ => 0,
    };
    Ok(ListPage { kvs, revision: at, remaining })
}

/// Keys in `[start, end)` written after `at`, with their state at `at`.
fn changed_since(conn: &Connection, at: Revision, start: &str, end: Option<&str>) -> Result<BTreeMap<String, Changed>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, prev_revision, deleted FROM log
             WHERE revision > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3)
             ORDER BY revision",
        )
        .map_err(sqlite_err("prepare changes", start))?;
    let rows = stmt
        .query_map(params![at, start, end], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<Revision>>(1)?, row.get::<_, bool>(2)?))
        })
        .map_err(sqlite_err("changes", start))?;
    let mut changed = BTreeMap::new();
    for row in rows {
        let (key, prev, deleted) = row.map_err(sqlite_err("changes", start))?;
        // The first write after `at` replaced the row the key had at `at`.
        changed.entry(key).or_insert(Changed { then: prev, live_now: !deleted }).live_now = !deleted;
    }
    Ok(changed)
}

/// The row at `revision` (kept by compaction: it was the key's state at a
/// revision not yet compacted).
fn row_at(conn: &Connection, key: &str, revision: Revision) -> Result<KeyValue> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value, create_revision, revision FROM log WHERE revision = ?1")
        .map_err(sqlite_err("prepare row", key))?;
    stmt.query_row([revision], row_kv)
        .optional()
        .map_err(sqlite_err("row", key))?
        .ok_or_else(|| Error::NotFound { key: key.to_owned() })
}

/// How many keys after `last` (up to `end`) existed at the page's revision:
/// those live now, less those created since, plus those deleted since.
fn remaining_after(
    conn: &Connection,
    last: &str,
    end: Option<&str>,
    changed: &BTreeMap<String, Changed>,
) -> Result<i64> {
    // Two statements so the count scans only the range's keys.
    let live: i64 = match end {
        Some(end) => conn
            .prepare_cached("SELECT COUNT(*) FROM live WHERE key > ?1 AND key < ?2")
            .and_then(|mut stmt| stmt.query_row(params![last, end], |row| row.get(0))),
        None => conn
            .prepare_cached("SELECT COUNT(*) FROM live WHERE key > ?1")
            .and_then(|mut stmt| stmt.query_row(params![last], |row| row.get(0))),
    }
    .map_err(sqlite_err("count", last))?;
    let after = changed.range::<str, _>((Bound::Excluded(last), Bound::Unbounded)).map(|(_, c)| c);
    Ok(after.fold(live, |n, c| n.saturating_sub(i64::from(c.live_now)).saturating_add(i64::from(c.then.is_some()))))
}
