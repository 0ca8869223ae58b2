//! The standard error codes: the `err` word of an error unit `{err:<code> msg:<text> …}`.
//!
//! They live here, beside the data model every crate shares, so that the kernel, the
//! services, the store and the cluster state machine all name a failure the same way.

/// No service has that name.
pub const UNKNOWN_SERVICE: &str = "serv.unknown";
/// No node has that name or id.
pub const UNKNOWN_NODE: &str = "node.unknown";
/// The service understood no command in the message.
pub const UNKNOWN_COMMAND: &str = "cmd.unknown";
/// A command got an argument of the wrong type or range.
pub const BAD_ARGUMENT: &str = "arg.bad";
/// Division or remainder by zero.
pub const DIVISION_BY_ZERO: &str = "math.div0";
/// A mathematical function outside its domain (square root of a negative…).
pub const DOMAIN: &str = "math.domain";
/// A result or input beyond a configured limit.
pub const LIMIT: &str = "limit";
/// Nothing at a store path or ref.
pub const NOT_FOUND: &str = "not.found";
/// The caller may not use the service.
pub const DENIED: &str = "denied";
/// The call needs a terminal and its session has none.
pub const NO_TERMINAL: &str = "term.none";
/// The terminal failed or input was interrupted.
pub const TERMINAL: &str = "term.failed";
/// The call was cancelled by its caller.
pub const CANCELLED: &str = "cancelled";
/// The task running the call was killed.
pub const KILLED: &str = "killed";
/// A ref refers to itself.
pub const REF_CYCLE: &str = "ref.cycle";
/// Storage failed.
pub const STORAGE: &str = "storage";
/// A signed message that was already accepted, or is too old to tell.
pub const REPLAYED: &str = "msg.replay";
/// A bug or an unexpected failure inside the node.
pub const INTERNAL: &str = "internal";
/// The node a call went to is down or unreachable.
pub const NODE_DOWN: &str = "node.down";
/// A call did not finish within its deadline.
pub const TIMEOUT: &str = "timeout";
/// The cluster cannot commit or read right now (no leader, no majority).
pub const NO_QUORUM: &str = "cluster.unavailable";
/// The command needs a cluster and the node is not part of one.
pub const NO_CLUSTER: &str = "cluster.none";
