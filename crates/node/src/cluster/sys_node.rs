//! `sys.node`: the cluster's nodes and services, invites, removing nodes, choosing voters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use plexus_cluster::membership::{Health, Meta};
use plexus_cluster::raft::{Command as RaftCommand, Response};
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Entry, Error, Example, Help, Outcome, Service, Table,
};
use plexus_services::forms::count;
use plexus_units::{Map, Unit};

use super::store::raft_error;
use super::swim::local_meta;
use super::token::{invite_keypair, JoinToken, Seed};
use super::{now_ms, Inner, Net};

const NAME: &str = "sys.node";

/// The per-node setting (in the replicated node metadata) that records a voter chosen by
/// hand: `yes` or `no`; absent when the cluster chooses.
pub const VOTER_SETTING: &str = "voter";

/// How long an invite lasts unless asked otherwise.
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(3600);

/// Longest invite.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// `sys.node`: the same commands on a cluster member and on a node outside any cluster.
struct SysNode<N: Net> {
    name: String,
    scope: Scope<N>,
}

/// What a command does.
#[derive(Clone, Copy)]
enum Node {
    Me,
    Nodes,
    Services,
    Leader,
    Invite,
    Remove,
    Voters,
}

enum Scope<N: Net> {
    Cluster(Member<N>),
    /// Outside any cluster: the node lists itself and its own services, and the commands that
    /// change a cluster fail with [`code::NO_CLUSTER`].
    Single {
        id: String,
        data_dir: PathBuf,
    },
}

/// The cluster side of `sys.node`.
struct Member<N: Net> {
    c: Arc<Inner<N>>,
}

/// The `sys.node` service of a cluster member.
pub(crate) fn service<N: Net>(c: Arc<Inner<N>>) -> Arc<dyn Service> {
    Arc::new(SysNode {
        name: c.name.clone(),
        scope: Scope::Cluster(Member { c }),
    })
}

/// The `sys.node` service of a node outside any cluster: it lists itself and its own services,
/// and answers the commands that change a cluster with [`code::NO_CLUSTER`].
pub fn single_service(name: &str, id: &str, data_dir: &Path) -> Arc<dyn Service> {
    Arc::new(SysNode::<super::TcpNet> {
        name: name.to_owned(),
        scope: Scope::Single {
            id: id.to_owned(),
            data_dir: data_dir.to_owned(),
        },
    })
}

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Node>> = LazyLock::new(table);

fn table() -> Table<Node> {
    Table::new(
        NAME,
        "The cluster: its nodes (resources, tags, role, health), which node provides \
               which service, invites for new nodes, removing nodes, choosing voters",
        vec![
            Example {
                info: "Every node: name, id, address, role, health, leader mark, resources, tags",
                com: "nodes@sys.node",
                res: None,
            },
            Example {
                info: "Which nodes provide each service",
                com: "services@sys.node",
                res: None,
            },
        ],
        vec![
            Entry::new(
                "me",
                "The name of the node that runs the call (me@sys.node:n2 gives n2)",
                &["me"],
                Arg::Optional,
                Node::Me,
            ),
            Entry::new(
                "nodes",
                "Every node of the cluster as a map {name id addr role health leader \
                       cores mem.total mem.avail load disk.total disk.avail arch os version \
                       tags}; role is voter or learner (single for a node outside a \
                       cluster, which lists only itself), health alive, suspect or down",
                &["nodes"],
                Arg::Optional,
                Node::Nodes,
            ),
            Entry::new(
                "services",
                "A map from each service to the names of the live nodes that provide it",
                &["services"],
                Arg::Optional,
                Node::Services,
            ),
            Entry::new(
                "leader",
                "The name of the current leader of the cluster state (none if there is none)",
                &["leader"],
                Arg::Optional,
                Node::Leader,
            ),
            Entry::new(
                "invite",
                "Admin only. A one-time join token for a new node (plx node --join \
                       TOKEN), valid for an hour or the given number of seconds (at most a week)",
                &["invite", "(invite seconds)"],
                Arg::Optional,
                Node::Invite,
            ),
            Entry::new(
                "remove",
                "Admin only. Takes a node out of the cluster: it stops being a voter, \
                       leaves the roster, and its key is revoked (its links are refused)",
                &["(remove name)"],
                Arg::Optional,
                Node::Remove,
            ),
            Entry::new(
                "voters",
                "Admin only. Sets which nodes vote on the cluster state (1, 3 or 5 \
                       names), kept by every later leader; (voters auto) lets the cluster \
                       choose again (the default: 1, 3 or 5 voters as nodes join)",
                &["(voters [name …])", "(voters auto)"],
                Arg::Optional,
                Node::Voters,
            ),
        ],
    )
}

impl<N: Net> Service for SysNode<N> {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (entry, cmd) = TABLE
                .find(&msg)
                .ok_or_else(|| Error::unknown_command(NAME, &msg))?;
            match (entry.run, &self.scope) {
                (Node::Me, _) => Ok(Some(Unit::str(&self.name))),
                (Node::Nodes, Scope::Cluster(m)) => Ok(Some(m.nodes())),
                (Node::Nodes, Scope::Single { id, data_dir }) => {
                    let meta =
                        local_meta(&self.name, "", &BTreeMap::new(), data_dir, BTreeMap::new());
                    let row = node_row(
                        (&self.name, id, Unit::None),
                        ("single", Health::Alive, false),
                        Some(&meta),
                    );
                    Ok(Some(Unit::List(vec![row])))
                }
                (Node::Services, Scope::Cluster(m)) => Ok(Some(m.services())),
                (Node::Services, Scope::Single { .. }) => {
                    let mut out = Map::new();
                    for s in cx.kernel().services() {
                        out.insert(Unit::Str(s), Unit::List(vec![Unit::str(&self.name)]));
                    }
                    Ok(Some(Unit::Map(out)))
                }
                (Node::Leader, Scope::Cluster(m)) => Ok(Some(m.leader())),
                (Node::Leader, Scope::Single { .. }) => Ok(Some(Unit::None)),
                (Node::Invite | Node::Remove | Node::Voters, Scope::Single { .. }) => {
                    Err(Error::new(
                        code::NO_CLUSTER,
                        format!(
                            "node {} is not part of a cluster: start it with `plx node --init \
                         --listen HOST:PORT` to make it the first node of one, or run \
                         `plx up --nodes 3` for a cluster on this machine",
                            self.name
                        ),
                    ))
                }
                (Node::Invite, Scope::Cluster(m)) => {
                    m.admin(cx)?;
                    let ttl = match cmd.arg {
                        None => DEFAULT_INVITE_TTL,
                        Some(u) => {
                            Duration::from_secs(count(u, "the invite's lifetime in seconds")? as u64)
                        }
                    };
                    Ok(Some(Unit::str(&m.invite(ttl).await?)))
                }
                (Node::Remove, Scope::Cluster(m)) => {
                    m.admin(cx)?;
                    let name = cmd
                        .arg()?
                        .as_str()
                        .ok_or_else(|| Error::bad_argument("remove takes a node name"))?;
                    m.remove(cx, name).await
                }
                (Node::Voters, Scope::Cluster(m)) => {
                    m.admin(cx)?;
                    m.voters(cmd.arg()?).await
                }
            }
        })
    }
}

fn uint(v: u64) -> Unit {
    i64::try_from(v).map(Unit::int).unwrap_or(Unit::None)
}

/// One row of `nodes`: who the node is, where it stands, and its advertised figures when known.
fn node_row(
    (name, id, addr): (&str, &str, Unit),
    (role, health, leader): (&str, Health, bool),
    meta: Option<&Meta>,
) -> Unit {
    let mut e = Map::new();
    let mut put = |k: &str, v: Unit| {
        e.insert(Unit::str(k), v);
    };
    put("name", Unit::str(name));
    put("id", Unit::str(id));
    put("addr", addr);
    put("role", Unit::str(role));
    let health = match health {
        Health::Alive => "alive",
        Health::Suspect => "suspect",
        Health::Down => "down",
    };
    put("health", Unit::str(health));
    put("leader", Unit::Bool(leader));
    if let Some(meta) = meta {
        put("cores", uint(u64::from(meta.cores)));
        put("mem.total", uint(meta.mem_total));
        put("mem.avail", uint(meta.mem_avail));
        put(
            "load",
            plexus_units::parse(&format!("{:.2}", meta.load)).unwrap_or(Unit::None),
        );
        put("disk.total", uint(meta.disk_total));
        put("disk.avail", uint(meta.disk_avail));
        put("arch", Unit::str(&meta.arch));
        put("os", Unit::str(&meta.os));
        put("version", Unit::str(&meta.version));
        let mut tags = Map::new();
        for (k, v) in &meta.tags {
            tags.insert(Unit::str(k), Unit::str(v));
        }
        put("tags", Unit::Map(tags));
        let mut links = Map::new();
        for (peer, l) in &meta.links {
            let mut link = Map::new();
            link.insert(Unit::str("rtt_us"), uint(u64::from(l.rtt_us)));
            link.insert(Unit::str("rate"), uint(l.rate));
            links.insert(Unit::str(peer), Unit::Map(link));
        }
        put("links", Unit::Map(links));
    }
    Unit::Map(e)
}

impl<N: Net> Member<N> {
    fn leader(&self) -> Unit {
        self.c
            .raft
            .leader()
            .and_then(|l| self.c.view.by_raft_id(l))
            .map(|m| Unit::str(&m.name))
            .unwrap_or(Unit::None)
    }

    fn admin(&self, cx: &Cx) -> Result<(), Error> {
        if cx.author() != cx.kernel().admin() && *cx.author() != self.c.admin {
            return Err(Error::new(
                code::DENIED,
                "only the node's admin may change the cluster",
            ));
        }
        Ok(())
    }

    fn nodes(&self) -> Unit {
        let leader = self.c.raft.leader();
        let rows = self.c.view.roster().into_iter().map(|m| {
            let health = self.c.view.health(&m.key);
            let role = if m.voter { "voter" } else { "learner" };
            let meta = self.c.view.meta(&m.key);
            node_row(
                (&m.name, &m.id, Unit::str(&m.addr)),
                (role, health, leader == Some(m.raft_id)),
                meta.as_ref(),
            )
        });
        Unit::List(rows.collect())
    }

    fn services(&self) -> Unit {
        let mut by_service: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (m, services) in self.c.view.services() {
            if self.c.view.health(&m.key) == Health::Down {
                continue;
            }
            for s in services {
                by_service.entry(s).or_default().push(m.name.clone());
            }
        }
        let mut out = Map::new();
        for (s, mut nodes) in by_service {
            nodes.sort();
            out.insert(
                Unit::str(&s),
                Unit::List(nodes.iter().map(|n| Unit::str(n)).collect()),
            );
        }
        Unit::Map(out)
    }

    async fn invite(&self, ttl: Duration) -> Result<String, Error> {
        if ttl.is_zero() || ttl > MAX_INVITE_TTL {
            return Err(Error::bad_argument(format!(
                "an invite lasts 1 s to {} s",
                MAX_INVITE_TTL.as_secs()
            )));
        }
        let secret: [u8; 32] = rand::random();
        let key = invite_keypair(&secret).map_err(|e| Error::internal(e.to_string()))?;
        let expires_ms = now_ms().saturating_add(ttl.as_millis() as u64);
        if let Response::Err { code, message } = self
            .c
            .raft
            .write(RaftCommand::AddInvite {
                id: key.public().to_bytes(),
                expires_ms,
            })
            .await
            .map_err(raft_error)?
        {
            return Err(Error::new(&code, message));
        }
        // This node first, then the others: a joiner tries them in order.
        let mut seeds = vec![Seed {
            addr: self.c.addr.to_string(),
            key: self.c.key.to_bytes(),
        }];
        for m in self.c.view.roster() {
            if m.key != self.c.key && self.c.view.health(&m.key) != Health::Down {
                seeds.push(Seed {
                    addr: m.addr,
                    key: m.key.to_bytes(),
                });
            }
        }
        Ok(JoinToken {
            version: 1,
            cluster: self.c.cluster_id,
            seeds,
            secret,
            expires_ms,
        }
        .encode())
    }

    async fn remove(&self, cx: &Cx, name: &str) -> Outcome {
        let m = self
            .c
            .view
            .find(name)
            .ok_or_else(|| Error::new(code::UNKNOWN_NODE, format!("no node named {name}")))?;
        if self.c.raft.leader() != Some(self.c.raft_id) {
            // Membership changes happen on the leader.
            let leader = self
                .c
                .raft
                .leader()
                .and_then(|l| self.c.view.by_raft_id(l))
                .ok_or_else(|| {
                    Error::new(code::NO_QUORUM, "the cluster has no leader right now")
                })?;
            return cx
                .send(
                    NAME,
                    Some(&leader.id),
                    Unit::pair(Unit::str("remove"), Unit::str(name)),
                )
                .await;
        }
        if m.key == self.c.key {
            return Err(Error::bad_argument(
                "the leader cannot remove itself: remove it from another node after it steps \
                 down, or stop it and remove it from another node",
            ));
        }
        self.c
            .raft
            .remove_node(m.raft_id)
            .await
            .map_err(raft_error)?;
        self.c
            .raft
            .write(RaftCommand::Revoke {
                key: m.key.to_bytes(),
            })
            .await
            .map_err(raft_error)?;
        super::sync_state(&self.c);
        Ok(Some(Unit::str(&format!("removed {}", m.name))))
    }

    async fn voters(&self, arg: &Unit) -> Outcome {
        let roster = self.c.view.roster();
        if arg.as_str() == Some("auto") {
            for m in &roster {
                self.set_voter_setting(m.raft_id, None).await?;
            }
            return Ok(None);
        }
        let names = arg
            .as_list()
            .ok_or_else(|| Error::bad_argument("voters takes a list of node names, or auto"))?;
        if ![1, 3, 5].contains(&names.len()) {
            return Err(Error::bad_argument("a cluster has 1, 3 or 5 voters"));
        }
        let mut ids = BTreeSet::new();
        for n in names {
            let name = n
                .as_str()
                .ok_or_else(|| Error::bad_argument("voters takes node names"))?;
            let m =
                self.c.view.find(name).ok_or_else(|| {
                    Error::new(code::UNKNOWN_NODE, format!("no node named {name}"))
                })?;
            ids.insert(m.raft_id);
        }
        if ids.len() != names.len() {
            return Err(Error::bad_argument("a node is named twice"));
        }
        self.c
            .raft
            .change_voters(ids.clone())
            .await
            .map_err(raft_error)?;
        // Recorded in the replicated state so every future leader keeps the choice.
        for m in &roster {
            self.set_voter_setting(m.raft_id, Some(ids.contains(&m.raft_id)))
                .await?;
        }
        super::sync_state(&self.c);
        Ok(None)
    }

    async fn set_voter_setting(&self, node: u64, voter: Option<bool>) -> Result<(), Error> {
        let mut tags = self.c.raft.node_meta().remove(&node).unwrap_or_default();
        match voter {
            Some(v) => {
                tags.insert(
                    VOTER_SETTING.to_owned(),
                    if v { "yes" } else { "no" }.to_owned(),
                );
            }
            None => {
                tags.remove(VOTER_SETTING);
            }
        }
        match self
            .c
            .raft
            .write(RaftCommand::SetNodeMeta { node, tags })
            .await
            .map_err(raft_error)?
        {
            Response::Err { code, message } => Err(Error::new(&code, message)),
            _ => Ok(()),
        }
    }
}
