//! `plx user …`: users are ed25519 key pairs kept in key files under `$PLX_HOME/users`; `plx
//! user invite` and `plx user join` register them with a node through one-time invites.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use plexus_identity::{KeyFile, KeyKind, Keypair};
use plexus_services::sys_usr::{INVITE_BAD, INVITE_TTL_SECS, MAX_INVITE_TTL_SECS};
use plexus_units::{to_text, Map, Unit};

use crate::cli_io::{read_input, Output};
use crate::client::Reply;
use crate::cmd_cluster::{ask, ask_reply, runtime};
use crate::cmd_node::socket_path;
use crate::home::{passphrase, Home};

/// Manage users: key pairs that sign what you send.
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user with a new key pair.
    ///
    /// The key file is written to $PLX_HOME/users/NAME.key with mode 0600. The first user
    /// created becomes the current user. With --encrypt the secret key is sealed with a
    /// passphrase (Argon2id + XChaCha20-Poly1305), asked on the terminal or taken from
    /// $PLX_PASSPHRASE.
    New {
        /// User name: 1 to 64 letters, digits, '.', '_' or '-'.
        name: String,
        /// Protect the secret key with a passphrase.
        #[arg(long)]
        encrypt: bool,
        /// Also make it the current user.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// List users, marking the current one with '*'.
    List,
    /// Show a user's public key and key file (the current user by default).
    Show {
        /// User name.
        name: Option<String>,
    },
    /// Make NAME the current user (the one that signs).
    Use {
        /// User name.
        name: String,
    },
    /// Print a user's key file, to carry the user to another device (or --public for the
    /// public identity only, to share).
    Export {
        /// User name (the current user by default).
        name: Option<String>,
        /// Export only the public identity (name and public key).
        #[arg(long)]
        public: bool,
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Import a user from an exported key file.
    Import {
        /// The key file (standard input when omitted or `-`).
        file: Option<PathBuf>,
        /// Also make it the current user.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Hand out a one-time user invite (the node's admin only): prints the token, and on
    /// standard error the command the invitee runs (`plx user join TOKEN`). In a cluster the
    /// invite may be used on any node.
    Invite {
        /// How long the invite stays valid, in seconds (at most 30 days).
        #[arg(long = "for", value_name = "SECONDS", default_value_t = INVITE_TTL_SECS,
              value_parser = clap::value_parser!(u64).range(1..=MAX_INVITE_TTL_SECS))]
        valid_for: u64,
        /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Register the current user's key with the node (and its cluster) using a one-time
    /// invite from `plx user invite`.
    Join {
        /// The invite's token (inv_…).
        token: String,
        /// The name to register under [default: the current user's name].
        #[arg(long)]
        name: Option<String>,
        /// Node socket [default: $PLX_HOME/node/node.sock, or $PLX_SOCKET].
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// Runs one `plx user` command.
pub fn run(home: &Home, cmd: UserCmd) -> Result<()> {
    let out = Output::new(None);
    match cmd {
        UserCmd::New {
            name,
            encrypt,
            make_current,
        } => {
            let keypair = Keypair::generate(KeyKind::User, &name, &mut rand_core::OsRng)
                .map_err(|e| anyhow!("{e}"))?;
            if home.key_path(&name).exists() {
                bail!("a user named {name:?} already exists");
            }
            let pass = if encrypt {
                Some(passphrase(&format!("new passphrase for {name}: "), true)?)
            } else {
                None
            };
            let file = KeyFile::from_keypair(&keypair, pass.as_deref(), &mut rand_core::OsRng)
                .map_err(|e| anyhow!("{e}"))?;
            let path = home.save(&name, &file)?;
            if make_current || home.current()?.is_none() {
                home.set_current(&name)?;
            }
            out.line(&format!(
                "created user {name} {}\npublic key {}\nkey file {}{}",
                keypair.public().fingerprint(),
                keypair.public(),
                path.display(),
                if encrypt { " (encrypted)" } else { "" }
            ))
        }
        UserCmd::List => {
            let current = home.current()?;
            let names = home.user_names()?;
            if names.is_empty() {
                eprintln!("plx: no users yet: create one with `plx user new NAME`");
                return Ok(());
            }
            let mut text = String::new();
            for name in names {
                let mark = if current.as_deref() == Some(name.as_str()) {
                    '*'
                } else {
                    ' '
                };
                match home.load(&name) {
                    Ok(f) => text.push_str(&format!(
                        "{mark} {name:<16} {} {}{}\n",
                        f.public().fingerprint(),
                        f.public(),
                        if f.is_encrypted() { " encrypted" } else { "" }
                    )),
                    Err(e) => text.push_str(&format!("{mark} {name:<16} unreadable: {e:#}\n")),
                }
            }
            out.write(text.as_bytes())
        }
        UserCmd::Show { name } => {
            let name = match name {
                Some(n) => n,
                None => home.current()?.ok_or_else(|| {
                    anyhow!("no current user: create one with `plx user new NAME`")
                })?,
            };
            let f = home.load(&name)?;
            let current = home.current()?.as_deref() == Some(name.as_str());
            out.line(&format!(
                "name        {name}{}\nkind        {}\npublic key  {}\nfingerprint {}\nencrypted   {}\nkey file    {}",
                if current { " (current)" } else { "" },
                f.kind().name(),
                f.public(),
                f.public().fingerprint(),
                if f.is_encrypted() { "yes" } else { "no" },
                home.key_path(&name).display()
            ))
        }
        UserCmd::Use { name } => {
            home.set_current(&name)?;
            out.line(&format!("current user is now {name}"))
        }
        UserCmd::Export {
            name,
            public,
            output,
        } => {
            let name = home.acting_user(name.as_deref())?;
            let f = home.load(&name)?;
            let text = if public {
                f.public_identity()
            } else {
                if !f.is_encrypted() {
                    eprintln!(
                        "plx: warning: this key file is not encrypted; whoever reads it can sign as {name}"
                    );
                }
                f.to_text()
            };
            match output {
                Some(path) if path.as_os_str() != "-" => Ok(crate::home::write_private(
                    &path,
                    format!("{text}\n").as_bytes(),
                )?),
                _ => out.line(&text),
            }
        }
        UserCmd::Import { file, make_current } => {
            let input = read_input(file.as_deref())?;
            let f = KeyFile::parse(input.text()?).map_err(|e| anyhow!("{}: {e}", input.name))?;
            let name = f.name().to_owned();
            let path = home.save(&name, &f)?;
            if make_current || home.current()?.is_none() {
                home.set_current(&name)?;
            }
            out.line(&format!(
                "imported user {name} {} into {}",
                f.public().fingerprint(),
                path.display()
            ))
        }
        UserCmd::Invite { valid_for, socket } => {
            let socket = socket_path(home, socket);
            let answer = runtime()?.block_on(ask(
                home,
                &socket,
                &format!("(invite {valid_for})@sys.usr"),
            ))?;
            let token = answer.as_str().ok_or_else(|| {
                anyhow!("the node answered {} instead of a token", to_text(&answer))
            })?;
            out.line(token)?;
            eprintln!(
                "plx: one-time user invite, valid for {valid_for} s. The invitee runs, with \
                 this node or any node of its cluster:\n  plx user join {token} [--name NAME]"
            );
            Ok(())
        }
        UserCmd::Join {
            token,
            name,
            socket,
        } => {
            let user = home.acting_user(None)?;
            let name = name.unwrap_or_else(|| user.clone());
            let socket = socket_path(home, socket);
            // Built as a unit, not notation: the token is whatever was typed.
            let mut reg = Map::new();
            reg.insert(Unit::str("reg"), Unit::str(&name));
            reg.insert(Unit::str("inv"), Unit::str(&token));
            let body = Unit::stream(Unit::Map(reg), "sys.usr")?;
            match runtime()?.block_on(ask_reply(home, Some(&user), &socket, body))? {
                Reply::Value(_) => out.line(&format!(
                    "registered {name} {} (the key of user {user})",
                    home.load(&user)?.public().fingerprint()
                )),
                Reply::Error(e) if e.code() == INVITE_BAD => bail!(
                    "{}: {}; ask the admin for a new one (`plx user invite`)",
                    e.code(),
                    e.message()
                ),
                Reply::Error(e) => bail!("{}: {}", e.code(), e.message()),
                Reply::Nothing => bail!("the node answered nothing to the registration"),
            }
        }
    }
}
