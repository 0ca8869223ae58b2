//! Crash consistency: a child process saves in a loop and is killed with SIGKILL; every save
//! it acknowledged must be in the database, which must open cleanly.
//!
//! The child is this test binary run again with `PLEXUS_STORE_CRASH_DIR` set and a filter
//! selecting [`crash_child`]; it prints `ack <n>` after each save returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plexus_store::NodeDb;
use plexus_units::{Path, Unit};

mod common;

use common::{by, ADMIN};

const DIR_VAR: &str = "PLEXUS_STORE_CRASH_DIR";
const START_VAR: &str = "PLEXUS_STORE_CRASH_START";

fn p(t: &str) -> Path {
    Path::parse_dotted(t).unwrap()
}

/// The child: does nothing unless run by [`acknowledged_saves_survive_kill_9`].
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let start: i64 = std::env::var(START_VAR).unwrap().parse().unwrap();
    let db = NodeDb::open(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        use plexus_store::UnitStore;
        // Concurrent savers too, so kills also land in batched commits.
        for t in 0..3 {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("c{start}x{t}x{i}");
                    db.save(&p(&key), Unit::int(i), by(None)).await.unwrap();
                    println!("cack {key} {i}");
                }
            });
        }
        for n in start.. {
            // A key of its own, and an append to one shared list (read-modify-write).
            db.save(&p(&format!("k{n}")), Unit::int(n), by(None))
                .await
                .unwrap();
            db.save(&p("log"), Unit::List(vec![Unit::int(n)]), by(None))
                .await
                .unwrap();
            println!("ack {n}");
        }
    });
}

/// Runs the child until it acknowledged `acks` saves (or a timeout), kills it with SIGKILL
/// and gives the acknowledged numbers.
fn run_and_kill(dir: &std::path::Path, start: i64, acks: usize) -> (Vec<i64>, Vec<(String, i64)>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .env(START_VAR, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let mut cacked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("cack ") {
            let mut parts = rest.split_whitespace();
            let (Some(k), Some(i)) = (parts.next(), parts.next()) else {
                continue;
            };
            cacked.push((k.to_owned(), i.parse::<i64>().unwrap()));
        } else if let Some(n) = line.strip_prefix("ack ") {
            acked.push(n.trim().parse::<i64>().unwrap());
            if acked.len() >= acks || Instant::now() > deadline {
                break;
            }
        }
    }
    // SIGKILL, in the middle of the next saves.
    child.kill().unwrap();
    child.wait().unwrap();
    (acked, cacked)
}

#[test]
fn acknowledged_saves_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: Vec<i64> = Vec::new();
    let mut all_cacked: Vec<(String, i64)> = Vec::new();
    let mut next = 0;
    for (round, acks) in [40usize, 7, 63].into_iter().enumerate() {
        let (acked, cacked) = run_and_kill(dir.path(), next, acks);
        all_cacked.extend(cacked);
        assert!(
            !acked.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        all_acked.extend(&acked);
        // Reopen: the database must open cleanly and hold every acknowledged save.
        let db = NodeDb::open(dir.path()).unwrap();
        for n in &all_acked {
            assert_eq!(
                db.load_blocking(Some(&p(&format!("k{n}"))), ADMIN).unwrap(),
                Unit::int(*n),
                "round {round}: acknowledged save k{n} is missing"
            );
        }
        for (k, i) in &all_cacked {
            assert_eq!(
                db.load_blocking(Some(&p(k)), ADMIN).unwrap(),
                Unit::int(*i),
                "round {round}: acknowledged concurrent save {k} is missing"
            );
        }
        let log = db.load_blocking(Some(&p("log")), ADMIN).unwrap();
        let log: Vec<i64> = log
            .as_list()
            .unwrap()
            .iter()
            .map(|u| u.as_int().unwrap().to_i64().unwrap())
            .collect();
        // The log is every number from 0 on, in order: acknowledged ones, then at most the
        // one being saved when the kill came.
        let expected: Vec<i64> = (0..log.len() as i64).collect();
        assert_eq!(
            log, expected,
            "round {round}: the log has gaps or duplicates"
        );
        let last = *acked.last().unwrap();
        assert!(
            log.len() as i64 > last,
            "round {round}: acknowledged appends lost"
        );
        // The next round continues after whatever reached the disk.
        next = log.len() as i64;
        // Saves after the crash work.
        db.save_blocking(
            &p("after"),
            Unit::List(vec![Unit::int(round as i64)]),
            by(None),
        )
        .unwrap();
        drop(db);
    }
    let db = NodeDb::open(dir.path()).unwrap();
    assert_eq!(
        db.load_blocking(Some(&p("after")), ADMIN).unwrap(),
        Unit::List(vec![Unit::int(0), Unit::int(1), Unit::int(2)])
    );
}
