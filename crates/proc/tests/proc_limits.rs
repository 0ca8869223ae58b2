//! Limits: a fork bomb is contained by pids, a memory hog is killed at its limit, a CPU limit
//! holds, and `Enforcement` says how. Cgroup tests are skipped (with a message) on nodes that
//! cannot create cgroups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use plexus_proc::{Enforcement, ExitStatus, Limits, SpawnError, Spec, SpecError, Stream};

fn with_cgroups(s: &Sup, test: &str) -> bool {
    let on = matches!(
        s.sup.enforcement(),
        Enforcement::CgroupV1 | Enforcement::CgroupV2
    );
    if !on {
        eprintln!(
            "skipping {test}: this node cannot create cgroups ({})",
            s.sup.enforcement()
        );
    }
    on
}

/// Forks children that sleep until it has 200 or a fork fails; prints how many it made.
const FORKER: &str = "
import os, time
made = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    made += 1
print(made, flush=True)
time.sleep(600)
";

#[tokio::test]
async fn a_fork_bomb_is_contained_by_pids() {
    let s = supervisor();
    if !with_cgroups(&s, "a_fork_bomb_is_contained_by_pids") {
        return;
    }
    let bomb = Spec {
        limits: Limits {
            pids: Some(32),
            ..Limits::default()
        },
        ..spec("python3", &["-c", FORKER])
    };
    let (_, mut attached) = s.sup.spawn_attached("bomb", &bomb).await.unwrap();
    assert_eq!(s.sup.info("bomb").unwrap().enforcement, s.sup.enforcement());
    let line = read_until(&mut attached.stdout, "\n").await;
    let made: u32 = line.trim().parse().unwrap();
    assert!(
        (1..32).contains(&made),
        "made {made} children under pids=32"
    );
    drop(attached);
    s.sup.stop("bomb", Duration::from_secs(20)).await.unwrap();
}

#[tokio::test]
async fn a_memory_hog_is_stopped_at_its_limit() {
    let s = supervisor();
    let hog = Spec {
        limits: Limits {
            mem: Some(64 * 1024 * 1024),
            ..Limits::default()
        },
        ..spec(
            "python3",
            &["-c", "b = b'x' * (256 << 20)\nprint('survived', len(b))"],
        )
    };
    s.sup.spawn("hog", &hog).await.unwrap();
    let status = s.sup.wait("hog").await.unwrap();
    let info = s.sup.info("hog").unwrap();
    match info.enforcement {
        Enforcement::CgroupV1 | Enforcement::CgroupV2 => assert_eq!(status, ExitStatus::Killed(9)),
        // RLIMIT_AS: the allocation fails and Python exits with MemoryError.
        Enforcement::Rlimits => assert_eq!(status, ExitStatus::Exited(1)),
        Enforcement::None => panic!("a limit was asked for"),
    }
    assert_eq!(s.sup.read_log("hog", Stream::Stdout).unwrap(), b"");
}

#[tokio::test]
async fn rlimits_stop_a_memory_hog_without_cgroups() {
    let s = supervisor_with(tempfile::tempdir().unwrap(), |c| c.cgroups = false);
    assert_eq!(s.sup.enforcement(), Enforcement::Rlimits);
    let hog = Spec {
        limits: Limits {
            mem: Some(64 * 1024 * 1024),
            ..Limits::default()
        },
        ..spec(
            "python3",
            &["-c", "b = b'x' * (256 << 20)\nprint('survived', len(b))"],
        )
    };
    s.sup.spawn("hog", &hog).await.unwrap();
    // RLIMIT_AS: the allocation fails inside Python, which exits with MemoryError.
    assert_eq!(s.sup.wait("hog").await.unwrap(), ExitStatus::Exited(1));
    assert_eq!(s.sup.info("hog").unwrap().enforcement, Enforcement::Rlimits);
    let stderr = String::from_utf8(s.sup.read_log("hog", Stream::Stderr).unwrap()).unwrap();
    assert!(stderr.contains("MemoryError"), "{stderr}");
    // The same program without the limit does allocate it.
    s.sup
        .spawn(
            "free",
            &spec(
                "python3",
                &["-c", "b = b'x' * (256 << 20)\nprint('survived')"],
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.sup.wait("free").await.unwrap(), ExitStatus::Exited(0));
}

#[tokio::test]
async fn a_cpu_limit_holds() {
    let s = supervisor();
    if !with_cgroups(&s, "a_cpu_limit_holds") {
        return;
    }
    let busy = Spec {
        limits: Limits {
            cpu: Some(0.1),
            ..Limits::default()
        },
        ..sh("while :; do :; done")
    };
    s.sup.spawn("busy", &busy).await.unwrap();
    s.sup.stats("busy").unwrap();
    // Long enough for several CFS periods (100 ms each); the bound has a wide margin.
    let sampled = tokio::time::sleep(Duration::from_secs(2));
    sampled.await;
    let stats = s.sup.stats("busy").unwrap();
    assert!(
        stats.cpu_percent < 30.0,
        "{}% under a 10% limit",
        stats.cpu_percent
    );
    assert!(stats.rss_bytes > 0);
    s.sup.stop("busy", Duration::from_secs(20)).await.unwrap();
}

#[tokio::test]
async fn unlimited_processes_report_none_and_stats() {
    let s = supervisor();
    s.sup
        .spawn("plain", &spec("sleep", &["1000"]))
        .await
        .unwrap();
    assert_eq!(s.sup.info("plain").unwrap().enforcement, Enforcement::None);
    let stats = s.sup.stats("plain").unwrap();
    assert!(stats.rss_bytes > 0 && stats.cpu_percent >= 0.0);
    assert_eq!(stats.started_at, s.sup.info("plain").unwrap().started_at);
    s.sup.stop("plain", Duration::from_secs(20)).await.unwrap();
    assert!(s.sup.stats("plain").is_err(), "no stats after the end");
}

#[tokio::test]
async fn nonsense_limits_are_refused() {
    let s = supervisor();
    let zero = Spec {
        limits: Limits {
            pids: Some(0),
            ..Limits::default()
        },
        ..spec("true", &[])
    };
    let err = s.sup.spawn("z", &zero).await.unwrap_err();
    assert!(
        matches!(err, SpawnError::Spec(SpecError::BadLimit { name: "pids" })),
        "{err:?}"
    );
}

#[tokio::test]
async fn cgroups_are_removed_when_a_process_ends() {
    let s = supervisor();
    if !with_cgroups(&s, "cgroups_are_removed_when_a_process_ends") {
        return;
    }
    let limited = Spec {
        limits: Limits {
            pids: Some(8),
            ..Limits::default()
        },
        ..spec("true", &[])
    };
    s.sup.spawn("cg", &limited).await.unwrap();
    s.sup.wait("cg").await.unwrap();
    let leftovers: Vec<_> = ["memory", "cpu", "pids", "unified", ""]
        .iter()
        .flat_map(|c| walk(std::path::Path::new("/sys/fs/cgroup").join(c), 4))
        .filter(|p| {
            p.ends_with("cg")
                && p.parent()
                    .is_some_and(|d| d.to_string_lossy().contains("plexus-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Directories under `dir`, `depth` levels deep.
fn walk(dir: std::path::PathBuf, depth: u32) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if depth == 0 {
        return found;
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(entry.path());
            found.extend(walk(entry.path(), depth - 1));
        }
    }
    found
}
