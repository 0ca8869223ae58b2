//! Resource limits: cgroup v2, cgroup v1 per controller, or rlimits (set by the child before
//! exec, in `launch`).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::spec::SpecError;

/// Per-process resource limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Memory in bytes.
    pub mem: Option<u64>,
    /// CPU in cores (fractional: 0.5 is half a core).
    pub cpu: Option<f64>,
    /// Number of processes and threads.
    pub pids: Option<u64>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        self.mem.is_none() && self.cpu.is_none() && self.pids.is_none()
    }

    pub(crate) fn check(&self) -> Result<(), SpecError> {
        if self.mem == Some(0) {
            return Err(SpecError::BadLimit { name: "mem" });
        }
        if self.pids == Some(0) {
            return Err(SpecError::BadLimit { name: "pids" });
        }
        if self.cpu.is_some_and(|c| !c.is_finite() || c <= 0.0) {
            return Err(SpecError::BadLimit { name: "cpu" });
        }
        Ok(())
    }
}

/// How a process's limits are enforced (for `ps --long`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enforcement {
    /// A cgroup v2 directory of its own (`memory.max`, `cpu.max`, `pids.max`).
    CgroupV2,
    /// One cgroup v1 directory per controller (memory, cpu, pids).
    CgroupV1,
    /// `RLIMIT_AS` for memory and `RLIMIT_NPROC` for pids; CPU is not limited.
    Rlimits,
    /// No limits were asked for.
    #[default]
    None,
}

impl std::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Enforcement::CgroupV2 => "cgroup-v2",
            Enforcement::CgroupV1 => "cgroup-v1",
            Enforcement::Rlimits => "rlimits",
            Enforcement::None => "none",
        })
    }
}

/// Why a process's cgroup could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {}: {source}", path.display())]
pub struct CgroupError {
    /// The file or directory.
    pub path: PathBuf,
    /// The failure.
    #[source]
    pub source: std::io::Error,
}

/// The CFS period written with a CPU quota, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// Where this supervisor may create cgroups: its own directories under the node's cgroups.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CgroupRoots {
    /// One directory with memory, cpu and pids enabled for its children.
    V2(PathBuf),
    /// A directory per controller: memory, cpu, pids.
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        pids: PathBuf,
    },
    /// Neither can be used.
    Unavailable,
}

fn offers_all(controllers: &str) -> bool {
    ["memory", "cpu", "pids"]
        .iter()
        .all(|want| controllers.split_whitespace().any(|c| c == *want))
}

/// One mount from `/proc/self/mountinfo`: mount point, file system type, super options.
fn mounts(mountinfo: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    mountinfo.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let super_opts = right.nth(1).unwrap_or("");
        Some((mount_point, fstype, super_opts))
    })
}

/// This process's cgroup path for a v1 controller (or v2 with `controller == ""`), from
/// `/proc/self/cgroup`.
fn own_cgroup<'a>(proc_cgroup: &'a str, controller: &str) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        matches.then_some(path)
    })
}

/// Finds where cgroups can go, from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`;
/// `controllers` reads a v2 directory's `cgroup.controllers`. `leaf` is this supervisor's own
/// directory name; nothing is created here.
pub(crate) fn plan_roots(
    mountinfo: &str,
    proc_cgroup: &str,
    leaf: &str,
    controllers: impl Fn(&Path) -> Option<String>,
) -> CgroupRoots {
    let under = |mount: &str, own: &str| -> PathBuf {
        Path::new(mount)
            .join(own.trim_start_matches('/'))
            .join(leaf)
    };
    let v2 = mounts(mountinfo).find(|(_, fstype, _)| *fstype == "cgroup2");
    if let (Some((mount, _, _)), Some(own)) = (v2, own_cgroup(proc_cgroup, "")) {
        let dir = Path::new(mount).join(own.trim_start_matches('/'));
        if controllers(&dir).is_some_and(|c| offers_all(&c)) {
            return CgroupRoots::V2(under(mount, own));
        }
    }
    let v1 = |controller: &str| -> Option<PathBuf> {
        let (mount, _, _) = mounts(mountinfo).find(|(_, fstype, opts)| {
            *fstype == "cgroup" && opts.split(',').any(|o| o == controller)
        })?;
        Some(under(mount, own_cgroup(proc_cgroup, controller)?))
    };
    match (v1("memory"), v1("cpu"), v1("pids")) {
        (Some(memory), Some(cpu), Some(pids)) => CgroupRoots::V1 { memory, cpu, pids },
        _ => CgroupRoots::Unavailable,
    }
}

impl CgroupRoots {
    /// Detects the node's cgroups and creates this supervisor's directories; `Unavailable` when
    /// they cannot be created (read-only, not root, no controllers).
    pub(crate) fn detect(leaf: &str) -> CgroupRoots {
        let (Ok(mountinfo), Ok(proc_cgroup)) = (
            std::fs::read_to_string("/proc/self/mountinfo"),
            std::fs::read_to_string("/proc/self/cgroup"),
        ) else {
            return CgroupRoots::Unavailable;
        };
        let controllers = |dir: &Path| std::fs::read_to_string(dir.join("cgroup.controllers")).ok();
        let roots = plan_roots(&mountinfo, &proc_cgroup, leaf, controllers);
        let usable = match &roots {
            CgroupRoots::V2(dir) => {
                // A cgroup's children get a controller only when it hands it down. The node's
                // own cgroup may already do so, or may refuse (it holds processes): then `dir`
                // lacks a controller and v2 is not used.
                let enable = |d: &Path| {
                    std::fs::write(d.join("cgroup.subtree_control"), "+memory +cpu +pids")
                };
                if let Some(own) = dir.parent() {
                    let _ = enable(own);
                }
                std::fs::create_dir_all(dir).is_ok()
                    && controllers(dir).is_some_and(|c| offers_all(&c))
                    && enable(dir).is_ok()
            }
            CgroupRoots::V1 { memory, cpu, pids } => [memory, cpu, pids]
                .iter()
                .all(|dir| std::fs::create_dir_all(dir).is_ok()),
            CgroupRoots::Unavailable => false,
        };
        if usable {
            roots
        } else {
            CgroupRoots::Unavailable
        }
    }

    /// This supervisor's directories (they hold one directory per process).
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        match self {
            CgroupRoots::V2(dir) => vec![dir.clone()],
            CgroupRoots::V1 { memory, cpu, pids } => {
                vec![memory.clone(), cpu.clone(), pids.clone()]
            }
            CgroupRoots::Unavailable => Vec::new(),
        }
    }

    /// Creates the cgroup(s) for process `id` with `limits` written; the caller moves the child
    /// in before it execs.
    pub(crate) fn create(&self, id: &str, limits: &Limits) -> Result<ProcCgroup, CgroupError> {
        let write = |path: PathBuf, value: String| {
            std::fs::write(&path, value).map_err(|source| CgroupError { path, source })
        };
        let mkdir = |path: PathBuf| {
            std::fs::create_dir(&path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map(|()| path.clone())
                .map_err(|source| CgroupError { path, source })
        };
        let enforcement;
        let mut dirs = Vec::new();
        match self {
            CgroupRoots::V2(root) => {
                let dir = mkdir(root.join(id))?;
                dirs.push(dir.clone());
                if let Some(mem) = limits.mem {
                    write(dir.join("memory.max"), mem.to_string())?;
                    // Without swap the limit is the limit: a hog is killed, not swapped out.
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let Some(cpu) = limits.cpu {
                    write(
                        dir.join("cpu.max"),
                        format!("{} {CPU_PERIOD_US}", quota_us(cpu)),
                    )?;
                }
                if let Some(pids) = limits.pids {
                    write(dir.join("pids.max"), pids.to_string())?;
                }
                enforcement = Enforcement::CgroupV2;
            }
            CgroupRoots::V1 { memory, cpu, pids } => {
                let mem_dir = mkdir(memory.join(id))?;
                let cpu_dir = mkdir(cpu.join(id))?;
                let pids_dir = mkdir(pids.join(id))?;
                dirs.extend([mem_dir.clone(), cpu_dir.clone(), pids_dir.clone()]);
                if let Some(mem) = limits.mem {
                    write(mem_dir.join("memory.limit_in_bytes"), mem.to_string())?;
                    let _ = std::fs::write(
                        mem_dir.join("memory.memsw.limit_in_bytes"),
                        mem.to_string(),
                    );
                }
                if let Some(cores) = limits.cpu {
                    write(cpu_dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())?;
                    write(
                        cpu_dir.join("cpu.cfs_quota_us"),
                        quota_us(cores).to_string(),
                    )?;
                }
                if let Some(max) = limits.pids {
                    write(pids_dir.join("pids.max"), max.to_string())?;
                }
                enforcement = Enforcement::CgroupV1;
            }
            CgroupRoots::Unavailable => {
                return Ok(ProcCgroup {
                    dirs,
                    procs_files: Vec::new(),
                    enforcement: Enforcement::Rlimits,
                })
            }
        }
        let procs_files = dirs
            .iter()
            .map(|d| {
                let path = d.join("cgroup.procs");
                CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| CgroupError {
                    path,
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ProcCgroup {
            dirs,
            procs_files,
            enforcement,
        })
    }
}

fn quota_us(cores: f64) -> u64 {
    // The kernel refuses quotas under 1 ms.
    ((cores * CPU_PERIOD_US as f64) as u64).max(1000)
}

/// The cgroup directories of one process.
#[derive(Debug, Default)]
pub(crate) struct ProcCgroup {
    pub dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory, ready for the child to write without allocating.
    pub procs_files: Vec<CString>,
    pub enforcement: Enforcement,
}

/// Kills every process in a cgroup directory and removes it. Best effort: a directory that
/// stays busy is left for the next start's sweep.
pub(crate) fn kill_and_remove(dir: &Path) {
    for _ in 0..50 {
        let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            // Killed processes leave the cgroup only once they are reaped.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const CGROUP_V1: &str = "8:pids:/\n4:memory:/api/fc83\n1:cpu:/\n0::/\n";

    #[test]
    fn v1_controllers_under_own_cgroups() {
        // The unified mount offers no controllers here.
        let roots = plan_roots(MOUNTINFO_V1, CGROUP_V1, "plexus-x", |_| Some(String::new()));
        assert_eq!(
            roots,
            CgroupRoots::V1 {
                memory: "/sys/fs/cgroup/memory/api/fc83/plexus-x".into(),
                cpu: "/sys/fs/cgroup/cpu/plexus-x".into(),
                pids: "/sys/fs/cgroup/pids/plexus-x".into(),
            }
        );
    }

    #[test]
    fn missing_controller_means_unavailable() {
        let none = |_: &Path| None;
        let no_pids: String = MOUNTINFO_V1
            .lines()
            .filter(|l| !l.ends_with("pids"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            plan_roots(&no_pids, CGROUP_V1, "p", none),
            CgroupRoots::Unavailable
        );
        assert_eq!(plan_roots("", "", "p", none), CgroupRoots::Unavailable);
        assert_eq!(
            plan_roots("garbage\n\n - \n", "::::\n", "p", none),
            CgroupRoots::Unavailable
        );
    }

    #[test]
    fn v2_when_its_cgroup_offers_all_three() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let proc_cgroup = "0::/system.slice/plexus.service\n";
        let own = Path::new("/sys/fs/cgroup/system.slice/plexus.service");
        let offers = |list: &'static str| move |dir: &Path| (dir == own).then(|| list.to_owned());
        assert_eq!(
            plan_roots(
                mountinfo,
                proc_cgroup,
                "plexus-x",
                offers("cpuset cpu io memory pids")
            ),
            CgroupRoots::V2(own.join("plexus-x"))
        );
        assert_eq!(
            plan_roots(mountinfo, proc_cgroup, "p", offers("cpu io memory")),
            CgroupRoots::Unavailable
        );
    }

    #[test]
    fn limits_must_be_positive() {
        assert!(Limits {
            mem: Some(0),
            ..Limits::default()
        }
        .check()
        .is_err());
        assert!(Limits {
            pids: Some(0),
            ..Limits::default()
        }
        .check()
        .is_err());
        for cpu in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Limits {
                cpu: Some(cpu),
                ..Limits::default()
            }
            .check()
            .is_err());
        }
        assert!(Limits {
            mem: Some(1),
            cpu: Some(0.25),
            pids: Some(1)
        }
        .check()
        .is_ok());
        assert_eq!(quota_us(0.5), 50_000);
        assert_eq!(quota_us(0.000_001), 1000);
    }
}
