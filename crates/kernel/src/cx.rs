//! The call context and the evaluator of streams and refs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use plexus_identity::PublicKey;
use plexus_units::{Map, Str, Unit};

use crate::error::code;
use crate::meter::Meter;
use crate::service::{BoxFuture, Delivery, Outcome};
use crate::{Error, Kernel, Terminal};

/// How deeply calls may nest (a program that calls itself forever stops here).
pub const MAX_CALL_DEPTH: u32 = 200;

/// The context of one call: who is acting, for which session, in which task.
///
/// Everything done while evaluating a message acts with the authority of its author; nested
/// calls share it.
#[derive(Clone)]
pub struct Cx {
    kernel: Kernel,
    author: PublicKey,
    root_hash: [u8; 32],
    root_signature: Option<[u8; 64]>,
    evaluation: Option<Evaluation>,
    session: Option<Arc<dyn Terminal>>,
    task: u64,
    depth: u32,
    meter: Meter,
}

/// Which evaluation of a signed root message a call belongs to: the message's time and an id
/// the node that verified it chose at random for this one evaluation. Calls forwarded to other
/// nodes carry it, so everything one evaluation changes shares the id, and a replay of the
/// message (after a restart, or sent to another node) is a different evaluation of the same
/// hash: the stores refuse it (`docs/identity.md`, "Replays across restarts and nodes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Evaluation {
    /// The root message's time, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The evaluation's id.
    pub id: u64,
}

impl Cx {
    pub(crate) fn new(
        kernel: Kernel,
        author: PublicKey,
        root_hash: [u8; 32],
        session: Option<Arc<dyn Terminal>>,
        task: u64,
        meter: Meter,
    ) -> Cx {
        Cx {
            kernel,
            author,
            root_hash,
            root_signature: None,
            evaluation: None,
            session,
            task,
            depth: 0,
            meter,
        }
    }

    /// The same context, recording the root message's signature (for `test.dump` and audit).
    pub fn with_root_signature(mut self, signature: [u8; 64]) -> Cx {
        self.root_signature = Some(signature);
        self
    }

    /// The same context, recording which evaluation of the signed root message it runs.
    pub fn with_evaluation(mut self, evaluation: Evaluation) -> Cx {
        self.evaluation = Some(evaluation);
        self
    }

    /// Which evaluation of the signed root message this call belongs to; `None` for work the
    /// node does on its own behalf.
    pub fn evaluation(&self) -> Option<Evaluation> {
        self.evaluation
    }

    /// The signature of the root message, when the call came from a signed message.
    pub fn root_signature(&self) -> Option<&[u8; 64]> {
        self.root_signature.as_ref()
    }

    /// The kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The user on whose authority the call runs.
    pub fn author(&self) -> &PublicKey {
        &self.author
    }

    /// Hash of the signed root message this call derives from.
    pub fn root_hash(&self) -> &[u8; 32] {
        &self.root_hash
    }

    /// The task this call runs in.
    pub fn task(&self) -> u64 {
        self.task
    }

    /// The same context in another task (for work started with [`Kernel::spawn_task`]).
    pub fn in_task(&self, task: u64) -> Cx {
        let meter = self.meter.for_task();
        self.kernel.watch_task(task, &meter);
        Cx {
            task,
            meter,
            ..self.clone()
        }
    }

    /// The root message's memory budget and this task's cancellation ([`Meter`]).
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Charges `bytes` of units about to be built to the root message's memory budget: a
    /// `limit` error beyond it, `cancelled` once the task was stopped. Services call it
    /// before building big results.
    pub fn charge(&self, bytes: u64) -> Result<(), Error> {
        self.meter.charge(bytes)
    }

    /// A `cancelled` error once this call's task was killed or cancelled: long loops in
    /// services check it on every turn.
    pub fn check(&self) -> Result<(), Error> {
        self.meter.check()
    }

    /// The session's terminal, or a `term.none` error.
    pub fn terminal(&self) -> Result<&Arc<dyn Terminal>, Error> {
        self.session.as_ref().ok_or_else(|| {
            Error::new(
                code::NO_TERMINAL,
                "this call has no terminal (use the λ shell or plx send from a terminal)",
            )
        })
    }

    /// Whether the call has a terminal.
    pub fn has_terminal(&self) -> bool {
        self.session.is_some()
    }

    fn nested(&self) -> Result<Cx, Error> {
        if self.depth >= MAX_CALL_DEPTH {
            return Err(Error::new(
                code::LIMIT,
                format!("calls nested deeper than {MAX_CALL_DEPTH}"),
            ));
        }
        Ok(Cx {
            depth: self.depth + 1,
            ..self.clone()
        })
    }

    /// Runs a root message: a stream is delivered and its outcome returned as is (so an
    /// effect has no value); anything else is evaluated to a value.
    pub async fn run(&self, body: Unit) -> Outcome {
        match body {
            Unit::Stream(s) => {
                let s = *s;
                let node = s.node().map(str::to_owned);
                let service = s.service().to_owned();
                self.send(&service, node.as_deref(), s.unit).await
            }
            other => self.eval(other).await.map(Some),
        }
    }

    /// Evaluates every stream and ref in `u`, depth first and left to right, each stream
    /// once. Refs resolve against `u` itself; inside a stream, against that stream's message
    /// (the message being handled). A stream whose call has no value becomes none.
    pub async fn eval(&self, u: Unit) -> Result<Unit, Error> {
        let (streams, refs) = needs_eval(&u);
        if !streams && !refs {
            return Ok(u);
        }
        let mut ev = Evaluator {
            cx: self,
            root: if refs { Some(u.clone()) } else { None },
            memo: HashMap::new(),
            resolving: HashSet::new(),
        };
        let mut path = Vec::new();
        ev.eval_at(u, &mut path).await
    }

    /// Evaluates `u` for its effects, as a loop's turn does: its value is dropped, so what
    /// the evaluation charged to the memory budget is given back (a loop that runs for ever
    /// is bounded by what one turn builds, not by how many turns it ran).
    pub async fn eval_for_effect(&self, u: Unit) -> Result<(), Error> {
        let before = self.meter.used();
        let done = self.eval(u).await.map(drop);
        self.meter.release(self.meter.used().saturating_sub(before));
        done
    }

    /// Sends `msg` to `service` (on `node`, if given) and returns its outcome. The message is
    /// evaluated first if the service takes evaluated messages.
    pub fn send<'a>(
        &'a self,
        service: &'a str,
        node: Option<&'a str>,
        msg: Unit,
    ) -> BoxFuture<'a, Outcome> {
        self.deliver(service, node, msg)
    }

    /// [`Cx::send`] giving none for a call without a value.
    pub async fn value(&self, service: &str, msg: Unit) -> Result<Unit, Error> {
        Ok(self.send(service, None, msg).await?.unwrap_or(Unit::None))
    }

    /// Where a stream goes: here (with the service's entry) or to another node.
    fn route(&self, service: &str, node: Option<&str>) -> Result<Route, Error> {
        let local = self.kernel.entry(service).ok();
        let pinned_elsewhere = node.is_some_and(|n| !self.kernel.is_this_node(n));
        let session_scoped = local.as_ref().is_some_and(|e| e.service.session_scoped());
        if pinned_elsewhere || local.is_none() {
            if let Some(remote) = self.kernel.remote() {
                // A session-scoped service stays with the session, but its pin must still
                // name a node of the cluster.
                let target = remote.route(service, node, local.is_some())?;
                if let Some(target) = target.filter(|_| !session_scoped) {
                    return Ok(Route::Remote(remote.clone(), target));
                }
            } else if let Some(node) = node.filter(|_| pinned_elsewhere) {
                return Err(Error::new(
                    code::UNKNOWN_NODE,
                    format!(
                        "no node named {node} (this node is {}, not part of a cluster)",
                        self.kernel.node().name
                    ),
                )
                .with("node", node));
            }
        }
        match local {
            Some(entry) => Ok(Route::Here(entry)),
            None => self.kernel.entry(service).map(Route::Here),
        }
    }

    // Kept a plain function returning a boxed future, so deeply nested calls cost one small
    // frame per level.
    fn deliver<'a>(
        &'a self,
        service: &'a str,
        node: Option<&'a str>,
        msg: Unit,
    ) -> BoxFuture<'a, Outcome> {
        match self.route(service, node) {
            Err(e) => Box::pin(std::future::ready(Err(e))),
            Ok(Route::Here(entry)) => Box::pin(self.deliver_here(entry, msg)),
            Ok(Route::Remote(remote, target)) => Box::pin(async move {
                let cx = self.nested()?;
                remote.call(&cx, &target, service, msg).await
            }),
        }
    }

    /// Delivers `msg` to `service` on this node, whatever the routing would say: how a node
    /// serves a call another node routed to it.
    pub async fn send_here(&self, service: &str, msg: Unit) -> Outcome {
        let entry = self.kernel.entry(service)?;
        self.deliver_here(entry, msg).await
    }

    /// How deeply this call is nested in its root message (carried across nodes so the
    /// depth limit holds cluster-wide).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The same context at nesting `depth` (for calls arriving from another node).
    pub fn at_depth(mut self, depth: u32) -> Cx {
        self.depth = depth.min(MAX_CALL_DEPTH);
        self
    }

    async fn deliver_here(&self, entry: Arc<crate::kernel::Entry>, msg: Unit) -> Outcome {
        // Every call checks: loops that call services stop once their task is cancelled.
        self.meter.check()?;
        self.kernel.check_policy(&entry, &self.author)?;
        let cx = self.nested()?;
        let msg = if entry.service.delivery() == Delivery::Evaluated {
            cx.eval(msg).await?
        } else {
            msg
        };
        if let Unit::Str(s) = &msg {
            if let Some(out) = self.kernel_command(&entry, s) {
                return out;
            }
        }
        let _permit = if entry.service.queues(&msg) {
            let permit = entry.mailbox.acquire().await;
            Some(permit.map_err(|_| Error::internal("service closed"))?)
        } else {
            None
        };
        let charged_before = self.meter.used();
        let started = std::time::Instant::now();
        let out = entry.service.call(&cx, msg).await;
        entry.stats.record(started.elapsed(), out.is_err());
        let out = out?;
        if let Some(v) = &out {
            // What the service did not charge while building its result is charged now.
            let charged = self.meter.used().saturating_sub(charged_before);
            self.meter.charge(v.footprint().saturating_sub(charged))?;
        }
        Ok(out)
    }

    /// `serv` and `help…` work on every service.
    fn kernel_command(&self, entry: &crate::kernel::Entry, cmd: &str) -> Option<Outcome> {
        let help = entry.service.help();
        let out = match cmd {
            "serv" => Unit::List(self.kernel.services().into_iter().map(Unit::Str).collect()),
            "help" => help.to_unit(),
            "help.name" => Unit::str(help.name),
            "help.info" => Unit::str(help.info),
            "help.tut" => help.tut_unit(),
            "help.man" => help.man_unit(),
            _ if cmd.starts_with("help") => {
                return Some(Err(Error::unknown_command(help.name, &Unit::str(cmd))))
            }
            _ => return None,
        };
        Some(Ok(Some(out)))
    }
}

enum Route {
    Here(Arc<crate::kernel::Entry>),
    Remote(Arc<dyn crate::Remote>, crate::NodeRef),
}

/// Whether `u` holds streams, refs.
pub fn needs_eval(u: &Unit) -> (bool, bool) {
    let mut found = (false, false);
    scan(u, &mut found);
    found
}

fn scan(u: &Unit, found: &mut (bool, bool)) {
    match u {
        Unit::Stream(_) => found.0 = true,
        Unit::Ref(_) => found.1 = true,
        Unit::Pair(p) => {
            scan(&p.0, found);
            scan(&p.1, found);
        }
        Unit::List(l) => l.iter().for_each(|e| scan(e, found)),
        Unit::Map(m) => m.iter().for_each(|(k, v)| {
            scan(k, found);
            scan(v, found);
        }),
        _ => {}
    }
}

/// A path segment no ref can name, for places refs cannot reach (map keys, and values under
/// keys that are not strings).
fn hidden_segment(tag: char, i: usize) -> Str {
    Str::from(format!("\u{0}{tag}{i}"))
}

struct Evaluator<'c> {
    cx: &'c Cx,
    root: Option<Unit>,
    memo: HashMap<Vec<Str>, Unit>,
    resolving: HashSet<Vec<Str>>,
}

impl Evaluator<'_> {
    fn eval_at<'a>(
        &'a mut self,
        u: Unit,
        path: &'a mut Vec<Str>,
    ) -> BoxFuture<'a, Result<Unit, Error>> {
        Box::pin(async move {
            if self.root.is_some() {
                if let Some(done) = self.memo.get(path) {
                    return Ok(done.clone());
                }
            }
            let (streams, refs) = needs_eval(&u);
            if !streams && !refs {
                return Ok(u);
            }
            let out = match u {
                Unit::Stream(s) => {
                    // The stream's message is evaluated by its own delivery, with itself as
                    // the root for refs: a ref names a part of the message being handled.
                    let s = *s;
                    let service = s.service().to_owned();
                    let node = s.node().map(str::to_owned);
                    self.cx
                        .send(&service, node.as_deref(), s.unit)
                        .await?
                        .unwrap_or(Unit::None)
                }
                Unit::Ref(p) => self.resolve(p).await?,
                Unit::Pair(p) => {
                    let (a, b) = *p;
                    path.push(Str::from("0"));
                    let a = self.eval_at(a, path).await;
                    path.pop();
                    let a = a?;
                    path.push(Str::from("1"));
                    let b = self.eval_at(b, path).await;
                    path.pop();
                    Unit::pair(a, b?)
                }
                Unit::List(l) => {
                    let mut out = Vec::with_capacity(l.len());
                    for (i, e) in l.into_iter().enumerate() {
                        path.push(Str::from(i.to_string()));
                        let v = self.eval_at(e, path).await;
                        path.pop();
                        out.push(v?);
                    }
                    Unit::List(out)
                }
                Unit::Map(m) => {
                    let mut out = Vec::with_capacity(m.len());
                    for (i, (k, v)) in m.into_entries().into_iter().enumerate() {
                        let seg = match &k {
                            Unit::Str(s) => s.clone(),
                            _ => hidden_segment('v', i),
                        };
                        path.push(hidden_segment('k', i));
                        let k = self.eval_at(k, path).await;
                        path.pop();
                        path.push(seg);
                        let v = self.eval_at(v, path).await;
                        path.pop();
                        out.push((k?, v?));
                    }
                    Unit::Map(Map::from_entries(out).map_err(|_| {
                        Error::bad_argument("map keys became equal after evaluation")
                    })?)
                }
                other => other,
            };
            if self.root.is_some() {
                // The memo holds a copy of the value, as big as the value.
                self.cx.charge(out.footprint())?;
                self.memo.insert(path.clone(), out.clone());
            }
            Ok(out)
        })
    }

    /// A ref evaluates to the unit at its path in the root, itself evaluated (once); a path
    /// that is not in the root leaves the ref as it is, for services that take paths.
    async fn resolve(&mut self, p: plexus_units::Path) -> Result<Unit, Error> {
        let target = self.root.as_ref().and_then(|r| r.find(&p)).cloned();
        let Some(target) = target else {
            return Ok(Unit::Ref(p));
        };
        let mut at: Vec<Str> = p.segments().to_vec();
        if let Some(done) = self.memo.get(&at) {
            return Ok(done.clone());
        }
        if !self.resolving.insert(at.clone()) {
            return Err(Error::new(
                code::REF_CYCLE,
                format!("{} refers to itself", Unit::Ref(p)),
            ));
        }
        let v = self.eval_at(target, &mut at).await;
        self.resolving.remove(&at);
        v
    }
}
