//! How a node takes part in a cluster: the command-line choice ([`ClusterConfig`]) and what
//! the data directory records (`cluster.unit`, [`ClusterFile`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use plexus_cluster::membership::Profile;
use plexus_units::{parse, to_text, Map, Unit};

use super::token::JoinToken;
use crate::NodeError;

/// The file that records a node's cluster.
pub const CLUSTER_FILE: &str = "cluster.unit";

/// How the node comes into its cluster.
#[derive(Clone, Debug)]
pub enum JoinMode {
    /// Create a new cluster with this node as its first member (`--init`); a node already in
    /// a cluster resumes it.
    Init,
    /// Join the cluster of a token (`--join`).
    Join(JoinToken),
    /// Rejoin the cluster recorded in the data directory.
    Resume,
}

/// A node's cluster settings, with cluster addresses of type `A`.
#[derive(Clone, Debug)]
pub struct ClusterConfig<A = SocketAddr> {
    /// How to come in.
    pub mode: JoinMode,
    /// The address to listen on for other nodes; the recorded one when `None`.
    pub listen: Option<A>,
    /// User-defined tags advertised to the cluster (`camera`, `site=lab`); the recorded ones
    /// when empty.
    pub tags: BTreeMap<String, String>,
    /// The failure-detection profile; the recorded one (or the default) when `None`.
    pub profile: Option<Profile>,
    /// Whether to advertise the cluster on the LAN over multicast DNS
    /// ([`super::discovery`]); the recorded choice (or no) when `None`.
    pub mdns: Option<bool>,
}

/// Parses `--tag` values: `name` or `name=value`.
pub fn parse_tag(text: &str) -> Result<(String, String), String> {
    let (k, v) = match text.split_once('=') {
        Some((k, v)) => (k, v),
        None => (text, ""),
    };
    let ok = |s: &str| {
        s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
    };
    if k.is_empty() || !ok(k) || !ok(v) {
        return Err(format!(
            "bad tag {text:?}: use name or name=value with letters, digits and . _ - : / (64 at most each)"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// What `cluster.unit` records.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterFile {
    /// The cluster id.
    pub cluster: [u8; 16],
    /// The node's cluster address, as text (its form depends on the network).
    pub addr: String,
    /// The node's tags.
    pub tags: BTreeMap<String, String>,
    /// The failure-detection profile.
    pub profile: Profile,
    /// Whether the node advertises the cluster over multicast DNS.
    pub mdns: bool,
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Local => "local",
        _ => "default",
    }
}

/// A profile by name (`default`, `local`).
pub fn parse_profile(name: &str) -> Result<Profile, String> {
    match name {
        "default" => Ok(Profile::Default),
        "local" => Ok(Profile::Local),
        other => Err(format!(
            "unknown detection profile {other:?} (use default or local)"
        )),
    }
}

impl ClusterFile {
    /// Reads the data directory's record; `None` if the node is not in a cluster.
    pub fn load(dir: &Path) -> Result<Option<ClusterFile>, NodeError> {
        let path = dir.join(CLUSTER_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let corrupt = |why: String| NodeError::Corrupt(format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| NodeError::Io(format!("cannot read {}: {e}", path.display())))?;
        let u = parse(&text).map_err(|e| corrupt(e.to_string()))?;
        let m = u.as_map().ok_or_else(|| corrupt("not a map".into()))?;
        let cluster: [u8; 16] = m
            .get_str("cluster")
            .and_then(|u| match u {
                Unit::Bytes(b) => <[u8; 16]>::try_from(&b[..]).ok(),
                _ => None,
            })
            .ok_or_else(|| corrupt("missing cluster id".into()))?;
        let addr = m
            .get_str("addr")
            .and_then(Unit::as_str)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| corrupt("missing addr".into()))?
            .to_owned();
        let mut tags = BTreeMap::new();
        if let Some(t) = m.get_str("tags").and_then(Unit::as_map) {
            for (k, v) in t.iter() {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    tags.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let profile = m
            .get_str("profile")
            .and_then(Unit::as_str)
            .map(parse_profile)
            .transpose()
            .map_err(corrupt)?
            .unwrap_or(Profile::Default);
        // Absent in files written before discovery existed.
        let mdns = matches!(m.get_str("mdns"), Some(Unit::Bool(true)));
        Ok(Some(ClusterFile {
            cluster,
            addr,
            tags,
            profile,
            mdns,
        }))
    }

    /// Writes the record (atomically, private).
    pub fn save(&self, dir: &Path) -> Result<(), NodeError> {
        let mut tags = Map::new();
        for (k, v) in &self.tags {
            tags.insert(Unit::str(k), Unit::str(v));
        }
        let mut m = Map::new();
        m.insert(
            Unit::str("cluster"),
            Unit::Bytes(bytes::Bytes::copy_from_slice(&self.cluster)),
        );
        m.insert(Unit::str("addr"), Unit::str(&self.addr));
        m.insert(Unit::str("tags"), Unit::Map(tags));
        m.insert(Unit::str("profile"), Unit::str(profile_name(self.profile)));
        m.insert(Unit::str("mdns"), Unit::Bool(self.mdns));
        crate::datadir::write_private(
            &dir.join(CLUSTER_FILE),
            format!("{}\n", to_text(&Unit::Map(m))).as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(
            parse_tag("camera").unwrap(),
            ("camera".into(), String::new())
        );
        assert_eq!(
            parse_tag("site=lab").unwrap(),
            ("site".into(), "lab".into())
        );
        assert!(parse_tag("").is_err());
        assert!(parse_tag("=x").is_err());
        assert!(parse_tag("a b").is_err());
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ClusterFile::load(dir.path()).unwrap(), None);
        let f = ClusterFile {
            cluster: [5; 16],
            addr: "127.0.0.3:7700".into(),
            tags: [("site".to_owned(), "lab".to_owned())].into(),
            profile: Profile::Local,
            mdns: true,
        };
        f.save(dir.path()).unwrap();
        assert_eq!(ClusterFile::load(dir.path()).unwrap(), Some(f.clone()));
        // A file from before discovery existed: no mdns key, so no advert.
        std::fs::write(
            dir.path().join(CLUSTER_FILE),
            "{cluster:x\"05050505050505050505050505050505\" addr:`127.0.0.3:7700` tags:{} profile:local}",
        )
        .unwrap();
        let old = ClusterFile::load(dir.path()).unwrap().unwrap();
        assert!(!old.mdns);
        assert_eq!(old.addr, f.addr);
        std::fs::write(dir.path().join(CLUSTER_FILE), "{").unwrap();
        assert!(ClusterFile::load(dir.path()).is_err());
    }
}
