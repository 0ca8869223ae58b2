//! End to end: clusters of real `plx node` processes on loopback addresses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Plx;

/// A loopback address no other test uses: 127.x.y.z from the process id and a counter.
fn fresh_addr(node: u8) -> String {
    use std::sync::atomic::AtomicU32;
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!(
        "127.{}.{}.{}:{}",
        (pid % 200) + 20,
        (n % 250) + 1,
        node,
        7000 + (pid % 1000) as u16
    )
}

/// One node process of a test cluster, killed when dropped.
struct ClusterNode {
    name: String,
    child: Option<Child>,
    data: PathBuf,
    addr: String,
}

impl ClusterNode {
    fn socket(&self) -> PathBuf {
        self.data.join("node.sock")
    }

    fn spawn(plx: &Plx, name: &str, addr: &str, extra: &[&str], join: Option<&str>) -> ClusterNode {
        Self::spawn_with(plx, name, addr, extra, join, false)
    }

    /// [`ClusterNode::spawn`], with `--data` relative to the node's working directory (the
    /// home) when `relative`.
    fn spawn_with(
        plx: &Plx,
        name: &str,
        addr: &str,
        extra: &[&str],
        join: Option<&str>,
        relative: bool,
    ) -> ClusterNode {
        let dir = format!("data-{name}");
        let data = plx.home.path().join(&dir);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plx"));
        cmd.current_dir(plx.home.path())
            .args(["node", "--name", name, "--data"])
            .arg(if relative {
                PathBuf::from(dir)
            } else {
                data.clone()
            })
            .args(["--listen", addr, "--profile", "local"])
            .args(extra)
            .env("PLX_HOME", plx.home.path())
            .env("USER", "tester")
            .env("PLX_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(plx.home.path().join(format!("{name}.log"))).unwrap());
        if let Some(token) = join {
            cmd.env("PLX_JOIN", token);
        }
        let child = cmd.spawn().unwrap();
        let node = ClusterNode {
            name: name.to_owned(),
            child: Some(child),
            data,
            addr: addr.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(node.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {name} did not start: {}",
                std::fs::read_to_string(plx.home.path().join(format!("{name}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        node
    }

    /// Restarts a stopped node from its data directory (no cluster flags).
    fn restart(&mut self, plx: &Plx) {
        let log = plx.home.path().join(format!("{}-restart.log", self.name));
        let child = Command::new(env!("CARGO_BIN_EXE_plx"))
            .args(["node", "--data"])
            .arg(&self.data)
            .env("PLX_HOME", plx.home.path())
            .env("USER", "tester")
            .env("PLX_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {} did not restart",
                self.name
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn send_to(plx: &Plx, node: &ClusterNode, unit: &str) -> common::Run {
    plx.run(
        &["send", "--socket", node.socket().to_str().unwrap(), unit],
        b"",
    )
}

/// Sends until it succeeds (the cluster may still be settling), up to `secs`.
fn send_ok(plx: &Plx, node: &ClusterNode, unit: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let run = send_to(plx, node, unit);
        if run.code == 0 {
            return run.out();
        }
        assert!(
            Instant::now() < deadline,
            "{unit} on {} kept failing: {}",
            node.name,
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn invite(plx: &Plx, node: &ClusterNode) -> String {
    send_ok(plx, node, "invite@sys.node", 30).trim().to_owned()
}

/// Starts a 3-node cluster: n1 creates it, n2 and n3 join with invites.
fn three_nodes(plx: &Plx) -> Vec<ClusterNode> {
    let n1 = ClusterNode::spawn(plx, "n1", &fresh_addr(1), &["--init"], None);
    let t2 = invite(plx, &n1);
    let n2 = ClusterNode::spawn(plx, "n2", &fresh_addr(2), &[], Some(&t2));
    let t3 = invite(plx, &n1);
    let n3 = ClusterNode::spawn(plx, "n3", &fresh_addr(3), &[], Some(&t3));
    let nodes = vec![n1, n2, n3];
    wait_alive(plx, &nodes, 3, 60);
    nodes
}

/// Waits until every node in `nodes` sees `n` alive members and 3 voters (when n ≥ 3).
fn wait_alive(plx: &Plx, nodes: &[ClusterNode], n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    for node in nodes {
        loop {
            let out = send_to(plx, node, "nodes@sys.node").out();
            let alive = out.matches("health:alive").count();
            let voters = out.matches("role:voter").count();
            if alive >= n && (n < 3 || voters >= 3) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} sees {alive} alive, {voters} voters: {out}",
                node.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn three_nodes_are_one_system() {
    let plx = Plx::new();
    let nodes = three_nodes(&plx);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);

    // Pinned calls run where they are sent; the message is evaluated there.
    assert_eq!(send_ok(&plx, n1, "me@sys.node:n2", 10), "n2\n");
    assert_eq!(
        send_ok(&plx, n1, "[me@sys.node:n3 me@sys.node]", 10),
        "[n3 n1]\n"
    );
    assert_eq!(send_ok(&plx, n3, "(inc 41)@math.calc:n1", 10), "42\n");
    assert_eq!(
        send_ok(&plx, n2, "[me@sys.node]@test.echo:n3", 10),
        "[n3]\n"
    );

    // Unknown nodes and services are clear errors.
    let err = send_to(&plx, n1, "x@math.calc:nowhere").fails();
    assert!(err.contains("node.unknown") && err.contains("n2"), "{err}");
    let err = send_to(&plx, n1, "x@no.such.service").fails();
    assert!(err.contains("serv.unknown"), "{err}");

    // io.store is cluster-wide.
    send_ok(&plx, n1, "{save:{lang:rust} out:@shared.txt}@io.store", 10);
    assert_eq!(
        send_ok(&plx, n3, "(load @shared.txt)@io.store", 10),
        "{lang:rust}\n"
    );
    send_ok(&plx, n2, "{save:[1 2] out:@shared.list}@io.store", 10);
    assert_eq!(
        send_ok(&plx, n1, "(load @shared.list)@io.store", 10),
        "[1 2]\n"
    );

    // A session-scoped service on another node prompts on the user's terminal.
    let run = plx.run(
        &[
            "send",
            "--socket",
            n1.socket().to_str().unwrap(),
            "{neg:(prs.str (inp `num:`)@io.term)@dat.proc}@math.calc:n2",
        ],
        b"5\n",
    );
    let out = run.ok();
    assert!(out.contains("num:") && out.ends_with("-5\n"), "{out:?}");

    // nodes and services, as tables.
    let table = plx
        .run(&["nodes", "--socket", n2.socket().to_str().unwrap()], b"")
        .ok();
    for name in ["n1", "n2", "n3"] {
        assert!(table.contains(name), "{table}");
    }
    assert!(table.contains("voter") && table.contains('*'), "{table}");
    let services = plx
        .run(
            &["services", "--socket", n3.socket().to_str().unwrap()],
            b"",
        )
        .ok();
    let calc = services
        .lines()
        .find(|l| l.starts_with("math.calc "))
        .unwrap_or_default();
    assert!(calc.ends_with(" n1 n2 n3"), "{services}");
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    let plx = Plx::new();
    let mut nodes = three_nodes(&plx);
    let leader_name = send_ok(&plx, &nodes[0], "leader@sys.node", 10)
        .trim()
        .to_owned();
    let leader = nodes.iter().position(|n| n.name == leader_name).unwrap();
    // A client on a node that survives writes in a loop.
    let client = (leader + 1) % 3;
    let acked = Arc::new(Mutex::new(Vec::<u32>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let socket = nodes[client].socket();
    let writer = {
        let acked = acked.clone();
        let stop = stop.clone();
        let home = plx.home.path().to_owned();
        std::thread::spawn(move || {
            let mut i = 0u32;
            let mut failures = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new(env!("CARGO_BIN_EXE_plx"))
                    .args(["send", "--socket", socket.to_str().unwrap()])
                    .arg(format!("{{save:{i} out:@w.k{i}}}@io.store"))
                    .env("PLX_HOME", &home)
                    .env("USER", "tester")
                    .output()
                    .unwrap();
                if out.status.success() {
                    acked.lock().unwrap().push(i);
                } else {
                    failures += 1;
                }
                i += 1;
            }
            failures
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "no writes acknowledged");
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes[leader].kill9();
    let before = acked.lock().unwrap().len();
    // Writes resume: at least 20 more are acknowledged after the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < before + 20 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the leader died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    for node in nodes.iter().filter(|n| n.child.is_some()) {
        let all = send_ok(&plx, node, "(load @w)@io.store", 30);
        for i in &acked {
            assert!(
                all.contains(&format!("k{i}:{i}")),
                "write {i} acknowledged but missing on {}: {all}",
                node.name
            );
        }
    }
    // The killed node comes back from its data directory and catches up.
    nodes[leader].restart(&plx);
    let last = acked.last().unwrap();
    let got = send_ok(
        &plx,
        &nodes[leader],
        &format!("(load @w.k{last})@io.store"),
        60,
    );
    assert_eq!(got, format!("{last}\n"));
}

#[test]
fn bad_tokens_and_removed_nodes_are_refused() {
    let plx = Plx::new();
    let nodes = three_nodes(&plx);
    // A damaged or reused token is a clear error, and the node does not start.
    let run = plx.run_env(
        &[
            "node",
            "--data",
            plx.home.path().join("x").to_str().unwrap(),
            "--listen",
            &fresh_addr(9),
        ],
        b"",
        &[("PLX_JOIN", "plx-join-AAAA")],
    );
    let err = run.fails();
    assert!(err.contains("join token"), "{err}");

    // n3 is removed: it leaves the roster; n1 and n2 carry on.
    let out = send_to(&plx, &nodes[0], "(remove n3)@sys.node");
    out.ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = send_ok(&plx, &nodes[1], "nodes@sys.node", 10);
        if !table.contains("name:n3") {
            break;
        }
        assert!(Instant::now() < deadline, "n3 still listed: {table}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(send_ok(&plx, &nodes[0], "me@sys.node:n2", 10), "n2\n");
    let err = send_to(&plx, &nodes[0], "me@sys.node:n3").fails();
    assert!(err.contains("node.unknown"), "{err}");
    let _ = nodes[2].addr.len();
}

#[test]
fn a_call_to_a_node_that_dies_fails_promptly_naming_it() {
    let plx = Plx::new();
    let mut nodes = three_nodes(&plx);
    let socket = nodes[0].socket();
    let home = plx.home.path().to_owned();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_plx"))
            .args(["send", "--socket", socket.to_str().unwrap()])
            .arg("(wait 120)@time.chrono:n3")
            .env("PLX_HOME", &home)
            .env("USER", "tester")
            .output()
            .unwrap()
    });
    // Let the call reach n3, then kill n3.
    std::thread::sleep(Duration::from_millis(700));
    nodes[2].kill9();
    let out = call.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("node.down") && err.contains("n3"), "{err}");
    // Far sooner than the 120 s the call would have taken.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // The survivors carry on.
    assert_eq!(send_ok(&plx, &nodes[0], "me@sys.node:n2", 10), "n2\n");
}

/// `name`'s health as `from` sees it (`nodes@sys.node`), or "" when it is not listed.
fn health_of(plx: &Plx, from: &ClusterNode, name: &str) -> String {
    let out = send_to(plx, from, "nodes@sys.node").out();
    out.split("{name:")
        .find(|entry| entry.starts_with(&format!("{name} ")))
        .and_then(|entry| entry.split("health:").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned()
}

/// Polls until `from` sees `name` with `health`, up to `secs`.
fn wait_health(plx: &Plx, from: &ClusterNode, name: &str, health: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = health_of(plx, from, name);
        if now == health {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} sees {name} {now:?}, not {health}",
            from.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node that comes back can be called as soon as the others see it alive: n1, which failed
/// to reach n3 while it was down and backs off between dials, does not fail calls to n3 while
/// it waits out that backoff.
#[test]
fn a_restarted_node_is_callable_as_soon_as_it_is_seen_alive() {
    let plx = Plx::new();
    let mut nodes = three_nodes(&plx);
    assert_eq!(send_ok(&plx, &nodes[0], "(inc 1)@math.calc:n3", 30), "2\n");
    nodes[2].kill9();
    wait_health(&plx, &nodes[0], "n3", "down", 30);
    // Long enough for n1's dials to n3 (raft, membership) to fail a few times in a row.
    std::thread::sleep(Duration::from_secs(2));
    nodes[2].restart(&plx);
    wait_health(&plx, &nodes[0], "n3", "alive", 30);
    let run = send_to(&plx, &nodes[0], "(inc 1)@math.calc:n3");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.out(), "2\n");
}

/// A used invite is refused with an error that says so (not one about this node's key).
#[test]
fn joining_with_a_used_invite_says_the_invite_is_used() {
    let plx = Plx::new();
    let n1 = ClusterNode::spawn(&plx, "n1", &fresh_addr(1), &["--init"], None);
    let token = invite(&plx, &n1);
    let _n2 = ClusterNode::spawn(&plx, "n2", &fresh_addr(2), &[], Some(&token));
    let run = plx.run_env(
        &[
            "node",
            "--name",
            "n3",
            "--data",
            plx.home.path().join("data-n3").to_str().unwrap(),
            "--listen",
            &fresh_addr(3),
        ],
        b"",
        &[("PLX_JOIN", &token)],
    );
    let err = run.fails();
    assert!(
        err.contains("invite") && err.contains("used") && !err.contains("node key"),
        "{err}"
    );
}

/// Raises this process's open-file limit to its hard limit (the nodes it starts inherit it).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

/// Connections that never start a TLS handshake do not keep members out: with 2,000 of
/// them held open to n1's cluster port, from 20 source addresses, a restarted n2 links to n1
/// (a call from n2 to n1 goes through) within 2 s.
#[test]
fn idle_connections_do_not_keep_a_restarted_member_out() {
    raise_fd_limit();
    let plx = Plx::new();
    let mut nodes = two_nodes(&plx);
    assert_eq!(send_ok(&plx, &nodes[1], "me@sys.node:n1", 30), "n1\n");
    nodes[1].kill9();

    let target: std::net::SocketAddr = nodes[0].addr.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = fresh_addr(100);
    let base = base.split(':').next().unwrap().rsplit_once('.').unwrap().0;
    let t0 = Instant::now();
    let idle = rt.block_on(async {
        let mut idle = Vec::new();
        'sources: for source in 0..20u8 {
            let from: std::net::SocketAddr = format!("{base}.{}:0", 100 + source).parse().unwrap();
            for _ in 0..100 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(from).unwrap();
                let connect = socket.connect(target);
                match tokio::time::timeout(Duration::from_secs(3), connect).await {
                    Ok(Ok(stream)) => idle.push(stream),
                    // The node stopped taking connections: the rest would wait as long.
                    _ => break 'sources,
                }
            }
        }
        idle
    });
    eprintln!("{} idle connections open, {:?}", idle.len(), t0.elapsed());

    nodes[1].restart(&plx);
    let started = Instant::now();
    let linked = send_ok(&plx, &nodes[1], "me@sys.node:n1", 60);
    let took = started.elapsed();
    assert_eq!(linked, "n1\n");
    assert!(
        took < Duration::from_secs(2),
        "n2 took {took:?} to reach n1 with {} idle connections open",
        idle.len()
    );
    assert_eq!(idle.len(), 2000, "the node stopped taking connections");
}

/// Sends `unit` signed as `user` to `node`.
fn send_as(plx: &Plx, node: &ClusterNode, user: &str, unit: &str) -> common::Run {
    plx.run(
        &[
            "send",
            "--user",
            user,
            "--socket",
            node.socket().to_str().unwrap(),
            unit,
        ],
        b"",
    )
}

/// Polls `check` on what `unit` (signed as `user`) gives on `node` until it holds, up to
/// `secs`; gives the last run's standard output and error.
fn wait_for(
    plx: &Plx,
    node: &ClusterNode,
    user: &str,
    unit: &str,
    secs: u64,
    check: impl Fn(&common::Run) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let run = send_as(plx, node, user, unit);
        if check(&run) {
            return run.out();
        }
        assert!(
            Instant::now() < deadline,
            "{unit} as {user} on {}: {} {}",
            node.name,
            run.out(),
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A new user key in the test's home (not made current): gives its public key as units text.
fn new_user(plx: &Plx, node: &ClusterNode, name: &str) -> String {
    plx.run(&["user", "new", name], b"").ok();
    plx.run(&["user", "use", "tester"], b"").ok();
    let who = send_as(plx, node, name, "who@sys.usr").ok();
    who.split("pub:")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("}\n"))
        .unwrap()
        .to_owned()
}

/// A cluster of two nodes, n1 (which created it) and n2 (invited), both seen alive.
fn two_nodes(plx: &Plx) -> Vec<ClusterNode> {
    let n1 = ClusterNode::spawn(plx, "n1", &fresh_addr(1), &["--init"], None);
    let token = invite(plx, &n1);
    let n2 = ClusterNode::spawn(plx, "n2", &fresh_addr(2), &[], Some(&token));
    let nodes = vec![n1, n2];
    wait_alive(plx, &nodes, 2, 60);
    nodes
}

/// The user registry is part of the cluster state: a user registered, renamed or removed on
/// one node is so on every node, including one that joins later and one that was down.
#[test]
fn users_are_registered_cluster_wide() {
    let plx = Plx::new();
    let mut nodes = two_nodes(&plx);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let bob = new_user(&plx, n1, "bob");
    send_ok(&plx, n1, &format!("{{reg:bob pub:{bob}}}@sys.usr"), 10);

    // bob may use io.store through n2 as well as n1.
    let saved = |r: &common::Run| r.code == 0;
    wait_for(&plx, n2, "bob", "{save:1 out:@bob.n2}@io.store", 10, saved);
    wait_for(&plx, n1, "bob", "{save:2 out:@bob.n1}@io.store", 10, saved);
    let listed = |node: &ClusterNode| {
        wait_for(&plx, node, "tester", "get@sys.usr", 10, |r| {
            r.out().contains("ath:bob")
        })
    };
    let on_n1 = listed(n1);
    assert_eq!(listed(n2), on_n1);

    // A node that joins later knows bob at once.
    let t3 = invite(&plx, n1);
    nodes.push(ClusterNode::spawn(
        &plx,
        "n3",
        &fresh_addr(3),
        &[],
        Some(&t3),
    ));
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    wait_for(&plx, n3, "bob", "{save:3 out:@bob.n3}@io.store", 10, saved);
    assert_eq!(listed(n3), on_n1);

    // A user invite from n1's admin is used once, on n3; dave is then known on n2.
    let token = send_ok(&plx, n1, "invite@sys.usr", 10).trim().to_owned();
    new_user(&plx, n1, "dave");
    let reg = format!("{{reg:dave inv:{token}}}@sys.usr");
    send_as(&plx, n3, "dave", &reg).ok();
    wait_for(&plx, n2, "dave", "{save:5 out:@dave}@io.store", 10, saved);
    new_user(&plx, n1, "erin");
    let reused = send_as(
        &plx,
        n2,
        "erin",
        &format!("{{reg:erin inv:{token}}}@sys.usr"),
    );
    assert!(
        reused.fails().contains("usr.invite.bad"),
        "{}",
        reused.stderr
    );

    // A rename made on n3 shows on n1; a removal made on n2 reaches n1 and n3.
    send_ok(&plx, n3, "{ren:bob to:robert}@sys.usr", 10);
    wait_for(&plx, n1, "bob", "who@sys.usr", 10, |r| {
        r.out().starts_with("{ath:robert ")
    });
    send_ok(&plx, n2, "(del robert)@sys.usr", 10);
    let denied = |r: &common::Run| r.code != 0 && r.stderr.contains("may be used by");
    for node in [n1, n3] {
        wait_for(&plx, node, "bob", "(load @bob.n1)@io.store", 10, denied);
        let users = send_as(&plx, node, "tester", "get@sys.usr").ok();
        assert!(
            !users.contains("robert") && !users.contains(&bob),
            "{users}"
        );
    }

    // A registration made while n2 is down reaches it when it comes back.
    nodes[1].kill9();
    let carol = new_user(&plx, &nodes[0], "carol");
    send_ok(
        &plx,
        &nodes[0],
        &format!("{{reg:carol pub:{carol}}}@sys.usr"),
        10,
    );
    nodes[1].restart(&plx);
    let n2 = &nodes[1];
    wait_for(&plx, n2, "carol", "{save:4 out:@carol}@io.store", 30, saved);
    wait_for(&plx, n2, "bob", "(load @carol)@io.store", 10, denied);
}

/// `plx nodes` shows the disk of a node started with a relative `--data` (it showed 0M/0M).
#[test]
fn nodes_show_the_disk_of_a_relative_data_dir() {
    let plx = Plx::new();
    let node = ClusterNode::spawn_with(&plx, "rel", &fresh_addr(1), &["--init"], None, true);
    let table = plx
        .run(&["nodes", "--socket", node.socket().to_str().unwrap()], b"")
        .ok();
    let row = table
        .lines()
        .find(|l| l.contains(" rel "))
        .unwrap_or_default();
    assert!(!row.is_empty() && !row.contains(" 0M/0M "), "{table}");
}

/// The same signed save sent to every node of a cluster takes effect once: the replicated
/// state machine remembers which evaluation of the message saved.
#[test]
fn a_signed_save_sent_to_every_node_takes_effect_once() {
    let plx = Plx::new();
    let nodes = three_nodes(&plx);
    send_ok(&plx, &nodes[0], "{save:[x] out:@l}@io.store", 30);
    let captured = common::sign_as_tester(&plx, "{save:[y] out:@l}@io.store");
    let replies: Vec<String> = nodes
        .iter()
        .map(|n| common::send_signed(&n.socket(), &captured))
        .collect();
    assert_eq!(replies[0], "nothing", "{replies:?}");
    for r in &replies[1..] {
        assert!(r.starts_with("error {err:msg.replay"), "{replies:?}");
    }
    for n in &nodes {
        assert_eq!(send_ok(&plx, n, "(load @l)@io.store", 30), "[x y]\n");
    }
}

/// A user change takes effect once: the admin's captured registration of bob, sent to
/// another node after bob was removed, is refused as a replay and bob stays removed.
#[test]
fn a_replayed_registration_does_not_bring_a_removed_user_back() {
    let plx = Plx::new();
    let nodes = three_nodes(&plx);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let (_, registration) = common::new_user_registration("bob");
    let captured = common::sign_as_tester(&plx, &registration);
    let registered = common::send_signed(&n1.socket(), &captured);
    assert!(registered.starts_with("{ath:bob "), "{registered}");
    // n2 sees bob come and go, so its own registry check does not answer for the state
    // machine.
    let lists_bob = |r: &common::Run| r.out().contains("ath:bob");
    wait_for(&plx, n2, "tester", "get@sys.usr", 30, lists_bob);
    send_ok(&plx, n1, "(del bob)@sys.usr", 30);
    wait_for(&plx, n2, "tester", "get@sys.usr", 30, |r| {
        r.code == 0 && !lists_bob(r)
    });
    let replayed = common::send_signed(&n2.socket(), &captured);
    assert!(replayed.starts_with("error {err:msg.replay"), "{replayed}");
    for n in &nodes {
        let users = send_ok(&plx, n, "get@sys.usr", 30);
        assert!(!users.contains("ath:bob"), "{}: {users}", n.name);
    }
}

/// A new user key, registered by the admin (`tester`) on `node`.
fn register(plx: &Plx, node: &ClusterNode, name: &str) -> plexus_identity::Keypair {
    let (key, registration) = common::new_user_registration(name);
    send_ok(plx, node, &registration, 30);
    key
}

/// io.store's ownership across a cluster: an entry belongs to the user who made it; only they
/// or an admin may change it; a private entry is hidden from other users but not from admins.
/// Users are registered through one node and act through the others.
#[test]
fn store_entries_belong_to_their_authors_across_nodes() {
    let plx = Plx::new();
    let nodes = three_nodes(&plx);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    send_ok(&plx, n2, "{save:{a:1} out:@t}@io.store", 30);
    let bob = register(&plx, n3, "bob");
    let carol = register(&plx, n2, "carol");
    let as_user = |key: &plexus_identity::Keypair, node: &ClusterNode, text: &str| {
        common::send_signed(&node.socket(), &common::sign_as(key, text))
    };
    // Each node's registry follows the replicated one a moment after the registration.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        for key in [&bob, &carol] {
            while as_user(key, node, "load@io.store").starts_with("error") {
                assert!(
                    Instant::now() < deadline,
                    "a user is unknown on {}",
                    node.name
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    // Bob cannot change the admin's entry.
    let denied = as_user(&bob, n2, "{save:{b:2} out:@t.x}@io.store");
    assert!(denied.starts_with("error {err:denied"), "{denied}");
    assert_eq!(send_ok(&plx, n3, "(load @t)@io.store", 30), "{a:1}\n");

    // Bob's own entries, made through different nodes: public, and private ones.
    assert_eq!(
        as_user(&bob, n3, "{save:[b] out:@bobs}@io.store"),
        "nothing"
    );
    assert_eq!(
        as_user(&bob, n2, "{save:[s] out:@secret private:t}@io.store"),
        "nothing"
    );
    assert_eq!(
        as_user(&bob, n1, "{save:[s2] out:@secret}@io.store"),
        "nothing"
    );
    assert_eq!(as_user(&bob, n3, "(load @secret)@io.store"), "[s s2]");

    // Carol, through any node, reads the public one, not the private one, and changes
    // neither.
    assert_eq!(as_user(&carol, n3, "(load @bobs)@io.store"), "[b]");
    let hidden = as_user(&carol, n3, "(load @secret)@io.store");
    assert!(hidden.starts_with("error {err:not.found"), "{hidden}");
    let all = as_user(&carol, n2, "load@io.store");
    assert!(all.contains("bobs:") && !all.contains("secret"), "{all}");
    for (node, text) in [
        (n3, "{save:[c] out:@bobs}@io.store"),
        (n2, "{save:[c] out:@secret}@io.store"),
        (n1, "{save:[c] out:@bobs}@io.store"),
    ] {
        let denied = as_user(&carol, node, text);
        assert!(
            denied.starts_with("error {err:denied"),
            "{text} on {}: {denied}",
            node.name
        );
    }

    // The admin reads and changes everything, from any node.
    assert_eq!(send_ok(&plx, n2, "(load @secret)@io.store", 30), "[s s2]\n");
    send_ok(&plx, n3, "{save:[a] out:@bobs}@io.store", 30);
    assert_eq!(as_user(&bob, n2, "(load @bobs)@io.store"), "[b a]");
}

/// Whatever a service may return reaches the client, from this node or routed from another:
/// numbers up to math.calc's limit (`(pow (10 5000))`, `(fac 200000)`), and a result too big
/// for any reply is the same clean `limit` error either way.
#[test]
fn every_result_a_service_may_return_is_delivered_here_and_routed() {
    let plx = Plx::new();
    let nodes = two_nodes(&plx);
    let ten_to_5000 = format!("1{}\n", "0".repeat(5000));
    for at in ["", ":n2"] {
        let out = send_ok(
            &plx,
            &nodes[0],
            &format!("(pow (10 5000))@math.calc{at}"),
            30,
        );
        assert!(out == ten_to_5000, "pow{at}: {} chars", out.len());
    }
    // 200000! has 973,351 digits (the largest fac math.calc computes).
    let fac = send_ok(&plx, &nodes[0], "(fac 200000)@math.calc:n2", 120);
    assert_eq!(fac.trim_end().len(), 973_351);
    assert!(fac.starts_with("1420225345470314404966"), "{}", &fac[..30]);
    // 70,000 copies of a 1,000-character string: about 70 MB as a reply, more than one may
    // carry (64 MiB), though it is within the message's memory budget (the copies share
    // their text).
    let too_big = format!("(dup (70000 `{}`))@dat.proc", "x".repeat(1000));
    for at in ["", ":n2"] {
        let err = send_to(&plx, &nodes[0], &format!("{too_big}{at}")).fails();
        assert!(
            err.contains("err:limit") && err.contains("more than a reply may carry"),
            "dup{at}: {err}"
        );
    }
}

/// The field `key:` of the first map in `text` that holds `id:ID` (backticks dropped).
fn field_of(text: &str, id: &str, key: &str) -> Option<String> {
    let plain = text.replace('`', "");
    let start = plain.find(&format!("id:{id} "))?;
    let entry = &plain[start..plain[start..].find('}').map_or(plain.len(), |e| start + e)];
    let at = entry.find(&format!(" {key}:"))? + key.len() + 2;
    Some(
        entry[at..]
            .split([' ', '}'])
            .next()
            .unwrap_or("")
            .to_owned(),
    )
}

#[test]
fn a_restart_always_process_runs_elsewhere_after_its_node_is_killed() {
    // A word no other test's programs carry, as sleep's (long) duration.
    let word = format!("{}.3", 3_000_000 + std::process::id());
    let moved = runs_elsewhere_after_its_node_is_killed(
        &format!("{{run:[sleep `{word}`] restart:always}}@sys.proc"),
        &word,
        0,
    );
    assert!(moved.contains("command:[sleep"), "{moved}");
}

#[test]
fn a_copied_program_moves_with_its_process() {
    let word = format!("{}.5", 3_000_000 + std::process::id());
    // The script exists on no node: `copy` ships it from n3 to the node it runs on (n1, the
    // first of three idle nodes), n3 keeps it too, and the node the process moves to (n2)
    // fetches it from n3.
    let script = format!("exec sleep {word}\n");
    let hex: String = script.bytes().map(|b| format!("{b:02x}")).collect();
    let moved = runs_elsewhere_after_its_node_is_killed(
        &format!("{{run:[job.sh] copy:x\"{hex}\" restart:always}}@sys.proc"),
        &word,
        2,
    );
    // `ps` names the program as it was sent, not by its place in a cache.
    assert!(moved.contains("command:[job.sh]"), "{moved}");
    assert!(moved.contains("note:moved from"), "{moved}");
}

/// Starts `run` (a `restart:always` process whose command line carries `word`) on a 3-node
/// cluster, sent to node number `from`, kills its node with -9, and waits until it runs on
/// another node, once. Gives the process's entry of `ps` then.
fn runs_elsewhere_after_its_node_is_killed(run: &str, word: &str, from: usize) -> String {
    let plx = Plx::new();
    let mut nodes = three_nodes(&plx);
    let reply = send_ok(&plx, &nodes[from], run, 30);
    let reply = reply.replace('`', "");
    let id = reply
        .split("id:")
        .nth(1)
        .and_then(|r| r.split([' ', '}']).next())
        .expect(&reply)
        .to_owned();
    let placed = field_of(&reply, &id, "node").expect(&reply);
    let dead = nodes.iter().position(|n| n.name == placed).unwrap();
    let survivor = (dead + 1) % 3;
    println!("sent to n{}, placed on {placed}", from + 1);
    nodes[dead].kill9();
    let killed = Instant::now();

    let deadline = killed + Duration::from_secs(60);
    let (moved, entry) = loop {
        let ps = send_to(&plx, &nodes[survivor], "{ps:t text:f}@sys.proc").out();
        let node = field_of(&ps, &id, "node");
        if node.as_deref().is_some_and(|n| n != placed)
            && field_of(&ps, &id, "state").as_deref() == Some("running")
        {
            assert_eq!(field_of(&ps, &id, "restarts").as_deref(), Some("1"), "{ps}");
            let plain = ps.replace('`', "");
            let start = plain.find(&format!("id:{id} ")).unwrap_or(0);
            let end = plain[start..]
                .find("} {")
                .map_or(plain.len(), |e| start + e);
            break (node.unwrap_or_default(), plain[start..end].to_owned());
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not move off {placed}: {ps}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "{id} ran on {placed}, killed; running on {moved} {:?} later",
        killed.elapsed()
    );
    // One copy runs: the new one (the killed node's died with it).
    let copies = || {
        std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        std::fs::read(e.path().join("cmdline"))
                            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(word))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while copies() != 1 {
        assert!(
            Instant::now() < deadline,
            "{} copies of the program run",
            copies()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = send_to(
        &plx,
        &nodes[survivor],
        &format!("{{kill:`{id}` signal:KILL}}@sys.proc"),
    );
    entry
}

#[test]
fn an_everywhere_program_runs_on_a_node_that_joins_afterwards() {
    let plx = Plx::new();
    let mut nodes = two_nodes(&plx);
    let word = format!("{}.4", 3_000_000 + std::process::id());
    let reply = send_ok(
        &plx,
        &nodes[0],
        &format!("{{run:[sleep `{word}`] everywhere:t}}@sys.proc"),
        30,
    );
    assert!(reply.contains("group:"), "{reply}");

    let t3 = invite(&plx, &nodes[0]);
    nodes.push(ClusterNode::spawn(
        &plx,
        "n3",
        &fresh_addr(3),
        &[],
        Some(&t3),
    ));
    wait_alive(&plx, &nodes, 3, 60);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ps = send_to(&plx, &nodes[2], "{ps:t text:f}@sys.proc").out();
        let on_n3 = ps
            .split('}')
            .any(|e| e.contains(&word) && e.contains("node:n3") && e.contains("state:running"));
        if on_n3 {
            break;
        }
        assert!(Instant::now() < deadline, "no copy runs on n3: {ps}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ps = send_to(&plx, &nodes[0], "{ps:t text:f}@sys.proc").out();
    assert_eq!(
        ps.matches("state:running").count(),
        3,
        "one copy a node: {ps}"
    );
    // `plx ps` lists the group's copies together, by node, named after the group.
    let group = reply
        .replace('`', "")
        .split("group:")
        .nth(1)
        .and_then(|g| g.split([' ', '}']).next())
        .unwrap_or_default()
        .to_owned();
    // The table as a string unit: its lines end in `\n` escapes.
    let table = send_to(&plx, &nodes[0], "{ps:t text:t}@sys.proc")
        .out()
        .replace("\\n", "\n");
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(&format!("group:{group}")))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    let nodes_listed: Vec<&str> = rows
        .iter()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(nodes_listed, ["n1", "n2", "n3"], "{table}");
    for id in ps.replace('`', "").split("id:").skip(1) {
        let id = id.split(' ').next().unwrap_or("");
        let _ = send_to(
            &plx,
            &nodes[0],
            &format!("{{kill:`{id}` signal:KILL}}@sys.proc"),
        );
    }
}

/// The bytes of a file through `{read:…}@io.fs` on `node`.
fn read_file(plx: &Plx, node: &ClusterNode, path: &str) -> Vec<u8> {
    let out = send_ok(plx, node, &format!("{{read:`{path}`}}@io.fs"), 30);
    let hex = out
        .trim()
        .strip_prefix("x\"")
        .and_then(|h| h.strip_suffix('"'))
        .expect("a bytes unit");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_file_outlives_its_writers_node_and_a_corrupt_copy() {
    let plx = Plx::new();
    let mut nodes = three_nodes(&plx);
    // Over 4 MiB: several chunks, each kept on all three nodes.
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    send_ok(&plx, &nodes[0], "{mkdir:`/data`}@io.fs", 30);
    // `plx fs put` sends it chunk by chunk.
    let local = plx.home.path().join("set.bin");
    std::fs::write(&local, &data).unwrap();
    let socket = |i: usize| nodes[i].socket().to_str().unwrap().to_owned();
    let (s1, s2) = (socket(0), socket(1));
    let local_arg = local.to_str().unwrap();
    plx.run(
        &["fs", "put", local_arg, "/data/set.bin", "--socket", &s1],
        b"",
    )
    .ok();
    let listed = plx
        .run(&["fs", "ls", "-l", "/data", "--socket", &s1], b"")
        .ok();
    assert!(
        listed.contains("4.8M") && listed.contains("set.bin   (3 copies: n1 n2 n3)"),
        "{listed}"
    );

    nodes[0].kill9();
    let back = plx.home.path().join("back.bin");
    let back_arg = back.to_str().unwrap();
    plx.run(
        &["fs", "get", "/data/set.bin", back_arg, "--socket", &s2],
        b"",
    )
    .ok();
    assert!(
        std::fs::read(&back).unwrap() == data,
        "got from n2 after n1's death"
    );

    // Damage every chunk on n2: its reads fetch good copies from n3 and put them back.
    let chunks = nodes[1].data.join("chunks");
    let mut damaged = 0;
    for dir in std::fs::read_dir(&chunks).unwrap().flatten() {
        if dir.file_name().len() != 2 {
            continue;
        }
        for chunk in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let mut bytes = std::fs::read(chunk.path()).unwrap();
            bytes[0] ^= 0xff;
            std::fs::write(chunk.path(), bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged >= 2, "{damaged} chunks");
    assert!(
        read_file(&plx, &nodes[1], "/data/set.bin") == data,
        "read from n2 with bad chunks"
    );
    let aside = std::fs::read_dir(chunks.join("corrupt")).unwrap().count();
    assert_eq!(aside, damaged, "every bad chunk was moved aside");
    assert!(
        read_file(&plx, &nodes[2], "/data/set.bin") == data,
        "read from n3"
    );
}

/// The chunk files in `node`'s store, by name.
fn chunk_files(node: &ClusterNode) -> std::collections::BTreeSet<String> {
    common::chunk_files(&node.data)
}

/// How a test takes a node out.
#[derive(Clone, Copy, PartialEq)]
enum TakeOut {
    /// `kill -9`, then `plx node remove`.
    Remove,
    /// `kill -9`, and wait past the grace period (2 s here).
    DownPastGrace,
}

#[test]
fn after_a_node_is_removed_repair_brings_every_chunk_back_to_three_copies() {
    repair_brings_every_chunk_back(TakeOut::Remove);
}

#[test]
fn after_a_node_is_down_past_the_grace_period_repair_copies_its_chunks() {
    repair_brings_every_chunk_back(TakeOut::DownPastGrace);
}

/// Four nodes, a file of several chunks put on n1 (each chunk on three nodes); one node (not
/// n1) with copies is taken out; repair puts every chunk back on three of the rest.
fn repair_brings_every_chunk_back(take_out: TakeOut) {
    let plx = Plx::new();
    let grace = ["--fs-grace", "2"];
    let n1 = ClusterNode::spawn(
        &plx,
        "n1",
        &fresh_addr(1),
        &[&["--init"][..], &grace[..]].concat(),
        None,
    );
    let mut nodes = vec![n1];
    for i in 2..=4u8 {
        let token = invite(&plx, &nodes[0]);
        let name = format!("n{i}");
        let node = ClusterNode::spawn(&plx, &name, &fresh_addr(i), &grace, Some(&token));
        nodes.push(node);
    }
    wait_alive(&plx, &nodes, 4, 60);
    let data = common::noise(9_000_000, 1);
    let local = plx.home.path().join("four.bin");
    std::fs::write(&local, &data).unwrap();
    let s1 = nodes[0].socket().to_str().unwrap().to_owned();
    send_ok(&plx, &nodes[0], "{mkdir:`/data`}@io.fs", 30);
    plx.run(
        &[
            "fs",
            "put",
            local.to_str().unwrap(),
            "/data/four.bin",
            "--socket",
            &s1,
        ],
        b"",
    )
    .ok();
    // Each chunk is on three of the four nodes; take out the node (not n1) with the most.
    let held: Vec<_> = nodes.iter().map(chunk_files).collect();
    let all: std::collections::BTreeSet<String> = held.iter().flatten().cloned().collect();
    assert!(all.len() >= 3, "{} chunks", all.len());
    for chunk in &all {
        assert_eq!(
            held.iter().filter(|h| h.contains(chunk)).count(),
            3,
            "{chunk}"
        );
    }
    let gone = (1..4).max_by_key(|&i| held[i].len()).unwrap();
    let gone_name = nodes[gone].name.clone();
    nodes[gone].kill9();
    if take_out == TakeOut::Remove {
        send_to(&plx, &nodes[0], &format!("(remove {gone_name})@sys.node")).ok();
    }
    let rest: Vec<&ClusterNode> = nodes.iter().filter(|n| n.name != gone_name).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copies_of = |c: &String| rest.iter().filter(|n| chunk_files(n).contains(c)).count();
        if all.iter().all(|c| copies_of(c) == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not repaired: {:?}",
            all.iter().map(copies_of).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The metadata agrees: nothing short, and the file lists three copies on the rest.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = plx.run(&["fs", "status", "--socket", &s1], b"").ok();
        // Removed, the node is gone from the table; down, it keeps its row with no copies.
        let row: Vec<String> = status
            .lines()
            .find(|l| l.starts_with(&format!("{gone_name} ")))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let unlisted = match take_out {
            TakeOut::Remove => row.is_empty(),
            TakeOut::DownPastGrace => row.get(1..3) == Some(&["down".into(), "0".into()]),
        };
        if status.contains(" 0 short") && unlisted {
            assert!(status.contains("0 lost"), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = plx
        .run(&["fs", "ls", "-l", "/data", "--socket", &s1], b"")
        .ok();
    assert!(
        listed.contains("(3 copies: ") && !listed.contains(&gone_name),
        "{listed}"
    );
    let back = plx.home.path().join("back.bin");
    plx.run(
        &[
            "fs",
            "get",
            "/data/four.bin",
            back.to_str().unwrap(),
            "--socket",
            &s1,
        ],
        b"",
    )
    .ok();
    assert!(std::fs::read(&back).unwrap() == data);
}

#[test]
fn a_put_killed_midway_leaves_the_old_file_and_its_chunks_are_collected() {
    let plx = Plx::new();
    let quick_sweep = ["--fs-sweep-every", "1", "--fs-unlisted-age", "2"];
    let n1 = ClusterNode::spawn(
        &plx,
        "n1",
        &fresh_addr(1),
        &[&["--init"][..], &quick_sweep[..]].concat(),
        None,
    );
    let t2 = invite(&plx, &n1);
    let n2 = ClusterNode::spawn(&plx, "n2", &fresh_addr(2), &quick_sweep, Some(&t2));
    let t3 = invite(&plx, &n1);
    let n3 = ClusterNode::spawn(&plx, "n3", &fresh_addr(3), &quick_sweep, Some(&t3));
    let nodes = vec![n1, n2, n3];
    wait_alive(&plx, &nodes, 3, 60);
    let s1 = nodes[0].socket().to_str().unwrap().to_owned();
    let old = common::noise(3_000_000, 7);
    let old_path = plx.home.path().join("old.bin");
    std::fs::write(&old_path, &old).unwrap();
    plx.run(
        &[
            "fs",
            "put",
            old_path.to_str().unwrap(),
            "/f.bin",
            "--socket",
            &s1,
        ],
        b"",
    )
    .ok();
    let before = chunk_files(&nodes[0]);
    // A large put, killed once it has staged a few chunks.
    let new_path = plx.home.path().join("new.bin");
    std::fs::write(&new_path, common::noise(200_000_000, 9)).unwrap();
    let mut put = plx
        .command(&[
            "fs",
            "put",
            new_path.to_str().unwrap(),
            "/f.bin",
            "--socket",
            &s1,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while chunk_files(&nodes[0]).len() < before.len() + 3 {
        assert!(Instant::now() < deadline, "the put staged nothing");
        assert!(
            put.try_wait().unwrap().is_none(),
            "the put ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    put.kill().unwrap();
    put.wait().unwrap();
    for node in &nodes {
        assert!(
            read_file(&plx, node, "/f.bin") == old,
            "{} reads the old file",
            node.name
        );
    }
    // The staged chunks no file names are swept from every node; the old file's stay.
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &nodes {
        loop {
            let now = chunk_files(node);
            if now == before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} chunk files, {} before",
                node.name,
                now.len(),
                before.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(read_file(&plx, &nodes[1], "/f.bin") == old);
}

/// The size of the tmpfs that is a test's full disk: room for a node's own files and, once
/// emptied, for copies beyond the 64 MiB a node keeps free.
const SMALL_DISK: u64 = 128 << 20;
/// What the filler leaves free on the full disk: less than a chunk plus the 64 MiB reserve,
/// and less than the file put.
const ROOM_LEFT: u64 = 12 << 20;
/// The size of the files put: more than the room left.
const PUT_BYTES: usize = 16_000_000;

/// The bytes of the file `path` as `plx fs get` gives them from `node`.
fn get_file(plx: &Plx, node: &ClusterNode, path: &str) -> Vec<u8> {
    let local = plx.home.path().join(format!("got-from-{}", node.name));
    plx.run(
        &[
            "fs",
            "get",
            path,
            local.to_str().unwrap(),
            "--socket",
            node.socket().to_str().unwrap(),
        ],
        b"",
    )
    .ok();
    std::fs::read(&local).unwrap()
}

/// The free bytes of `name`'s disk as `from` last heard (`status@io.fs`), if known.
fn free_seen(plx: &Plx, from: &ClusterNode, name: &str) -> Option<u64> {
    let status = send_ok(plx, from, "status@io.fs", 30);
    let entry = status
        .split(&format!("node:{name} "))
        .nth(1)?
        .split('}')
        .next()?;
    entry
        .split("free:")
        .nth(1)?
        .split([' ', '}'])
        .next()?
        .parse()
        .ok()
}

/// `plx fs put` of `data` as the file `path` through `node`.
fn put_file(plx: &Plx, node: &ClusterNode, data: &[u8], path: &str) -> common::Run {
    let local = plx.home.path().join("to-put");
    std::fs::write(&local, data).unwrap();
    plx.run(
        &[
            "fs",
            "put",
            local.to_str().unwrap(),
            path,
            "--socket",
            node.socket().to_str().unwrap(),
        ],
        b"",
    )
}

/// Puts `data` at `path` through `nodes[via]`, checks that `plx fs ls -l` on n1 ends its line
/// with `copies`, and reads it back identical from every node.
fn put_everywhere(
    plx: &Plx,
    nodes: &[ClusterNode],
    via: usize,
    data: &[u8],
    path: &str,
    copies: &str,
) {
    put_file(plx, &nodes[via], data, path).ok();
    let line = listed_line(plx, &nodes[0], path);
    assert!(line.ends_with(copies), "{line}");
    for node in nodes {
        assert!(
            get_file(plx, node, path) == data,
            "{path} from {} differs",
            node.name
        );
    }
}

/// The line of `plx fs ls -l DIR` on `node` for the file `path` (`DIR/NAME`).
fn listed_line(plx: &Plx, node: &ClusterNode, path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap();
    let listed = plx
        .run(
            &[
                "fs",
                "ls",
                "-l",
                dir,
                "--socket",
                node.socket().to_str().unwrap(),
            ],
            b"",
        )
        .ok();
    listed
        .lines()
        .find(|l| l.contains(&format!(" {name}   (")))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{name} is not listed: {listed}"))
}

/// Issue 17, a full disk on one replica: n4's data directory is a small tmpfs filled to
/// within 12 MiB of its top. Files of 16 MB put through n1 and through n4 itself go whole to
/// the other three nodes and read back the same from every node; n4 keeps no copy, stays up
/// and answers, and once its filler is gone a put through it keeps copies there again.
#[test]
fn a_full_disk_on_one_of_four_nodes_gets_no_copies() {
    let started = Instant::now();
    let plx = Plx::new();
    let Some(disk) = common::tmpfs::Tmpfs::mount(&plx.home.path().join("data-n4"), SMALL_DISK)
    else {
        return;
    };
    let mut nodes = three_nodes(&plx);
    let token = invite(&plx, &nodes[0]);
    nodes.push(ClusterNode::spawn(
        &plx,
        "n4",
        &fresh_addr(4),
        &[],
        Some(&token),
    ));
    wait_alive(&plx, &nodes, 4, 60);
    let filler = disk.fill(ROOM_LEFT);
    println!(
        "n4's disk: {} MiB, filler {} MiB, {} MiB free",
        SMALL_DISK >> 20,
        filler >> 20,
        disk.free() >> 20
    );
    send_ok(&plx, &nodes[0], "{mkdir:`/data`}@io.fs", 30);
    for (via, path, seed) in [(0, "/data/via-n1", 41), (3, "/data/via-n4", 42)] {
        let data = common::noise(PUT_BYTES, seed);
        let put = Instant::now();
        put_everywhere(&plx, &nodes, via, &data, path, "(3 copies: n1 n2 n3)");
        println!("{path}: put and read back in {:?}", put.elapsed());
    }
    assert!(
        chunk_files(&nodes[3]).is_empty(),
        "the full node keeps copies"
    );
    assert!(disk.free() > ROOM_LEFT / 2, "{} bytes free", disk.free());
    assert_eq!(send_ok(&plx, &nodes[3], "me@sys.node", 10), "n4\n");
    assert_eq!(health_of(&plx, &nodes[0], "n4"), "alive");

    // With room again, the writer's own copy is kept on it.
    disk.empty();
    let data = common::noise(6_000_000, 43);
    put_file(&plx, &nodes[3], &data, "/data/later").ok();
    let line = listed_line(&plx, &nodes[0], "/data/later");
    assert!(
        line.contains("(3 copies: ") && line.contains("n4"),
        "{line}"
    );
    assert!(!chunk_files(&nodes[3]).is_empty());
    assert!(get_file(&plx, &nodes[1], "/data/later") == data);
    println!("took {:?}", started.elapsed());
}

/// Issue 17 on three nodes: n3's disk is full, so a chunk gets two copies of the three it
/// should have. A put needs a majority of those durable (`docs/fs.md`), so it succeeds on n1
/// and n2, through n1 (which most likely still counts n3 as having room, asks it and is
/// refused) or through n3 itself (once the others know it is full), and reads back the same
/// from every node, with the chunks counted short. With n2 down as well, a put fails whole
/// with `fs.unavailable`, saying n3 is full, and the old content stays. Once n3's filler is
/// gone, repair gives it its copies.
#[test]
fn a_full_disk_on_one_of_three_nodes_leaves_two_copies_until_it_has_room() {
    let started = Instant::now();
    let plx = Plx::new();
    let Some(disk) = common::tmpfs::Tmpfs::mount(&plx.home.path().join("data-n3"), SMALL_DISK)
    else {
        return;
    };
    let mut nodes = three_nodes(&plx);
    disk.fill(ROOM_LEFT);
    send_ok(&plx, &nodes[0], "{mkdir:`/data`}@io.fs", 30);
    let first = common::noise(PUT_BYTES, 51);
    for (via, path, data) in [
        (0, "/data/a", first.clone()),
        (2, "/data/b", common::noise(PUT_BYTES, 52)),
    ] {
        if via == 2 {
            // n3's figures, refreshed every 5 s, reach n1: it is full.
            let deadline = Instant::now() + Duration::from_secs(30);
            while free_seen(&plx, &nodes[0], "n3").is_none_or(|free| free >= 64 << 20) {
                assert!(Instant::now() < deadline, "n1 does not see n3 full");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        put_everywhere(&plx, &nodes, via, &data, path, "(2 copies: n1 n2)");
    }
    assert!(
        chunk_files(&nodes[2]).is_empty(),
        "the full node keeps copies"
    );
    let s1 = nodes[0].socket().to_str().unwrap().to_owned();
    let status = plx.run(&["fs", "status", "--socket", &s1], b"").ok();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("copies: 0 ok, ") && !l.contains(" 0 short")),
        "every chunk is short: {status}"
    );

    // With n2 down too, no chunk can have two copies: the put fails whole.
    nodes[1].kill9();
    let version = |node: &ClusterNode| {
        let stat = send_ok(&plx, node, "{stat:`/data/a`}@io.fs", 30);
        stat.split("version:")
            .nth(1)
            .unwrap()
            .split([' ', '}'])
            .next()
            .unwrap()
            .to_owned()
    };
    let before = version(&nodes[0]);
    let failed = put_file(&plx, &nodes[0], &common::noise(PUT_BYTES, 53), "/data/a");
    let err = failed.fails();
    assert!(
        err.contains("fs.unavailable") && err.contains("n3: its disk is full"),
        "{err}"
    );
    println!("a put with n2 down and n3 full: {}", err.trim());
    for node in [&nodes[0], &nodes[2]] {
        assert_eq!(version(node), before, "on {}", node.name);
        assert!(get_file(&plx, node, "/data/a") == first, "on {}", node.name);
    }
    assert_eq!(send_ok(&plx, &nodes[2], "me@sys.node", 10), "n3\n");

    // Room again: repair copies the chunks of /data/a and /data/b to n3.
    disk.empty();
    nodes[1].restart(&plx);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line_a = listed_line(&plx, &nodes[0], "/data/a");
        let line_b = listed_line(&plx, &nodes[0], "/data/b");
        if [&line_a, &line_b]
            .iter()
            .all(|l| l.ends_with("(3 copies: n1 n2 n3)"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{line_a}\n{line_b}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(get_file(&plx, &nodes[2], "/data/a") == first);
    println!("took {:?}", started.elapsed());
}

/// A member whose disk fills up to the last byte (with something else than chunks) cannot
/// keep the cluster state: it stops and says why, the others go on, and once there is room
/// again a restart brings it back with what it missed.
#[test]
fn a_member_whose_disk_fills_up_stops_and_a_restart_brings_it_back() {
    let plx = Plx::new();
    let Some(disk) = common::tmpfs::Tmpfs::mount(&plx.home.path().join("data-n3"), SMALL_DISK)
    else {
        return;
    };
    let mut nodes = three_nodes(&plx);
    disk.fill(0);
    // Writes to the cluster state, until n3 cannot keep one and stops.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = 0;
    let status = loop {
        if let Some(status) = nodes[2].child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "n3 goes on with a full disk");
        last += 1;
        send_ok(
            &plx,
            &nodes[0],
            &format!("{{save:{last} out:@full.n{last}}}@io.store"),
            30,
        );
    };
    nodes[2].child = None;
    assert!(!status.success(), "n3 stops with an error: {status}");
    let log = std::fs::read_to_string(plx.home.path().join("n3.log")).unwrap();
    assert!(
        log.contains("the cluster state stopped") && log.contains("No space left"),
        "{log}"
    );
    // The others go on.
    send_ok(&plx, &nodes[1], "{save:after out:@full.after}@io.store", 30);
    assert_eq!(
        send_ok(&plx, &nodes[0], "(load @full.after)@io.store", 10),
        "after\n"
    );
    // Room again, a restart: n3 is back, with every write.
    disk.empty();
    nodes[2].restart(&plx);
    wait_for(
        &plx,
        &nodes[2],
        "tester",
        "(load @full.after)@io.store",
        60,
        |run| run.code == 0 && run.out() == "after\n",
    );
    assert_eq!(
        send_ok(
            &plx,
            &nodes[2],
            &format!("(load @full.n{last})@io.store"),
            10
        ),
        format!("{last}\n")
    );
}
