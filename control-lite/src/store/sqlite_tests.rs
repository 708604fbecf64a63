//! Tests that reach into the SQLite layer: compaction row counts, and
//! SQLite failures injected with triggers to exercise the worker's batch
//! error paths.

use super::plan::{plan_write, WriteKind, WriteRequest};
use super::sqlite::Db;
use super::tests::{next, summary, v};
use super::*;

fn apply(db: &mut Db, key: &str, kind: WriteKind) -> anyhow::Result<Revision> {
    let req = WriteRequest { key: key.to_owned(), kind };
    let rev = db.current_revision() + 1;
    db.begin()?;
    let event = plan_write(&req, db.get(key)?.as_ref(), rev)?;
    db.append(&event)?;
    db.commit(rev)?;
    Ok(rev)
}

#[test]
fn compaction_drops_superseded_rows_and_tombstones_only() -> anyhow::Result<()> {
    let mut db = Db::open_in_memory()?;
    let put = |s: &str| WriteKind::Update { value: v(s), expected: None };
    apply(&mut db, "/a", WriteKind::Create { value: v("1") })?; // 1
    apply(&mut db, "/a", put("2"))?; // 2
    apply(&mut db, "/a", put("3"))?; // 3
    apply(&mut db, "/b", WriteKind::Create { value: v("1") })?; // 4
    apply(&mut db, "/b", WriteKind::Delete { expected: None })?; // 5
    apply(&mut db, "/c", WriteKind::Create { value: v("1") })?; // 6
    apply(&mut db, "/a", put("4"))?; // 7
    assert_eq!(db.log_rows()?, 7);

    db.compact(4)?;
    // Rows 1 and 2 are superseded at or below 4; row 3 is /a's value at 4 and
    // the prev of row 7; row 4 is the prev of the delete at 5.
    assert_eq!(db.log_rows()?, 5);
    let history: Vec<_> = db.history("", 4)?.iter().map(summary).collect();
    assert_eq!(
        history,
        [(EventKind::Delete, "/b".into(), 5), (EventKind::Put, "/c".into(), 6), (EventKind::Put, "/a".into(), 7),]
    );
    let replayed = db.history("/a", 4)?;
    assert_eq!(replayed[0].prev.as_ref().map(|p| p.mod_revision), Some(3));

    db.compact(7)?;
    // Left: /c at 6 and /a at 7, the live values.
    assert_eq!(db.log_rows()?, 2);
    assert_eq!(db.get("/a")?.map(|kv| kv.value), Some(v("4")));
    assert_eq!(db.list("")?.len(), 2);
    assert_eq!(db.compacted_revision(), 7);
    db.compact(5)?; // backwards is a no-op
    assert_eq!(db.compacted_revision(), 7);
    Ok(())
}

/// A store whose log rejects some keys: inserting `/poison` fails at once,
/// inserting `/commit-poison` breaks a deferred foreign key so the whole
/// transaction fails at `COMMIT`.
fn store_with_poisoned_keys() -> anyhow::Result<Store> {
    let db = Db::open_in_memory()?;
    db.execute_for_test(
        "CREATE TRIGGER poison BEFORE INSERT ON log WHEN NEW.key = '/poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned key'); END;
         CREATE TABLE target (id INTEGER PRIMARY KEY);
         CREATE TABLE dangling (id INTEGER REFERENCES target (id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER commit_poison AFTER INSERT ON log WHEN NEW.key = '/commit-poison'
             BEGIN INSERT INTO dangling VALUES (1); END;
         PRAGMA foreign_keys = ON;",
    )?;
    let local = super::local::Local::start(db, Options::default(), None)?;
    Ok(Store { backend: super::Backend::Sqlite(local) })
}

/// Sends all `keys` as creates at once (so they share a batch) and returns
/// each outcome in order.
async fn create_all(s: &Store, keys: &[&str]) -> anyhow::Result<Vec<Result<Revision>>> {
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (s, key) = (s.clone(), key.to_string());
            tokio::spawn(async move { s.create(&key, v("x")).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await?);
    }
    Ok(outcomes)
}

#[tokio::test]
async fn sqlite_error_fails_only_its_write_and_leaves_no_revision_gap() -> anyhow::Result<()> {
    let s = store_with_poisoned_keys()?;
    let mut rx = s.watch("", 0).await?;
    let outcomes = create_all(&s, &["/a", "/poison", "/b"]).await?;
    assert!(matches!(outcomes[1], Err(Error::Sqlite { ref key, .. }) if key == "/poison"), "{outcomes:?}");
    let mut revs: Vec<Revision> =
        [&outcomes[0], &outcomes[2]].iter().filter_map(|o| o.as_ref().ok().copied()).collect();
    revs.sort_unstable();
    assert_eq!(revs, [1, 2], "{outcomes:?}");
    assert_eq!((next(&mut rx).await?.revision(), next(&mut rx).await?.revision()), (1, 2));
    assert_eq!(s.create("/c", v("x")).await?, 3);
    assert_eq!(next(&mut rx).await?.revision(), 3);
    Ok(())
}

#[tokio::test]
async fn failed_commit_fails_its_batch_and_the_store_carries_on() -> anyhow::Result<()> {
    let s = store_with_poisoned_keys()?;
    let mut rx = s.watch("", 0).await?;
    let outcomes = create_all(&s, &["/a", "/commit-poison", "/b"]).await?;
    assert!(matches!(outcomes[1], Err(Error::Sqlite { op: "commit", .. })), "{outcomes:?}");
    // Writes that shared the poisoned batch failed with it; any that landed
    // in a batch of their own succeeded. Either way nothing half-committed.
    let ok: Vec<Revision> = outcomes.iter().filter_map(|o| o.as_ref().ok().copied()).collect();
    assert_eq!(s.current_revision(), Revision::try_from(ok.len())?);
    let (live, _) = s.list("").await?;
    assert_eq!(live.len(), ok.len());
    assert_eq!(s.get("/commit-poison").await?, None);
    let next_rev = s.create("/c", v("x")).await?;
    assert_eq!(next_rev, s.current_revision());
    assert_eq!(next_rev, Revision::try_from(ok.len() + 1)?);
    let mut seen = Vec::new();
    for _ in 0..=ok.len() {
        seen.push(next(&mut rx).await?.revision());
    }
    assert_eq!(seen, (1..=next_rev).collect::<Vec<_>>());
    Ok(())
}
