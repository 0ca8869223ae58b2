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
        term: &StdTerminal,
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
    #![allow(clippy::unwrap_used)]

    use super::*;
    use plexus_units::to_text;

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
