//! `plx web` and the node's side of `plx node --web`: the web desktop's address and login
//! links.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use clap::Args;

use crate::cmd_node::default_data_dir;
use crate::home::Home;

/// The file in a node's data directory that holds its desktop's address while it serves one.
pub const WEB_ADDR_FILE: &str = "web.addr";

/// The desktop's port `plx up` uses unless told otherwise.
pub const DEFAULT_WEB_PORT: u16 = 7780;

/// Options of `plx web`.
#[derive(Args, Debug)]
pub struct WebArgs {
    /// Data directory of the node whose desktop to log in to [default: $PLX_HOME/node].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log in as this user instead of the current one.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// Binds the desktop's address, before the node starts, so that a taken port stops the
/// node with a clear reason.
pub fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            "the address is in use (another node's desktop?); choose another with --web \
             HOST:PORT, or `plx up --web-port PORT` / `--no-web`"
                .to_owned()
        } else {
            e.to_string()
        };
        anyhow!("cannot serve the web desktop on {addr}: {why}")
    })?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(listener)?)
}

/// Records where the node's desktop listens, for `plx web` and `plx up`.
pub fn record(data: &Path, addr: SocketAddr) -> Result<()> {
    let path = data.join(WEB_ADDR_FILE);
    std::fs::write(&path, format!("{addr}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where the desktop of the node with data directory `data` listens, if it serves one.
pub fn recorded(data: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(data.join(WEB_ADDR_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The address people open.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{}/", plexus_web::login::reachable(addr))
}

/// `plx web`: prints a one-time login link to the local node's desktop, and opens it in
/// `$BROWSER` when that is set.
pub fn run_web(home: &Home, args: WebArgs) -> Result<()> {
    let data = args.data.unwrap_or_else(|| default_data_dir(home));
    let addr = recorded(&data).ok_or_else(|| {
        anyhow!(
            "the node of {} serves no web desktop: start it with `plx up`, or `plx node --web \
             127.0.0.1:{DEFAULT_WEB_PORT}`",
            data.display()
        )
    })?;
    let reach = plexus_web::login::reachable(addr);
    std::net::TcpStream::connect_timeout(&reach, Duration::from_secs(2)).map_err(|e| {
        anyhow!(
            "no web desktop answers at {addr} ({e}); is the node of {} running?",
            data.display()
        )
    })?;
    let name = home.acting_user(args.user.as_deref())?;
    let key = home.unlock(&name)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let link = plexus_web::login::link(&key, addr, now_ms, &mut rand_core::OsRng);
    println!("{link}");
    eprintln!("plx: this link logs {name} in once, within 60 s");
    if let Some(browser) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
        let opened = std::process::Command::new(&browser)
            .arg(&link)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = opened {
            eprintln!("plx: cannot open {}: {e}", browser.to_string_lossy());
        }
    }
    Ok(())
}
