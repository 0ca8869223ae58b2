//! `io.store`: the node's persistent unit store.
//!
//! The store is one map of units, addressed by paths (`@txt.hello`). It lives in a
//! [`UnitStore`]: the node's database ([`plexus_store::NodeDb`], durable: a save is on disk
//! when the call returns), or another implementation (memory for tests, a replicated store
//! for a cluster).
//!
//! Changes from vnix:
//!
//! - saves reach the disk (vnix kept them in RAM);
//! - saving to a path that does not exist yet **creates** it (vnix silently ignored it);
//!   a path through a scalar is an error and changes nothing;
//! - maps keep unique keys: saving `(k v)` into a map sets entry `k`;
//! - a missing path is a `not.found` error that names the path, and stops only that call;
//! - the `(save (u @path))` form that vnix's help promised exists;
//! - `get.size` is the canonical encoded size in bytes (what the unit costs to store or
//!   send), and `.kb`/`.mb`/`.gb` give exact decimals (1 kb = 1024 bytes).
//!
//! Delivery is raw: paths are taken literally (so `@out` or `@0` in a message name store
//! paths, never parts of the message), while the unit to save is evaluated (streams run, refs
//! resolve against the message) before it is saved. A path argument may also be a string
//! `a.b`, or a stream that gives a ref or a string.

use std::sync::{Arc, LazyLock};

use plexus_kernel::{
    needs_eval, Arg, BoxFuture, Cx, Delivery, Entry, Error, Example, Help, Outcome, Service, Table,
};
use plexus_store::{Caller, SaveBy, SizeUnit, UnitStore};
use plexus_units::{Map, Path, Unit};

use crate::forms::command;

const NAME: &str = "io.store";

/// The `io.store` service over a [`UnitStore`].
pub struct IoStore {
    store: Arc<dyn UnitStore>,
}

/// What a command does.
#[derive(Clone, Copy)]
enum Store {
    Load,
    Save,
    /// `get.size` and `get.size.kb|mb|gb`.
    Size,
}

/// The `io.store` service over `store`.
pub fn service(store: Arc<dyn UnitStore>) -> Arc<dyn Service> {
    Arc::new(IoStore::new(store))
}

impl IoStore {
    /// The service over `store`.
    pub fn new(store: Arc<dyn UnitStore>) -> IoStore {
        IoStore { store }
    }

    /// The `io.store` service over `store`, ready to register.
    pub fn service(store: Arc<dyn UnitStore>) -> Arc<dyn Service> {
        service(store)
    }
}

// The examples run in this order on one kernel whose store starts without a `tut` entry
// (`check_examples` in the tests); each builds on the ones before it.
/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Store>> = LazyLock::new(table);

fn table() -> Table<Store> {
    Table::new(
        NAME,
        "The node's persistent unit store: one map of units addressed by paths, \
               saved on disk before each save returns",
        vec![
            Example {
                info: "Save a unit at a new path: the path is created",
                com: "{save:{lang:rust} out:@tut.txt}@io.store",
                res: None,
            },
            Example {
                info: "Load the unit at a path",
                com: "(load @tut.txt)@io.store",
                res: Some("{lang:rust}"),
            },
            Example {
                info: "Saving a map into a map merges them",
                com: "{save:{hello:`Hello, Plexus!`} out:@tut.txt}@io.store",
                res: None,
            },
            Example {
                info: "The merged map",
                com: "(load @tut.txt)@io.store",
                res: Some("{lang:rust hello:`Hello, Plexus!`}"),
            },
            Example {
                info: "The pair form of save",
                com: "(save ([1 2] @tut.list))@io.store",
                res: None,
            },
            Example {
                info: "Saving into a list appends (a list's elements, or one unit)",
                com: "(save ([3] @tut.list))@io.store",
                res: None,
            },
            Example {
                info: "The list after both saves",
                com: "(load @tut.list)@io.store",
                res: Some("[1 2 3]"),
            },
            Example {
                info: "Saving a pair (key value) into a map sets one entry",
                com: "(save ((lang plexus) @tut.txt))@io.store",
                res: None,
            },
            Example {
                info: "An entry's value",
                com: "(load @tut.txt.lang)@io.store",
                res: Some("plexus"),
            },
            Example {
                info: "Size in bytes of the canonical encoding of [1 2 3]",
                com: "(get.size @tut.list)@io.store",
                res: Some("5"),
            },
            Example {
                info: "The same in kb (1024 bytes), exactly",
                com: "(get.size.kb @tut.list)@io.store",
                res: Some("0.0048828125"),
            },
        ],
        vec![
            Entry::new(
                "load",
                "The whole store, or the unit at a path, without other users' private \
                       entries. A path that is not in the store (or is in someone else's \
                       private entry) is a not.found error naming it",
                &["load", "(load @path)", "{load:@path}"],
                Arg::Optional,
                Store::Load,
            ),
            Entry::new(
                "save",
                "Saves u at a path, merging with what is there: equal units stay; a \
                       list gets a list's elements or one unit appended; a map gets a pair \
                       (k v) as entry k, or a map merged key by key (new keys last); anything \
                       else is replaced. A missing path is created (maps along the way); a \
                       path through a scalar is an arg.bad error and changes nothing. u is \
                       evaluated first. A new top-level entry belongs to you; only its owner \
                       or an admin may save into it (denied otherwise). private:t hides the \
                       entry from other users (admins still see it), private:f shows it \
                       again. No value; the save is on disk when the call returns",
                &[
                    "{save:u out:@path}",
                    "{save:u out:@path private:t}",
                    "(save (u @path))",
                ],
                Arg::Optional,
                Store::Save,
            ),
            Entry::new(
                "get.size",
                "Size in bytes of the canonical binary encoding of the whole store or \
                       of the unit at a path (an int); .kb, .mb, .gb give it in units of \
                       1024, 1024², 1024³ bytes as an exact decimal",
                &[
                    "get.size",
                    "get.size.kb",
                    "get.size.mb",
                    "get.size.gb",
                    "(get.size @path)",
                    "(get.size.kb @path)",
                ],
                Arg::Optional,
                Store::Size,
            )
            .family(),
        ],
    )
}

impl Service for IoStore {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            // A message that is not a command as written (a stream giving one, a pair whose
            // head is a stream…) is evaluated first.
            let msg = if command(&msg).is_none() && needs_eval(&msg) != (false, false) {
                cx.eval(msg).await?
            } else {
                msg
            };
            let Some((entry, c)) = TABLE.find(&msg) else {
                return Err(Error::unknown_command(NAME, &msg));
            };
            match entry.run {
                Store::Load => {
                    let path = match c.arg {
                        None => None,
                        Some(a) => Some(path_arg(cx, a, "load").await?),
                    };
                    Ok(Some(
                        self.store
                            .load(path.as_ref(), caller(cx))
                            .await
                            .map_err(crate::store_error)?,
                    ))
                }
                Store::Save => {
                    let (value, path, private) = save_args(cx, &msg).await?;
                    let by = SaveBy {
                        caller: caller(cx),
                        private,
                        once: crate::once(cx),
                    };
                    self.store
                        .save(&path, value, by)
                        .await
                        .map_err(crate::store_error)?;
                    Ok(None)
                }
                Store::Size => match SizeUnit::parse_command(c.name, "get.size") {
                    Some(unit) => {
                        let path = match c.arg {
                            None => None,
                            Some(a) => Some(path_arg(cx, a, c.name).await?),
                        };
                        let bytes = self
                            .store
                            .size(path.as_ref(), caller(cx))
                            .await
                            .map_err(crate::store_error)?;
                        Ok(Some(unit.scale(bytes)))
                    }
                    None => Err(Error::unknown_command(NAME, &msg)),
                },
            }
        })
    }
}

/// Who is asking, for the store's ownership rules: the root message's author, an admin if
/// it is the node's admin.
fn caller(cx: &Cx) -> Caller {
    Caller {
        user: cx.author().to_bytes(),
        admin: cx.author() == cx.kernel().admin(),
    }
}

/// The unit and path of a save, in either form. The unit is evaluated as part of the message
/// with the path left out (so refs in it resolve against the message, and the path is never
/// read as a ref to the message).
async fn save_args(cx: &Cx, msg: &Unit) -> Result<(Unit, Path, Option<bool>), Error> {
    const FORMS: &str = "save takes {save:u out:@path private:t|f} or (save (u @path))";
    match msg {
        Unit::Map(m) => {
            let out = m
                .get_str("out")
                .ok_or_else(|| Error::bad_argument(format!("{FORMS}: out:@path is missing")))?;
            let path = path_arg(cx, out, "save").await?;
            let rest: Vec<(Unit, Unit)> = m
                .iter()
                .filter(|(k, _)| k.as_str() != Some("out"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let rest = Map::from_entries(rest).map_err(|e| Error::internal(e.to_string()))?;
            let (value, private) = match cx.eval(Unit::Map(rest)).await? {
                Unit::Map(m) => (
                    m.get_str("save").cloned().unwrap_or(Unit::None),
                    m.get_str("private").cloned(),
                ),
                _ => (Unit::None, None),
            };
            let private = match private {
                None => None,
                Some(Unit::Bool(b)) => Some(b),
                Some(other) => {
                    return Err(Error::bad_argument(format!(
                        "private takes t or f, not {}",
                        plexus_units::to_short(&other, 40)
                    )))
                }
            };
            Ok((value, path, private))
        }
        Unit::Pair(p) => {
            let arg = match &p.1 {
                Unit::Pair(_) => p.1.clone(),
                other => cx.eval(other.clone()).await?,
            };
            let Unit::Pair(arg) = arg else {
                return Err(Error::bad_argument(format!(
                    "{FORMS}, not {}",
                    plexus_units::to_short(msg, 40)
                )));
            };
            let (value, out) = *arg;
            let path = path_arg(cx, &out, "save").await?;
            let evaluated = cx
                .eval(Unit::pair(p.0.clone(), Unit::pair(value, Unit::None)))
                .await?;
            let value = match evaluated {
                Unit::Pair(p) => match p.1 {
                    Unit::Pair(q) => q.0,
                    _ => Unit::None,
                },
                _ => Unit::None,
            };
            Ok((value, path, None))
        }
        _ => Err(Error::bad_argument(FORMS)),
    }
}

/// A path argument: a ref `@a.b` (taken literally), a string `a.b`, or a stream giving one
/// of those.
async fn path_arg(cx: &Cx, u: &Unit, cmd: &str) -> Result<Path, Error> {
    let evaluated;
    let u = if matches!(u, Unit::Stream(_)) {
        evaluated = cx.eval(u.clone()).await?;
        &evaluated
    } else {
        u
    };
    match u {
        Unit::Ref(p) => Ok(p.clone()),
        Unit::Str(s) => Path::parse_dotted(s).ok_or_else(|| {
            Error::bad_argument(format!(
                "{cmd}: {} is not a path (segments separated by dots, none empty)",
                plexus_units::to_short(u, 40)
            ))
        }),
        other => Err(Error::bad_argument(format!(
            "{cmd} takes a path like @a.b, not {}",
            plexus_units::to_short(other, 40)
        ))),
    }
}
