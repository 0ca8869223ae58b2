//! `plx`: the Plexus command-line tool.
//!
//! It runs programs on the cluster (`plx run`, `ps`, `kill`, `logs`, `wait`, `rm`), works with
//! its file tree (`plx fs …`, and `plx mount DIR` to see it as a local directory), and handles
//! units (`plx unit …`), users and their key files (`plx user …`) and signed
//! messages (`plx msg …`). Every command has `--help`. Errors go to standard error with a
//! non-zero exit code (1 for a failed command, 2 for a usage error).

mod cli_io;
mod cmd_cluster;
mod cmd_fs;
mod cmd_img;
mod cmd_mount;
mod cmd_msg;
mod cmd_node;
mod cmd_osh;
mod cmd_proc;
mod cmd_unit;
mod cmd_user;
mod cmd_web;
mod pipeline;
mod shell;

// The client library, under the paths the commands' modules use.
use plexus_client as client;
use plexus_client::home;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Plexus: the machines you own as one computer.
///
/// plx is the one binary of Plexus: it runs a node (`plx node`, or `plx up` in the
/// background), talks to it (`plx` opens the λ shell, `plx send` evaluates one message), shows
/// the cluster's files as a local directory (`plx mount`), and handles units, users and signed
/// messages. With no command, it opens the λ shell on the
/// local node.
#[derive(Parser, Debug)]
#[command(name = "plx", version, max_term_width = 100)]
struct Cli {
    /// Plexus home directory for users and settings [env: PLX_HOME; default: ~/.plexus]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open the λ shell on the local node (the default command).
    Shell {
        /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Evaluate one message on the node and print the result (the scripting interface).
    ///
    /// The result is printed in canonical notation followed by a newline; what services print
    /// on the session's terminal goes to standard output too, in order. An error prints the
    /// error unit on standard error and exits with code 1. A call without a value prints
    /// nothing. Ctrl-C cancels the evaluation.
    /// Example: plx send '(neg 5)@math.calc'   →   -5
    Send(cmd_node::SendArgs),
    /// Start the local node in the background and open the shell on it (--detach: return
    /// once it answers; stop it with `plx down`).
    Up(cmd_node::UpArgs),
    /// Stop the local node (and the local cluster) started by `plx up --detach`.
    Down,
    /// Print a one-time link that logs the current user in to the local node's web desktop
    /// (valid once, for 60 s); opens it in $BROWSER when that is set.
    Web(cmd_web::WebArgs),
    /// Print a one-time token a new node joins the cluster with (`plx node --join TOKEN`).
    Invite(cmd_cluster::InviteArgs),
    /// Every node of the cluster: resources, tags, role, health, leader mark.
    Nodes(cmd_cluster::NodesArgs),
    /// Which node provides which service.
    Services(cmd_cluster::ListArgs),
    /// List the clusters on the LAN whose nodes advertise themselves (`plx node --mdns`).
    Discover(cmd_cluster::DiscoverArgs),
    /// Run a node in the foreground (logs on standard error; stops on Ctrl-C or SIGTERM).
    ///
    /// The node keeps its state in its data directory (identity, key, database) and serves
    /// clients on a Unix socket there. The current user becomes the node's administrator on
    /// first start. Log detail: PLX_LOG=debug.
    Node(cmd_node::NodeArgs),
    #[command(flatten)]
    Proc(cmd_proc::ProcCmd),
    /// The cluster's file tree: ls, stat, mkdir, rm, mv, cp, tree, du, put, get, cat, status,
    /// scrub.
    #[command(subcommand)]
    Fs(cmd_fs::FsCmd),
    /// Mount the cluster's file tree on an empty local directory (FUSE), in the background.
    ///
    /// Programs then read and write the tree's files as local ones. A file written through the
    /// mount is sent when it is closed (or flushed, or fsync'ed): other nodes see its new
    /// content whole from then on. Names and attributes are cached for 1 s. Needs /dev/fuse
    /// and, for users other than root, fusermount3 (Debian: apt-get install fuse3). The mount
    /// process logs to $PLX_HOME/mounts/; `plx umount DIR` (or SIGTERM to it) unmounts.
    Mount(cmd_mount::MountArgs),
    /// Unmount the cluster's file tree from a directory (`plx mount DIR` mounted it).
    Umount(cmd_mount::UmountArgs),
    /// Measure performance against baselines taken in the same run.
    #[command(subcommand)]
    Bench(plexus_bench::BenchCmd),
    /// Images: export an image unit as PNG.
    #[command(subcommand)]
    Img(cmd_img::ImgCmd),
    /// Work with units: format, check, encode, decode, JSON.
    #[command(subcommand)]
    Unit(cmd_unit::UnitCmd),
    /// Manage users (key pairs): new, list, show, use, export, import; invite and join.
    #[command(subcommand)]
    User(cmd_user::UserCmd),
    /// Sign a unit as the current user, or verify a signed message.
    #[command(subcommand)]
    Msg(cmd_msg::MsgCmd),
}

/// glibc's malloc raises its mmap threshold as large blocks are freed, and keeps the multi-MiB
/// buffers a node or a mount moves (chunks, replies, read windows) in a heap per thread: a
/// 2 GiB `plx fs get` peaked the node serving it at 99 MB. One heap, with blocks of 2 MiB or
/// more mapped and given back when freed, keeps it under the bound (61 MB for a 2 GiB put
/// then get) while the usual 1 MiB buffers are reused: a threshold of 256 KiB kept it at
/// 49 MB but mapping every buffer afresh halved the get rate (655–712 against 1,084–1,151
/// MB/s in the same bench).
const MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_MMAP_THRESHOLD_", "2097152"),
    ("MALLOC_ARENA_MAX", "1"),
];

/// Set in the environment of the restart [`give_large_blocks_back`] makes.
const RESTARTED_ENV: &str = "PLX_MALLOC_RESTARTED";

/// Starts this process again (same arguments, same pid) with [`MALLOC_ENV`] set, unless it
/// is set: malloc reads it when the process starts. In the restarted process, takes it out of
/// the environment again, so that the programs a node starts do not inherit it. A failure is
/// reported and ignored. Call it before any thread starts.
fn give_large_blocks_back() {
    if std::env::var_os(RESTARTED_ENV).is_some() {
        std::env::remove_var(RESTARTED_ENV);
        for (name, _) in MALLOC_ENV {
            std::env::remove_var(name);
        }
        return;
    }
    if MALLOC_ENV
        .iter()
        .any(|(name, _)| std::env::var_os(name).is_some())
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let err = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(MALLOC_ENV)
            .env(RESTARTED_ENV, "1")
            .exec(),
        Err(e) => e,
    };
    eprintln!("plx: cannot restart with {}: {err}", MALLOC_ENV[0].0);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let home = || home::Home::locate(cli.home.clone()).map_err(anyhow::Error::from);
    let result: anyhow::Result<i32> = match cli.command {
        None => home().and_then(|h| shell::run(&h, None)),
        Some(Command::Shell { socket }) => home().and_then(|h| shell::run(&h, socket)),
        Some(Command::Send(args)) => home().and_then(|h| cmd_node::run_send(&h, args)),
        Some(Command::Up(args)) => home().and_then(|h| cmd_node::run_up(&h, args)),
        Some(Command::Invite(args)) => home()
            .and_then(|h| cmd_cluster::run_invite(&h, args))
            .map(|()| 0),
        Some(Command::Nodes(args)) => home()
            .and_then(|h| cmd_cluster::run_nodes(&h, args))
            .map(|()| 0),
        Some(Command::Services(args)) => home()
            .and_then(|h| cmd_cluster::run_services(&h, args))
            .map(|()| 0),
        Some(Command::Discover(args)) => cmd_cluster::run_discover(args).map(|()| 0),
        Some(Command::Web(args)) => home().and_then(|h| cmd_web::run_web(&h, args)).map(|()| 0),
        Some(Command::Down) => home().and_then(|h| cmd_node::run_down(&h).map(|()| 0)),
        Some(Command::Node(args)) => home().and_then(|h| cmd_node::run_node(&h, args).map(|()| 0)),
        Some(Command::Proc(cmd)) => home().and_then(|h| cmd_proc::run(&h, cmd)),
        Some(Command::Fs(cmd)) => home().and_then(|h| cmd_fs::run(&h, cmd)),
        Some(Command::Mount(args)) => home().and_then(|h| cmd_mount::run_mount(&h, args)),
        Some(Command::Umount(args)) => cmd_mount::run_umount(args),
        Some(Command::Bench(cmd)) => plexus_bench::run(cmd).map(|()| 0),
        Some(Command::Img(cmd)) => cmd_img::run(cmd).map(|()| 0),
        Some(Command::Unit(cmd)) => cmd_unit::run(cmd).map(|()| 0),
        Some(Command::User(cmd)) => home().and_then(|h| cmd_user::run(&h, cmd)).map(|()| 0),
        Some(Command::Msg(cmd)) => home().and_then(|h| cmd_msg::run(&h, cmd)).map(|()| 0),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("plx: {e:#}");
            ExitCode::FAILURE
        }
    }
}
