//! End to end: real `plx node` processes driven by `plx send`, `plx up` and `plx down`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_up_port, Plx};

/// A node running in the background, killed when dropped.
struct RunningNode {
    child: Child,
    data: PathBuf,
}

impl RunningNode {
    fn start(plx: &Plx) -> RunningNode {
        RunningNode::start_with(plx, &[])
    }

    fn start_with(plx: &Plx, options: &[&str]) -> RunningNode {
        RunningNode::start_via(plx, &[], options)
    }

    /// Starts the node through `wrapper`, a command that ends by running its arguments (as
    /// `sh -c '…; exec "$@"' sh` does).
    fn start_via(plx: &Plx, wrapper: &[&str], options: &[&str]) -> RunningNode {
        let data = plx.home.path().join("node");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_plx"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_plx")),
        };
        let child = command
            .args(["node", "--name", "testnode", "--data"])
            .arg(&data)
            .args(options)
            .env("PLX_HOME", plx.home.path())
            .env("USER", "tester")
            .env("PLX_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let node = RunningNode { child, data };
        node.wait_ready();
        node
    }

    fn socket(&self) -> PathBuf {
        self.data.join("node.sock")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(self.socket()).is_err() {
            assert!(Instant::now() < deadline, "node did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A line of the node's `/proc/PID/status`, in kB (`VmHWM` is its peak memory).
    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// The CPU time the node has used (user and system), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name (which is in parentheses): utime and stime are the
        // 12th and 13th of them.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(plx: &Plx, unit: &str) -> common::Run {
    plx.run(&["send", unit], b"")
}

#[test]
fn send_evaluates_and_prints_canonical_results() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    assert_eq!(send(&plx, "(neg 5)@math.calc").ok(), "-5\n");
    assert_eq!(
        send(&plx, "{mul:[2 {inc:4} (sub (10 3))]}@math.calc").ok(),
        "70\n"
    );
    assert_eq!(send(&plx, "(sum (1.5 2))@math.calc").ok(), "3.5\n");
    assert_eq!(
        send(&plx, "[1 `two` (neg 3)@math.calc]").ok(),
        "[1 two -3]\n"
    );
    // From standard input and from a file.
    assert_eq!(plx.run(&["send"], b"(inc 41)@math.calc").ok(), "42\n");
    let file = plx.home.path().join("msg.unit");
    std::fs::write(&file, "(dec 1)@math.calc").unwrap();
    assert_eq!(
        plx.run(&["send", "-f", file.to_str().unwrap()], b"").ok(),
        "0\n"
    );
}

#[test]
fn errors_go_to_stderr_with_a_nonzero_exit() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let err = send(&plx, "(div (1 0))@math.calc").fails();
    assert!(err.contains("math.div0"), "{err}");
    let err = send(&plx, "x@no.such.service").fails();
    assert!(err.contains("serv.unknown"), "{err}");
    let err = send(&plx, "[1 2").fails();
    assert!(err.contains("unclosed list"), "{err}");
    let err = send(&plx, "x@math.calc:elsewhere").fails();
    assert!(err.contains("node.unknown"), "{err}");
    // The node is still fine.
    assert_eq!(send(&plx, "(inc 1)@math.calc").ok(), "2\n");
}

#[test]
fn a_single_node_lists_itself_and_its_services() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let table = plx.run(&["nodes"], b"").ok();
    assert!(table.contains("NAME"), "{table}");
    assert!(table.contains("single"), "{table}");
    assert!(table.contains("alive"), "{table}");
    assert!(!table.contains("leader of the cluster"), "{table}");
    let unit = send(&plx, "nodes@sys.node").ok();
    assert!(unit.contains("role:single"), "{unit}");
    assert!(unit.contains("cores:"), "{unit}");
    let me = send(&plx, "me@sys.node").ok();
    assert!(
        unit.contains(&format!("name:{}", me.trim())),
        "{unit} / {me}"
    );
    let services = plx.run(&["services"], b"").ok();
    for s in ["math.calc", "io.store", "sys.node"] {
        assert!(services.contains(s), "{services}");
    }
    assert!(services.contains(me.trim()), "{services}");
    assert_eq!(send(&plx, "leader@sys.node").ok(), "-\n");
    // Changing a cluster needs one.
    let err = plx.run(&["invite"], b"").fails();
    assert!(err.contains("cluster.none"), "{err}");
    assert!(err.contains("--init"), "{err}");
    let err = send(&plx, "(voters [a])@sys.node").fails();
    assert!(err.contains("cluster.none"), "{err}");
}

#[test]
fn terminal_output_and_input_use_the_senders_terminal_in_order() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let out = plx
        .run(
            &[
                "send",
                "{neg:(prs.str (inp `num: `)@io.term)@dat.proc}@math.calc",
            ],
            b"12\n",
        )
        .ok();
    assert_eq!(out, "num: -12\n");
    let out = send(
        &plx,
        "[(say hello)@io.term (say.fmt [` ` world])@io.term 1]",
    )
    .ok();
    assert_eq!(out, "hello world[- - 1]\n");
    // A call without a value prints nothing of its own.
    assert_eq!(send(&plx, "{say:hi nl:t}@io.term").ok(), "hi\n");
}

#[test]
fn io_store_survives_kill_9() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    assert_eq!(
        send(&plx, "{save:{lang:rust n:[1]} out:@mine}@io.store").ok(),
        ""
    );
    assert_eq!(send(&plx, "{save:[2] out:@mine.n}@io.store").ok(), "");
    node.kill9();
    let _node = RunningNode::start(&plx);
    assert_eq!(
        send(&plx, "(load @mine)@io.store").ok(),
        "{lang:rust n:[1 2]}\n"
    );
    // The seeded content is there too.
    assert!(send(&plx, "(load @txt.hello)@io.store")
        .ok()
        .contains("Hello"));
}

/// A captured signed save takes effect once: sent again it is refused, and after a restart
/// (which empties the node's replay guard) it is refused by the store's once-records.
#[test]
fn a_replayed_save_is_refused_after_a_restart() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    send(&plx, "{save:[x] out:@l}@io.store").ok();
    let captured = common::sign_as_tester(&plx, "{save:[y] out:@l}@io.store");
    assert_eq!(common::send_signed(&node.socket(), &captured), "nothing");
    let again = common::send_signed(&node.socket(), &captured);
    assert!(again.starts_with("error {err:msg.replay"), "{again}");
    assert!(node.terminate().success());
    let node = RunningNode::start(&plx);
    let after_restart = common::send_signed(&node.socket(), &captured);
    assert!(
        after_restart.starts_with("error {err:msg.replay"),
        "{after_restart}"
    );
    assert_eq!(send(&plx, "(load @l)@io.store").ok(), "[x y]\n");
}

/// The admin's captured registration of bob, replayed after bob was removed and the node
/// restarted (its replay guard forgot the message), is refused: bob stays removed. So is a
/// captured user invite: its copy hands out no new token.
#[test]
fn a_replayed_registration_is_refused_after_a_restart() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    send(&plx, "who@sys.usr").ok();
    let (_, registration) = common::new_user_registration("bob");
    let captured = common::sign_as_tester(&plx, &registration);
    let registered = common::send_signed(&node.socket(), &captured);
    assert!(registered.starts_with("{ath:bob "), "{registered}");
    send(&plx, "(del bob)@sys.usr").ok();
    let invite = common::sign_as_tester(&plx, "invite@sys.usr");
    let token = common::send_signed(&node.socket(), &invite);
    assert!(token.starts_with("inv_"), "{token}");
    assert!(node.terminate().success());
    let node = RunningNode::start(&plx);
    let replayed = common::send_signed(&node.socket(), &captured);
    assert!(replayed.starts_with("error {err:msg.replay"), "{replayed}");
    let replayed = common::send_signed(&node.socket(), &invite);
    assert!(replayed.starts_with("error {err:msg.replay"), "{replayed}");
    let users = send(&plx, "get@sys.usr").ok();
    assert!(!users.contains("ath:bob"), "{users}");
}

#[test]
fn a_second_node_on_the_same_data_dir_is_refused() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    let out = Command::new(env!("CARGO_BIN_EXE_plx"))
        .args(["node", "--data"])
        .arg(&node.data)
        .env("PLX_HOME", plx.home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
}

#[test]
fn sigterm_stops_the_node_cleanly() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    let socket = node.socket();
    let status = node.terminate();
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "socket left behind");
}

/// A client speaking the protocol directly, to send calls in any order and any number.
struct RawClient {
    stream: UnixStream,
    key: plexus_identity::Keypair,
    reader: plexus_protocol::FrameReader,
    wire: Vec<u8>,
}

impl RawClient {
    fn connect(node: &RunningNode) -> RawClient {
        use plexus_identity::{KeyKind, Keypair};
        let stream = UnixStream::connect(node.socket()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = RawClient {
            stream,
            key: Keypair::generate(KeyKind::User, "piper", &mut rand_core::OsRng).unwrap(),
            reader: plexus_protocol::FrameReader::new(),
            wire: Vec::new(),
        };
        c.frame(&plexus_protocol::ClientFrame::Hello {
            version: plexus_protocol::PROTOCOL_VERSION,
            client: "test".into(),
        });
        c
    }

    fn sign(&self, text: &str) -> plexus_identity::SignedMessage {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        plexus_identity::SignedMessage::sign(
            plexus_units::parse(text).unwrap(),
            &self.key,
            now,
            &mut rand_core::OsRng,
        )
        .unwrap()
    }

    /// Queues a frame; [`RawClient::flush`] sends everything queued in one write.
    fn frame(&mut self, f: &plexus_protocol::ClientFrame) {
        plexus_protocol::encode_frame(f, &mut self.wire).unwrap();
    }

    fn call(&mut self, id: u64, message: Vec<u8>) {
        self.frame(&plexus_protocol::ClientFrame::Call {
            id,
            message,
            terminal: false,
        });
    }

    fn flush(&mut self) {
        use std::io::Write;
        self.stream.write_all(&self.wire).unwrap();
        self.wire.clear();
    }

    /// The next `n` replies, by call id, as text (`error {…}` for errors); the same id twice
    /// keeps the last.
    fn replies(&mut self, n: usize) -> std::collections::BTreeMap<u64, String> {
        use plexus_protocol::{CallResult, NodeFrame};
        use plexus_units::{decode, to_text};
        use std::io::Read;
        let mut out = std::collections::BTreeMap::new();
        let mut got = 0;
        let mut buf = [0u8; 16384];
        while got < n {
            match self.reader.next_frame::<NodeFrame>().unwrap() {
                Some(NodeFrame::Reply { id, result }) => {
                    let text = match result {
                        CallResult::Value(v) => to_text(&decode(&v).unwrap()),
                        CallResult::Error(e) => {
                            format!("error {}", to_text(&decode(&e).unwrap()))
                        }
                        CallResult::Nothing => "nothing".into(),
                    };
                    out.insert(id, text);
                    got += 1;
                }
                Some(_) => {}
                None => {
                    let n = self.stream.read(&mut buf).unwrap();
                    assert!(n > 0, "the node closed the connection");
                    self.reader.push(&buf[..n]);
                }
            }
        }
        out
    }
}

/// Calls sent together on one connection are admitted together (one batch of signature
/// checks): each gets its own answer, a bad signature or a replay among them is refused alone,
/// and a Cancel after a Call in the same write finds the call started.
#[test]
fn pipelined_calls_are_each_answered() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    let mut c = RawClient::connect(&node);
    let replayed = c.sign("(inc 100)@math.calc");
    for id in 1..=20u64 {
        let msg = match id {
            7 => {
                // A signature that does not match the body.
                let good = c.sign("(inc 7)@math.calc");
                let mut sig = *good.signature();
                sig[40] ^= 1;
                plexus_identity::SignedMessage::from_parts(
                    good.body().clone(),
                    good.author(),
                    good.time_ms(),
                    *good.nonce(),
                    sig,
                )
                .unwrap()
                .to_bytes()
            }
            11 | 12 => replayed.to_bytes(),
            13 => b"not a message".to_vec(),
            14 => c.sign("(wait 60)@time.chrono").to_bytes(),
            _ => c.sign(&format!("(inc {id})@math.calc")).to_bytes(),
        };
        c.call(id, msg);
    }
    c.frame(&plexus_protocol::ClientFrame::Cancel { id: 14 });
    c.flush();
    let replies = c.replies(20);
    let value = |id: u64| (id + 1).to_string();
    for id in (1..=20u64).filter(|i| ![7, 11, 12, 13, 14].contains(i)) {
        assert_eq!(replies[&id], value(id), "call {id}");
    }
    let text = |id: u64| replies[&id].clone();
    assert!(replies[&7].contains("msg.signature"), "{}", text(7));
    // One of the two copies runs, the other is a replay.
    let ran = [11, 12]
        .iter()
        .filter(|id| replies[id] == value(100))
        .count();
    assert_eq!(ran, 1, "{} / {}", text(11), text(12));
    assert!(
        [11, 12].iter().any(|id| replies[id].contains("msg.replay")),
        "{} / {}",
        text(11),
        text(12)
    );
    assert!(replies[&13].contains("msg.bad"), "{}", text(13));
    assert!(replies[&14].contains("cancelled"), "{}", text(14));
    // The node is still fine.
    assert_eq!(send(&plx, "(inc 1)@math.calc").ok(), "2\n");
}

/// A connection holds at most 1,024 calls in flight: more are refused at once with `limit`,
/// reusing an id in flight is refused, and calls that ended (however quickly) free their
/// place.
#[test]
fn calls_in_flight_on_a_connection_are_limited() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    let mut c = RawClient::connect(&node);
    // Many quick calls first, in rounds: none may stay counted after it ended.
    let mut next = 1u64;
    for _ in 0..6 {
        for _ in 0..200 {
            let m = c.sign("(inc 1)@math.calc").to_bytes();
            c.call(next, m);
            next += 1;
        }
        c.flush();
        assert!(c.replies(200).values().all(|r| r == "2"));
    }
    // An id already in flight is refused (its first call goes on).
    let first_wait = next;
    let m = c.sign("(wait 60)@time.chrono").to_bytes();
    c.call(first_wait, m);
    next += 1;
    let m = c.sign("(inc 5)@math.calc").to_bytes();
    c.call(first_wait, m);
    c.flush();
    let r = c.replies(1);
    assert!(r[&first_wait].contains("already in flight"), "{r:?}");
    // Then 1,024 long calls in all fit, and the next ones do not.
    for _ in 0..1029 {
        let m = c.sign("(wait 60)@time.chrono").to_bytes();
        c.call(next, m);
        next += 1;
    }
    c.flush();
    let refused = c.replies(6);
    assert_eq!(refused.len(), 6, "{refused:?}");
    for (id, r) in &refused {
        assert!(*id >= first_wait + 1024, "call {id} refused: {r}");
        assert!(r.contains("err:limit") && r.contains("1024"), "{r}");
    }
    // Closing the connection stops its calls; the node is fine.
    drop(c);
    assert_eq!(send(&plx, "(inc 1)@math.calc").ok(), "2\n");
    // Only the listing's own task is left.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = send(&plx, "get.all@sys.task").ok();
        if tasks.matches("name:msg").count() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "calls still running: {tasks}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `plx node --max-clients N` caps the client connections: with two clients greeted, a third
/// is refused with the reason. The node raises its open-files limit to the hard limit, so that
/// a cap of many clients is reachable even when started with a low soft limit.
#[test]
fn max_clients_caps_the_client_connections() {
    let plx = Plx::new();
    let low_soft_limit = ["sh", "-c", "ulimit -Sn 256 && exec \"$@\"", "sh"];
    let node = RunningNode::start_via(&plx, &low_soft_limit, &["--max-clients", "2"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.child.id())).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        open_files[0], open_files[1],
        "soft and hard: {open_files:?}"
    );

    let mut clients = [RawClient::connect(&node), RawClient::connect(&node)];
    for c in &mut clients {
        let m = c.sign("(inc 1)@math.calc").to_bytes();
        c.call(1, m);
        c.flush();
        assert_eq!(c.replies(1)[&1], "2");
    }
    let err = send(&plx, "(inc 1)@math.calc").fails();
    assert!(
        err.contains("refused") && err.contains("serves 2 clients"),
        "{err}"
    );
    let err = plx.run(&["node", "--max-clients", "0"], b"").fails();
    assert!(err.contains("--max-clients"), "{err}");
}

#[test]
fn garbage_on_the_socket_does_not_hurt_the_node() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    for junk in [
        &b"hello there"[..],
        &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        &[4, 0, 0, 0, 9, 9, 9, 9],
        &[0u8; 100],
    ] {
        let mut s = UnixStream::connect(node.socket()).unwrap();
        let _ = s.write_all(junk);
    }
    assert_eq!(send(&plx, "(inc 1)@math.calc").ok(), "2\n");
}

/// Asserts that `data`, a node's data directory, and everything in it is its owner's alone:
/// directories 0700, files 0600.
fn assert_private(data: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data), 0o700, "{}", data.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for name in ["node.redb", "node.log"] {
        assert!(files.iter().any(|f| f == name), "no {name} in {files:?}");
    }
}

/// Registering is the admin's decision unless the node is started with open registration.
#[test]
fn up_registration_is_the_admins_unless_open() {
    let plx = Plx::new();
    let _down = Down(&plx);
    plx.run(&["up", "--detach"], b"").ok();
    plx.run(&["user", "new", "bob"], b"").ok();
    let reg = ["send", "--user", "bob", "(reg bob)@sys.usr"];
    assert!(plx.run(&reg, b"").fails().contains("denied"));
    plx.run(&["down"], b"").ok();
    plx.run(&["up", "--detach", "--open-registration"], b"")
        .ok();
    assert!(plx.run(&reg, b"").ok().starts_with("{ath:bob "));
}

/// `plx user invite` hands out a one-time user invite and `plx user join` uses it from another
/// home (another person on the machine): the invitee is registered once, under their user's
/// name or `--name`; a used or expired invite is refused with a clear error.
#[test]
fn user_invite_then_join_registers_the_invitee_once() {
    let admin = Plx::new();
    let _down = Down(&admin);
    admin.run(&["up", "--detach"], b"").ok();
    let socket = admin.home.path().join("node/node.sock");
    let socket = socket.to_str().unwrap();
    let via_node = |plx: &Plx, args: &[&str]| plx.run_env(args, b"", &[("PLX_SOCKET", socket)]);
    let invite = admin.run(&["user", "invite"], b"");
    let token = invite.ok().trim().to_owned();
    assert!(token.starts_with("inv_"), "{token}");
    assert!(
        invite.stderr.contains(&format!("plx user join {token}")),
        "{}",
        invite.stderr
    );

    let carol = Plx::new();
    carol.run(&["user", "new", "carol"], b"").ok();
    let joined = via_node(&carol, &["user", "join", &token]).ok();
    assert!(joined.contains("registered carol"), "{joined}");
    let who = via_node(&carol, &["send", "who@sys.usr"]).ok();
    assert!(who.starts_with("{ath:carol "), "{who}");
    // Only the admin hands out invites.
    let err = via_node(&carol, &["user", "invite"]).fails();
    assert!(err.contains("denied"), "{err}");

    let dave = Plx::new();
    dave.run(&["user", "new", "dave"], b"").ok();
    let err = via_node(&dave, &["user", "join", &token]).fails();
    assert!(err.contains("already used user invite"), "{err}");
    assert!(err.contains("plx user invite"), "{err}");

    let short = admin.run(&["user", "invite", "--for", "1"], b"").ok();
    // The invite's whole validity: what is waited for here is the clock itself.
    std::thread::sleep(Duration::from_millis(1500));
    let err = via_node(&dave, &["user", "join", short.trim()]).fails();
    assert!(err.contains("expired user invite"), "{err}");
    let err = admin.run(&["user", "invite", "--for", "0"], b"").fails();
    assert!(err.contains("--for"), "{err}");

    let fresh = admin.run(&["user", "invite"], b"").ok();
    let joined = via_node(&dave, &["user", "join", fresh.trim(), "--name", "david"]).ok();
    assert!(joined.contains("registered david"), "{joined}");
    let users = admin.run(&["send", "get@sys.usr"], b"").ok();
    assert!(
        users.contains("ath:carol") && users.contains("ath:david"),
        "{users}"
    );
}

#[test]
fn up_detach_then_send_then_down() {
    let plx = Plx::new();
    let up = plx.run(&["up", "--detach"], b"");
    up.ok();
    assert!(up.stderr.contains("node up"), "{}", up.stderr);
    assert_eq!(send(&plx, "(fac 5)@math.calc").ok(), "120\n");
    assert_private(&plx.home.path().join("node"));
    let again = plx.run(&["up", "--detach"], b"");
    again.ok();
    assert!(again.stderr.contains("already running"), "{}", again.stderr);
    let down = plx.run(&["down"], b"");
    down.ok();
    assert!(down.stderr.contains("stopped"), "{}", down.stderr);
    let err = send(&plx, "(inc 1)@math.calc").fails();
    assert!(err.contains("no node is running"), "{err}");
    let down = plx.run(&["down"], b"");
    down.ok();
    assert!(down.stderr.contains("no node"), "{}", down.stderr);
}

#[test]
fn the_shell_reads_units_and_prints_results() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let input = b"(neg 5)@math.calc\n[1\n2]\n]\n(say hi)@io.term\nx@nope\n:full\n:quit\n";
    let run = plx.run(&["shell"], input);
    let out = run.ok();
    assert!(out.contains("-5"), "{out}");
    assert!(out.contains("[1 2]"), "{out}");
    assert!(out.contains("hi"), "{out}");
    // Syntax and evaluation errors are reported and the shell goes on.
    assert!(
        run.stderr.contains("nothing open to close"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("serv.unknown"), "{}", run.stderr);

    // Input that ends inside a unit is reported, not dropped.
    let run = plx.run(&["shell"], b"(inc 1)@math.calc\n[1 2\n(3 4)\n");
    assert!(run.ok().contains('2'));
    assert!(
        run.stderr.contains("unclosed list: expected ']'"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_shell_shows_help_as_text_and_raw_as_the_unit() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let unit = send(&plx, "help@math.calc").ok();
    let unit = unit.trim_end();
    assert!(unit.len() > 1000 && !unit.contains('\n'), "{unit}");

    let out = plx
        .run(&["shell"], b"help@math.calc\nhelp.tut@dat.proc\n")
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("math.calc: Exact arithmetic")),
        "{out}"
    );
    for heading in ["Commands:", "Examples:"] {
        assert!(lines.contains(&heading), "{out}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  neg ") && l.ends_with(" Negation: -x.")),
        "{out}"
    );
    assert!(lines.contains(&"    (len héllo)@dat.proc"), "{out}");
    assert!(lines.contains(&"    → 5"), "{out}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{out}");

    // :raw shows the unit, as plx send does.
    let raw = plx.run(&["shell"], b":raw help@math.calc\n").ok();
    assert!(raw.lines().any(|l| l == unit), "{raw}");
}

#[test]
fn the_store_shell_program_runs() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let out = plx
        .run(&["send", "(load @task.hello)@io.store@sys.task"], b"")
        .ok();
    assert!(out.contains("Hello, Plexus!"), "{out}");
}

#[test]
fn ctrl_c_cancels_the_call_not_the_node() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let child = plx
        .command(&["send", "(wait 60)@time.chrono"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cancelled"), "{err}");
    assert_eq!(send(&plx, "(inc 1)@math.calc").ok(), "2\n");
}

#[test]
fn killing_a_task_answers_its_caller() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let child = plx
        .command(&["send", "{task.loop:(wait.ms 10)@time.chrono}@sys.task"])
        .spawn()
        .unwrap();
    // Find the looping call's root task (the parent of the task.loop task) and kill it from
    // another session.
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let all = send(&plx, "get.all@sys.task").ok();
        let parent = all
            .split('{')
            .find(|e| e.contains("name:task.loop"))
            .and_then(|e| {
                e.split("par.id:")
                    .nth(1)?
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<i64>()
                    .ok()
            });
        if let Some(id) = parent {
            break id;
        }
        assert!(Instant::now() < deadline, "no loop task appeared: {all}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(send(&plx, &format!("(kill {id})@sys.task")).ok(), "");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("killed"), "{err}");
}

/// Stops a detached `plx up` cluster when dropped, also when the test fails.
struct Down<'a>(&'a Plx);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down"], b"");
    }
}

/// `plx down` succeeds and says it stopped `nodes` nodes.
fn down_stops(plx: &Plx, nodes: usize) {
    let stopped = plx.run(&["down"], b"");
    stopped.ok();
    assert_eq!(
        stopped.stderr.matches("node stopped").count(),
        nodes,
        "{}",
        stopped.stderr
    );
}

/// `send` through another node's socket.
fn send_via(plx: &Plx, socket: &std::path::Path, unit: &str) -> common::Run {
    plx.run(&["send", "--socket", socket.to_str().unwrap(), unit], b"")
}

/// Retries `unit` through `socket` for up to 20 s until it succeeds (the cluster elects a new
/// leader after a kill).
fn send_via_until_ok(plx: &Plx, socket: &std::path::Path, unit: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = send_via(plx, socket, unit);
        if run.code == 0 || Instant::now() > deadline {
            return run.ok();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The README's demo: `plx up --nodes 3` returns with three voters, so `kill -9` of any node
/// right away, even the leader, leaves a working cluster that still holds what was written;
/// `plx down` stops the rest.
#[test]
fn up_three_nodes_survives_a_kill_then_down() {
    let plx = Plx::new();
    let port = free_up_port().to_string();
    let down = Down(&plx);
    let up = plx.run(&["up", "--nodes", "3", "--detach", "--port", &port], b"");
    up.ok();
    for i in 1..=3 {
        assert!(
            up.stderr
                .contains(&format!("node {i} up on 127.0.0.{}", 10 + i)),
            "{}",
            up.stderr
        );
    }
    assert_eq!(up.stderr.matches(" voter ").count(), 3, "{}", up.stderr);
    for data in ["node", "cluster/n2", "cluster/n3"] {
        assert_private(&plx.home.path().join(data));
    }
    assert_eq!(send(&plx, "(inc 1)@math.calc:n3").ok(), "2\n");
    send(&plx, "{save:41 out:@kept}@io.store").ok();

    // n1, the leader, dies at once.
    let pid = std::fs::read_to_string(plx.home.path().join("node/node.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let n2 = plx.home.path().join("cluster/n2/node.sock");
    send_via_until_ok(&plx, &n2, "{save:42 out:@after}@io.store");
    assert_eq!(
        send_via_until_ok(&plx, &n2, "(load @kept)@io.store"),
        "41\n"
    );
    assert_eq!(send_via_until_ok(&plx, &n2, "(inc 2)@math.calc:n3"), "3\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = plx
            .run(&["nodes", "--socket", n2.to_str().unwrap()], b"")
            .ok();
        let n1 = nodes
            .lines()
            .find(|l| l.contains(" n1 "))
            .unwrap_or_default();
        if n1.contains("down") {
            break;
        }
        assert!(Instant::now() < deadline, "n1 not shown down: {nodes}");
        std::thread::sleep(Duration::from_millis(100));
    }

    down_stops(&plx, 2);

    // `up` again restarts the same three nodes from their data; calls to the others work at
    // once (n1 starts first and fails to dial the others until they are up: its calls must not
    // fail while it waits out the reconnect backoff) and nothing written is lost.
    plx.run(&["up", "--nodes", "3", "--detach", "--port", &port], b"")
        .ok();
    assert_eq!(send(&plx, "(inc 1)@math.calc:n3").ok(), "2\n");
    assert_eq!(send(&plx, "(inc 1)@math.calc:n2").ok(), "2\n");
    assert_eq!(send(&plx, "(load @after)@io.store").ok(), "42\n");
    down_stops(&plx, 3);
    drop(down);
}

#[test]
fn node_threads_must_be_a_positive_count() {
    let plx = Plx::new();
    for bad in ["0", "-1", "many", "5000"] {
        let run = plx.run(&["node", &format!("--threads={bad}")], b"");
        assert_eq!(run.code, 2, "--threads {bad}: {}", run.stderr);
        assert!(run.stderr.contains("--threads"), "{}", run.stderr);
    }
}

/// Cancelling a call stops its work: a list being built on the blocking pool (no await point
/// in its loop) stops within a moment, the call answers `cancelled`, and the next call is
/// answered at once.
#[test]
fn cancelling_a_call_stops_the_work_it_was_doing() {
    let plx = Plx::new();
    let node = RunningNode::start(&plx);
    let mut c = RawClient::connect(&node);
    // Seconds of work (in a loop with no await point), within the default memory budget.
    let m = c
        .sign("(len (rnd.int (2000000 (0 (pow (2 200))@math.calc)))@dat.gen)@dat.proc")
        .to_bytes();
    c.call(1, m);
    c.flush();
    // Wait until the node is busy with it.
    let start = node.cpu_ticks();
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.cpu_ticks() < start + 20 {
        assert!(Instant::now() < deadline, "the call never started working");
        std::thread::sleep(Duration::from_millis(10));
    }
    c.frame(&plexus_protocol::ClientFrame::Cancel { id: 1 });
    c.flush();
    let r = c.replies(1);
    assert!(r[&1].contains("cancelled"), "{r:?}");
    let m = c.sign("(inc 1)@math.calc").to_bytes();
    c.call(2, m);
    c.flush();
    assert_eq!(c.replies(1)[&2], "2");
    // Over the next second, the node is nearly idle (the list would take seconds more).
    let after = node.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = node.cpu_ticks() - after;
    assert!(
        used < 40,
        "the node used {used} ticks of CPU after the cancel"
    );
}

/// A client that pipelines big calls and never reads the replies does not make the node hold
/// them all: the calls of one connection share a memory account (twice a message's budget,
/// here 2 × 64 MiB) that its unread replies count in, calls beyond it fail with `limit`, and
/// the node stops reading requests while replies pile up.
#[test]
fn a_client_that_does_not_read_its_replies_cannot_exhaust_memory() {
    let plx = Plx::new();
    let node = RunningNode::start_with(&plx, &["--eval-memory", "64"]);
    let before = node.status_kb("VmHWM");
    let mut c = RawClient::connect(&node);
    // Each call builds a list of about 40 MB and replies with about 5 MB.
    let calls = 16u64;
    for id in 1..=calls {
        let m = c.sign("(lin.int (1 1000000))@dat.gen").to_bytes();
        c.call(id, m);
    }
    c.flush();
    let replies = c.replies(calls as usize);
    let lists = replies.values().filter(|r| r.starts_with("[1 2 3")).count();
    let limited = replies.values().filter(|r| r.contains("err:limit")).count();
    assert_eq!(lists + limited, calls as usize, "{:?}", replies.keys());
    assert!(lists >= 1, "no call got through");
    let grown_mb = node.status_kb("VmHWM").saturating_sub(before) / 1024;
    assert!(
        grown_mb < 400,
        "the node's peak memory grew by {grown_mb} MB"
    );
    assert_eq!(send(&plx, "(inc 1)@math.calc").ok(), "2\n");
}

#[test]
fn fs_cat_into_a_reader_that_stops_is_quiet() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let local = plx.home.path().join("big.bin");
    std::fs::write(&local, common::noise(3_000_000, 5)).unwrap();
    plx.run(&["fs", "put", local.to_str().unwrap(), "/big.bin"], b"")
        .ok();
    // `plx fs cat /big.bin | head -c 5`: the reader goes after 5 bytes.
    let mut cat = plx.command(&["fs", "cat", "/big.bin"]).spawn().unwrap();
    let mut first = [0u8; 5];
    std::io::Read::read_exact(cat.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(cat.stdout.take());
    let out = cat.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// A node told not to show the cluster's files to its programs says so when a program names
/// a `/fs/` path, and runs the rest.
#[test]
fn a_node_without_the_tree_mounted_says_why_a_cluster_path_cannot_be_used() {
    let plx = Plx::new();
    let _node = RunningNode::start_with(&plx, &["--no-mount-fs"]);
    let err = plx
        .run(&["run", "--", "cat", "/fs/data/in.txt"], b"")
        .fails();
    assert!(
        err.contains("does not keep the cluster's files mounted") && err.contains("/fs/"),
        "{err}"
    );
    assert_eq!(plx.run(&["run", "--", "echo", "/fsx"], b"").ok(), "/fsx\n");
}

#[test]
fn the_shell_works_with_files_from_its_working_directory() {
    let plx = Plx::new();
    let _node = RunningNode::start(&plx);
    let local = plx.home.path().join("hello.txt");
    std::fs::write(&local, "hello, tree\n").unwrap();
    let back = plx.home.path().join("back.txt");
    let script = format!(
        "mkdir /data\ncd /data\npwd\nput {} f.txt\nls\ncat f.txt\nmv f.txt g.txt\nstat g.txt\n\
         mkdir sub\ncp g.txt sub/copy.txt\ntree /data\ndu\n\
         get g.txt {}\nrm ./g.txt\nls\ncd /nope\ncd ../..\ncd\npwd\n:quit\n",
        local.display(),
        back.display()
    );
    let run = plx.run(&["shell"], script.as_bytes());
    let out = run.ok();
    assert!(out.contains("/data\n"), "{out}");
    let line_of = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(['-', 'd']) && l.ends_with(&format!("  {name}")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line_of("f.txt").contains(" 12  "), "{out}");
    assert!(out.contains("hello, tree"), "{out}");
    assert!(out.contains("path:`/data/g.txt`"), "{out}");
    // A copy shares the chunks; tree lists each directory's entries under it.
    assert!(
        out.contains("/data\n  g.txt\n  sub\n    copy.txt\n"),
        "{out}"
    );
    assert!(out.contains("24  /data  (2 files)"), "{out}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello, tree\n");
    assert!(
        line_of("g.txt").is_empty(),
        "removed, so no ls lists it: {out}"
    );
    assert!(line_of("sub/").starts_with("drwxr-xr-x"), "{out}");
    assert!(run.stderr.contains("not.found"), "{}", run.stderr);
    assert!(run.stderr.contains("goes above the root"), "{}", run.stderr);
    // `cd` alone goes home.
    assert!(out.trim_end().ends_with("/home/tester"), "{out}");
}
