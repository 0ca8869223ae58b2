//! Plexus benchmarks: the harness behind `plx bench`.
//!
//! Each benchmark prints its figures next to a baseline measured in the same run and the
//! target it is held to (`docs/benchmarks.md`). [`BenchCmd`] is the `plx bench` command line
//! and [`run`] runs one: `local` (one node; in `local.rs`) and the cluster benchmarks `rr`,
//! `detect`, `failover`, `store` (`cluster.rs`), `proc` (`cluster/proc.rs`), `web` (`cluster/web.rs`), `fs`
//! (`cluster/fs.rs`) and `pipe` (`cluster/pipe.rs`), which start their own nodes by running
//! the current executable as `plx node` in a temporary directory. The hidden subcommands are
//! the raw baseline peers (echo, relay), a CPU burner and the programs at the ends of `pipe`'s
//! pipes (source, sink, relay, lines, count), which the benchmarks (and the nodes) run the
//! same way, so the executable that calls [`run`] must be `plx`.

mod cluster;
mod local;

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

pub use cluster::{
    DetectArgs, FailoverArgs, FsArgs, PipeArgs, ProcArgs, RrArgs, StoreArgs, WebArgs,
};
pub use local::LocalArgs;

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// One node: kernel round trip, signed client requests, memory at rest.
    Local(LocalArgs),
    /// A 2-node cluster: request/response latency across nodes (vs raw TCP), calls/s with 64
    /// outstanding, node memory at rest; then a 1-node cluster: signed requests/s from 8
    /// connections.
    Rr(RrArgs),
    /// 3-node clusters (profiles default and local): time until every survivor marks a killed
    /// node down; optionally a soak counting false suspicions and leader changes under CPU load.
    Detect(DetectArgs),
    /// A 3-node cluster: time from killing the leader to the first write acknowledged after it.
    Failover(FailoverArgs),
    /// Durable io.store writes/s (1 and 32 clients) and latency, vs this disk's fsync rate.
    Store(StoreArgs),
    /// A 3-node cluster running programs through sys.proc: remote spawn until the first byte
    /// of output (vs a local spawn plus one request–reply), /bin/true runs/s (vs a raw spawn
    /// loop), node memory and ps with 1,000 running processes, rescheduling after a node kill.
    Proc(ProcArgs),
    /// A 3-node cluster's file system: put and get of a large file (vs this disk's raw write
    /// and read rates), 4 KiB files/s from 32 clients (vs its fsync rate), ls of 10,000 files
    /// and stat latency.
    Fs(FsArgs),
    /// A 3-node cluster's pipes: 64 KiB blocks from n1 to n2 (vs a raw relay of the same shape
    /// and raw TCP), 100-byte lines through n1 → n2 → n3 (records/s and latency, vs OS pipes
    /// and the TCP round trip), the bytes a pipe holds for a consumer that never reads.
    Pipe(PipeArgs),
    /// A 3-node cluster's web desktop in headless Chromium (chromedriver): the overview's time
    /// to interactive (vs a static page), its bytes, a killed node shown down (vs the
    /// membership's detection), browser and node CPU with it open (vs no page).
    Web(WebArgs),
    /// (internal) echo frames on a Unix socket: the raw baseline peer.
    #[command(hide = true)]
    EchoPeer {
        /// Socket to listen on.
        socket: PathBuf,
    },
    /// (internal) connect to ADDR over TCP and echo frames: the raw TCP baseline peer.
    #[command(hide = true)]
    TcpEchoPeer {
        /// Address to connect to.
        addr: std::net::SocketAddr,
    },
    /// (internal) listen on SOCKET and on ADDR (TCP) and pass each frame from the first
    /// connection on SOCKET to the first on ADDR and the answer back: the raw relay baseline.
    #[command(hide = true)]
    RelayPeer {
        /// Unix socket to listen on for the client.
        socket: PathBuf,
        /// TCP address to listen on for the echo peer.
        addr: std::net::SocketAddr,
    },
    /// (internal) write BYTES zero bytes in 64 KiB blocks to standard output, or to a TCP
    /// connection to --to (from address --from).
    #[command(hide = true)]
    PipeSource {
        /// Bytes to write.
        bytes: u64,
        /// Address to connect to instead.
        #[arg(long)]
        to: Option<std::net::SocketAddr>,
        /// Local address of that connection.
        #[arg(long)]
        from: Option<std::net::IpAddr>,
    },
    /// (internal) read standard input, or the first connection on --listen, to its end and
    /// print how many bytes came and when the first and the last came.
    #[command(hide = true)]
    PipeSink {
        /// Address to listen on instead.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// (internal) copy standard input to a TCP connection to --to (from address --from), or
    /// the first connection on --listen to standard output, with blocking reads and writes.
    #[command(hide = true)]
    PipeRelay {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address to connect to.
        #[arg(long)]
        to: Option<std::net::SocketAddr>,
        /// Local address of that connection (plain TCP only).
        #[arg(long)]
        from: Option<std::net::IpAddr>,
        /// Over a Plexus link (mutual TLS 1.3, as between nodes) instead of plain TCP.
        #[arg(long)]
        tls: bool,
    },
    /// (internal) write COUNT 100-byte lines, each carrying its send time: as fast as they
    /// go, or one every --every-us microseconds.
    #[command(hide = true)]
    PipeLines {
        /// Lines to write.
        count: u64,
        /// Microseconds between two lines.
        #[arg(long)]
        every_us: Option<u64>,
    },
    /// (internal) count the lines of standard input and print how many came and when; with
    /// --latency, also percentiles of each line's arrival less its send time.
    #[command(hide = true)]
    PipeCount {
        /// Report the lines' delays.
        #[arg(long)]
        latency: bool,
    },
    /// (internal) keep one core busy until killed.
    #[command(hide = true)]
    BusyLoop,
}

/// Runs a `plx bench` command.
pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Local(args) => local::local(args),
        BenchCmd::Rr(args) => cluster::rr(args),
        BenchCmd::Detect(args) => cluster::detect(args),
        BenchCmd::Failover(args) => cluster::failover(args),
        BenchCmd::Store(args) => cluster::store(args),
        BenchCmd::Proc(args) => cluster::proc(args),
        BenchCmd::Fs(args) => cluster::fs(args),
        BenchCmd::Pipe(args) => cluster::pipe(args),
        BenchCmd::Web(args) => cluster::web(args),
        BenchCmd::EchoPeer { socket } => local::echo_peer(&socket),
        BenchCmd::TcpEchoPeer { addr } => local::tcp_echo_peer(addr),
        BenchCmd::RelayPeer { socket, addr } => local::relay_peer(&socket, addr),
        BenchCmd::PipeSource { bytes, to, from } => cluster::pipe_source(bytes, to, from),
        BenchCmd::PipeSink { listen } => cluster::pipe_sink(listen),
        BenchCmd::PipeRelay {
            listen,
            to,
            tls: true,
            ..
        } => cluster::pipe_tls_relay(listen, to),
        BenchCmd::PipeRelay {
            listen, to, from, ..
        } => cluster::pipe_relay(listen, to, from),
        BenchCmd::PipeLines { count, every_us } => cluster::pipe_lines(count, every_us),
        BenchCmd::PipeCount { latency } => cluster::pipe_count(latency),
        BenchCmd::BusyLoop => local::busy_loop(),
    }
}
