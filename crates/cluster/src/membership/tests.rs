use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use plexus_identity::{KeyKind, Keypair, PublicKey};
use proptest::prelude::*;

use super::wire::{DigestEntry, MetaMsg, MetaRecord, KIND_META, KIND_SWIM};
use super::*;

fn key(i: u8) -> PublicKey {
    Keypair::from_secret_bytes(KeyKind::Node, "n", &[i; 32])
        .unwrap()
        .public()
}

fn meta(name: &str) -> Meta {
    let mut tags = BTreeMap::new();
    tags.insert("camera".to_owned(), String::new());
    tags.insert("site".to_owned(), "lab".to_owned());
    Meta {
        name: name.to_owned(),
        addr: format!("{name}.lan:7070"),
        cores: 8,
        mem_total: 16 << 30,
        mem_avail: 9 << 30,
        load: 0.75,
        disk_total: 512 << 30,
        disk_avail: 100 << 30,
        arch: "x86_64".into(),
        os: "linux".into(),
        version: "0.1.0".into(),
        tags,
        links: Default::default(),
    }
}

fn node(i: u8, now: Instant) -> Membership {
    let name = format!("n{i}");
    Membership::new(key(i), 1, meta(&name), Profile::Default, u64::from(i), now)
}

/// Drains `m`: the packets to send and the events.
fn drain(m: &mut Membership) -> (Vec<(PublicKey, Vec<u8>)>, Vec<Event>) {
    let mut sends = Vec::new();
    let mut events = Vec::new();
    while let Some(out) = m.poll() {
        match out {
            Output::Send { to, packet, .. } => sends.push((to, packet)),
            Output::Event(e) => events.push(e),
        }
    }
    (sends, events)
}

/// Runs nodes with instant delivery for `span`, stepping 10 ms; returns every node's events.
fn run(nodes: &mut [Membership], start: Instant, span: Duration) -> Vec<Vec<Event>> {
    let mut events = vec![Vec::new(); nodes.len()];
    let mut now = start;
    let end = start + span;
    while now <= end {
        for node in nodes.iter_mut() {
            node.handle_timers(now);
        }
        // Deliver until quiet.
        loop {
            let mut moved = false;
            for i in 0..nodes.len() {
                let (sends, evs) = drain(&mut nodes[i]);
                events[i].extend(evs);
                let from = nodes[i].key();
                for (to, packet) in sends {
                    moved = true;
                    if let Some(j) = nodes.iter().position(|n| n.key() == to) {
                        let _ = nodes[j].handle_packet(&from, &packet, now);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        now += Duration::from_millis(10);
    }
    events
}

#[test]
fn membership_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Membership>();
}

#[test]
fn meta_messages_round_trip() {
    let mut m = meta("kitchen-pi");
    m.name = "küche-π".into();
    m.load = 3.25;
    let record = MetaRecord {
        key: key(1).to_bytes(),
        session: 1_790_000_000_000,
        version: 42,
        meta: m,
    };
    let push = MetaMsg::Push(vec![record.clone(), record]);
    let packet = push.to_packet().unwrap();
    assert_eq!(packet[0], KIND_META);
    assert_eq!(MetaMsg::from_body(&packet[1..]).unwrap(), push);

    let digest = MetaMsg::Digest(vec![DigestEntry {
        key: key(2).to_bytes(),
        session: u64::MAX,
        version: 0,
    }]);
    let packet = digest.to_packet().unwrap();
    assert_eq!(MetaMsg::from_body(&packet[1..]).unwrap(), digest);

    // Trailing bytes and truncation are errors.
    let mut long = packet.clone();
    long.push(0);
    assert!(MetaMsg::from_body(&long[1..]).is_err());
    assert!(MetaMsg::from_body(&packet[1..packet.len() - 1]).is_err());
}

#[test]
fn meta_limits_validate_and_sanitize() {
    assert_eq!(meta("a").validate(), Ok(()));
    let mut m = meta("a");
    m.name = "é".repeat(MAX_NAME_LEN); // 2 bytes each
    assert!(matches!(
        m.validate(),
        Err(MetaError::TooLong { field: "name", .. })
    ));
    m.load = f32::NAN;
    m.tags = (0..100)
        .map(|i| (format!("t{i:03}"), "x".repeat(500)))
        .collect();
    m.tags
        .insert("k".repeat(MAX_TAG_KEY_LEN + 1), String::new());
    let s = m.sanitized();
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(s.name.len(), MAX_NAME_LEN);
    assert_eq!(s.load, 0.0);
    assert_eq!(s.tags.len(), MAX_TAGS);
    assert!(s.tags.keys().all(|k| k.starts_with('t')));
    assert!(s.tags.values().all(|v| v.len() == MAX_TAG_VALUE_LEN));
    let mut neg = meta("a");
    neg.load = -1.0;
    assert_eq!(neg.validate(), Err(MetaError::BadLoad));
    let mut linked = meta("a");
    linked.links = (0..100)
        .map(|i| (format!("n{i:03}"), super::LinkFigures::default()))
        .collect();
    assert_eq!(linked.validate(), Err(MetaError::TooManyLinks));
    linked
        .links
        .insert("n".repeat(MAX_NAME_LEN + 1), super::LinkFigures::default());
    let s = linked.sanitized();
    assert_eq!(s.validate(), Ok(()));
    assert_eq!(s.links.len(), MAX_LINKS);
}

#[test]
fn two_nodes_join_and_see_each_other() {
    let t0 = Instant::now();
    let mut nodes = vec![node(1, t0), node(2, t0)];
    let seed_key = nodes[0].key();
    nodes[1].join(seed_key, "n1.lan:7070".into(), t0).unwrap();
    let events = run(&mut nodes, t0, Duration::from_secs(2));
    for (i, m) in nodes.iter().enumerate() {
        let members = m.members();
        assert_eq!(members.len(), 2, "node {i}: {members:?}");
        for v in &members {
            assert_eq!(v.health, Health::Alive);
            assert_eq!(v.meta, m_meta(&nodes, v.key));
        }
        assert!(
            events[i].iter().any(|e| matches!(e, Event::Up(_))),
            "node {i} saw no Up: {:?}",
            events[i]
        );
    }
}

fn m_meta(nodes: &[Membership], key: PublicKey) -> Meta {
    nodes.iter().find(|n| n.key() == key).unwrap().local().meta
}

#[test]
fn sender_must_be_the_link_peer() {
    let t0 = Instant::now();
    let mut a = node(1, t0);
    let mut b = node(2, t0);
    b.join(a.key(), "n1.lan:7070".into(), t0).unwrap();
    let (sends, _) = drain(&mut b);
    let (to, announce) = sends.into_iter().next().unwrap();
    assert_eq!(to, a.key());
    assert_eq!(announce[0], KIND_SWIM);

    // The same bytes over the link of another node (3) are refused, before foca sees them.
    let err = a.handle_packet(&key(3), &announce, t0).unwrap_err();
    assert!(
        matches!(&err, MembershipError::SenderMismatch { link, .. } if **link == key(3)),
        "{err}"
    );
    assert!(err.to_string().contains("claims to come from"));
    assert_eq!(a.live_count(), 0);
    assert!(drain(&mut a).0.is_empty());

    // Over the right link it is taken, and answered.
    a.handle_packet(&b.key(), &announce, t0).unwrap();
    assert_eq!(a.live_count(), 1);
    assert!(drain(&mut a).0.iter().any(|(to, _)| *to == b.key()));
}

#[test]
fn garbage_packets_are_errors() {
    let t0 = Instant::now();
    let mut a = node(1, t0);
    let b = key(2);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x77, 1, 2, 3],
        vec![KIND_SWIM],
        vec![KIND_SWIM, 0xff, 0xff, 0xff],
        vec![KIND_META],
        vec![KIND_META, 0x09, 0x00],
        vec![KIND_META, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f],
    ];
    for packet in &cases {
        assert!(a.handle_packet(&b, packet, t0).is_err(), "{packet:?}");
    }
    assert_eq!(a.handle_packet(&b, &[], t0), Err(MembershipError::Empty));
    assert_eq!(
        a.handle_packet(&b, &[0x77], t0),
        Err(MembershipError::UnknownKind(0x77))
    );
    let big = vec![KIND_SWIM; MAX_PACKET + 1];
    assert!(matches!(
        a.handle_packet(&b, &big, t0),
        Err(MembershipError::TooBig { .. })
    ));
    let swim_big = vec![KIND_SWIM; MAX_SWIM_PACKET + 2];
    assert!(matches!(
        a.handle_packet(&b, &swim_big, t0),
        Err(MembershipError::TooBig { .. })
    ));
    assert_eq!(
        a.handle_packet(&a.key(), &[KIND_SWIM], t0),
        Err(MembershipError::ItsMe)
    );
    // Metadata breaking the limits is refused.
    let mut bad = meta("x");
    bad.load = f32::INFINITY;
    let push = MetaMsg::Push(vec![MetaRecord {
        key: b.to_bytes(),
        session: 1,
        version: 1,
        meta: bad,
    }]);
    assert!(matches!(
        a.handle_packet(&b, &push.to_packet().unwrap(), t0),
        Err(MembershipError::BadPacket(_))
    ));
    assert!(a.members().len() == 1);
}

#[test]
fn removed_node_is_refused() {
    let t0 = Instant::now();
    let mut nodes = vec![node(1, t0), node(2, t0)];
    let k1 = nodes[0].key();
    let k2 = nodes[1].key();
    nodes[1].join(k1, "n1.lan:7070".into(), t0).unwrap();
    run(&mut nodes, t0, Duration::from_secs(1));
    assert_eq!(nodes[0].live_count(), 1);

    let t1 = t0 + Duration::from_secs(1);
    nodes[0].remove(&k2, t1);
    let (sends, events) = drain(&mut nodes[0]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Down { key, .. } if *key == k2)));
    assert!(sends.iter().all(|(to, _)| *to != k2));
    assert_eq!(nodes[0].live_count(), 0);
    assert!(nodes[0].is_removed(&k2));
    assert!(matches!(
        nodes[0].handle_packet(&k2, &[KIND_SWIM], t1),
        Err(MembershipError::Removed(_))
    ));
    assert!(matches!(
        nodes[0].join(k2, "n2.lan:7070".into(), t1),
        Err(MembershipError::Removed(_))
    ));
    assert_eq!(nodes[0].members().len(), 1);
    nodes[0].unban(&k2);
    assert!(!nodes[0].is_removed(&k2));
}

#[test]
fn timings_promise_what_the_docs_say() {
    for profile in [Profile::Default, Profile::Local] {
        let t = profile.timing();
        assert!(t.probe_rtt < t.probe_period);
        assert!(t.detection_bound <= Duration::from_secs(2));
        let c = profile.foca_config();
        assert_eq!(c.probe_period, t.probe_period);
        assert_eq!(c.max_packet_size.get(), MAX_SWIM_PACKET);
    }
    assert_eq!(
        Profile::Default.timing().detection_bound,
        Duration::from_secs(2)
    );
    assert_eq!(
        Profile::Local.timing().detection_bound,
        Duration::from_secs(1)
    );
}

/// A real SWIM packet from node 2 to node 1 (an announce) and one with cluster updates.
fn sample_packets() -> Vec<Vec<u8>> {
    let t0 = Instant::now();
    let mut nodes = vec![node(1, t0), node(2, t0), node(3, t0)];
    let k1 = nodes[0].key();
    nodes[1].join(k1, "n1.lan:7070".into(), t0).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let (sends, _) = drain(&mut nodes[1]);
    out.extend(sends.into_iter().map(|(_, p)| p));
    nodes[2].join(k1, "n1.lan:7070".into(), t0).unwrap();
    run(&mut nodes, t0, Duration::from_millis(500));
    nodes[1].handle_timers(t0 + Duration::from_secs(2));
    let (sends, _) = drain(&mut nodes[1]);
    out.extend(sends.into_iter().map(|(_, p)| p));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(kind in prop_oneof![Just(KIND_SWIM), Just(KIND_META), any::<u8>()],
                                   body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let t0 = Instant::now();
        let mut a = node(1, t0);
        let mut packet = vec![kind];
        packet.extend_from_slice(&body);
        let _ = a.handle_packet(&key(2), &packet, t0);
        a.handle_timers(t0 + Duration::from_secs(3));
        while a.poll().is_some() {}
    }

    #[test]
    fn mutated_real_packets_never_panic(which in any::<prop::sample::Index>(),
                                        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
                                        cut in any::<prop::sample::Index>(),
                                        do_cut in any::<bool>()) {
        let samples = sample_packets();
        let mut packet = samples[which.index(samples.len())].clone();
        for (at, byte) in edits {
            let i = at.index(packet.len());
            if i > 0 {
                packet[i] = byte;
            }
        }
        if do_cut {
            packet.truncate(cut.index(packet.len() + 1));
        }
        let t0 = Instant::now();
        let mut a = node(1, t0);
        let _ = a.handle_packet(&key(2), &packet, t0);
        a.handle_timers(t0 + Duration::from_secs(3));
        while a.poll().is_some() {}
    }
}
