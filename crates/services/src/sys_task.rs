//! `sys.task`: the task engine — loops, queues, stacks, chains, background tasks, listings
//! and kill.
//!
//! `sys.task` takes its message **raw** (unevaluated): loops and queues evaluate their parts
//! themselves, as often as they run them. The forms, tried in this order:
//!
//! | form | meaning |
//! |---|---|
//! | `{task.loop:X}`, `(task.loop X)` | evaluates X again and again until the task is killed or cancelled, or X fails (its error ends the loop) |
//! | `{task.loop:(n X)}`, `(task.loop (n X))` | evaluates X n times (n is evaluated once); no value |
//! | `{task.que:[x…]}`, `(task.que […])` | evaluates each element in order; no value |
//! | `{task.stk:[m…]@serv}`, `(task.stk […]@serv)` | for each m: evaluates it, sends it to serv and waits; no value |
//! | `{task.sep:X}`, `(task.sep X)` | starts a task evaluating X and returns at once → `{task:<id>}` |
//! | `{task.sim:[x…]}`, `(task.sim […])` | starts one task per element, returns at once → `{task:[<id>…]}` |
//! | `{task.try:M}`, `(task.try M)` | runs M as if it were sent to sys.task; an error becomes its unit `{err:… msg:…}` (a value), except the errors of a missing or finished terminal (`term.none`, `term.failed`), which pass through |
//! | `(kill id)`, `{kill:id}` | stops task id and every task it started; whoever waits for them gets a `killed` error. Only the task's own user or the node's admin may kill it |
//! | `get`, `get.run`, `get.all`, `get.tree` | `{run:{id name usr par.id} all:[…] tree:[{id name usr child:[…]\|-}…]}` or that part |
//! | `{task:[s1 s2 …] msg:M …}` | **chain**: starting from M (or, without `msg`, the map without its `task` field), sends the current value to each service in turn and merges each reply into it (vnix's merge); → the map with `msg` set to the final value |
//! | a stream `u@s` | evaluates it (first level); if the value is one of the forms above it is run, otherwise it is evaluated once more (the second level, so `(load @task.hello)@io.store@sys.task` runs a program from the store) → its value |
//!
//! Loops, queues, stacks and chain steps run as child tasks of the caller's task, so killing
//! the caller (or cancelling its call) stops them; `task.sep` and `task.sim` tasks are children
//! too but outlive the call that started them. Any other message is `cmd.unknown`.
//!
//! Limits, so that no user can jam sys.task for the others:
//!
//! - each registered user may have at most [`MAX_TASKS_PER_USER`] sys.task tasks running at
//!   once (every task above counts, nested ones too); one more is a `limit` error. Keys that
//!   are not registered share one such quota, since a new key costs nothing;
//! - only registered users may start detached tasks (`task.sep`, `task.sim`): `denied`
//!   otherwise. A key that is not registered runs tasks only within its own calls, which end
//!   when its connection does;
//! - a detached task keeps running after its user disconnects (background work is what it is
//!   for), holding its place in the user's quota until it ends or is killed by the user or
//!   the admin (`get.all` lists it with its user);
//! - no sys.task call waits for the service's mailbox, so listings and `kill` answer at once
//!   however many loops run.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

use plexus_identity::PublicKey;
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Delivery, Entry, Error, Example, Help, Kernel, Outcome, Service,
    Table, TaskInfo,
};
use plexus_store::merge_with;
use plexus_units::{Map, Unit};

use crate::forms;

/// The default `io.store` content, written in units text: seeded on a node's first start.
pub const SEED: &str = include_str!("seed.unit");

/// Most tasks one `task.sim` may start.
pub const MAX_SIM: usize = 4096;

/// Most sys.task tasks one user may have running at once.
pub const MAX_TASKS_PER_USER: usize = 256;

/// Below this depth, `get.tree` lists children by id only (units have a bounded depth).
const MAX_TREE_DEPTH: usize = 32;

/// The `sys.task` service.
pub fn service() -> Arc<dyn Service> {
    Arc::new(SysTask {
        quota: Arc::default(),
    })
}

struct SysTask {
    quota: Arc<Quota>,
}

/// The sys.task tasks running per user, against [`MAX_TASKS_PER_USER`]. Keys that are not
/// registered share one count (`None`): a fresh key costs nothing to make, so a count of its
/// own would bound nothing.
#[derive(Default)]
struct Quota {
    running: Mutex<HashMap<Option<PublicKey>, usize>>,
}

impl Quota {
    /// A place for one more task of the caller, or a `limit` error when it has none left.
    fn admit(self: &Arc<Self>, cx: &Cx) -> Result<Place, Error> {
        let user = registered(cx).then_some(*cx.author());
        let mut running = self
            .running
            .lock()
            .map_err(|_| Error::internal("sys.task quota poisoned"))?;
        let n = running.entry(user).or_default();
        if *n >= MAX_TASKS_PER_USER {
            let who = if user.is_some() {
                "you already have"
            } else {
                "keys that are not registered already have"
            };
            return Err(Error::new(
                code::LIMIT,
                format!(
                    "{who} {MAX_TASKS_PER_USER} sys.task tasks running, the most allowed at \
                     once: wait for some to end or kill them (get.all@sys.task lists them)"
                ),
            ));
        }
        *n += 1;
        Ok(Place {
            quota: self.clone(),
            user,
        })
    }
}

/// One running task's place in its user's quota, given back when the task ends or is killed
/// (either way its future, which owns the place, is dropped).
struct Place {
    quota: Arc<Quota>,
    user: Option<PublicKey>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut running) = self.quota.running.lock() {
            if let Some(n) = running.get_mut(&self.user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    running.remove(&self.user);
                }
            }
        }
    }
}

/// Whether the caller is a registered user (the admin is one).
fn registered(cx: &Cx) -> bool {
    cx.kernel().user_name(cx.author()).is_some()
}

impl Service for SysTask {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }

    /// No sys.task call waits for the mailbox: loops and queues hold their call for as long
    /// as they run, so 1,024 of them would keep every other caller (and the admin's `kill`)
    /// waiting. Each user's running tasks are bounded by [`MAX_TASKS_PER_USER`] instead.
    fn queues(&self, _msg: &Unit) -> bool {
        false
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        handle(cx, &self.quota, msg)
    }
}

/// The forms of sys.task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Loop,
    Que,
    Stk,
    Sep,
    Sim,
    Try,
    Kill,
    Get,
    /// A map with a `task` field, wherever it is.
    Chain,
    /// Any stream (in the manual only: streams are recognised by their shape).
    Stream,
}

impl Form {
    fn of(u: &Unit) -> Option<Form> {
        let by_name = TABLE
            .find(u)
            .map(|(e, _)| e.run)
            .filter(|f| !matches!(f, Form::Chain | Form::Stream));
        by_name.or_else(|| match u {
            Unit::Map(m) if m.get_str("task").is_some() => Some(Form::Chain),
            _ => None,
        })
    }
}

/// Whether `u` looks like a sys.task command that is not one (a typo to report).
fn looks_like_command(u: &Unit) -> bool {
    forms::command(u).is_some_and(|c| {
        c.name.starts_with("task.") || c.name == "kill" || c.name.starts_with("get.")
    })
}

fn handle<'a>(cx: &'a Cx, quota: &'a Arc<Quota>, msg: Unit) -> BoxFuture<'a, Outcome> {
    Box::pin(async move {
        if let Some(form) = Form::of(&msg) {
            return run_form(cx, quota, form, msg).await;
        }
        match msg {
            Unit::Stream(_) => match cx.run(msg).await? {
                None => Ok(None),
                Some(v) => second_level(cx, quota, v).await,
            },
            other => {
                let (streams, refs) = plexus_kernel::needs_eval(&other);
                if streams || refs {
                    let v = cx.eval(other.clone()).await?;
                    if let Some(form) = Form::of(&v) {
                        return run_form(cx, quota, form, v).await;
                    }
                }
                Err(Error::unknown_command("sys.task", &other))
            }
        }
    })
}

/// The value of a stream sent to sys.task: a form is run, anything else evaluated once more.
async fn second_level(cx: &Cx, quota: &Arc<Quota>, v: Unit) -> Outcome {
    if let Some(form) = Form::of(&v) {
        return run_form(cx, quota, form, v).await;
    }
    if looks_like_command(&v) {
        return Err(Error::unknown_command("sys.task", &v));
    }
    cx.run(v).await
}

async fn run_form(cx: &Cx, quota: &Arc<Quota>, form: Form, msg: Unit) -> Outcome {
    match form {
        Form::Get => get(cx, msg.as_str().unwrap_or("get")).map(Some),
        Form::Kill => {
            let msg = cx.eval(msg).await?;
            let arg = forms::command(&msg)
                .and_then(|c| c.arg)
                .ok_or_else(|| Error::bad_argument("kill needs a task id: (kill id)"))?;
            kill(cx, arg)
        }
        Form::Chain => {
            let msg = cx.eval(msg).await?;
            match msg {
                Unit::Map(m) => chain(cx, quota, m).await,
                other => Err(Error::unknown_command("sys.task", &other)),
            }
        }
        _ => {
            let arg = forms::command(&msg)
                .and_then(|c| c.arg)
                .cloned()
                .ok_or_else(|| {
                    Error::bad_argument(format!(
                        "{} needs an argument (see help.man@sys.task)",
                        plexus_units::to_short(&msg, 20)
                    ))
                })?;
            match form {
                Form::Loop => in_child(cx, quota, "task.loop", move |cx| run_loop(cx, arg)).await,
                Form::Que => {
                    let items = list(&arg, "task.que")?;
                    in_child(cx, quota, "task.que", move |cx| que(cx, items)).await
                }
                Form::Stk => {
                    let (items, service, node) = stack(&arg)?;
                    in_child(cx, quota, "task.stk", move |cx| {
                        stk(cx, items, service, node)
                    })
                    .await
                }
                Form::Sep => {
                    detachable(cx, "task.sep")?;
                    let id = start(cx, quota.admit(cx)?, "task.sep", arg);
                    Ok(Some(task_ids(Unit::int(id))))
                }
                Form::Sim => {
                    detachable(cx, "task.sim")?;
                    let items = list(&arg, "task.sim")?;
                    if items.len() > MAX_SIM {
                        return Err(Error::new(
                            code::LIMIT,
                            format!("task.sim starts at most {MAX_SIM} tasks"),
                        ));
                    }
                    // All places first: a task.sim starts all of its tasks or none.
                    let places = items
                        .iter()
                        .map(|_| quota.admit(cx))
                        .collect::<Result<Vec<_>, _>>()?;
                    let ids = items
                        .into_iter()
                        .zip(places)
                        .map(|(x, place)| Unit::int(start(cx, place, "task.sim", x)))
                        .collect();
                    Ok(Some(task_ids(Unit::List(ids))))
                }
                Form::Try => match handle(cx, quota, arg).await {
                    Err(e) if !ends_session(&e) => Ok(Some(e.to_unit())),
                    other => other,
                },
                Form::Get | Form::Kill | Form::Chain | Form::Stream => {
                    Err(Error::internal("sys.task form"))
                }
            }
        }
    }
}

/// Errors `task.try` lets through: the session has no terminal, or its input ended or failed
/// (so a λ shell ends instead of asking forever).
fn ends_session(e: &Error) -> bool {
    e.code() == code::NO_TERMINAL || e.code() == code::TERMINAL
}

/// Detached tasks outlive their call and its connection, so only registered users, whom the
/// admin can identify and whose tasks the quota bounds one by one, may start them.
fn detachable(cx: &Cx, form: &str) -> Result<(), Error> {
    if registered(cx) {
        return Ok(());
    }
    Err(Error::new(
        code::DENIED,
        format!(
            "{form} starts a task that outlives the call; only registered users may (see \
             help.man@sys.task)"
        ),
    ))
}

fn task_ids(ids: Unit) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str("task"), ids);
    Unit::Map(m)
}

/// The elements of a list or pair, or an error naming `form`.
fn list(u: &Unit, form: &str) -> Result<Vec<Unit>, Error> {
    forms::elements(u)
        .map(|v| v.into_iter().cloned().collect())
        .ok_or_else(|| {
            Error::bad_argument(format!(
                "{form} takes a list [x…], not {}",
                plexus_units::to_short(u, 20)
            ))
        })
}

/// `[m…]@serv` of `task.stk`.
fn stack(u: &Unit) -> Result<(Vec<Unit>, String, Option<String>), Error> {
    let bad = || {
        Error::bad_argument(format!(
            "task.stk takes a list sent to a service, [m…]@serv, not {}",
            plexus_units::to_short(u, 20)
        ))
    };
    let Unit::Stream(s) = u else {
        return Err(bad());
    };
    let items = forms::elements(&s.unit).ok_or_else(bad)?;
    Ok((
        items.into_iter().cloned().collect(),
        s.service().to_owned(),
        s.node().map(str::to_owned),
    ))
}

/// Kills a task when dropped, unless disarmed: the child of a call that is dropped (cancelled)
/// must not run on.
struct KillOnDrop {
    kernel: Kernel,
    id: u64,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.kernel.kill(self.id);
        }
    }
}

/// Runs `f` as a child task of the caller's task and waits for it.
async fn in_child<F, Fut>(cx: &Cx, quota: &Arc<Quota>, name: &str, f: F) -> Outcome
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let place = quota.admit(cx)?;
    let base = cx.clone();
    let handle = cx
        .kernel()
        .spawn_task(Some(cx.task()), name, *cx.author(), move |id| {
            let work = f(base.in_task(id));
            async move {
                let _place = place;
                work.await
            }
        });
    let mut guard = KillOnDrop {
        kernel: cx.kernel().clone(),
        id: handle.id,
        armed: true,
    };
    let out = handle.outcome().await;
    guard.armed = false;
    out
}

/// Starts a child task evaluating `x` in `place` without waiting; → its id.
fn start(cx: &Cx, place: Place, name: &str, x: Unit) -> i64 {
    let base = cx.clone();
    let handle = cx
        .kernel()
        .spawn_task(Some(cx.task()), name, *cx.author(), move |id| {
            let cx = base.in_task(id);
            async move {
                let _place = place;
                match cx.eval(x).await {
                    Ok(_) => Ok(None),
                    Err(e) => {
                        tracing::debug!(task = id, error = %e, "background task failed");
                        Err(e)
                    }
                }
            }
        });
    i64::try_from(handle.id).unwrap_or(i64::MAX)
}

async fn run_loop(cx: Cx, body: Unit) -> Outcome {
    let (count, body) = match body {
        Unit::Pair(p) => {
            let (n, x) = *p;
            let n = cx.eval(n).await?;
            let n = n
                .as_int()
                .and_then(plexus_units::Int::to_i64)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    Error::bad_argument(format!(
                        "task.loop (n X) needs a count n (a non-negative int), not {}; \
                         to loop over a pair, put it in a list",
                        plexus_units::to_short(&n, 20)
                    ))
                })?;
            (Some(n), x)
        }
        other => (None, other),
    };
    let mut done: u64 = 0;
    while count.is_none_or(|n| done < n) {
        cx.eval_for_effect(body.clone()).await?;
        done = done.saturating_add(1);
        // Never starve the runtime, even when X does nothing that waits.
        tokio::task::yield_now().await;
    }
    Ok(None)
}

async fn que(cx: Cx, items: Vec<Unit>) -> Outcome {
    for x in items {
        cx.eval_for_effect(x).await?;
    }
    Ok(None)
}

async fn stk(cx: Cx, items: Vec<Unit>, service: String, node: Option<String>) -> Outcome {
    for m in items {
        let m = cx.eval(m).await?;
        cx.send(&service, node.as_deref(), m).await?;
    }
    Ok(None)
}

async fn chain(cx: &Cx, quota: &Arc<Quota>, mut m: Map) -> Outcome {
    let bad =
        || Error::bad_argument("a chain's task is a list of service names: {task:[s1 s2 …] msg:M}");
    let services: Vec<String> = match m.get_str("task") {
        Some(Unit::Str(s)) => vec![s.to_string()],
        Some(Unit::List(l)) => l
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    let mut current = match m.get_str("msg") {
        Some(v) => v.clone(),
        None => {
            let mut rest = m.clone();
            rest.remove(&Unit::str("task"));
            Unit::Map(rest)
        }
    };
    for service in services {
        let step = current.clone();
        let reply = in_child(cx, quota, "task.chain", move |cx| async move {
            cx.send(&service, None, step).await
        })
        .await?;
        if let Some(r) = reply {
            current = merge_with(current, r);
        }
    }
    m.insert(Unit::str("msg"), current);
    Ok(Some(Unit::Map(m)))
}

fn kill(cx: &Cx, arg: &Unit) -> Outcome {
    let id = arg
        .as_int()
        .and_then(plexus_units::Int::to_i64)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| {
            Error::bad_argument(format!(
                "kill takes a task id (a non-negative int), not {}",
                plexus_units::to_short(arg, 20)
            ))
        })?;
    let kernel = cx.kernel();
    let not_found =
        || Error::new(code::NOT_FOUND, format!("no task {id}")).with("id", Unit::int(id as i64));
    let task = kernel
        .tasks()
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(not_found)?;
    if task.user != *cx.author() && cx.author() != kernel.admin() {
        return Err(Error::new(
            code::DENIED,
            format!("task {id} belongs to another user"),
        ));
    }
    kernel.kill(id).map_err(|_| not_found())?;
    Ok(None)
}

fn get(cx: &Cx, what: &str) -> Result<Unit, Error> {
    let kernel = cx.kernel();
    let tasks = kernel.tasks();
    let usr = |t: &TaskInfo| user(kernel, &t.user);
    let row = |t: &TaskInfo| {
        let mut m = Map::new();
        m.insert(Unit::str("id"), id_unit(t.id));
        m.insert(Unit::str("name"), Unit::str(&t.name));
        m.insert(Unit::str("usr"), usr(t));
        m.insert(Unit::str("par.id"), t.parent.map_or(Unit::None, id_unit));
        Unit::Map(m)
    };
    let run = || match tasks.iter().find(|t| t.id == cx.task()) {
        Some(t) => row(t),
        None => {
            let mut m = Map::new();
            m.insert(Unit::str("id"), id_unit(cx.task()));
            m.insert(Unit::str("name"), Unit::None);
            m.insert(Unit::str("usr"), user(kernel, cx.author()));
            m.insert(Unit::str("par.id"), Unit::None);
            Unit::Map(m)
        }
    };
    let all = || Unit::List(tasks.iter().map(row).collect());
    let tree = || {
        let by_id: std::collections::HashMap<u64, &TaskInfo> =
            tasks.iter().map(|t| (t.id, t)).collect();
        let roots = tasks
            .iter()
            .filter(|t| t.parent.is_none_or(|p| !by_id.contains_key(&p)))
            .map(|t| tree_node(kernel, &by_id, t, 0))
            .collect();
        Unit::List(roots)
    };
    Ok(match what {
        "get.run" => run(),
        "get.all" => all(),
        "get.tree" => tree(),
        _ => {
            let mut m = Map::new();
            m.insert(Unit::str("run"), run());
            m.insert(Unit::str("all"), all());
            m.insert(Unit::str("tree"), tree());
            Unit::Map(m)
        }
    })
}

fn tree_node(
    kernel: &Kernel,
    by_id: &std::collections::HashMap<u64, &TaskInfo>,
    t: &TaskInfo,
    depth: usize,
) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str("id"), id_unit(t.id));
    m.insert(Unit::str("name"), Unit::str(&t.name));
    m.insert(Unit::str("usr"), user(kernel, &t.user));
    let mut children: Vec<&TaskInfo> = t
        .children
        .iter()
        .filter_map(|c| by_id.get(c).copied())
        .collect();
    children.sort_by_key(|c| c.id);
    let child = if children.is_empty() {
        Unit::None
    } else if depth >= MAX_TREE_DEPTH {
        Unit::List(children.iter().map(|c| id_unit(c.id)).collect())
    } else {
        Unit::List(
            children
                .iter()
                .map(|c| tree_node(kernel, by_id, c, depth + 1))
                .collect(),
        )
    };
    m.insert(Unit::str("child"), child);
    Unit::Map(m)
}

fn id_unit(id: u64) -> Unit {
    Unit::int(i64::try_from(id).unwrap_or(i64::MAX))
}

/// A user as people know it: the registered name, or the key's short fingerprint.
fn user(kernel: &Kernel, key: &plexus_identity::PublicKey) -> Unit {
    Unit::from(kernel.user_name(key).unwrap_or_else(|| key.fingerprint()))
}

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Form>> = LazyLock::new(table);

fn table() -> Table<Form> {
    Table::new(
        "sys.task",
        "The task engine: loops, queues, stacks, chains and background tasks over \
               unevaluated programs; task listings and kill. Each user may have 256 tasks \
               running at once (a limit error beyond); keys that are not registered share one \
               such quota and cannot start background tasks. Listings and kill never wait \
               behind running tasks.",
        vec![
            Example {
                info: "A chain: the map (without task) goes to math.calc; the result is the map \
                       with msg set to the final value",
                com: "{sum:[4 5] task:[math.calc]}@sys.task",
                res: Some("{sum:[4 5] task:[math.calc] msg:9}"),
            },
            Example {
                info: "Print hi three times (a loop has no value)",
                com: "(task.loop (3 {say:hi nl:t}@io.term))@sys.task",
                res: None,
            },
            Example {
                info: "Evaluate in order: prints a then b",
                com: "(task.que [(say a)@io.term {say:b nl:t}@io.term])@sys.task",
                res: None,
            },
            Example {
                info: "Send each element to a service in turn: prints 12",
                com: "(task.stk [1 2]@io.term)@sys.task",
                res: None,
            },
            Example {
                info: "A stream is run: → its value",
                com: "(sum [1 2])@math.calc@sys.task",
                res: Some("3"),
            },
            Example {
                info: "task.try turns an error into a value",
                com: "{task.try:(kill 999999999)}@sys.task",
                res: Some("{err:not.found msg:`no task 999999999` id:999999999}"),
            },
        ],
        vec![
            Entry::new(
                "task.loop",
                "Evaluates X again and again (until the task is killed or its call \
                       cancelled; an error in X ends the loop with that error), or n times with \
                       (n X); no value",
                &["{task.loop:X}", "(task.loop X)", "(task.loop (n X))"],
                Arg::Optional,
                Form::Loop,
            ),
            Entry::new(
                "task.que",
                "Evaluates each element in order, waiting for each; no value",
                &["{task.que:[x…]}", "(task.que [x…])"],
                Arg::Optional,
                Form::Que,
            ),
            Entry::new(
                "task.stk",
                "For each m in the list: evaluates m, sends it to serv and waits; no value",
                &["{task.stk:[m…]@serv}", "(task.stk [m…]@serv)"],
                Arg::Optional,
                Form::Stk,
            ),
            Entry::new(
                "task.sep",
                "Starts a task evaluating X and returns at once → {task:id} (see get, \
                       kill). The task keeps running after the caller disconnects, until it ends \
                       or is killed. Only registered users may start one (denied otherwise)",
                &["{task.sep:X}", "(task.sep X)"],
                Arg::Optional,
                Form::Sep,
            ),
            Entry::new(
                "task.sim",
                "Starts one task per element (at most 4096, and within the caller's \
                       quota: all of them or none) and returns at once → {task:[id…]}; like \
                       task.sep, only for registered users",
                &["{task.sim:[x…]}", "(task.sim [x…])"],
                Arg::Optional,
                Form::Sim,
            ),
            Entry::new(
                "task.try",
                "Runs M as sys.task would; an error becomes the value {err:code msg:text …}, \
                       except term.none and term.failed (no terminal, input ended), which end \
                       the caller as usual",
                &["{task.try:M}", "(task.try M)"],
                Arg::Optional,
                Form::Try,
            ),
            Entry::new(
                "task",
                "Chain: from M (or the map without task), sends the value to each service \
                       in turn, merging each reply into it (lists concatenate, maps merge, \
                       anything else is replaced; a call without a value changes nothing) → \
                       the map with msg set to the final value",
                &["{task:[serv…] msg:M}", "{task:[serv…] k:v …}"],
                Arg::Optional,
                Form::Chain,
            ),
            Entry::new(
                "get",
                "Task listings: run = the current task {id name usr par.id}, all = every \
                       task, tree = the tasks as trees [{id name usr child:[…]|-}…]; usr is the \
                       registered name or the key's fingerprint",
                &["get", "get.run", "get.all", "get.tree"],
                Arg::None,
                Form::Get,
            )
            .also(&["get.run", "get.all", "get.tree"]),
            Entry::new(
                "kill",
                "Stops task id and all the tasks it started; their waiters get the error \
                       killed. Only the task's user or the admin may kill it; an unknown id is \
                       not.found",
                &["(kill id)", "{kill:id}"],
                Arg::Optional,
                Form::Kill,
            ),
            Entry::new(
                "stream",
                "A stream is evaluated; a form in its value is run, any other value is \
                       evaluated once more (so a program loaded from the store runs) → its value",
                &["u@serv", "(load @task.hello)@io.store"],
                Arg::Optional,
                Form::Stream,
            ),
        ],
    )
}
