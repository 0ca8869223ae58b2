//! A private network for end-to-end tests: one Linux network namespace per node, all plugged
//! into one bridge (a "switch", itself in a namespace of its own). Cutting a node's port on the
//! switch partitions it away like a pulled cable; deleting its namespace takes the machine's
//! network away for good.
//!
//! Needs root and `ip` (iproute2). [`Net::new`] says why on standard error and gives `None`
//! when that is not available, so tests can return early on developer machines.
//!
//! Every namespace name starts with `plxt{pid}-` so concurrent test processes never clash; the
//! namespaces (and with them every veth pair and the bridge) are deleted when the [`Net`] is
//! dropped, also on panic. Namespaces left behind by a test process that was killed are swept
//! by the next [`Net::new`].

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

/// The name prefix of every namespace these helpers create.
const PREFIX: &str = "plxt";

/// A switch and `n` hosts, each host in its own network namespace.
pub struct Net {
    switch: String,
    hosts: Vec<Host>,
    subnet: u8,
}

struct Host {
    ns: String,
    /// Whether the namespace still exists (a destroyed host's does not).
    alive: bool,
}

/// Runs `ip ARGS`; the error is its standard error.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[track_caller]
#[allow(clippy::panic)]
fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// The effective user id, from `/proc/self/status`.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why network namespaces cannot be used here, if they cannot.
fn unavailable() -> Option<String> {
    match euid() {
        Some(0) => {}
        Some(uid) => return Some(format!("not root (euid {uid})")),
        None => return Some("cannot tell the user id (no /proc/self/status)".into()),
    }
    if let Err(e) = ip(&["-V"]) {
        return Some(format!("no usable ip command (iproute2): {e}"));
    }
    None
}

/// Deletes namespaces of this module whose test process is gone (killed before its cleanup
/// ran) and that are older than ten minutes.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if old {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl Net {
    /// Builds a switch and `n` hosts (`n` ≤ 200) on 10.77.X.0/24, X random per network:
    /// host `i` (from 0) has address 10.77.X.(i+1) on its `eth0`, and `lo` is up everywhere.
    /// `None` (with the reason on standard error) when namespaces are not available.
    pub fn new(n: usize) -> Option<Net> {
        assert!(n <= 200, "at most 200 hosts");
        if let Some(why) = unavailable() {
            eprintln!("SKIPPED: network namespace tests need root and `ip netns`: {why}");
            return None;
        }
        sweep_stale();
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let subnet = ((pid ^ nanos ^ seq.wrapping_mul(0x9e37_79b9)) % 250) as u8 + 1;
        let switch = format!("{PREFIX}{pid}-{seq}-sw");
        // The first step says whether namespaces work at all here (a container may forbid
        // them even to root).
        if let Err(e) = ip(&["netns", "add", &switch]) {
            eprintln!("SKIPPED: network namespace tests need `ip netns`, which failed: {e}");
            return None;
        }
        // From here on, dropping `net` deletes whatever was created.
        let mut net = Net {
            switch,
            hosts: Vec::new(),
            subnet,
        };
        let sw = net.switch.clone();
        must(&["-n", &sw, "link", "set", "lo", "up"]);
        must(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("{PREFIX}{pid}-{seq}-h{i}");
            must(&["netns", "add", &ns]);
            net.hosts.push(Host {
                ns: ns.clone(),
                alive: true,
            });
            let port = net.port(i);
            must(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            must(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            must(&["-n", &sw, "link", "set", &port, "up"]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
            let addr = format!("{}/24", net.ip(i));
            must(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            must(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        Some(net)
    }

    /// The switch port of host `i` (in the switch's namespace).
    fn port(&self, i: usize) -> String {
        format!("p{i}")
    }

    /// Host `i`'s namespace.
    pub fn ns(&self, i: usize) -> &str {
        &self.hosts[i].ns
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    /// A command that runs `program` in host `i`'s namespace (`ip netns exec`, which execs
    /// the program: the child's pid is the program's).
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(i)]).arg(program);
        cmd
    }

    /// Cuts host `i` off the switch (its port goes down: packets to and from it are lost,
    /// connections are not reset).
    pub fn cut(&self, i: usize) {
        must(&["-n", &self.switch, "link", "set", &self.port(i), "down"]);
    }

    /// Plugs host `i` back in.
    pub fn heal(&self, i: usize) {
        must(&["-n", &self.switch, "link", "set", &self.port(i), "up"]);
    }

    /// Deletes host `i`'s namespace (with its interfaces and its switch port): the machine is
    /// gone from the network. Kill its processes first.
    pub fn destroy(&mut self, i: usize) {
        if self.hosts[i].alive {
            self.hosts[i].alive = false;
            must(&["netns", "del", &self.hosts[i].ns]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in self.hosts.iter_mut().filter(|h| h.alive) {
            h.alive = false;
            if let Err(e) = ip(&["netns", "del", &h.ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.switch]) {
            eprintln!("cleanup: {e}");
        }
    }
}
