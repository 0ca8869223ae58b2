//! Helpers to run the real `plx` binary in a private home directory.

#![allow(dead_code, clippy::expect_used)]

pub mod netns;
pub mod tmpfs;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A temporary `$PLX_HOME` and a way to run `plx` in it.
pub struct Plx {
    pub home: tempfile::TempDir,
}

/// What one `plx` run did.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts success and returns standard output.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code,
            0,
            "plx failed: stdout {:?} stderr {:?}",
            self.out(),
            self.stderr
        );
        self.out()
    }

    /// Asserts a clean failure (exit 1 or 2, no panic) and returns standard error.
    #[track_caller]
    pub fn fails(&self) -> String {
        assert!(
            self.code == 1 || self.code == 2,
            "expected a clean failure, got code {} stderr {:?}",
            self.code,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        self.stderr.clone()
    }
}

impl Plx {
    pub fn new() -> Plx {
        Plx {
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs `plx ARGS` with `stdin` as input.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_env(args, stdin, &[])
    }

    /// `plx ARGS` in this home as user `tester`, with no stdin and its output piped, not
    /// started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plx"));
        cmd.args(args)
            .env("PLX_HOME", self.home.path())
            .env("USER", "tester")
            // Free ports for the web desktops of `plx up`: tests run side by side.
            .env("PLX_WEB_PORT", "0")
            .env_remove("PLX_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `plx ARGS` with extra environment variables.
    pub fn run_env(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn plx");
        {
            let mut input = child.stdin.take().expect("stdin");
            // The child may exit before reading everything; that is fine.
            let _ = input.write_all(stdin);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait for plx");
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// A port free on 127.0.0.11 to 127.0.0.13 (the addresses of `plx up --nodes 3`) a moment ago.
pub fn free_up_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.11:0")
            .expect("bind 127.0.0.11")
            .local_addr()
            .expect("local address")
            .port();
        if (12..=13).all(|i| std::net::TcpListener::bind(format!("127.0.0.{i}:{port}")).is_ok()) {
            return port;
        }
    }
}

/// The key of the home's user `tester` (made by a first `plx send`; the nodes' admin).
pub fn tester_key(plx: &Plx) -> plexus_identity::Keypair {
    let file = std::fs::read_to_string(plx.home.path().join("users/tester.key"))
        .expect("the tester key file (made by a first `plx send`)");
    plexus_identity::KeyFile::parse(&file)
        .expect("key file")
        .unlock(None)
        .expect("unencrypted key")
}

/// Signs `text` (units text) with `key`, the way `plx send` would: the bytes a client puts
/// on the wire (to send again, for a replay).
pub fn sign_as(key: &plexus_identity::Keypair, text: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    plexus_identity::SignedMessage::sign(
        plexus_units::parse(text).expect("units text"),
        key,
        now,
        &mut rand_core::OsRng,
    )
    .expect("sign")
    .to_bytes()
}

/// A new user key pair and the message registering it as `name` (`{reg:name pub:…}@sys.usr`),
/// for the node's admin to send.
pub fn new_user_registration(name: &str) -> (plexus_identity::Keypair, String) {
    use plexus_identity::{KeyKind, Keypair};
    let key = Keypair::generate(KeyKind::User, name, &mut rand_core::OsRng).expect("key pair");
    let hex: String = key
        .public()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (key, format!("{{reg:{name} pub:x\"{hex}\"}}@sys.usr"))
}

/// [`sign_as`] the home's user `tester`.
pub fn sign_as_tester(plx: &Plx, text: &str) -> Vec<u8> {
    sign_as(&tester_key(plx), text)
}

/// Sends signed message bytes to the node listening on `socket` and gives its reply as text:
/// the value, `nothing`, or `error {…}`.
pub fn send_signed(socket: &std::path::Path, message: &[u8]) -> String {
    use plexus_protocol::{CallResult, ClientFrame, FrameReader, NodeFrame};
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let mut wire = Vec::new();
    for frame in [
        ClientFrame::Hello {
            version: plexus_protocol::PROTOCOL_VERSION,
            client: "test".into(),
        },
        ClientFrame::Call {
            id: 1,
            message: message.to_vec(),
            terminal: false,
        },
    ] {
        plexus_protocol::encode_frame(&frame, &mut wire).expect("encode");
    }
    stream.write_all(&wire).expect("send");
    let mut reader = FrameReader::new();
    let mut buf = [0u8; 16384];
    loop {
        match reader.next_frame::<NodeFrame>().expect("frame") {
            Some(NodeFrame::Reply { result, .. }) => {
                let text =
                    |b: &[u8]| plexus_units::to_text(&plexus_units::decode(b).expect("unit"));
                return match result {
                    CallResult::Value(v) => text(&v),
                    CallResult::Error(e) => format!("error {}", text(&e)),
                    CallResult::Nothing => "nothing".into(),
                };
            }
            Some(_) => {}
            None => {
                let n = stream.read(&mut buf).expect("read");
                assert!(n > 0, "the node closed the connection");
                reader.push(&buf[..n]);
            }
        }
    }
}

/// `n` bytes that do not compress and differ for each `seed` (xorshift): file content that
/// cuts into chunks of about 1 MiB.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The chunk files in the chunk store of the node whose data directory is `data`, by name
/// (the chunks' hashes in hex).
pub fn chunk_files(data: &std::path::Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(data.join("chunks"))
        .expect("the node's chunk store")
        .flatten()
        .filter(|d| d.file_name().len() == 2)
        .flat_map(|d| {
            std::fs::read_dir(d.path())
                .expect("a chunk directory")
                .flatten()
        })
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|name| name.len() == 64)
        .collect()
}

/// Stops the nodes of a home even when a test fails half-way.
pub struct Down<'a>(pub &'a Plx);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down"], b"");
    }
}

/// Waits until `check` holds, failing the test after `secs` seconds.
#[track_caller]
pub fn until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The pid of node `n1`, `n2` or `n3` of a `plx up` cluster.
pub fn node_pid(plx: &Plx, node: &str) -> i32 {
    let dir = if node == "n1" {
        plx.home.path().join("node")
    } else {
        plx.home.path().join("cluster").join(node)
    };
    std::fs::read_to_string(dir.join("node.pid"))
        .expect("the node's pid file")
        .trim()
        .parse()
        .expect("a pid")
}

/// The last `lines` lines of each node's log of a `plx up` cluster, for a failure's message.
pub fn node_logs(plx: &Plx, lines: usize) -> String {
    let mut out = String::new();
    for node in ["n1", "n2", "n3"] {
        let dir = if node == "n1" {
            plx.home.path().join("node")
        } else {
            plx.home.path().join("cluster").join(node)
        };
        let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        out += &format!("--- {node}'s log\n");
        for line in &all[all.len().saturating_sub(lines)..] {
            out += line;
            out.push('\n');
        }
    }
    out
}

/// Kills process `pid` with SIGKILL.
pub fn kill9(pid: i32) {
    signal(pid, "KILL");
}

/// Sends signal `name` (`KILL`, `STOP`, `CONT`) to process `pid`.
pub fn signal(pid: i32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}
