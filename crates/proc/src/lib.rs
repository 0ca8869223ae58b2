//! Plexus's process supervisor for one node: it runs programs on this machine and knows nothing
//! of clusters, units or services (the `sys.proc` service is built on top of it).
//!
//! A tour:
//! - [`Supervisor::start`] opens the supervisor on a state directory, killing whatever a crashed
//!   previous run left behind and returning those ids as lost.
//! - [`Supervisor::spawn`] runs a [`Spec`] (program, args, env, cwd, [`Limits`]) under an id of
//!   the caller's choosing, after checking it ([`SpecError`]). Each process has its own process
//!   group, dies with the node (parent-death signal `SIGKILL`), and runs inside its own cgroup
//!   when limits are asked for ([`Enforcement`] says how they were enforced).
//! - Output goes to bounded, rotated logs ([`Supervisor::read_log`], [`Supervisor::tail`],
//!   [`Supervisor::follow`]) and to flow-controlled readers ([`Supervisor::spawn_attached`],
//!   [`Supervisor::attach`]); stdin with [`Supervisor::write_stdin`] and
//!   [`Supervisor::close_stdin`].
//! - [`Supervisor::signal`], [`Supervisor::stop`], [`Supervisor::wait`] and
//!   [`Supervisor::stats`] act on one process; [`Supervisor::shutdown`] on all of them.
//! - [`Supervisor::cache_program`] keeps program files shipped with `--copy`.
//! - [`ancestry`] and [`environment_value`] read a process's parents and its environment from
//!   `/proc` (a node's mount of the file tree asks them whom a process acts for).
//!
//! The behaviour (log format and rotation, limits, shutdown and crashes) is described in
//! `docs/processes.md`.

mod cache;
mod journal;
mod launch;
mod limits;
mod log;
mod spec;
mod stats;
mod supervisor;

pub use cache::{CacheError, MAX_PROGRAM_BYTES};
pub use limits::{CgroupError, Enforcement, Limits};
pub use log::{dropped_marker, Follow, LogError};
pub use spec::{interpreter_for, Field, Spec, SpecError, MAX_ARGS, MAX_ARGV_BYTES};
pub use stats::{ancestry, environment_value, Stats};
pub use supervisor::{
    Attached, Config, ExitStatus, Piped, ProcError, ProcInfo, Sig, SpawnError, StartError, Stream,
    Supervisor, UnknownSignal,
};
