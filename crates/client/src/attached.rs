//! An attached program: the call that runs it, with the caller's input and signals forwarded
//! to it while the call is in flight.
//!
//! `{run:[…] attach:t}@sys.proc` streams the program's output to the caller's terminal and
//! answers when the program ends. Meanwhile the node tells the terminal the process id
//! ([`TermRequest::Process`]); from then on [`Client::call_attached`] sends what the caller
//! types as `{stdin:ID data:x"…"}` calls (one at a time, so a program that reads slowly slows
//! the sender down), `{stdin:ID eof:t}` at the end of the input, and `{kill:ID signal:SIG}`
//! for each signal asked for. The command line feeds it from standard input and Ctrl-C; a
//! graphical front end feeds it from its own widgets.

use plexus_identity::{Keypair, SignedMessage};
use plexus_protocol::{ClientFrame, NodeFrame, TermRequest, TermResponse};
use plexus_units::{Map, Unit};
use tokio::sync::mpsc;

use crate::connection::decode_result;
use crate::{sign_with, Client, Reply, Result, StdTerminal};

/// The service that runs programs and takes their input and signals.
pub const PROC_SERVICE: &str = "sys.proc";

/// Where an attached program's terminal requests (its output, its id) are served: the
/// process's own terminal ([`StdTerminal`]), or a front end's window.
pub trait Terminal {
    /// Serves one request; an `Output` is answered once its bytes are shown.
    fn handle(&self, request: TermRequest) -> impl std::future::Future<Output = TermResponse>;
}

impl Terminal for StdTerminal {
    async fn handle(&self, request: TermRequest) -> TermResponse {
        StdTerminal::handle(self, request).await
    }
}

/// What the caller gives the program's standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes to write.
    Data(Vec<u8>),
    /// The end of the input: the program's standard input is closed.
    Eof,
}

/// Where an attached call's input and signals come from.
pub struct Controls {
    /// The program's standard input, in order. Read only while no earlier piece is being
    /// written, so a bounded channel holds the producer back.
    pub input: mpsc::Receiver<Input>,
    /// Signal names (`INT`, `KILL`, …) to send to the program.
    pub signals: mpsc::UnboundedReceiver<String>,
}

/// `{stdin:ID data:x"…"}` or `{stdin:ID eof:t}`.
pub fn stdin_body(id: &str, input: &Input) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str("stdin"), Unit::str(id));
    match input {
        Input::Data(bytes) => m.insert(Unit::str("data"), Unit::Bytes(bytes.clone().into())),
        Input::Eof => m.insert(Unit::str("eof"), Unit::Bool(true)),
    };
    Unit::Map(m)
}

/// `{kill:ID signal:SIG}`.
pub fn kill_body(id: &str, signal: &str) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str("kill"), Unit::str(id));
    m.insert(Unit::str("signal"), Unit::str(signal));
    Unit::Map(m)
}

/// `body@sys.proc`, signed by `key`.
fn to_proc(key: &Keypair, body: Unit) -> Result<SignedMessage> {
    let stream = Unit::stream(body, PROC_SERVICE).map_err(crate::Error::Name)?;
    sign_with(key, stream)
}

impl Client {
    /// Sends `msg` (an attached run or any call that announces a process) and waits for its
    /// reply, serving terminal requests with `term` and forwarding `controls` to the process
    /// once the node has named it. The forwarded calls are signed by `key` (the caller: only
    /// the process's owner may write to it or signal it). A signal asked for before the
    /// process is named is sent as soon as it is; a failed `stdin` call (the program closed
    /// its input, or ended) stops the forwarding of input, not the call.
    pub async fn call_attached(
        &mut self,
        msg: &SignedMessage,
        term: &impl Terminal,
        key: &Keypair,
        mut controls: Controls,
    ) -> Result<Reply> {
        let run = self.start_call(msg, true).await?;
        let mut process: Option<String> = None;
        let mut pending_signals: Vec<String> = Vec::new();
        // The stdin call being written, if any: input waits for it (flow control).
        let mut writing: Option<u64> = None;
        let mut input_open = true;
        let mut signals_open = true;
        loop {
            let reading_input = input_open && writing.is_none() && process.is_some();
            let frame = tokio::select! {
                f = self.recv() => f?,
                piece = controls.input.recv(), if reading_input => {
                    let piece = piece.unwrap_or(Input::Eof);
                    input_open = piece != Input::Eof;
                    if let Some(id) = &process {
                        let body = stdin_body(id, &piece);
                        writing = Some(self.start_call(&to_proc(key, body)?, false).await?);
                    }
                    continue;
                }
                signal = controls.signals.recv(), if signals_open => {
                    match (signal, &process) {
                        (None, _) => signals_open = false,
                        (Some(s), Some(id)) => {
                            self.start_call(&to_proc(key, kill_body(id, &s))?, false).await?;
                        }
                        (Some(s), None) => pending_signals.push(s),
                    }
                    continue;
                }
            };
            match frame {
                NodeFrame::Reply { id, result } if id == run => return decode_result(result),
                NodeFrame::Reply { id, result } if Some(id) == writing => {
                    writing = None;
                    if !matches!(decode_result(result), Ok(Reply::Nothing | Reply::Value(_))) {
                        input_open = false;
                    }
                }
                NodeFrame::Term { id, call, request } => {
                    if let (TermRequest::Process { id: pid }, true) = (&request, call == run) {
                        process = Some(pid.clone());
                        for s in pending_signals.drain(..) {
                            self.start_call(&to_proc(key, kill_body(pid, &s))?, false)
                                .await?;
                        }
                    }
                    let response = if call == run {
                        term.handle(request).await
                    } else {
                        TermResponse::Unsupported("no terminal".into())
                    };
                    self.send(&ClientFrame::Term { id, response }).await?;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use plexus_protocol::{encode_frame, CallResult, FrameReader, OutputStream};
    use plexus_units::to_text;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// A terminal that remembers the outputs it was asked to show.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Vec<u8>>>);

    impl Terminal for Recorder {
        async fn handle(&self, request: TermRequest) -> TermResponse {
            if let TermRequest::Output { bytes, .. } = request {
                self.0.lock().unwrap().push(bytes);
            }
            TermResponse::Done
        }
    }

    /// The fake node's side of the connection.
    struct Wire {
        stream: UnixStream,
        frames: FrameReader,
    }

    impl Wire {
        async fn send(&mut self, frame: &NodeFrame) {
            let mut out = Vec::new();
            encode_frame(frame, &mut out).unwrap();
            self.stream.write_all(&out).await.unwrap();
        }

        async fn recv(&mut self) -> ClientFrame {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(f) = self.frames.next_frame::<ClientFrame>().unwrap() {
                    return f;
                }
                let n = self.stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed the connection");
                self.frames.push(&buf[..n]);
            }
        }
    }

    fn body_of(message: &[u8]) -> String {
        to_text(SignedMessage::from_bytes(message).unwrap().body())
    }

    /// The fake node names the process; the signal asked for before that, then the input (one
    /// piece at a time, in order, then its end) reach it as sys.proc calls, and the run's
    /// reply ends the call.
    #[tokio::test]
    async fn input_and_signals_follow_the_process_id() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("node.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let node = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut wire = Wire {
                stream,
                frames: FrameReader::new(),
            };
            assert!(matches!(wire.recv().await, ClientFrame::Hello { .. }));
            wire.send(&NodeFrame::Welcome {
                version: plexus_protocol::PROTOCOL_VERSION,
                node_id: "id".into(),
                node_name: "n1".into(),
            })
            .await;
            let ClientFrame::Call {
                id: run, message, ..
            } = wire.recv().await
            else {
                panic!("expected the run call");
            };
            assert_eq!(body_of(&message), "{run:[cat] attach:t}@sys.proc");
            wire.send(&NodeFrame::Term {
                id: 1,
                call: run,
                request: TermRequest::Process { id: "p1".into() },
            })
            .await;
            let mut seen = Vec::new();
            let mut term_id = 2;
            while seen.len() < 4 {
                let (id, body) = match wire.recv().await {
                    ClientFrame::Term { .. } => continue,
                    ClientFrame::Call { id, message, .. } => (id, body_of(&message)),
                    other => panic!("unexpected {other:?}"),
                };
                let stdin = body.starts_with("{stdin:");
                seen.push(body);
                if !stdin {
                    continue;
                }
                // Output while a piece is being written: no next piece may come before
                // this one is answered.
                wire.send(&NodeFrame::Term {
                    id: term_id,
                    call: run,
                    request: TermRequest::Output {
                        stream: OutputStream::Stdout,
                        bytes: vec![b'x'],
                    },
                })
                .await;
                term_id += 1;
                loop {
                    match wire.recv().await {
                        ClientFrame::Term { .. } => break,
                        ClientFrame::Call { message, .. } => {
                            let b = body_of(&message);
                            assert!(!b.starts_with("{stdin:"), "{b} came too soon");
                            seen.push(b);
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                let result = CallResult::Nothing;
                wire.send(&NodeFrame::Reply { id, result }).await;
            }
            let value = plexus_units::parse("{id:p1 state:exited code:0}").unwrap();
            let result = CallResult::Value(plexus_units::encode(&value).into());
            wire.send(&NodeFrame::Reply { id: run, result }).await;
            seen
        });

        let key = plexus_identity::Keypair::generate(
            plexus_identity::KeyKind::User,
            "tester",
            &mut rand_core::OsRng,
        )
        .unwrap();
        let body = plexus_units::parse("{run:[cat] attach:t}@sys.proc").unwrap();
        let msg = sign_with(&key, body).unwrap();
        let (input_tx, input) = mpsc::channel(4);
        let (signal_tx, signals) = mpsc::unbounded_channel();
        signal_tx.send("INT".to_owned()).unwrap();
        input_tx.send(Input::Data(b"ab".to_vec())).await.unwrap();
        input_tx.send(Input::Data(b"cd".to_vec())).await.unwrap();
        drop(input_tx);
        let term = Recorder::default();
        let mut client = Client::connect(&socket).await.unwrap();
        let reply = client
            .call_attached(&msg, &term, &key, Controls { input, signals })
            .await
            .unwrap();
        assert!(matches!(reply, Reply::Value(_)), "{reply:?}");
        let seen = node.await.unwrap();
        assert_eq!(
            seen,
            [
                "{kill:p1 signal:INT}@sys.proc",
                r#"{stdin:p1 data:x"6162"}@sys.proc"#,
                r#"{stdin:p1 data:x"6364"}@sys.proc"#,
                "{stdin:p1 eof:t}@sys.proc",
            ]
        );
        assert_eq!(term.0.lock().unwrap().len(), 3);
    }

    #[test]
    fn control_bodies() {
        assert_eq!(
            to_text(&stdin_body("k7f2q1", &Input::Data(b"hi\n".to_vec()))),
            r#"{stdin:k7f2q1 data:x"68690a"}"#
        );
        assert_eq!(
            to_text(&stdin_body("k7f2q1", &Input::Eof)),
            "{stdin:k7f2q1 eof:t}"
        );
        assert_eq!(to_text(&kill_body("web", "INT")), "{kill:web signal:INT}");
    }
}
