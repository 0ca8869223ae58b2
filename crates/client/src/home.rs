//! The Plexus home directory (`$PLX_HOME`, default `~/.plexus`): users' key files and the
//! current user.
//!
//! Layout:
//!
//! ```text
//! $PLX_HOME/            mode 0700
//!   user                name of the current user
//!   users/NAME.key      a user's key file (units text, see docs/identity.md), mode 0600
//! ```

use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use plexus_identity::{KeyFile, KeyKind, Keypair};

/// Environment variable that supplies a key passphrase non-interactively.
pub const PASSPHRASE_ENV: &str = "PLX_PASSPHRASE";

/// A located home directory.
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `flag`, else `$PLX_HOME`, else `~/.plexus`.
    pub fn locate(flag: Option<PathBuf>) -> Result<Home> {
        let root = match flag {
            Some(p) => p,
            None => match std::env::var_os("PLX_HOME").filter(|v| !v.is_empty()) {
                Some(p) => PathBuf::from(p),
                None => {
                    let home = std::env::var_os("HOME")
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            anyhow!("neither PLX_HOME nor HOME is set: use --home DIR")
                        })?;
                    PathBuf::from(home).join(".plexus")
                }
            },
        };
        Ok(Home { root })
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn users_dir(&self) -> PathBuf {
        self.root.join("users")
    }

    /// The key file path of user `name`.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.users_dir().join(format!("{name}.key"))
    }

    fn ensure_dirs(&self) -> Result<()> {
        for dir in [&self.root, &self.users_dir()] {
            if !dir.exists() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("cannot set permissions on {}", dir.display()))?;
            }
        }
        Ok(())
    }

    /// Names of all users with a key file here, sorted.
    pub fn user_names(&self) -> Result<Vec<String>> {
        let dir = self.users_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let file_name = entry.file_name();
            if let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".key")) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Reads and parses user `name`'s key file.
    pub fn load(&self, name: &str) -> Result<KeyFile> {
        let path = self.key_path(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("no user named {name:?} (see `plx user list`)")
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        KeyFile::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    /// Writes `key` as user `name`'s key file, mode 0600, atomically (temporary file, fsync,
    /// rename, fsync of the directory). Refuses to replace an existing user.
    pub fn save(&self, name: &str, key: &KeyFile) -> Result<PathBuf> {
        self.ensure_dirs()?;
        let path = self.key_path(name);
        if path.exists() {
            bail!("a user named {name:?} already exists ({})", path.display());
        }
        write_private(&path, key.to_text().as_bytes())?;
        Ok(path)
    }

    /// The current user's name, if one is set and still exists.
    pub fn current(&self) -> Result<Option<String>> {
        let path = self.root.join("user");
        match fs::read_to_string(&path) {
            Ok(name) => {
                let name = name.trim().to_owned();
                Ok((!name.is_empty() && self.key_path(&name).exists()).then_some(name))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Makes `name` the current user.
    pub fn set_current(&self, name: &str) -> Result<()> {
        if !self.key_path(name).exists() {
            bail!("no user named {name:?} (see `plx user list`)");
        }
        self.ensure_dirs()?;
        write_private(&self.root.join("user"), format!("{name}\n").as_bytes())
    }

    /// The user to act as: `explicit` if given, else the current user, else a new default
    /// user created now (named after `$USER`), which is announced on standard error.
    pub fn acting_user(&self, explicit: Option<&str>) -> Result<String> {
        if let Some(name) = explicit {
            return Ok(name.to_owned());
        }
        if let Some(name) = self.current()? {
            return Ok(name);
        }
        if let Some(first) = self.user_names()?.into_iter().next() {
            self.set_current(&first)?;
            return Ok(first);
        }
        let name = default_user_name();
        let keypair = Keypair::generate(KeyKind::User, &name, &mut rand_core::OsRng)
            .map_err(|e| anyhow!("{e}"))?;
        let file = KeyFile::from_keypair(&keypair, None, &mut rand_core::OsRng)
            .map_err(|e| anyhow!("{e}"))?;
        let path = self.save(&name, &file)?;
        self.set_current(&name)?;
        eprintln!(
            "plx: created user {name:?} with a new key ({}); back it up with `plx user export`",
            path.display()
        );
        Ok(name)
    }

    /// Loads and unlocks user `name`'s key pair, asking for the passphrase if it is encrypted.
    pub fn unlock(&self, name: &str) -> Result<Keypair> {
        let file = self.load(name)?;
        let passphrase = if file.is_encrypted() {
            Some(passphrase(&format!("passphrase for {name}: "), false)?)
        } else {
            None
        };
        file.unlock(passphrase.as_deref())
            .map_err(|e| anyhow!("user {name:?}: {e}"))
    }
}

/// `$USER` if it is a valid user name, else `me`.
fn default_user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.len() <= 64
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
        .unwrap_or_else(|| "me".to_owned())
}

/// A passphrase from `$PLX_PASSPHRASE`, else asked on the terminal (twice when `confirm`).
pub fn passphrase(prompt: &str, confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("a passphrase is needed: set {PASSPHRASE_ENV} or run in a terminal");
    }
    let first = rpassword::prompt_password(prompt).context("cannot read the passphrase")?;
    if confirm {
        let again = rpassword::prompt_password("repeat passphrase: ")
            .context("cannot read the passphrase")?;
        if again != first {
            bail!("the passphrases differ");
        }
    }
    Ok(first)
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    plexus_node::datadir::write_private(path, bytes).map_err(|e| anyhow!("{e}"))
}
