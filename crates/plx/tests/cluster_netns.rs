//! End to end over real networks: every `plx node` of a 3-node cluster runs in a network
//! namespace of its own, plugged into a private bridge (see `common/netns.rs`). Cutting a
//! node's port partitions it away; deleting its namespace makes its machine vanish.
//!
//! These tests need root and `ip netns`; without them they say so on standard error and pass.
//! The clients (`plx send`) run in the test's own namespace and reach the nodes through their
//! Unix sockets, which live in the shared file system.
//!
//! For investigations: `PLX_TEST_PARTITION_SECS=N` holds each partition at least N seconds
//! (long partitions let TCP back off on the links into the cut), and `PLX_TEST_KEEP_LOGS=DIR`
//! copies the node logs to DIR.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::netns::Net;
use common::Plx;

/// The port every node listens on (each has a network of its own).
const PORT: u16 = 7700;

/// Bound on a single `plx send`: a call that has not answered by then is a hang.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// One node process, killed when dropped.
struct Node {
    name: String,
    child: Option<Child>,
    data: PathBuf,
    log: PathBuf,
}

impl Node {
    fn socket(&self) -> PathBuf {
        self.data.join("node.sock")
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What one bounded `plx` run did.
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A cluster of nodes, one per namespace. Dropping it kills the nodes, then deletes the
/// namespaces, then the home directory (fields drop in this order).
struct Cluster {
    nodes: Vec<Node>,
    net: Net,
    plx: Plx,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(dir) = std::env::var("PLX_TEST_KEEP_LOGS") {
            let _ = std::fs::create_dir_all(&dir);
            for n in &self.nodes {
                let _ = std::fs::copy(&n.log, format!("{dir}/{}.log", n.name));
            }
        }
        if std::thread::panicking() {
            for n in &self.nodes {
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("---- last lines of {}'s log ----\n{tail}", n.name);
            }
        }
    }
}

/// The top-level `{…}` entries of a printed list of maps.
fn entries(out: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, ch) in out.char_indices() {
        match ch {
            '{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    found.push(&out[start..=i]);
                }
            }
            _ => {}
        }
    }
    found
}

/// The value of `key` in a printed map whose values are plain words (`key:value`, up to a
/// space or brace).
fn field<'a>(entry: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}:");
    let mut rest = entry;
    while let Some(at) = rest.find(&pat) {
        let before = rest[..at].chars().last();
        let after = &rest[at + pat.len()..];
        if matches!(before, Some('{' | ' ')) {
            let end = after.find([' ', '}']).unwrap_or(after.len());
            return Some(&after[..end]);
        }
        rest = after;
    }
    None
}

/// How `nodes@sys.node` output rates node `name` (`alive`, `suspect`, `down`).
fn health_of<'a>(nodes: &'a str, name: &str) -> Option<&'a str> {
    entries(nodes)
        .into_iter()
        .find(|e| field(e, "name") == Some(name))
        .and_then(|e| field(e, "health"))
}

impl Cluster {
    /// Three nodes in three namespaces: n1 creates the cluster, n2 and n3 join with invites;
    /// returns once every node sees three alive voters. `None` if namespaces are unavailable.
    fn start() -> Option<Cluster> {
        let net = Net::new(3)?;
        let mut c = Cluster {
            nodes: Vec::new(),
            net,
            plx: Plx::new(),
        };
        c.spawn(0, None);
        for i in 1..3 {
            let token = c.send_ok(0, "invite@sys.node", 60).trim().to_owned();
            c.spawn(i, Some(&token));
        }
        c.wait_whole(90);
        Some(c)
    }

    /// Starts node `i` (named `n{i+1}`) in namespace `i`: the first creates the cluster, the
    /// others join with `token`.
    fn spawn(&mut self, i: usize, token: Option<&str>) {
        let name = format!("n{}", i + 1);
        let home = self.plx.home.path().to_owned();
        let data = home.join(format!("data-{name}"));
        let log = home.join(format!("{name}.log"));
        let listen = format!("{}:{PORT}", self.net.ip(i));
        let mut cmd = self.net.command(i, env!("CARGO_BIN_EXE_plx"));
        cmd.args(["node", "--name", &name, "--data"])
            .arg(&data)
            .args(["--listen", &listen, "--profile", "local"])
            .env("PLX_HOME", &home)
            .env("USER", "tester")
            .env("PLX_LOG", "info")
            .env_remove("PLX_PASSPHRASE")
            .env_remove("PLX_JOIN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        match token {
            Some(t) => {
                cmd.env("PLX_JOIN", t);
            }
            None => {
                cmd.arg("--init");
            }
        }
        self.nodes.push(Node {
            name: name.clone(),
            child: Some(cmd.spawn().unwrap()),
            data,
            log,
        });
        let node = &mut self.nodes[i];
        let deadline = Instant::now() + Duration::from_secs(90);
        while UnixStream::connect(node.socket()).is_err() {
            let exited = node.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "node {name} did not start ({exited:?}): {}",
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .expect("a node of this cluster")
    }

    /// Runs `plx send UNIT` against node `i`'s socket; a run that takes longer than
    /// [`CALL_LIMIT`] is killed and fails the test (a hang).
    fn send(&self, i: usize, unit: &str) -> Outcome {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plx"))
            .args(["send", "--socket"])
            .arg(self.nodes[i].socket())
            .arg(unit)
            .env("PLX_HOME", self.plx.home.path())
            .env("USER", "tester")
            .env_remove("PLX_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let out = drain(Box::new(child.stdout.take().unwrap()));
        let err = drain(Box::new(child.stderr.take().unwrap()));
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            let hung = started.elapsed() > CALL_LIMIT;
            if hung {
                let _ = child.kill();
                let _ = child.wait();
            }
            assert!(
                !hung,
                "{unit} on {} hung: no answer within {CALL_LIMIT:?}",
                self.name(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Outcome {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }

    /// Sends until it succeeds (the cluster may be settling), for up to `secs`.
    fn send_ok(&self, i: usize, unit: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let o = self.send(i, unit);
            if o.status.success() {
                return o.stdout;
            }
            assert!(
                Instant::now() < deadline,
                "{unit} on {} kept failing for {secs} s: {}",
                self.name(i),
                o.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends once; the call must fail cleanly (exit code 1, no panic). Gives its error.
    fn send_fails(&self, i: usize, unit: &str) -> String {
        let o = self.send(i, unit);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{unit} on {} should have failed: stdout {:?} stderr {:?}",
            self.name(i),
            o.stdout,
            o.stderr
        );
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
        o.stderr
    }

    /// Waits until `check` holds for the output of `nodes@sys.node` on node `i`.
    fn wait_nodes(&self, i: usize, secs: u64, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let o = self.send(i, "nodes@sys.node");
            if o.status.success() && check(&o.stdout) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw {what} within {secs} s: {} {}",
                self.name(i),
                o.stdout,
                o.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every node sees all three nodes alive, as voters.
    fn wait_whole(&self, secs: u64) {
        for i in 0..self.nodes.len() {
            self.wait_nodes(i, secs, "3 alive voters", |out| {
                let all = entries(out);
                all.len() == 3
                    && all.iter().all(|e| {
                        field(e, "health") == Some("alive") && field(e, "role") == Some("voter")
                    })
            });
        }
    }

    /// The leader's name as node `i` knows it, once it knows one.
    fn leader(&self, i: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.send_ok(i, "leader@sys.node", 30);
            let name = out.trim();
            if self.nodes.iter().any(|n| n.name == name) {
                return name.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{} knows no leader: {out}",
                self.name(i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves `value` at `@p.KEY` through node `i`, retrying until acknowledged.
    fn write(&self, i: usize, key: &str, value: u32, acked: &mut Vec<(String, u32)>) {
        self.send_ok(i, &format!("{{save:{value} out:@p.{key}}}@io.store"), 30);
        acked.push((key.to_owned(), value));
    }

    /// Waits until node `i` reads back every acknowledged write (reads are linearizable,
    /// so this mostly waits for the node to be back in touch with a leader).
    fn wait_reads_all(&self, i: usize, acked: &[(String, u32)], secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let o = self.send(i, "(load @p)@io.store");
            let missing: Vec<&(String, u32)> = acked
                .iter()
                .filter(|(k, v)| field(o.stdout.trim(), k) != Some(v.to_string().as_str()))
                .collect();
            if o.status.success() && missing.is_empty() {
                return o.stdout;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not read back acknowledged writes {missing:?} within {secs} s: {} {}",
                self.name(i),
                o.stdout,
                o.stderr
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Cuts node `iso` off the switch, checks both sides, heals, and checks that all converge.
/// `tag` keeps this round's keys apart.
fn partition_round(c: &Cluster, iso: usize, tag: &str, acked: &mut Vec<(String, u32)>) {
    let iso_name = c.name(iso).to_owned();
    let was_leader = c.leader(iso) == iso_name;
    let majority: Vec<usize> = (0..3).filter(|&i| i != iso).collect();
    eprintln!(
        "[{tag}] cutting {iso_name} ({}) off the network",
        if was_leader {
            "the leader"
        } else {
            "a follower"
        }
    );
    c.net.cut(iso);
    let cut = Instant::now();

    // The majority side keeps (or elects) a leader of its own and accepts writes.
    for (n, &m) in majority.iter().enumerate() {
        for j in 0..3u32 {
            c.write(m, &format!("{tag}m{n}x{j}"), 100 * (n as u32) + j, acked);
        }
    }
    for &m in &majority {
        let leader = c.leader(m);
        assert_ne!(
            leader,
            iso_name,
            "{} still follows the cut-off node",
            c.name(m)
        );
    }
    eprintln!("[{tag}] {:?}: the majority accepted writes", cut.elapsed());
    // …and marks the isolated node suspect or down.
    for &m in &majority {
        c.wait_nodes(m, 30, &format!("{iso_name} suspect or down"), |out| {
            matches!(health_of(out, &iso_name), Some("suspect" | "down"))
        });
    }
    eprintln!(
        "[{tag}] {:?}: the majority marked {iso_name} suspect or down",
        cut.elapsed()
    );

    // The isolated node refuses writes (and linearizable reads) with a clear error, in
    // bounded time: `send` fails the test if a call hangs.
    let lost_key = format!("{tag}lost");
    let err = c.send_fails(iso, &format!("{{save:1 out:@p.{lost_key}}}@io.store"));
    assert!(
        err.contains("cluster.unavailable"),
        "a write on the cut-off {iso_name}: {err}"
    );
    eprintln!(
        "[{tag}] {:?}: the cut-off node refused a write: {}",
        cut.elapsed(),
        err.trim()
    );
    let err = c.send_fails(iso, "(load @p)@io.store");
    assert!(
        err.contains("cluster.unavailable"),
        "a read on the cut-off {iso_name}: {err}"
    );

    if let Some(secs) = std::env::var("PLX_TEST_PARTITION_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        // A longer partition: TCP backs off further on links into the cut.
        std::thread::sleep(Duration::from_secs(secs).saturating_sub(cut.elapsed()));
    }
    eprintln!("[{tag}] plugging {iso_name} back in");
    c.net.heal(iso);
    let healed = Instant::now();
    c.wait_whole(60);
    eprintln!(
        "[{tag}] {:?}: every node sees 3 alive voters",
        healed.elapsed()
    );
    // Every acknowledged write is readable on every node, the rejoined one included.
    for i in 0..3 {
        let all = c.wait_reads_all(i, acked, 60);
        if was_leader {
            // A deposed leader's write never reached a majority: it cannot have been
            // committed (the new leader's log, which wins, never had it).
            assert!(
                field(all.trim(), &lost_key).is_none(),
                "a write refused by the cut-off leader shows up on {}: {all}",
                c.name(i)
            );
        }
    }
    eprintln!(
        "[{tag}] {:?}: every node reads every acknowledged write",
        healed.elapsed()
    );
    // The rejoined node accepts writes again, and everyone sees them.
    c.write(iso, &format!("{tag}back"), 7, acked);
    for i in 0..3 {
        c.wait_reads_all(i, acked, 60);
    }
    eprintln!(
        "[{tag}] {:?}: {iso_name} accepts writes again",
        healed.elapsed()
    );
}

#[test]
fn partitioned_minority_refuses_writes_and_heals() {
    let started = Instant::now();
    let Some(c) = Cluster::start() else { return };
    let mut acked = Vec::new();
    for i in 0..3 {
        c.write(i, &format!("pre{i}"), i as u32, &mut acked);
    }
    c.wait_reads_all(0, &acked, 30);

    // First the leader is cut off, then (once all healed) a follower.
    let leader = c.index(&c.leader(0));
    partition_round(&c, leader, "l", &mut acked);
    let leader = c.index(&c.leader(0));
    let follower = (leader + 1) % 3;
    partition_round(&c, follower, "f", &mut acked);
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn a_killed_machine_is_detected_and_the_cluster_goes_on() {
    let started = Instant::now();
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let mut acked = Vec::new();
    for i in 0..3 {
        c.write(i, &format!("pre{i}"), i as u32, &mut acked);
    }

    // The leader's machine dies: its process is killed and its network is gone.
    let dead = c.index(&c.leader(0));
    let dead_name = c.name(dead).to_owned();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    eprintln!("killing {dead_name} (the leader) and its network");
    c.nodes[dead].kill9();
    c.net.destroy(dead);

    let killed = Instant::now();
    // The survivors mark it down.
    for &s in &survivors {
        c.wait_nodes(s, 30, &format!("{dead_name} down"), |out| {
            health_of(out, &dead_name) == Some("down")
        });
    }
    eprintln!(
        "{:?}: the survivors marked {dead_name} down",
        killed.elapsed()
    );
    // They elect a leader among themselves and keep accepting writes on both.
    for (n, &s) in survivors.iter().enumerate() {
        for j in 0..3u32 {
            c.write(s, &format!("after{n}x{j}"), 10 * (n as u32) + j, &mut acked);
        }
    }
    eprintln!("{:?}: the survivors accepted writes", killed.elapsed());
    for &s in &survivors {
        let leader = c.leader(s);
        assert_ne!(
            leader,
            dead_name,
            "{} still follows the dead node",
            c.name(s)
        );
        c.wait_reads_all(s, &acked, 60);
    }
    // Calls between survivors work; a call pinned to the dead node is a clear error.
    let (a, b) = (survivors[0], survivors[1]);
    assert_eq!(
        c.send_ok(a, &format!("me@sys.node:{}", c.name(b)), 30),
        format!("{}\n", c.name(b))
    );
    let err = c.send_fails(a, &format!("me@sys.node:{dead_name}"));
    assert!(
        err.contains("node.down") && err.contains(&dead_name),
        "{err}"
    );
    eprintln!("took {:?}", started.elapsed());
}
