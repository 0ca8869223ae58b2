//! `plx invite`, `plx nodes`, `plx services`, `plx node remove`: the cluster from the command
//! line, through the local node's `sys.node` service; tables for people.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use plexus_units::{parse, to_text, Unit};

use crate::client::{Client, Reply};
use crate::cmd_node::{sign, socket_path};
use crate::home::Home;

/// Options of `plx invite`.
#[derive(Args, Debug)]
pub struct InviteArgs {
    /// How long the token stays valid, in seconds (at most a week).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub ttl: u64,
    /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Options of `plx nodes` and `plx services`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print the unit the node answered instead of a table.
    #[arg(long)]
    pub raw: bool,
    /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Options of `plx nodes`.
#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Show the links between the nodes instead: round trip and rate, as each node measures
    /// them (every 5 s and every minute; `.osh` `min_rate` and `max_latency` place by them).
    #[arg(long)]
    pub links: bool,
}

/// Options of `plx discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// How long to listen for adverts, in seconds.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub wait: f64,
    /// Print one unit (a list of {cluster nodes:[{name addrs version}]}) instead of a table.
    #[arg(long)]
    pub raw: bool,
}

/// `plx discover`.
pub fn run_discover(args: DiscoverArgs) -> Result<()> {
    if !(args.wait.is_finite() && (0.1..=600.0).contains(&args.wait)) {
        bail!("--wait takes 0.1 to 600 seconds");
    }
    let found =
        plexus_node::cluster::discovery::discover(std::time::Duration::from_secs_f64(args.wait))
            .map_err(|e| anyhow!("{e}"))?;
    if args.raw {
        let list = found
            .iter()
            .map(|c| {
                let nodes = c
                    .nodes
                    .iter()
                    .map(|n| {
                        let mut m = plexus_units::Map::new();
                        m.insert(Unit::str("name"), Unit::str(&n.name));
                        m.insert(
                            Unit::str("addrs"),
                            Unit::List(n.addrs.iter().map(|a| Unit::str(&a.to_string())).collect()),
                        );
                        m.insert(Unit::str("version"), Unit::str(&n.version));
                        Unit::Map(m)
                    })
                    .collect();
                let mut m = plexus_units::Map::new();
                m.insert(Unit::str("cluster"), Unit::str(&c.cluster));
                m.insert(Unit::str("nodes"), Unit::List(nodes));
                Unit::Map(m)
            })
            .collect();
        println!("{}", to_text(&Unit::List(list)));
        return Ok(());
    }
    if found.is_empty() {
        println!(
            "no cluster heard in {} s (nodes advertise with `plx node --mdns`; multicast must \
             reach this machine)",
            args.wait
        );
        return Ok(());
    }
    let mut rows = vec![["CLUSTER", "NODE", "ADDRESS", "VERSION"]
        .map(str::to_owned)
        .to_vec()];
    for c in &found {
        for n in &c.nodes {
            let addrs: Vec<String> = n.addrs.iter().map(ToString::to_string).collect();
            rows.push(vec![
                c.cluster.clone(),
                n.name.clone(),
                addrs.join(" "),
                n.version.clone(),
            ]);
        }
    }
    print!("{}", table(&rows));
    println!(
        "to join one: run `plx invite` on one of its nodes, then here `plx node --join TOKEN \
         --listen HOST:PORT`"
    );
    Ok(())
}

/// Sends `text` (units notation) signed as the current user to the node at `socket` and gives
/// its value; an error unit becomes an error that reads `CODE: MESSAGE`.
pub async fn ask(home: &Home, socket: &Path, text: &str) -> Result<Unit> {
    let body = parse(text).map_err(|e| anyhow!("{e}"))?;
    match ask_reply(home, None, socket, body).await? {
        Reply::Value(v) => Ok(v),
        Reply::Nothing => Ok(Unit::None),
        Reply::Error(e) => bail!("{}: {}", e.code(), e.message()),
    }
}

/// Sends `body` signed as `user` (the current user by default) to the node at `socket` and
/// gives its reply, for callers that look at an error's code.
pub async fn ask_reply(
    home: &Home,
    user: Option<&str>,
    socket: &Path,
    body: Unit,
) -> Result<Reply> {
    let msg = sign(home, user, body)?;
    let mut client = Client::connect(socket).await?;
    Ok(client.call(&msg, None, std::future::pending()).await?)
}

/// A single-threaded runtime for a command's few requests to the node.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `plx invite`.
pub fn run_invite(home: &Home, args: InviteArgs) -> Result<()> {
    let socket = socket_path(home, args.socket);
    let token = runtime()?.block_on(ask(
        home,
        &socket,
        &format!("(invite {})@sys.node", args.ttl),
    ))?;
    let token = token
        .as_str()
        .ok_or_else(|| anyhow!("the node answered {} instead of a token", to_text(&token)))?;
    println!("{token}");
    eprintln!(
        "plx: one-time token, valid {} s. On the new machine: plx node --join <token> --listen <its address>:7700",
        args.ttl
    );
    Ok(())
}

/// `plx nodes`.
pub fn run_nodes(home: &Home, args: NodesArgs) -> Result<()> {
    let socket = socket_path(home, args.list.socket);
    let nodes = runtime()?.block_on(ask(home, &socket, "nodes@sys.node"))?;
    if args.list.raw {
        println!("{}", to_text(&nodes));
    } else if args.links {
        print!("{}", links_table(&nodes));
    } else {
        print!("{}", nodes_table(&nodes));
    }
    Ok(())
}

/// The links of the answer of `nodes@sys.node` as a table: one row per measured link.
pub fn links_table(nodes: &Unit) -> String {
    let mut rows = vec![["FROM", "TO", "RTT", "RATE"].map(str::to_owned).to_vec()];
    for n in nodes.as_list().unwrap_or_default() {
        let Some(m) = n.as_map() else { continue };
        let Some(links) = m.get_str("links").and_then(Unit::as_map) else {
            continue;
        };
        for (to, link) in links.iter() {
            let figure = |k: &str| {
                link.as_map()
                    .and_then(|l| l.get_str(k))
                    .and_then(Unit::as_int)
                    .and_then(|i| i.to_i64())
            };
            let rtt = figure("rtt_us")
                .map_or("-".to_owned(), |us| format!("{:.2} ms", us as f64 / 1000.0));
            let rate = match figure("rate") {
                Some(r) if r > 0 => format!("{:.0} MB/s", r as f64 / 1e6),
                _ => "-".to_owned(),
            };
            rows.push(vec![
                field(m, "name"),
                to.as_str().unwrap_or("?").to_owned(),
                rtt,
                rate,
            ]);
        }
    }
    if rows.len() == 1 {
        return "no link measured yet (nodes measure their links every 5 s)\n".to_owned();
    }
    table(&rows)
}

/// `plx services`.
pub fn run_services(home: &Home, args: ListArgs) -> Result<()> {
    let socket = socket_path(home, args.socket);
    let services = runtime()?.block_on(ask(home, &socket, "services@sys.node"))?;
    if args.raw {
        println!("{}", to_text(&services));
    } else {
        print!("{}", services_table(&services));
    }
    Ok(())
}

/// `plx node remove NAME`.
pub fn run_remove(home: &Home, name: &str, socket: Option<PathBuf>) -> Result<()> {
    plexus_identity::validate_name(name).map_err(|e| anyhow!("{e}"))?;
    let socket = socket_path(home, socket);
    let out = runtime()?.block_on(ask(home, &socket, &format!("(remove {name})@sys.node")))?;
    println!(
        "{}",
        out.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| to_text(&out))
    );
    Ok(())
}

fn field(m: &plexus_units::Map, k: &str) -> String {
    match m.get_str(k) {
        None | Some(Unit::None) => "-".to_owned(),
        Some(Unit::Str(s)) => s.to_string(),
        Some(u) => to_text(u),
    }
}

fn human_bytes(m: &plexus_units::Map, k: &str) -> String {
    let Some(v) = m.get_str(k).and_then(Unit::as_int).and_then(|i| i.to_i64()) else {
        return "-".to_owned();
    };
    let v = v as f64;
    if v >= 1e12 {
        format!("{:.1}T", v / 1e12)
    } else if v >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else {
        format!("{:.0}M", v / 1e6)
    }
}

/// The answer of `nodes@sys.node` as a table.
pub fn nodes_table(nodes: &Unit) -> String {
    let mut rows = vec![[
        "",
        "NAME",
        "ADDR",
        "ROLE",
        "HEALTH",
        "CORES",
        "LOAD",
        "MEM FREE",
        "DISK FREE",
        "OS/ARCH",
        "TAGS",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut any_leader = false;
    for n in nodes.as_list().unwrap_or_default() {
        let Some(m) = n.as_map() else { continue };
        let leader = matches!(m.get_str("leader"), Some(Unit::Bool(true)));
        any_leader |= leader;
        let tags = m
            .get_str("tags")
            .and_then(Unit::as_map)
            .map(|t| {
                t.iter()
                    .map(|(k, v)| match v.as_str() {
                        Some("") | None => to_text(k).trim_matches('`').to_owned(),
                        Some(v) => format!("{}={v}", k.as_str().unwrap_or("?")),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        rows.push(vec![
            if leader { "*".into() } else { String::new() },
            field(m, "name"),
            field(m, "addr"),
            field(m, "role"),
            field(m, "health"),
            field(m, "cores"),
            field(m, "load"),
            format!(
                "{}/{}",
                human_bytes(m, "mem.avail"),
                human_bytes(m, "mem.total")
            ),
            format!(
                "{}/{}",
                human_bytes(m, "disk.avail"),
                human_bytes(m, "disk.total")
            ),
            format!("{}/{}", field(m, "os"), field(m, "arch")),
            if tags.is_empty() { "-".into() } else { tags },
        ]);
    }
    let mut out = table(&rows);
    if any_leader {
        out.push_str("* leader of the cluster state\n");
    }
    out
}

/// The answer of `services@sys.node` as a table.
pub fn services_table(services: &Unit) -> String {
    let mut rows = vec![vec!["SERVICE".to_owned(), "NODES".to_owned()]];
    if let Some(m) = services.as_map() {
        for (k, v) in m.iter() {
            let nodes: Vec<String> = v
                .as_list()
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            rows.push(vec![k.as_str().unwrap_or("?").to_owned(), nodes.join(" ")]);
        }
    }
    table(&rows)
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map(|s| s.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let nodes = parse(
            "[{name:n1 addr:`127.0.0.11:7700` role:voter health:alive leader:t cores:2 \
              load:0.5 mem.avail:1000000000 mem.total:2000000000 disk.avail:5 disk.total:9 \
              os:linux arch:x86_64 tags:{camera:`` site:lab}} \
             {name:n2 role:learner health:down leader:f}]",
        )
        .unwrap();
        let t = nodes_table(&nodes);
        assert!(t.contains("*  n1"), "{t}");
        assert!(t.contains("camera,site=lab"), "{t}");
        assert!(t.contains("n2"), "{t}");
        assert!(t.contains("down"), "{t}");
        assert!(t.contains("* leader"), "{t}");
        let single =
            nodes_table(&parse("[{name:solo addr:- role:single health:alive leader:f}]").unwrap());
        assert!(single.contains("solo  -     single"), "{single}");
        assert!(!single.contains("* leader"), "{single}");
        let s = services_table(&parse("{math.calc:[n1 n2]}").unwrap());
        assert!(s.contains("math.calc  n1 n2"), "{s}");
    }
}
