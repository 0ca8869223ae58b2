//! The node database's process table, through the `ProcTable` trait the process service
//! uses: operations, persistence, names, racing updates, retention and fresh ids.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use plexus_store::procs::MAX_ENDED_PROCS;
use plexus_store::{
    put_with_fresh_id, NodeDb, ProcError, ProcId, ProcRecord, ProcState, ProcTable,
};

fn temp_db() -> (tempfile::TempDir, NodeDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = NodeDb::open(dir.path()).unwrap();
    (dir, db)
}

fn id(n: u32) -> ProcId {
    ProcId::from_random(n.to_le_bytes())
}

fn record(n: u32) -> ProcRecord {
    let mut r = ProcRecord::new(id(n), [5; 32], "n1", vec!["python3".into(), "x.py".into()]);
    r.env = vec![("TOKEN".into(), "secret".into())];
    r.cwd = Some("/srv".into());
    r
}

fn exited(mut r: ProcRecord, code: i32, at: u64) -> ProcRecord {
    r.state = ProcState::Exited(code);
    r.ended_ms = Some(at);
    r
}

#[tokio::test]
async fn records_are_put_updated_listed_and_removed() {
    let (_dir, db) = temp_db();
    let table: &dyn ProcTable = &db;
    let a = table.put(record(1)).await.unwrap();
    let b = table.put(record(2)).await.unwrap();
    let mut running = a.clone();
    running.state = ProcState::Running;
    running.started_ms = 1_000;
    let running = table.update(running).await.unwrap();
    assert_eq!(running.generation, 1);
    assert_eq!(table.get(a.id).await.unwrap(), Some(running.clone()));
    let mut want = vec![running.clone(), b.clone()];
    want.sort_by_key(|r| r.id);
    assert_eq!(table.list().await.unwrap(), want);
    table.remove(b.id).await.unwrap();
    table.remove(b.id).await.unwrap();
    assert_eq!(table.list().await.unwrap(), vec![running]);
    assert!(matches!(
        table.update(b).await,
        Err(ProcError::NotFound(i)) if i == id(2)
    ));
}

#[tokio::test]
async fn records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let stored = {
        let db = NodeDb::open(dir.path()).unwrap();
        let mut r = record(1);
        r.name = Some("crawler".into());
        let r = db.put_proc(r).unwrap();
        db.update_proc(exited(r, 3, 50)).unwrap()
    };
    let db = NodeDb::open(dir.path()).unwrap();
    assert_eq!(db.procs().unwrap(), vec![stored.clone()]);
    assert_eq!(stored.exit_status(), Some(3));
    // The name was freed when it ended, and stays free after the reopen.
    let mut again = record(2);
    again.name = Some("crawler".into());
    db.put_proc(again).unwrap();
}

#[tokio::test]
async fn a_live_name_is_refused_to_a_second_process() {
    let (_dir, db) = temp_db();
    let mut a = record(1);
    a.name = Some("web".into());
    db.put_proc(a).unwrap();
    let mut b = record(2);
    b.name = Some("web".into());
    let err = db.put_proc(b).unwrap_err();
    assert!(matches!(&err, ProcError::NameTaken(n) if n == "web"));
    assert_eq!(err.code(), "proc.name.taken");
    assert_eq!(db.procs().unwrap().len(), 1);
}

#[tokio::test]
async fn racing_updates_from_one_generation_let_exactly_one_win() {
    let (_dir, db) = temp_db();
    let db = Arc::new(db);
    let base = db.put_proc(record(1)).unwrap();
    let mut tasks = Vec::new();
    for code in 0..8 {
        let db = db.clone();
        let update = exited(base.clone(), code, 100 + code as u64);
        tasks.push(tokio::spawn(async move {
            ProcTable::update(&*db, update).await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => won.push(r),
            Err(ProcError::Conflict {
                expected: 0,
                found: 1,
                ..
            }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(db.procs().unwrap(), won);
}

#[tokio::test]
async fn only_the_newest_ended_records_are_kept() {
    let (_dir, db) = temp_db();
    let live = db.put_proc(record(0)).unwrap();
    let total = MAX_ENDED_PROCS as u32 + 5;
    for n in 1..=total {
        // End times run backwards for the first few so that age, not insertion order, decides.
        let at = if n <= 5 {
            10 - n as u64
        } else {
            1_000 + n as u64
        };
        db.put_proc(exited(record(n), 0, at)).unwrap();
    }
    let procs = db.procs().unwrap();
    assert_eq!(procs.len(), MAX_ENDED_PROCS as usize + 1);
    assert!(procs.contains(&live));
    for n in 1..=5 {
        assert!(db.proc(&id(n)).unwrap().is_none(), "{n} should be gone");
    }
    assert!(db.proc(&id(6)).unwrap().is_some());
}

/// A table whose first answers say every id is taken, as when another node put the same id
/// at the same time: the fresh-id put draws again.
#[tokio::test]
async fn fresh_ids_are_drawn_again_on_collision() {
    let (_dir, db) = temp_db();
    let taken = db.put_proc(record(7)).unwrap();
    let mut draws = vec![7u32, 7, 8].into_iter();
    let r = put_with_fresh_id(&db, record(0), || draws.next().unwrap().to_le_bytes())
        .await
        .unwrap();
    assert_eq!(r.id, id(8));
    assert_eq!(db.procs().unwrap().len(), 2);
    assert!(db.procs().unwrap().contains(&taken));
    let err = put_with_fresh_id(&db, record(0), || 7u32.to_le_bytes())
        .await
        .unwrap_err();
    assert!(matches!(err, ProcError::NoFreeId));
}

#[tokio::test]
async fn malformed_records_are_refused_and_change_nothing() {
    let (_dir, db) = temp_db();
    let mut nul = record(1);
    nul.command.push("a\0b".into());
    assert!(matches!(db.put_proc(nul), Err(ProcError::Invalid(_))));
    let mut huge = record(2);
    huge.command = vec!["x".repeat(1000); 400];
    let err = db.put_proc(huge).unwrap_err();
    assert!(matches!(err, ProcError::Limit(_)), "{err}");
    assert!(db.procs().unwrap().is_empty());
}
