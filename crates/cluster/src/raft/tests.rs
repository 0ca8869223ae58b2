//! Unit tests: voter choice, node ids, and the state machine's apply and snapshots.

use std::collections::{BTreeMap, BTreeSet};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};
use plexus_identity::{KeyKind, Keypair};
use plexus_store::fs::FsOp;
use plexus_units::{encode, parse, Unit};
use tempfile::TempDir;

use super::state_machine::SnapshotState;
use super::*;

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

#[test]
fn voters_one_three_or_five() {
    let none = BTreeSet::new();
    assert_eq!(choose_voters(&[(1, true)], &none), set(&[1]));
    assert_eq!(
        choose_voters(&[(1, true), (2, true)], &set(&[1])),
        set(&[1])
    );
    assert_eq!(
        choose_voters(&[(1, true), (2, true)], &set(&[2])),
        set(&[2])
    );
    let three = [(1, true), (2, true), (3, true)];
    assert_eq!(choose_voters(&three, &set(&[1])), set(&[1, 2, 3]));
    let four = [(1, true), (2, true), (3, true), (4, true)];
    assert_eq!(choose_voters(&four, &set(&[2, 3, 4])), set(&[2, 3, 4]));
    assert_eq!(choose_voters(&four, &set(&[4])), set(&[1, 2, 4]));
    let six: Vec<(u64, bool)> = (1..=6).map(|i| (i, true)).collect();
    assert_eq!(choose_voters(&six, &set(&[6, 5, 4])), set(&[1, 2, 4, 5, 6]));
    assert_eq!(
        choose_voters(&six, &set(&[1, 2, 3, 4, 5])),
        set(&[1, 2, 3, 4, 5])
    );
}

#[test]
fn voters_replace_dead_ones_but_never_shrink_for_them() {
    // A dead voter is replaced by a live learner.
    let nodes = [(1, true), (2, true), (3, false), (4, true)];
    assert_eq!(choose_voters(&nodes, &set(&[1, 2, 3])), set(&[1, 2, 4]));
    // No live learner: the dead voter keeps its seat.
    let nodes = [(1, true), (2, true), (3, false)];
    assert_eq!(choose_voters(&nodes, &set(&[1, 2, 3])), set(&[1, 2, 3]));
    // Five nodes, two down, voters were the first five of six.
    let nodes = [
        (1, false),
        (2, true),
        (3, true),
        (4, false),
        (5, true),
        (6, true),
    ];
    assert_eq!(
        choose_voters(&nodes, &set(&[1, 2, 3, 4, 5])),
        set(&[1, 2, 3, 5, 6])
    );
    // Removed members are never chosen; no nodes keeps the current set.
    assert_eq!(choose_voters(&[(2, true)], &set(&[1, 2])), set(&[2]));
    assert_eq!(choose_voters(&[], &set(&[7])), set(&[7]));
    // Keeps current healthy voters rather than lower ids.
    let nodes = [(1, true), (2, true), (3, true), (4, true), (5, true)];
    assert_eq!(
        choose_voters(&nodes, &set(&[3, 4, 5])),
        set(&[1, 2, 3, 4, 5])
    );
    let nodes = [(1, true), (2, true), (8, true), (9, true)];
    assert_eq!(choose_voters(&nodes, &set(&[8, 9])), set(&[1, 8, 9]));
}

#[test]
fn node_ids_come_from_the_key_hash() {
    let kp = Keypair::generate(KeyKind::Node, "n1", &mut rand::rngs::OsRng).unwrap();
    let h = blake3::hash(kp.public().as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    assert_eq!(node_id(&kp.public()), u64::from_le_bytes(b));
    assert_eq!(node_id(&kp.public()), node_id_of(&kp.public().to_bytes()));
}

#[test]
fn no_leader_errors_explain_themselves() {
    let e = RaftError::NoLeader {
        reachable: 1,
        voters: 3,
    };
    assert_eq!(
        e.to_string(),
        "no leader: this node cannot reach a majority of voters (1 of 3 reachable)"
    );
}

#[test]
fn membership_refusals_are_told_apart_by_kind() {
    use openraft::error::{ChangeMembershipError, InProgress, LearnerNotFound};
    let busy = MembershipError::from(ChangeMembershipError::InProgress(InProgress {
        committed: None,
        membership_log_id: None,
    }));
    assert!(busy.is_in_progress());
    let unknown = MembershipError::from(ChangeMembershipError::LearnerNotFound(LearnerNotFound {
        node_id: 42,
    }));
    assert!(!unknown.is_in_progress());
    assert!(!MembershipError::NoVoters.is_in_progress());
}

/// A wire that reaches nobody: for a cluster of one.
struct Nowhere;

impl RaftWire for Nowhere {
    fn rpc(
        &self,
        _target: u64,
        _peer: &RaftPeer,
        _body: Vec<u8>,
        _timeout: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, WireError>> + Send>>
    {
        Box::pin(async { Err(WireError::NotSent("no network".into())) })
    }
}

#[tokio::test]
async fn refused_membership_changes_say_why_by_variant() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate(KeyKind::Node, "n1", &mut rand::rngs::OsRng).unwrap();
    let me = RaftPeer {
        name: "n1".into(),
        addr: "n1".into(),
        key: key.public().to_bytes(),
    };
    let raft = ClusterRaft::open(
        dir.path(),
        node_id(&key.public()),
        me,
        std::sync::Arc::new(Nowhere),
        RaftTuning::default(),
    )
    .await
    .unwrap();
    raft.initialize().await.unwrap();
    assert_eq!(
        raft.change_voters(BTreeSet::new()).await,
        Err(RaftError::Membership(MembershipError::NoVoters))
    );
    // A voter must be a learner first.
    let e = raft.change_voters(set(&[42])).await.unwrap_err();
    assert!(
        matches!(
            e,
            RaftError::Membership(MembershipError::Change(
                openraft::error::ChangeMembershipError::LearnerNotFound(_)
            ))
        ),
        "{e:?}"
    );
    raft.shutdown().await;
}

/// A state machine in a temporary directory, fed entries one by one.
struct Sm {
    _dir: TempDir,
    sm: StateMachine,
    next: u64,
}

impl Sm {
    fn new() -> Sm {
        let dir = tempfile::tempdir().unwrap();
        let (_log, sm) = open_storage(dir.path(), 1).unwrap();
        Sm {
            _dir: dir,
            sm,
            next: 0,
        }
    }

    fn log_id(&mut self) -> LogId<u64> {
        self.next += 1;
        LogId::new(CommittedLeaderId::new(1, 1), self.next)
    }

    async fn apply(&mut self, cmd: Command) -> Response {
        let e = Entry {
            log_id: self.log_id(),
            payload: EntryPayload::Normal(cmd),
        };
        self.sm.apply(vec![e]).await.unwrap().pop().unwrap()
    }

    async fn ok(&mut self, cmd: Command) {
        let what = format!("{cmd:?}");
        assert_eq!(self.apply(cmd).await, Response::Ok, "{what}");
    }

    async fn refused(&mut self, cmd: Command, code: &str) -> String {
        let before = self.dump();
        let what = format!("{cmd:?}");
        match self.apply(cmd).await {
            Response::Err { code: c, message } => {
                assert_eq!(c, code, "{what}: {message}");
                assert_eq!(self.dump(), before, "{what} changed the state");
                message
            }
            other => panic!("{what} was applied: {other:?}"),
        }
    }

    fn store(&self) -> Unit {
        let bytes = self.sm.shared.load(None).unwrap().unwrap();
        plexus_units::decode(&bytes).unwrap()
    }

    fn at(&self, path: &str) -> Option<Unit> {
        let segs: Vec<String> = path.split('.').map(String::from).collect();
        self.sm
            .shared
            .load(Some(&segs))
            .unwrap()
            .map(|b| plexus_units::decode(&b).unwrap())
    }

    /// Everything but the applied index.
    fn dump(&self) -> String {
        let s = &self.sm.shared;
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            s.load(None).unwrap(),
            s.users().unwrap(),
            s.services().unwrap(),
            s.node_meta().unwrap(),
            s.invites(0).unwrap(),
            s.revoked().unwrap(),
            s.procs().unwrap(),
            s.fs_dump().unwrap()
        )
    }
}

fn save(path: &str, value: &str) -> Command {
    Command::Save {
        path: path.split('.').map(String::from).collect(),
        value: encode(&parse(value).unwrap()),
    }
}

#[tokio::test]
async fn saves_merge_like_io_store() {
    let mut sm = Sm::new();
    let mut model = Unit::Map(plexus_units::Map::new());
    let saves = [
        ("txt.hello", "hi"),
        ("txt.lang", "rust"),
        ("new.list", "[1]"),
        ("new.list", "[2 3]"),
        ("new.list", "4"),
        ("a", "{x:1}"),
        ("a", "{y:2 x:{z:3}}"),
        ("a", "(x 9)"),
        ("txt.hello", "bye"),
        ("deep.er.and.deeper", "-"),
        ("deep.er", "{more:1}"),
    ];
    for (path, value) in saves {
        sm.ok(save(path, value)).await;
        plexus_store::save_at(
            &mut model,
            &plexus_units::Path::parse_dotted(path).unwrap(),
            parse(value).unwrap(),
        )
        .unwrap();
        assert_eq!(sm.store(), model, "after saving {value} at {path}");
    }
    assert_eq!(
        sm.store(),
        parse("{txt:{hello:bye lang:rust} new:{list:[1 2 3 4]} a:{x:9 y:2} deep:{er:{and:{deeper:-} more:1}}}")
            .unwrap()
    );
    assert_eq!(sm.at("new.list.1"), Some(parse("2").unwrap()));
    assert_eq!(sm.at("txt"), Some(parse("{hello:bye lang:rust}").unwrap()));
    assert_eq!(sm.at("txt.nope"), None);
    assert_eq!(sm.at("nope"), None);
    // Sizes are encoded lengths.
    let shared = &sm.sm.shared;
    assert_eq!(
        shared.load(None).unwrap().unwrap().len() as u64,
        plexus_store::size(&sm.store())
    );
}

#[tokio::test]
async fn batches_apply_each_command_on_its_own() {
    let mut sm = Sm::new();
    let r = sm
        .apply(Command::Batch(vec![
            save("a", "1"),
            save("a.x", "2"),
            save("b", "{x:1}"),
            Command::Batch(vec![save("c", "3")]),
            save("b.y", "2"),
        ]))
        .await;
    let Response::Batch(rs) = r else {
        panic!("a batch gives a batch response: {r:?}")
    };
    let codes: Vec<Option<&str>> = rs
        .iter()
        .map(|r| match r {
            Response::Err { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        vec![None, Some("arg.bad"), None, Some("arg.bad"), None]
    );
    assert_eq!(sm.store(), parse("{a:1 b:{x:1 y:2}}").unwrap());
    assert_eq!(
        sm.apply(Command::Batch(vec![])).await,
        Response::Batch(vec![])
    );
}

#[tokio::test]
async fn refused_commands_change_nothing() {
    let mut sm = Sm::new();
    sm.ok(save("a", "5")).await;
    sm.ok(save("l", "[1 2]")).await;
    let m = sm.refused(save("a.b", "1"), "arg.bad").await;
    assert!(m.contains("@a.b"), "{m}");
    sm.refused(save("l.7", "1"), "arg.bad").await;
    sm.refused(
        Command::Save {
            path: vec![],
            value: encode(&Unit::int(1)),
        },
        "arg.bad",
    )
    .await;
    sm.refused(
        Command::Save {
            path: vec!["x".into()],
            value: vec![0xff, 0x00, 0x13],
        },
        "arg.bad",
    )
    .await;
    // Deeper than an entry may nest.
    let mut deep = Unit::int(1);
    for _ in 0..plexus_store::MAX_ENTRY_DEPTH + 1 {
        deep = Unit::List(vec![deep]);
    }
    sm.refused(
        Command::Save {
            path: vec!["d".into()],
            value: encode(&deep),
        },
        "limit",
    )
    .await;
    sm.refused(
        Command::RemoveUser {
            name: "nobody".into(),
        },
        "not.found",
    )
    .await;
    sm.refused(
        Command::SetServices {
            node: 1,
            services: vec!["x".repeat(MAX_NAME_BYTES + 1)],
        },
        "limit",
    )
    .await;
    assert_eq!(sm.store(), parse("{a:5 l:[1 2]}").unwrap());
}

#[tokio::test]
async fn invites_are_one_time_and_expire() {
    let mut sm = Sm::new();
    let (a, b, c, d) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
    sm.ok(Command::AddInvite {
        id: a,
        expires_ms: 1000,
    })
    .await;
    sm.ok(Command::UseInvite { id: a, now_ms: 500 }).await;
    sm.refused(Command::UseInvite { id: a, now_ms: 600 }, "invite.bad")
        .await;
    sm.refused(Command::UseInvite { id: b, now_ms: 600 }, "invite.bad")
        .await;
    sm.ok(Command::AddInvite {
        id: b,
        expires_ms: 1000,
    })
    .await;
    let m = sm
        .refused(
            Command::UseInvite {
                id: b,
                now_ms: 1000,
            },
            "invite.bad",
        )
        .await;
    assert!(m.contains("expired"), "{m}");
    assert_eq!(sm.sm.shared.invites(0).unwrap(), vec![b]);
    assert_eq!(sm.sm.shared.invites(1000).unwrap(), Vec::<[u8; 32]>::new());
    sm.ok(Command::AddInvite {
        id: c,
        expires_ms: 5000,
    })
    .await;
    sm.ok(Command::AddInvite {
        id: d,
        expires_ms: 100,
    })
    .await;
    // Using one prunes the expired ones.
    sm.ok(Command::UseInvite {
        id: c,
        now_ms: 2000,
    })
    .await;
    assert!(sm.sm.shared.invites(0).unwrap().is_empty());
    sm.ok(Command::AddInvite {
        id: d,
        expires_ms: 100,
    })
    .await;
    sm.ok(Command::PruneInvites { now_ms: 100 }).await;
    assert!(sm.sm.shared.invites(0).unwrap().is_empty());
}

#[tokio::test]
async fn adding_and_renaming_users_refuse_conflicts() {
    let mut sm = Sm::new();
    let key = || {
        Keypair::generate(KeyKind::User, "u", &mut rand::rngs::OsRng)
            .unwrap()
            .public()
            .to_bytes()
    };
    let (k1, k2) = (key(), key());
    let add = |name: &str, key| Command::AddUser {
        name: name.into(),
        key,
    };
    let rename = |name: &str, to: &str| Command::RenameUser {
        name: name.into(),
        to: to.into(),
    };
    sm.ok(add("alice", k1)).await;
    // Unlike SetUser, a taken name is not taken over.
    sm.refused(add("alice", k2), "usr.name.taken").await;
    sm.refused(add("alice", k1), "usr.registered").await;
    sm.refused(add("al", k1), "usr.key.taken").await;
    sm.refused(add("no spaces", k2), "arg.bad").await;
    sm.ok(add("bob", k2)).await;
    sm.refused(rename("alice", "bob"), "usr.name.taken").await;
    sm.refused(rename("nobody", "x"), "not.found").await;
    sm.refused(rename("alice", "no spaces"), "arg.bad").await;
    sm.ok(rename("alice", "alice")).await;
    sm.ok(rename("alice", "ally")).await;
    assert_eq!(
        sm.sm.shared.users().unwrap(),
        vec![("ally".to_owned(), k1), ("bob".to_owned(), k2)]
    );
    // The old name is free again; the key keeps its new name.
    sm.refused(add("alice", k1), "usr.key.taken").await;
    sm.ok(add("alice", key())).await;
}

#[tokio::test]
async fn user_invites_register_once_before_they_expire() {
    let mut sm = Sm::new();
    let key = || {
        Keypair::generate(KeyKind::User, "u", &mut rand::rngs::OsRng)
            .unwrap()
            .public()
            .to_bytes()
    };
    let (k1, k2) = (key(), key());
    let use_it = |name: &str, key, invite, now_ms| Command::AddInvitedUser {
        name: name.into(),
        key,
        invite,
        now_ms,
    };
    sm.ok(Command::AddUserInvite {
        id: [1; 32],
        expires_ms: 1000,
    })
    .await;
    sm.ok(Command::AddUserInvite {
        id: [2; 32],
        expires_ms: 500,
    })
    .await;
    sm.refused(use_it("alice", k1, [9; 32], 10), "usr.invite.bad")
        .await;
    sm.refused(use_it("alice", k1, [2; 32], 500), "usr.invite.bad")
        .await;
    sm.ok(Command::AddUser {
        name: "bob".into(),
        key: k2,
    })
    .await;
    // A refused registration does not use the invite up.
    sm.refused(use_it("bob", k1, [1; 32], 10), "usr.name.taken")
        .await;
    sm.ok(use_it("alice", k1, [1; 32], 10)).await;
    sm.refused(use_it("carol", key(), [1; 32], 10), "usr.invite.bad")
        .await;
    assert_eq!(
        sm.sm.shared.users().unwrap(),
        vec![("alice".to_owned(), k1), ("bob".to_owned(), k2)]
    );
}

#[tokio::test]
async fn users_services_and_revocation() {
    let mut sm = Sm::new();
    let k1 = Keypair::generate(KeyKind::User, "alice", &mut rand::rngs::OsRng)
        .unwrap()
        .public()
        .to_bytes();
    let k2 = Keypair::generate(KeyKind::User, "alice", &mut rand::rngs::OsRng)
        .unwrap()
        .public()
        .to_bytes();
    let user = |name: &str, key| Command::SetUser {
        name: name.into(),
        key,
    };
    sm.ok(user("alice", k1)).await;
    sm.ok(user("alice", k1)).await;
    sm.refused(user("bob", k1), "arg.bad").await;
    sm.refused(user("no spaces", k2), "arg.bad").await;
    // Not a curve point.
    let mut bad = [0u8; 32];
    bad[31] = 0x80;
    bad[0] = 2;
    sm.refused(user("bob", bad), "arg.bad").await;
    sm.ok(user("alice", k2)).await;
    sm.ok(user("bob", k1)).await;
    assert_eq!(
        sm.sm.shared.users().unwrap(),
        vec![("alice".to_owned(), k2), ("bob".to_owned(), k1)]
    );
    sm.ok(Command::RemoveUser {
        name: "alice".into(),
    })
    .await;
    sm.ok(user("carol", k2)).await;

    let node_key = Keypair::generate(KeyKind::Node, "n2", &mut rand::rngs::OsRng)
        .unwrap()
        .public();
    let n2 = node_id(&node_key);
    sm.ok(Command::SetServices {
        node: n2,
        services: vec!["math.calc".into(), "io.term".into()],
    })
    .await;
    sm.ok(Command::SetServices {
        node: 7,
        services: vec!["dat.gen".into()],
    })
    .await;
    let mut tags = BTreeMap::new();
    tags.insert("gpu".to_owned(), "yes".to_owned());
    sm.ok(Command::SetNodeMeta { node: n2, tags }).await;
    assert_eq!(sm.sm.shared.services().unwrap().len(), 2);
    assert_eq!(sm.sm.shared.node_meta().unwrap().len(), 1);
    sm.ok(Command::Revoke {
        key: node_key.to_bytes(),
    })
    .await;
    let services = sm.sm.shared.services().unwrap();
    assert_eq!(services.keys().copied().collect::<Vec<_>>(), vec![7]);
    assert!(sm.sm.shared.node_meta().unwrap().is_empty());
    assert_eq!(sm.sm.shared.revoked().unwrap(), vec![node_key.to_bytes()]);
    sm.ok(Command::SetServices {
        node: 7,
        services: vec![],
    })
    .await;
    assert!(sm.sm.shared.services().unwrap().is_empty());
}

#[tokio::test]
async fn snapshots_round_trip() {
    let mut a = Sm::new();
    a.ok(save("b", "{x:[1 2]}")).await;
    a.ok(save("a", "1")).await;
    a.ok(save("c.d", "{e:f}")).await;
    let k = Keypair::generate(KeyKind::User, "u", &mut rand::rngs::OsRng)
        .unwrap()
        .public()
        .to_bytes();
    a.ok(Command::SetUser {
        name: "u".into(),
        key: k,
    })
    .await;
    a.ok(Command::SetServices {
        node: 3,
        services: vec!["s".into()],
    })
    .await;
    a.ok(Command::AddInvite {
        id: [9; 32],
        expires_ms: u64::MAX,
    })
    .await;
    a.ok(Command::Revoke { key: [8; 32] }).await;
    let mut named = proc_record(5);
    named.name = Some("web".into());
    a.ok(put_proc(&named)).await;
    a.ok(put_proc(&ended_proc(proc_record(6), 3))).await;
    a.ok(Command::AddUserInvite {
        id: [7; 32],
        expires_ms: u64::MAX,
    })
    .await;
    a.ok(fs(FsOp::Mkdir {
        path: "/data".into(),
        mode: 0o755,
    }))
    .await;
    let mut nodes = BTreeMap::new();
    nodes.insert(1u64, RaftPeer::default());
    let membership = Entry {
        log_id: a.log_id(),
        payload: EntryPayload::Membership(Membership::new(vec![set(&[1])], nodes)),
    };
    a.sm.apply(vec![membership]).await.unwrap();

    let snap =
        a.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(a.next));
    let current = a.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);

    // Another node with different content gets it installed: all of it is replaced.
    let mut b = Sm::new();
    b.ok(save("zzz", "1")).await;
    b.ok(Command::SetServices {
        node: 4,
        services: vec!["t".into()],
    })
    .await;
    let mut data = b.sm.begin_receiving_snapshot().await.unwrap();
    *data = *current.snapshot;
    b.sm.install_snapshot(&current.meta, data).await.unwrap();
    assert_eq!(b.dump(), a.dump());
    assert_eq!(
        b.sm.applied_state().await.unwrap(),
        a.sm.applied_state().await.unwrap()
    );
    assert_eq!(b.store(), parse("{b:{x:[1 2]} a:1 c:{d:{e:f}}}").unwrap());
    // New keys after the install keep the order.
    b.next = a.next;
    b.ok(save("z", "2")).await;
    assert_eq!(
        b.store(),
        parse("{b:{x:[1 2]} a:1 c:{d:{e:f}} z:2}").unwrap()
    );
    // The process table came along, its name index too.
    assert_eq!(b.sm.shared.procs().unwrap().len(), 2);
    let mut clash = proc_record(7);
    clash.name = Some("web".into());
    b.refused(put_proc(&clash), "proc.name.taken").await;
    // The file tree came along, its inode counter too.
    b.refused(
        fs(FsOp::Mkdir {
            path: "/data".into(),
            mode: 0o755,
        }),
        "fs.exists",
    )
    .await;
    b.ok(fs(FsOp::Mkdir {
        path: "/data/more".into(),
        mode: 0o755,
    }))
    .await;
    // The user invite came along.
    let invited = Keypair::generate(KeyKind::User, "v", &mut rand::rngs::OsRng)
        .unwrap()
        .public()
        .to_bytes();
    b.ok(Command::AddInvitedUser {
        name: "v".into(),
        key: invited,
        invite: [7; 32],
        now_ms: 1,
    })
    .await;

    // Garbage is refused before it reaches the tables.
    assert!(SnapshotState::decode(&[1, 2, 3]).is_err());
    assert!(
        SnapshotState::decode(&postcard::to_allocvec(&SnapshotState::default()).unwrap()).is_err()
    );
}

#[tokio::test]
async fn applied_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut sm) = open_storage(dir.path(), 5).unwrap();
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, 5), 1),
            payload: EntryPayload::Normal(save("k", "v")),
        };
        sm.apply(vec![e]).await.unwrap();
    }
    let (_log, mut sm) = open_storage(dir.path(), 5).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(1));
    assert_eq!(
        sm.shared.load(Some(&["k".to_owned()])).unwrap(),
        Some(encode(&parse("v").unwrap()))
    );
    drop((_log, sm));
    // The directory belongs to node 5.
    let e = open_storage(dir.path(), 6).unwrap_err();
    assert!(e.to_string().contains("belongs to node"), "{e}");
}

#[tokio::test]
async fn applies_wait_in_one_transaction_until_something_reads() {
    let mut sm = Sm::new();
    let pending = |sm: &Sm| sm.sm.shared.pending().unwrap().is_some();
    sm.ok(save("a", "1")).await;
    sm.ok(save("b", "2")).await;
    // A read commits what is pending first, so it sees every apply.
    assert_eq!(sm.at("b"), Some(parse("2").unwrap()));
    assert!(!pending(&sm), "the read left applies pending");
    sm.ok(save("c", "3")).await;
    // So does a write of the log store's metadata (it would otherwise wait for redb's
    // single writer forever).
    let shared = sm.sm.shared.clone();
    shared
        .write(true, |txn| {
            txn.open_table(super::db::RAFT_META)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .unwrap();
    assert!(!pending(&sm));
    assert_eq!(sm.at("c"), Some(parse("3").unwrap()));
    // After the window a new apply commits.
    sm.ok(save("d", "4")).await;
    std::thread::sleep(super::db::SETTLE_AFTER);
    sm.ok(save("e", "5")).await;
    assert!(
        !pending(&sm),
        "an apply after the window left its transaction open"
    );
}

fn save_once(path: &str, value: &str, message: u8, time_ms: u64, evaluation: u64) -> Command {
    Command::SaveBy {
        path: path.split('.').map(String::from).collect(),
        value: encode(&parse(value).unwrap()),
        user: [1; 32],
        admin: false,
        private: None,
        once: Some(([message; 32], time_ms, evaluation)),
    }
}

#[tokio::test]
async fn a_signed_message_saves_for_one_evaluation_only() {
    let t = 1_000_000;
    let mut a = Sm::new();
    a.ok(save_once("l", "[1]", 1, t, 7)).await;
    // The same evaluation may save again (a message that saves twice).
    a.ok(save_once("l", "[2]", 1, t, 7)).await;
    // Another evaluation of the same message is a replay, here and on a node that installs
    // a snapshot of this state.
    a.refused(save_once("l", "[3]", 1, t, 8), "msg.replay")
        .await;
    let snap =
        a.sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    let mut b = Sm::new();
    let mut data = b.sm.begin_receiving_snapshot().await.unwrap();
    *data = *snap.snapshot;
    b.sm.install_snapshot(&snap.meta, data).await.unwrap();
    b.next = a.next;
    b.refused(save_once("l", "[3]", 1, t, 8), "msg.replay")
        .await;
    assert_eq!(b.at("l"), Some(parse("[1 2]").unwrap()));

    // Once a later message moves the records past the retention, the first is forgotten and
    // the floor refuses anything that old, new or replayed.
    let later = t + plexus_store::ONCE_RETENTION_MS + 1;
    a.ok(save_once("m", "1", 2, later, 9)).await;
    a.refused(save_once("l", "[3]", 1, t, 8), "msg.replay")
        .await;
    a.refused(save_once("l", "[4]", 3, t, 10), "msg.replay")
        .await;
    a.ok(save_once("l", "[5]", 4, later, 11)).await;
    assert_eq!(a.at("l"), Some(parse("[1 2 5]").unwrap()));
}

#[tokio::test]
async fn an_evaluation_that_keeps_saving_keeps_its_record() {
    let t = 1_000_000;
    let retention = plexus_store::ONCE_RETENTION_MS;
    let mut a = Sm::new();
    a.ok(save_once("l", "[1]", 1, t, 7)).await;
    // A long-running evaluation (a task loop) saves again while other messages move the
    // store's time on: its record stays, and so does the refusal of a replay.
    a.ok(save_once("m", "1", 2, t + retention / 2, 8)).await;
    a.ok(save_once("l", "[2]", 1, t, 7)).await;
    a.ok(save_once("n", "1", 3, t + retention + retention / 4, 9))
        .await;
    a.ok(save_once("l", "[3]", 1, t, 7)).await;
    a.refused(save_once("l", "[4]", 1, t, 10), "msg.replay")
        .await;
    assert_eq!(a.at("l"), Some(parse("[1 2 3]").unwrap()));
}

fn once(command: Command, message: u8, evaluation: u64) -> Command {
    Command::Once {
        once: ([message; 32], 1_000_000, evaluation),
        command: Box::new(command),
    }
}

#[tokio::test]
async fn a_wrapped_command_applies_for_one_evaluation_only() {
    use plexus_identity::{KeyKind, Keypair};
    let key = Keypair::generate(KeyKind::User, "u", &mut rand::rngs::OsRng)
        .unwrap()
        .public()
        .to_bytes();
    let add = |name: &str| Command::AddUser {
        name: name.into(),
        key,
    };
    let remove = || Command::RemoveUser { name: "bob".into() };
    let mut sm = Sm::new();
    sm.ok(once(add("bob"), 1, 7)).await;
    sm.ok(remove()).await;
    // Another evaluation of the message is a replay, for a user change or a save alike.
    sm.refused(once(add("bob"), 1, 8), "msg.replay").await;
    sm.refused(save_once("l", "[1]", 1, 1_000_000, 8), "msg.replay")
        .await;
    // The evaluation that changed the state may change it again.
    sm.ok(once(add("bob"), 1, 7)).await;
    assert_eq!(sm.sm.shared.users().unwrap(), vec![("bob".to_owned(), key)]);
    // A refused command records nothing: another evaluation of its message may still apply.
    sm.ok(remove()).await;
    sm.refused(once(remove(), 2, 9), "not.found").await;
    sm.ok(once(add("bob"), 2, 10)).await;
    // Only a plain command is wrapped.
    sm.refused(once(once(remove(), 3, 11), 3, 11), "arg.bad")
        .await;
    sm.refused(once(Command::Batch(vec![remove()]), 4, 12), "arg.bad")
        .await;
    assert_eq!(sm.sm.shared.users().unwrap(), vec![("bob".to_owned(), key)]);
}

/// A file-system change by the admin at time 5.
fn fs(op: FsOp) -> Command {
    Command::Fs {
        op,
        user: [0; 32],
        admin: true,
        now_ms: 5,
    }
}

#[tokio::test]
async fn file_system_changes_apply_with_their_author_rights() {
    let mut sm = Sm::new();
    sm.ok(fs(FsOp::Mkdir {
        path: "/home".into(),
        mode: 0o755,
    }))
    .await;
    let user = |op| Command::Fs {
        op,
        user: [4; 32],
        admin: false,
        now_ms: 6,
    };
    // A user may not add to a directory the admin owns.
    sm.refused(
        user(FsOp::Mkdir {
            path: "/home/u".into(),
            mode: 0o755,
        }),
        "denied",
    )
    .await;
    sm.ok(fs(FsOp::Mkdir {
        path: "/home/u".into(),
        mode: 0o755,
    }))
    .await;
    sm.ok(fs(FsOp::Chown {
        path: "/home/u".into(),
        owner: [4; 32],
    }))
    .await;
    let chunks = vec![plexus_store::fs::StoredChunk {
        hash: [1; 32],
        len: 10,
    }];
    sm.ok(user(FsOp::PutFile {
        path: "/home/u/a".into(),
        mode: 0o644,
        chunks,
        homes: vec![plexus_store::fs::Homes {
            hash: [1; 32],
            add: vec!["n1".into()],
            drop: Vec::new(),
        }],
    }))
    .await;
    sm.ok(user(FsOp::Rename {
        from: "/home/u/a".into(),
        to: "/home/u/b".into(),
    }))
    .await;
    sm.refused(
        user(FsOp::Remove {
            path: "/home".into(),
        }),
        "denied",
    )
    .await;
    sm.refused(
        user(FsOp::Remove {
            path: "/x/../..".into(),
        }),
        "arg.bad",
    )
    .await;
    let dump = sm.sm.shared.fs_dump().unwrap();
    assert_eq!(dump.entries.len(), 3, "{dump:?}");
    assert_eq!(dump.chunks.len(), 1);
    assert_eq!(dump.chunks[0].0, [1; 32]);
    let rows = sm.sm.shared.fs_chunk_rows_of(&[[1; 32]]).unwrap();
    let row = rows[0].clone().unwrap();
    assert_eq!(
        (row.refs, row.len, row.homes),
        (1, 10, vec!["n1".to_owned()])
    );
}

fn proc_record(n: u32) -> plexus_store::ProcRecord {
    plexus_store::ProcRecord::new(
        plexus_store::ProcId::from_random(n.to_le_bytes()),
        [3; 32],
        "n1",
        vec!["sleep".into(), "9".into()],
    )
}

fn ended_proc(mut r: plexus_store::ProcRecord, code: i32) -> plexus_store::ProcRecord {
    r.state = plexus_store::ProcState::Exited(code);
    r.ended_ms = Some(100);
    r
}

fn put_proc(r: &plexus_store::ProcRecord) -> Command {
    Command::PutProc { record: r.encode() }
}

fn update_proc(r: &plexus_store::ProcRecord) -> Command {
    Command::UpdateProc { record: r.encode() }
}

#[tokio::test]
async fn process_records_are_put_updated_and_removed_deterministically() {
    let mut sm = Sm::new();
    let r = proc_record(1);
    sm.ok(put_proc(&r)).await;
    // A retried put is applied again, harmlessly; another record with the id is refused.
    sm.ok(put_proc(&r)).await;
    let mut other = r.clone();
    other.node = "n2".into();
    sm.refused(put_proc(&other), "proc.exists").await;

    // Two nodes update from generation 0 in one batch: the first wins, the second is refused
    // and the record keeps the winner's state (no regression).
    let mut running = r.clone();
    running.state = plexus_store::ProcState::Running;
    running.started_ms = 10;
    let mut lost = r.clone();
    lost.state = plexus_store::ProcState::Lost;
    let out = sm
        .apply(Command::Batch(vec![
            update_proc(&running),
            update_proc(&lost),
        ]))
        .await;
    let Response::Batch(rs) = out else {
        panic!("{out:?}")
    };
    assert_eq!(rs[0], Response::Ok);
    assert!(matches!(&rs[1], Response::Err { code, .. } if code == "proc.conflict"));
    let stored = sm.sm.shared.proc(&r.id).unwrap().unwrap();
    assert_eq!(stored.state, plexus_store::ProcState::Running);
    assert_eq!(stored.generation, 1);
    // The winner's update retried is applied again, harmlessly.
    sm.ok(update_proc(&running)).await;
    assert_eq!(sm.sm.shared.proc(&r.id).unwrap().unwrap(), stored);

    sm.refused(
        Command::PutProc {
            record: vec![1, 200, 3],
        },
        "arg.bad",
    )
    .await;
    sm.refused(update_proc(&proc_record(2)), "not.found").await;
    sm.refused(
        Command::RemoveProc {
            id: "not an id".into(),
        },
        "arg.bad",
    )
    .await;
    sm.ok(Command::RemoveProc {
        id: r.id.to_string(),
    })
    .await;
    sm.ok(Command::RemoveProc {
        id: r.id.to_string(),
    })
    .await;
    assert!(sm.sm.shared.procs().unwrap().is_empty());
}
