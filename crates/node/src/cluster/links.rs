//! Measuring this node's links to the others: the figures it advertises in its metadata
//! ([`LinkFigures`]), which the scheduler reads for `.osh` `min_rate` and `max_latency`.
//!
//! Every [`PROBE_EVERY`] the node makes an empty `PROBE` call to each live member (its round
//! trip), and every [`RATE_EVERY`] one of [`RATE_PROBE_BYTES`] (its rate: the bytes over the
//! time the call took); a member without figures yet is probed within a second of
//! being seen alive. A figure is the median of the last [`KEPT`] samples, so one slow probe
//! on a busy machine does not move it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexus_cluster::membership::{Health, LinkFigures};
use plexus_identity::PublicKey;
use tokio::task::AbortHandle;

use super::{wire, Inner, Net};

/// How often each link's round trip is measured.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How often each link's rate is measured.
pub const RATE_EVERY: Duration = Duration::from_secs(60);
/// How often the prober looks for links that are due.
const ROUND: Duration = Duration::from_secs(1);
/// The size of a rate probe.
pub const RATE_PROBE_BYTES: usize = 1 << 20;
/// Samples a figure is the median of.
pub const KEPT: usize = 5;
/// Longest a probe may take; one that takes longer is not a sample.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// The recent samples of each link.
#[derive(Default)]
pub struct Links {
    samples: Mutex<BTreeMap<String, Samples>>,
    /// Notified when a link has its first round trip or rate: the node advertises it then,
    /// not at its next metadata refresh.
    pub first_figures: tokio::sync::Notify,
}

#[derive(Default)]
struct Samples {
    rtt_us: VecDeque<u64>,
    rate: VecDeque<u64>,
    /// When each was last probed (tried, whether or not it answered).
    rtt_probed: Option<Instant>,
    rate_probed: Option<Instant>,
}

/// Which probes a link is due at some moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Its round trip.
    pub rtt: bool,
    /// Its rate.
    pub rate: bool,
}

fn keep(samples: &mut VecDeque<u64>, value: u64) {
    if samples.len() == KEPT {
        samples.pop_front();
    }
    samples.push_back(value);
}

/// The median of `samples` (the upper one of an even count); 0 when there are none.
pub fn median(samples: &VecDeque<u64>) -> u64 {
    let mut sorted: Vec<u64> = samples.iter().copied().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

impl Links {
    /// Which probes the link to `peer` is due at `now`, noting them as made.
    pub fn due(&self, peer: &str, now: Instant) -> Due {
        let Ok(mut s) = self.samples.lock() else {
            return Due::default();
        };
        let samples = s.entry(peer.to_owned()).or_default();
        let is_due =
            |last: Option<Instant>, every| last.is_none_or(|t| now.duration_since(t) >= every);
        let due = Due {
            rtt: is_due(samples.rtt_probed, PROBE_EVERY),
            rate: is_due(samples.rate_probed, RATE_EVERY),
        };
        if due.rtt {
            samples.rtt_probed = Some(now);
        }
        if due.rate {
            samples.rate_probed = Some(now);
        }
        due
    }

    /// Notes a round trip to `peer`.
    pub fn add_rtt(&self, peer: &str, rtt: Duration) {
        if let Ok(mut s) = self.samples.lock() {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
            let samples = &mut s.entry(peer.to_owned()).or_default().rtt_us;
            if samples.is_empty() {
                self.first_figures.notify_one();
            }
            keep(samples, us);
        }
    }

    /// Notes that a call of `bytes` to `peer` took `took`: its rate is the bytes over the
    /// whole call, round trip included, so it errs low (a link carries at least that), and a
    /// round trip measured while the link was busy cannot make it absurd.
    pub fn add_transfer(&self, peer: &str, bytes: usize, took: Duration) {
        if let Ok(mut s) = self.samples.lock() {
            let samples = s.entry(peer.to_owned()).or_default();
            let took = took.max(Duration::from_micros(1));
            let rate = (bytes as f64 / took.as_secs_f64()) as u64;
            if samples.rate.is_empty() {
                self.first_figures.notify_one();
            }
            keep(&mut samples.rate, rate);
        }
    }

    /// Forgets the links to nodes not in `peers`.
    pub fn retain(&self, peers: &BTreeSet<String>) {
        if let Ok(mut s) = self.samples.lock() {
            s.retain(|name, _| peers.contains(name));
        }
    }

    /// Each measured link's figures.
    pub fn figures(&self) -> BTreeMap<String, LinkFigures> {
        let Ok(s) = self.samples.lock() else {
            return BTreeMap::new();
        };
        s.iter()
            .filter(|(_, samples)| !samples.rtt_us.is_empty())
            .map(|(name, samples)| {
                let figures = LinkFigures {
                    rtt_us: u32::try_from(median(&samples.rtt_us)).unwrap_or(u32::MAX),
                    rate: median(&samples.rate),
                };
                (name.clone(), figures)
            })
            .collect()
    }
}

/// How long a `PROBE` call carrying `body` to `peer` took, if it was answered.
async fn probe<N: Net>(c: &Inner<N>, peer: &PublicKey, body: Bytes) -> Option<Duration> {
    let started = Instant::now();
    let call = c.mesh.call(peer, wire::PROBE, body, PROBE_DEADLINE);
    call.await.ok().map(|_| started.elapsed())
}

/// Starts measuring this node's links.
pub(crate) fn spawn<N: Net>(c: Arc<Inner<N>>) -> AbortHandle {
    tokio::spawn(async move {
        let payload = Bytes::from(vec![0u8; RATE_PROBE_BYTES]);
        let mut tick = tokio::time::interval(ROUND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let roster = c.view.roster();
            // A link to a removed node is forgotten; one to a node down keeps its figures
            // (the scheduler does not place on a down node anyway).
            c.links
                .retain(&roster.iter().map(|m| m.name.clone()).collect());
            let peers: Vec<_> = roster
                .into_iter()
                .filter(|m| m.key != c.key && c.view.health(&m.key) == Health::Alive)
                .collect();
            for m in &peers {
                let due = c.links.due(&m.name, Instant::now());
                if !due.rtt {
                    continue;
                }
                let Some(rtt) = probe(&c, &m.key, Bytes::new()).await else {
                    continue;
                };
                c.links.add_rtt(&m.name, rtt);
                if due.rate {
                    if let Some(took) = probe(&c, &m.key, payload.clone()).await {
                        c.links.add_transfer(&m.name, RATE_PROBE_BYTES, took);
                    }
                }
            }
        }
    })
    .abort_handle()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_medians_of_the_last_samples() {
        let links = Links::default();
        assert!(links.figures().is_empty());
        for ms in [9, 1, 2, 3, 100, 2] {
            links.add_rtt("n2", Duration::from_millis(ms));
        }
        // The last five: 1, 2, 3, 100, 2.
        assert_eq!(links.figures()["n2"].rtt_us, 2_000);
        assert_eq!(links.figures()["n2"].rate, 0, "no rate measured yet");
        // 1 MiB in a call of 2 ms: 512 KiB/ms.
        links.add_transfer("n2", 1 << 20, Duration::from_millis(2));
        assert_eq!(links.figures()["n2"].rate, (1u64 << 19) * 1000);
        links.retain(&BTreeSet::from(["n3".to_owned()]));
        assert!(links.figures().is_empty());
    }

    #[test]
    fn a_new_link_is_probed_at_once_then_on_its_periods() {
        let links = Links::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let due = |rtt, rate| Due { rtt, rate };
        assert_eq!(links.due("n2", at(0)), due(true, true));
        assert_eq!(links.due("n2", at(1)), due(false, false));
        assert_eq!(links.due("n2", at(5)), due(true, false));
        assert_eq!(links.due("n2", at(9)), due(false, false));
        assert_eq!(links.due("n2", at(60)), due(true, true));
        assert_eq!(links.due("n3", at(60)), due(true, true));
    }
}
