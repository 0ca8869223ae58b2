//! The terminal page's side on the node: a session's messages evaluated as the λ shell's
//! are, with `io.term` answered by the browser.
//!
//! The page and the node exchange JSON text messages on the `/api/term` WebSocket. The page
//! sends `{"eval": TEXT}` (a unit in text notation, or a command of the λ shell: `run`, `ps`,
//! `kill`, `logs`, … as [`Commands`] parses them), `{"line": TEXT}` (or `{"line": null}` for
//! the end of input) to answer a prompt, `{"input": TEXT}` (or `{"input": null}`) for the
//! standard input of an attached program, and `{"cancel": true}` to stop the command: an
//! attached program is first sent an interrupt, as Ctrl-C does in the shell. The node sends
//! what a service asks of the terminal — `{"say": TEXT}`, `{"out": TEXT, "err": BOOL}`,
//! `{"ask": PROMPT, "secret": BOOL}`, `{"clear": true}` — `{"attached": true}` when a program
//! reads what is typed, and ends each evaluation with `{"value": TEXT}`, `{"nothing": true}`
//! or `{"error": TEXT}`. One evaluation runs at a time; closing the page stops it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use plexus_client::attached::{kill_body, stdin_body, Input, PROC_SERVICE};
use plexus_client::files::KernelLink;
use plexus_identity::PublicKey;
use plexus_kernel::{code, BoxFuture, Error as KernelError, Evaluation, Kernel, Terminal};
use plexus_protocol::{OutputStream, TermRequest, TermResponse};
use plexus_units::Unit;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

/// Messages on their way to the page: a slow page holds the evaluation back.
const TO_PAGE: usize = 64;
/// Lines typed ahead of the prompts that read them.
const TYPED_AHEAD: usize = 16;

/// Pieces of standard input typed ahead of the program that reads them.
const INPUT_AHEAD: usize = 16;

/// A command of the λ shell that the terminal runs: the message it sends as the user, and
/// how its reply is shown. The binary that serves the desktop makes them (`serve`'s
/// `commands`), parsing the words as its own shell does, so that the page and the shell
/// have the same commands.
pub struct ShellCommand {
    /// What it does.
    pub action: Action,
    /// A program attached to the terminal: what is typed is its standard input, and Stop
    /// sends it an interrupt.
    pub attached: bool,
}

/// What a command of the shell does.
pub enum Action {
    /// Sends one message, `BODY@service`; `show` gives what its reply shows.
    Message {
        /// The message.
        message: Unit,
        /// What its reply shows.
        show: Box<dyn FnOnce(Unit) -> Result<Shown, String> + Send>,
    },
    /// Calls `io.fs` as the user (the file commands), giving what is shown.
    Files(Box<dyn FnOnce(KernelLink) -> BoxFuture<'static, Result<Shown, String>> + Send>),
}

/// What a command shows: its text, the exit code (0 unless a program ended otherwise), and
/// the working directory it moved to (`cd`).
#[derive(Default)]
pub struct Shown {
    /// What the page shows.
    pub text: String,
    /// The exit code, shown when not 0.
    pub code: i32,
    /// The page's new working directory in the cluster's tree.
    pub cwd: Option<String>,
}

/// The λ shell's commands, given a line and the page's working directory in the cluster's
/// tree: `None` when the line is none of them (it is then a unit), else the command or why
/// its words do not make one.
pub type Commands = Arc<dyn Fn(&str, &str) -> Option<Result<ShellCommand, String>> + Send + Sync>;

/// The terminal of one page.
struct PageTerminal {
    to_page: mpsc::Sender<Value>,
    lines: Mutex<mpsc::Receiver<Option<String>>>,
    /// The process an attached run started (sys.proc tells the terminal its id).
    process: tokio::sync::watch::Sender<Option<String>>,
    /// Whether the running command is an attached program.
    attached: std::sync::atomic::AtomicBool,
    /// The working directory of the page's file commands, as `cd` left it.
    cwd: std::sync::Mutex<String>,
}

impl PageTerminal {
    async fn show(&self, v: Value) -> Result<(), KernelError> {
        self.to_page
            .send(v)
            .await
            .map_err(|_| KernelError::new(code::TERMINAL, "the web terminal was closed"))
    }
}

impl Terminal for PageTerminal {
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, KernelError>> {
        Box::pin(async move {
            match request {
                TermRequest::Say { text } => {
                    self.show(json!({ "say": text })).await?;
                    Ok(TermResponse::Done)
                }
                TermRequest::Output { stream, bytes } => {
                    let err = stream == OutputStream::Stderr;
                    let text = String::from_utf8_lossy(&bytes);
                    self.show(json!({ "out": text, "err": err })).await?;
                    Ok(TermResponse::Done)
                }
                TermRequest::ReadLine {
                    prompt,
                    secret,
                    limit,
                } => {
                    self.show(json!({ "ask": prompt, "secret": secret }))
                        .await?;
                    let line = self.lines.lock().await.recv().await.flatten();
                    let limit = limit.map_or(usize::MAX, |l| l as usize);
                    Ok(TermResponse::Line(
                        line.map(|l| l.chars().take(limit).collect()),
                    ))
                }
                TermRequest::Clear => {
                    self.show(json!({ "clear": true })).await?;
                    Ok(TermResponse::Done)
                }
                TermRequest::Process { id } => {
                    self.process.send_replace(Some(id));
                    Ok(TermResponse::Done)
                }
                TermRequest::ReadKey | TermRequest::Size | TermRequest::Image { .. } => Ok(
                    TermResponse::Unsupported("the web terminal reads lines and shows text".into()),
                ),
            }
        })
    }
}

/// What `help` shows.
const HELP: &str = "\
Type a unit and press Enter: it is evaluated on this node as you, as the λ shell does.
  (neg 5)@math.calc            a message to a service
  {mul:[2 {inc:4} (sub (10 3))]}@math.calc
  (say `hello`)@io.term        services can use this terminal
  (inp `name: `)@io.term       and ask you for a line here
  serv@io.term                 every service; help@math.calc explains one
                               (help.man@… its commands, help.tut@… its examples)
  x@serv:node                  run on a given node of the cluster
  nodes                        the cluster's nodes
  services                     which node provides which service
Programs (the options of plx run, ps, kill, logs, wait, rm; --help on each):
  run PROG ARGS…               run a program, its output here; what you type goes to
                               it (Ctrl-D ends its input, Ctrl-C or Stop sends it INT,
                               a second Stop kills it)
  run --detach --on n2 PROG …  start it on node n2 and print its id
  cat f @n1 | grep x @n2       a pipeline across nodes
  ps   pipes   graphs          every program, pipe and graph of the cluster
  kill ID   logs ID   wait ID   rm ID
Files of the cluster tree (paths from the working directory, / at first):
  ls [DIR]   cd [DIR]   pwd   cat FILE   stat PATH   mkdir DIR   mv FROM TO
  cp FROM TO   tree [DIR]   du [DIR]   rm ./PATH   (rm of a path with a /; rm ID
                               forgets a process)
Up and Down go through what you typed (kept in this browser). put, get, .osh scripts
and run --copy read or write files of your machine: use plx there, or the Files page.";

/// Whether `body` asks a service for its help (shown as text rather than as a unit).
fn asks_help(body: &Unit) -> bool {
    matches!(body, Unit::Stream(s) if matches!(s.unit.as_str(), Some("help" | "help.man" | "help.tut")))
}

/// What the page sends.
#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum FromPage {
    Eval(String),
    Line(Option<String>),
    Input(Option<String>),
    Cancel(bool),
}

/// What the page asks of an attached program.
enum Control {
    Input(Input),
    Interrupt,
}

/// Runs `body` as `user`, as the node does a message the user signed: a fresh root hash and
/// evaluation id, so that nothing takes two commands for a replay of one.
async fn call_as(
    kernel: &Kernel,
    user: PublicKey,
    term: Option<Arc<dyn Terminal>>,
    body: Unit,
) -> Result<Option<Unit>, KernelError> {
    context(kernel, user, term).run(body).await
}

/// A root context of `user`: a fresh root hash and evaluation id.
fn context(kernel: &Kernel, user: PublicKey, term: Option<Arc<dyn Terminal>>) -> plexus_kernel::Cx {
    let mut hash = [0u8; 32];
    OsRng.fill_bytes(&mut hash);
    kernel
        .context(user, hash, term, 0)
        .with_evaluation(Evaluation {
            time_ms: crate::server::now_ms(),
            id: OsRng.next_u64(),
        })
}

/// Sends what the page types to the attached program, once sys.proc has said which it is,
/// in the order typed; never returns (the run's end stops it).
async fn forward_controls(
    kernel: &Kernel,
    user: PublicKey,
    term: &PageTerminal,
    mut controls: mpsc::Receiver<Control>,
) -> std::convert::Infallible {
    let mut process = term.process.subscribe();
    while let Some(control) = controls.recv().await {
        let Some(id) = process
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|id| id.clone())
        else {
            break;
        };
        let body = match &control {
            Control::Input(input) => stdin_body(&id, input),
            Control::Interrupt => kill_body(&id, "INT"),
        };
        if let Ok(message) = Unit::stream(body, PROC_SERVICE) {
            // A program that has ended takes no more input: the run's reply says how it ended.
            let _ = call_as(kernel, user, None, message).await;
        }
    }
    std::future::pending().await
}

/// Evaluates `text` (a command of `commands`, or a unit) as `user` with `term` as the
/// session's terminal; an attached program gets `controls`.
async fn evaluate(
    kernel: Kernel,
    user: PublicKey,
    term: Arc<PageTerminal>,
    text: String,
    commands: Commands,
    controls: mpsc::Receiver<Control>,
) -> Value {
    if matches!(text.trim(), "help" | ":help") {
        return json!({ "value": HELP });
    }
    term.process.send_replace(None);
    term.attached.store(false, Ordering::SeqCst);
    let session: Arc<dyn Terminal> = term.clone();
    let here = term
        .cwd
        .lock()
        .map(|c| c.clone())
        .unwrap_or_else(|_| "/".to_owned());
    match commands(text.trim(), &here) {
        Some(Err(e)) => return json!({ "error": e }),
        Some(Ok(command)) => {
            if command.attached {
                term.attached.store(true, Ordering::SeqCst);
                let _ = term.show(json!({ "attached": true })).await;
            }
            let shown = match command.action {
                Action::Message { message, show } => {
                    let call = call_as(&kernel, user, Some(session), message);
                    let reply = tokio::select! {
                        reply = call => reply,
                        never = forward_controls(&kernel, user, &term, controls) => match never {},
                    };
                    match reply {
                        Ok(reply) => show(reply.unwrap_or(Unit::None)),
                        Err(e) => Err(format!("{}: {}", e.code(), e.message())),
                    }
                }
                Action::Files(run) => {
                    run(KernelLink::new(context(&kernel, user, Some(session)))).await
                }
            };
            return match shown {
                Ok(Shown { cwd: Some(to), .. }) => {
                    if let Ok(mut c) = term.cwd.lock() {
                        *c = to;
                    }
                    json!({ "nothing": true })
                }
                Ok(Shown { text, code: 0, .. }) if text.is_empty() => json!({ "nothing": true }),
                Ok(Shown { text, code: 0, .. }) => json!({ "value": text.trim_end() }),
                Ok(Shown { text, code, .. }) => {
                    json!({ "value": format!("{text}exit code {code}").trim_start() })
                }
                Err(e) => json!({ "error": e }),
            };
        }
        None => {}
    }
    let body = match plexus_units::parse(&text) {
        Ok(body) => body,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let help = asks_help(&body);
    match call_as(&kernel, user, Some(session), body).await {
        Ok(Some(v)) => match help.then(|| plexus_kernel::help_text(&v)).flatten() {
            Some(text) => json!({ "value": text.trim_end() }),
            None => json!({ "value": plexus_units::to_text(&v) }),
        },
        Ok(None) => json!({ "nothing": true }),
        Err(e) => json!({ "error": format!("{}: {}", e.code(), e.message()) }),
    }
}

/// The evaluation of the page's last command.
struct Running {
    task: tokio::task::JoinHandle<()>,
    /// Set once its answer is on its way to the page.
    over: Arc<std::sync::atomic::AtomicBool>,
}

impl Running {
    fn busy(&self) -> bool {
        !self.over.load(Ordering::SeqCst) && !self.task.is_finished()
    }
}

/// Serves one terminal page until it closes, or `alive` says the session has ended.
pub(crate) async fn serve(
    kernel: Kernel,
    user: PublicKey,
    commands: Commands,
    alive: impl Fn() -> bool,
    mut socket: WebSocket,
) {
    let (to_page, mut for_page) = mpsc::channel(TO_PAGE);
    let (typed, lines) = mpsc::channel(TYPED_AHEAD);
    let term = Arc::new(PageTerminal {
        to_page: to_page.clone(),
        lines: Mutex::new(lines),
        process: tokio::sync::watch::Sender::new(None),
        attached: std::sync::atomic::AtomicBool::new(false),
        cwd: std::sync::Mutex::new("/".to_owned()),
    });
    let mut running: Option<Running> = None;
    // The running evaluation's attached program, and whether it was sent an interrupt.
    let mut controls: Option<mpsc::Sender<Control>> = None;
    let mut interrupted = false;
    loop {
        tokio::select! {
            got = socket.recv() => {
                let text = match got {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                if !alive() {
                    break;
                }
                match serde_json::from_str::<FromPage>(&text) {
                    Ok(FromPage::Eval(_)) if running.as_ref().is_some_and(Running::busy) => {
                        let busy = json!({ "error": "the last command is still running" });
                        let _ = to_page.try_send(busy);
                    }
                    Ok(FromPage::Eval(text)) => {
                        let (kernel, term, to_page) = (kernel.clone(), term.clone(), to_page.clone());
                        let (control, controlled) = mpsc::channel(INPUT_AHEAD);
                        controls = Some(control);
                        interrupted = false;
                        let commands = commands.clone();
                        let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
                        let answered = over.clone();
                        let task = tokio::spawn(async move {
                            let done =
                                evaluate(kernel, user, term, text, commands, controlled).await;
                            // Over before the page hears it: its next command is not refused.
                            answered.store(true, Ordering::SeqCst);
                            let _ = to_page.send(done).await;
                        });
                        running = Some(Running { task, over });
                    }
                    Ok(FromPage::Line(line)) => {
                        let _ = typed.try_send(line);
                    }
                    Ok(FromPage::Input(input)) => {
                        let input = match input {
                            Some(text) => Input::Data(format!("{text}\n").into_bytes()),
                            None => Input::Eof,
                        };
                        if let Some(c) = &controls {
                            let _ = c.try_send(Control::Input(input));
                        }
                    }
                    Ok(FromPage::Cancel(false)) => {}
                    Ok(FromPage::Cancel(true)) if !interrupted
                        && term.attached.load(Ordering::SeqCst)
                        && running.as_ref().is_some_and(Running::busy) =>
                    {
                        // An attached program is asked first, as Ctrl-C asks it in the shell
                        // (once sys.proc has said which it is).
                        interrupted = true;
                        if let Some(c) = &controls {
                            let _ = c.try_send(Control::Interrupt);
                        }
                    }
                    Ok(FromPage::Cancel(true)) => {
                        if let Some(r) = running.take().filter(Running::busy) {
                            // Asked once already: the program is killed, as a second Ctrl-C
                            // kills it in the shell.
                            let started = term.process.borrow().clone();
                            if let Some(id) = started {
                                let kernel = kernel.clone();
                                tokio::spawn(async move {
                                    if let Ok(kill) = Unit::stream(kill_body(&id, "KILL"), PROC_SERVICE) {
                                        let _ = call_as(&kernel, user, None, kill).await;
                                    }
                                });
                            }
                            r.task.abort();
                            let _ = to_page.try_send(json!({ "error": "cancelled" }));
                        }
                    }
                    Err(e) => {
                        let _ = to_page.try_send(json!({ "error": format!("not understood: {e}") }));
                    }
                }
            }
            Some(v) = for_page.recv() => {
                if socket.send(Message::Text(v.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(r) = running {
        r.task.abort();
    }
}
