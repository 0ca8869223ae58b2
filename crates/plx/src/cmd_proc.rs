//! `plx run`, `ps`, `kill`, `logs`, `wait`, `rm`: programs on the cluster, through the local
//! node's `sys.proc` service. Each command turns its flags into one unit of the service's API
//! (docs/processes.md) and prints the reply for people.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use plexus_client::attached::{Controls, Input, PROC_SERVICE};
use plexus_identity::Keypair;
use plexus_units::{parse, to_text, Map, Unit};
use tokio::sync::mpsc;

use crate::client::{Client, Reply, StdTerminal};
use crate::cmd_cluster::runtime;
use crate::cmd_node::socket_path;
use crate::home::Home;

/// Options every process command shares.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Act as this user instead of the current one (processes belong to the user who started
    /// them).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Options of `plx run`.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Run on this node (by default the scheduler picks one).
    #[arg(long, value_name = "NODE")]
    pub on: Option<String>,
    /// Only on nodes whose tags match this expression (`gpu`, `camera||webcam`, `site=lab`,
    /// `gpu&&!laptop`); repeat it and every expression must hold.
    #[arg(long = "tag", value_name = "EXPR")]
    pub tags: Vec<String>,
    /// CPU to reserve, in cores (2, 0.5, 1.25); enforced where the node can.
    #[arg(long, value_name = "CORES")]
    pub cpu: Option<String>,
    /// Memory to reserve and limit it to (512, 200K, 200M, 1.5G; powers of 1024).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Restart the program when it ends: never (default), on-failure or always.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// A name to refer to the process by (instead of its id) while it lives.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// An environment variable for the program (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The program's working directory on its node (`/fs/PATH`: that directory of the
    /// cluster's file tree).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// PROG is a local file: send its contents and run it there (its extension picks the
    /// interpreter: .py → python3, .js → node, .sh → sh).
    #[arg(long)]
    pub copy: bool,
    /// Start it and print its id instead of staying attached to it.
    #[arg(short, long)]
    pub detach: bool,
    /// Start one copy on every node that matches (kept there as nodes come and go); prints
    /// the ids.
    #[arg(long, conflicts_with_all = ["on", "detach"])]
    pub everywhere: bool,
    /// Start nothing: print where it would run and why.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: Common,
    /// The program and its arguments (after `--`); a program or argument under `/fs/` is that
    /// file of the cluster's tree on the node that runs it. One argument with an unquoted `|`
    /// is a pipeline ('a @n1 | b @#lab | c').
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROG ARGS"
    )]
    pub command: Vec<String>,
}

/// Options of `plx ps`.
#[derive(Args, Debug, Clone, Default)]
pub struct PsArgs {
    /// More columns: restart policy, limits enforced (cgroup, rlimit or none), what placement
    /// asked for (on, tags, cpu, mem), and a note of what Plexus last did to the process on its
    /// own (moved it, lost it, and why).
    #[arg(short, long)]
    pub long: bool,
    /// Print the unit the node answered (a list of maps) instead of a table.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Options of `plx kill`.
#[derive(Args, Debug, Clone, Default)]
pub struct KillArgs {
    /// TERM (default: then KILL after the grace period), INT, KILL, STOP, CONT or HUP.
    #[arg(short, long, value_name = "SIG")]
    pub signal: Option<String>,
    /// Milliseconds between TERM and KILL [default: 5000].
    #[arg(long, value_name = "MS")]
    pub grace: Option<u64>,
    #[command(flatten)]
    pub common: Common,
    /// The process: its id or its name.
    pub id: String,
}

/// Options of `plx logs`.
#[derive(Args, Debug, Clone, Default)]
pub struct LogsArgs {
    /// Keep printing the current run's output until the process ends (Ctrl-C stops).
    /// Without it, the output of the runs its node keeps (the last 5, for a restarted
    /// program) is printed, oldest first.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (over the kept runs).
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// The program's standard error instead of its standard output.
    #[arg(long)]
    pub stderr: bool,
    #[command(flatten)]
    pub common: Common,
    /// The process: its id or its name.
    pub id: String,
}

/// Options of `plx wait` and `plx rm`.
#[derive(Args, Debug, Clone, Default)]
pub struct IdArgs {
    #[command(flatten)]
    pub common: Common,
    /// The process: its id or its name.
    pub id: String,
}

fn map(entries: Vec<(&str, Unit)>) -> Unit {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

/// A program file sent with `--copy`: its name and contents.
pub struct Copied {
    /// The file's name, without its directory.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Reads the local program `path` for `--copy`.
pub fn read_copy(path: &Path) -> Result<Copied> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("--copy: {} does not name a file", path.display()))?
        .to_owned();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("--copy: cannot open {}", path.display()))?
        .take(crate::cli_io::MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("--copy: cannot read {}", path.display()))?;
    if bytes.len() as u64 > crate::cli_io::MAX_INPUT {
        bail!(
            "--copy: {} is larger than the limit of {} bytes",
            path.display(),
            crate::cli_io::MAX_INPUT
        );
    }
    Ok(Copied { name, bytes })
}

/// `KEY=VALUE` of `--env`, checked: a key of letters, digits and `_` not starting with a digit.
fn env_pair(text: &str) -> Result<(String, String)> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("--env {text:?}: expected KEY=VALUE"))?;
    let good_key = key.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !good_key {
        bail!(
            "--env {text:?}: the name {key:?} must be letters, digits and _, not starting with a \
             digit"
        );
    }
    if value.contains('\0') {
        bail!("--env {text:?}: the value contains a NUL byte");
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Cores as the unit the service reads: an int, or a decimal with up to 3 places.
fn cpu_unit(text: &str) -> Result<Unit> {
    let millis = plexus_sched::parse_cpu(text).map_err(|e| anyhow!("--cpu: {e}"))?;
    if millis == 0 {
        bail!("--cpu: {text:?} is no CPU at all; give more than 0 cores");
    }
    let canonical = if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{}.{:03}", millis / 1000, millis % 1000)
    };
    parse(&canonical).map_err(|e| anyhow!("--cpu: {e}"))
}

/// The `run` unit of `plx run` (with the program file's contents when `--copy` sends one).
/// The options of `plx run` that every stage of a pipeline takes too: cpu, mem, restart,
/// env, cwd.
fn stage_entries(args: &RunArgs) -> Result<Vec<(&'static str, Unit)>> {
    let mut entries = Vec::new();
    if let Some(cpu) = &args.cpu {
        entries.push(("cpu", cpu_unit(cpu)?));
    }
    if let Some(mem) = &args.mem {
        let bytes = plexus_sched::parse_mem(mem).map_err(|e| anyhow!("--mem: {e}"))?;
        let bytes = i64::try_from(bytes).map_err(|_| anyhow!("--mem {mem:?} is too large"))?;
        entries.push(("mem", Unit::int(bytes)));
    }
    if let Some(policy) = &args.restart {
        policy
            .parse::<plexus_sched::RestartPolicy>()
            .map_err(|e| anyhow!("--restart: {e}"))?;
        entries.push(("restart", Unit::str(policy)));
    }
    if !args.env.is_empty() {
        let mut env = Map::new();
        for e in &args.env {
            let (k, v) = env_pair(e)?;
            if env.insert(Unit::str(&k), Unit::str(&v)).is_some() {
                bail!("--env: {k} is given twice");
            }
        }
        entries.push(("env", Unit::Map(env)));
    }
    if let Some(cwd) = &args.cwd {
        let cwd = cwd
            .to_str()
            .ok_or_else(|| anyhow!("--cwd {}: not UTF-8", cwd.display()))?;
        entries.push(("cwd", Unit::str(cwd)));
    }
    Ok(entries)
}

/// The pipeline line of `plx run 'a | b'`: one argument with an unquoted `|`.
pub fn pipeline_line(args: &RunArgs) -> Option<&str> {
    match args.command.as_slice() {
        [line] if crate::pipeline::is_pipeline(line) => Some(line),
        _ => None,
    }
}

/// The `{graph:…}` body of a pipeline run.
fn pipeline_body(args: &RunArgs, line: &str) -> Result<Unit> {
    let refused = [
        ("--on", args.on.is_some()),
        ("--tag", !args.tags.is_empty()),
        ("--name", args.name.is_some()),
        ("--copy", args.copy),
        ("--everywhere", args.everywhere),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, given)| *given) {
        bail!(
            "plx run: {flag} is for one program; place a pipeline's stages with @NODE or \
             @#TAG after each (cat f @n1 | grep x @#lab)"
        );
    }
    let common = crate::pipeline::Common {
        entries: stage_entries(args)?,
        attach: attached(args),
        dry: args.dry_run,
    };
    crate::pipeline::graph_body(line, &common)
}

pub fn run_body(args: &RunArgs, copied: Option<Copied>) -> Result<Unit> {
    if let Some(line) = pipeline_line(args) {
        return pipeline_body(args, line);
    }
    let Some((prog, rest)) = args.command.split_first() else {
        bail!("plx run: which program? (plx run [OPTIONS] -- PROG ARGS…)");
    };
    if args.command.iter().any(|a| a.contains('\0')) {
        bail!("plx run: the command contains a NUL byte");
    }
    let prog = match &copied {
        Some(c) => c.name.clone(),
        None => prog.clone(),
    };
    let run = std::iter::once(&prog)
        .chain(rest)
        .map(|a| Unit::str(a))
        .collect();
    let mut entries = vec![("run", Unit::List(run))];
    if let Some(node) = &args.on {
        entries.push(("on", Unit::str(node)));
    }
    for t in &args.tags {
        plexus_sched::TagExpr::parse(t).map_err(|e| anyhow!("--tag {t:?}: {e}"))?;
    }
    match args.tags.as_slice() {
        [] => {}
        [one] => entries.push(("tag", Unit::str(one))),
        many => entries.push((
            "tag",
            Unit::List(many.iter().map(|t| Unit::str(t)).collect()),
        )),
    }
    entries.extend(stage_entries(args)?);
    if let Some(name) = &args.name {
        entries.push(("name", Unit::str(name)));
    }
    if attached(args) {
        entries.push(("attach", Unit::Bool(true)));
    }
    if let Some(c) = copied {
        entries.push(("copy", Unit::Bytes(c.bytes.into())));
    }
    if args.everywhere {
        entries.push(("everywhere", Unit::Bool(true)));
    }
    if args.dry_run {
        entries.push(("dry", Unit::Bool(true)));
    }
    Ok(map(entries))
}

/// Whether `plx run` stays attached to the program.
pub fn attached(args: &RunArgs) -> bool {
    !(args.detach || args.everywhere || args.dry_run)
}

/// The unit of `plx ps`.
pub fn ps_body(args: &PsArgs) -> Unit {
    let mut entries = vec![("ps", Unit::Bool(true))];
    if args.long {
        entries.push(("long", Unit::Bool(true)));
    }
    if !args.raw {
        entries.push(("text", Unit::Bool(true)));
    }
    map(entries)
}

/// The unit of `plx kill`.
pub fn kill_body(args: &KillArgs) -> Result<Unit> {
    let mut entries = vec![("kill", Unit::str(&args.id))];
    if let Some(sig) = &args.signal {
        let upper = sig.to_ascii_uppercase();
        let sig = upper.strip_prefix("SIG").unwrap_or(&upper);
        if !["TERM", "INT", "KILL", "STOP", "CONT", "HUP"].contains(&sig) {
            bail!("--signal {sig}: use TERM, INT, KILL, STOP, CONT or HUP");
        }
        entries.push(("signal", Unit::str(sig)));
    }
    if let Some(ms) = args.grace {
        let ms = i64::try_from(ms).map_err(|_| anyhow!("--grace {ms} is too large"))?;
        entries.push(("grace", Unit::int(ms)));
    }
    Ok(map(entries))
}

/// The unit of `plx logs`.
pub fn logs_body(args: &LogsArgs) -> Result<Unit> {
    let mut entries = vec![("logs", Unit::str(&args.id))];
    if let Some(n) = args.tail {
        let n = i64::try_from(n).map_err(|_| anyhow!("--tail {n} is too large"))?;
        entries.push(("tail", Unit::int(n)));
    }
    if args.stderr {
        entries.push(("stream", Unit::str("stderr")));
    }
    if args.follow {
        entries.push(("follow", Unit::Bool(true)));
    }
    Ok(map(entries))
}

/// `{wait:ID}` or `{rm:ID}`.
/// `{pipes:t text:t graph:ID}` or `{graphs:t text:t}`.
pub fn list_body(verb: &'static str, args: &ListArgs) -> Unit {
    let mut entries = vec![(verb, Unit::Bool(true))];
    if !args.raw {
        entries.push(("text", Unit::Bool(true)));
    }
    if let Some(g) = &args.graph {
        entries.push(("graph", Unit::str(g)));
    }
    map(entries)
}

pub fn id_body(verb: &str, id: &str) -> Unit {
    map(vec![(verb, Unit::str(id))])
}

/// `body@sys.proc`.
fn to_proc(body: Unit) -> Result<Unit> {
    Ok(Unit::stream(body, PROC_SERVICE)?)
}

/// The process commands, shared by `plx` and the λ shell.
#[derive(Subcommand, Debug, Clone)]
pub enum ProcCmd {
    /// Run a program on the cluster (attached: its output here, your input and Ctrl-C to it).
    ///
    /// Exits with the program's exit code (128+signal when killed); a second Ctrl-C kills it.
    /// Examples: plx run -- python3 -u app.py;  plx run --on n2 --copy -- ./job.py;
    /// plx run --detach --restart always --name web -- python3 -m http.server.
    /// A pipeline across machines is one quoted line, each stage placed with @NODE or @#TAG
    /// (or by the scheduler): plx run 'cat /var/log/syslog @n1 | grep error @n2 | sort'; it
    /// exits with bash's pipefail status (docs/pipes.md).
    Run(RunArgs),
    /// List the programs of the cluster: id, name, user, node, state, CPU, memory.
    Ps(PsArgs),
    /// Send a signal to a program (TERM by default, then KILL after the grace period).
    Kill(KillArgs),
    /// Print a program's retained output (-f to follow it).
    Logs(LogsArgs),
    /// Wait until a program ends; print how it ended and exit with its exit code.
    Wait(IdArgs),
    /// Forget an ended program and its logs.
    Rm(IdArgs),
    /// Every pipe of the cluster: its ends and their nodes, bytes, rate, backlog and state.
    Pipes(ListArgs),
    /// Every graph (pipelines and .osh graphs): its processes, and per pipe bytes/s,
    /// records/s and backlog. Stop one whole with plx kill GRAPH.
    Graphs(ListArgs),
    /// Run a OneOS .osh graph script: its graphs placed by their policies, joined by pipes.
    ///
    /// print prints; test_spawn(G(…), P(…)) shows where each process would run and starts
    /// nothing; spawn G(…) with P(…) starts the graph and stays attached to it (its console
    /// nodes' output here; exits with bash's pipefail status). A script with an error prints
    /// file:line:col, the line and a caret, and starts nothing.
    Osh(crate::cmd_osh::OshArgs),
}

/// Options of `plx pipes` and `plx graphs`.
#[derive(Args, Debug, Clone, Default)]
pub struct ListArgs {
    /// Only the pipes of this graph (its id).
    #[arg(long, value_name = "GRAPH")]
    pub graph: Option<String>,
    /// Print the unit the node answered instead of a table.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub common: Common,
}

impl ProcCmd {
    fn common(&self) -> &Common {
        match self {
            ProcCmd::Run(a) => &a.common,
            ProcCmd::Ps(a) => &a.common,
            ProcCmd::Kill(a) => &a.common,
            ProcCmd::Logs(a) => &a.common,
            ProcCmd::Wait(a) | ProcCmd::Rm(a) => &a.common,
            ProcCmd::Pipes(a) | ProcCmd::Graphs(a) => &a.common,
            ProcCmd::Osh(a) => &a.common,
        }
    }

    /// Whether it names another user or socket than the one it is sent with.
    pub fn acts_as_another(&self) -> bool {
        let c = self.common();
        c.user.is_some() || c.socket.is_some()
    }

    /// The sys.proc unit of the command (reading the program file for `run --copy`).
    pub fn body(&self) -> Result<Unit> {
        match self {
            ProcCmd::Run(a) => {
                let copied = match (a.copy && pipeline_line(a).is_none(), a.command.first()) {
                    (true, Some(path)) => Some(read_copy(Path::new(path))?),
                    _ => None,
                };
                run_body(a, copied)
            }
            ProcCmd::Ps(a) => Ok(ps_body(a)),
            ProcCmd::Kill(a) => kill_body(a),
            ProcCmd::Logs(a) => logs_body(a),
            ProcCmd::Wait(a) => Ok(id_body("wait", &a.id)),
            ProcCmd::Rm(a) => Ok(id_body("rm", &a.id)),
            ProcCmd::Pipes(a) => Ok(list_body("pipes", a)),
            ProcCmd::Graphs(a) => Ok(list_body("graphs", a)),
            ProcCmd::Osh(_) => bail!("plx osh sends one message per spawn"),
        }
    }

    /// Prints the reply's value for people and gives the exit code.
    fn show(&self, reply: Unit) -> Result<i32> {
        let (out, code) = self.render(reply)?;
        crate::cli_io::Output::Stdout.write(&out)?;
        Ok(code)
    }

    /// The reply's value for people (a program's output, for `logs`: bytes) and the exit
    /// code it stands for.
    pub fn render(&self, reply: Unit) -> Result<(Vec<u8>, i32)> {
        let mut out = Vec::new();
        let code = match self {
            ProcCmd::Run(a) if attached(a) => exit_code(&reply)?,
            ProcCmd::Run(a) if a.dry_run => {
                match field(&reply, "text").and_then(Unit::as_str) {
                    Some(t) => line(&mut out, t),
                    None => line(&mut out, &to_text(&reply)),
                }
                0
            }
            ProcCmd::Run(_) => {
                if let Some(Unit::Str(graph)) = field(&reply, "graph") {
                    line(&mut out, graph);
                    return Ok((out, 0));
                }
                match (
                    field(&reply, "ids").and_then(Unit::as_list),
                    field(&reply, "id"),
                ) {
                    (Some(ids), _) => {
                        for id in ids {
                            line(
                                &mut out,
                                id.as_str()
                                    .map_or_else(|| to_text(id), str::to_owned)
                                    .as_str(),
                            );
                        }
                    }
                    (None, Some(Unit::Str(id))) => line(&mut out, id),
                    _ => line(&mut out, &to_text(&reply)),
                }
                0
            }
            ProcCmd::Ps(_) => {
                match reply.as_str() {
                    Some(t) => line(&mut out, t),
                    None => line(&mut out, &to_text(&reply)),
                }
                0
            }
            ProcCmd::Kill(_) if field(&reply, "graph").is_some() => {
                for p in field(&reply, "procs")
                    .and_then(Unit::as_list)
                    .unwrap_or_default()
                {
                    let text = |k| field(p, k).and_then(Unit::as_str).unwrap_or("?");
                    line(&mut out, &format!("{} {}", text("id"), text("state")));
                }
                0
            }
            ProcCmd::Kill(a) => {
                let state = field(&reply, "state")
                    .and_then(Unit::as_str)
                    .unwrap_or("signalled");
                line(&mut out, &format!("{} {state}", a.id));
                0
            }
            ProcCmd::Logs(_) => {
                match reply {
                    Unit::Bytes(b) => out.extend_from_slice(&b),
                    Unit::None => {}
                    other => line(&mut out, &to_text(&other)),
                }
                0
            }
            ProcCmd::Wait(a) => {
                let code = exit_code(&reply)?;
                let state = field(&reply, "state")
                    .and_then(Unit::as_str)
                    .unwrap_or("ended");
                match field(&reply, "signal") {
                    Some(sig) => line(
                        &mut out,
                        &format!("{} {state} by signal {}", a.id, to_text(sig)),
                    ),
                    None => line(&mut out, &format!("{} {state} with code {code}", a.id)),
                }
                code
            }
            ProcCmd::Rm(_) | ProcCmd::Osh(_) => 0,
            ProcCmd::Pipes(_) | ProcCmd::Graphs(_) => {
                match reply.as_str() {
                    Some(t) => line(&mut out, t),
                    None => line(&mut out, &to_text(&reply)),
                }
                0
            }
        };
        Ok((out, code))
    }
}

fn field<'a>(v: &'a Unit, k: &str) -> Option<&'a Unit> {
    v.as_map().and_then(|m| m.get_str(k))
}

/// The exit code an ended process's reply stands for (`code`, 128+signal when killed).
pub fn exit_code(reply: &Unit) -> Result<i32> {
    field(reply, "code")
        .and_then(Unit::as_int)
        .and_then(|i| i.to_i64())
        .and_then(|c| i32::try_from(c).ok())
        .ok_or_else(|| anyhow!("the node answered {} without an exit code", to_text(reply)))
}

/// `text` as a line of `out`.
fn line(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    if !text.ends_with('\n') {
        out.push(b'\n');
    }
}

/// Sends `cmd` to sys.proc on `client` signed by `key`, prints the answer and gives the exit
/// code. An attached run writes `input` to the program and sends it `signals`; any other
/// command is cancelled by a signal (`logs -f` then ends quietly). An error unit becomes an
/// error reading `CODE: MESSAGE`.
pub async fn execute(
    client: &mut Client,
    key: &Keypair,
    cmd: &ProcCmd,
    input: mpsc::Receiver<Input>,
    mut signals: mpsc::UnboundedReceiver<String>,
) -> Result<i32> {
    if let ProcCmd::Osh(a) = cmd {
        return crate::cmd_osh::execute(client, key, a, input, signals).await;
    }
    let msg = plexus_client::sign_with(key, to_proc(cmd.body()?)?)?;
    let term = StdTerminal::new();
    let reply = match cmd {
        ProcCmd::Run(a) if attached(a) => {
            let controls = Controls { input, signals };
            client.call_attached(&msg, &term, key, controls).await?
        }
        _ => {
            let streams = matches!(cmd, ProcCmd::Logs(l) if l.follow);
            let cancel = async {
                signals.recv().await;
            };
            client.call(&msg, streams.then_some(&term), cancel).await?
        }
    };
    match reply {
        Reply::Value(v) => cmd.show(v),
        Reply::Nothing => cmd.show(Unit::None),
        Reply::Error(e) if e.code() == "cancelled" && matches!(cmd, ProcCmd::Logs(_)) => Ok(0),
        Reply::Error(e) => bail!("{}: {}", e.code(), e.message()),
    }
}

/// `plx run`, `ps`, `kill`, `logs`, `wait`, `rm`.
pub fn run(home: &Home, cmd: ProcCmd) -> Result<i32> {
    let common = cmd.common();
    let key = home.unlock(&home.acting_user(common.user.as_deref())?)?;
    let socket = socket_path(home, common.socket.clone());
    runtime()?.block_on(async {
        let mut client = Client::connect(&socket).await?;
        let (signals, _forwarding) = forward_ctrl_c();
        // Only an attached program reads standard input; other commands leave it alone.
        let input = match &cmd {
            ProcCmd::Run(a) if attached(a) => forward_stdin(),
            ProcCmd::Osh(a) if !a.detach => forward_stdin(),
            _ => mpsc::channel(1).1,
        };
        execute(&mut client, &key, &cmd, input, signals).await
    })
}

/// Standard input in pieces as it arrives, then its end. A thread of its own: a read of a
/// terminal cannot be cancelled, and it must not keep the command from exiting.
fn forward_stdin() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut stdin = std::io::stdin().lock();
        loop {
            let piece = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => Input::Eof,
                Ok(n) => Input::Data(buf[..n].to_vec()),
            };
            let eof = piece == Input::Eof;
            if tx.blocking_send(piece).is_err() || eof {
                return;
            }
        }
    });
    rx
}

/// Standard input for a program run from the λ shell on a terminal: pieces as they are typed,
/// then the end (Ctrl-D). The line editor reads the same terminal once the program has ended,
/// so this reader reads only what poll says is there, and its thread stops (within
/// [`INPUT_POLL`]) when the guard is dropped instead of waiting in a read for a line meant for
/// the shell.
pub fn forward_terminal_input() -> (mpsc::Receiver<Input>, StopReading) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (tx, rx) = mpsc::channel(1);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        let stdin = rustix::stdio::stdin();
        let wait = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: INPUT_POLL.as_nanos() as i64,
        };
        let mut buf = vec![0u8; 64 * 1024];
        while !stopped.load(Ordering::SeqCst) {
            let mut fds = [rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(_) => return,
            }
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            let piece = match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => Input::Eof,
                Ok(n) => Input::Data(buf[..n].to_vec()),
            };
            let eof = piece == Input::Eof;
            if tx.blocking_send(piece).is_err() || eof {
                return;
            }
        }
    });
    (
        rx,
        StopReading {
            stop,
            thread: Some(thread),
        },
    )
}

/// How long the terminal reader of [`forward_terminal_input`] waits before it looks again
/// whether it should stop.
const INPUT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Stops the reader of [`forward_terminal_input`] when dropped, and waits for its thread.
pub struct StopReading {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StopReading {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Stops a task when dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `INT` for the first Ctrl-C, `KILL` for every later one, while the guard lives.
pub fn forward_ctrl_c() -> (mpsc::UnboundedReceiver<String>, AbortOnDrop) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut signal = "INT";
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(signal.to_owned()).is_err() {
                return;
            }
            signal = "KILL";
        }
    });
    (rx, AbortOnDrop(task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn run_args(command: &[&str]) -> RunArgs {
        RunArgs {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            ..RunArgs::default()
        }
    }

    fn text(args: &RunArgs) -> String {
        to_text(&run_body(args, None).unwrap())
    }

    #[test]
    fn run_flags_become_the_run_unit() {
        assert_eq!(
            text(&run_args(&["python3", "-u", "app.py"])),
            "{run:[python3 -u app.py] attach:t}"
        );
        let mut a = run_args(&["sleep", "10"]);
        a.on = Some("n2".into());
        a.tags = vec!["gpu".into()];
        a.cpu = Some("0.5".into());
        a.mem = Some("200M".into());
        a.restart = Some("always".into());
        a.name = Some("web".into());
        a.env = vec!["A=1".into(), "B_2=x=y".into()];
        a.cwd = Some("/tmp".into());
        a.detach = true;
        assert_eq!(
            text(&a),
            "{run:[sleep `10`] on:n2 tag:gpu cpu:0.5 mem:209715200 restart:always \
             env:{A:`1` B_2:`x=y`} cwd:`/tmp` name:web}"
        );
    }

    #[test]
    fn several_tags_are_a_list_and_whole_cores_an_int() {
        let mut a = run_args(&["x"]);
        a.tags = vec!["gpu".into(), "site=lab".into()];
        a.cpu = Some("2".into());
        a.dry_run = true;
        assert_eq!(text(&a), "{run:[x] tag:[gpu `site=lab`] cpu:2 dry:t}");
        a.dry_run = false;
        a.everywhere = true;
        a.cpu = Some("1.25".into());
        assert_eq!(
            text(&a),
            "{run:[x] tag:[gpu `site=lab`] cpu:1.25 everywhere:t}"
        );
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let bad = |f: &dyn Fn(&mut RunArgs), says: &str| {
            let mut a = run_args(&["x"]);
            f(&mut a);
            let e = format!("{:#}", run_body(&a, None).unwrap_err());
            assert!(e.contains(says), "{e} should say {says}");
        };
        bad(&|a| a.env = vec!["NOVALUE".into()], "expected KEY=VALUE");
        bad(&|a| a.env = vec!["1A=x".into()], "must be letters");
        bad(&|a| a.env = vec!["=x".into()], "must be letters");
        bad(&|a| a.env = vec!["A-B=x".into()], "must be letters");
        bad(&|a| a.env = vec!["A=x\0y".into()], "NUL");
        bad(&|a| a.env = vec!["A=1".into(), "A=2".into()], "twice");
        bad(&|a| a.mem = Some("lots".into()), "--mem");
        bad(&|a| a.cpu = Some("half".into()), "--cpu");
        bad(&|a| a.cpu = Some("0".into()), "no CPU");
        bad(&|a| a.restart = Some("sometimes".into()), "--restart");
        bad(&|a| a.tags = vec!["gpu&&".into()], "--tag");
        bad(&|a| a.command = vec!["a\0b".into()], "NUL");
        bad(&|a| a.command = vec![], "which program");
    }

    #[test]
    fn copy_sends_the_file_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.py");
        std::fs::write(&path, b"print(1)\n").unwrap();
        let a = run_args(&[path.to_str().unwrap(), "arg"]);
        let copied = read_copy(&path).unwrap();
        assert_eq!(
            to_text(&run_body(&a, Some(copied)).unwrap()),
            r#"{run:[hello.py arg] attach:t copy:x"7072696e742831290a"}"#
        );
        let e = read_copy(&dir.path().join("missing.py")).err().unwrap();
        assert!(format!("{e:#}").contains("cannot open"), "{e:#}");
    }

    #[test]
    fn other_commands_units() {
        let ps = PsArgs {
            long: true,
            ..PsArgs::default()
        };
        assert_eq!(to_text(&ps_body(&ps)), "{ps:t long:t text:t}");
        assert_eq!(
            to_text(&ps_body(&PsArgs {
                raw: true,
                ..PsArgs::default()
            })),
            "{ps:t}"
        );
        let mut k = KillArgs {
            id: "k7f2q1".into(),
            ..KillArgs::default()
        };
        assert_eq!(to_text(&kill_body(&k).unwrap()), "{kill:k7f2q1}");
        k.signal = Some("sigint".into());
        k.grace = Some(100);
        assert_eq!(
            to_text(&kill_body(&k).unwrap()),
            "{kill:k7f2q1 signal:INT grace:100}"
        );
        k.signal = Some("USR1".into());
        assert!(kill_body(&k).is_err());
        let l = LogsArgs {
            id: "web".into(),
            tail: Some(5),
            stderr: true,
            follow: true,
            ..LogsArgs::default()
        };
        assert_eq!(
            to_text(&logs_body(&l).unwrap()),
            "{logs:web tail:5 stream:stderr follow:t}"
        );
        assert_eq!(to_text(&id_body("wait", "web")), "{wait:web}");
        assert_eq!(to_text(&id_body("rm", "web")), "{rm:web}");
    }

    #[test]
    fn exit_codes_come_from_the_reply() {
        let code = |t: &str| exit_code(&parse(t).unwrap());
        assert_eq!(code("{id:a node:n1 state:exited code:3}").unwrap(), 3);
        assert_eq!(
            code("{id:a node:n1 state:killed signal:2 code:130}").unwrap(),
            130
        );
        assert!(code("{id:a}").is_err());
    }

    proptest::proptest! {
        #[test]
        fn env_pairs_keep_good_ones_and_refuse_the_rest(text in "\\PC{0,12}") {
            match env_pair(&text) {
                Ok((k, v)) => {
                    proptest::prop_assert_eq!(format!("{k}={v}"), text);
                    proptest::prop_assert!(!k.is_empty() && !k.starts_with(|c: char| c.is_ascii_digit()));
                    proptest::prop_assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    proptest::prop_assert!(!v.contains('\0'));
                }
                Err(_) => {
                    let good = text.split_once('=').is_some_and(|(k, v)| {
                        k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            && !v.contains('\0')
                    });
                    proptest::prop_assert!(!good, "{text:?} was refused");
                }
            }
        }

        #[test]
        fn good_env_pairs_are_taken(key in "[A-Za-z_][A-Za-z0-9_]{0,8}", value in "[^\\x00]{0,12}") {
            let pair = format!("{key}={value}");
            proptest::prop_assert_eq!(env_pair(&pair).ok(), Some((key, value)));
        }
    }
}
