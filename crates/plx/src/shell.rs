//! The λ shell: a line editor that sends each unit typed to the local node.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use plexus_client::help_text;
use plexus_units::{parse, to_pretty, to_short, to_text, Unit};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::client::{Client, Reply, StdTerminal};
use crate::cmd_node::{sign_with, socket_path};
use crate::cmd_proc::{self, ProcCmd};
use crate::home::Home;

/// Where the shell's lines come from: the line editor on a terminal, or standard input read
/// directly when it is a pipe or a file.
enum Lines {
    Editor(Box<Editor<ShellHelper, DefaultHistory>>),
    /// The editor would drop a unit left open when the input ends; read here, it reaches the
    /// parser, which says what is missing. Standard input is locked only while a line is read:
    /// a service reading this terminal (`inp@io.term`) reads the next lines.
    Piped,
}

impl Lines {
    /// The next entry (lines joined while a bracket, quote or comment is open), or `None` at
    /// the end of the input.
    fn next(&mut self) -> Result<Option<String>> {
        match self {
            Lines::Editor(editor) => loop {
                match editor.readline("λ ") {
                    Ok(line) => return Ok(Some(line)),
                    Err(ReadlineError::Interrupted) => continue,
                    Err(ReadlineError::Eof) => return Ok(None),
                    Err(e) => return Err(e).context("cannot read input"),
                }
            },
            Lines::Piped => {
                let mut entry = String::new();
                loop {
                    let read = std::io::stdin()
                        .read_line(&mut entry)
                        .context("cannot read standard input")?;
                    if read == 0 {
                        return Ok((!entry.trim().is_empty()).then_some(entry));
                    }
                    if !is_incomplete(&entry) {
                        return Ok(Some(entry));
                    }
                }
            }
        }
    }

    fn remember(&mut self, entry: &str) {
        if let Lines::Editor(editor) = self {
            let _ = editor.add_history_entry(entry);
        }
    }

    fn save_history(&mut self, path: &std::path::Path) {
        if let Lines::Editor(editor) = self {
            let _ = editor.save_history(path);
        }
    }
}

/// Turns a unit into a table for people (`nodes`, `services`).
type Table = fn(&Unit) -> String;

/// How results are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Display {
    Short(usize),
    Full,
    Pretty,
}

const SHELL_HELP: &str = "\
Type a unit and press Enter: it is signed as you and evaluated by the node.
  (neg 5)@math.calc            a message to a service
  {mul:[2 {inc:4} (sub (10 3))]}@math.calc
  (say `hello`)@io.term        services can use this terminal
  serv@io.term                 every service; help@math.calc explains one
                               (help.man@… its commands, help.tut@… its examples)
  x@serv:node                  run on a given node of the cluster
  nodes                        the cluster's nodes (table; nodes@sys.node gives the unit)
  services                     which node provides which service
Programs (the options of plx run, ps, kill, logs, wait, rm; --help on each):
  run PROG ARGS…               run a program, its output here; what you type goes to
                               it (Ctrl-D ends its input, Ctrl-C sends it INT)
  run --detach --on n2 PROG …  start it on node n2 and print its id
                               (after cd DIR, programs start in DIR of the tree, and
                               run x.py runs the script there; /fs/PATH in a command
                               is the tree's PATH on the program's node)
  ps                           every program of the cluster
  kill ID   logs ID   wait ID   rm ID
Files of the cluster tree (paths from the working directory; plx fs --help):
  ls [DIR]   cd [DIR]   pwd   cat FILE   stat PATH   mkdir DIR   mv FROM TO
  cp FROM TO   tree [DIR]   du [DIR]
  put LOCAL PATH   get PATH LOCAL   rm ./PATH    (rm of a path with a /; rm ID
                               forgets a process; cd alone goes to /home/<you>)
Brackets left open continue on the next line. Tab completes service names after @.
Shell commands:
  :short [N]   show results in short form (default, N = 32)
  :full        show results in full
  :pretty      show results indented
  :raw UNIT    evaluate UNIT and show the result as the unit in full, as plx send does
               (help and the nodes and services tables are otherwise shown as text)
  :help        this text
  :quit        leave (also Ctrl-D)
Ctrl-C cancels a running evaluation.";

/// Runs the shell against the node at `socket` (the local node by default). Returns the exit
/// code.
pub fn run(home: &Home, socket: Option<PathBuf>) -> Result<i32> {
    let socket = socket_path(home, socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut client = rt.block_on(Client::connect(&socket))?;
    let user = home.acting_user(None)?;
    // Unlock once: an encrypted key asks for its passphrase here, not on every line.
    let key = home.unlock(&user)?;
    let (services, commands) = rt
        .block_on(fetch_names(&mut client, &key))
        .unwrap_or_default();
    let history = home.root().join("history");
    let mut lines = if std::io::stdin().is_terminal() {
        let mut editor: Editor<ShellHelper, DefaultHistory> =
            Editor::new().context("cannot open the line editor")?;
        editor.set_helper(Some(ShellHelper { services, commands }));
        let _ = editor.load_history(&history);
        Lines::Editor(Box::new(editor))
    } else {
        Lines::Piped
    };
    println!(
        "Plexus λ shell on node {} as {user}. Type :help for help, :quit to leave.",
        client.node_name
    );
    let term = StdTerminal::new();
    let mut display = Display::Short(32);
    // The working directory of the file commands.
    let mut cwd = plexus_fs::FsPath::root();
    while let Some(line) = lines.next()? {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        lines.remember(trimmed);
        let (entry, raw) = match trimmed.strip_prefix(":raw") {
            Some("") => {
                eprintln!("usage: :raw UNIT");
                continue;
            }
            Some(rest) if rest.starts_with(char::is_whitespace) => (rest.trim_start(), true),
            _ => (trimmed, false),
        };
        if let Some(cmd) = entry.strip_prefix(':').filter(|_| !raw) {
            let mut words = cmd.split_whitespace();
            match (words.next(), words.next()) {
                (Some("q" | "quit" | "exit"), _) => break,
                (Some("full"), _) => display = Display::Full,
                (Some("pretty"), _) => display = Display::Pretty,
                (Some("short"), n) => match n.map(str::parse::<usize>) {
                    None => display = Display::Short(32),
                    Some(Ok(n)) if n > 0 => display = Display::Short(n),
                    Some(_) => eprintln!("usage: :short [N] with N a positive number"),
                },
                (Some("help"), _) => println!("{SHELL_HELP}"),
                _ => eprintln!("unknown shell command :{cmd} (try :help)"),
            }
            continue;
        }
        if entry == "help" && !raw {
            println!("{SHELL_HELP}");
            continue;
        }
        let pipeline = (!raw).then(|| pipeline_command(entry)).flatten();
        if let Some(cmd) = (!raw && pipeline.is_none())
            .then(|| file_command(entry))
            .flatten()
        {
            let done = match cmd {
                Err(e) => Err(anyhow::anyhow!(e)),
                Ok(FileCommand::Pwd) => {
                    println!("{cwd}");
                    Ok(())
                }
                Ok(FileCommand::Cd(dir)) => {
                    let target = dir.unwrap_or_else(|| format!("/home/{user}"));
                    match cwd.resolve(&target) {
                        Err(e) => Err(anyhow::anyhow!("cd: {e}")),
                        Ok(path) => match rt.block_on(crate::cmd_fs::is_dir(
                            &mut plexus_client::files::Signed::new(&mut client, &key),
                            path.as_str(),
                        )) {
                            Ok(true) => {
                                cwd = path;
                                Ok(())
                            }
                            Ok(false) => Err(anyhow::anyhow!("cd: {path} is not a directory")),
                            Err(e) => Err(e),
                        },
                    }
                }
                Ok(FileCommand::Fs(cmd)) => cmd
                    .resolved(&cwd)
                    .and_then(|cmd| rt.block_on(crate::cmd_fs::execute_on(&mut client, &key, cmd)))
                    .map(drop),
            };
            if let Err(e) = done {
                eprintln!("error: {e:#}");
            }
            continue;
        }
        if let Some(cmd) = pipeline.or_else(|| (!raw).then(|| proc_command(entry)).flatten()) {
            match cmd {
                Ok(mut cmd) => {
                    if let ProcCmd::Run(a) = &mut cmd {
                        run_in_tree(a, &cwd);
                    }
                    let (signals, _forwarding) = rt.block_on(async { cmd_proc::forward_ctrl_c() });
                    // An attached program reads the terminal until it ends. Input that is not
                    // a terminal is the shell's script: the program gets an empty one.
                    let (input, reading) = match (&lines, &cmd) {
                        (Lines::Editor(_), ProcCmd::Run(a)) if cmd_proc::attached(a) => {
                            let (input, reading) = cmd_proc::forward_terminal_input();
                            (input, Some(reading))
                        }
                        _ => (tokio::sync::mpsc::channel(1).1, None),
                    };
                    let run = cmd_proc::execute(&mut client, &key, &cmd, input, signals);
                    let result = rt.block_on(run);
                    // The reader stops before the editor reads the terminal again.
                    drop(reading);
                    match result {
                        Ok(0) => {}
                        Ok(code) => eprintln!("exit code {code}"),
                        Err(e) => eprintln!("error: {e:#}"),
                    }
                }
                Err(e) => eprintln!("{e}"),
            }
            continue;
        }
        let (line, table) = match table_command(entry) {
            Some((message, table)) => (message, Some(table)),
            None => (if raw { entry } else { line.as_str() }, None),
        };
        let body = match parse(line) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let help = asks_help(&body);
        let msg = match sign_with(&key, body) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e:#}");
                continue;
            }
        };
        let reply = rt.block_on(client.call(&msg, Some(&term), async {
            let _ = tokio::signal::ctrl_c().await;
        }));
        match reply {
            Ok(Reply::Value(v)) if raw => println!("{}", to_text(&v)),
            Ok(Reply::Value(v)) => match (table, help.then(|| help_text(&v)).flatten()) {
                (Some(table), _) => print!("{}", table(&v)),
                (None, Some(text)) => print!("{text}"),
                (None, None) => println!("{}", show(&v, display)),
            },
            Ok(Reply::Nothing) => {}
            Ok(Reply::Error(e)) => eprintln!("error: {e}"),
            Err(e) => {
                // anyhow's alternate form prints the error's sources too.
                eprintln!("error: {:#}", anyhow::Error::from(e));
                // The connection is gone: try once to reconnect.
                match rt.block_on(Client::connect(&socket)) {
                    Ok(c) => client = c,
                    Err(e) => {
                        eprintln!("plx: {:#}", anyhow::Error::from(e));
                        lines.save_history(&history);
                        return Ok(1);
                    }
                }
            }
        }
    }
    lines.save_history(&history);
    Ok(0)
}

/// `nodes` and `services`: the message each sends, and the table its reply is shown as.
fn table_command(entry: &str) -> Option<(&'static str, Table)> {
    match entry {
        "nodes" => Some(("nodes@sys.node", crate::cmd_cluster::nodes_table)),
        "services" => Some(("services@sys.node", crate::cmd_cluster::services_table)),
        _ => None,
    }
}

/// The shell's commands for the web desktop's terminal: the process commands, pipelines,
/// `nodes`, `services` and the file commands, parsed as here and shown as here. The desktop
/// acts as the page's user on its node; a command that reads or writes a file of this machine
/// (`run --copy`, `osh`, `put`, `get`) is refused there.
pub fn web_commands() -> plexus_web::term::Commands {
    use plexus_web::term::{Action, ShellCommand, Shown};
    std::sync::Arc::new(|entry: &str, cwd: &str| {
        let cmd = pipeline_command(entry);
        if cmd.is_none() {
            if let Some(file) = file_command(entry) {
                return Some(file.and_then(|f| web_file_command(f, cwd)));
            }
        }
        let Some(cmd) = cmd.or_else(|| proc_command(entry)) else {
            let (message, table) = table_command(entry)?;
            let message = parse(message).map_err(|e| e.to_string());
            return Some(message.map(|message| ShellCommand {
                action: Action::Message {
                    message,
                    show: Box::new(move |reply| {
                        Ok(Shown {
                            text: table(&reply),
                            ..Shown::default()
                        })
                    }),
                },
                attached: false,
            }));
        };
        Some(cmd.and_then(web_command))
    })
}

/// A process command as the web terminal runs it.
fn web_command(cmd: ProcCmd) -> Result<plexus_web::term::ShellCommand, String> {
    match &cmd {
        ProcCmd::Run(a) if a.copy => {
            return Err(
                "run --copy sends a file of your machine: use plx run --copy there".to_owned(),
            )
        }
        ProcCmd::Osh(_) => {
            return Err("osh runs a script of your machine: use plx osh there".to_owned())
        }
        _ => {}
    }
    let attached = matches!(&cmd, ProcCmd::Run(a) if cmd_proc::attached(a));
    let body = cmd.body().map_err(|e| format!("{e:#}"))?;
    let message =
        Unit::stream(body, plexus_client::attached::PROC_SERVICE).map_err(|e| e.to_string())?;
    Ok(plexus_web::term::ShellCommand {
        action: plexus_web::term::Action::Message {
            message,
            show: Box::new(move |reply| {
                let (out, code) = cmd.render(reply).map_err(|e| format!("{e:#}"))?;
                Ok(plexus_web::term::Shown {
                    text: String::from_utf8_lossy(&out).into_owned(),
                    code,
                    cwd: None,
                })
            }),
        },
        attached,
    })
}

/// A file command as the web terminal runs it, in the page's working directory `cwd`.
fn web_file_command(cmd: FileCommand, cwd: &str) -> Result<plexus_web::term::ShellCommand, String> {
    use plexus_web::term::{Action, ShellCommand, Shown};
    let cwd = plexus_fs::FsPath::parse(cwd).unwrap_or_else(|_| plexus_fs::FsPath::root());
    let run: Box<
        dyn FnOnce(
                plexus_client::files::KernelLink,
            ) -> plexus_kernel::BoxFuture<'static, Result<Shown, String>>
            + Send,
    > = match cmd {
        FileCommand::Pwd => {
            let text = cwd.to_string();
            Box::new(move |_| {
                Box::pin(async move {
                    Ok(Shown {
                        text,
                        ..Shown::default()
                    })
                })
            })
        }
        FileCommand::Cd(dir) => {
            // The page does not know its user's name: `cd` alone goes to the root.
            let path = cwd
                .resolve(dir.as_deref().unwrap_or("/"))
                .map_err(|e| format!("cd: {e}"))?;
            Box::new(move |mut link| {
                Box::pin(async move {
                    let dir = crate::cmd_fs::is_dir(&mut link, path.as_str())
                        .await
                        .map_err(|e| format!("cd: {e:#}"))?;
                    if !dir {
                        return Err(format!("cd: {path} is not a directory"));
                    }
                    Ok(Shown {
                        cwd: Some(path.to_string()),
                        ..Shown::default()
                    })
                })
            })
        }
        FileCommand::Fs(cmd) => {
            let cmd = cmd.resolved(&cwd).map_err(|e| format!("{e:#}"))?;
            Box::new(move |mut link| {
                Box::pin(async move {
                    let mut text = String::new();
                    match crate::cmd_fs::browse(&mut link, &cmd, &mut text).await {
                        Ok(true) => Ok(Shown {
                            text,
                            ..Shown::default()
                        }),
                        Ok(false) => Err(
                            "put, get, status and scrub read or write files of your machine or \
                             ask every node: use plx fs there (or the Files page)"
                                .to_owned(),
                        ),
                        Err(e) => Err(format!("{e:#}")),
                    }
                })
            })
        }
    };
    Ok(ShellCommand {
        action: Action::Files(run),
        attached: false,
    })
}

/// The process commands, parsed from the shell's words as `plx` parses its arguments.
#[derive(clap::Parser, Debug)]
#[command(multicall = true, max_term_width = 100)]
struct ShellProc {
    #[command(subcommand)]
    cmd: ProcCmd,
}

/// The file commands, parsed from the shell's words as `plx fs` parses its arguments.
#[derive(clap::Parser, Debug)]
#[command(multicall = true, max_term_width = 100)]
struct ShellFs {
    #[command(subcommand)]
    cmd: crate::cmd_fs::FsCmd,
}

/// What a file command of the shell does.
enum FileCommand {
    Cd(Option<String>),
    Pwd,
    Fs(crate::cmd_fs::FsCmd),
}

/// `Some` when `entry` is a file command (`ls`, `cd`, `pwd`, `cat`, `mkdir`, `mv`, `stat`,
/// `put`, `get`, and `rm` of a path with a `/`; `rm ID` forgets a process): the command, or
/// why its words do not make one.
fn file_command(entry: &str) -> Option<Result<FileCommand, String>> {
    let first = entry.split_whitespace().next()?;
    let Some(words) = shlex::split(entry) else {
        return Some(Err(format!("{first}: a quote is not closed")));
    };
    let file_rm = first == "rm" && words.get(1).is_some_and(|w| w.contains('/'));
    match first {
        "pwd" if words.len() == 1 => Some(Ok(FileCommand::Pwd)),
        "cd" if words.len() <= 2 => Some(Ok(FileCommand::Cd(words.get(1).cloned()))),
        "cd" | "pwd" => Some(Err(format!(
            "usage: {first}{}",
            if first == "cd" { " [DIR]" } else { "" }
        ))),
        "ls" | "cat" | "mkdir" | "mv" | "cp" | "stat" | "put" | "get" | "tree" | "du" => {
            Some(parse_fs(first, words))
        }
        "rm" if file_rm => Some(parse_fs(first, words)),
        _ => None,
    }
}

fn parse_fs(first: &str, words: Vec<String>) -> Result<FileCommand, String> {
    match <ShellFs as clap::Parser>::try_parse_from(words) {
        Ok(p) if p.cmd.acts_as_another() => Err(format!(
            "{first}: --user and --socket are for plx; the shell acts as its user on its node"
        )),
        Ok(p) => Ok(FileCommand::Fs(p.cmd)),
        Err(e) => Err(e.to_string().trim_end().to_owned()),
    }
}

/// `Some` when `entry` is a pipeline (an unquoted `|` between programs: `cat f @n1 | grep x`,
/// with or without `run` and its options first): the run of it, or why it is not one.
fn pipeline_command(entry: &str) -> Option<Result<ProcCmd, String>> {
    use crate::pipeline::{tokens, Token};
    let starts_like_a_program = entry
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '/' | '_' | '-'));
    if !starts_like_a_program || !crate::pipeline::is_pipeline(entry) {
        return None;
    }
    let toks = tokens(entry).ok()?;
    let pipe_at = toks.iter().position(|t| matches!(t, Token::Pipe(_)))?;
    let first: Vec<&crate::pipeline::Word> = toks[..pipe_at]
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::Pipe(_) => None,
        })
        .collect();
    let with_run = first.first().is_some_and(|w| w.text == "run" && !w.quoted);
    let mut words: Vec<String> = first.iter().map(|w| w.text.clone()).collect();
    if !with_run {
        words.insert(0, "run".to_owned());
    }
    Some(match <ShellProc as clap::Parser>::try_parse_from(&words) {
        Ok(p) if p.cmd.acts_as_another() => Err(
            "run: --user and --socket are for plx; the shell acts as its user on its node"
                .to_owned(),
        ),
        Ok(ShellProc {
            cmd: ProcCmd::Run(mut a),
        }) => {
            // The line from the first stage's program on, quotes and all.
            match first
                .len()
                .checked_sub(a.command.len())
                .and_then(|i| first.get(i))
            {
                Some(w) => {
                    a.command = vec![entry[w.start..].to_owned()];
                    Ok(ProcCmd::Run(a))
                }
                None => Err("run: which programs?".to_owned()),
            }
        }
        Ok(_) => Err("run: a pipeline runs programs".to_owned()),
        Err(e) => Err(e.to_string().trim_end().to_owned()),
    })
}

/// `Some` when `entry` is a process command (`run`, `ps`, `kill`, `logs`, `wait`, `rm`, `pipes`,
/// `graphs`, `osh` as its
/// first word): the command, or why its words do not make one.
fn proc_command(entry: &str) -> Option<Result<ProcCmd, String>> {
    let first = entry.split_whitespace().next()?;
    if ![
        "run", "ps", "kill", "logs", "wait", "rm", "pipes", "graphs", "osh",
    ]
    .contains(&first)
    {
        return None;
    }
    let Some(words) = shlex::split(entry) else {
        return Some(Err(format!("{first}: a quote is not closed")));
    };
    Some(match <ShellProc as clap::Parser>::try_parse_from(words) {
        Ok(p) if p.cmd.acts_as_another() => Err(format!(
            "{first}: --user and --socket are for plx; the shell acts as its user on its node"
        )),
        Ok(p) => Ok(p.cmd),
        Err(e) => Err(e.to_string().trim_end().to_owned()),
    })
}

/// After `cd` has left `/`, a program run from the shell starts in the session's working
/// directory of the tree (`/fs/…` on its node), and a script named without a directory
/// (`x.py`) is the one there, as in OneOS (`cd /code`, `run x.py`).
fn run_in_tree(a: &mut cmd_proc::RunArgs, cwd: &plexus_fs::FsPath) {
    if cwd.is_root() || a.cwd.is_some() || a.copy {
        return;
    }
    let root = plexus_services::sys_proc::CLUSTER_ROOT;
    a.cwd = Some(PathBuf::from(format!("{root}{cwd}")));
    if cmd_proc::pipeline_line(a).is_some() {
        return;
    }
    if let Some(program) = a.command.first_mut() {
        if !program.contains('/') && plexus_proc::interpreter_for(Path::new(program)).is_some() {
            *program = format!("./{program}");
        }
    }
}

/// Whether `body` asks a service for its help (shown as text rather than as a unit).
fn asks_help(body: &Unit) -> bool {
    matches!(body, Unit::Stream(s) if matches!(s.unit.as_str(), Some("help" | "help.man" | "help.tut")))
}

fn show(v: &Unit, display: Display) -> String {
    match display {
        Display::Short(n) => match v {
            // A top-level string reads better without quotes, as vnix's shell showed it.
            Unit::Str(s) if s.chars().count() <= n => s.to_string(),
            _ => to_short(v, n),
        },
        Display::Full => to_text(v),
        Display::Pretty => to_pretty(v, 2),
    }
}

/// Service names and the command names of their manuals, for completion.
async fn fetch_names(
    client: &mut Client,
    key: &plexus_identity::Keypair,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut ask = async |text: &str| -> Result<Option<Unit>> {
        let msg = sign_with(key, parse(text)?)?;
        Ok(
            match client.call(&msg, None, std::future::pending()).await? {
                Reply::Value(v) => Some(v),
                _ => None,
            },
        )
    };
    let services: Vec<String> = match ask("serv@io.term").await? {
        Some(Unit::List(l)) => l
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let mut commands = Vec::new();
    for s in &services {
        if let Some(Unit::Map(man)) = ask(&format!("help.man@{s}")).await? {
            commands.extend(man.keys().filter_map(|k| k.as_str().map(str::to_owned)));
        }
    }
    commands.extend(["serv", "help", "help.info", "help.tut", "help.man"].map(str::to_owned));
    commands.sort();
    commands.dedup();
    Ok((services, commands))
}

struct ShellHelper {
    services: Vec<String>,
    commands: Vec<String>,
}

impl Helper for ShellHelper {}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '#')))
            .map_or(0, |i| {
                i + before[i..].chars().next().map_or(1, char::len_utf8)
            });
        let word = &before[start..];
        let after_at = before[..start].ends_with('@');
        let shell_commands = [":short", ":full", ":pretty", ":raw", ":help", ":quit"];
        let candidates: Vec<&str> = if after_at {
            self.services.iter().map(String::as_str).collect()
        } else if before[..start].ends_with(':') && start == 1 {
            shell_commands.iter().map(|c| &c[1..]).collect()
        } else {
            self.commands.iter().map(String::as_str).collect()
        };
        let mut out: Vec<Pair> = candidates
            .into_iter()
            .filter(|c| c.starts_with(word) && (after_at || !word.is_empty()))
            .map(|c| Pair {
                display: c.to_owned(),
                replacement: c.to_owned(),
            })
            .collect();
        out.sort_by(|a, b| a.display.cmp(&b.display));
        Ok((start, out))
    }
}

/// Whether `text` has an open bracket, quote or block comment (the shell then reads another
/// line).
fn is_incomplete(text: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth -= 1,
            '`' | '\'' | '"' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return true;
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        closed = true;
                        break;
                    }
                    prev = d;
                }
                if !closed {
                    return true;
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    depth > 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::{is_incomplete, pipeline_command, proc_command, web_commands, ProcCmd};
    use plexus_units::to_text;

    #[test]
    fn the_web_terminal_has_the_shells_commands() {
        use plexus_web::term::Action;
        let commands = web_commands();
        let command = |line: &str| commands(line, "/");
        let message = |line: &str| {
            let Some(Ok(c)) = command(line) else {
                panic!("{line}: no command")
            };
            let Action::Message { message, .. } = &c.action else {
                panic!("{line}: not a message")
            };
            (to_text(message), c.attached)
        };
        let show = |line: &str, reply: &str| {
            let Some(Ok(c)) = command(line) else {
                panic!("{line}: no command")
            };
            let Action::Message { show, .. } = c.action else {
                panic!("{line}: not a message")
            };
            let shown = show(plexus_units::parse(reply).unwrap()).unwrap();
            (shown.text, shown.code)
        };
        assert_eq!(message("ps"), ("{ps:t text:t}@sys.proc".to_owned(), false));
        assert_eq!(message("nodes"), ("nodes@sys.node".to_owned(), false));
        assert_eq!(
            message("run --on n2 -- cat"),
            ("{run:[cat] on:n2 attach:t}@sys.proc".to_owned(), true)
        );
        assert_eq!(
            message("run --detach -- sleep 9"),
            ("{run:[sleep `9`]}@sys.proc".to_owned(), false)
        );
        assert!(message("cat f @n1 | wc -l @n2").0.starts_with("{graph:"));
        assert!(command("(neg 5)@math.calc").is_none());
        for (line, says) in [
            ("run --copy ./x.py", "plx run --copy"),
            ("osh w.osh", "plx osh"),
            ("kill", "Usage"),
            ("cd ../..", "cd:"),
            ("ls --user bob", "--user"),
        ] {
            let Some(Err(e)) = command(line) else {
                panic!("{line}: not refused")
            };
            assert!(e.contains(says), "{line}: {e}");
        }
        // The file commands call io.fs; `rm` of a path with a / is a file's, else a process's.
        for line in [
            "ls",
            "cd /web",
            "pwd",
            "cat notes.txt",
            "mkdir d",
            "rm ./d",
            "tree",
        ] {
            let Some(Ok(c)) = command(line) else {
                panic!("{line}: no command")
            };
            assert!(matches!(c.action, Action::Files(_)), "{line}");
        }
        assert_eq!(message("rm k7f2q1").0, "{rm:k7f2q1}@sys.proc");
        // An attached run shows nothing but its exit code; ps shows the table's text.
        assert_eq!(show("run -- false", "{code:1}"), (String::new(), 1));
        assert_eq!(show("ps", "`ID  NAME`"), ("ID  NAME\n".to_owned(), 0));
    }

    fn unit(entry: &str) -> String {
        to_text(&proc_command(entry).unwrap().unwrap().body().unwrap())
    }

    #[test]
    fn process_commands_send_the_units_plx_sends() {
        assert_eq!(
            unit("run python3 -c 'print(\"hi there\")'"),
            "{run:[python3 -c `print(\"hi there\")`] attach:t}"
        );
        assert_eq!(
            unit("run --detach --on n2 sleep 9"),
            "{run:[sleep `9`] on:n2}"
        );
        assert_eq!(unit("ps"), "{ps:t text:t}");
        assert_eq!(unit("kill k7f2q1"), "{kill:k7f2q1}");
        assert_eq!(unit("logs web"), "{logs:web}");
        assert_eq!(unit("wait web"), "{wait:web}");
        assert_eq!(unit("rm web"), "{rm:web}");
        assert!(proc_command("(neg 5)@math.calc").is_none());
        assert!(proc_command("runner").is_none());
        let err = |e: &str| proc_command(e).unwrap().unwrap_err();
        assert!(err("run 'open").contains("not closed"));
        assert!(err("kill").contains("<ID>"), "{}", err("kill"));
        assert!(err("ps --user bob").contains("--user"));
    }

    #[test]
    fn pipelines_run_with_or_without_run() {
        let line = |entry: &str| match pipeline_command(entry) {
            Some(Ok(ProcCmd::Run(a))) => (a.command, a.detach),
            other => panic!("{entry}: {other:?}"),
        };
        assert_eq!(
            line("cat /data/log.txt @n1 | grep err | wc -l"),
            (
                vec!["cat /data/log.txt @n1 | grep err | wc -l".to_owned()],
                false
            )
        );
        assert_eq!(
            line("run --detach --env A=1 cat 'f g' | sort"),
            (vec!["cat 'f g' | sort".to_owned()], true)
        );
        assert!(pipeline_command("{a:1}@test.echo").is_none());
        assert!(pipeline_command("run grep '|' f").is_none());
    }

    #[test]
    fn open_brackets_and_quotes_continue() {
        assert!(is_incomplete("[1 2"));
        assert!(is_incomplete("{a:(b"));
        assert!(is_incomplete("`open"));
        assert!(is_incomplete("/* comment"));
        assert!(!is_incomplete("[1 2]"));
        assert!(!is_incomplete("`[` // ["));
        assert!(!is_incomplete("]]")); // the parser reports the error
    }
}
