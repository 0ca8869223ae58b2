//! The HTTP side: one route table, the session behind each request, and calls to the
//! node's kernel as the session's user.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plexus_identity::PublicKey;
use plexus_kernel::Kernel;
use plexus_units::code;
use plexus_units::{Map, Unit};
use rand_core::OsRng;
use serde_json::{json, Value};

use crate::assets;
use crate::login::Logins;
use crate::metrics::{self, Family, Kind, Sample};
use crate::session::{Session, Sessions, SESSION_MS};
use crate::{Error, CSRF_HEADER};

/// How long one call to the cluster may take before the page is told it did not answer.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// How often the live view is pushed.
const LIVE_EVERY: Duration = Duration::from_secs(1);
/// How often the live overview looks for a change of a node's health or role, which it
/// sends at once: a node marked down shows within this of its detection.
const HEALTH_EVERY: Duration = Duration::from_millis(100);
/// Scripts, styles and connections from this origin only; no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const NOT_SIGNED_IN: &str = "not logged in: open a link from `plx web`";

/// One node's desktop.
struct Desk {
    kernel: Kernel,
    logins: Mutex<Logins>,
    sessions: Mutex<Sessions>,
    /// The session cookie's name: it carries the port, since browsers share cookies between
    /// the ports of one host.
    cookie: String,
    /// The node's own figures for `/metrics`.
    figures: metrics::Source,
    /// The λ shell's commands, for the terminal page.
    commands: crate::term::Commands,
    logins_accepted: AtomicU64,
    logins_refused: AtomicU64,
}

type Shared = Arc<Desk>;

/// A request's session, or 401 for a request without one: every route but the login
/// page's takes it.
struct SignedIn(Session);

impl axum::extract::FromRequestParts<Shared> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        desk: &Shared,
    ) -> Result<SignedIn, Response> {
        desk.session(&parts.headers)
            .map(|(_, session)| SignedIn(session))
            .ok_or_else(|| refused(StatusCode::UNAUTHORIZED, NOT_SIGNED_IN))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Serves the desktop on `listener` with the node's `kernel` until `shutdown` resolves; its
/// `/metrics` gives `figures` (and the desktop's own) to a session, and to anyone on
/// `open_metrics` when given. Its terminal page runs the λ shell's `commands`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    kernel: Kernel,
    figures: metrics::Source,
    commands: crate::term::Commands,
    open_metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr: SocketAddr = listener.local_addr()?;
    let desk = Arc::new(Desk {
        kernel,
        logins: Mutex::new(Logins::new(&addr.to_string())),
        sessions: Mutex::default(),
        cookie: format!("plx_session_{}", addr.port()),
        figures,
        commands,
        logins_accepted: AtomicU64::new(0),
        logins_refused: AtomicU64::new(0),
    });
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let until = |mut stopping: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let open = open_metrics.map(|listener| {
        let router = Router::new()
            .route("/metrics", get(open_metrics_page))
            .layer(axum::middleware::map_response(guard_headers))
            .with_state(desk.clone());
        let served = axum::serve(listener, router).with_graceful_shutdown(until(stopping.clone()));
        tokio::spawn(async move { served.await })
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    axum::serve(listener, routes(desk))
        .with_graceful_shutdown(until(stopping))
        .await?;
    if let Some(open) = open {
        if let Ok(served) = open.await {
            served?;
        }
    }
    Ok(())
}

/// Every route; any other path is a file of [`assets::ASSETS`] or nothing.
fn routes(desk: Shared) -> Router {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/nodes", get(nodes))
        .route("/api/live", get(live))
        .route("/api/services", get(services))
        .route("/api/help/{service}", get(help))
        .route("/api/term", get(term))
        .route("/api/store", get(store))
        .route("/api/procs", get(procs).post(start))
        .route("/api/procs/{id}/kill", post(kill))
        .route("/api/procs/{id}/logs", get(logs))
        .route("/api/graphs", get(graphs))
        .route("/api/files", get(files_list))
        .route(
            "/api/files/content",
            get(files_read)
                .put(files_write)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::files::UPLOAD_MOST,
                )),
        )
        .route("/metrics", get(metrics_page))
        .fallback(asset)
        .layer(axum::middleware::map_response(guard_headers))
        .with_state(desk)
}

async fn guard_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A unit as JSON, by the units JSON bridge (`docs/units-json.md`).
fn json_of(u: &Unit) -> Value {
    serde_json::from_str(&plexus_units::json::to_json(u)).unwrap_or(Value::Null)
}

/// A refusal in plain words, as JSON.
fn refused(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

fn error_response(e: &Error) -> Response {
    let status = match e {
        Error::NotAToken
        | Error::Damaged(_)
        | Error::Version(_)
        | Error::WrongDesktop(_)
        | Error::BadSignature
        | Error::Expired
        | Error::Used => StatusCode::UNAUTHORIZED,
        Error::NotAUser => StatusCode::FORBIDDEN,
        Error::TooManyLogins => StatusCode::TOO_MANY_REQUESTS,
        Error::Timeout => StatusCode::GATEWAY_TIMEOUT,
        Error::Cluster {
            code: Some(code), ..
        } => status_of(code),
        Error::Cluster { code: None, .. } => StatusCode::BAD_GATEWAY,
        Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match e {
        Error::Cluster {
            code: Some(code), ..
        } => (
            status,
            Json(json!({ "error": e.to_string(), "code": code })),
        )
            .into_response(),
        _ => refused(status, &e.to_string()),
    }
}

/// The HTTP status of a refusal with the cluster's error code `refusal`: what the browser's user
/// got wrong (400, 403, 404, 409), what the cluster cannot do now (503, 504), or the
/// cluster's failure (502).
fn status_of(refusal: &str) -> StatusCode {
    match refusal {
        code::BAD_ARGUMENT | code::UNKNOWN_COMMAND => StatusCode::BAD_REQUEST,
        code::DENIED => StatusCode::FORBIDDEN,
        code::NOT_FOUND | code::UNKNOWN_NODE | code::UNKNOWN_SERVICE => StatusCode::NOT_FOUND,
        // A file replaced while it was read (io.fs's `fs.changed`), or no room for it.
        code::LIMIT | "fs.changed" => StatusCode::CONFLICT,
        code::NODE_DOWN | code::NO_QUORUM | code::NO_CLUSTER | "fs.unavailable" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        code::TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The value of cookie `name`.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request comes from a page of another origin (browsers send `Origin` with
/// POSTs and WebSocket handshakes).
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    origin != format!("http://{host}") && origin != format!("https://{host}")
}

impl Desk {
    /// The request's session and its id.
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, &self.cookie)?;
        let session = lock(&self.sessions).get(id, now_ms())?;
        Some((id.to_owned(), session))
    }

    /// The session of a request that changes state: it must carry the session's CSRF token
    /// and come from this origin.
    fn changing(&self, headers: &HeaderMap) -> Result<(String, Session), Response> {
        let (id, session) = self
            .session(headers)
            .ok_or_else(|| refused(StatusCode::UNAUTHORIZED, NOT_SIGNED_IN))?;
        let token = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if cross_origin(headers) || !session.csrf_matches(token) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "refused: the request did not come from this desktop's page",
            ));
        }
        Ok((id, session))
    }

    /// The session of a WebSocket: a browser sends no CSRF header with one, so it must come
    /// from this origin.
    fn socket(&self, headers: &HeaderMap) -> Result<(String, Session), Response> {
        let (id, session) = self
            .session(headers)
            .ok_or_else(|| refused(StatusCode::UNAUTHORIZED, NOT_SIGNED_IN))?;
        if cross_origin(headers) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "refused: a connection from another site",
            ));
        }
        Ok((id, session))
    }

    /// Sends `msg` to `service` through the node's kernel as `user`: the same evaluation and
    /// policies as a message the user signed and sent from the CLI (the node vouches for the
    /// session, as it does for its own programs).
    async fn call(&self, user: PublicKey, service: &str, msg: Unit) -> Result<Unit, Error> {
        let cx = self.kernel.context(user, [0; 32], None, 0);
        match tokio::time::timeout(CALL_DEADLINE, cx.send(service, None, msg)).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(e)) => Err(Error::Cluster {
                code: Some(e.code().to_owned()),
                message: e.message().to_owned(),
            }),
            Ok(Ok(v)) => Ok(v.unwrap_or(Unit::None)),
        }
    }

    /// The registered name of `user`.
    async fn user_name(&self, user: PublicKey) -> Result<String, Error> {
        let who = self.call(user, "sys.usr", Unit::str("who")).await?;
        who.as_map()
            .and_then(|m| m.get_str("ath"))
            .and_then(Unit::as_str)
            .map(str::to_owned)
            .ok_or(Error::NotAUser)
    }

    /// The name of this node.
    async fn node_name(&self, user: PublicKey) -> Result<String, Error> {
        let me = self.call(user, "sys.node", Unit::str("me")).await?;
        Ok(me.as_str().unwrap_or_default().to_owned())
    }

    /// The overview as the page shows it: `{node nodes}`, or `{error}` in plain words.
    async fn overview(&self, user: PublicKey) -> Value {
        let got = async {
            let node = self.node_name(user).await?;
            let nodes = self.call(user, "sys.node", Unit::str("nodes")).await?;
            Ok::<_, Error>((node, nodes))
        };
        match got.await {
            Ok((node, nodes)) => json!({ "node": node, "nodes": json_of(&nodes) }),
            Err(e) => json!({ "error": e.to_string() }),
        }
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /api/login {token}`: a token from `plx web` opens a session. The body must be JSON,
/// which a page of another origin cannot send without the browser asking this server first.
async fn login(
    State(desk): State<Shared>,
    headers: HeaderMap,
    form: Result<Json<LoginForm>, JsonRejection>,
) -> Response {
    if cross_origin(&headers) {
        return refused(StatusCode::FORBIDDEN, "refused: a login from another site");
    }
    let Ok(Json(form)) = form else {
        return refused(
            StatusCode::BAD_REQUEST,
            "a login is a JSON body {\"token\": …}",
        );
    };
    let accepted = lock(&desk.logins).accept(&form.token, now_ms());
    let refuse = |e: &Error| {
        desk.logins_refused.fetch_add(1, Ordering::Relaxed);
        error_response(e)
    };
    let user = match accepted {
        Ok(user) => user,
        Err(e) => return refuse(&e),
    };
    let name = match desk.user_name(user).await {
        Ok(name) => name,
        Err(e) => return refuse(&e),
    };
    desk.logins_accepted.fetch_add(1, Ordering::Relaxed);
    let (id, _) = lock(&desk.sessions).open(user, &name, now_ms(), &mut OsRng);
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        desk.cookie,
        SESSION_MS / 1000
    );
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "name": name })),
    )
        .into_response()
}

/// `POST /api/logout`: ends the session (and its live views).
async fn logout(State(desk): State<Shared>, headers: HeaderMap) -> Response {
    let (id, _) = match desk.changing(&headers) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    lock(&desk.sessions).close(&id);
    let cookie = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        desk.cookie
    );
    ([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response()
}

/// `GET /api/me`: who the session acts as, on which node, and its CSRF token.
async fn me(State(desk): State<Shared>, SignedIn(session): SignedIn) -> Response {
    match desk.node_name(session.user).await {
        Ok(node) => Json(json!({
            "name": session.name,
            "key": session.user.to_string(),
            "node": node,
            "csrf": session.csrf,
        }))
        .into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /api/nodes`: the overview once.
async fn nodes(State(desk): State<Shared>, SignedIn(session): SignedIn) -> Response {
    let view = desk.overview(session.user).await;
    let status = if view.get("error").is_some() {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    (status, Json(view)).into_response()
}

/// Each node's name, health, role and whether it leads, in an overview: what the page must
/// show as soon as it changes (the figures can wait for the next second).
fn standing(view: &Value) -> Vec<[&Value; 4]> {
    view["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| [&n["name"], &n["health"], &n["role"], &n["leader"]])
        .collect()
}

/// `GET /api/live`: a WebSocket carrying the overview every second, and at once when a node's
/// standing changes.
async fn live(
    State(desk): State<Shared>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (id, session) = match desk.socket(&headers) {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    match upgrade {
        Ok(ws) => ws.on_upgrade(move |socket| feed(desk, id, session.user, socket)),
        Err(rejection) => rejection.into_response(),
    }
}

/// Pushes the overview every second, and at once when a node's health or role changes,
/// until the browser leaves or the session ends.
async fn feed(desk: Shared, id: String, user: PublicKey, mut socket: WebSocket) {
    let mut look = tokio::time::interval(HEALTH_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent: Option<(Instant, Value)> = None;
    loop {
        tokio::select! {
            _ = look.tick() => {
                if lock(&desk.sessions).get(&id, now_ms()).is_none() {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                let view = desk.overview(user).await;
                let due = sent.as_ref().is_none_or(|(at, last)| {
                    at.elapsed() >= LIVE_EVERY || standing(last) != standing(&view)
                });
                if !due {
                    continue;
                }
                if socket.send(Message::Text(view.to_string().into())).await.is_err() {
                    return;
                }
                sent = Some((Instant::now(), view));
            }
            got = socket.recv() => match got {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `GET /api/services`: which nodes provide each service, `{"services": {NAME: [NODE…]}}`.
async fn services(State(desk): State<Shared>, SignedIn(session): SignedIn) -> Response {
    match desk
        .call(session.user, "sys.node", Unit::str("services"))
        .await
    {
        Ok(map) => Json(json!({ "services": json_of(&map) })).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /api/help/SERVICE`: the service's help as text for people, `{"service", "text"}`.
async fn help(
    State(desk): State<Shared>,
    SignedIn(session): SignedIn,
    Path(service): Path<String>,
) -> Response {
    match desk.call(session.user, &service, Unit::str("help")).await {
        Ok(help) => {
            let text = plexus_kernel::help_text(&help)
                .unwrap_or_else(|| plexus_units::to_pretty(&help, 2));
            Json(json!({ "service": service, "text": text })).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `GET /api/term`: the terminal page's WebSocket (`term`).
async fn term(
    State(desk): State<Shared>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (id, session) = match desk.socket(&headers) {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    match upgrade {
        Ok(ws) => ws.on_upgrade(move |socket| {
            let kernel = desk.kernel.clone();
            let commands = desk.commands.clone();
            let alive = move || lock(&desk.sessions).get(&id, now_ms()).is_some();
            crate::term::serve(kernel, session.user, commands, alive, socket)
        }),
        Err(rejection) => rejection.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct StoreQuery {
    /// The path's segments, as a JSON array of strings; the whole store without it.
    at: Option<String>,
}

/// Most characters of a unit's text the store page is sent.
const STORE_TEXT: usize = 64 * 1024;
/// Most entries of a map or list the store page lists.
const STORE_ENTRIES: usize = 1000;

/// `GET /api/store?at=["a","b"]`: the unit at a path of `io.store` (the whole store without
/// one), as the user may see it: `{"kind", "entries", "text", "cut", "size"}`, `entries`
/// being the keys or indexes to go further down, `text` the unit in text notation (`cut` when
/// shortened), `size` its bytes in the store's encoding.
async fn store(
    State(desk): State<Shared>,
    SignedIn(session): SignedIn,
    query: Result<Query<StoreQuery>, QueryRejection>,
) -> Response {
    let at: Option<Vec<String>> = match query {
        Ok(Query(StoreQuery { at: None })) => Some(Vec::new()),
        Ok(Query(StoreQuery { at: Some(at) })) => serde_json::from_str(&at).ok(),
        Err(_) => None,
    };
    let Some(at) = at else {
        return refused(StatusCode::BAD_REQUEST, "a path is a JSON array of strings");
    };
    let path = plexus_units::Path::new(at.iter().map(|s| s.as_str().into()).collect());
    let ask = |command: &str| match &path {
        None => Unit::str(command),
        Some(p) => Unit::pair(Unit::str(command), Unit::Ref(p.clone())),
    };
    let unit = match desk.call(session.user, "io.store", ask("load")).await {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    let size = desk
        .call(session.user, "io.store", ask("get.size"))
        .await
        .map(|s| json_of(&s))
        .unwrap_or(Value::Null);
    let entries: Vec<String> = match &unit {
        Unit::Map(m) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .take(STORE_ENTRIES)
            .collect(),
        Unit::List(l) => (0..l.len().min(STORE_ENTRIES))
            .map(|i| i.to_string())
            .collect(),
        _ => Vec::new(),
    };
    let mut text = plexus_units::to_pretty(&unit, 2);
    let cut = text.len() > STORE_TEXT;
    if cut {
        let mut end = STORE_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Json(json!({
        "kind": unit.kind().name(),
        "entries": entries,
        "text": text,
        "cut": cut,
        "size": size,
    }))
    .into_response()
}

/// `GET /api/procs`: the cluster's process table (`ps@sys.proc`), `{"procs": […]}`.
async fn procs(State(desk): State<Shared>, SignedIn(session): SignedIn) -> Response {
    match desk.call(session.user, "sys.proc", Unit::str("ps")).await {
        Ok(list) => Json(json!({ "procs": json_of(&list) })).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /api/graphs`: every running graph with its processes and its pipes' figures
/// (`graphs@sys.proc`), `{"graphs": […]}`.
async fn graphs(State(desk): State<Shared>, SignedIn(session): SignedIn) -> Response {
    match desk
        .call(session.user, "sys.proc", Unit::str("graphs"))
        .await
    {
        Ok(list) => Json(json!({ "graphs": json_of(&list) })).into_response(),
        Err(e) => error_response(&e),
    }
}

#[derive(serde::Deserialize)]
struct StartForm {
    /// The program and its arguments.
    command: Vec<String>,
    /// The node to run on; the scheduler chooses without it.
    on: Option<String>,
    /// Tag expressions the node must hold.
    #[serde(default)]
    tags: Vec<String>,
    /// Only explain where it would run.
    #[serde(default)]
    dry: bool,
}

/// `POST /api/procs {command on tags dry}`: starts a program (`{run:…}@sys.proc`), or with
/// `dry` says where it would run and why; gives sys.proc's answer.
async fn start(
    State(desk): State<Shared>,
    headers: HeaderMap,
    form: Result<Json<StartForm>, JsonRejection>,
) -> Response {
    let (_, session) = match desk.changing(&headers) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    let Ok(Json(form)) = form else {
        return refused(
            StatusCode::BAD_REQUEST,
            "a start is a JSON body {\"command\": [program, argument…]}",
        );
    };
    if form.command.is_empty() {
        return refused(StatusCode::BAD_REQUEST, "the command is empty");
    }
    let strs = |v: &[String]| Unit::List(v.iter().map(|s| Unit::str(s)).collect());
    let mut run = Map::new();
    run.insert(Unit::str("run"), strs(&form.command));
    if let Some(node) = form.on.filter(|n| !n.is_empty()) {
        run.insert(Unit::str("on"), Unit::str(&node));
    }
    if !form.tags.is_empty() {
        run.insert(Unit::str("tag"), strs(&form.tags));
    }
    if form.dry {
        run.insert(Unit::str("dry"), Unit::Bool(true));
    }
    match desk.call(session.user, "sys.proc", Unit::Map(run)).await {
        Ok(answer) => Json(json_of(&answer)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `POST /api/procs/ID/kill`: signals the process (`{kill:ID}@sys.proc`).
async fn kill(State(desk): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, session) = match desk.changing(&headers) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    let mut kill = Map::new();
    kill.insert(Unit::str("kill"), Unit::str(&id));
    match desk.call(session.user, "sys.proc", Unit::Map(kill)).await {
        Ok(answer) => Json(json_of(&answer)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// Lines of a process's output the logs view shows.
const LOG_LINES: i64 = 200;

/// `GET /api/procs/ID/logs`: the last lines of the process's output, `{"stdout", "stderr"}`.
async fn logs(
    State(desk): State<Shared>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let mut out = serde_json::Map::new();
    for stream in ["stdout", "stderr"] {
        let mut ask = Map::new();
        ask.insert(Unit::str("logs"), Unit::str(&id));
        ask.insert(Unit::str("tail"), Unit::int(LOG_LINES));
        ask.insert(Unit::str("stream"), Unit::str(stream));
        match desk.call(session.user, "sys.proc", Unit::Map(ask)).await {
            Ok(Unit::Bytes(b)) => {
                out.insert(stream.into(), String::from_utf8_lossy(&b).into());
            }
            Ok(other) => {
                out.insert(stream.into(), plexus_units::to_text(&other).into());
            }
            Err(e) => return error_response(&e),
        }
    }
    Json(Value::Object(out)).into_response()
}

#[derive(serde::Deserialize)]
struct FileQuery {
    /// A path of the cluster's file tree.
    path: String,
    /// Show the file in the browser instead of downloading it.
    #[serde(default)]
    view: bool,
}

fn bad_path() -> Response {
    refused(StatusCode::BAD_REQUEST, "give the file's path: ?path=/a/b")
}

/// `GET /api/files?path=P`: the entry at P and, for a directory, its entries:
/// `{"stat": {…}, "entries": […]}` (`io.fs`'s `stat` and `ls`).
async fn files_list(
    State(desk): State<Shared>,
    SignedIn(session): SignedIn,
    query: Result<Query<FileQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return bad_path();
    };
    match crate::files::list(&desk.kernel, session.user, &q.path).await {
        Ok(u) => Json(json_of(&u)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /api/files/content?path=P[&view=true]`: the file's bytes, streamed.
async fn files_read(
    State(desk): State<Shared>,
    SignedIn(session): SignedIn,
    query: Result<Query<FileQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return bad_path();
    };
    match crate::files::read(desk.kernel.clone(), session.user, q.path, q.view).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

/// `PUT /api/files/content?path=P` with the bytes: writes the file (an upload, or a text
/// edited and saved); `{path size chunks}`.
async fn files_write(
    State(desk): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<FileQuery>, QueryRejection>,
    body: axum::body::Bytes,
) -> Response {
    let (_, session) = match desk.changing(&headers) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    let Ok(Query(q)) = query else {
        return bad_path();
    };
    match crate::files::write(&desk.kernel, session.user, &q.path, body).await {
        Ok(u) => Json(json_of(&u)).into_response(),
        Err(e) => error_response(&e),
    }
}

impl Desk {
    /// The node's figures and the desktop's own, as Prometheus text.
    fn metrics_text(&self) -> Response {
        let mut families = (self.figures)();
        let sessions = lock(&self.sessions).len();
        families.push(Family::one(
            "plexus_web_sessions",
            "Browser sessions the desktop keeps (some may have expired).",
            Kind::Gauge,
            sessions as f64,
        ));
        families.push(Family {
            name: "plexus_web_logins_total",
            help: "Logins with a link from plx web, by result.",
            kind: Kind::Counter,
            samples: vec![
                Sample::new(
                    vec![("result", "accepted".into())],
                    self.logins_accepted.load(Ordering::Relaxed) as f64,
                ),
                Sample::new(
                    vec![("result", "refused".into())],
                    self.logins_refused.load(Ordering::Relaxed) as f64,
                ),
            ],
        });
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics::render(&families),
        )
            .into_response()
    }
}

/// `GET /metrics` on the desktop: the node's figures, to a session.
async fn metrics_page(State(desk): State<Shared>, _: SignedIn) -> Response {
    desk.metrics_text()
}

/// `GET /metrics` on the address of `plx node --metrics`: the node's figures, to anyone who
/// reaches it.
async fn open_metrics_page(State(desk): State<Shared>) -> Response {
    desk.metrics_text()
}

/// Any other path: a file of the desktop, to a session (the login page's files to anyone).
async fn asset(
    State(desk): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let signed_in = desk.session(&headers).is_some();
    let found = assets::find(uri.path()).filter(|a| a.public || signed_in);
    match found {
        Some(_) if method != Method::GET && method != Method::HEAD => {
            StatusCode::METHOD_NOT_ALLOWED.into_response()
        }
        Some(a) => ([(header::CONTENT_TYPE, a.mime)], a.body).into_response(),
        None if signed_in => refused(StatusCode::NOT_FOUND, "no such page"),
        None if uri.path() == "/" => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            assets::NOTICE,
        )
            .into_response(),
        None => refused(StatusCode::UNAUTHORIZED, NOT_SIGNED_IN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_cluster_answer_with_the_status_their_code_calls_for() {
        let refused = |code: &str| Error::Cluster {
            code: Some(code.to_owned()),
            message: "no".into(),
        };
        for (code, status) in [
            (code::BAD_ARGUMENT, 400),
            (code::DENIED, 403),
            (code::NOT_FOUND, 404),
            (code::UNKNOWN_SERVICE, 404),
            (code::LIMIT, 409),
            ("fs.changed", 409),
            (code::NODE_DOWN, 503),
            (code::NO_QUORUM, 503),
            (code::TIMEOUT, 504),
            (code::INTERNAL, 502),
            ("some.new.code", 502),
        ] {
            assert_eq!(error_response(&refused(code)).status(), status, "{code}");
        }
        assert_eq!(error_response(&Error::cluster("broke")).status(), 502);
        assert_eq!(error_response(&Error::Used).status(), 401);
    }
}
