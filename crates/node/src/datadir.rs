//! The node's data directory: exclusive lock, identity file, node key.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use plexus_identity::{KeyFile, KeyKind, Keypair, PublicKey};
use plexus_units::{parse, to_text, Map, Unit};

use crate::NodeError;

/// File names inside a data directory.
pub mod files {
    /// Held locked while a node runs.
    pub const LOCK: &str = "node.lock";
    /// The running node's process id.
    pub const PID: &str = "node.pid";
    /// The node's identity: id, name, admin.
    pub const IDENTITY: &str = "node.unit";
    /// The node's key pair.
    pub const KEY: &str = "node.key";
    /// The client socket.
    pub const SOCKET: &str = "node.sock";
    /// The database.
    pub const DB: &str = "node.redb";
    /// The process supervisor's state: the journal of running processes, cached programs, `logs/`.
    pub const PROCS: &str = "procs";
    /// The file system's chunks this node keeps (`docs/fs.md`).
    pub const CHUNKS: &str = "chunks";
}

/// A data directory locked for one running node.
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates (mode 0700) and locks `path`. Fails if another node holds it.
    pub fn lock(path: &Path) -> Result<DataDir, NodeError> {
        let io = |what: &str, e: std::io::Error| {
            NodeError::Io(format!("{what} {}: {e}", path.display()))
        };
        if !path.exists() {
            fs::create_dir_all(path).map_err(|e| io("cannot create", e))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(|e| io("cannot set permissions on", e))?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path.join(files::LOCK))
            .map_err(|e| io("cannot open the lock file in", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(path.join(files::PID)).unwrap_or_default();
                return Err(NodeError::Locked {
                    dir: path.to_owned(),
                    pid: pid.trim().parse().ok(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io("cannot lock", e)),
        }
        write_private(
            &path.join(files::PID),
            format!("{}\n", std::process::id()).as_bytes(),
        )?;
        Ok(DataDir {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node's key pair, created on first start.
    pub fn node_key(&self, name: &str) -> Result<Keypair, NodeError> {
        let path = self.path.join(files::KEY);
        if path.exists() {
            let text = fs::read_to_string(&path)
                .map_err(|e| NodeError::Io(format!("cannot read {}: {e}", path.display())))?;
            let file = KeyFile::parse(&text)
                .map_err(|e| NodeError::Corrupt(format!("{}: {e}", path.display())))?;
            return file
                .unlock(None)
                .map_err(|e| NodeError::Corrupt(format!("{}: {e}", path.display())));
        }
        let key = Keypair::generate(KeyKind::Node, name, &mut rand_core::OsRng)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let file = KeyFile::from_keypair(&key, None, &mut rand_core::OsRng)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        write_private(&path, file.to_text().as_bytes())?;
        Ok(key)
    }

    /// The node's identity, created on first start from the given name and admin.
    pub fn identity(
        &self,
        key: &Keypair,
        name: &str,
        admin: (PublicKey, &str),
    ) -> Result<Identity, NodeError> {
        let path = self.path.join(files::IDENTITY);
        if path.exists() {
            let text = fs::read_to_string(&path)
                .map_err(|e| NodeError::Io(format!("cannot read {}: {e}", path.display())))?;
            return Identity::from_text(&text)
                .map_err(|e| NodeError::Corrupt(format!("{}: {e}", path.display())));
        }
        let id = Identity {
            id: key.public().fingerprint(),
            name: name.to_owned(),
            admin: admin.0,
            admin_name: admin.1.to_owned(),
        };
        write_private(&path, format!("{}\n", to_text(&id.to_unit())).as_bytes())?;
        Ok(id)
    }
}

/// Who a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Persistent id (the node key's fingerprint).
    pub id: String,
    /// Name.
    pub name: String,
    /// The administrator's public key.
    pub admin: PublicKey,
    /// The administrator's name.
    pub admin_name: String,
}

impl Identity {
    fn to_unit(&self) -> Unit {
        let mut admin = Map::new();
        admin.insert(Unit::str("name"), Unit::str(&self.admin_name));
        admin.insert(Unit::str("pub"), self.admin.to_unit());
        let mut m = Map::new();
        m.insert(Unit::str("plexus"), Unit::str("node"));
        m.insert(Unit::str("id"), Unit::str(&self.id));
        m.insert(Unit::str("name"), Unit::str(&self.name));
        m.insert(Unit::str("admin"), Unit::Map(admin));
        Unit::Map(m)
    }

    fn from_text(text: &str) -> Result<Identity, String> {
        let u = parse(text).map_err(|e| e.to_string())?;
        let m = u.as_map().ok_or("not a map")?;
        let field = |k: &str| {
            m.get_str(k)
                .and_then(Unit::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("missing {k}"))
        };
        let admin = m
            .get_str("admin")
            .and_then(Unit::as_map)
            .ok_or("missing admin")?;
        Ok(Identity {
            id: field("id")?,
            name: field("name")?,
            admin: admin
                .get_str("pub")
                .ok_or("missing admin.pub")
                .and_then(|u| PublicKey::from_unit(u).map_err(|_| "bad admin.pub"))?,
            admin_name: admin
                .get_str("name")
                .and_then(Unit::as_str)
                .ok_or("missing admin.name")?
                .to_owned(),
        })
    }
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| NodeError::Io(format!("cannot write {}: {e}", path.display())))
}
