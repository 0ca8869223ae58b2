//! The kernel: service registry, users, tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::meter::{Meter, DEFAULT_EVAL_MEMORY};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use plexus_identity::PublicKey;
use plexus_units::{Str, Unit};
use tokio::sync::Semaphore;

use crate::error::code;
use crate::service::{Outcome, Policy, Service};
use crate::{Cx, Error};

/// How many calls may be in flight in one service before callers wait (back-pressure).
pub const SERVICE_MAILBOX: usize = 1024;

/// The identity of the node a kernel runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Persistent id.
    pub id: String,
    /// Name, unique in the cluster.
    pub name: String,
}

/// A registered service and who may call it.
pub(crate) struct Entry {
    pub(crate) service: Arc<dyn Service>,
    pub(crate) owner: Option<PublicKey>,
    pub(crate) policy: Policy,
    pub(crate) mailbox: Semaphore,
    /// The figures of the calls that reached the service.
    pub(crate) stats: crate::stats::CallStats,
}

/// A row of the task table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Task id, unique for the life of the node.
    pub id: u64,
    /// What the task is (`msg` for a client's message, `task.sep`…).
    pub name: String,
    /// The acting user's public key.
    pub user: PublicKey,
    /// The task that started this one.
    pub parent: Option<u64>,
    /// Tasks started by this one and still running.
    pub children: Vec<u64>,
}

struct TaskEntry {
    info: TaskInfo,
    abort: Option<tokio::task::AbortHandle>,
    /// Raised when the task is killed, so loops running in it stop (aborting stops the task
    /// only at its next await).
    meter: Option<Meter>,
}

/// The per-node service runtime. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeInfo,
    admin: PublicKey,
    started: Instant,
    services: RwLock<Registry>,
    users: RwLock<BTreeMap<PublicKey, String>>,
    tasks: Mutex<HashMap<u64, TaskEntry>>,
    next_task: AtomicU64,
    remote: OnceLock<Arc<dyn crate::Remote>>,
    eval_memory: AtomicU64,
}

#[derive(Default)]
struct Registry {
    by_name: HashMap<Str, Arc<Entry>>,
    order: Vec<Str>,
}

impl Kernel {
    /// A kernel for `node`, administered by `admin` (who owns the built-in services and is
    /// registered as a user).
    pub fn new(node: NodeInfo, admin: PublicKey, admin_name: &str) -> Kernel {
        let mut users = BTreeMap::new();
        users.insert(admin, admin_name.to_owned());
        Kernel {
            inner: Arc::new(Inner {
                node,
                admin,
                started: Instant::now(),
                services: RwLock::default(),
                users: RwLock::new(users),
                tasks: Mutex::default(),
                next_task: AtomicU64::new(1),
                remote: OnceLock::new(),
                eval_memory: AtomicU64::new(DEFAULT_EVAL_MEMORY),
            }),
        }
    }

    /// Sets the memory budget of each root message evaluated from now on, in bytes.
    pub fn set_eval_memory(&self, bytes: u64) {
        self.inner.eval_memory.store(bytes, Ordering::Relaxed);
    }

    /// The memory budget of a root message, in bytes ([`DEFAULT_EVAL_MEMORY`] unless set).
    pub fn eval_memory(&self) -> u64 {
        self.inner.eval_memory.load(Ordering::Relaxed)
    }

    /// Installs the router to other nodes (once; a second call is refused and returns
    /// `false`).
    pub fn set_remote(&self, remote: Arc<dyn crate::Remote>) -> bool {
        self.inner.remote.set(remote).is_ok()
    }

    /// The router to other nodes, on a cluster node.
    pub fn remote(&self) -> Option<&Arc<dyn crate::Remote>> {
        self.inner.remote.get()
    }

    /// Whether this node provides `service`.
    pub fn provides(&self, service: &str) -> bool {
        self.inner
            .services
            .read()
            .map(|r| r.by_name.contains_key(service))
            .unwrap_or(false)
    }

    /// The node this kernel runs on.
    pub fn node(&self) -> &NodeInfo {
        &self.inner.node
    }

    /// The node's administrator.
    pub fn admin(&self) -> &PublicKey {
        &self.inner.admin
    }

    /// When the kernel started.
    pub fn started(&self) -> Instant {
        self.inner.started
    }

    /// Registers a service under its help name, owned by the admin unless `owner` is given.
    pub fn register(
        &self,
        service: Arc<dyn Service>,
        owner: Option<PublicKey>,
        policy: Policy,
    ) -> Result<(), Error> {
        let name = service.help().name;
        plexus_units::Stream::new(Unit::None, name, None)
            .map_err(|e| Error::bad_argument(e.to_string()))?;
        let mut reg = self
            .inner
            .services
            .write()
            .map_err(|_| Error::internal("service registry poisoned"))?;
        if reg.by_name.contains_key(name) {
            return Err(Error::bad_argument(format!(
                "service {name} already exists"
            )));
        }
        let key = Str::from(name);
        reg.order.push(key.clone());
        reg.by_name.insert(
            key,
            Arc::new(Entry {
                service,
                owner: Some(owner.unwrap_or(self.inner.admin)),
                policy,
                mailbox: Semaphore::new(SERVICE_MAILBOX),
                stats: Default::default(),
            }),
        );
        Ok(())
    }

    /// Names of all services, in registration order.
    pub fn services(&self) -> Vec<Str> {
        self.inner
            .services
            .read()
            .map(|r| r.order.clone())
            .unwrap_or_default()
    }

    /// The figures of each service's calls on this node, in registration order.
    pub fn call_figures(&self) -> Vec<(Str, crate::CallFigures)> {
        let Ok(reg) = self.inner.services.read() else {
            return Vec::new();
        };
        reg.order
            .iter()
            .filter_map(|name| Some((name.clone(), reg.by_name.get(name)?.stats.figures())))
            .collect()
    }

    /// The policy and owner of a service.
    pub fn service_policy(&self, name: &str) -> Option<(Policy, Option<PublicKey>)> {
        self.entry(name).ok().map(|e| (e.policy, e.owner))
    }

    pub(crate) fn entry(&self, name: &str) -> Result<Arc<Entry>, Error> {
        let reg = self
            .inner
            .services
            .read()
            .map_err(|_| Error::internal("service registry poisoned"))?;
        reg.by_name.get(name).cloned().ok_or_else(|| {
            Error::new(
                code::UNKNOWN_SERVICE,
                format!("no service named {name} (see serv@io.term… or `services`)"),
            )
            .with("serv", name)
        })
    }

    /// Registers a user's public key under a name. Fails if the name or the key is taken by
    /// another registration.
    pub fn register_user(&self, key: PublicKey, name: &str) -> Result<(), Error> {
        let mut users = self
            .inner
            .users
            .write()
            .map_err(|_| Error::internal("user registry poisoned"))?;
        if let Some(existing) = users.get(&key) {
            return Err(Error::bad_argument(if existing == name {
                format!("user {name} is already registered")
            } else {
                format!("this key is already registered as {existing}")
            }));
        }
        if users.values().any(|n| n == name) {
            return Err(Error::bad_argument(format!(
                "the name {name} is taken by another key"
            )));
        }
        users.insert(key, name.to_owned());
        Ok(())
    }

    /// Forgets a user's key; gives the name it had.
    pub fn remove_user(&self, key: &PublicKey) -> Option<String> {
        self.inner.users.write().ok()?.remove(key)
    }

    /// Replaces the whole registry with `users` (a cluster's replicated registry). The node's
    /// admin stays registered under the name it has here while `users` does not list its key
    /// (the cluster records it shortly after the node starts) and nobody else has that name.
    pub fn replace_users(&self, users: impl IntoIterator<Item = (PublicKey, String)>) {
        let mut next: BTreeMap<PublicKey, String> = users.into_iter().collect();
        let Ok(mut current) = self.inner.users.write() else {
            return;
        };
        if let Some(admin_name) = current.get(&self.inner.admin) {
            if !next.contains_key(&self.inner.admin) && !next.values().any(|n| n == admin_name) {
                next.insert(self.inner.admin, admin_name.clone());
            }
        }
        *current = next;
    }

    /// The registered name of a key.
    pub fn user_name(&self, key: &PublicKey) -> Option<String> {
        self.inner.users.read().ok()?.get(key).cloned()
    }

    /// All registered users.
    pub fn users(&self) -> Vec<(PublicKey, String)> {
        self.inner
            .users
            .read()
            .map(|u| u.iter().map(|(k, n)| (*k, n.clone())).collect())
            .unwrap_or_default()
    }

    pub(crate) fn check_policy(&self, entry: &Entry, author: &PublicKey) -> Result<(), Error> {
        let allowed = match entry.policy {
            Policy::Anyone => true,
            Policy::Registered => {
                entry.owner.as_ref() == Some(author) || self.user_name(author).is_some()
            }
            Policy::Owner => entry.owner.as_ref() == Some(author),
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::new(
                code::DENIED,
                format!(
                    "{} may be used by: {}",
                    entry.service.help().name,
                    entry.policy.name()
                ),
            ))
        }
    }

    /// Starts a task running `make(task_id)`, registered in the task table under `parent`
    /// until it ends. Awaiting the handle gives its outcome, or a `killed` error if it was
    /// killed.
    pub fn spawn_task<F, Fut>(
        &self,
        parent: Option<u64>,
        name: &str,
        user: PublicKey,
        make: F,
    ) -> TaskHandle
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Outcome> + Send + 'static,
    {
        let id = self.inner.next_task.fetch_add(1, Ordering::Relaxed);
        let kernel = self.clone();
        // Registered before the task can run, so it can always find and remove itself.
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.insert(
                id,
                TaskEntry {
                    info: TaskInfo {
                        id,
                        name: name.to_owned(),
                        user,
                        parent,
                        children: Vec::new(),
                    },
                    abort: None,
                    meter: None,
                },
            );
            if let Some(p) = parent.and_then(|p| tasks.get_mut(&p)) {
                p.info.children.push(id);
            }
        }
        // Made once the task is in the table, so a context made for it can find it.
        let fut = make(id);
        let join = tokio::spawn(async move {
            let out = fut.await;
            kernel.forget_task(id);
            out
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            // Absent if the task already finished.
            if let Some(t) = tasks.get_mut(&id) {
                t.abort = Some(join.abort_handle());
            }
        }
        TaskHandle { id, join }
    }

    fn forget_task(&self, id: u64) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            if let Some(t) = tasks.remove(&id) {
                if let Some(p) = t.info.parent.and_then(|p| tasks.get_mut(&p)) {
                    p.info.children.retain(|&c| c != id);
                }
            }
        }
    }

    /// Stops task `id` and every task it started; whoever waits for them gets a `killed`
    /// error.
    pub fn kill(&self, id: u64) -> Result<(), Error> {
        let mut tasks = self
            .inner
            .tasks
            .lock()
            .map_err(|_| Error::internal("task table poisoned"))?;
        if !tasks.contains_key(&id) {
            return Err(Error::new(code::NOT_FOUND, format!("no task {id}"))
                .with("id", Unit::int(id as i64)));
        }
        let mut stack = vec![id];
        while let Some(t) = stack.pop() {
            if let Some(entry) = tasks.remove(&t) {
                stack.extend(entry.info.children.iter().copied());
                if let Some(meter) = &entry.meter {
                    meter.cancel();
                }
                if let Some(abort) = entry.abort {
                    abort.abort();
                }
                if let Some(p) = entry.info.parent.and_then(|p| tasks.get_mut(&p)) {
                    p.info.children.retain(|&c| c != t);
                }
            }
        }
        Ok(())
    }

    /// The task table, by id.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let mut v: Vec<TaskInfo> = self
            .inner
            .tasks
            .lock()
            .map(|t| t.values().map(|e| e.info.clone()).collect())
            .unwrap_or_default();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Whether `name` is this node's name or id.
    pub fn is_this_node(&self, name: &str) -> bool {
        name == self.inner.node.name || name == self.inner.node.id
    }

    /// A context for evaluating a message from `author` (identified by its hash) in task
    /// `task`, with the session's terminal if it has one.
    pub fn context(
        &self,
        author: PublicKey,
        root_hash: [u8; 32],
        session: Option<Arc<dyn crate::Terminal>>,
        task: u64,
    ) -> Cx {
        self.context_metered(
            author,
            root_hash,
            session,
            task,
            Meter::new(self.eval_memory()),
        )
    }

    /// [`Kernel::context`] with the given budget (a client connection gives each message a
    /// budget within its own).
    pub fn context_metered(
        &self,
        author: PublicKey,
        root_hash: [u8; 32],
        session: Option<Arc<dyn crate::Terminal>>,
        task: u64,
        meter: Meter,
    ) -> Cx {
        self.watch_task(task, &meter);
        Cx::new(self.clone(), author, root_hash, session, task, meter)
    }

    /// Records `meter` as task `task`'s, so killing the task cancels it.
    pub(crate) fn watch_task(&self, task: u64, meter: &Meter) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            if let Some(t) = tasks.get_mut(&task) {
                t.meter = Some(meter.clone());
            }
        }
    }
}

/// A running task.
pub struct TaskHandle {
    /// The task's id.
    pub id: u64,
    join: tokio::task::JoinHandle<Outcome>,
}

impl TaskHandle {
    /// Waits for the task's outcome.
    pub async fn outcome(self) -> Outcome {
        match self.join.await {
            Ok(out) => out,
            Err(e) if e.is_cancelled() => Err(Error::new(
                code::KILLED,
                format!("task {} was killed", self.id),
            )),
            Err(_) => Err(Error::internal(format!(
                "task {} failed unexpectedly",
                self.id
            ))),
        }
    }

    /// Stops the task (but not its children: use [`Kernel::kill`] for that).
    pub fn abort(&self) {
        self.join.abort();
    }
}
