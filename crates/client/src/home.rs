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

use plexus_identity::{KeyFile, KeyKind, Keypair};

use crate::{Error, Result};

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
                        .ok_or(Error::NoHome)?;
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
                fs::create_dir_all(dir).map_err(io_error("create", dir))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_error("set permissions on", dir))?;
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
            Err(e) => return Err(io_error("list", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", &dir))?;
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
                return Err(Error::NoSuchUser {
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        KeyFile::parse(&text).map_err(|source| Error::BadKeyFile { path, source })
    }

    /// Writes `key` as user `name`'s key file, mode 0600, atomically (temporary file, fsync,
    /// rename, fsync of the directory). Refuses to replace an existing user.
    pub fn save(&self, name: &str, key: &KeyFile) -> Result<PathBuf> {
        self.ensure_dirs()?;
        let path = self.key_path(name);
        if path.exists() {
            return Err(Error::UserExists {
                name: name.to_owned(),
                path,
            });
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
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// Makes `name` the current user.
    pub fn set_current(&self, name: &str) -> Result<()> {
        if !self.key_path(name).exists() {
            return Err(Error::NoSuchUser {
                name: name.to_owned(),
            });
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
        let keypair = Keypair::generate(KeyKind::User, &name, &mut rand_core::OsRng)?;
        let file = KeyFile::from_keypair(&keypair, None, &mut rand_core::OsRng)
            .map_err(Error::NewKeyFile)?;
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
            .map_err(|source| Error::Unlock {
                name: name.to_owned(),
                source,
            })
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
        return Err(Error::PassphraseNeeded);
    }
    let first = rpassword::prompt_password(prompt).map_err(Error::PassphraseRead)?;
    if confirm {
        let again =
            rpassword::prompt_password("repeat passphrase: ").map_err(Error::PassphraseRead)?;
        if again != first {
            return Err(Error::PassphrasesDiffer);
        }
    }
    Ok(first)
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(plexus_node::datadir::write_private(path, bytes)?)
}

/// Wraps an I/O error of `action` on `path`.
fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn users_are_saved_privately_once_and_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(dir.path().join("home"))).unwrap();
        assert!(matches!(home.load("ann"), Err(Error::NoSuchUser { .. })));
        assert!(matches!(
            home.set_current("ann"),
            Err(Error::NoSuchUser { .. })
        ));
        let key = Keypair::generate(KeyKind::User, "ann", &mut rand_core::OsRng).unwrap();
        let file = KeyFile::from_keypair(&key, None, &mut rand_core::OsRng).unwrap();
        let path = home.save("ann", &file).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            home.save("ann", &file),
            Err(Error::UserExists { .. })
        ));
        home.set_current("ann").unwrap();
        assert_eq!(home.acting_user(None).unwrap(), "ann");
        assert_eq!(home.unlock("ann").unwrap().public(), key.public());
        fs::write(home.key_path("bad"), "not a key file").unwrap();
        assert!(matches!(home.load("bad"), Err(Error::BadKeyFile { .. })));
    }
}
