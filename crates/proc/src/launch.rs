//! Starting a program as `posix_spawn` does, plus what `posix_spawn` cannot do.
//!
//! The child is made by `clone(CLONE_VM | CLONE_VFORK)`: it borrows the node's memory and the
//! calling thread waits until it has called `execve` (or failed). Before that it sets the
//! parent-death signal, joins its cgroups, sets rlimits, gets its own process group, changes
//! directory and takes its pipes as stdin, stdout and stderr. Its exit is followed through a
//! pidfd (`CLONE_PIDFD`), so no SIGCHLD handler or process-wide reaper is involved.
//!
//! Why not `std::process::Command` with a `pre_exec` hook: any hook makes std `fork`, and
//! forking a node (tens of MB mapped, many threads) copies its page tables and faults them back
//! in: about 0.7 ms a start, against about 0.06 ms here (`plx bench proc` (a) and (b)). This
//! module is the crate's only unsafe code.

use std::ffi::{c_int, c_void, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Resource, Rlimit, Signal, WaitId, WaitIdOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::supervisor::ExitStatus;

/// The file-creation mask programs start with.
const PROGRAM_UMASK: u32 = 0o022;

/// The child's stack while it prepares the exec: it runs a few system calls only.
const CHILD_STACK_BYTES: usize = 64 << 10;

/// What the child does between `clone` and `execve`; all of it prepared by the parent.
pub(crate) struct ChildSetup {
    /// The node's pid: a child whose parent is already another one gives up (see below).
    pub parent: Pid,
    /// `cgroup.procs` files to join.
    pub procs_files: Vec<CString>,
    /// Used only when cgroups are unavailable.
    pub rlimit_as: Option<u64>,
    pub rlimit_nproc: Option<u64>,
}

/// A program ready to start: every string already a C string, so the child allocates nothing.
pub(crate) struct Launch {
    exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    setup: ChildSetup,
}

/// A started program: its pid, a pidfd to follow it, and the parent's ends of its pipes.
pub(crate) struct Launched {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

fn c_string(bytes: &[u8]) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a NUL byte in the command line",
        )
    })
}

impl Launch {
    /// `exe` with `args` (after `argv[0]`, which is `exe`), in this process's environment
    /// with `env` added (replacing same-named variables), in `cwd` if given.
    pub(crate) fn new(
        exe: &Path,
        args: &[String],
        env: &[(String, String)],
        cwd: Option<&Path>,
        setup: ChildSetup,
    ) -> std::io::Result<Launch> {
        let exe_c = c_string(exe.as_os_str().as_bytes())?;
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(exe_c.clone());
        for arg in args {
            argv.push(c_string(arg.as_bytes())?);
        }
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !env.iter().any(|(key, _)| OsStr::new(key) == k))
            .collect();
        vars.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
        let envp = vars
            .into_iter()
            .map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend(v.into_vec());
                c_string(&entry)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let cwd = cwd
            .map(|c| c_string(c.as_os_str().as_bytes()))
            .transpose()?;
        Ok(Launch {
            exe: exe_c,
            argv,
            envp,
            cwd,
            setup,
        })
    }

    /// Starts the program. Returns once it has called `execve`; an error of any step before
    /// (a missing directory, a cgroup that refuses it, an exec failure) is this call's error,
    /// and that child is already reaped.
    #[allow(unsafe_code)]
    pub(crate) fn start(&self) -> std::io::Result<Launched> {
        let [(stdin_read, stdin), (stdout, stdout_write), (stderr, stderr_write)] =
            [pipe()?, pipe()?, pipe()?];
        let argv = null_terminated(&self.argv);
        let envp = null_terminated(&self.envp);
        let child = ChildArgs {
            launch: self,
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            fds: [
                stdin_read.as_raw_fd(),
                stdout_write.as_raw_fd(),
                stderr_write.as_raw_fd(),
            ],
            error: AtomicI32::new(0),
        };
        let mut stack = vec![0u8; CHILD_STACK_BYTES];
        // The stack grows down from its (16-byte aligned) end.
        let top = stack.as_mut_ptr().wrapping_add(CHILD_STACK_BYTES);
        let top = top.wrapping_sub(top as usize % 16);
        let mut pidfd: c_int = -1;
        // SAFETY: every signal is blocked in this thread while the child shares its memory, so
        // no handler of the node's runs on the child's stack; the mask is restored after.
        // `clone` gets a stack that lives until it returns (CLONE_VFORK: it returns once the
        // child has exec'd or exited), an argument that outlives the child's use of it, and
        // the child runs only `child_main`, which allocates nothing and makes system calls
        // only. `pidfd` is written by the kernel (CLONE_PIDFD) before `clone` returns.
        let (pid, clone_error) = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child_main,
                top.cast::<c_void>(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                std::ptr::addr_of!(child).cast_mut().cast::<c_void>(),
                std::ptr::addr_of_mut!(pidfd),
            );
            let clone_error = std::io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            (pid, clone_error)
        };
        drop(stack);
        drop((stdin_read, stdout_write, stderr_write));
        let Some(pid) = Pid::from_raw(pid) else {
            return Err(clone_error);
        };
        // SAFETY: the kernel gave this descriptor to us alone (CLONE_PIDFD).
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let failed = child.error.load(Ordering::SeqCst);
        if failed != 0 {
            // It has exited (CLONE_VFORK): collect it.
            reap(&pidfd);
            return Err(std::io::Error::from_raw_os_error(failed));
        }
        Ok(Launched {
            pid,
            pidfd,
            stdin,
            stdout,
            stderr,
        })
    }
}

/// Kills a started program that cannot be followed (nobody waits for it, or its pipes cannot
/// be registered), with its process group, and collects it: it must not run untracked.
pub(crate) fn abandon(pid: Pid, pidfd: &OwnedFd) {
    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    reap(pidfd);
}

/// Waits for the child behind `pidfd` to exit, and collects it.
fn reap(pidfd: &OwnedFd) {
    let _ = rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED);
}

/// `pidfd` registered with the runtime, which reports it readable once the child has exited.
#[allow(unsafe_code)]
pub(crate) fn follow(pidfd: OwnedFd) -> Result<AsyncFd<OwnedFd>, (OwnedFd, std::io::Error)> {
    // SAFETY: an `OwnedFd` is open, and the same descriptor, for as long as it is owned; the
    // `AsyncFd` owns it.
    unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| e.into_parts())
}

/// Waits for the exit of the child behind `pidfd`, and collects it. A pidfd that cannot be
/// waited on (which does not happen for our own child) counts as a kill.
pub(crate) async fn exit_status(pidfd: &AsyncFd<OwnedFd>) -> ExitStatus {
    let killed = ExitStatus::Killed(Signal::KILL.as_raw());
    loop {
        let Ok(mut ready) = pidfd.readable().await else {
            return killed;
        };
        match collect(pidfd.get_ref()) {
            Ok(Some(status)) => return status,
            Ok(None) => ready.clear_ready(),
            Err(_) => return killed,
        }
    }
}

/// The status of the exited child behind `pidfd` (which must be readable: it has exited),
/// collecting it; `None` if it has not exited after all.
fn collect(pidfd: &OwnedFd) -> std::io::Result<Option<ExitStatus>> {
    let status = rustix::process::waitid(
        WaitId::PidFd(pidfd.as_fd()),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
    )?;
    Ok(
        status.map(|s| match (s.exit_status(), s.terminating_signal()) {
            (Some(code), _) => ExitStatus::Exited(code),
            (None, Some(signal)) => ExitStatus::Killed(signal),
            // A waited-for exit has one or the other.
            (None, None) => ExitStatus::Exited(-1),
        }),
    )
}

/// A pipe whose ends are both close-on-exec and above 2, so that moving the child's ends to
/// 0, 1 and 2 can never overwrite another of them.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let above_stdio = |fd: OwnedFd| -> std::io::Result<OwnedFd> {
        if fd.as_raw_fd() > 2 {
            return Ok(fd);
        }
        Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
    };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// What the child reads (the parent is suspended meanwhile) and where it reports a failure.
struct ChildArgs<'a> {
    launch: &'a Launch,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// The child's ends of its stdin, stdout and stderr pipes.
    fds: [RawFd; 3],
    /// The errno of the step that failed, set before the child exits.
    error: AtomicI32,
}

/// The child, from `clone` to `execve`.
///
/// It shares the node's memory and runs on a borrowed stack: it may only make system calls
/// and read what the parent prepared. It must not allocate, lock, unwind or touch
/// thread-locals other than errno (which is the suspended calling thread's).
#[allow(unsafe_code)]
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` that `Launch::start` keeps alive until this child has
    // exec'd or exited.
    let child = unsafe { &*arg.cast_const().cast::<ChildArgs<'_>>() };
    let errno = match prepare(child) {
        // SAFETY: the pointers are null-terminated arrays of C strings owned by the launch.
        Ok(()) => unsafe {
            libc::execve(child.launch.exe.as_ptr(), child.argv, child.envp);
            errno()
        },
        Err(e) => e.raw_os_error(),
    };
    child.error.store(errno.max(1), Ordering::SeqCst);
    // SAFETY: ends the child without running anything of the parent's (no atexit handlers).
    unsafe { libc::_exit(127) }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Every step before `execve`. Errors are errno values (rustix's are plain numbers).
#[allow(unsafe_code)]
fn prepare(child: &ChildArgs<'_>) -> Result<(), rustix::io::Errno> {
    let setup = &child.launch.setup;
    // The program starts with every signal at its default (the node ignores SIGPIPE and
    // handles others; handlers would point into the node's code). The raw system call,
    // because the C library's wrapper refuses the numbers it reserves for itself.
    let default_action = [0u64; 4];
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed kernel sigaction is SIG_DFL with no flags and an empty mask, and
        // is larger than the kernel's struct on every architecture; the last argument is the
        // kernel's signal set size (64 signals).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<c_void>(),
                8usize,
            );
        }
    }
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    // The node may have died between `clone` and the line above; then the signal would never
    // come, so give up now.
    if rustix::process::getppid() != Some(setup.parent) {
        return Err(rustix::io::Errno::PIPE);
    }
    for file in &setup.procs_files {
        let fd = rustix::fs::open(
            file.as_c_str(),
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // "0" moves the writing process: no pid to format here.
        rustix::io::write(&fd, b"0")?;
    }
    let rlimits = [
        (Resource::As, setup.rlimit_as),
        (Resource::Nproc, setup.rlimit_nproc),
    ];
    for (resource, limit) in rlimits {
        if let Some(limit) = limit {
            let both = Rlimit {
                current: Some(limit),
                maximum: Some(limit),
            };
            rustix::process::setrlimit(resource, both)?;
        }
    }
    rustix::process::setpgid(None, None)?;
    // The usual file-creation mask, not the node's own (077, which keeps its data private):
    // a program's files are made as a login shell would make them.
    rustix::process::umask(Mode::from_raw_mode(PROGRAM_UMASK));
    if let Some(cwd) = &child.launch.cwd {
        rustix::process::chdir(cwd.as_c_str())?;
    }
    for (fd, target) in child.fds.into_iter().zip(0..) {
        // SAFETY: plain system calls on descriptors the parent keeps open; `fd` is above 2
        // (see `pipe`), so no earlier target is overwritten. dup2 clears close-on-exec.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(rustix::io::Errno::from_raw_os_error(errno()));
        }
    }
    // Nothing else the node has open goes with the program, not even descriptors the node
    // itself inherited without close-on-exec (older kernels lack the call: then they do).
    // SAFETY: a plain system call on this child's own descriptor table (no CLONE_FILES).
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    // SAFETY: an empty mask for the program (the parent blocked every signal before clone).
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    Ok(())
}
