//! `sys.hw`: this node's hardware and operating system.
//!
//! `get` gives the whole description:
//!
//! ```text
//! {cpu:{count:8 cores:4 model:`…` load:[0.52 0.48 0.4]}
//!  mem:{total:… free:… used:…}
//!  disk:{path:`/var/lib/plexus` mount:`/` total:… free:… used:…}
//!  arch:x86_64
//!  os:{name:… version:… kernel:… host:…}
//!  up:{host:123456 node:42}}
//! ```
//!
//! and `get.<section>[.<field>]` one part of it (`get.cpu.count`, `get.mem.free`…). Byte
//! quantities (memory, disk) are ints in bytes; a `.kb`, `.mb` or `.gb` suffix gives them in
//! units of 1024, 1024², 1024³ bytes as exact decimals (vnix's `get.mem.free.gb` is kept,
//! without its 32-bit wrap-around). `free` memory is the memory available for new work
//! (free plus reclaimable caches), and `used` is `total - free`. The disk is the file system
//! holding the node's data directory. Uptimes are whole seconds: of the machine (`host`) and
//! of this node (`node`). Load averages (1, 5, 15 minutes) have two decimals; a value the
//! system does not report is `-`.

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock};

use plexus_kernel::{Arg, BoxFuture, Cx, Entry, Error, Example, Help, Outcome, Service, Table};
use plexus_store::SizeUnit;
use plexus_units::{Map, Unit};
use sysinfo::{CpuRefreshKind, System};

const NAME: &str = "sys.hw";

/// The sections of `get`, in order.
const SECTIONS: [&str; 6] = ["cpu", "mem", "disk", "arch", "os", "up"];

/// The `sys.hw` service.
pub struct SysHw {
    data_dir: PathBuf,
}

/// The `sys.hw` service; `data_dir` is the node's data directory (its file system is the
/// `disk` section).
pub fn service(data_dir: PathBuf) -> Arc<dyn Service> {
    Arc::new(SysHw { data_dir })
}

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Hw>> = LazyLock::new(table);

fn table() -> Table<Hw> {
    Table::new(
        NAME,
        "This node's hardware and operating system: processors, memory, disk, \
               architecture, system, uptime",
        vec![Example {
            info: "The sections get gives (their values depend on the machine: try get@sys.hw)",
            com: "keys@sys.hw",
            res: Some("[cpu mem disk arch os up]"),
        }],
        vec![
            Entry::new(
                "get",
                "Everything, as {cpu mem disk arch os up}",
                &["get"],
                Arg::None,
                Hw::Get,
            ),
            Entry::new(
                "get.cpu",
                "Processors: {count (logical) cores (physical, - if unknown) model \
                       load:[1 min, 5 min, 15 min load averages]}, or one field",
                &[
                    "get.cpu",
                    "get.cpu.count",
                    "get.cpu.cores",
                    "get.cpu.model",
                    "get.cpu.load",
                ],
                Arg::None,
                Hw::Get,
            )
            .family(),
            Entry::new(
                "get.mem",
                "Memory in bytes: {total free used}, free being what is available for \
                       new work; or one field; .kb .mb .gb give exact decimals of 1024^n bytes",
                &[
                    "get.mem",
                    "get.mem.total",
                    "get.mem.free",
                    "get.mem.used",
                    "get.mem.free.kb",
                    "get.mem.free.mb",
                    "get.mem.free.gb",
                    "get.mem.gb",
                ],
                Arg::None,
                Hw::Get,
            )
            .family(),
            Entry::new(
                "get.disk",
                "The file system holding the node's data: {path (the data directory) \
                       mount total free used} (bytes), or one field; .kb .mb .gb as for mem. \
                       Sizes are - when the file system is not found",
                &[
                    "get.disk",
                    "get.disk.free",
                    "get.disk.free.gb",
                    "get.disk.total.mb",
                ],
                Arg::None,
                Hw::Get,
            )
            .family(),
            Entry::new(
                "get.arch",
                "The processor architecture (x86_64, aarch64…)",
                &["get.arch"],
                Arg::None,
                Hw::Get,
            ),
            Entry::new(
                "get.os",
                "The operating system: {name version kernel host (host name)}",
                &["get.os", "get.os.name", "get.os.kernel", "get.os.host"],
                Arg::None,
                Hw::Get,
            )
            .family(),
            Entry::new(
                "get.up",
                "Uptimes in seconds: {host (the machine) node (this node)}, or one",
                &["get.up", "get.up.host", "get.up.node"],
                Arg::None,
                Hw::Get,
            )
            .family(),
            Entry::new(
                "keys",
                "The names of the sections of get",
                &["keys"],
                Arg::None,
                Hw::Keys,
            ),
        ],
    )
}

/// What a command does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hw {
    /// A query `get[.section[.field]][.kb|.mb|.gb]`.
    Get,
    Keys,
}

impl Service for SysHw {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some((entry, c)) = TABLE.find(&msg) else {
                return Err(Error::unknown_command(NAME, &msg));
            };
            if entry.run == Hw::Keys {
                return Ok(Some(Unit::List(
                    SECTIONS.iter().map(|s| Unit::str(s)).collect(),
                )));
            }
            let Some(query) = Query::parse(c.name) else {
                return Err(Error::unknown_command(NAME, &msg));
            };
            let node_up = cx.kernel().started().elapsed().as_secs();
            let data_dir = self.data_dir.clone();
            let section = query.section.map(str::to_owned);
            let info = blocking(move || match section {
                None => {
                    let mut m = Map::new();
                    for s in SECTIONS {
                        m.insert(Unit::str(s), gather(s, &data_dir, node_up));
                    }
                    Unit::Map(m)
                }
                Some(s) => gather(&s, &data_dir, node_up),
            })
            .await?;
            query
                .answer(info)
                .map(Some)
                .ok_or_else(|| Error::unknown_command(NAME, &msg))
        })
    }
}

/// `get[.section[.field]][.kb|.mb|.gb]`, read.
struct Query<'a> {
    section: Option<&'a str>,
    field: Option<&'a str>,
    unit: Option<SizeUnit>,
}

impl<'a> Query<'a> {
    fn parse(name: &'a str) -> Option<Query<'a>> {
        let rest = match name.strip_prefix("get") {
            Some("") => "",
            Some(r) => r.strip_prefix('.')?,
            None => return None,
        };
        let mut segs: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        let unit = match segs.last().and_then(|s| SizeUnit::from_suffix(s)) {
            Some(u) if u != SizeUnit::B => {
                segs.pop();
                Some(u)
            }
            _ => None,
        };
        let section = segs.first().copied();
        if section.is_some_and(|s| !SECTIONS.contains(&s)) || segs.len() > 2 {
            return None;
        }
        // Sizes apply to the byte quantities only.
        if unit.is_some() && !matches!(section, Some("mem" | "disk")) {
            return None;
        }
        Some(Query {
            section,
            field: segs.get(1).copied(),
            unit,
        })
    }

    /// The part of `info` (the section, or everything) the query asks for.
    fn answer(&self, info: Unit) -> Option<Unit> {
        let value = match self.field {
            None => info,
            Some(f) => info.as_map()?.get_str(f)?.clone(),
        };
        match self.unit {
            None => Some(value),
            Some(unit) => scale_bytes(value, unit),
        }
    }
}

/// Byte counts (ints) in `unit`; a map has its byte fields scaled and the rest kept.
fn scale_bytes(value: Unit, unit: SizeUnit) -> Option<Unit> {
    let scale = |u: Unit| match u {
        Unit::Int(i) => i
            .to_i64()
            .and_then(|v| u64::try_from(v).ok())
            .map(|v| unit.scale(v)),
        Unit::None => Some(Unit::None),
        _ => None,
    };
    match value {
        Unit::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m.into_entries() {
                let bytes = matches!(k.as_str(), Some("total" | "free" | "used"));
                out.insert(k, if bytes { scale(v)? } else { v });
            }
            Some(Unit::Map(out))
        }
        other => scale(other),
    }
}

/// One section, read from the system (blocking).
fn gather(section: &str, data_dir: &FsPath, node_up: u64) -> Unit {
    match section {
        "cpu" => {
            let mut sys = System::new();
            sys.refresh_cpu_list(CpuRefreshKind::nothing());
            let cpus = sys.cpus();
            let model = cpus
                .first()
                .map(|c| c.brand().trim())
                .filter(|b| !b.is_empty())
                .map_or(Unit::None, Unit::str);
            let load = System::load_average();
            map(vec![
                ("count", uint(cpus.len() as u64)),
                (
                    "cores",
                    System::physical_core_count().map_or(Unit::None, |n| uint(n as u64)),
                ),
                ("model", model),
                (
                    "load",
                    Unit::List(vec![
                        two_places(load.one),
                        two_places(load.five),
                        two_places(load.fifteen),
                    ]),
                ),
            ])
        }
        "mem" => {
            let mut sys = System::new();
            sys.refresh_memory();
            let total = sys.total_memory();
            let free = sys.available_memory().min(total);
            map(vec![
                ("total", uint(total)),
                ("free", uint(free)),
                ("used", uint(total - free)),
            ])
        }
        "disk" => disk(data_dir),
        "arch" => Unit::str(&System::cpu_arch()),
        "os" => {
            let text = |s: Option<String>| s.map_or(Unit::None, |s| Unit::str(&s));
            map(vec![
                ("name", text(System::name())),
                ("version", text(System::os_version())),
                ("kernel", text(System::kernel_version())),
                ("host", text(System::host_name())),
            ])
        }
        "up" => map(vec![
            ("host", uint(System::uptime())),
            ("node", uint(node_up)),
        ]),
        _ => Unit::None,
    }
}

/// The file system holding a directory, and its space in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// Its size.
    pub total: u64,
    /// What an unprivileged user may still write (at most `total`).
    pub free: u64,
}

/// The file system holding `dir`: `statvfs` of the directory itself, and its mount point found
/// by going up while the device stays the same. Only `dir` and its ancestors are looked at,
/// never other mounts: a hung network or FUSE mount elsewhere on the machine cannot block it.
/// A relative `dir` (a node started with `--data node`) is resolved first.
pub fn disk_space(dir: &FsPath) -> Option<DiskSpace> {
    let real = std::fs::canonicalize(dir).ok()?;
    let vfs = rustix::fs::statvfs(&real).ok()?;
    let device = rustix::fs::stat(&real).ok()?.st_dev;
    let mut mount = real.clone();
    while let Some(parent) = mount.parent() {
        if rustix::fs::stat(parent).map_or(true, |s| s.st_dev != device) {
            break;
        }
        mount = parent.to_path_buf();
    }
    let block = vfs.f_frsize;
    let total = vfs.f_blocks.saturating_mul(block);
    Some(DiskSpace {
        mount,
        total,
        free: vfs.f_bavail.saturating_mul(block).min(total),
    })
}

fn disk(data_dir: &FsPath) -> Unit {
    let path = Unit::str(&data_dir.display().to_string());
    match disk_space(data_dir) {
        Some(d) => map(vec![
            ("path", path),
            ("mount", Unit::str(&d.mount.display().to_string())),
            ("total", uint(d.total)),
            ("free", uint(d.free)),
            ("used", uint(d.total - d.free)),
        ]),
        None => map(vec![
            ("path", path),
            ("mount", Unit::None),
            ("total", Unit::None),
            ("free", Unit::None),
            ("used", Unit::None),
        ]),
    }
}

fn map(entries: Vec<(&str, Unit)>) -> Unit {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

fn uint(v: u64) -> Unit {
    Unit::Int(num_bigint::BigInt::from(v).into())
}

/// A load average as an exact decimal with two places; `-` if it is not a number.
fn two_places(v: f64) -> Unit {
    if !v.is_finite() {
        return Unit::None;
    }
    plexus_units::parse(&format!("{v:.2}"))
        .ok()
        .filter(|u| matches!(u, Unit::Dec(_)))
        .unwrap_or(Unit::None)
}

/// Runs blocking work on tokio's blocking threads, or inline outside a tokio runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| Error::internal(format!("reading the hardware failed: {e}"))),
        Err(_) => Ok(f()),
    }
}
