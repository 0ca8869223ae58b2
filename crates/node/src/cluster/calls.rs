//! Service calls across nodes: the kernel's [`Remote`] router, serving calls that other nodes
//! route here, and the terminal of a remote call's session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use plexus_cluster::membership::Health;
use plexus_identity::{KeyCache, PublicKey};
use plexus_kernel::{
    code, BoxFuture, Cx, Error, Evaluation, Kernel, NodeRef, Outcome, Remote, Terminal,
};
use plexus_net::{Mesh, MeshError, OutFrame, Transport};
use plexus_protocol::{CallResult, TermRequest, TermResponse};
use plexus_units::Unit;

use super::view::View;
use super::wire::{self, CallRequest, TermCall};

/// Longest a routed call may take. Calls to a node that dies fail as soon as its link closes
/// or membership marks it down, long before this.
pub const CALL_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// How long a call keeps trying to reach a node that membership says is alive while this
/// node cannot dial it (its link is in reconnect backoff, or the dial was refused): a node
/// that started moments ago, or that this node dialed while it was restarting. Longer than the
/// mesh's longest backoff (2 s), so one fresh dial is always tried. A node that is really gone
/// is marked down by membership within its detection time, which ends the call sooner.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(3);

/// Pause between two such tries. Within a backoff a try costs a table lookup, not a dial.
const UNREACHABLE_RETRY: Duration = Duration::from_millis(10);

/// Longest a terminal request from a remote call may wait (a prompt waits for a person).
pub const TERM_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// Terminals of sessions whose calls run on other nodes, by session id.
#[derive(Default)]
pub struct Sessions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<dyn Terminal>>>,
}

impl Sessions {
    fn open(self: &Arc<Self>, terminal: Arc<dyn Terminal>) -> SessionGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, terminal);
        }
        SessionGuard {
            sessions: self.clone(),
            id,
        }
    }

    fn get(&self, id: u64) -> Option<Arc<dyn Terminal>> {
        self.open.lock().ok().and_then(|o| o.get(&id).cloned())
    }
}

struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Ok(mut open) = self.sessions.open.lock() {
            open.remove(&self.id);
        }
    }
}

/// Routes streams to other nodes.
pub struct Router<T: Transport> {
    pub(crate) view: Arc<View>,
    pub(crate) mesh: Mesh<T>,
    pub(crate) sessions: Arc<Sessions>,
}

fn node_ref(m: &super::view::Member) -> NodeRef {
    NodeRef {
        id: m.id.clone(),
        name: m.name.clone(),
    }
}

impl<T: Transport> Remote for Router<T> {
    fn route(
        &self,
        service: &str,
        node: Option<&str>,
        local: bool,
    ) -> Result<Option<NodeRef>, Error> {
        if let Some(name) = node {
            let Some(m) = self.view.find(name) else {
                let names: Vec<String> = self.view.roster().into_iter().map(|m| m.name).collect();
                return Err(Error::new(
                    code::UNKNOWN_NODE,
                    format!(
                        "no node named {name} in this cluster (nodes: {})",
                        names.join(", ")
                    ),
                )
                .with("node", name));
            };
            if m.key == *self.view.me() {
                return Ok(None);
            }
            if self.view.health(&m.key) == Health::Down {
                return Err(
                    Error::new(code::NODE_DOWN, format!("node {} is down", m.name))
                        .with("node", m.name.as_str()),
                );
            }
            return Ok(Some(node_ref(&m)));
        }
        if local {
            return Ok(None);
        }
        match self.view.providers(service).first() {
            Some(m) => Ok(Some(node_ref(m))),
            None => Err(Error::new(
                code::UNKNOWN_SERVICE,
                format!("no live node provides the service {service}"),
            )
            .with("serv", service)),
        }
    }

    fn call<'a>(
        &'a self,
        cx: &'a Cx,
        node: &'a NodeRef,
        service: &'a str,
        msg: Unit,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let target = self
                .view
                .find(&node.id)
                .ok_or_else(|| Error::new(code::UNKNOWN_NODE, format!("no node {}", node.name)))?;
            let guard = cx.terminal().ok().map(|t| self.sessions.open(t.clone()));
            // The message's own encoding goes once the request's is made: a chunk sent to
            // another node is held once while the call waits, not twice.
            // A long byte string of the message (a pipe's chunk) is not copied into the
            // request: it stays a part of its own down to the link's TLS.
            let body = OutFrame::from_parts(
                CallRequest {
                    service: service.to_owned(),
                    msg: Bytes::new(),
                    author: cx.author().to_bytes(),
                    root_hash: *cx.root_hash(),
                    depth: cx.depth(),
                    session: guard.as_ref().map(|g| g.id),
                    evaluation: cx.evaluation().map(|e| (e.time_ms, e.id)),
                }
                .encode_parts(&msg)
                .map_err(Error::internal)?,
            );
            drop(msg);
            let started = tokio::time::Instant::now();
            let reply = loop {
                let call = self
                    .mesh
                    .call(&target.key, wire::CALL, body.clone(), CALL_DEADLINE);
                let reply = tokio::select! {
                    r = call => r,
                    () = self.view.wait_down(&target.key) => {
                        return Err(node_error(&target.name, "went down during the call"));
                    }
                };
                // Unreachable: the call was not sent, so trying again cannot run it twice.
                match reply {
                    Err(MeshError::Unreachable { .. })
                        if self.view.health(&target.key) == Health::Alive
                            && started.elapsed() < UNREACHABLE_GRACE =>
                    {
                        tokio::time::sleep(UNREACHABLE_RETRY).await;
                    }
                    reply => break reply,
                }
            };
            drop(guard);
            let reply = reply.map_err(|e| mesh_error(&target.name, e))?;
            // A value (a chunk read from another node) shares the reply's storage.
            let result: CallResult = plexus_protocol::decode_shared(&reply)
                .map_err(|e| Error::internal(format!("malformed reply: {e}")))?;
            match result {
                CallResult::Nothing => Ok(None),
                CallResult::Value(bytes) => plexus_units::decode_bytes(bytes)
                    .map(Some)
                    .map_err(|e| Error::internal(format!("bad reply from {}: {e}", target.name))),
                CallResult::Error(bytes) => {
                    let u = plexus_units::decode(&bytes).map_err(|e| {
                        Error::internal(format!("bad reply from {}: {e}", target.name))
                    })?;
                    Err(Error::from_unit(&u).unwrap_or_else(|| {
                        Error::internal(format!("bad error from {}", target.name))
                    }))
                }
            }
        })
    }
}

fn node_error(name: &str, what: &str) -> Error {
    Error::new(code::NODE_DOWN, format!("node {name} {what}")).with("node", name)
}

/// A mesh failure as a kernel error naming the node.
pub fn mesh_error(name: &str, e: MeshError) -> Error {
    match e {
        MeshError::Remote { message, .. } => Error::new(
            code::INTERNAL,
            format!("node {name} could not run the call: {message}"),
        )
        .with("node", name),
        MeshError::Timeout { after, .. } => Error::new(
            code::TIMEOUT,
            format!("node {name} did not answer within {after:?}"),
        )
        .with("node", name),
        MeshError::Overloaded { .. } => {
            Error::new(code::LIMIT, format!("node {name} is overloaded; try again"))
                .with("node", name)
        }
        other => node_error(name, &format!("is unreachable: {other}")),
    }
}

/// Runs a call another node routed here, as a task of this node, and encodes its outcome.
/// The author's key is decoded through `keys`: the same few authors make most calls.
pub async fn serve_call<T: Transport>(
    kernel: Kernel,
    mesh: Mesh<T>,
    keys: &KeyCache,
    from: PublicKey,
    body: Bytes,
) -> Result<Bytes, String> {
    // The message's strings and byte strings stay slices of the received frame.
    let request: CallRequest =
        plexus_protocol::decode_shared(&body).map_err(|e| format!("malformed request: {e}"))?;
    let author = keys.decode(&request.author).map_err(|e| e.to_string())?;
    let msg = plexus_units::decode_bytes(request.msg).map_err(|e| format!("bad message: {e}"))?;
    let session = request.session.map(|session| {
        Arc::new(ProxyTerminal {
            mesh: mesh.clone(),
            origin: from,
            session,
        }) as Arc<dyn Terminal>
    });
    let service = request.service;
    let root_hash = request.root_hash;
    let depth = request.depth;
    let evaluation = request.evaluation;
    let k = kernel.clone();
    let handle = kernel.spawn_task(None, "remote", author, move |task| async move {
        let cx = k.context(author, root_hash, session, task).at_depth(depth);
        let cx = match evaluation {
            Some((time_ms, id)) => cx.with_evaluation(Evaluation { time_ms, id }),
            None => cx,
        };
        cx.send_here(&service, msg).await
    });
    // The mesh drops this future when the caller cancels: stop the task with it.
    let kill = KillOnDrop {
        kernel: kernel.clone(),
        task: Some(handle.id),
    };
    let outcome = handle.outcome().await;
    kill.disarm();
    let result = match outcome.and_then(|v| v.as_ref().map(crate::conn::encode_value).transpose()) {
        Ok(None) => CallResult::Nothing,
        Ok(Some(bytes)) => CallResult::Value(bytes.into()),
        Err(e) => CallResult::Error(plexus_units::encode(&e.to_unit())),
    };
    wire::encode(&result).map(Bytes::from)
}

struct KillOnDrop {
    kernel: Kernel,
    task: Option<u64>,
}

impl KillOnDrop {
    fn disarm(mut self) {
        self.task = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = self.kernel.kill(task);
        }
    }
}

/// The terminal of a call that came from another node: requests go back to the session's node.
struct ProxyTerminal<T: Transport> {
    mesh: Mesh<T>,
    origin: PublicKey,
    session: u64,
}

impl<T: Transport> Terminal for ProxyTerminal<T> {
    fn request(&self, request: TermRequest) -> BoxFuture<'_, Result<TermResponse, Error>> {
        Box::pin(async move {
            let body = wire::encode(&TermCall {
                session: self.session,
                request,
            })
            .map_err(Error::internal)?;
            let reply = self
                .mesh
                .call(&self.origin, wire::TERM, Bytes::from(body), TERM_DEADLINE)
                .await
                .map_err(|e| mesh_error("of the session", e))?;
            wire::decode(&reply).map_err(Error::internal)
        })
    }
}

/// Answers a terminal request from a node running one of this node's sessions' calls.
pub async fn serve_term(sessions: Arc<Sessions>, body: Bytes) -> Result<Bytes, String> {
    let call: TermCall = wire::decode(&body)?;
    let terminal = sessions
        .get(call.session)
        .ok_or_else(|| "the session has ended".to_owned())?;
    let response = match terminal.request(call.request).await {
        Ok(r) => r,
        Err(e) => TermResponse::Failed(e.to_string()),
    };
    wire::encode(&response).map(Bytes::from)
}
