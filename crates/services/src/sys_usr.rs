//! `sys.usr`: the user registry, by public key.
//!
//! A user is an ed25519 key pair created on the user's own machine (`plx user new`); the
//! node only ever learns the public key and a name for it. Changes from vnix:
//!
//! - no private key ever travels to or is stored by a node: a message carrying `priv` is
//!   refused, and the node never creates keys (vnix's `name@sys.usr` made a key pair on the
//!   node and printed the private key);
//! - registering is the node admin's decision by default: the admin registers a user's public
//!   key (`{reg:name pub:key}`). A node started with open registration
//!   ([`Registration::Open`]) also lets a key register itself (`(reg name)`, signed with it),
//!   so nobody can register a key they do not hold;
//! - registrations are persistent and listed by `get`: a single node keeps them in its
//!   database, a cluster in its replicated state (every node's kernel follows it), through a
//!   [`Registry`];
//! - the admin removes (`del`) and renames (`ren`) users; users may remove or rename
//!   themselves;
//! - a signed message changes the registry once in the whole system: a copy sent again, to
//!   another node or after a restart, is refused with `msg.replay` (`docs/identity.md` 7.1);
//! - "logging in" is not a command: every message is signed by its author, so the author is
//!   whoever signed it (`who`).
//!
//! vnix's three registry errors remain, with distinct codes: [`NAME_TAKEN`] (the name belongs
//! to another key), [`ALREADY_REGISTERED`] (this key already has this name), [`KEY_TAKEN`]
//! (this key already has another name).

use std::sync::{Arc, LazyLock};

use plexus_identity::{validate_name, PublicKey};
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Entry, Error, Example, Help, Kernel, Outcome, Service, Table,
};
use plexus_store::{NodeDb, Once, StoreError, UserConflict};
use plexus_units::{Map, Unit};

const NAME: &str = "sys.usr";

/// Error code: the name is registered to another key.
pub const NAME_TAKEN: &str = "usr.name.taken";
/// Error code: this key is already registered under this name.
pub const ALREADY_REGISTERED: &str = "usr.registered";
/// Error code: this key is already registered under another name.
pub const KEY_TAKEN: &str = "usr.key.taken";
/// Error code: a user invite that is unknown, already used or expired.
pub const INVITE_BAD: &str = "usr.invite.bad";

/// How long a user invite is valid unless told otherwise: a day.
pub const INVITE_TTL_SECS: u64 = 24 * 3600;
/// The longest a user invite may be valid: 30 days.
pub const MAX_INVITE_TTL_SECS: u64 = 30 * 24 * 3600;

/// Where the registrations are kept: the node database of a single node, the replicated
/// state of a cluster. sys.usr checks for conflicts in the kernel's registry first, then
/// writes here, then updates the kernel's registry; a registry refuses conflicts with the
/// codes [`NAME_TAKEN`], [`ALREADY_REGISTERED`], [`KEY_TAKEN`] too (another node may have
/// registered the same name meanwhile).
///
/// Every change is made for `once`, the signed message asking for it (none for a change the
/// node makes on its own): it applies only if no other evaluation of that message changed the
/// registry or the store before (`msg.replay` otherwise; [`plexus_store::OnceTables`]), so a
/// replayed copy of a message changes nothing.
pub trait Registry: Send + Sync {
    /// Registers `key` under `name`.
    fn add<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Removes user `name` (`not.found` if there is none).
    fn remove<'a>(&'a self, name: &'a str, once: Option<Once>) -> BoxFuture<'a, Result<(), Error>>;
    /// Renames user `name` to `to` (`not.found`, [`NAME_TAKEN`]).
    fn rename<'a>(
        &'a self,
        name: &'a str,
        to: &'a str,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Records a one-time user invite: `id` is the hash of its token ([`invite_id`]), valid
    /// until `expires_ms` (ms since the Unix epoch).
    fn add_invite(
        &self,
        id: [u8; 32],
        expires_ms: u64,
        once: Option<Once>,
    ) -> BoxFuture<'_, Result<(), Error>>;
    /// Registers `key` under `name` as [`Registry::add`] does, using up invite `invite`
    /// ([`INVITE_BAD`] if it is unknown, used or expired at `now_ms`).
    fn add_invited<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        invite: [u8; 32],
        now_ms: u64,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// The id a user invite is recorded under: the hash of its token, so that what the node
/// stores (and a cluster replicates) cannot be used to register.
pub fn invite_id(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Who may register a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Registration {
    /// Only the node's admin registers keys (the default).
    #[default]
    Admin,
    /// Any key may also register itself: self-service, for nodes whose admin wants it.
    Open,
}

/// The `sys.usr` service: registrations go to a [`Registry`] and the kernel's registry.
pub struct SysUsr {
    registry: Arc<dyn Registry>,
    registration: Registration,
    /// Changes one at a time, so the check against the kernel's registry and the two writes
    /// are not interleaved with another change.
    changing: tokio::sync::Mutex<()>,
}

/// The `sys.usr` service, keeping registrations in `registry`.
pub fn service(registry: Arc<dyn Registry>, registration: Registration) -> Arc<dyn Service> {
    Arc::new(SysUsr {
        registry,
        registration,
        changing: tokio::sync::Mutex::new(()),
    })
}

/// A single node's registry: its database.
impl Registry for NodeDb {
    fn add<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let db = self.clone();
            let name = name.to_owned();
            blocking(move || db.add_user(key.to_bytes(), &name, once.as_ref()))
                .await?
                .map_err(store_error)
        })
    }

    fn remove<'a>(&'a self, name: &'a str, once: Option<Once>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let db = self.clone();
            let owned = name.to_owned();
            match blocking(move || db.remove_user(&owned, once.as_ref()))
                .await?
                .map_err(store_error)?
            {
                Some(_) => Ok(()),
                None => Err(no_user(name)),
            }
        })
    }

    fn rename<'a>(
        &'a self,
        name: &'a str,
        to: &'a str,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let db = self.clone();
            let (owned, to) = (name.to_owned(), to.to_owned());
            match blocking(move || db.rename_user(&owned, &to, once.as_ref()))
                .await?
                .map_err(store_error)?
            {
                Some(_) => Ok(()),
                None => Err(no_user(name)),
            }
        })
    }

    fn add_invite(
        &self,
        id: [u8; 32],
        expires_ms: u64,
        once: Option<Once>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let db = self.clone();
            blocking(move || db.add_user_invite(id, expires_ms, once.as_ref()))
                .await?
                .map_err(store_error)
        })
    }

    fn add_invited<'a>(
        &'a self,
        key: PublicKey,
        name: &'a str,
        invite: [u8; 32],
        now_ms: u64,
        once: Option<Once>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let db = self.clone();
            let name = name.to_owned();
            blocking(move || {
                db.add_invited_user(key.to_bytes(), &name, invite, now_ms, once.as_ref())
            })
            .await?
            .map_err(store_error)
        })
    }
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::User(c) => conflict(c),
        other => crate::store_error(other),
    }
}

fn no_user(name: &str) -> Error {
    Error::new(code::NOT_FOUND, format!("there is no user named {name}"))
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

/// What a command does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Usr {
    Get,
    Who,
    Reg,
    Invite,
    Del,
    Ren,
}

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Usr>> = LazyLock::new(table);

// The examples run in order, as the node's admin, on a node where bob is not registered.
fn table() -> Table<Usr> {
    Table::new(
        NAME,
        "The user registry: names for users' public keys. Private keys never leave \
               their users' machines. A signed message changes the registry once: a copy \
               sent again, to any node or after a restart, is refused with msg.replay",
        vec![
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
            Example {
                info: "Rename a user",
                com: "{ren:bob to:robert}@sys.usr",
                res: Some("{ath:robert pub:x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"}"),
            },
            Example {
                info: "Remove a user",
                com: "(del robert)@sys.usr",
                res: Some("{ath:- pub:x\"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"}"),
            },
        ],
        vec![
            Entry::new(
                "get",
                "All registered users as a list of {ath:name pub:key}, ordered by key; \
                       with a name or a key, that user (not.found if unregistered)",
                &["get", "list", "(get name)", "(get x\"key\")"],
                Arg::Optional,
                Usr::Get,
            )
            .also(&["list"]),
            Entry::new(
                "who",
                "The caller: {ath:name pub:key}, with ath - if the caller's key is not \
                       registered",
                &["who"],
                Arg::None,
                Usr::Who,
            ),
            Entry::new(
                "reg",
                "Registers key pub under a name: 1 to 64 ASCII letters, digits, . _ -. \
                       Only the node's admin registers users, unless the node was started with \
                       open registration (plx node --open-registration): then a key may also \
                       register itself, without pub (the key that signed the message). With \
                       inv, the key that signed the message registers itself with a user \
                       invite (see invite), once. In a cluster the registration holds on every \
                       node. Errors: denied, msg.replay, usr.invite.bad (unknown, used or \
                       expired invite), usr.name.taken (the name has another key), \
                       usr.registered (this key has this name already), usr.key.taken (this key \
                       has another name). A \
                       message with priv is refused: private keys never leave their users' \
                       machines. Gives the new {ath pub}",
                &[
                    "{reg:name pub:x\"32 bytes\"}",
                    "{reg:name inv:token}",
                    "(reg name)",
                    "{reg:name}",
                ],
                Arg::Required,
                Usr::Reg,
            ),
            Entry::new(
                "invite",
                "The node's admin hands out a one-time user invite: gives a token, valid \
                       for a day or for the seconds given (at most 30 days). Whoever holds it \
                       registers their own key once with {reg:name inv:token}; in a cluster it \
                       may be used on any node",
                &["invite", "(invite seconds)"],
                Arg::Optional,
                Usr::Invite,
            ),
            Entry::new(
                "del",
                "Removes a user: by the node's admin, or by the user itself. The node's \
                       admin stays. Gives {ath:- pub:key}",
                &["(del name)"],
                Arg::Required,
                Usr::Del,
            ),
            Entry::new(
                "ren",
                "Renames a user, keeping its key: by the node's admin, or by the user \
                       itself. Errors: not.found, msg.replay, usr.name.taken. Gives the new {ath pub}",
                &["{ren:name to:new}"],
                Arg::Required,
                Usr::Ren,
            ),
        ],
    )
}

impl Service for SysUsr {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Unit::Map(m) = &msg {
                if m.get_str("priv").is_some() {
                    return Err(Error::bad_argument(
                        "sys.usr refuses private keys: a private key never leaves its user's \
                         machine, and no node stores one. Register your public key instead: \
                         the admin registers it ({reg:name pub:key}), or you use an invite \
                         ({reg:name inv:token}) or, where registration is open, (reg name)",
                    ));
                }
                if m.get_str("ath").is_some() {
                    return Err(Error::bad_argument(
                        "nodes do not create users or log them in: create your key pair on \
                         your own machine (plx user new), then have its public key registered \
                         (by the admin, with an invite {reg:name inv:token}, or where \
                         registration is open with (reg name)); every message you sign is \
                         then yours",
                    ));
                }
            }
            let Some((command, c)) = TABLE.find(&msg) else {
                return Err(Error::unknown_command(NAME, &msg));
            };
            let kernel = cx.kernel();
            match (command.run, c.arg) {
                (Usr::Get, None) => Ok(Some(Unit::List(
                    kernel
                        .users()
                        .iter()
                        .map(|(k, n)| entry(Some(n), k))
                        .collect(),
                ))),
                // `list` is bare only.
                (Usr::Get, Some(who)) if c.name == "get" => {
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
                (Usr::Who, None) => {
                    let me = cx.author();
                    Ok(Some(entry(kernel.user_name(me).as_deref(), me)))
                }
                (Usr::Reg, Some(name)) if c.opt("inv").is_some() => {
                    let name = name_arg("reg", name)?;
                    let token = match c.opt("inv") {
                        Some(Unit::Str(t)) => t,
                        _ => return Err(Error::bad_argument("inv takes the invite's token")),
                    };
                    let key = *cx.author();
                    if c.opt("pub")
                        .is_some_and(|k| PublicKey::from_unit(k).ok() != Some(key))
                    {
                        return Err(Error::new(
                            code::DENIED,
                            "an invite registers the key that signs the message; leave out pub",
                        ));
                    }
                    self.register_invited(cx, key, name, invite_id(token))
                        .await?;
                    Ok(Some(entry(Some(name), &key)))
                }
                (Usr::Invite, arg) => {
                    if cx.author() != kernel.admin() {
                        return Err(Error::new(
                            code::DENIED,
                            "only the node's admin hands out user invites",
                        ));
                    }
                    let ttl = match arg {
                        None => INVITE_TTL_SECS,
                        Some(u) => u
                            .as_int()
                            .and_then(plexus_units::Int::to_i64)
                            .and_then(|s| u64::try_from(s).ok())
                            .filter(|s| (1..=MAX_INVITE_TTL_SECS).contains(s))
                            .ok_or_else(|| {
                                Error::bad_argument(format!(
                                    "invite takes how many seconds it is valid: 1 to \
                                     {MAX_INVITE_TTL_SECS}"
                                ))
                            })?,
                    };
                    let token = new_token();
                    self.registry
                        .add_invite(
                            invite_id(&token),
                            now_ms().saturating_add(ttl * 1000),
                            crate::once(cx),
                        )
                        .await?;
                    Ok(Some(Unit::str(&token)))
                }
                (Usr::Reg, Some(name)) => {
                    let name = name_arg("reg", name)?;
                    let key = match c.opt("pub") {
                        None => *cx.author(),
                        Some(k) => PublicKey::from_unit(k)
                            .map_err(|e| Error::bad_argument(format!("pub: {e}")))?,
                    };
                    let by_admin = cx.author() == kernel.admin();
                    if !by_admin && (key != *cx.author() || self.registration != Registration::Open)
                    {
                        return Err(Error::new(
                            code::DENIED,
                            "only the node's admin registers users here: send your public key \
                             (plx user export --public) to the admin, who registers it with \
                             {reg:name pub:key}@sys.usr or gives you an invite for \
                             {reg:name inv:token}@sys.usr",
                        ));
                    }
                    self.register(cx, key, name).await?;
                    Ok(Some(entry(Some(name), &key)))
                }
                (Usr::Del, Some(name)) => {
                    let name = name_arg("del", name)?;
                    let _one_at_a_time = self.changing.lock().await;
                    let key = self.may_change(cx, name)?;
                    self.registry.remove(name, crate::once(cx)).await?;
                    kernel.remove_user(&key);
                    Ok(Some(entry(None, &key)))
                }
                (Usr::Ren, Some(name)) => {
                    let name = name_arg("ren", name)?;
                    let to = match c.opt("to") {
                        Some(to) => name_arg("ren", to)?,
                        None => {
                            return Err(Error::bad_argument(
                                "ren needs the new name: {ren:old to:new}",
                            ))
                        }
                    };
                    validate_name(to).map_err(|e| Error::bad_argument(e.to_string()))?;
                    let _one_at_a_time = self.changing.lock().await;
                    let key = self.may_change(cx, name)?;
                    if to != name && kernel.users().iter().any(|(_, n)| n == to) {
                        return Err(conflict(UserConflict::NameTaken {
                            name: to.to_owned(),
                        }));
                    }
                    self.registry.rename(name, to, crate::once(cx)).await?;
                    kernel.remove_user(&key);
                    // The cluster's registry may have reached the kernel already.
                    let _ = kernel.register_user(key, to);
                    Ok(Some(entry(Some(to), &key)))
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
        let _one_at_a_time = self.changing.lock().await;
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
        self.registry.add(key, name, crate::once(cx)).await?;
        // The cluster's registry may have reached the kernel already.
        let _ = kernel.register_user(key, name);
        Ok(())
    }

    /// Registers the caller's `key` under `name` with a user invite.
    async fn register_invited(
        &self,
        cx: &Cx,
        key: PublicKey,
        name: &str,
        invite: [u8; 32],
    ) -> Result<(), Error> {
        validate_name(name).map_err(|e| Error::bad_argument(e.to_string()))?;
        let _one_at_a_time = self.changing.lock().await;
        let kernel = cx.kernel();
        if let Some(existing) = kernel.user_name(&key) {
            return Err(conflict(if existing == name {
                UserConflict::AlreadyRegistered { name: existing }
            } else {
                UserConflict::KeyTaken { existing }
            }));
        }
        self.registry
            .add_invited(key, name, invite, now_ms(), crate::once(cx))
            .await?;
        // The cluster's registry may have reached the kernel already.
        let _ = kernel.register_user(key, name);
        Ok(())
    }

    /// The key of user `name`, if the caller may remove or rename it: the node's admin may,
    /// and so may the user itself. The node's admin cannot be changed here.
    fn may_change(&self, cx: &Cx, name: &str) -> Result<PublicKey, Error> {
        let kernel = cx.kernel();
        let key = kernel
            .users()
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(k, _)| k)
            .ok_or_else(|| no_user(name))?;
        if key == *kernel.admin() {
            return Err(Error::new(
                code::DENIED,
                format!("{name} is this node's admin, who stays registered"),
            ));
        }
        if cx.author() != kernel.admin() && *cx.author() != key {
            return Err(Error::new(
                code::DENIED,
                "only the node's admin, or the user itself, may remove or rename a user",
            ));
        }
        Ok(key)
    }
}

/// A new user invite token: 128 random bits, as text that units notation reads as a string.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("inv_{hex}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A user name given as `what`'s argument.
fn name_arg<'a>(what: &str, u: &'a Unit) -> Result<&'a str, Error> {
    match u {
        Unit::Str(name) => Ok(name),
        other => Err(Error::bad_argument(format!(
            "{what} takes a name, not {}",
            plexus_units::to_short(other, 40)
        ))),
    }
}

/// A registry error with its own code.
fn conflict(c: UserConflict) -> Error {
    let code = match &c {
        UserConflict::NameTaken { .. } => NAME_TAKEN,
        UserConflict::AlreadyRegistered { .. } => ALREADY_REGISTERED,
        UserConflict::KeyTaken { .. } => KEY_TAKEN,
        UserConflict::BadInvite { .. } => INVITE_BAD,
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
