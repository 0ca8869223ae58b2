//! Test aids: a scripted terminal and a checker that runs every example of a help text.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use plexus_identity::{KeyKind, Keypair};
use plexus_kernel::{BoxFuture, Error, Kernel, NodeInfo, Outcome, Terminal};
use plexus_protocol::{TermRequest, TermResponse};
use plexus_units::{parse, to_text};

/// A terminal that records what is printed and answers reads from a script.
#[derive(Default)]
pub struct TestTerminal {
    output: Mutex<String>,
    lines: Mutex<VecDeque<String>>,
    keys: Mutex<VecDeque<String>>,
}

impl TestTerminal {
    /// A terminal with no scripted input.
    pub fn new() -> Arc<TestTerminal> {
        Arc::new(TestTerminal::default())
    }

    /// A terminal that will answer line reads with `lines`, in order.
    pub fn with_lines(lines: &[&str]) -> Arc<TestTerminal> {
        let t = TestTerminal::default();
        if let Ok(mut l) = t.lines.lock() {
            l.extend(lines.iter().map(|s| s.to_string()));
        }
        Arc::new(t)
    }

    /// Queues key presses for `inp.key`.
    pub fn push_keys(&self, keys: &[&str]) {
        if let Ok(mut k) = self.keys.lock() {
            k.extend(keys.iter().map(|s| s.to_string()));
        }
    }

    /// Everything printed so far (prompts included; a clear screen shows as `<cls>`).
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Forgets what was printed.
    pub fn clear_output(&self) {
        if let Ok(mut o) = self.output.lock() {
            o.clear();
        }
    }

    fn print(&self, s: &str) {
        if let Ok(mut o) = self.output.lock() {
            o.push_str(s);
        }
    }
}

impl Terminal for TestTerminal {
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, Error>> {
        Box::pin(async move {
            Ok(match request {
                TermRequest::Say { text } => {
                    self.print(&text);
                    TermResponse::Done
                }
                TermRequest::ReadLine {
                    prompt,
                    secret: _,
                    limit,
                } => {
                    self.print(&prompt);
                    let line = self.lines.lock().ok().and_then(|mut l| l.pop_front());
                    let line = line.map(|l| match limit {
                        Some(n) => l.chars().take(n as usize).collect(),
                        None => l,
                    });
                    if let Some(l) = &line {
                        self.print(l);
                        self.print("\n");
                    }
                    TermResponse::Line(line)
                }
                TermRequest::ReadKey => match self.keys.lock().ok().and_then(|mut k| k.pop_front())
                {
                    Some(k) => TermResponse::Key(k),
                    None => TermResponse::Failed("no more keys".into()),
                },
                TermRequest::Size => TermResponse::Size {
                    cols: 80,
                    rows: 24,
                    width_px: 0,
                    height_px: 0,
                },
                TermRequest::Clear => {
                    self.print("<cls>");
                    TermResponse::Done
                }
                TermRequest::Image { .. } => {
                    TermResponse::Unsupported("this terminal cannot show images".into())
                }
                TermRequest::Output { stream, bytes } => {
                    let tag = match stream {
                        plexus_protocol::OutputStream::Stdout => "",
                        plexus_protocol::OutputStream::Stderr => "<err>",
                    };
                    self.print(&format!("{tag}{}", String::from_utf8_lossy(&bytes)));
                    TermResponse::Done
                }
                TermRequest::Process { id } => {
                    self.print(&format!("<proc {id}>"));
                    TermResponse::Done
                }
            })
        })
    }
}

/// A kernel for tests with no services yet, and its admin user.
pub fn bare_kernel() -> (Kernel, Keypair) {
    let admin = match Keypair::generate(KeyKind::User, "admin", &mut rand::rngs::OsRng) {
        Ok(k) => k,
        Err(e) => unreachable_key(e),
    };
    let node = NodeInfo {
        id: "test-node-id".into(),
        name: "test-node".into(),
    };
    (Kernel::new(node, admin.public(), "admin"), admin)
}

fn unreachable_key(e: plexus_identity::KeyError) -> ! {
    // "admin" is a valid name; generation cannot fail.
    unreachable!("test key generation failed: {e}")
}

/// Evaluates units text as `user`, with `terminal` as the session, like `plx send` does.
pub async fn eval_text(
    kernel: &Kernel,
    user: &Keypair,
    terminal: Option<Arc<dyn Terminal>>,
    text: &str,
) -> Outcome {
    let body = parse(text).map_err(|e| Error::bad_argument(e.to_string()))?;
    let cx = kernel.context(user.public(), [0; 32], terminal, 0);
    cx.run(body).await
}

/// Runs every example in the help of `service` and returns a description of each one that
/// does not give the result its help claims (empty when all hold).
pub async fn check_examples(kernel: &Kernel, user: &Keypair, service: &str) -> Vec<String> {
    let Ok(Some(help)) = eval_text(kernel, user, None, &format!("help.tut@{service}")).await else {
        return vec![format!("{service}: no help.tut")];
    };
    let mut failures = Vec::new();
    let Some(examples) = help.as_list() else {
        return vec![format!("{service}: help.tut is not a list")];
    };
    if examples.is_empty() {
        failures.push(format!("{service}: help has no examples"));
    }
    for ex in examples {
        let Some(m) = ex.as_map() else {
            failures.push(format!("{service}: example is not a map"));
            continue;
        };
        let (Some(com), Some(res)) = (m.get_str("com"), m.get_str("res")) else {
            failures.push(format!("{service}: example without com/res"));
            continue;
        };
        let term: Arc<dyn Terminal> = TestTerminal::new();
        let got = eval_text(kernel, user, Some(term), &to_text(com)).await;
        // A result of `-` in a help text means "no value" (or the value none).
        let holds = |v: &Option<plexus_units::Unit>| match v {
            None => *res == plexus_units::Unit::None,
            Some(v) => v == res,
        };
        match got {
            Ok(v) if holds(&v) => {}
            Ok(v) => failures.push(format!(
                "{service}: {} gave {} but the help says {}",
                to_text(com),
                v.map_or("nothing".into(), |v| to_text(&v)),
                to_text(res)
            )),
            Err(e) => failures.push(format!(
                "{service}: {} failed: {e} (the help says {})",
                to_text(com),
                to_text(res)
            )),
        }
    }
    failures
}
