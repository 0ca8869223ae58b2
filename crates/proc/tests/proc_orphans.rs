//! No orphans: shutdown leaves nothing running, children die with a supervisor killed by -9,
//! and the next start kills what escaped and reports it lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use plexus_proc::{Config, Limits, Spec, Stream, Supervisor};

#[tokio::test]
async fn shutdown_leaves_nothing_behind() {
    let s = supervisor();
    let mut pids = Vec::new();
    pids.push(
        s.sup
            .spawn("sleep", &spec("sleep", &["1000"]))
            .await
            .unwrap(),
    );
    let (pid, mut attached) = s
        .sup
        .spawn_attached(
            "stubborn",
            &sh("trap '' TERM; sleep 1000 & echo $!; echo ready; wait"),
        )
        .await
        .unwrap();
    pids.push(pid);
    let lines = read_until(&mut attached.stdout, "ready").await;
    pids.push(lines.lines().next().unwrap().parse().unwrap());
    drop(attached);
    let limited = Spec {
        limits: Limits {
            pids: Some(16),
            ..Limits::default()
        },
        ..spec("sleep", &["1000"])
    };
    pids.push(s.sup.spawn("limited", &limited).await.unwrap());
    assert!(pids.iter().all(|p| alive(*p)));

    s.sup.shutdown(Duration::from_millis(500)).await;
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} outlived shutdown");
    }
    assert!(s.sup.list().iter().all(|p| p.status.is_some()));
    let journal = std::fs::read_to_string(s.dir.path().join("state/procs/journal")).unwrap();
    for id in ["sleep", "stubborn", "limited"] {
        assert!(
            journal.contains(&format!("- {id}\n")),
            "the journal records the end of {id}: {journal}"
        );
    }
}

#[tokio::test]
async fn a_reader_that_never_reads_cannot_hold_shutdown_up() {
    let s = supervisor();
    let (pid, attached) = s
        .sup
        .spawn_attached("flood", &spec("yes", &[]))
        .await
        .unwrap();
    // The reader is kept but never read: the program is blocked on write.
    let log = s.dir.path().join("state/logs/flood.out");
    wait_until("output to be logged", || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
    })
    .await;
    tokio::time::timeout(DEADLINE, s.sup.shutdown(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(!alive(pid));
    drop(attached);
}

#[tokio::test]
async fn a_child_that_left_the_group_does_not_hold_wait_up() {
    let s = supervisor();
    // `setsid` takes the sleep out of the process group, with the stdout pipe still open.
    s.sup
        .spawn("escape", &sh("setsid sleep 120 & echo $!"))
        .await
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, s.sup.wait("escape")).await;
    let log = String::from_utf8(s.sup.read_log("escape", Stream::Stdout).unwrap()).unwrap();
    let escaped: u32 = log.trim().parse().unwrap();
    // Without a cgroup nothing can follow it; end it here so the test leaves nothing behind.
    let _ = Command::new("kill")
        .args(["-9", &escaped.to_string()])
        .status();
    let status = status.expect("wait returned while the escaped child still ran");
    assert_eq!(status.unwrap(), plexus_proc::ExitStatus::Exited(0));
}

const HELPER_DIR: &str = "PLEXUS_PROC_TEST_HELPER_DIR";

/// Not a test: the supervisor process that `children_die_with_a_killed_supervisor` kills.
#[test]
#[ignore = "run by children_die_with_a_killed_supervisor"]
fn helper_supervisor() {
    let Some(dir) = std::env::var_os(HELPER_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (sup, _) = Supervisor::start(Config::new(dir)).unwrap();
        let direct = sup
            .spawn("direct", &spec("sleep", &["1000"]))
            .await
            .unwrap();
        let tree = Spec {
            limits: Limits {
                pids: Some(16),
                ..Limits::default()
            },
            ..sh("sleep 1000 & echo $!; wait")
        };
        let (_, mut attached) = sup.spawn_attached("tree", &tree).await.unwrap();
        let escaped = read_until(&mut attached.stdout, "\n").await;
        println!("PIDS {direct} {}", escaped.trim());
        // Keep the streams read so nothing blocks, until the test kills this process.
        loop {
            let _ = drain(&mut attached).await;
            tokio::time::sleep(Duration::from_secs(1000)).await;
        }
    });
}

#[tokio::test]
async fn children_die_with_a_killed_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["helper_supervisor", "--exact", "--ignored", "--nocapture"])
        .env(HELPER_DIR, &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("PIDS "))
    });
    let line = tokio::time::timeout(DEADLINE, line)
        .await
        .unwrap()
        .unwrap()
        .expect("helper's pids");
    let pids: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    let [direct, escaped] = pids[..] else {
        panic!("{line}")
    };
    assert!(alive(direct) && alive(escaped));

    helper.kill().unwrap(); // SIGKILL: no cleanup code runs in the helper.
    helper.wait().unwrap();
    wait_until("the direct child to die by its parent-death signal", || {
        !alive(direct)
    })
    .await;

    // The grandchild had no parent-death signal; the next start finds and kills it.
    let (sup, mut lost) = Supervisor::start(Config::new(&state)).unwrap();
    lost.sort();
    assert_eq!(lost, ["direct", "tree"]);
    wait_until("the escaped grandchild to be killed", || !alive(escaped)).await;
    let journal = std::fs::read_to_string(state.join("procs/journal")).unwrap();
    assert_eq!(journal, "", "the new journal starts empty");
    // A second start finds nothing more.
    drop(sup);
    let (_sup, lost) = Supervisor::start(Config::new(&state)).unwrap();
    assert!(lost.is_empty(), "{lost:?}");
}

/// Field 22 of /proc/PID/stat: the start time that, with the pid, names one process.
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace()
        .nth(22 - 3)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn leftovers_kill_only_their_own_process() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("procs")).unwrap();
    let group_leader = || {
        Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let (mut ours, mut reused, mut legacy) = (group_leader(), group_leader(), group_leader());
    let procs = state.join("procs");
    // The same pid as `reused` but another start time: the pid was reused by an unrelated
    // process. `ended` started and ended; the last line was torn by the crash.
    std::fs::write(
        procs.join("journal"),
        format!(
            "+ ours {} {}\n+ reused {} {}\n+ ended 1 1\n- ended\n+ torn 5",
            ours.id(),
            start_ticks(ours.id()),
            reused.id(),
            start_ticks(reused.id()) + 1
        ),
    )
    .unwrap();
    // A node from before the journal kept a pid file per process.
    std::fs::write(
        procs.join("legacy.pid"),
        format!("{} {}\n", legacy.id(), start_ticks(legacy.id())),
    )
    .unwrap();
    std::fs::write(procs.join("garbage.pid"), "not a pid file").unwrap();

    let (_sup, lost) = Supervisor::start(Config::new(&state)).unwrap();
    assert_eq!(lost, ["garbage", "legacy", "ours", "reused"]);
    for child in [&mut ours, &mut legacy] {
        let pid = child.id();
        wait_until("our leftover to be killed", || !alive(pid)).await;
        let killed = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&killed),
            Some(9)
        );
    }
    assert!(
        alive(reused.id()),
        "a process that only shares the pid is left alone"
    );
    reused.kill().unwrap();
    reused.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(&procs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["journal"], "the pid files are gone");
}
