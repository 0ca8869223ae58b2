//! End to end: the web desktop of real `plx` nodes, over plain HTTP and in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{free_up_port, kill9, node_pid, noise, tester_key, until, Down, Plx};
use serde_json::{json, Value};

/// What an HTTP request got back.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request to `addr` (host:port), answered in full (or, for 101, its head).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect to the desktop");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        request.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).expect("read the answer");
        assert!(n > 0, "the desktop closed the connection mid-answer");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let mut answer = Answer {
        status,
        head,
        body: String::new(),
    };
    let length: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).expect("read the body");
        assert!(n > 0, "the body ended early");
        raw.extend_from_slice(&buf[..n]);
    }
    answer.body = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
    answer
}

/// The headers of a WebSocket handshake.
const UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// The desktop address `plx up` printed (`plx: web desktop at http://ADDR/ …`).
fn desktop_of(up_stderr: &str) -> String {
    up_stderr
        .split("web desktop at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no desktop address in {up_stderr:?}"))
        .to_owned()
}

/// A login link from `plx web`, and its token.
fn login_link(plx: &Plx) -> (String, String) {
    let link = plx.run(&["web"], b"").ok().trim().to_owned();
    let token = link.split_once('#').expect("a token after #").1.to_owned();
    (link, token)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A link of the home's user for `desktop`, made `age_ms` ago.
fn link_made_ago(plx: &Plx, desktop: &str, age_ms: u64) -> String {
    let addr = desktop.parse().unwrap();
    plexus_web::login::link(
        &tester_key(plx),
        addr,
        now_ms() - age_ms,
        &mut rand_core::OsRng,
    )
}

fn login(desktop: &str, token: &str) -> Answer {
    let body = json!({ "token": token }).to_string();
    http(
        desktop,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        &body,
    )
}

#[test]
fn without_a_session_the_desktop_reveals_nothing() {
    let plx = Plx::new();
    let up = plx.run(&["up", "--detach"], b"");
    let _down = Down(&plx);
    up.ok();
    let desk = desktop_of(&up.stderr);

    // Every page, API and the WebSocket answer 401 and say nothing of the node or its user.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/assets/overview.js"),
        ("GET", "/services"),
        ("GET", "/terminal"),
        ("GET", "/processes"),
        ("GET", "/store"),
        ("GET", "/api/store"),
        ("GET", "/metrics"),
        ("GET", "/files"),
        ("GET", "/graphs"),
        ("GET", "/api/graphs"),
        ("GET", "/api/files?path=/"),
        ("GET", "/api/files/content?path=/x"),
        ("PUT", "/api/files/content?path=/x"),
        ("GET", "/api/procs"),
        ("POST", "/api/procs"),
        ("POST", "/api/procs/x/kill"),
        ("GET", "/api/procs/x/logs"),
        ("GET", "/api/services"),
        ("GET", "/api/help/math.calc"),
        ("GET", "/api/me"),
        ("GET", "/api/nodes"),
        ("POST", "/api/logout"),
        ("GET", "/nothing-here"),
        ("GET", "/assets/../../Cargo.toml"),
    ] {
        let a = http(&desk, method, path, &[], "");
        assert_eq!(a.status, 401, "{method} {path}: {}", a.head);
        assert!(!a.body.contains("tester"), "{path}: {}", a.body);
    }
    for socket in ["/api/live", "/api/term"] {
        let ws = http(&desk, "GET", socket, &UPGRADE, "");
        assert_eq!(ws.status, 401, "{socket}: {}", ws.head);
    }
    // The login page and its files are public, and hold nothing of the cluster.
    assert_eq!(http(&desk, "GET", "/login", &[], "").status, 200);
    assert_eq!(http(&desk, "GET", "/assets/login.js", &[], "").status, 200);

    // Expired links, links for another desktop and non-links are refused.
    let expired = link_made_ago(&plx, &desk, 61_000);
    let a = login(&desk, expired.split_once('#').unwrap().1);
    assert_eq!(a.status, 401);
    assert!(a.body.contains("expired"), "{}", a.body);
    let elsewhere = plexus_web::login::link(
        &tester_key(&plx),
        "127.0.0.1:1".parse().unwrap(),
        now_ms(),
        &mut rand_core::OsRng,
    );
    let a = login(&desk, elsewhere.split_once('#').unwrap().1);
    assert!(
        a.status == 401 && a.body.contains("127.0.0.1:1"),
        "{}",
        a.body
    );
    assert_eq!(login(&desk, "plx-web-AAAA").status, 401);
    let form = http(
        &desk,
        "POST",
        "/api/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "token=x",
    );
    assert_eq!(form.status, 400, "{}", form.body);

    // A link logs in once: the cookie is HttpOnly and SameSite=Strict.
    let (_, token) = login_link(&plx);
    let a = login(&desk, &token);
    assert_eq!(a.status, 200, "{}", a.body);
    let set_cookie = a.header("set-cookie").expect("a session cookie").to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let again = login(&desk, &token);
    assert_eq!(again.status, 401);
    assert!(again.body.contains("already used"), "{}", again.body);

    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with = |method: &str, path: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("Cookie", cookie.as_str())];
        headers.extend_from_slice(extra);
        http(&desk, method, path, &headers, "")
    };
    let me: Value = serde_json::from_str(&with("GET", "/api/me", &[]).body).unwrap();
    assert_eq!(me["name"], "tester");
    let csrf = me["csrf"].as_str().expect("a CSRF token").to_owned();
    let nodes: Value = serde_json::from_str(&with("GET", "/api/nodes", &[]).body).unwrap();
    assert_eq!(nodes["nodes"][0]["health"], "alive", "{nodes}");
    let metrics = with("GET", "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    for line in [
        "# TYPE plexus_process_resident_memory_bytes gauge",
        "plexus_web_logins_total{result=\"accepted\"} 1",
        "plexus_web_logins_total{result=\"refused\"} 4",
        "# TYPE plexus_service_call_seconds histogram",
        "plexus_service_call_seconds_bucket{service=\"sys.node\",le=\"+Inf\"}",
        "plexus_service_call_errors_total{service=\"sys.usr\"} 0",
    ] {
        assert!(metrics.body.contains(line), "{line} in {}", metrics.body);
    }

    // Paths outside the desktop's files are not found, however they are spelled.
    for path in [
        "/assets/../../Cargo.toml",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/assets/overview.js/..",
    ] {
        assert_eq!(with("GET", path, &[]).status, 404, "{path}");
    }
    // A WebSocket opens with the session, but not from another site's page.
    assert_eq!(with("GET", "/api/live", &UPGRADE).status, 101);
    let mut foreign = UPGRADE.to_vec();
    foreign.push(("Origin", "http://evil.example"));
    assert_eq!(with("GET", "/api/live", &foreign).status, 403);

    // Writing a file needs the CSRF token; file paths stay in the cluster's tree.
    assert_eq!(with("PUT", "/api/files/content?path=/x", &[]).status, 403);
    for path in [
        "/../../etc/passwd",
        "../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let a = with("GET", &format!("/api/files/content?path={path}"), &[]);
        assert!(
            a.status != 200 && !a.body.contains("root:"),
            "{path}: {} {}",
            a.status,
            a.body
        );
    }

    // Starting or killing a program needs the CSRF token too.
    assert_eq!(with("POST", "/api/procs", &[]).status, 403);
    assert_eq!(with("POST", "/api/procs/x/kill", &[]).status, 403);

    // Logging out needs the CSRF token; then the session is gone.
    assert_eq!(with("POST", "/api/logout", &[]).status, 403);
    assert_eq!(
        with("POST", "/api/logout", &[("X-Plexus-CSRF", "wrong")]).status,
        403
    );
    assert_eq!(
        with("POST", "/api/logout", &[("X-Plexus-CSRF", &csrf)]).status,
        204
    );
    assert_eq!(with("GET", "/api/me", &[]).status, 401);
}

#[test]
fn plx_web_opens_browser_and_says_what_is_wrong() {
    let plx = Plx::new();
    // No node, no desktop: plx web says how to get one.
    let none = plx.run(&["web"], b"").fails();
    assert!(none.contains("serves no web desktop"), "{none}");

    // A desktop's port in use stops the node at once, saying so.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = plx.home.path().join("busy");
    let busy = plx
        .run(
            &["node", "--data", data.to_str().unwrap(), "--web", &addr],
            b"",
        )
        .fails();
    assert!(busy.contains("address is in use"), "{busy}");
    drop(taken);

    // With $BROWSER set, plx web opens the link it prints.
    let up = plx.run(&["up", "--detach"], b"");
    let _down = Down(&plx);
    up.ok();
    let seen = plx.home.path().join("opened");
    let browser = plx.home.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$1\" > '{}'\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let run = plx.run_env(&["web"], b"", &[("BROWSER", browser.to_str().unwrap())]);
    let link = run.ok().trim().to_owned();
    until("the browser to be given the link", 10, || {
        std::fs::read_to_string(&seen).is_ok_and(|s| s.trim() == link)
    });
}

/// chromedriver on a free loopback port, in its own process group (with the browsers it
/// starts), killed at the end.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver, or gives why it cannot run here.
    fn start() -> Result<Driver, String> {
        let exe = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or(
                "chromedriver is not installed (Debian: apt-get install chromium-driver; \
                    scripts/test installs it)",
            )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {exe}: {e}"))?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let addr = format!("127.0.0.1:{port}");
        until("chromedriver to answer", 20, || {
            TcpStream::connect(&addr)
                .is_ok_and(|_| http(&addr, "GET", "/status", &[], "").status == 200)
        });
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        if let Some(group) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// Headless Chromium as root on a closed network: no sandbox, no GPU, and none of its
/// background traffic.
fn chromium_caps(profile: &std::path::Path) -> serde_json::Map<String, Value> {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--window-size=1280,800".to_owned(),
    ];
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut options = json!({ "args": args });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    caps
}

/// The browser console's errors since the last call (chromedriver's log endpoint).
fn console_errors(driver: &Driver, session: &str) -> Vec<String> {
    let addr = driver.url.trim_start_matches("http://");
    let a = http(
        addr,
        "POST",
        &format!("/session/{session}/se/log"),
        &[("Content-Type", "application/json")],
        r#"{"type":"browser"}"#,
    );
    assert_eq!(a.status, 200, "the browser's log: {}", a.body);
    let log: Value = serde_json::from_str(&a.body).unwrap();
    log["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A browser session of the test, with its WebDriver and where it saves screenshots.
struct Browser<'d> {
    client: fantoccini::Client,
    driver: &'d Driver,
    session: String,
}

impl Browser<'_> {
    /// Runs `script` in the page and gives its value.
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The session's `/metrics`, fetched by the page.
    async fn metrics(&self) -> String {
        let text = self
            .client
            .execute_async(
                "const done = arguments[0]; fetch('/metrics').then(r => r.text()).then(done);",
                vec![],
            )
            .await
            .unwrap();
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (30 s at most) until `script`'s value satisfies `ok`; gives it.
    async fn wait(&self, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script).await;
            if ok(&v) {
                return v;
            }
            if std::time::Instant::now() >= deadline {
                let screen = self.js(SCREEN_IF_ANY).await;
                panic!("timed out waiting for {what}: the page gives {v} (terminal: {screen})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the terminal's prompt is `prompt`.
    /// Waits until the terminal's screen contains `text`.
    async fn screen_shows(&self, what: &str, text: &str) {
        self.wait(what, SCREEN, |v| {
            v.as_str().is_some_and(|t| t.contains(text))
        })
        .await;
    }

    async fn prompt_is(&self, what: &str, prompt: &str) {
        let script = "return document.getElementById('prompt').textContent;";
        self.wait(what, script, |v| v == &json!(prompt)).await;
    }

    /// The page's status line.
    async fn status(&self) -> String {
        let v = self
            .js("return document.getElementById('status').textContent;")
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a screenshot of the page as `name`.png under the target directory.
    async fn screenshot(&self, name: &str) {
        let shot = self.client.screenshot().await.unwrap();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
        std::fs::write(&path, shot).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Asserts that the page logged no error since the last look, and that each of its
    /// visible controls has a name a screen reader can say.
    async fn page_is_clean(&self, page: &str) {
        let errors = console_errors(self.driver, &self.session);
        assert!(
            errors.is_empty(),
            "console errors on the {page}: {errors:?}"
        );
        let unnamed = self.js(UNNAMED_CONTROLS).await;
        assert_eq!(unnamed, json!([]), "controls without a name on the {page}");
    }

    /// Types `text` into the element `id` and presses Enter.
    async fn enter(&self, id: &str, text: &str) {
        self.type_into(id, &format!("{text}\u{E007}")).await;
    }

    /// Types `text` into the element `id`.
    async fn type_into(&self, id: &str, text: &str) {
        let input = self.client.find(fantoccini::Locator::Id(id)).await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Clicks the element that `css` selects, found and clicked in one step in the page:
    /// pages that redraw every second would otherwise replace it between the two.
    async fn click(&self, css: &str) {
        let script = format!(
            "const e = document.querySelector({}); if (e) e.click(); return !!e;",
            json!(css)
        );
        assert_eq!(
            self.js(&script).await,
            json!(true),
            "nothing to click at {css}"
        );
    }
}

/// The overview's rows: `[[name, health]…]`.
const ROWS: &str = "return [...document.querySelectorAll('#nodes tbody tr')]\
                    .map(r => [r.dataset.node, r.cells[1].textContent]);";
/// The page's visible controls that have no label, text or aria-label.
const UNNAMED_CONTROLS: &str =
    "return [...document.querySelectorAll('button, input, select, textarea, a[href]')]
    .filter(e => e.offsetParent !== null)
    .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                   || e.textContent.trim() || e.title))
    .map(e => e.outerHTML.slice(0, 80));";
/// The terminal's output.
const SCREEN: &str = "return document.getElementById('screen').textContent;";
/// The terminal's output, on the terminal page.
const SCREEN_IF_ANY: &str =
    "const s = document.getElementById('screen'); return s && s.textContent;";
/// Whether the cluster runs `sleep 600`, asked of the desktop's API by the page.
const PS_OF_SLEEP: &str = "const r = new XMLHttpRequest(); r.open('GET', '/api/procs', false);
    r.send(); const procs = JSON.parse(r.responseText).procs || [];
    return procs.some(p => JSON.stringify(p).includes('\"600\"')
                           && JSON.stringify(p).includes('\"running\"'));";

fn health_of<'v>(rows: &'v Value, node: &str) -> Option<&'v Value> {
    rows.as_array()?
        .iter()
        .find(|r| r[0] == node)
        .map(|r| &r[1])
}

#[test]
fn a_browser_logs_in_with_a_link_and_drives_the_desktop() {
    let driver = match Driver::start() {
        Ok(d) => d,
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("the browser tests cannot run: {why}"),
    };
    let plx = Plx::new();
    let port = free_up_port().to_string();
    let up = plx.run(&["up", "--nodes", "3", "--detach", "--port", &port], b"");
    let _down = Down(&plx);
    up.ok();
    let desk = desktop_of(&up.stderr);
    let (link, _) = login_link(&plx);
    let profile = tempfile::tempdir().unwrap();

    // Every node serves a desktop of the whole cluster: n2's, from a link for it.
    let n2_data = plx.home.path().join("cluster/n2");
    let n2_link = plx
        .run(&["web", "--data", n2_data.to_str().unwrap()], b"")
        .ok();
    let (n2_desk, n2_token) = n2_link
        .trim()
        .trim_start_matches("http://")
        .split_once("/login#")
        .expect("a login link");
    assert!(n2_desk.starts_with("127.0.0.12:"), "{n2_desk}");
    let cookie = login(n2_desk, n2_token)
        .header("set-cookie")
        .expect("a session on n2's desktop")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let seen = http(n2_desk, "GET", "/api/nodes", &[("Cookie", &cookie)], "");
    let seen: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(seen["node"], "n2", "{seen}");
    assert_eq!(seen["nodes"].as_array().map(Vec::len), Some(3), "{seen}");
    // n1's link is for n1's desktop only.
    let a = login(n2_desk, link.split_once('#').unwrap().1);
    assert!(
        a.status == 401 && a.body.contains("not this one"),
        "{}",
        a.body
    );
    plx.run(
        &[
            "send",
            "{save:{lang:rust tags:[web desk]} out:@demo.site}@io.store",
        ],
        b"",
    )
    .ok();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(chromium_caps(profile.path()))
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        let session = client.session_id().await.unwrap().expect("a session id");
        let b = Browser {
            client,
            driver: &driver,
            session,
        };

        // The link logs in and the overview shows the three nodes alive.
        b.client.goto(&link).await.unwrap();
        b.wait("three nodes alive on the overview", ROWS, |rows| {
            ["n1", "n2", "n3"]
                .iter()
                .all(|n| health_of(rows, n) == Some(&json!("alive")))
        })
        .await;
        // The session's /metrics has the cluster's figures.
        let metrics = b.metrics().await;
        for line in [
            "plexus_cluster_members{health=\"alive\"} 3",
            "plexus_raft_leader_known 1",
            "plexus_raft_voters 3",
            "# TYPE plexus_link_bytes_total counter",
            "# TYPE plexus_link_rtt_seconds gauge",
            "# TYPE plexus_programs_running gauge",
            "# TYPE plexus_pipe_backlog_bytes gauge",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
        let who = b
            .js("return document.getElementById('who').textContent;")
            .await;
        assert!(who.as_str().unwrap_or_default().contains("tester"), "{who}");
        // A few seconds of charts for the screenshot.
        b.wait(
            "five points on the charts",
            "return document.querySelector('#charts polyline').points.length;",
            |n| n.as_u64().unwrap_or(0) >= 5,
        )
        .await;
        b.screenshot("web_overview").await;
        b.page_is_clean("overview").await;
        // How soon the page answered (Navigation Timing): printed, a benchmark's figure.
        let interactive = b
            .js("return performance.getEntriesByType('navigation')[0].domInteractive;")
            .await;
        eprintln!("overview interactive after {interactive} ms");

        // On a phone-sized screen the page does not scroll sideways (wide tables scroll in
        // their own box).
        b.client.set_window_size(390, 844).await.unwrap();
        let fits = b
            .js("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        assert_eq!(fits, json!(true), "the overview is wider than a phone");
        b.screenshot("web_overview_phone").await;
        b.client.set_window_size(1280, 800).await.unwrap();

        // A killed node turns down on the page. (How fast is a benchmark's figure, not a
        // test's: the time is printed.)
        let killed = std::time::Instant::now();
        kill9(node_pid(&plx, "n3"));
        b.wait("n3 shown down after kill -9", ROWS, |rows| {
            health_of(rows, "n3") == Some(&json!("down"))
        })
        .await;
        eprintln!("n3 shown down {:?} after kill -9", killed.elapsed());
        // n1's metrics counted n3 turning down.
        let metrics = b.metrics().await;
        let downs = metrics
            .lines()
            .find_map(|l| l.strip_prefix("plexus_cluster_member_changes_total{to=\"down\"} "))
            .and_then(|n| n.parse::<f64>().ok());
        assert!(downs.is_some_and(|n| n >= 1.0), "{metrics}");

        // Services: who provides what, and a service's help as text.
        b.client
            .goto(&format!("http://{desk}/services"))
            .await
            .unwrap();
        let calc = "document.querySelector('details[data-service=\"math.calc\"]')";
        b.wait(
            "math.calc among the services",
            &format!("return !!{calc};"),
            |v| v == &json!(true),
        )
        .await;
        b.js(&format!(
            "{calc}.querySelector('summary').click(); return 0;"
        ))
        .await;
        let help = b
            .wait(
                "math.calc's help",
                &format!("return {calc}.querySelector('pre').textContent;"),
                |v| v.as_str().is_some_and(|t| t.contains("Commands:")),
            )
            .await;
        assert!(help.as_str().unwrap().starts_with("math.calc: "), "{help}");
        b.screenshot("web_services").await;
        b.page_is_clean("services page").await;

        // Store: down the tree to a unit saved from the CLI.
        b.client
            .goto(&format!("http://{desk}/store"))
            .await
            .unwrap();
        let entry = |e: &str| format!("#entries button[data-entry=\"{e}\"]");
        let has = |e: &str| format!("return !!document.querySelector('{}');", entry(e));
        b.wait("demo in the store", &has("demo"), |v| v == &json!(true))
            .await;
        b.click(&entry("demo")).await;
        b.wait("demo's entries", &has("site"), |v| v == &json!(true))
            .await;
        b.click(&entry("site")).await;
        b.wait(
            "the unit at @demo.site",
            "return document.getElementById('unit').textContent;",
            |v| v.as_str().is_some_and(|t| t.contains("lang:rust")),
        )
        .await;
        b.screenshot("web_store").await;
        b.page_is_clean("store page").await;

        // Files: edit a text file and save it; upload a file and download it byte-identical.
        let local = plx.home.path().join("notes.txt");
        std::fs::write(&local, "first draft\n").unwrap();
        plx.run(&["fs", "mkdir", "/web"], b"").ok();
        plx.run(
            &["fs", "put", local.to_str().unwrap(), "/web/notes.txt"],
            b"",
        )
        .ok();
        b.client
            .goto(&format!("http://{desk}/files"))
            .await
            .unwrap();
        let entry = |e: &str| format!("#entries tr[data-entry=\"{e}\"] button");
        let has = |e: &str| format!("return !!document.querySelector('{}');", entry(e));
        b.wait("/web in the tree", &has("web"), |v| v == &json!(true))
            .await;
        b.click(&entry("web")).await;
        b.wait("notes.txt in /web", &has("notes.txt"), |v| {
            v == &json!(true)
        })
        .await;
        b.click(&entry("notes.txt")).await;
        b.wait(
            "the text to edit",
            "return document.getElementById('text').value;",
            |v| v == &json!("first draft\n"),
        )
        .await;
        b.js("document.getElementById('text').value = 'second draft\\n'; return 0;")
            .await;
        b.click("#edit button").await;
        b.wait(
            "the save",
            "return document.getElementById('status').textContent;",
            |v| v.as_str().is_some_and(|t| t.starts_with("Saved")),
        )
        .await;
        let cat = plx.run(&["fs", "cat", "/web/notes.txt"], b"").ok();
        assert_eq!(cat, "second draft\n");
        let blob = noise(300_000, 7);
        let blob_path = plx.home.path().join("blob.bin");
        std::fs::write(&blob_path, &blob).unwrap();
        b.click("#trail button:nth-of-type(2)").await;
        b.wait("the /web directory", &has("notes.txt"), |v| {
            v == &json!(true)
        })
        .await;
        b.type_into("upload-file", blob_path.to_str().unwrap())
            .await;
        b.click("#upload button").await;
        b.wait("blob.bin uploaded", &has("blob.bin"), |v| v == &json!(true))
            .await;
        let progress = b
            .js("return document.getElementById('progress').value;")
            .await;
        assert_eq!(progress, json!(1), "the progress bar at the end");
        let downloaded = b
            .client
            .execute_async(
                "const done = arguments[0];
                 fetch('/api/files/content?path=' + encodeURIComponent('/web/blob.bin'))
                   .then(r => r.arrayBuffer())
                   .then(buf => {
                     const bytes = new Uint8Array(buf);
                     let s = '';
                     for (let i = 0; i < bytes.length; i += 8192) {
                       s += String.fromCharCode(...bytes.subarray(i, i + 8192));
                     }
                     done(btoa(s));
                   });",
                vec![],
            )
            .await
            .unwrap();
        use base64::Engine as _;
        let downloaded = base64::engine::general_purpose::STANDARD
            .decode(downloaded.as_str().unwrap())
            .unwrap();
        assert!(downloaded == blob, "the download differs from the upload");
        b.screenshot("web_files").await;
        b.page_is_clean("files page").await;

        // The terminal: a message, a prompt of io.term answered in the page, an error in
        // plain words.
        b.client
            .goto(&format!("http://{desk}/terminal"))
            .await
            .unwrap();
        b.wait(
            "the terminal to connect",
            "return document.getElementById('status').textContent;",
            |v| v.as_str().is_some_and(|t| t.starts_with("Connected")),
        )
        .await;
        b.enter("line", "(neg 5)@math.calc").await;
        b.screen_shows("-5 on the terminal", "\n-5\n").await;
        b.enter(
            "line",
            "{neg:(prs.str (inp `num: `)@io.term)@dat.proc}@math.calc",
        )
        .await;
        b.prompt_is("io.term's prompt", "num: ").await;
        b.enter("line", "41").await;
        b.screen_shows("-41 on the terminal", "num: 41\n-41\n")
            .await;
        // Help is text for people, as in the λ shell.
        b.enter("line", "help@math.calc").await;
        b.wait("math.calc's help as text", SCREEN, |v| {
            v.as_str()
                .is_some_and(|t| t.contains("\nmath.calc: ") && t.contains("Commands:"))
        })
        .await;
        // A command waiting at a prompt stops with the Stop button.
        b.enter("line", "(inp `wait: `)@io.term").await;
        b.prompt_is("the second prompt", "wait: ").await;
        b.click("#stop").await;
        b.screen_shows("the command cancelled", "error: cancelled")
            .await;
        b.enter("line", "(div (1 0))@math.calc").await;
        b.screen_shows(
            "the error on the terminal",
            "error: math.div0: division by zero",
        )
        .await;
        // The λ shell's commands: a table, a program reading what is typed, a program
        // interrupted by Stop, a pipeline across nodes, and what only plx may do.
        b.enter("line", "nodes").await;
        b.wait("the nodes table on the terminal", SCREEN, |v| {
            v.as_str().is_some_and(|t| {
                t.contains("λ nodes\n") && ["n1", "n2", "n3"].iter().all(|n| t.contains(n))
            })
        })
        .await;
        b.enter(
            "line",
            "run --on n2 -- python3 -c 'print(\"got\", input().upper(), flush=True)'",
        )
        .await;
        b.prompt_is("the program to read the terminal", "⇢").await;
        b.enter("line", "hello").await;
        b.screen_shows("the program's answer", "hello\ngot HELLO\n")
            .await;
        b.prompt_is("the program's end", "λ").await;
        b.enter("line", "run --on n2 -- sleep 600").await;
        b.prompt_is("sleep to run", "⇢").await;
        b.wait("sleep in ps", PS_OF_SLEEP, |v| v == &json!(true))
            .await;
        b.click("#stop").await;
        b.screen_shows("sleep interrupted", "exit code 130").await;
        b.enter("line", "echo plexus @n1 | tr a-z A-Z @n2").await;
        b.screen_shows("the pipeline's output", "\nPLEXUS\n").await;
        // Until it ends, what is typed is its input.
        b.prompt_is("the pipeline's end", "λ").await;
        b.enter("line", "run --copy ./x.py").await;
        b.screen_shows(
            "--copy refused",
            "error: run --copy sends a file of your machine",
        )
        .await;
        b.enter("line", "ps").await;
        b.wait("ps on the terminal", SCREEN, |v| {
            v.as_str()
                .is_some_and(|t| t.contains("λ ps\nID") && t.contains("sleep 600"))
        })
        .await;
        // The file commands, from a working directory of the page's own.
        b.enter("line", "cd /web").await;
        b.prompt_is("cd to end", "λ").await;
        b.enter("line", "mkdir made").await;
        b.prompt_is("mkdir to end", "λ").await;
        b.enter("line", "ls").await;
        b.wait("ls of /web", SCREEN, |v| {
            v.as_str().is_some_and(|t| {
                t.rsplit("λ ls\n")
                    .next()
                    .is_some_and(|l| l.contains("notes.txt") && l.contains("made/"))
            })
        })
        .await;
        b.enter("line", "cat notes.txt").await;
        b.screen_shows("cat of the edited file", "λ cat notes.txt\nsecond draft\n")
            .await;
        b.enter("line", "cd made").await;
        b.prompt_is("cd to end", "λ").await;
        b.enter("line", "pwd").await;
        b.screen_shows("pwd", "λ pwd\n/web/made\n").await;
        b.enter("line", "cd ../notes.txt").await;
        b.screen_shows(
            "cd to a file refused",
            "error: cd: /web/notes.txt is not a directory",
        )
        .await;
        b.screenshot("web_terminal").await;
        b.page_is_clean("terminal page").await;
        // What was typed is kept: after a reload, ↑ gives the last command.
        b.client.refresh().await.unwrap();
        b.wait(
            "the terminal to connect again",
            "return document.getElementById('status').textContent;",
            |v| v.as_str().is_some_and(|t| t.starts_with("Connected")),
        )
        .await;
        b.type_into("line", "\u{E013}").await;
        b.wait(
            "the last command back",
            "return document.getElementById('line').value;",
            |v| v == &json!("cd ../notes.txt"),
        )
        .await;

        // Processes: explain a placement, start a program, see its output, kill it.
        b.client
            .goto(&format!("http://{desk}/processes"))
            .await
            .unwrap();
        b.wait(
            "the nodes in the placement form",
            "return document.getElementById('on').options.length;",
            |n| n.as_u64().unwrap_or(0) >= 3,
        )
        .await;
        b.type_into("command", "sh -c \"echo hello-web; sleep 300\"")
            .await;
        b.click("#explain").await;
        let placement = "return document.getElementById('placement').textContent;";
        b.wait("the placement's explanation", placement, |v| {
            v.as_str().is_some_and(|t| t.contains("placed on"))
        })
        .await;
        b.click("#run").await;
        let started = b
            .wait("the program to start", placement, |v| {
                v.as_str().is_some_and(|t| t.starts_with("Started "))
            })
            .await;
        let id = started.as_str().unwrap()["Started ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let row = format!("document.querySelector('tr[data-proc=\"{id}\"]')");
        b.wait(
            "the program running in the table",
            &format!("return {row} && {row}.querySelector('.state').textContent;"),
            |v| v == &json!("running"),
        )
        .await;
        b.wait(
            "the program's output",
            "return document.getElementById('stdout').textContent;",
            |v| v.as_str().is_some_and(|t| t.contains("hello-web")),
        )
        .await;
        b.screenshot("web_processes").await;
        b.click(&format!(
            "tr[data-proc=\"{id}\"] button[aria-label=\"Kill {id}\"]"
        ))
        .await;
        b.wait(
            "the program killed",
            &format!("return {row}.querySelector('.state').textContent;"),
            |v| v.as_str().is_some_and(|t| !t.starts_with("running")),
        )
        .await;
        b.page_is_clean("processes page").await;

        // Graphs: a two-stage graph across nodes, drawn with its pipe's figures.
        plx.run(
            &[
                "send",
                "{graph:{procs:[{run:[sh -c `while true; do echo tick; sleep 0.1; done`] \
                 stage:src} {run:[cat] stage:sink}] pipes:[{from:src to:sink}]}}@sys.proc",
            ],
            b"",
        )
        .ok();
        b.client
            .goto(&format!("http://{desk}/graphs"))
            .await
            .unwrap();
        b.wait(
            "the graph's pipe open and carrying records",
            "const row = [...document.querySelectorAll('table.pipes tbody tr')]
                 .find(r => r.cells[1].textContent.startsWith('src'));
             const graph = row && row.closest('figure.graph');
             return row && [row.cells[6].textContent, row.cells[1].textContent,
                            graph.querySelectorAll('g.proc').length];",
            |v| v[0] == "open" && v[1].as_str().is_some_and(|t| t.starts_with("src")) && v[2] == 2,
        )
        .await;
        b.screenshot("web_graphs").await;
        b.page_is_clean("graphs page").await;

        // Log out with the button: the session is gone for the page too.
        b.click("#logout").await;
        b.wait("the login notice", "return document.title;", |t| {
            t == &json!("Plexus: not logged in")
        })
        .await;
        let me = b
            .client
            .execute_async(
                "const done = arguments[0]; fetch('/api/me').then(r => done(r.status));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(me, json!(401), "still logged in after logging out");

        // The same link again, and an expired one, are refused in plain words.
        for (link, words) in [
            (link.clone(), "already used"),
            (link_made_ago(&plx, &desk, 61_000), "expired"),
        ] {
            b.client.goto(&link).await.unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let said = b.status().await;
                if said.contains(words) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the login page says {said:?}, not {words:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        b.client.close().await.unwrap();
    });
}
