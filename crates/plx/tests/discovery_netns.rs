//! LAN discovery over real multicast: a cluster node advertising with `plx node --mdns` in one
//! network namespace, `plx discover` in another, both on a private bridge (`common/netns.rs`;
//! `lo` has no multicast here). Needs root and `ip netns`; without them the test says so on
//! standard error and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Net;
use common::Plx;

const PORT: u16 = 7700;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the node in host 0; `extra` are more `plx node` flags.
fn start_node(net: &Net, plx: &Plx, extra: &[&str]) -> Killed {
    let home = plx.home.path();
    let data = home.join("data-lan1");
    let listen = format!("{}:{PORT}", net.ip(0));
    let child = net
        .command(0, env!("CARGO_BIN_EXE_plx"))
        .args(["node", "--name", "lan1", "--data"])
        .arg(&data)
        .args(["--listen", &listen])
        .args(extra)
        .env("PLX_HOME", home)
        .env("USER", "tester")
        .env("PLX_LOG", "info")
        .env_remove("PLX_JOIN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("lan1.log")).unwrap())
        .spawn()
        .unwrap();
    let mut node = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(data.join("node.sock")).is_err() {
        assert!(
            node.0.try_wait().unwrap().is_none() && Instant::now() < deadline,
            "the node did not start: {}",
            std::fs::read_to_string(home.join("lan1.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

/// `plx discover --raw` in host 1.
fn discover(net: &Net, plx: &Plx, wait: &str) -> String {
    let out = net
        .command(1, env!("CARGO_BIN_EXE_plx"))
        .args(["discover", "--raw", "--wait", wait])
        .env("PLX_HOME", plx.home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plx discover failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Discovers until `check` holds (adverts go out a few times in the first seconds).
fn discover_until(net: &Net, plx: &Plx, check: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..5 {
        last = discover(net, plx, "2");
        if check(&last) {
            return last;
        }
    }
    panic!("never saw what was expected; last answer: {last}");
}

#[test]
fn a_cluster_advertised_on_the_lan_is_discovered() {
    let Some(net) = Net::new(2) else { return };
    let plx = Plx::new();
    let addr = format!("{}:{PORT}", net.ip(0));

    // Nothing advertises yet.
    assert_eq!(discover(&net, &plx, "1").trim(), "[]");
    let table = net
        .command(1, env!("CARGO_BIN_EXE_plx"))
        .args(["discover", "--wait", "0.5"])
        .env("PLX_HOME", plx.home.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("no cluster heard"));

    let node = start_node(&net, &plx, &["--init", "--mdns"]);
    let found = discover_until(&net, &plx, |o| o.contains("lan1"));
    assert!(found.contains(&addr), "{found}");
    assert!(found.contains("version:"), "{found}");
    let cluster = found
        .split("cluster:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(cluster.len(), 32, "{found}");

    // The choice is remembered: restarted with no flags, the node advertises again.
    drop(node);
    let node = start_node(&net, &plx, &[]);
    let found = discover_until(&net, &plx, |o| o.contains("lan1"));
    assert!(found.contains(&cluster), "{found}");

    // --no-mdns withdraws it.
    drop(node);
    let _node = start_node(&net, &plx, &["--no-mdns"]);
    discover_until(&net, &plx, |o| !o.contains("lan1"));

    // Bad arguments are refused clearly.
    let bad = Command::new(env!("CARGO_BIN_EXE_plx"))
        .args(["discover", "--wait", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--wait"));
}
