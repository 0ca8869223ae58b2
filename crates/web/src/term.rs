//! The terminal page's side on the node: a session's messages evaluated as the λ shell's
//! are, with `io.term` answered by the browser.
//!
//! The page and the node exchange JSON text messages on the `/api/term` WebSocket. The page
//! sends `{"eval": TEXT}` (a unit in text notation), `{"line": TEXT}` (or `{"line": null}`
//! for the end of input) to answer a prompt, and `{"cancel": true}` to stop the command. The
//! node sends what a service asks of the terminal — `{"say": TEXT}`, `{"out": TEXT, "err":
//! BOOL}`, `{"ask": PROMPT, "secret": BOOL}`, `{"clear": true}` — and ends each evaluation
//! with `{"value": TEXT}`, `{"nothing": true}` or `{"error": TEXT}`. One evaluation runs at a
//! time; closing the page stops it.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
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

/// The terminal of one page.
struct PageTerminal {
    to_page: mpsc::Sender<Value>,
    lines: Mutex<mpsc::Receiver<Option<String>>>,
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
                TermRequest::Process { .. } => Ok(TermResponse::Done),
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
Up and Down go through what you typed; Ctrl-C or Stop stops a command.
The λ shell's own commands are on the other pages: nodes on Overview; run, ps, kill and
logs on Processes; ls, cat, put and get on Files; services on Services.";

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
    Cancel(bool),
}

/// Evaluates `text` as `user` with `term` as the session's terminal, as the node does a
/// message the user signed: a fresh root hash and evaluation id, so that nothing takes two
/// commands for a replay of one.
async fn evaluate(kernel: Kernel, user: PublicKey, term: Arc<PageTerminal>, text: String) -> Value {
    if matches!(text.trim(), "help" | ":help") {
        return json!({ "value": HELP });
    }
    let body = match plexus_units::parse(&text) {
        Ok(body) => body,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut hash = [0u8; 32];
    OsRng.fill_bytes(&mut hash);
    let session: Arc<dyn Terminal> = term;
    let cx = kernel
        .context(user, hash, Some(session), 0)
        .with_evaluation(Evaluation {
            time_ms: crate::server::now_ms(),
            id: OsRng.next_u64(),
        });
    let help = asks_help(&body);
    match cx.run(body).await {
        Ok(Some(v)) => match help.then(|| plexus_kernel::help_text(&v)).flatten() {
            Some(text) => json!({ "value": text.trim_end() }),
            None => json!({ "value": plexus_units::to_text(&v) }),
        },
        Ok(None) => json!({ "nothing": true }),
        Err(e) => json!({ "error": format!("{}: {}", e.code(), e.message()) }),
    }
}

/// Serves one terminal page until it closes, or `alive` says the session has ended.
pub(crate) async fn serve(
    kernel: Kernel,
    user: PublicKey,
    alive: impl Fn() -> bool,
    mut socket: WebSocket,
) {
    let (to_page, mut for_page) = mpsc::channel(TO_PAGE);
    let (typed, lines) = mpsc::channel(TYPED_AHEAD);
    let term = Arc::new(PageTerminal {
        to_page: to_page.clone(),
        lines: Mutex::new(lines),
    });
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
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
                    Ok(FromPage::Eval(_)) if running.as_ref().is_some_and(|r| !r.is_finished()) => {
                        let busy = json!({ "error": "the last command is still running" });
                        let _ = to_page.try_send(busy);
                    }
                    Ok(FromPage::Eval(text)) => {
                        let (kernel, term, to_page) = (kernel.clone(), term.clone(), to_page.clone());
                        running = Some(tokio::spawn(async move {
                            let done = evaluate(kernel, user, term, text).await;
                            let _ = to_page.send(done).await;
                        }));
                    }
                    Ok(FromPage::Line(line)) => {
                        let _ = typed.try_send(line);
                    }
                    Ok(FromPage::Cancel(false)) => {}
                    Ok(FromPage::Cancel(true)) => {
                        if let Some(r) = running.take().filter(|r| !r.is_finished()) {
                            r.abort();
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
        r.abort();
    }
}
