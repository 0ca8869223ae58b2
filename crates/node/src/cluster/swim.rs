//! Drives the sans-io membership: packets from links in, packets out over the mesh, timers,
//! and this node's metadata refreshed every few seconds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use bytes::Bytes;
use plexus_cluster::membership::{Event, Health, Membership, Meta, Output, Profile};
use plexus_identity::PublicKey;
use tokio::sync::mpsc;

use super::{wire, Addr, Inner, Net};

/// How often this node's load, memory and disk figures are re-advertised.
const META_REFRESH: Duration = Duration::from_secs(5);

/// What the driver is told.
pub enum Input {
    /// A SWIM packet from a link whose proven key is `from`.
    Packet {
        /// The link's peer.
        from: PublicKey,
        /// The packet.
        packet: Bytes,
    },
    /// A node was removed from the cluster.
    Remove(PublicKey),
    /// This node is stopping.
    Leave,
}

/// This machine's figures, as advertised.
pub fn local_meta(
    name: &str,
    addr: &str,
    tags: &BTreeMap<String, String>,
    dir: &std::path::Path,
    links: BTreeMap<String, plexus_cluster::membership::LinkFigures>,
) -> Meta {
    use sysinfo::System;
    let mut sys = System::new();
    sys.refresh_memory();
    let disk = plexus_services::sys_hw::disk_space(dir);
    Meta {
        name: name.to_owned(),
        addr: addr.to_owned(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        mem_total: sys.total_memory(),
        mem_avail: sys.available_memory(),
        load: System::load_average().one as f32,
        disk_total: disk.as_ref().map_or(0, |d| d.total),
        disk_avail: disk.as_ref().map_or(0, |d| d.free),
        arch: std::env::consts::ARCH.to_owned(),
        os: std::env::consts::OS.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        tags: tags.clone(),
        links,
    }
}

/// Now, on tokio's clock (so that a test's paused clock drives membership too), as the
/// `std` instant the sans-io membership takes.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Starts the membership driver.
pub(crate) fn spawn<N: Net>(
    c: Arc<Inner<N>>,
    mut rx: mpsc::Receiver<Input>,
    profile: Profile,
    tags: BTreeMap<String, String>,
    dir: PathBuf,
) -> AbortHandle {
    let task = tokio::spawn(async move {
        let session = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_else(|_| rand::random());
        let meta = local_meta(&c.name, &c.addr.to_string(), &tags, &dir, c.links.figures());
        let mut membership = Membership::new(c.key, session, meta, profile, rand::random(), now());
        c.view
            .set_health(c.key, Health::Alive, Some(membership.local().meta));
        let mut joined = std::collections::HashSet::new();
        let mut refresh = tokio::time::interval(META_REFRESH);
        let mut roster_changes = c.view.subscribe();
        loop {
            // Contact members the roster knows and membership does not (first start, a node
            // that joined through raft).
            let known: std::collections::HashSet<PublicKey> =
                membership.members().into_iter().map(|m| m.key).collect();
            for m in c.view.roster() {
                if m.key != c.key && !known.contains(&m.key) && joined.insert(m.key) {
                    if let Err(e) = membership.join(m.key, m.addr.clone(), now()) {
                        tracing::debug!("cannot contact {}: {e}", m.name);
                    }
                }
            }
            flush(&c, &mut membership);
            let deadline = membership
                .next_deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
            tokio::select! {
                input = rx.recv() => match input {
                    Some(Input::Packet { from, packet }) => {
                        if let Err(e) = membership.handle_packet(&from, &packet, now()) {
                            tracing::debug!("SWIM packet from {} refused: {e}", from.fingerprint());
                        }
                    }
                    Some(Input::Remove(key)) => membership.remove(&key, now()),
                    Some(Input::Leave) | None => {
                        membership.leave(now());
                        flush(&c, &mut membership);
                        return;
                    }
                },
                () = tokio::time::sleep_until(deadline) => membership.handle_timers(now()),
                _ = async {
                    tokio::select! {
                        _ = refresh.tick() => {}
                        () = c.links.first_figures.notified() => {}
                    }
                } => {
                    let meta = local_meta(&c.name, &c.addr.to_string(), &tags, &dir, c.links.figures());
                    c.view.set_health(c.key, Health::Alive, Some(meta.clone()));
                    membership.set_meta(meta, now());
                }
                r = roster_changes.changed() => {
                    if r.is_err() { return; }
                    // A node that left the roster and came back may be contacted again.
                    joined.retain(|k| c.view.is_member(k));
                }
            }
        }
    });
    task.abort_handle()
}

fn flush<N: Net>(c: &Arc<Inner<N>>, membership: &mut Membership) {
    while let Some(out) = membership.poll() {
        match out {
            Output::Send { to, addr, packet } => {
                if !c.view.is_member(&to) {
                    continue;
                }
                if let (Some(m), Ok(a)) = (c.view.by_key(&to), addr.parse::<Addr<N>>()) {
                    if m.addr != addr {
                        c.mesh.set_peer(to, m.name, a);
                    }
                }
                let _ = c.mesh.send(&to, wire::SWIM, Bytes::from(packet));
            }
            Output::Event(event) => apply(c, event),
        }
    }
}

fn apply<N: Net>(c: &Arc<Inner<N>>, event: Event) {
    match event {
        Event::Up(m) | Event::MetaChanged(m) | Event::Rejoined(m) => {
            tracing::debug!(node = %m.meta.name, health = ?m.health, "member");
            c.view.set_health(m.key, m.health, Some(m.meta));
        }
        Event::Suspect { key, name } => {
            tracing::info!(node = %name, "suspected");
            c.view.set_health(key, Health::Suspect, None);
        }
        Event::Down { key, name } => {
            tracing::warn!(node = %name, "down");
            c.view.set_health(key, Health::Down, None);
            reset_links(c, &key);
        }
    }
}

/// Closes the links to and from a member that stopped answering, keeping it in the mesh's
/// address book. Behind a partition (a cut cable, a dead switch) a TCP connection is not
/// reset: both ends keep it and retransmit into it with an exponential backoff that reaches
/// minutes, so after the network heals the old link would stay silent that long. Once it is
/// closed, the next message or call dials afresh, with the mesh's own short backoff.
fn reset_links<N: Net>(c: &Arc<Inner<N>>, key: &PublicKey) {
    let Some(m) = c.view.by_key(key) else {
        return;
    };
    let Ok(addr) = m.addr.parse::<Addr<N>>() else {
        return;
    };
    c.mesh.remove_peer(key);
    c.mesh.set_peer(*key, m.name, addr);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_data_dir_is_found_on_its_disk() {
        let here = std::env::current_dir().unwrap();
        let absolute = local_meta("n", "", &BTreeMap::new(), &here, BTreeMap::new());
        assert!(absolute.disk_total > 0, "no disk holds {}", here.display());
        let relative = local_meta(
            "n",
            "",
            &BTreeMap::new(),
            std::path::Path::new("."),
            BTreeMap::new(),
        );
        assert_eq!(relative.disk_total, absolute.disk_total);
        assert!(relative.disk_avail > 0);
    }
}
