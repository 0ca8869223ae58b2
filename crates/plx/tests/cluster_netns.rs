//! End to end over real networks: every `plx node` of a cluster runs in a network namespace
//! of its own, plugged into a private bridge (see `common/netns.rs`). Cutting a node's port
//! partitions it away; deleting its namespace makes its machine vanish.
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

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::netns::Net;
use common::Plx;

/// The port every node listens on (each has a network of its own).
const PORT: u16 = 7700;

/// Bound on a single `plx` run: a call that has not answered by then is a hang.
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
    /// Options every `plx node` of this cluster is started with.
    options: Vec<String>,
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

/// How many of `n` members are voters (`docs/cluster.md`: 1 for 1–2 nodes, 3 for 3–4, 5
/// beyond).
fn voters_of(n: usize) -> usize {
    match n {
        0..=2 => 1,
        3 | 4 => 3,
        _ => 5,
    }
}

impl Cluster {
    /// Three nodes in three namespaces: n1 creates the cluster, n2 and n3 join with invites;
    /// returns once every node sees three alive voters. `None` if namespaces are unavailable.
    fn start() -> Option<Cluster> {
        Cluster::start_with(3, &[])
    }

    /// `n` nodes in `n` namespaces, each started with the node options `options`: n1 creates
    /// the cluster, the others join with invites; returns once every node sees them all
    /// alive. `None` if namespaces are unavailable.
    fn start_with(n: usize, options: &[&str]) -> Option<Cluster> {
        let net = Net::new(n)?;
        let mut c = Cluster {
            nodes: Vec::new(),
            net,
            plx: Plx::new(),
            options: options.iter().map(|&o| o.to_owned()).collect(),
        };
        c.spawn(0, None);
        for i in 1..n {
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
            .args(&self.options)
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
        self.run(i, &["send".as_ref(), unit.as_ref()])
    }

    /// Runs `plx ARGS --socket SOCKET` as the tester against node `i`'s socket, in the test's
    /// own namespace; a run that takes longer than [`CALL_LIMIT`] is killed and fails the
    /// test (a hang).
    fn run(&self, i: usize, args: &[&OsStr]) -> Outcome {
        let what = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = self
            .plx
            .command(&[])
            .args(args)
            .arg("--socket")
            .arg(self.nodes[i].socket())
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
                "{what} on {} hung: no answer within {CALL_LIMIT:?}",
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

    /// Waits until every node sees every node alive, and as many voters as the cluster
    /// keeps.
    fn wait_whole(&self, secs: u64) {
        let n = self.nodes.len();
        let voters = voters_of(n);
        for i in 0..n {
            self.wait_nodes(i, secs, &format!("{n} alive, {voters} voters"), |out| {
                let all = entries(out);
                all.len() == n
                    && all.iter().all(|e| field(e, "health") == Some("alive"))
                    && all
                        .iter()
                        .filter(|e| field(e, "role") == Some("voter"))
                        .count()
                        == voters
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

/// With `PLX_TEST_PARTITION_SECS=N`, waits until the partition made at `cut` has lasted N
/// seconds: a longer partition, in which TCP backs off further on links into the cut.
fn hold_partition(cut: Instant) {
    if let Some(secs) = std::env::var("PLX_TEST_PARTITION_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        std::thread::sleep(Duration::from_secs(secs).saturating_sub(cut.elapsed()));
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

    hold_partition(cut);
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

/// Polls `check` every 200 ms until it gives a value; after `secs`, fails the test with `what`
/// and what `check` last said.
fn wait_for<T>(secs: u64, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {secs} s. Last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node table of `plx fs status`: each node's state (`up`, `down`, `gone`) and how many
/// chunk copies the tree lists on it.
fn status_nodes(status: &str) -> BTreeMap<String, (String, u64)> {
    status
        .lines()
        .skip_while(|l| !l.starts_with("NODE "))
        .skip(1)
        .take_while(|l| !l.starts_with("repair:"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let chunks = words.get(2)?.parse().ok()?;
            Some((words[0].to_owned(), (words[1].to_owned(), chunks)))
        })
        .collect()
}

impl Cluster {
    /// The bytes of the file `path` as `plx fs get` gives them from node `i`.
    fn get_file(&self, i: usize, path: &str) -> Vec<u8> {
        let local = self
            .plx
            .home
            .path()
            .join(format!("got-from-{}", self.name(i)));
        let o = self.run(
            i,
            &["fs".as_ref(), "get".as_ref(), path.as_ref(), local.as_ref()],
        );
        assert!(
            o.status.success(),
            "get {path} from {}: {}",
            self.name(i),
            o.stderr
        );
        std::fs::read(&local).unwrap()
    }

    /// Whether `plx fs status`, asked through node `i` (it asks the leader), shows all
    /// `chunks` at R copies with `held` the copies the tree lists on each node and its state
    /// (`Err` with what it shows otherwise).
    fn status_is(
        &self,
        i: usize,
        chunks: usize,
        held: &BTreeMap<String, (String, u64)>,
    ) -> Result<(), String> {
        let o = self.run(i, &["fs".as_ref(), "status".as_ref()]);
        if !o.status.success() {
            return Err(o.stderr);
        }
        let settled = format!("copies: {chunks} ok, 0 short, 0 waiting for a down node, 0 lost");
        if o.stdout.starts_with(&format!("{chunks} chunks, "))
            && o.stdout.contains(&settled)
            && status_nodes(&o.stdout) == *held
        {
            Ok(())
        } else {
            Err(o.stdout)
        }
    }

    /// Whether `plx fs ls -l DIR` through node `i` lists the file `DIR/NAME` with every chunk
    /// on `nodes` (live copies), and on no other up node.
    fn listed_on(&self, i: usize, path: &str, nodes: &BTreeSet<String>) -> Result<(), String> {
        let (dir, name) = path.rsplit_once('/').unwrap();
        let o = self.run(
            i,
            &["fs".as_ref(), "ls".as_ref(), "-l".as_ref(), dir.as_ref()],
        );
        let all: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let want = format!(" {name}   ({} copies: {})", nodes.len(), all.join(" "));
        if o.status.success() && o.stdout.lines().any(|l| l.ends_with(&want)) {
            Ok(())
        } else {
            Err(format!("{}{}", o.stdout, o.stderr))
        }
    }
}

/// The grace period of the file system test's nodes: how long a down node's copies count.
const GRACE: Duration = Duration::from_secs(2);

/// Issue 17, a machine cut off the network while its node keeps running: four nodes, a file
/// of several chunks put through one (each chunk on three nodes), then a node with copies
/// (the Raft leader if it has some) unplugged. Past the grace period, repair puts every chunk
/// back at three copies on the three connected nodes, and the file reads back the same from
/// each. Plugged back in, the node rejoins, and its copies, which the tree no longer lists
/// and the chunks no longer need, are deleted by its sweep (`docs/fs.md`, "Sweep"): every
/// chunk stays at three copies on the other three, and the file reads the same from all four.
#[test]
fn a_node_cut_off_past_the_grace_period_has_its_chunks_copied_elsewhere() {
    let started = Instant::now();
    // A short grace, and sweeps every second that delete unlisted copies over 2 s old (the
    // defaults are 30 s, a minute and an hour).
    let grace = GRACE.as_secs().to_string();
    let options = [
        "--fs-grace",
        &grace,
        "--fs-sweep-every",
        "1",
        "--fs-unlisted-age",
        "2",
    ];
    let Some(c) = Cluster::start_with(4, &options) else {
        return;
    };
    eprintln!("{:?}: four nodes are up", started.elapsed());
    // Files go through a node that is not the leader, so the leader may be the one cut off.
    let leader = c.index(&c.leader(0));
    let talk = (leader + 1) % 4;
    let data = common::noise(6_000_000, 17);
    let local = c.plx.home.path().join("six.bin");
    std::fs::write(&local, &data).unwrap();
    let path = "/data/six.bin";
    c.send_ok(talk, "{mkdir:`/data`}@io.fs", 30);
    let o = c.run(
        talk,
        &["fs".as_ref(), "put".as_ref(), local.as_ref(), path.as_ref()],
    );
    assert!(o.status.success(), "put: {}", o.stderr);

    // Every chunk is on three of the four nodes.
    let held: Vec<BTreeSet<String>> = c
        .nodes
        .iter()
        .map(|n| common::chunk_files(&n.data))
        .collect();
    let all: BTreeSet<String> = held.iter().flatten().cloned().collect();
    assert!(all.len() >= 3, "{} chunks", all.len());
    for chunk in &all {
        assert_eq!(
            held.iter().filter(|h| h.contains(chunk)).count(),
            3,
            "{chunk}"
        );
    }
    let cut = if held[leader].is_empty() {
        (0..4)
            .filter(|&i| i != talk)
            .max_by_key(|&i| held[i].len())
            .unwrap()
    } else {
        leader
    };
    let cut_name = c.name(cut).to_owned();
    let rest: Vec<usize> = (0..4).filter(|&i| i != cut).collect();
    let rest_names: BTreeSet<String> = rest.iter().map(|&i| c.name(i).to_owned()).collect();
    eprintln!(
        "{:?}: {} chunks put through {}; cutting {cut_name} ({}, {} of them) off the network",
        started.elapsed(),
        all.len(),
        c.name(talk),
        if cut == leader {
            "the leader"
        } else {
            "a follower"
        },
        held[cut].len()
    );
    c.net.cut(cut);
    let cut_at = Instant::now();

    // The connected three have (or elect) a leader of their own.
    for &i in &rest {
        wait_for(
            30,
            &format!("{} follows a connected leader", c.name(i)),
            || {
                let leader = c.leader(i);
                if leader == cut_name {
                    Err(leader)
                } else {
                    Ok(())
                }
            },
        );
    }
    // Past the grace period, every chunk is back at three copies: on the three connected
    // nodes' disks, in the tree (status and the file's listing), none listed on the cut node.
    let n = all.len() as u64;
    let mut repaired: BTreeMap<String, (String, u64)> = rest_names
        .iter()
        .map(|name| (name.clone(), ("up".to_owned(), n)))
        .collect();
    repaired.insert(cut_name.clone(), ("down".to_owned(), 0));
    wait_for(60, "every chunk on the three connected nodes", || {
        for &i in &rest {
            let missing = all
                .difference(&common::chunk_files(&c.nodes[i].data))
                .count();
            if missing > 0 {
                return Err(format!("{} lacks {missing} chunks", c.name(i)));
            }
        }
        c.status_is(talk, all.len(), &repaired)
    });
    // Not before the grace period: until then the cut node's copies count (the others see
    // it down only after the cut, so the copies cannot be made sooner than that).
    let repaired_after = cut_at.elapsed();
    assert!(
        repaired_after >= GRACE,
        "repaired {repaired_after:?} after the cut, within the grace period of {GRACE:?}"
    );
    wait_for(10, "the file listed on the connected nodes", || {
        c.listed_on(talk, path, &rest_names)
    });
    eprintln!(
        "{:?}: repaired, {repaired_after:?} after the cut",
        started.elapsed()
    );
    for &i in &rest {
        assert!(
            c.get_file(i, path) == data,
            "the file read from {} after the cut",
            c.name(i)
        );
    }

    // Plugged back in, the node rejoins and sweeps the copies nothing lists any more; the
    // others keep theirs.
    hold_partition(cut_at);
    eprintln!("{:?}: plugging {cut_name} back in", started.elapsed());
    c.net.heal(cut);
    let healed_at = Instant::now();
    c.wait_whole(60);
    eprintln!(
        "{:?}: every node sees four alive, {:?} after healing",
        started.elapsed(),
        healed_at.elapsed()
    );
    let mut settled = repaired.clone();
    settled.insert(cut_name.clone(), ("up".to_owned(), 0));
    wait_for(30, &format!("{cut_name}'s copies swept"), || {
        let kept = all
            .intersection(&common::chunk_files(&c.nodes[cut].data))
            .count();
        let status = c.status_is(cut, all.len(), &settled);
        if kept == 0 {
            return status;
        }
        Err(format!(
            "{cut_name} still keeps {kept} chunks; status {}",
            status.err().unwrap_or_else(|| "settled".into())
        ))
    });
    eprintln!(
        "{:?}: {cut_name}'s copies swept, {:?} after healing",
        started.elapsed(),
        healed_at.elapsed()
    );
    for &i in &rest {
        let missing = all
            .difference(&common::chunk_files(&c.nodes[i].data))
            .count();
        assert_eq!(missing, 0, "{} lost copies to the sweep", c.name(i));
    }
    for i in 0..4 {
        wait_for(
            10,
            &format!("the file listed as {} sees it", c.name(i)),
            || c.listed_on(i, path, &rest_names),
        );
        assert!(
            c.get_file(i, path) == data,
            "the file read from {} after healing",
            c.name(i)
        );
    }
    eprintln!("took {:?}", started.elapsed());
}
