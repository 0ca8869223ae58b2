//! `plx fs`: the cluster's file tree through the local node's `io.fs` service. `put`, `get`
//! and `cat` stream with [`plexus_client::files`]: a few chunks in flight, whatever the
//! file's size.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use plexus_client::files::{Link, Signed};
use plexus_identity::Keypair;
use plexus_units::{Map, Unit};

use crate::client::{Client, Reply};
use crate::cmd_cluster::runtime;
use crate::cmd_node::socket_path;
use crate::cmd_proc::Common;
use crate::home::Home;

/// `plx fs` commands.
#[derive(Subcommand, Debug, Clone)]
pub enum FsCmd {
    /// List a directory of the cluster tree (/ by default).
    Ls {
        /// The directory.
        path: Option<String>,
        /// Also show how many copies each file has and on which nodes.
        #[arg(short, long)]
        long: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Show one file or directory.
    Stat {
        /// The file or directory.
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// Make a directory.
    Mkdir {
        /// The new directory.
        path: String,
        /// Its mode, three octal digits.
        #[arg(long, default_value = "755")]
        mode: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a file or an empty directory.
    Rm {
        /// The file or directory.
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// Move a file or directory in one step.
    Mv {
        /// What moves.
        from: String,
        /// Where to.
        to: String,
        #[command(flatten)]
        common: Common,
    },
    /// Copy a file of the tree (instant: the copy shares the original's chunks).
    Cp {
        /// The file.
        from: String,
        /// The copy.
        to: String,
        #[command(flatten)]
        common: Common,
    },
    /// Print a directory and everything below it as a tree.
    Tree {
        /// The directory (/ by default).
        path: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Total the sizes of the files below a directory.
    Du {
        /// The directory (/ by default).
        path: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Copy a local file into the tree (it becomes visible whole once sent).
    Put {
        /// The local file.
        local: PathBuf,
        /// Its path in the tree.
        path: String,
        /// Its mode if it is new, three octal digits.
        #[arg(long, default_value = "644")]
        mode: String,
        #[command(flatten)]
        common: Common,
    },
    /// Copy a file of the tree to a local file (written whole, then renamed into place).
    Get {
        /// The file in the tree.
        path: String,
        /// The local file.
        local: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Print a file of the tree.
    Cat {
        /// The file.
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show the file system's health: chunks by copies (ok, short, waiting for a down node,
    /// lost), each node's share and disk, usable space, and repair progress.
    Status {
        /// Print it again every second until no chunk is short of copies.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Read and check every chunk each node keeps, replacing missing or bad copies from good
    /// ones (an admin).
    Scrub {
        /// Only this node.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

impl FsCmd {
    fn common(&self) -> &Common {
        match self {
            FsCmd::Ls { common, .. }
            | FsCmd::Stat { common, .. }
            | FsCmd::Mkdir { common, .. }
            | FsCmd::Rm { common, .. }
            | FsCmd::Mv { common, .. }
            | FsCmd::Cp { common, .. }
            | FsCmd::Tree { common, .. }
            | FsCmd::Du { common, .. }
            | FsCmd::Put { common, .. }
            | FsCmd::Get { common, .. }
            | FsCmd::Cat { common, .. }
            | FsCmd::Status { common, .. }
            | FsCmd::Scrub { common, .. } => common,
        }
    }
}

impl FsCmd {
    /// The same command with each of its tree paths read against the working directory `cwd`
    /// (the λ shell's), as absolute paths.
    pub fn resolved(mut self, cwd: &plexus_fs::FsPath) -> Result<FsCmd> {
        let fix = |p: &mut String| -> Result<()> {
            *p = cwd.resolve(p).map_err(|e| anyhow!("{e}"))?.to_string();
            Ok(())
        };
        match &mut self {
            FsCmd::Ls { path, .. } | FsCmd::Tree { path, .. } | FsCmd::Du { path, .. } => {
                let mut p = path.take().unwrap_or_else(|| ".".to_owned());
                fix(&mut p)?;
                *path = Some(p);
            }
            FsCmd::Stat { path, .. }
            | FsCmd::Mkdir { path, .. }
            | FsCmd::Rm { path, .. }
            | FsCmd::Put { path, .. }
            | FsCmd::Get { path, .. }
            | FsCmd::Cat { path, .. } => fix(path)?,
            FsCmd::Mv { from, to, .. } | FsCmd::Cp { from, to, .. } => {
                fix(from)?;
                fix(to)?;
            }
            FsCmd::Status { .. } | FsCmd::Scrub { .. } => {}
        }
        Ok(self)
    }

    /// Whether `--user` or `--socket` was given (the λ shell acts as its user on its node).
    pub fn acts_as_another(&self) -> bool {
        let c = self.common();
        c.user.is_some() || c.socket.is_some()
    }
}

/// Runs `cmd` (paths already absolute) on `client` as `key`: what `plx fs` and the λ shell's
/// file commands do.
pub async fn execute_on(client: &mut Client, key: &Keypair, cmd: FsCmd) -> Result<i32> {
    execute(client, key, cmd).await
}

/// Whether the directory `path` exists for the user of `link` (the λ shell's `cd`).
pub async fn is_dir(link: &mut impl Link, path: &str) -> Result<bool> {
    let body = map_of([("stat", Unit::from(path.to_owned()))]);
    let stat = plexus_client::files::call(link, body).await?;
    Ok(matches!(field(&stat, "kind"), Some(k) if k.as_str() == Some("dir")))
}

fn map_of(entries: impl IntoIterator<Item = (&'static str, Unit)>) -> Unit {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

fn field<'a>(u: &'a Unit, key: &str) -> Option<&'a Unit> {
    u.as_map().and_then(|m| m.get_str(key))
}

fn text_of(u: Option<&Unit>) -> String {
    match u {
        Some(Unit::Str(s)) => s.to_string(),
        Some(other) => plexus_units::to_text(other),
        None => "-".to_owned(),
    }
}

/// Shows transfer progress on standard error when it is a terminal.
struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    shown: bool,
}

impl Progress {
    fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total,
            done: 0,
            shown: std::io::stderr().is_terminal(),
        }
    }

    fn add(&mut self, n: u64) {
        self.done += n;
        if self.shown {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
            eprint!(
                "\r{} {:.1} of {:.1} MiB ({percent}%)",
                self.what,
                mib(self.done),
                mib(self.total)
            );
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// `plx fs …`.
pub fn run(home: &Home, cmd: FsCmd) -> Result<i32> {
    let common = cmd.common();
    let key = home.unlock(&home.acting_user(common.user.as_deref())?)?;
    let socket = socket_path(home, common.socket.clone());
    runtime()?.block_on(async {
        let mut client = Client::connect(&socket).await?;
        execute(&mut client, &key, cmd).await
    })
}

async fn execute(client: &mut Client, key: &Keypair, cmd: FsCmd) -> Result<i32> {
    if !matches!(cmd, FsCmd::Cat { .. }) {
        let mut out = String::new();
        if browse(&mut Signed::new(client, key), &cmd, &mut out).await? {
            print!("{out}");
            return Ok(0);
        }
    }
    match cmd {
        FsCmd::Ls { .. }
        | FsCmd::Stat { .. }
        | FsCmd::Mkdir { .. }
        | FsCmd::Rm { .. }
        | FsCmd::Mv { .. }
        | FsCmd::Cp { .. }
        | FsCmd::Tree { .. }
        | FsCmd::Du { .. } => {}
        FsCmd::Status { watch, .. } => loop {
            let status = call_leader(client, key, Unit::str("status")).await?;
            print!("{}", status_text(&status));
            let settled = ["short", "waiting"]
                .iter()
                .all(|k| number(&status, k) == Some(0));
            if !watch || settled {
                break;
            }
            println!();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        },
        FsCmd::Scrub { node, .. } => {
            let nodes = match node {
                Some(n) => vec![n],
                None => node_names(client, key).await?,
            };
            let mut failed = 0;
            for node in nodes {
                if std::io::stderr().is_terminal() {
                    eprint!("scrubbing {node}…\r");
                }
                let msg = plexus_client::sign_with(
                    key,
                    Unit::Stream(Box::new(plexus_units::Stream::new(
                        Unit::str("scrub"),
                        "io.fs",
                        Some(&node),
                    )?)),
                )?;
                match client.call(&msg, None, std::future::pending()).await? {
                    Reply::Value(v) => {
                        let n = |k| number(&v, k).unwrap_or(0);
                        failed += n("failed");
                        println!(
                            "{node}: {} chunks ({}) checked, {} bad, {} mended, {} not mended",
                            n("checked"),
                            size_text(n("bytes")),
                            n("bad"),
                            n("mended"),
                            n("failed")
                        );
                    }
                    Reply::Nothing => println!("{node}: nothing to check"),
                    Reply::Error(e) => bail!("{node}: {}: {}", e.code(), e.message()),
                }
            }
            if failed > 0 {
                return Ok(1);
            }
        }
        FsCmd::Put {
            local, path, mode, ..
        } => put(client, key, &local, path, mode).await?,
        FsCmd::Get { path, local, .. } => {
            // Into a directory, as `cp` does: under the file's own name.
            let local = match plexus_fs::FsPath::parse(&path)
                .ok()
                .and_then(|p| p.name().map(str::to_owned))
            {
                Some(name) if local.is_dir() => local.join(name),
                _ => local,
            };
            get(client, key, path, &local).await?
        }
        FsCmd::Cat { path, .. } => {
            let mut out = std::io::stdout().lock();
            match plexus_client::files::get(
                &mut Signed::new(client, key),
                &path,
                &mut out,
                &mut |_| {},
            )
            .await
            {
                // A reader that stopped reading (`| head`) is not an error, as for cat(1).
                Err(plexus_client::files::TransferError::Write(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                done => {
                    done?;
                }
            }
        }
    }
    Ok(0)
}

/// The commands on the tree alone (`ls`, `stat`, `mkdir`, `rm`, `mv`, `cp`, `tree`, `du`,
/// and `cat` of its first [`SHOWN_BYTES`]), through any way to `io.fs`: their output in
/// `out`. False for the others, which read or write local files or ask every node.
pub async fn browse(link: &mut impl Link, cmd: &FsCmd, out: &mut String) -> Result<bool> {
    use plexus_client::files::call;
    use std::fmt::Write as _;
    match cmd {
        FsCmd::Ls { path, long, .. } => {
            let path = path.clone().unwrap_or_else(|| "/".to_owned());
            let mut body = vec![("ls", Unit::from(path))];
            if *long {
                body.push(("copies", Unit::Bool(true)));
            }
            let listed = call(link, map_of(body)).await?;
            out.push_str(&ls_lines(&listed));
        }
        FsCmd::Stat { path, .. } => {
            let stat = call(link, map_of([("stat", Unit::from(path.clone()))])).await?;
            let _ = writeln!(out, "{}", plexus_units::to_text(&stat));
        }
        FsCmd::Mkdir { path, mode, .. } => {
            let body = map_of([
                ("mkdir", Unit::from(path.clone())),
                ("mode", Unit::from(mode.clone())),
            ]);
            call(link, body).await?;
        }
        FsCmd::Rm { path, .. } => {
            call(link, map_of([("rm", Unit::from(path.clone()))])).await?;
        }
        FsCmd::Mv { from, to, .. } | FsCmd::Cp { from, to, .. } => {
            let verb = if matches!(cmd, FsCmd::Mv { .. }) {
                "mv"
            } else {
                "cp"
            };
            let body = map_of([
                (verb, Unit::from(from.clone())),
                ("to", Unit::from(to.clone())),
            ]);
            call(link, body).await?;
        }
        FsCmd::Tree { path, .. } => {
            let path = path.clone().unwrap_or_else(|| "/".to_owned());
            let _ = writeln!(out, "{path}");
            walk(link, &path, |depth, name, _, _| {
                let _ = writeln!(out, "{}{name}", "  ".repeat(depth + 1));
            })
            .await?;
        }
        FsCmd::Du { path, .. } => {
            let path = path.clone().unwrap_or_else(|| "/".to_owned());
            let (mut bytes, mut files) = (0u64, 0u64);
            walk(link, &path, |_, _, dir, size| {
                if !dir {
                    bytes += size;
                    files += 1;
                }
            })
            .await?;
            let _ = writeln!(out, "{bytes}  {path}  ({files} files)");
        }
        FsCmd::Cat { path, .. } => {
            let mut shown = Vec::new();
            let mut sink = Capped {
                bytes: &mut shown,
                room: SHOWN_BYTES,
                cut: 0,
            };
            plexus_client::files::get(link, path, &mut sink, &mut |_| {}).await?;
            let cut = sink.cut;
            out.push_str(&String::from_utf8_lossy(&shown));
            if cut > 0 {
                let _ = writeln!(
                    out,
                    "\n… {cut} more bytes (the first {SHOWN_BYTES} are shown here)"
                );
            }
        }
        FsCmd::Put { .. } | FsCmd::Get { .. } | FsCmd::Status { .. } | FsCmd::Scrub { .. } => {
            return Ok(false)
        }
    }
    Ok(true)
}

/// The most of a file `cat` shows where its output is kept to be shown (a web page).
pub const SHOWN_BYTES: usize = 1 << 20;

/// A writer that keeps its first `room` bytes and counts the rest.
struct Capped<'a> {
    bytes: &'a mut Vec<u8>,
    room: usize,
    cut: u64,
}

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let kept = buf.len().min(self.room - self.bytes.len().min(self.room));
        self.bytes.extend_from_slice(&buf[..kept]);
        self.cut += (buf.len() - kept) as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A field of a map as a count.
fn number(u: &Unit, key: &str) -> Option<u64> {
    field(u, key)
        .and_then(Unit::as_int)
        .and_then(|n| n.to_i64())
        .and_then(|n| u64::try_from(n).ok())
}

/// Bytes as `ls -h` shows them: `512`, `4.0K`, `1.2G`.
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// The lines `plx fs ls` prints for the entries of `ls@io.fs`.
fn ls_lines(listed: &Unit) -> String {
    let mut out = String::new();
    for entry in listed.as_list().unwrap_or_default() {
        let when = number(entry, "mtime")
            .map(|ms| {
                let t = crate::cmd_msg::format_time_ms(ms);
                format!("{} {}", &t[..10], &t[11..16])
            })
            .unwrap_or_default();
        let size = number(entry, "size").unwrap_or(0);
        let dir = text_of(field(entry, "kind")) == "dir";
        let name = text_of(field(entry, "name"));
        let mut line = format!(
            "{}  {:<8}  {:>6}  {when}  {name}{}",
            text_of(field(entry, "mode")),
            text_of(field(entry, "user")),
            if dir { "-".to_owned() } else { size_text(size) },
            if dir { "/" } else { "" },
        );
        if let Some(copies) = number(entry, "copies") {
            let nodes: Vec<String> = field(entry, "nodes")
                .and_then(Unit::as_list)
                .unwrap_or_default()
                .iter()
                .map(|n| text_of(Some(n)))
                .collect();
            let word = if copies == 1 { "copy" } else { "copies" };
            line.push_str(&format!("   ({copies} {word}: {})", nodes.join(" ")));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The names of the cluster's nodes (this node alone outside a cluster).
async fn node_names(client: &mut Client, key: &Keypair) -> Result<Vec<String>> {
    let msg = plexus_client::sign_with(key, plexus_units::parse("nodes@sys.node")?)?;
    match client.call(&msg, None, std::future::pending()).await? {
        Reply::Value(v) => Ok(plexus_client::members(&v)
            .into_iter()
            .map(|m| m.name)
            .collect()),
        Reply::Nothing => Ok(Vec::new()),
        Reply::Error(e) => bail!("{}: {}", e.code(), e.message()),
    }
}

/// A call to io.fs on the node that leads (whose repair progress `status` shows), or this
/// node when none is known.
async fn call_leader(client: &mut Client, key: &Keypair, body: Unit) -> Result<Unit> {
    let msg = plexus_client::sign_with(key, plexus_units::parse("nodes@sys.node")?)?;
    let leader = match client.call(&msg, None, std::future::pending()).await? {
        Reply::Value(v) => plexus_client::members(&v)
            .into_iter()
            .find(|m| m.leader && m.role != "single")
            .map(|m| m.name),
        _ => None,
    };
    let stream = plexus_units::Stream::new(body, "io.fs", leader.as_deref())?;
    let msg = plexus_client::sign_with(key, Unit::Stream(Box::new(stream)))?;
    match client.call(&msg, None, std::future::pending()).await? {
        Reply::Value(v) => Ok(v),
        Reply::Nothing => Ok(Unit::None),
        Reply::Error(e) => bail!("{}: {}", e.code(), e.message()),
    }
}

/// What `plx fs status` prints for the answer of `status@io.fs`.
fn status_text(status: &Unit) -> String {
    let n = |k| number(status, k).unwrap_or(0);
    let replicas = n("replicas");
    let mut out = format!(
        "{} chunks, {} of files ({} stored), {replicas} {} each; {} free of {} usable\n",
        n("chunks"),
        size_text(n("bytes")),
        size_text(n("stored")),
        if replicas == 1 { "copy" } else { "copies" },
        size_text(n("free")),
        size_text(n("total")),
    );
    out.push_str(&format!(
        "copies: {} ok, {} short{}, {} waiting for a down node, {} lost\n",
        n("ok"),
        n("short"),
        if n("short") > 0 { " (repairing)" } else { "" },
        n("waiting"),
        n("lost"),
    ));
    out.push_str("NODE        STATE   CHUNKS  STORED    FREE    DISK\n");
    for node in field(status, "nodes")
        .and_then(Unit::as_list)
        .unwrap_or_default()
    {
        let state = match (field(node, "member"), field(node, "up")) {
            (Some(Unit::Bool(false)), _) => "gone",
            (_, Some(Unit::Bool(true))) => "up",
            _ => "down",
        };
        let disk = |k| number(node, k).map_or_else(|| "-".to_owned(), size_text);
        out.push_str(&format!(
            "{:<10}  {state:<6}  {:>6}  {:>6}  {:>6}  {:>6}\n",
            text_of(field(node, "node")),
            number(node, "chunks").unwrap_or(0),
            size_text(number(node, "bytes").unwrap_or(0)),
            disk("free"),
            disk("total"),
        ));
    }
    if let Some(repair) = field(status, "repair") {
        let r = |k| number(repair, k).unwrap_or(0);
        let last = number(repair, "last.pass.ms")
            .map(|ms| format!(", last pass {:.1} s ago", ms as f64 / 1000.0))
            .unwrap_or_default();
        out.push_str(&format!(
            "repair: {} copies made ({}), {} failed{last}; a down node's copies count for {} s\n",
            r("copied"),
            size_text(r("copied.bytes")),
            r("failures"),
            r("grace.ms") / 1000,
        ));
    }
    out
}

/// Calls `visit(depth, name, is_dir, size)` for everything below the directory `path`, each
/// directory's entries by name, each directory followed by what it holds.
/// Visits the tree under `path` depth first: `visit(depth, name, is_dir, size)`.
async fn walk(
    link: &mut impl Link,
    path: &str,
    mut visit: impl FnMut(usize, &str, bool, u64),
) -> Result<()> {
    // Directories still to list, each with its entries' depth; the next one on top.
    let mut pending = vec![(path.to_owned(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let listed =
            plexus_client::files::call(&mut *link, map_of([("ls", Unit::from(dir.clone()))]))
                .await?;
        let mut below = Vec::new();
        for entry in listed.as_list().unwrap_or_default() {
            let name = text_of(field(entry, "name"));
            let is_dir = field(entry, "kind").and_then(Unit::as_str) == Some("dir");
            let size = number(entry, "size").unwrap_or(0);
            visit(depth, &name, is_dir, size);
            if is_dir {
                let child = if dir == "/" {
                    format!("/{name}")
                } else {
                    format!("{dir}/{name}")
                };
                below.push((child, depth + 1));
            }
        }
        // Listed in order, entered in order: the first directory is on top.
        pending.extend(below.into_iter().rev());
    }
    Ok(())
}

async fn put(
    client: &mut Client,
    key: &Keypair,
    local: &Path,
    path: String,
    mode: String,
) -> Result<()> {
    let mut file =
        std::fs::File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut progress = Progress::new("put", total);
    let done = plexus_client::files::put(
        &mut Signed::new(client, key),
        &mut file,
        &path,
        &mode,
        &mut |n| progress.add(n),
    )
    .await;
    progress.finish();
    done.with_context(|| format!("cannot put {} to {path}", local.display()))
        .map(drop)
}

async fn get(client: &mut Client, key: &Keypair, path: String, local: &Path) -> Result<()> {
    let (total, _) =
        plexus_client::files::size_and_version(&mut Signed::new(client, key), &path).await?;
    let mut progress = Progress::new("get", total);
    // A device or a pipe (`/dev/stdout`, a FIFO) is written into as it is: a temporary file
    // renamed over it would replace it.
    if local.metadata().is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(local)
            .with_context(|| format!("cannot open {}", local.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let read =
            plexus_client::files::get(&mut Signed::new(client, key), &path, &mut out, &mut |n| {
                progress.add(n)
            })
            .await;
        progress.finish();
        read.with_context(|| format!("cannot get {path}"))?;
        out.flush()
            .with_context(|| format!("cannot write {}", local.display()))?;
        return Ok(());
    }
    let temp = local.with_extension("plx-partial");
    let file = std::fs::File::create(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let read =
        plexus_client::files::get(&mut Signed::new(client, key), &path, &mut out, &mut |n| {
            progress.add(n)
        })
        .await;
    progress.finish();
    let synced = read.map_err(anyhow::Error::from).and_then(|_| {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok(file.sync_all()?)
    });
    if let Err(e) = synced {
        let _ = std::fs::remove_file(&temp);
        return Err(e.context(format!("cannot get {path}")));
    }
    std::fs::rename(&temp, local).with_context(|| format!("cannot write {}", local.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes_read_as_ls_h_shows_them() {
        assert_eq!(size_text(0), "0");
        assert_eq!(size_text(1023), "1023");
        assert_eq!(size_text(1024), "1.0K");
        assert_eq!(size_text(5_000_000), "4.8M");
        assert_eq!(size_text(2 << 30), "2.0G");
    }

    #[test]
    fn status_and_ls_lines_read_plainly() {
        let status = plexus_units::parse(
            "{replicas:1 chunks:2 bytes:2048 stored:2048 ok:2 short:0 waiting:0 lost:0 \
             total:1024 free:512 nodes:[{node:n1 up:t member:t chunks:2 bytes:2048}]}",
        )
        .unwrap();
        let text = status_text(&status);
        assert!(
            text.starts_with("2 chunks, 2.0K of files (2.0K stored), 1 copy each;"),
            "{text}"
        );
        assert!(text.contains("n1          up           2"), "{text}");
        let listed = plexus_units::parse(
            "[{name:a.csv kind:file size:1048576 mode:`-rw-r--r--` user:me mtime:0 copies:3 \
             nodes:[n1 n2 n3]} {name:d kind:dir size:2 mode:drwxr-xr-x user:me mtime:0}]",
        )
        .unwrap();
        let lines = ls_lines(&listed);
        assert!(
            lines.contains(
                "-rw-r--r--  me          1.0M  1970-01-01 00:00  a.csv   (3 copies: n1 n2 n3)\n"
            ),
            "{lines}"
        );
        assert!(lines.contains("  d/\n"), "{lines}");
    }
}
