//! Plexus built-in services: vnix's set, done right.
//!
//! | service | what |
//! |---|---|
//! | `io.term` | the session's terminal: say, inp, get… |
//! | `io.store` | the persistent unit store |
//! | `dat.proc` | data processing: len, sort, map, fold… |
//! | `dat.gen` | data generators: ranges, random values |
//! | `time.chrono` | waiting, uptime, benchmarks |
//! | `gfx.2d` | 2-D images |
//! | `math.calc` | exact arithmetic on ints and decimals |
//! | `sys.task` | tasks: loops, queues, chains, kill |
//! | `sys.usr` | the user registry |
//! | `sys.hw` | this node's hardware |
//! | `sys.proc` | programs on the nodes: run, ps, kill, logs, graphs of programs joined by pipes (registered by the node) |
//! | `sys.pipe` | the frames of pipes between processes, and this node's pipe ends (registered by the node) |
//! | `test.dump`, `test.echo`, `test.void` | testing aids |
//!
//! [`register_all`] registers them on a kernel in that order.
//!
//! Each service's commands are one [`plexus_kernel::Table`]: an entry per command gives its
//! help, its names and argument shape, and what runs it, so adding a command is adding an
//! entry. The `test.*` services take any message and have no table; `gfx.2d` also takes a
//! colour alone and `io.term` anything it can print, and both read maps by their keys
//! wherever they are.

pub mod dat_gen;
pub mod dat_proc;
pub mod directory;
pub mod forms;
pub mod gfx_2d;
pub mod io_fs;
pub mod io_store;
pub mod io_term;
pub mod math_calc;
pub mod sys_hw;
pub mod sys_pipe;
pub mod sys_proc;
pub mod sys_task;
pub mod sys_usr;
pub mod test_svc;
pub mod testing;
pub mod time_chrono;

use std::path::Path;
use std::sync::Arc;

use plexus_kernel::{Cx, Error, Kernel, Policy};
use plexus_store::{NodeDb, Once, StoreError};

/// The io.store content a new node starts with (units text).
pub use sys_task::SEED;

/// A store failure as the kernel error a service returns: the store's code and message, and
/// the path for a `not.found`.
pub fn store_error(e: StoreError) -> Error {
    let err = Error::new(e.code(), e.to_string());
    match e.path() {
        Some(p) => err.with("path", plexus_units::Unit::Ref(p.clone())),
        None => err,
    }
}

/// What makes a change made for a signed message take effect once
/// ([`plexus_store::OnceTables`]): the message and this evaluation of it.
pub(crate) fn once(cx: &Cx) -> Option<Once> {
    cx.evaluation().map(|e| Once {
        message: *cx.root_hash(),
        time_ms: e.time_ms,
        evaluation: e.id,
    })
}

/// Registers every built-in service on `kernel`, in vnix's order, storing data in `db`
/// (`data_dir` is reported by `sys.hw`), with the users `db` holds registered and
/// registration left to the admin. `io.store` admits registered users; the others admit
/// anyone whose signature verifies (the node's socket is private to its OS user).
pub fn register_all(kernel: &Kernel, db: Arc<NodeDb>, data_dir: &Path) -> Result<(), Error> {
    register_all_with(kernel, Backing::local(db.clone()), data_dir)?;
    sys_usr::load_users(kernel, &db)?;
    Ok(())
}

/// Where the services keep what outlives a call: a single node's database, or a cluster's
/// replicated state.
pub struct Backing {
    /// io.store's entries.
    pub store: Arc<dyn plexus_store::UnitStore>,
    /// sys.usr's registrations.
    pub users: Arc<dyn sys_usr::Registry>,
    /// Who may register keys.
    pub registration: sys_usr::Registration,
    /// The process table (the process service's records).
    pub procs: Arc<dyn plexus_store::ProcTable>,
}

impl Backing {
    /// Everything in a single node's database; registration by the admin.
    pub fn local(db: Arc<NodeDb>) -> Backing {
        Backing {
            store: db.clone(),
            procs: db.clone(),
            users: db,
            registration: sys_usr::Registration::Admin,
        }
    }
}

/// [`register_all`] on `backing` (a cluster's replicated state, say). Registers no users:
/// load them with [`sys_usr::load_users`], or let the cluster's state bring them.
pub fn register_all_with(kernel: &Kernel, backing: Backing, data_dir: &Path) -> Result<(), Error> {
    let services = [
        (io_term::service(), Policy::Anyone),
        (io_store::service(backing.store), Policy::Registered),
        (dat_proc::service(), Policy::Anyone),
        (dat_gen::service(), Policy::Anyone),
        (time_chrono::service(), Policy::Anyone),
        (gfx_2d::service(), Policy::Anyone),
        (math_calc::service(), Policy::Anyone),
        (sys_task::service(), Policy::Anyone),
        (
            sys_usr::service(backing.users, backing.registration),
            Policy::Anyone,
        ),
        (sys_hw::service(data_dir.to_owned()), Policy::Anyone),
        (test_svc::dump(), Policy::Anyone),
        (test_svc::echo(), Policy::Anyone),
        (test_svc::void(), Policy::Anyone),
    ];
    for (service, policy) in services {
        kernel.register(service, None, policy)?;
    }
    Ok(())
}

/// Opens (or creates) a node's database at `path` and seeds io.store on first start.
pub fn open_db(path: &Path) -> Result<Arc<NodeDb>, Error> {
    let db =
        NodeDb::open(path).map_err(|e| Error::new(plexus_kernel::code::STORAGE, e.to_string()))?;
    let seed = plexus_units::parse(SEED)
        .map_err(|e| Error::internal(format!("the built-in seed does not parse: {e}")))?;
    db.seed_if_empty(&seed)
        .map_err(|e| Error::new(plexus_kernel::code::STORAGE, e.to_string()))?;
    Ok(Arc::new(db))
}
