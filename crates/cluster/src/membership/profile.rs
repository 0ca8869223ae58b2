//! Detection profiles: the SWIM timings for a LAN cluster and for a cluster on one machine.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::{Config, PeriodicParams};

/// The largest foca packet (header, cluster updates) this node sends or accepts, in bytes.
///
/// Packets travel on TLS stream links (frames of up to 16 MiB), not UDP, so there is no MTU to
/// respect: 16 KiB holds a full member list (a feed) of ~200 nodes, and every pending cluster
/// update fits in each message, which speeds dissemination.
pub const MAX_SWIM_PACKET: usize = 16 * 1024;

/// A failure-detection profile.
///
/// Both profiles must tolerate packets delayed by tens of milliseconds (a loaded CPU, a busy
/// link) without declaring a live node down, and detect a dead node quickly: every survivor
/// marks it [`Health::Down`](super::Health::Down) within [`Timing::detection_bound`]. The
/// numbers and the reasoning behind them are in [`Profile::timing`] and `docs/membership.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Machines on a LAN: a dead node is down everywhere within 2 s.
    #[default]
    Default,
    /// Nodes on one machine (`plx up --nodes 3`, tests): a dead node is down everywhere within
    /// 1 s.
    Local,
}

/// The timings of a [`Profile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often this node probes one member (round robin over a shuffled member list).
    pub probe_period: Duration,
    /// How long a direct probe waits for its ack before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// How many members are asked to probe indirectly.
    pub indirect_probes: usize,
    /// How long a suspect member has to refute the suspicion before it is declared down.
    pub suspect_to_down_after: Duration,
    /// How often pending cluster updates are gossiped (only when there are some).
    pub gossip_period: Duration,
    /// To how many members each gossip round goes.
    pub gossip_fanout: usize,
    /// How many times each cluster update is sent before it is dropped from the backlog.
    pub max_transmissions: u8,
    /// How often a connected node asks a random member for its member list (repairs missed
    /// joins).
    pub announce_period: Duration,
    /// How often a connected node contacts members it believes down (heals partitions).
    pub announce_down_period: Duration,
    /// How often metadata digests are exchanged with one random member (repairs lost
    /// metadata pushes).
    pub meta_sync_period: Duration,
    /// How often an isolated node (no live member) retries known members and join seeds.
    pub rejoin_period: Duration,
    /// How long foca remembers a down identity (a restarted node has a new session, so it does
    /// not need to wait for this).
    pub remove_down_after: Duration,
    /// The promise: a dead node is down at every survivor within this time.
    pub detection_bound: Duration,
}

impl Profile {
    /// The profile's timings.
    ///
    /// Detection time is the sum of: the wait until some survivor probes the dead node (random
    /// round robin: about one probe of it per `probe_period` across the cluster, so a few
    /// periods in the worst case), one `probe_period` for the failed probe cycle, then
    /// `suspect_to_down_after`, then a few gossip rounds to tell everyone. False suspicion
    /// needs a whole probe cycle to fail: the direct ack missing for a full `probe_period`
    /// *and* every indirect probe (4 hops, started after `probe_rtt`) missing too; it then
    /// becomes a false *down* only if the refutation (the suspect bumps its incarnation) does
    /// not reach the suspecter within `suspect_to_down_after`.
    ///
    /// - `Default`: probe every 300 ms, ack wait 120 ms (a direct ack may still arrive up to the
    ///   end of the period, so one-way delays up to ~140 ms never cause suspicion on their
    ///   own), 3 indirect probes, 500 ms to refute; gossip every 50 ms to 3 members.
    /// - `Local`: probe every 130 ms, ack wait 60 ms (one-way delays up to ~60 ms never cause
    ///   suspicion on their own), 3 indirect probes, 280 ms to refute; gossip every 25 ms to
    ///   3 members.
    pub fn timing(self) -> Timing {
        match self {
            Profile::Default => Timing {
                probe_period: Duration::from_millis(180),
                probe_rtt: Duration::from_millis(60),
                indirect_probes: 3,
                suspect_to_down_after: Duration::from_millis(400),
                gossip_period: Duration::from_millis(30),
                gossip_fanout: 3,
                max_transmissions: 12,
                announce_period: Duration::from_secs(5),
                announce_down_period: Duration::from_secs(2),
                meta_sync_period: Duration::from_millis(500),
                rejoin_period: Duration::from_secs(1),
                remove_down_after: Duration::from_secs(24 * 60 * 60),
                detection_bound: Duration::from_secs(2),
            },
            Profile::Local => Timing {
                probe_period: Duration::from_millis(85),
                probe_rtt: Duration::from_millis(30),
                indirect_probes: 3,
                suspect_to_down_after: Duration::from_millis(220),
                gossip_period: Duration::from_millis(15),
                gossip_fanout: 3,
                max_transmissions: 12,
                announce_period: Duration::from_secs(5),
                announce_down_period: Duration::from_secs(1),
                meta_sync_period: Duration::from_millis(250),
                rejoin_period: Duration::from_millis(500),
                remove_down_after: Duration::from_secs(24 * 60 * 60),
                detection_bound: Duration::from_secs(1),
            },
        }
    }

    /// The foca configuration for this profile.
    pub(crate) fn foca_config(self) -> Config {
        let t = self.timing();
        let mut c = Config::simple();
        c.probe_period = t.probe_period;
        c.probe_rtt = t.probe_rtt;
        c.num_indirect_probes = nz(t.indirect_probes);
        c.max_transmissions = NonZeroU8::new(t.max_transmissions).unwrap_or(NonZeroU8::MIN);
        c.suspect_to_down_after = t.suspect_to_down_after;
        c.remove_down_after = Some(t.remove_down_after);
        c.max_packet_size = nz(MAX_SWIM_PACKET);
        c.notify_down_members = true;
        c.periodic_announce = Some(PeriodicParams {
            frequency: t.announce_period,
            num_members: nz(1),
        });
        c.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: t.announce_down_period,
            num_members: nz(2),
        });
        c.periodic_gossip = Some(PeriodicParams {
            frequency: t.gossip_period,
            num_members: nz(t.gossip_fanout),
        });
        c
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}
