//! End to end: `plx run`, `ps`, `kill`, `logs`, `wait`, `rm` against a real node started with
//! `plx up --detach`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::Plx;

/// Stops the home's node when dropped.
struct Down<'a>(&'a Plx);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down"], b"");
    }
}

/// A home with a node running; `plx down` when dropped.
fn node() -> Plx {
    let plx = Plx::new();
    plx.run(&["up", "--detach"], b"").ok();
    plx
}

/// `plx ARGS` started in `plx`'s home with its output piped, not waited for.
fn spawn(plx: &Plx, args: &[&str]) -> Child {
    plx.command(args).spawn().unwrap()
}

/// Waits for `child` to exit (at most `secs` seconds) and gives its exit code.
fn exit_code(child: &mut Child, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        let late = Instant::now() > deadline;
        if late {
            let _ = child.kill();
        }
        assert!(!late, "plx did not exit within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn attached_run_prints_output_as_it_comes_and_exits_with_the_programs_code() {
    let plx = node();
    let _down = Down(&plx);
    let mut child = spawn(
        &plx,
        &[
            "run",
            "--",
            "python3",
            "-c",
            "import sys, time\nprint('first', flush=True)\ntime.sleep(3)\nprint('second')\nsys.exit(3)",
        ],
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only once the program had ended"
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    assert_eq!(exit_code(&mut child, 20), 3);
}

/// `plx ARGS` with `input` on its standard input; its exit code (within `secs` seconds), its
/// standard output and its standard error.
fn run_with_input(plx: &Plx, args: &[&str], input: &[u8], secs: u64) -> (i32, Vec<u8>, String) {
    use std::io::{Read, Write};
    let mut child = plx.command(args).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let code = exit_code(&mut child, secs);
    writer.join().unwrap();
    (code, reader.join().unwrap(), err_reader.join().unwrap())
}

#[test]
fn stdin_reaches_the_program_and_its_end_closes_it() {
    let plx = node();
    let _down = Down(&plx);
    let input = b"hello\nworld\n".repeat(20_000);
    let (code, out, err) = run_with_input(&plx, &["run", "--", "cat"], &input, 60);
    assert_eq!(code, 0, "{err}");
    assert!(
        out == input,
        "{} bytes of {} came back",
        out.len(),
        input.len()
    );
    // A short input may arrive before the program runs: it must still get it, then its end.
    for _ in 0..5 {
        let args = ["run", "--", "sh", "-c", "cat >&2; exit 4"];
        let (code, _, err) = run_with_input(&plx, &args, b"to stderr", 20);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("to stderr"), "{err}");
    }
}

/// Waits for `child` (a `plx` showing a program's output) to print `ready`, then sends it
/// SIGINT, as Ctrl-C in a terminal would. Gives its output, to keep open while it exits.
fn interrupt_once_ready(child: &mut Child) -> BufReader<ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    out
}

#[test]
fn ctrl_c_sends_int_to_the_program_and_plx_exits_128_plus_it() {
    let plx = node();
    let _down = Down(&plx);
    let mut child = spawn(
        &plx,
        &["run", "--", "sh", "-c", "echo ready; exec sleep 30"],
    );
    let _out = interrupt_once_ready(&mut child);
    assert_eq!(exit_code(&mut child, 20), 130);
}

#[test]
fn ctrl_c_stops_following_logs_and_leaves_the_program_running() {
    let plx = node();
    let _down = Down(&plx);
    let id = plx
        .run(
            &[
                "run",
                "--detach",
                "--",
                "sh",
                "-c",
                "echo ready; exec sleep 30",
            ],
            b"",
        )
        .ok()
        .trim()
        .to_owned();
    let mut child = spawn(&plx, &["logs", "--follow", &id]);
    let _out = interrupt_once_ready(&mut child);
    exit_code(&mut child, 20);
    let ps = plx.run(&["ps"], b"").ok();
    let row = ps.lines().find(|l| l.starts_with(&id)).unwrap_or_default();
    assert!(row.contains("running"), "{ps}");
}

#[test]
fn detached_programs_are_listed_killed_by_their_owner_only_waited_for_and_removed() {
    let plx = node();
    let _down = Down(&plx);
    let id = plx
        .run(&["run", "--detach", "--", "sleep", "30"], b"")
        .ok()
        .trim()
        .to_owned();
    assert!(!id.is_empty());
    let ps = plx.run(&["ps"], b"").ok();
    assert!(ps.contains(&id), "{ps}");

    // Another user of the node may not touch it.
    let invite = plx.run(&["user", "invite"], b"").ok();
    let carol = Plx::new();
    carol.run(&["user", "new", "carol"], b"").ok();
    let socket = plx.home.path().join("node/node.sock");
    let socket = socket.to_str().unwrap();
    let env = [("PLX_SOCKET", socket)];
    carol
        .run_env(&["user", "join", invite.trim()], b"", &env)
        .ok();
    let err = carol.run_env(&["kill", &id], b"", &env).fails();
    assert!(err.contains("denied"), "{err}");
    let err = carol.run_env(&["logs", &id], b"", &env).fails();
    assert!(err.contains("denied"), "{err}");

    let killed = plx.run(&["kill", "--signal", "KILL", &id], b"").ok();
    assert!(killed.starts_with(&id), "{killed}");
    let waited = plx.run(&["wait", &id], b"");
    assert_eq!(waited.code, 128 + 9, "{}", waited.stderr);
    let err = carol.run_env(&["rm", &id], b"", &env).fails();
    assert!(err.contains("denied"), "{err}");
    plx.run(&["rm", &id], b"").ok();
    let ps = plx.run(&["ps"], b"").ok();
    assert!(!ps.contains(&id), "{ps}");
}

#[test]
fn logs_and_copy() {
    let plx = node();
    let _down = Down(&plx);
    let script = plx.home.path().join("hello.py");
    std::fs::write(&script, "import sys\nprint('hi from', sys.argv[1])\n").unwrap();
    let run = plx.run(
        &["run", "--copy", "--", script.to_str().unwrap(), "copy"],
        b"",
    );
    assert_eq!(run.out(), "hi from copy\n", "{}", run.stderr);
    let id = plx
        .run(
            &["run", "--detach", "--", "sh", "-c", "echo one; echo two"],
            b"",
        )
        .ok()
        .trim()
        .to_owned();
    plx.run(&["wait", &id], b"").ok();
    assert_eq!(plx.run(&["logs", &id], b"").ok(), "one\ntwo\n");
    assert_eq!(plx.run(&["logs", "--tail", "1", &id], b"").ok(), "two\n");
}

#[test]
fn bad_input_is_a_clear_error() {
    let plx = node();
    let _down = Down(&plx);
    let err = plx.run(&["run", "--", "no-such-program-4711"], b"").fails();
    assert!(err.contains("no-such-program-4711"), "{err}");
    let err = plx
        .run(&["run", "--on", "nowhere", "--", "true"], b"")
        .fails();
    assert!(err.contains("nowhere"), "{err}");
    let err = plx
        .run(&["run", "--env", "1X=2", "--", "true"], b"")
        .fails();
    assert!(err.contains("--env"), "{err}");
    let err = plx.run(&["kill", "zzzzzz"], b"").fails();
    assert!(err.contains("zzzzzz") || err.contains("not.found"), "{err}");
    // A NUL cannot come through the command line: a message sent directly carries it.
    let err = plx
        .run(&["send", "{run:[`a\\u{0}b`]}@sys.proc"], b"")
        .fails();
    assert!(err.to_lowercase().contains("nul"), "{err}");
}

/// `plx shell` on a terminal of its own (`script` makes one), its output collected as it
/// comes.
struct ShellOnTerminal {
    child: Child,
    input: std::process::ChildStdin,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    /// How much of the output earlier waits consumed.
    seen: usize,
}

impl ShellOnTerminal {
    fn start(plx: &Plx) -> ShellOnTerminal {
        // `exec`: a non-interactive `sh` (dash) between `script` and the shell would die of
        // the terminal's SIGINT itself, though the shell handles it.
        let shell = format!("exec '{}' shell", env!("CARGO_BIN_EXE_plx"));
        let mut child = Command::new("script")
            .args(["-qfec", &shell, "/dev/null"])
            .env("PLX_HOME", plx.home.path())
            .env("USER", "tester")
            .env("TERM", "dumb")
            .env("SHELL", "/bin/sh")
            .env_remove("PLX_PASSPHRASE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script (util-linux) makes the terminal");
        let input = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collected = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        ShellOnTerminal {
            child,
            input,
            output,
            seen: 0,
        }
    }

    /// Types `text` (`\r` is Enter, `\x04` Ctrl-D, `\x03` Ctrl-C).
    fn type_in(&mut self, text: &str) {
        std::io::Write::write_all(&mut self.input, text.as_bytes()).unwrap();
        std::io::Write::flush(&mut self.input).unwrap();
    }

    /// Waits until the output after what earlier waits saw contains `text`.
    #[track_caller]
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = self.output.lock().unwrap().clone();
            if let Some(at) = output[self.seen..].find(text) {
                self.seen += at + text.len();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the terminal after {:?}",
                &output[self.seen..]
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_shell_types_to_its_program_and_ctrl_c_interrupts_it() {
    let plx = node();
    let _down = Down(&plx);
    let mut shell = ShellOnTerminal::start(&plx);
    shell.wait_for("λ ");
    // Markers are computed by the program, so the terminal's echo of the command line does not
    // contain them.
    shell.type_in("run sh -c 'echo R$((40+2)); read x; echo G$x$x; cat; echo E$((1+1))'\r");
    shell.wait_for("R42");
    shell.type_in("ab\r");
    shell.wait_for("Gabab");
    shell.type_in("zz\r");
    shell.wait_for("zz");
    // Ctrl-D ends the program's input: cat ends, then the program.
    shell.type_in("\x04");
    shell.wait_for("E2");
    shell.wait_for("λ ");
    // The terminal is the shell's again: the reader did not take the next line.
    shell.type_in("run sh -c 'echo S$((3+4))'\r");
    shell.wait_for("S7");
    shell.wait_for("λ ");
    shell.type_in(
        "run sh -c 'trap \"echo T$((5+5)); exit 3\" INT; echo W$((8+1)); while :; do sleep 0.1; done'\r",
    );
    shell.wait_for("W9");
    shell.type_in("\x03");
    shell.wait_for("T10");
    shell.wait_for("exit code 3");
    shell.wait_for("λ ");
    shell.type_in(":quit\r");
    assert_eq!(exit_code(&mut shell.child, 20), 0);
}
