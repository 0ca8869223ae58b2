//! Plexus kernel: the per-node service runtime.
//!
//! A [`Kernel`] holds the services of a node ([`Service`], registered with a [`Policy`]), the
//! registered users and the task table. A message is evaluated in a call context [`Cx`]: who
//! is acting (the author of the signed root message), for which session ([`Terminal`]), in
//! which task. Evaluation follows `docs/evaluation.md`:
//!
//! - a stream `u@serv` sends `u` to `serv` and stands for the reply; `x@a@b` sends `x` to `a`
//!   and the result to `b`;
//! - a service with [`Delivery::Evaluated`] (the default) receives its message with every
//!   stream and ref in it evaluated, depth first and left to right, each stream exactly once;
//!   a [`Delivery::Raw`] service receives the message as written and evaluates what it needs;
//! - a ref `@a.b` is the part of the message being handled at that path (a path it does not
//!   have is left as a ref, for services that take paths);
//! - `serv` and `help`, `help.name`, `help.info`, `help.tut`, `help.man` work on every
//!   service;
//! - errors are units ([`Error`]) that stop the evaluation they occur in and reach the caller.
//!
//! A service usually keeps its commands in a [`Table`], which gives its help, reads commands
//! (`cmd`, `(cmd arg)`, `{cmd:arg opt:v}`), checks their arguments and says what runs them;
//! [`help_text`] turns help units into text for people.
//!
//! ```
//! use std::sync::Arc;
//! use plexus_kernel::{BoxFuture, Cx, Error, Help, Kernel, NodeInfo, Outcome, Policy, Service};
//! use plexus_units::{parse, Unit};
//!
//! struct Neg(Help);
//! impl Service for Neg {
//!     fn help(&self) -> &Help { &self.0 }
//!     fn call<'a>(&'a self, _cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
//!         Box::pin(async move {
//!             match msg.as_int().and_then(|i| i.to_i64()) {
//!                 Some(i) => Ok(Some(Unit::int(-i))),
//!                 None => Err(Error::unknown_command("neg", &msg)),
//!             }
//!         })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let key = plexus_identity::Keypair::generate(
//!     plexus_identity::KeyKind::User, "admin", &mut rand_core::OsRng).unwrap();
//! let node = NodeInfo { id: "n1".into(), name: "a".into() };
//! let kernel = Kernel::new(node, key.public(), "admin");
//! let help = Help { name: "neg", info: "Negates an int", tut: vec![], man: vec![] };
//! kernel.register(Arc::new(Neg(help)), None, Policy::Anyone).unwrap();
//! let cx = kernel.context(key.public(), [0; 32], None, 0);
//! let out = cx.run(parse("[5@neg@neg 7@neg]").unwrap()).await.unwrap();
//! assert_eq!(out, Some(parse("[5 -7]").unwrap()));
//! # });
//! ```

mod cx;
mod error;
mod help_text;
mod kernel;
mod meter;
mod remote;
mod service;
mod stats;
mod table;
mod terminal;

pub use cx::{needs_eval, Cx, Evaluation, MAX_CALL_DEPTH};
pub use error::{code, Error};
pub use help_text::help_text;
pub use kernel::{Kernel, NodeInfo, TaskHandle, TaskInfo, SERVICE_MAILBOX};
pub use meter::{Meter, DEFAULT_EVAL_MEMORY};
pub use remote::{NodeRef, Remote};
pub use service::{BoxFuture, Command, Delivery, Example, Help, Outcome, Policy, Service};
pub use stats::{CallFigures, LATENCY_BOUNDS};
pub use table::{command, Arg, Cmd, Entry, Table};
pub use terminal::Terminal;
