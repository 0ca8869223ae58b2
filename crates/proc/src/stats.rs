//! CPU and memory of a process, from `/proc` (and its cgroup when it has one).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Live figures of a running process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// CPU use over the last sampling interval, in percent of one core (200 is two cores).
    pub cpu_percent: f64,
    /// Resident memory: of every process in its cgroup when it has one, else of the process.
    pub rss_bytes: u64,
    /// When it was started.
    pub started_at: SystemTime,
}

pub(crate) struct Sample {
    /// utime + stime of the process and of its children it has waited for.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and `)`).
fn stat_fields(pid: i32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is a letter: number it 0 so indexes stay those of proc(5) minus 3.
    Some(
        after_name
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// The process that `pid` (a process, or a thread of one) belongs to, then its parent, its
/// parent's parent, and so on up to the first process (at most 64 of them); empty when there
/// is no such process. Read from `/proc`, so a process that is gone ends the list early.
pub fn ancestry(pid: u32) -> Vec<u32> {
    const MOST: usize = 64;
    /// The `Tgid` and `PPid` lines of `/proc/<pid>/status`.
    fn process_and_parent(pid: u32) -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        Some((field("Tgid:")?, field("PPid:")?))
    }
    let mut out = Vec::new();
    let mut next = pid;
    while next != 0 && out.len() < MOST {
        let Some((process, parent)) = process_and_parent(next) else {
            break;
        };
        out.push(process);
        next = parent;
    }
    out
}

/// The value of the variable `name` in the environment process `pid` started its program
/// with (`None` when it has none, or there is no such process of this user).
pub fn environment_value(pid: u32, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        String::from_utf8(value.to_vec()).ok()
    })
}

/// The start time of `pid` in clock ticks after boot (`None` when there is no such process):
/// with the pid, it names one process for good.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(22 - 3).copied()
}

fn rss_of(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

pub(crate) fn sample(pid: i32, cgroup_dirs: &[PathBuf]) -> Option<Sample> {
    let fields = stat_fields(pid)?;
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    let cpu_ticks = field(14) + field(15) + field(16) + field(17);
    // Any of the process's cgroup directories lists all its processes.
    let members: Option<Vec<i32>> = cgroup_dirs.first().and_then(|dir| {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
        Some(
            procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect(),
        )
    });
    let rss_bytes = match members {
        Some(pids) if !pids.is_empty() => pids.iter().filter_map(|p| rss_of(*p)).sum(),
        _ => rss_of(pid)?,
    };
    Some(Sample {
        cpu_ticks,
        rss_bytes,
    })
}

/// Percent of one core used between two samples `elapsed` apart.
pub(crate) fn cpu_percent(before_ticks: u64, after_ticks: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    let ticks_per_sec = rustix::param::clock_ticks_per_second() as f64;
    let used = after_ticks.saturating_sub(before_ticks) as f64 / ticks_per_sec;
    used / secs * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_belongs_to_its_process_whose_parents_follow() {
        let me = std::process::id();
        // `/proc/thread-self` links to `PID/task/TID`.
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        let thread: u32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let line = ancestry(thread);
        assert_eq!(line.first(), Some(&me), "{line:?}");
        assert_eq!(
            line.get(1).copied(),
            rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32)
        );
        assert!(line.len() >= 2 && line.len() <= 64);
        assert!(ancestry(0).is_empty());
        assert!(ancestry(u32::MAX).is_empty());
    }

    #[test]
    fn a_childs_environment_is_read() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("PLX_TEST_VAR", "k7f2q1")
            .env("PLX_TEST_VARIANT", "other")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until the child has run `sleep`, its environment is a copy of this process's.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            got = environment_value(pid, "PLX_TEST_VAR");
            std::thread::sleep(Duration::from_millis(5));
        }
        let missing = environment_value(pid, "PLX_TEST_NOT_SET");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got.as_deref(), Some("k7f2q1"));
        assert_eq!(missing, None);
        assert_eq!(environment_value(u32::MAX, "PATH"), None);
    }

    #[test]
    fn own_process_has_stats() {
        let me = std::process::id() as i32;
        assert!(start_ticks(me).is_some());
        let s = sample(me, &[]);
        assert!(s.is_some_and(|s| s.rss_bytes > 0));
    }

    #[test]
    fn percent_of_a_core() {
        let hz = rustix::param::clock_ticks_per_second();
        assert_eq!(cpu_percent(0, hz, Duration::from_secs(2)), 50.0);
        assert_eq!(cpu_percent(5, 3, Duration::from_secs(1)), 0.0);
        assert_eq!(cpu_percent(0, 10, Duration::ZERO), 0.0);
    }
}
