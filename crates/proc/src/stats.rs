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
