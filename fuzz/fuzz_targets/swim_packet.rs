//! Arbitrary bytes as a SWIM packet from a linked peer: membership never panics, and whatever
//! it makes of the packet leaves it able to run its timers and report its members.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use plexus_cluster::membership::{Membership, Meta, Profile};
use plexus_identity::PublicKey;

fn key(b: u8) -> PublicKey {
    // Public keys of the ed25519 seeds [1; 32] and [2; 32] are valid points.
    let k = plexus_identity::Keypair::from_secret_bytes(
        plexus_identity::KeyKind::Node,
        "n",
        &[b; 32],
    );
    match k {
        Ok(k) => k.public(),
        Err(_) => std::process::abort(),
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let me = key(1);
    let peer = key(2);
    let meta = Meta {
        name: "a".into(),
        addr: "127.0.0.1:7700".into(),
        cores: 1,
        mem_total: 1,
        mem_avail: 1,
        load: 0.0,
        disk_total: 1,
        disk_avail: 1,
        arch: "x".into(),
        os: "y".into(),
        version: "0".into(),
        tags: Default::default(),
    };
    let mut m = Membership::new(me, 1, meta, Profile::Default, 7, now);
    let _ = m.handle_packet(&peer, data, now);
    m.handle_timers(now + Duration::from_secs(1));
    while m.poll().is_some() {}
    let _ = m.members();
});
