//! A client connection to a node, and the terminal it lends to calls.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;

use plexus_identity::SignedMessage;
use plexus_kernel::Error as UnitError;
use plexus_protocol::{
    encode_frame, CallResult, ClientFrame, FrameReader, NodeFrame, OutputStream, TermRequest,
    TermResponse, PROTOCOL_VERSION,
};
use plexus_units::Unit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{Error, Result};

/// How a call ended, decoded.
#[derive(Debug)]
pub enum Reply {
    /// A value.
    Value(Unit),
    /// No value (an effect).
    Nothing,
    /// An error unit.
    Error(UnitError),
}

/// An open connection to a node.
pub struct Client {
    stream: UnixStream,
    frames: FrameReader,
    next_id: u64,
    /// The node's name.
    pub node_name: String,
}

impl Client {
    /// Connects and greets the node at `socket`.
    pub async fn connect(socket: &Path) -> Result<Client> {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            let socket = socket.to_owned();
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) {
                Error::NoNode { socket }
            } else {
                Error::Connect { socket, source: e }
            }
        })?;
        let mut client = Client {
            stream,
            frames: FrameReader::new(),
            next_id: 1,
            node_name: String::new(),
        };
        let greeted = client
            .send(&ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                client: format!("plx {}", env!("CARGO_PKG_VERSION")),
            })
            .await;
        // A node that turns a connection away may close it before reading the greeting: the
        // greeting then fails to send, but the node's reason is still there to read.
        let answer = client.recv().await;
        if let Ok(NodeFrame::Refused { reason }) = answer {
            return Err(Error::Refused { reason });
        }
        greeted?;
        match answer? {
            NodeFrame::Welcome { node_name, .. } => {
                client.node_name = node_name;
                Ok(client)
            }
            other => Err(Error::UnexpectedFirstFrame {
                frame: format!("{other:?}"),
            }),
        }
    }

    pub(crate) async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        let mut out = Vec::new();
        encode_frame(frame, &mut out)?;
        self.stream.write_all(&out).await.map_err(Error::Send)
    }

    pub(crate) async fn recv(&mut self) -> Result<NodeFrame> {
        loop {
            if let Some(f) = self.frames.next_frame::<NodeFrame>()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// Reads what the node sent next into the frame reader.
    async fn fill(&mut self) -> Result<()> {
        // Straight into the frame reader's buffer: a large reply is copied once on its way.
        let n = self
            .stream
            .read_buf(self.frames.buffer())
            .await
            .map_err(Error::Receive)?;
        if n == 0 {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Sends `msg` and waits for its reply, serving the node's terminal requests with `term`
    /// meanwhile. If `cancel` completes first, the call is cancelled (its reply is then an
    /// error with code `cancelled`).
    pub async fn call(
        &mut self,
        msg: &SignedMessage,
        term: Option<&StdTerminal>,
        cancel: impl Future<Output = ()>,
    ) -> Result<Reply> {
        let serve = move |request| async move {
            match term {
                Some(t) => t.handle(request).await,
                None => TermResponse::Unsupported("no terminal".into()),
            }
        };
        self.call_inner(msg, term.is_some(), serve, cancel).await
    }

    /// Sends `msg` with a terminal and waits for its reply, answering each of the node's
    /// terminal requests with `serve`: for callers that act on what a call writes (a
    /// benchmark timing the first byte of a program's output) instead of printing it.
    pub async fn call_with<F, R>(
        &mut self,
        msg: &SignedMessage,
        serve: F,
        cancel: impl Future<Output = ()>,
    ) -> Result<Reply>
    where
        F: FnMut(TermRequest) -> R,
        R: Future<Output = TermResponse>,
    {
        self.call_inner(msg, true, serve, cancel).await
    }

    async fn call_inner<F, R>(
        &mut self,
        msg: &SignedMessage,
        terminal: bool,
        mut serve: F,
        cancel: impl Future<Output = ()>,
    ) -> Result<Reply>
    where
        F: FnMut(TermRequest) -> R,
        R: Future<Output = TermResponse>,
    {
        let id = self.start_call(msg, terminal).await?;
        tokio::pin!(cancel);
        let mut cancelled = false;
        loop {
            let frame = tokio::select! {
                f = self.recv() => f?,
                _ = &mut cancel, if !cancelled => {
                    cancelled = true;
                    self.send(&ClientFrame::Cancel { id }).await?;
                    continue;
                }
            };
            match frame {
                NodeFrame::Reply { id: rid, result } if rid == id => return decode_result(result),
                NodeFrame::Term {
                    id: tid, request, ..
                } => {
                    let response = serve(request).await;
                    self.send(&ClientFrame::Term { id: tid, response }).await?;
                }
                _ => {}
            }
        }
    }
}

impl Client {
    /// Sends `msg` as a new call (with the terminal or without) and gives its id; the caller
    /// reads the reply.
    pub(crate) async fn start_call(&mut self, msg: &SignedMessage, terminal: bool) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientFrame::Call {
            id,
            message: msg.to_bytes(),
            terminal,
        })
        .await?;
        Ok(id)
    }

    /// Sends `msg` as a new call without a terminal and gives its id, without waiting:
    /// with [`Client::next_reply`], callers keep several calls in flight while producing them
    /// one at a time (a file sent chunk by chunk).
    pub async fn send_call(&mut self, msg: &SignedMessage) -> Result<u64> {
        self.start_call(msg, false).await
    }

    /// The next reply to a call sent with [`Client::send_call`], with its id (terminal
    /// requests are answered as unsupported meanwhile).
    pub async fn next_reply(&mut self) -> Result<(u64, Reply)> {
        loop {
            match self.recv().await? {
                NodeFrame::Reply { id, result } => return Ok((id, decode_result(result)?)),
                NodeFrame::Term { id, .. } => {
                    let response = TermResponse::Unsupported("no terminal".into());
                    self.send(&ClientFrame::Term { id, response }).await?;
                }
                _ => {}
            }
        }
    }

    /// Sends every message of `msgs` with up to `depth` of them in flight at once (the frames
    /// of calls sent together share one write), and gives each reply with the time from its
    /// send to its reply, in the order the replies came. Calls get no terminal.
    pub async fn pipeline(
        &mut self,
        msgs: &[SignedMessage],
        depth: usize,
    ) -> Result<Vec<(std::time::Duration, Reply)>> {
        let depth = depth.max(1);
        let mut in_flight: std::collections::HashMap<u64, std::time::Instant> =
            std::collections::HashMap::with_capacity(depth);
        let mut out = Vec::with_capacity(msgs.len());
        let mut next = msgs.iter();
        let mut wire = Vec::new();
        loop {
            wire.clear();
            while in_flight.len() < depth {
                let Some(msg) = next.next() else { break };
                let id = self.next_id;
                self.next_id += 1;
                encode_frame(
                    &ClientFrame::Call {
                        id,
                        message: msg.to_bytes(),
                        terminal: false,
                    },
                    &mut wire,
                )?;
                in_flight.insert(id, std::time::Instant::now());
            }
            if !wire.is_empty() {
                self.stream.write_all(&wire).await.map_err(Error::Send)?;
            }
            if in_flight.is_empty() {
                return Ok(out);
            }
            // Every reply already here, then more from the socket when none was.
            let mut got = 0;
            loop {
                match self.frames.next_frame::<NodeFrame>()? {
                    Some(NodeFrame::Reply { id, result }) => {
                        if let Some(sent) = in_flight.remove(&id) {
                            out.push((sent.elapsed(), decode_result(result)?));
                            got += 1;
                        }
                    }
                    Some(NodeFrame::Term { id, .. }) => {
                        let response = TermResponse::Unsupported("no terminal".into());
                        self.send(&ClientFrame::Term { id, response }).await?;
                    }
                    Some(_) => {}
                    None if got > 0 => break,
                    None => self.fill().await?,
                }
            }
        }
    }
}

pub(crate) fn decode_result(result: CallResult) -> Result<Reply> {
    Ok(match result {
        CallResult::Value(bytes) => {
            Reply::Value(plexus_units::decode_bytes(bytes).map_err(Error::BadReply)?)
        }
        CallResult::Nothing => Reply::Nothing,
        CallResult::Error(bytes) => {
            let u = plexus_units::decode(&bytes).map_err(Error::BadErrorReply)?;
            Reply::Error(
                UnitError::from_unit(&u)
                    .unwrap_or_else(|| UnitError::internal(plexus_units::to_text(&u))),
            )
        }
    })
}

/// The terminal of this process: standard input and output.
pub struct StdTerminal {
    interactive: bool,
}

impl Default for StdTerminal {
    fn default() -> StdTerminal {
        StdTerminal::new()
    }
}

impl StdTerminal {
    /// The process's terminal.
    pub fn new() -> StdTerminal {
        StdTerminal {
            interactive: std::io::stdin().is_terminal(),
        }
    }

    /// Serves one request from the node.
    pub async fn handle(&self, request: TermRequest) -> TermResponse {
        let interactive = self.interactive;
        tokio::task::spawn_blocking(move || serve_request(request, interactive))
            .await
            .unwrap_or_else(|e| TermResponse::Failed(e.to_string()))
    }
}

fn serve_request(request: TermRequest, interactive: bool) -> TermResponse {
    let mut out = std::io::stdout().lock();
    match request {
        TermRequest::Say { text } => {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            TermResponse::Done
        }
        TermRequest::Clear => {
            let _ = out.write_all(b"\x1b[2J\x1b[H");
            let _ = out.flush();
            TermResponse::Done
        }
        TermRequest::ReadLine {
            prompt,
            secret,
            limit,
        } => {
            let line = if secret && interactive {
                drop(out);
                match rpassword::prompt_password(&prompt) {
                    Ok(l) => Some(l),
                    Err(e) => return TermResponse::Failed(e.to_string()),
                }
            } else {
                let _ = out.write_all(prompt.as_bytes());
                let _ = out.flush();
                drop(out);
                let mut line = String::new();
                match std::io::stdin().lock().read_line(&mut line) {
                    Ok(0) => None,
                    Ok(_) => {
                        while line.ends_with('\n') || line.ends_with('\r') {
                            line.pop();
                        }
                        Some(line)
                    }
                    Err(e) => return TermResponse::Failed(e.to_string()),
                }
            };
            TermResponse::Line(line.map(|l| match limit {
                Some(n) => l.chars().take(n as usize).collect(),
                None => l,
            }))
        }
        TermRequest::ReadKey => {
            drop(out);
            read_key(interactive)
        }
        TermRequest::Size => size(),
        TermRequest::Output { stream, bytes } => {
            let written = match stream {
                OutputStream::Stdout => out.write_all(&bytes).and_then(|()| out.flush()),
                OutputStream::Stderr => {
                    drop(out);
                    let mut err = std::io::stderr().lock();
                    err.write_all(&bytes).and_then(|()| err.flush())
                }
            };
            match written {
                Ok(()) => TermResponse::Done,
                Err(e) => TermResponse::Failed(e.to_string()),
            }
        }
        TermRequest::Process { .. } => TermResponse::Done,
        TermRequest::Image { width, height, rgb } => {
            if kitty_graphics() {
                let _ = write_kitty_image(&mut out, width, height, &rgb);
                TermResponse::Done
            } else {
                TermResponse::Unsupported(
                    "this terminal cannot show images (it needs the kitty graphics protocol); save the image with `plx img export`"
                        .into(),
                )
            }
        }
    }
}

fn kitty_graphics() -> bool {
    std::env::var_os("KITTY_WINDOW_ID").is_some()
        || std::env::var("TERM").is_ok_and(|t| t.contains("kitty"))
}

fn write_kitty_image(
    out: &mut impl Write,
    width: u32,
    height: u32,
    rgb: &[u8],
) -> std::io::Result<()> {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(rgb);
    let chunks: Vec<&[u8]> = data.as_bytes().chunks(4096).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let more = u8::from(i + 1 < chunks.len());
        if i == 0 {
            write!(out, "\x1b_Gf=24,s={width},v={height},a=T,m={more};")?;
        } else {
            write!(out, "\x1b_Gm={more};")?;
        }
        out.write_all(chunk)?;
        out.write_all(b"\x1b\\")?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

fn size() -> TermResponse {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        if let Ok(ws) = rustix::termios::tcgetwinsize(&stdout) {
            return TermResponse::Size {
                cols: u32::from(ws.ws_col),
                rows: u32::from(ws.ws_row),
                width_px: u32::from(ws.ws_xpixel),
                height_px: u32::from(ws.ws_ypixel),
            };
        }
    }
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    TermResponse::Size {
        cols: env("COLUMNS", 80),
        rows: env("LINES", 24),
        width_px: 0,
        height_px: 0,
    }
}

/// Reads one key in raw mode (or one character from a pipe).
fn read_key(interactive: bool) -> TermResponse {
    let stdin = std::io::stdin();
    let saved = if interactive {
        match rustix::termios::tcgetattr(&stdin) {
            Ok(t) => {
                let mut raw = t.clone();
                raw.make_raw();
                let _ =
                    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
                Some(t)
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let mut buf = [0u8; 8];
    let n = stdin.lock().read(&mut buf).unwrap_or(0);
    if let Some(t) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &t);
    }
    let key = match &buf[..n] {
        [] => return TermResponse::Failed("end of input".into()),
        [3] => return TermResponse::Failed("interrupted".into()),
        [0x1b, b'[', b'A', ..] => "UP".to_owned(),
        [0x1b, b'[', b'B', ..] => "DOWN".to_owned(),
        [0x1b, b'[', b'C', ..] => "RIGHT".to_owned(),
        [0x1b, b'[', b'D', ..] => "LEFT".to_owned(),
        [0x1b] => "ESC".to_owned(),
        [b'\r' | b'\n'] => "ENTER".to_owned(),
        [0x7f | 0x08] => "BACKSPACE".to_owned(),
        [b'\t'] => "TAB".to_owned(),
        bytes => match std::str::from_utf8(bytes) {
            Ok(s) if s.chars().count() == 1 => s.to_owned(),
            _ => "UNKNOWN".to_owned(),
        },
    };
    TermResponse::Key(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_socket_without_a_node_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("node.sock");
        let e = Client::connect(&socket).await.err().unwrap();
        assert!(matches!(e, Error::NoNode { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_node_that_refuses_the_greeting_is_an_error_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("node.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let node = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut wire = Vec::new();
            let refusal = NodeFrame::Refused {
                reason: "version 9".into(),
            };
            encode_frame(&refusal, &mut wire).unwrap();
            stream.write_all(&wire).await.unwrap();
        });
        let e = Client::connect(&socket).await.err().unwrap();
        assert!(
            matches!(e, Error::Refused { ref reason } if reason == "version 9"),
            "{e}"
        );
        node.await.unwrap();
    }
}
