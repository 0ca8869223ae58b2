//! `sys.usr`: the user registry, by public key.
//!
//! A user is an ed25519 key pair created on the user's own machine (`plx user new`); the
//! node only ever learns the public key and a name for it. Changes from vnix:
//!
//! - no private key ever travels to or is stored by a node: a message carrying `priv` is
//!   refused, and the node never creates keys (vnix's `name@sys.usr` made a key pair on the
//!   node and printed the private key);
//! - registering binds the **caller's own key** (the key that signed the message) to a name,
//!   so nobody can register a key they do not hold — except the node's admin, who may
//!   register another user's public key;
//! - registrations are persistent (in the node database) and listed by `get`;
//! - "logging in" is not a command: every message is signed by its author, so the author is
//!   whoever signed it (`who`).
//!
//! vnix's three registry errors remain, with distinct codes: [`NAME_TAKEN`] (the name belongs
//! to another key), [`ALREADY_REGISTERED`] (this key already has this name), [`KEY_TAKEN`]
//! (this key already has another name).

use std::sync::Arc;

use plexus_identity::{validate_name, PublicKey};
use plexus_kernel::{code, BoxFuture, Command, Cx, Error, Example, Help, Kernel, Outcome, Service};
use plexus_store::{NodeDb, StoreError, UserConflict};
use plexus_units::{Map, Unit};

use crate::forms::command;

const NAME: &str = "sys.usr";

/// Error code: the name is registered to another key.
pub const NAME_TAKEN: &str = "usr.name.taken";
/// Error code: this key is already registered under this name.
pub const ALREADY_REGISTERED: &str = "usr.registered";
/// Error code: this key is already registered under another name.
pub const KEY_TAKEN: &str = "usr.key.taken";

/// The `sys.usr` service: registrations go to the node database and the kernel's registry.
pub struct SysUsr {
    db: Arc<NodeDb>,
    help: Help,
    /// Registrations one at a time, so the check against the kernel's registry and the two
    /// writes are not interleaved with another registration.
    registering: tokio::sync::Mutex<()>,
}

/// The `sys.usr` service, persisting registrations in `db`.
pub fn service(db: Arc<NodeDb>) -> Arc<dyn Service> {
    Arc::new(SysUsr {
        db,
        help: help(),
        registering: tokio::sync::Mutex::new(()),
    })
}

/// Registers every user stored in `db` with `kernel` (at node start, before serving), so
/// registrations made through `sys.usr` survive restarts. Users the kernel already knows (the
/// admin) and registrations that clash with them are skipped. Gives how many were added.
pub fn load_users(kernel: &Kernel, db: &NodeDb) -> Result<usize, Error> {
    let mut added = 0;
    for (key, name) in db.users().map_err(crate::store_error)? {
        let Ok(key) = PublicKey::from_bytes(&key) else {
            continue;
        };
        if kernel.register_user(key, &name).is_ok() {
            added += 1;
        }
    }
    Ok(added)
}

// The examples run in order, as the node's admin, on a node where bob is not registered.
fn help() -> Help {
    Help {
        name: NAME,
        info: "The user registry: names for users' public keys. Private keys never leave \
               their users' machines",
        tut: vec![
            Example {
                info: "The admin registers another user's public key under a name",
                com: "{reg:bob pub:x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"}@sys.usr",
                res: Some("{ath:bob pub:x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"}"),
            },
            Example {
                info: "Look a user up by name",
                com: "(get bob)@sys.usr",
                res: Some("{ath:bob pub:x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"}"),
            },
            Example {
                info: "Look a user up by public key",
                com: "(get x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\")@sys.usr",
                res: Some("{ath:bob pub:x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"}"),
            },
        ],
        man: vec![
            Command {
                name: "get",
                info: "All registered users as a list of {ath:name pub:key}, ordered by key; \
                       with a name or a key, that user (not.found if unregistered)",
                forms: &["get", "list", "(get name)", "(get x\"key\")"],
            },
            Command {
                name: "who",
                info: "The caller: {ath:name pub:key}, with ath - if the caller's key is not \
                       registered",
                forms: &["who"],
            },
            Command {
                name: "reg",
                info: "Registers the caller's own key (the key that signed the message) under \
                       a name: 1 to 64 ASCII letters, digits, . _ -. With pub, registers that \
                       key instead: only the node's admin may register another user's key. \
                       Errors: usr.name.taken (the name has another key), usr.registered (this \
                       key has this name already), usr.key.taken (this key has another name). \
                       A message with priv is refused: private keys never leave their users' \
                       machines. Gives the new {ath pub}",
                forms: &["(reg name)", "{reg:name}", "{reg:name pub:x\"32 bytes\"}"],
            },
        ],
    }
}

impl Service for SysUsr {
    fn help(&self) -> &Help {
        &self.help
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Unit::Map(m) = &msg {
                if m.get_str("priv").is_some() {
                    return Err(Error::bad_argument(
                        "sys.usr refuses private keys: a private key never leaves its user's \
                         machine, and no node stores one. Register your public key instead: \
                         send (reg name)@sys.usr signed with your key",
                    ));
                }
                if m.get_str("ath").is_some() {
                    return Err(Error::bad_argument(
                        "nodes do not create users or log them in: create your key pair on \
                         your own machine (plx user new), then register its public key with \
                         (reg name)@sys.usr; every message you sign is then yours",
                    ));
                }
            }
            let Some(c) = command(&msg) else {
                return Err(Error::unknown_command(NAME, &msg));
            };
            let kernel = cx.kernel();
            match (c.name, c.arg) {
                ("get" | "list", None) => Ok(Some(Unit::List(
                    kernel
                        .users()
                        .iter()
                        .map(|(k, n)| entry(Some(n), k))
                        .collect(),
                ))),
                ("get", Some(who)) => {
                    let users = kernel.users();
                    let found = match who {
                        Unit::Str(name) => users.iter().find(|(_, n)| n == &**name),
                        Unit::Bytes(b) => users.iter().find(|(k, _)| k.as_bytes() == &b[..]),
                        other => {
                            return Err(Error::bad_argument(format!(
                                "get takes a user's name or public key, not {}",
                                plexus_units::to_short(other, 40)
                            )))
                        }
                    };
                    found.map(|(k, n)| Some(entry(Some(n), k))).ok_or_else(|| {
                        Error::new(
                            code::NOT_FOUND,
                            format!("no user {} is registered", plexus_units::to_short(who, 80)),
                        )
                    })
                }
                ("who", None) => {
                    let me = cx.author();
                    Ok(Some(entry(kernel.user_name(me).as_deref(), me)))
                }
                ("reg", Some(name)) => {
                    let Unit::Str(name) = name else {
                        return Err(Error::bad_argument(format!(
                            "reg takes a name, not {}",
                            plexus_units::to_short(name, 40)
                        )));
                    };
                    let key = match c.opt("pub") {
                        None => *cx.author(),
                        Some(k) => {
                            let key = PublicKey::from_unit(k)
                                .map_err(|e| Error::bad_argument(format!("pub: {e}")))?;
                            if key != *cx.author() && cx.author() != kernel.admin() {
                                return Err(Error::new(
                                    code::DENIED,
                                    "only the node's admin may register another user's key; \
                                     send (reg name)@sys.usr signed with the key to register",
                                ));
                            }
                            key
                        }
                    };
                    self.register(cx, key, name).await?;
                    Ok(Some(entry(Some(name), &key)))
                }
                _ => Err(Error::unknown_command(NAME, &msg)),
            }
        })
    }
}

impl SysUsr {
    async fn register(&self, cx: &Cx, key: PublicKey, name: &str) -> Result<(), Error> {
        validate_name(name).map_err(|e| Error::bad_argument(e.to_string()))?;
        if key.is_weak() {
            return Err(Error::bad_argument(
                "this public key is weak (a point of small order): no signature by it can be \
                 trusted, so it cannot be registered",
            ));
        }
        let _one_at_a_time = self.registering.lock().await;
        let kernel = cx.kernel();
        let users = kernel.users();
        if let Some((_, existing)) = users.iter().find(|(k, _)| *k == key) {
            return Err(conflict(if existing == name {
                UserConflict::AlreadyRegistered {
                    name: name.to_owned(),
                }
            } else {
                UserConflict::KeyTaken {
                    existing: existing.clone(),
                }
            }));
        }
        if users.iter().any(|(_, n)| n == name) {
            return Err(conflict(UserConflict::NameTaken {
                name: name.to_owned(),
            }));
        }
        let db = self.db.clone();
        let owned = name.to_owned();
        let bytes = key.to_bytes();
        blocking(move || db.add_user(bytes, &owned))
            .await?
            .map_err(|e| match e {
                StoreError::User(c) => conflict(c),
                other => crate::store_error(other),
            })?;
        kernel.register_user(key, name)
    }
}

/// A registry error with its own code.
fn conflict(c: UserConflict) -> Error {
    let code = match &c {
        UserConflict::NameTaken { .. } => NAME_TAKEN,
        UserConflict::AlreadyRegistered { .. } => ALREADY_REGISTERED,
        UserConflict::KeyTaken { .. } => KEY_TAKEN,
    };
    Error::new(code, c.to_string())
}

/// `{ath:name pub:key}`, `ath` none when unregistered.
fn entry(name: Option<&str>, key: &PublicKey) -> Unit {
    let mut m = Map::new();
    m.insert(Unit::str("ath"), name.map_or(Unit::None, Unit::str));
    m.insert(Unit::str("pub"), key.to_unit());
    Unit::Map(m)
}

/// Runs blocking work on tokio's blocking threads, or inline outside a tokio runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| Error::internal(format!("registration failed: {e}"))),
        Err(_) => Ok(f()),
    }
}
