//! Node metadata: what each node advertises about itself, with the limits a packet must keep.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest address, in bytes.
pub const MAX_ADDR_LEN: usize = 256;
/// Longest `arch`, `os` or `version`, in bytes.
pub const MAX_SHORT_LEN: usize = 64;
/// Most tags a node advertises.
pub const MAX_TAGS: usize = 32;
/// Longest tag key, in bytes.
pub const MAX_TAG_KEY_LEN: usize = 64;
/// Longest tag value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 128;
/// Most links a node advertises figures of.
pub const MAX_LINKS: usize = 64;

/// What a node measured of its link to another node (`docs/membership.md`): the round trip
/// of a small call and the rate of a large one, each the median of its recent probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFigures {
    /// Round trip, in microseconds.
    pub rtt_us: u32,
    /// Bytes per second one call carries; 0 until measured.
    pub rate: u64,
}

/// What a node advertises about itself: name, address, resources, platform and tags.
///
/// Every member learns every other member's metadata (see `docs/membership.md`). Strings and
/// tags have limits ([`MAX_NAME_LEN`] and the other `MAX_*` constants): metadata from the
/// network that breaks them is refused, and [`Membership::set_meta`](super::Membership::set_meta)
/// cuts local metadata down to them (see [`Meta::sanitized`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The node's name.
    pub name: String,
    /// The node's cluster address (`host:port`), where other nodes open links to it.
    pub addr: String,
    /// Logical CPU cores.
    pub cores: u32,
    /// Total memory, in bytes.
    pub mem_total: u64,
    /// Available memory, in bytes.
    pub mem_avail: u64,
    /// The 1-minute load average.
    pub load: f32,
    /// Total disk space of the node's data directory, in bytes.
    pub disk_total: u64,
    /// Available disk space of the node's data directory, in bytes.
    pub disk_avail: u64,
    /// CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// Operating system (`linux`, `macos`, …).
    pub os: String,
    /// Plexus version.
    pub version: String,
    /// Tags: `--tag camera` is `("camera", "")`, `--tag site=lab` is `("site", "lab")`.
    pub tags: BTreeMap<String, String>,
    /// Its links to other nodes, by their names, as it measured them.
    pub links: BTreeMap<String, LinkFigures>,
}

/// Why metadata from the network was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// A string is longer than its limit.
    #[error("metadata field `{field}` is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// More than [`MAX_TAGS`] tags.
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
    /// More than [`MAX_LINKS`] links.
    #[error("more than {MAX_LINKS} links")]
    TooManyLinks,
    /// The load is not a finite number at least zero.
    #[error("load is not a finite number >= 0")]
    BadLoad,
}

impl Meta {
    /// Checks the limits; metadata from the network must pass this.
    pub fn validate(&self) -> Result<(), MetaError> {
        let check = |field: &'static str, s: &str, max: usize| {
            if s.len() > max {
                Err(MetaError::TooLong { field, max })
            } else {
                Ok(())
            }
        };
        check("name", &self.name, MAX_NAME_LEN)?;
        check("addr", &self.addr, MAX_ADDR_LEN)?;
        check("arch", &self.arch, MAX_SHORT_LEN)?;
        check("os", &self.os, MAX_SHORT_LEN)?;
        check("version", &self.version, MAX_SHORT_LEN)?;
        if self.tags.len() > MAX_TAGS {
            return Err(MetaError::TooManyTags);
        }
        for (k, v) in &self.tags {
            check("tag key", k, MAX_TAG_KEY_LEN)?;
            check("tag value", v, MAX_TAG_VALUE_LEN)?;
        }
        if self.links.len() > MAX_LINKS {
            return Err(MetaError::TooManyLinks);
        }
        for name in self.links.keys() {
            check("link", name, MAX_NAME_LEN)?;
        }
        if !self.load.is_finite() || self.load < 0.0 {
            return Err(MetaError::BadLoad);
        }
        Ok(())
    }

    /// The same metadata cut down to the limits: long strings are cut (at a character
    /// boundary), tags past the first [`MAX_TAGS`] (in key order) and tags whose key is too
    /// long are dropped, a load that is not a finite number at least zero becomes 0.
    pub fn sanitized(mut self) -> Meta {
        cut(&mut self.name, MAX_NAME_LEN);
        cut(&mut self.addr, MAX_ADDR_LEN);
        cut(&mut self.arch, MAX_SHORT_LEN);
        cut(&mut self.os, MAX_SHORT_LEN);
        cut(&mut self.version, MAX_SHORT_LEN);
        self.tags = std::mem::take(&mut self.tags)
            .into_iter()
            .filter(|(k, _)| k.len() <= MAX_TAG_KEY_LEN)
            .take(MAX_TAGS)
            .map(|(k, mut v)| {
                cut(&mut v, MAX_TAG_VALUE_LEN);
                (k, v)
            })
            .collect();
        self.links = std::mem::take(&mut self.links)
            .into_iter()
            .filter(|(name, _)| name.len() <= MAX_NAME_LEN)
            .take(MAX_LINKS)
            .collect();
        if !self.load.is_finite() || self.load < 0.0 {
            self.load = 0.0;
        }
        self
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while end > 0 && !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
