//! `plx web` and the node's side of `plx node --web`: the web desktop's address and login
//! links.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use plexus_web::metrics::{Family, Kind, Sample, Source};

use crate::cmd_node::default_data_dir;
use crate::home::Home;

/// The file in a node's data directory that holds its desktop's address while it serves one.
pub const WEB_ADDR_FILE: &str = "web.addr";

/// The desktop's port `plx up` uses unless told otherwise.
pub const DEFAULT_WEB_PORT: u16 = 7780;

/// Options of `plx web`.
#[derive(Args, Debug)]
pub struct WebArgs {
    /// Data directory of the node whose desktop to log in to [default: $PLX_HOME/node].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log in as this user instead of the current one.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// Binds `addr` for `what` (the web desktop, metrics) before the node starts, so that a
/// taken port stops the node with a clear reason.
pub fn listen(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            "the address is in use (another node's?); choose another with --web HOST:PORT or \
             --metrics HOST:PORT, or `plx up --web-port PORT` / `--no-web`"
                .to_owned()
        } else {
            e.to_string()
        };
        anyhow!("cannot serve {what} on {addr}: {why}")
    })?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(listener)?)
}

/// Records where the node's desktop listens, for `plx web` and `plx up`.
pub fn record(data: &Path, addr: SocketAddr) -> Result<()> {
    let path = data.join(WEB_ADDR_FILE);
    std::fs::write(&path, format!("{addr}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where the desktop of the node with data directory `data` listens, if it serves one.
pub fn recorded(data: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(data.join(WEB_ADDR_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The address people open.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{}/", plexus_web::login::reachable(addr))
}

/// `plx web`: prints a one-time login link to the local node's desktop, and opens it in
/// `$BROWSER` when that is set.
pub fn run_web(home: &Home, args: WebArgs) -> Result<()> {
    let data = args.data.unwrap_or_else(|| default_data_dir(home));
    let addr = recorded(&data).ok_or_else(|| {
        anyhow!(
            "the node of {} serves no web desktop: start it with `plx up`, or `plx node --web \
             127.0.0.1:{DEFAULT_WEB_PORT}`",
            data.display()
        )
    })?;
    let reach = plexus_web::login::reachable(addr);
    std::net::TcpStream::connect_timeout(&reach, Duration::from_secs(2)).map_err(|e| {
        anyhow!(
            "no web desktop answers at {addr} ({e}); is the node of {} running?",
            data.display()
        )
    })?;
    let name = home.acting_user(args.user.as_deref())?;
    let key = home.unlock(&name)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let link = plexus_web::login::link(&key, addr, now_ms, &mut rand_core::OsRng);
    println!("{link}");
    eprintln!("plx: this link logs {name} in once, within 60 s");
    if let Some(browser) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        let opened = std::process::Command::new(&browser)
            .arg(&link)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = opened {
            eprintln!("plx: cannot open {}: {e}", browser.to_string_lossy());
        }
    }
    Ok(())
}

/// What the node measures for `/metrics`: its process, its services' calls, and its view of
/// the cluster's membership and state when it is in one (`docs/metrics.md`).
pub fn figures(node: &plexus_node::Node) -> Source {
    let cluster = node.cluster().map(|c| {
        let (view, raft) = (c.view().clone(), c.raft().clone());
        let changes = Arc::new(Changes::default());
        tokio::spawn(follow_changes(view.clone(), raft.clone(), changes.clone()));
        let links = {
            let c = c.clone();
            move || (c.link_counters(), c.link_traffic())
        };
        (view, raft, changes, links)
    });
    let kernel = node.kernel().clone();
    let processes = node.processes().clone();
    Arc::new(move || {
        let mut families = process_figures();
        families.extend(call_figures(&kernel));
        families.extend(program_figures(&processes));
        if let Some((view, raft, changes, links)) = &cluster {
            families.extend(cluster_figures(view, raft));
            families.extend(changes.figures());
            let (counters, traffic) = links();
            families.extend(link_figures(view, counters, traffic));
        }
        families
    })
}

/// Changes this node has seen since it started: members turning suspect or down, and raft
/// leaders.
#[derive(Default)]
struct Changes {
    suspect: AtomicU64,
    down: AtomicU64,
    leaders: AtomicU64,
}

impl Changes {
    fn figures(&self) -> Vec<Family> {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        vec![
            Family {
                name: "plexus_cluster_member_changes_total",
                help: "Members this node's membership saw turn suspect or down.",
                kind: Kind::Counter,
                samples: vec![
                    Sample::new(vec![("to", "suspect".to_owned())], n(&self.suspect)),
                    Sample::new(vec![("to", "down".to_owned())], n(&self.down)),
                ],
            },
            Family::one(
                "plexus_raft_leader_changes_total",
                "Times the raft leader this node knows changed from one node to another \
                 (looked at every 250 ms and on every membership change).",
                Kind::Counter,
                n(&self.leaders),
            ),
        ]
    }
}

/// How often the raft leader is looked at between membership changes.
const LEADER_EVERY: Duration = Duration::from_millis(250);

/// Counts the changes of the members' health (on each change of the view) and of the raft
/// leader, until the node's runtime ends.
async fn follow_changes(
    view: Arc<plexus_node::cluster::View>,
    raft: plexus_cluster::raft::ClusterRaft,
    changes: Arc<Changes>,
) {
    use plexus_cluster::membership::Health;
    let mut seen = std::collections::HashMap::new();
    let mut leader = raft.metrics().leader;
    let mut changed = view.subscribe();
    let mut tick = tokio::time::interval(LEADER_EVERY);
    loop {
        tokio::select! {
            got = changed.changed() => {
                if got.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {}
        }
        for m in view.roster() {
            let health = view.health(&m.key);
            // A member first seen says nothing of a change (unknown ones start suspect).
            match (seen.insert(m.key, health), health) {
                (Some(before), Health::Suspect) if before != health => {
                    changes.suspect.fetch_add(1, Ordering::Relaxed);
                }
                (Some(before), Health::Down) if before != health => {
                    changes.down.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        let now = raft.metrics().leader;
        if let (Some(before), Some(after)) = (leader, now) {
            if before != after {
                changes.leaders.fetch_add(1, Ordering::Relaxed);
            }
        }
        if now.is_some() {
            leader = now;
        }
    }
}

/// Calls that reached each service on this node: how many, how many failed, how long.
fn call_figures(kernel: &plexus_kernel::Kernel) -> Vec<Family> {
    let label = |name: &str| vec![("service", name.to_owned())];
    let (mut calls, mut errors, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
    for (name, f) in kernel.call_figures() {
        calls.push(Sample::new(label(&name), f.calls as f64));
        errors.push(Sample::new(label(&name), f.errors as f64));
        let bounds = plexus_kernel::LATENCY_BOUNDS.iter().map(f64::to_string);
        let within = f.within.iter().map(|n| *n as f64);
        for (bound, count) in bounds
            .chain(["+Inf".to_owned()])
            .zip(within.chain([f.calls as f64]))
        {
            let mut labels = label(&name);
            labels.push(("le", bound));
            seconds.push(Sample {
                suffix: "_bucket",
                labels,
                value: count,
            });
        }
        for (suffix, value) in [("_sum", f.seconds), ("_count", f.calls as f64)] {
            seconds.push(Sample {
                suffix,
                labels: label(&name),
                value,
            });
        }
    }
    vec![
        Family {
            name: "plexus_service_calls_total",
            help: "Calls that reached each service on this node.",
            kind: Kind::Counter,
            samples: calls,
        },
        Family {
            name: "plexus_service_call_errors_total",
            help: "Calls to each service on this node that ended in an error.",
            kind: Kind::Counter,
            samples: errors,
        },
        Family {
            name: "plexus_service_call_seconds",
            help: "How long the calls to each service on this node took.",
            kind: Kind::Histogram,
            samples: seconds,
        },
    ]
}

/// The programs this node runs (CPU and memory) and its pipe ends (bytes, records, backlog,
/// loss).
fn program_figures(processes: &plexus_services::sys_proc::SysProc) -> Vec<Family> {
    let programs = processes.programs();
    let by_id = |value: fn(&plexus_services::sys_proc::ProgramFigures) -> f64| {
        programs
            .iter()
            .map(|p| Sample::new(vec![("id", p.id.clone())], value(p)))
            .collect()
    };
    let ends = processes.pipe_ends();
    let by_end = |value: fn(&plexus_services::sys_pipe::EndStats) -> u64| {
        ends.iter()
            .map(|e| {
                let side = match e.side {
                    plexus_services::sys_pipe::Side::Out => "out",
                    plexus_services::sys_pipe::Side::In => "in",
                };
                let labels = vec![("pipe", e.pipe.clone()), ("side", side.to_owned())];
                Sample::new(labels, value(e) as f64)
            })
            .collect()
    };
    let mut families = vec![
        Family::one(
            "plexus_programs_running",
            "Programs running on this node.",
            Kind::Gauge,
            programs.len() as f64,
        ),
        Family {
            name: "plexus_program_cpu_cores",
            help: "CPU each program on this node used over its last sampling interval, in cores.",
            kind: Kind::Gauge,
            samples: by_id(|p| p.cpu_cores),
        },
        Family {
            name: "plexus_program_resident_memory_bytes",
            help: "Resident memory of each program on this node.",
            kind: Kind::Gauge,
            samples: by_id(|p| p.rss_bytes as f64),
        },
    ];
    type EndFigure = fn(&plexus_services::sys_pipe::EndStats) -> u64;
    let pipe_families: [(&'static str, &'static str, Kind, EndFigure); 4] = [
        (
            "plexus_pipe_bytes_total",
            "Bytes the consumer of each pipe end on this node took.",
            Kind::Counter,
            |e| e.bytes.load(Ordering::Relaxed),
        ),
        (
            "plexus_pipe_records_total",
            "Records the consumer of each pipe end on this node took, where counted.",
            Kind::Counter,
            |e| e.records.load(Ordering::Relaxed),
        ),
        (
            "plexus_pipe_backlog_bytes",
            "Bytes held at each pipe end on this node.",
            Kind::Gauge,
            |e| e.backlog.load(Ordering::Relaxed),
        ),
        (
            "plexus_pipe_lost_bytes_total",
            "Bytes lost at each pipe end on this node when an end was replaced.",
            Kind::Counter,
            |e| e.lost.load(Ordering::Relaxed),
        ),
    ];
    families.extend(pipe_families.map(|(name, help, kind, value)| Family {
        name,
        help,
        kind,
        samples: by_end(value),
    }));
    families
}

/// This node's links: traffic, connects, and the figures every node measured of its links.
fn link_figures(
    view: &plexus_node::cluster::View,
    counters: plexus_node::cluster::MeshStats,
    traffic: plexus_node::cluster::Traffic,
) -> Vec<Family> {
    let both = |out: u64, inn: u64| {
        vec![
            Sample::new(vec![("direction", "out".to_owned())], out as f64),
            Sample::new(vec![("direction", "in".to_owned())], inn as f64),
        ]
    };
    let mut rtt = Vec::new();
    let mut rate = Vec::new();
    for m in view.roster() {
        let Some(meta) = view.meta(&m.key) else {
            continue;
        };
        for (to, l) in &meta.links {
            let labels = vec![("from", m.name.clone()), ("to", to.clone())];
            rtt.push(Sample::new(labels.clone(), f64::from(l.rtt_us) / 1e6));
            if l.rate > 0 {
                rate.push(Sample::new(labels, l.rate as f64));
            }
        }
    }
    vec![
        Family {
            name: "plexus_link_bytes_total",
            help: "Bytes this node's links wrote and read, frame headers included.",
            kind: Kind::Counter,
            samples: both(traffic.bytes_out, traffic.bytes_in),
        },
        Family {
            name: "plexus_link_frames_total",
            help: "Frames this node's links wrote and read.",
            kind: Kind::Counter,
            samples: both(traffic.frames_out, traffic.frames_in),
        },
        Family::one(
            "plexus_link_connects_total",
            "Links this node opened to other nodes, reconnects included.",
            Kind::Counter,
            counters.dials as f64,
        ),
        Family::one(
            "plexus_link_connect_failures_total",
            "Links this node tried to open and could not.",
            Kind::Counter,
            counters.dial_failures as f64,
        ),
        Family::one(
            "plexus_link_accepted_total",
            "Links other nodes opened to this node.",
            Kind::Counter,
            counters.accepted as f64,
        ),
        Family::one(
            "plexus_link_malformed_total",
            "Links closed because the peer sent a malformed frame.",
            Kind::Counter,
            counters.malformed as f64,
        ),
        Family {
            name: "plexus_link_rtt_seconds",
            help: "Round trip of each link, as the node at its from end measured it.",
            kind: Kind::Gauge,
            samples: rtt,
        },
        Family {
            name: "plexus_link_rate_bytes_per_second",
            help: "Rate of each link, as the node at its from end measured it.",
            kind: Kind::Gauge,
            samples: rate,
        },
    ]
}

/// The node process's CPU time and resident memory, from /proc.
fn process_figures() -> Vec<Family> {
    let mut families = Vec::new();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: state (field 3) on; utime and stime are 14, 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        families.push(Family::one(
            "plexus_process_cpu_seconds_total",
            "CPU time the node process has used, user and system.",
            Kind::Counter,
            (user + system) as f64 / per_second as f64,
        ));
    }
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    if let Some(pages) = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
    {
        families.push(Family::one(
            "plexus_process_resident_memory_bytes",
            "Resident memory of the node process.",
            Kind::Gauge,
            (pages * rustix::param::page_size() as u64) as f64,
        ));
    }
    families
}

/// Membership by health and the raft state, as this node sees them.
fn cluster_figures(
    view: &plexus_node::cluster::View,
    raft: &plexus_cluster::raft::ClusterRaft,
) -> Vec<Family> {
    use plexus_cluster::membership::Health;
    let roster = view.roster();
    let count = |health: Health| {
        roster
            .iter()
            .filter(|m| view.health(&m.key) == health)
            .count()
    };
    let members = Family {
        name: "plexus_cluster_members",
        help: "Members of the cluster's roster by health, as this node's membership sees them.",
        kind: Kind::Gauge,
        samples: [
            ("alive", Health::Alive),
            ("suspect", Health::Suspect),
            ("down", Health::Down),
        ]
        .into_iter()
        .map(|(label, h)| Sample::new(vec![("health", label.to_owned())], count(h) as f64))
        .collect(),
    };
    let m = raft.metrics();
    vec![
        members,
        Family::one(
            "plexus_raft_term",
            "The current raft term of the cluster state.",
            Kind::Gauge,
            m.term as f64,
        ),
        Family::one(
            "plexus_raft_last_log_index",
            "Index of the last entry in this node's raft log.",
            Kind::Gauge,
            m.last_log.unwrap_or(0) as f64,
        ),
        Family::one(
            "plexus_raft_applied_index",
            "Index of the last entry this node applied to its copy of the cluster state.",
            Kind::Gauge,
            m.last_applied.unwrap_or(0) as f64,
        ),
        Family::one(
            "plexus_raft_leader",
            "1 when this node is the raft leader, else 0.",
            Kind::Gauge,
            f64::from(u8::from(m.leader == Some(m.id))),
        ),
        Family::one(
            "plexus_raft_leader_known",
            "1 when this node knows a leader, else 0.",
            Kind::Gauge,
            f64::from(u8::from(m.leader.is_some())),
        ),
        Family::one(
            "plexus_raft_voters",
            "Voters of the cluster state.",
            Kind::Gauge,
            m.voters.len() as f64,
        ),
    ]
}
