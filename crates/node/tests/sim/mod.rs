//! A cluster of real nodes (kernel, services, replicated state, membership, routing) in one
//! process, linked over the in-memory, fault-injecting network of `plexus_net`, each with its
//! data directory in a temporary directory. Run it on a paused tokio clock
//! (`#[tokio::test(start_paused = true)]`): timers then fire in virtual time, as soon as every
//! node is idle, so waits of seconds take milliseconds and a loaded machine cannot make a
//! timeout fire early.
//!
//! ```ignore
//! let mut c = SimCluster::start(3).await;
//! c.node(0).call("(inc 1)@math.calc:n2").await?;
//! c.partition(&[0], &[1, 2]);
//! c.heal();
//! c.kill(1).await;
//! ```
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use plexus_cluster::membership::{Health, Profile};
use plexus_identity::{KeyKind, Keypair, PublicKey};
use plexus_kernel::Outcome;
use plexus_net::MemNetwork;
use plexus_node::cluster::token::JoinToken;
use plexus_node::cluster::{voter_count, Cluster, ClusterConfig, JoinMode, MemNet};
use plexus_node::{Node, NodeConfig};
use tokio::time::Instant;

/// Longest (virtual) wait for a condition; far above any timeout of the cluster.
pub const WAIT: Duration = Duration::from_secs(120);

/// The seed of the network's loss decisions: runs are reproducible.
const SEED: u64 = 15;

/// Nodes in one process.
pub struct SimCluster {
    network: MemNetwork,
    admin: Keypair,
    dir: tempfile::TempDir,
    nodes: Vec<SimNode>,
}

/// One node of a [`SimCluster`]: `n1`, `n2`… both as node name and network endpoint.
pub struct SimNode {
    name: String,
    /// The node key (kept when the node is killed).
    key: PublicKey,
    admin: PublicKey,
    node: Option<Node<MemNet>>,
}

impl SimCluster {
    /// `n` nodes: the first creates the cluster, the others join it one by one with an
    /// invite each; returns once every node sees every node alive, the voters chosen and a
    /// leader.
    pub async fn start(n: usize) -> SimCluster {
        let mut c = SimCluster {
            network: MemNetwork::new(SEED),
            admin: Keypair::generate(KeyKind::User, "admin", &mut rand::rngs::OsRng).unwrap(),
            dir: tempfile::tempdir().unwrap(),
            nodes: Vec::new(),
        };
        c.launch(JoinMode::Init, Default::default()).await;
        c.wait_for("n1 leads the new cluster", |c| {
            c.leader_among(&[0]).is_some()
        })
        .await;
        for _ in 1..n {
            c.join().await;
        }
        c.wait_settled().await;
        c
    }

    /// Starts one more node, joining with a fresh invite from a live node; returns its index.
    pub async fn join(&mut self) -> usize {
        self.join_tagged(&[]).await
    }

    /// [`SimCluster::join`] for a node started with these `--tag`s (name, value; "" for a bare
    /// tag).
    pub async fn join_tagged(&mut self, tags: &[(&str, &str)]) -> usize {
        let inviter = self.live().next().expect("a live node to invite");
        let reply = self.node(inviter).call("invite@sys.node").await;
        let token = match reply.as_ref().ok().and_then(|u| u.as_ref()?.as_str()) {
            Some(text) => JoinToken::decode(text).unwrap(),
            None => panic!("no invite: {reply:?}"),
        };
        let tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.launch(JoinMode::Join(token), tags).await
    }

    async fn launch(
        &mut self,
        mode: JoinMode,
        tags: std::collections::BTreeMap<String, String>,
    ) -> usize {
        let name = format!("n{}", self.nodes.len() + 1);
        let mut config = NodeConfig::new(
            self.dir.path().join(&name),
            self.admin.public(),
            self.admin.name(),
        );
        config.name = Some(name.clone());
        config.cluster = Some(ClusterConfig {
            mode,
            listen: Some(name.clone()),
            tags,
            profile: Some(Profile::Local),
            mdns: Some(false),
        });
        let net = MemNet {
            network: self.network.clone(),
            name: name.clone(),
        };
        let node = Node::start_on(net, config)
            .await
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let key = *node.cluster().expect("a cluster member").view().me();
        self.nodes.push(SimNode {
            name,
            key,
            admin: self.admin.public(),
            node: Some(node),
        });
        self.nodes.len() - 1
    }

    /// Node `i` (counted from 0; its name is `n{i+1}`).
    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// How many nodes were started (killed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The indices of the nodes not killed.
    pub fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].node.is_some())
    }

    /// The in-memory network, for finer faults (delay, loss) than the helpers here.
    pub fn network(&self) -> &MemNetwork {
        &self.network
    }

    /// The administrator every node was started with; calls are signed by them.
    pub fn admin(&self) -> &Keypair {
        &self.admin
    }

    /// Cuts the nodes in `a` off from those in `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let names = |side: &[usize]| -> Vec<&str> {
            side.iter().map(|i| self.nodes[*i].name.as_str()).collect()
        };
        self.network.partition(&names(a), &names(b));
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.network.heal();
    }

    /// Stops node `i` at once, as a crash: it says goodbye to nobody.
    pub async fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].node.take() {
            if let Some(c) = node.cluster() {
                c.kill().await;
            }
        }
    }

    /// The node that every node of `nodes` (live ones) takes for the leader, if they agree
    /// and it is one of them.
    pub fn leader_among(&self, nodes: &[usize]) -> Option<usize> {
        let mut seen = nodes
            .iter()
            .filter_map(|i| self.nodes[*i].node.as_ref())
            .map(|n| n.cluster().and_then(|c| c.raft().leader()));
        let first = seen.next()??;
        if !seen.all(|l| l == Some(first)) {
            return None;
        }
        nodes.iter().copied().find(|i| {
            self.nodes[*i]
                .cluster()
                .is_some_and(|c| c.raft().id() == first)
        })
    }

    /// How node `i` (a live one) sees node `j`.
    pub fn health(&self, i: usize, j: usize) -> Health {
        self.nodes[i]
            .cluster()
            .expect("a live node")
            .view()
            .health(&self.nodes[j].key)
    }

    /// Waits until every live node lists every live node as alive, the voters are chosen
    /// and the live nodes agree on a leader.
    pub async fn wait_settled(&self) {
        self.wait_for("the cluster settles", |c| {
            let live: Vec<usize> = c.live().collect();
            let members = c.len();
            live.iter().all(|i| {
                let view = c.nodes[*i].cluster().expect("a live node").view();
                let roster = view.roster();
                roster.len() == members
                    && roster.iter().filter(|m| m.voter).count() == voter_count(members)
                    && live.iter().all(|j| c.health(*i, *j) == Health::Alive)
            }) && c.leader_among(&live).is_some()
        })
        .await;
    }

    /// Waits (in virtual time, up to [`WAIT`]) until `cond` holds.
    pub async fn wait_for(&self, what: &str, mut cond: impl FnMut(&SimCluster) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits (in virtual time, up to [`WAIT`]) until `cond` gives `true`.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl SimNode {
    /// The node's name, also its address on the network.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The running node; panics on a killed one.
    pub fn node(&self) -> &Node<MemNet> {
        self.node
            .as_ref()
            .unwrap_or_else(|| panic!("{} was killed", self.name))
    }

    /// The node's cluster member, unless the node was killed.
    pub fn cluster(&self) -> Option<&Cluster<MemNet>> {
        self.node.as_ref().and_then(Node::cluster)
    }

    /// The node's kernel.
    pub fn kernel(&self) -> &plexus_kernel::Kernel {
        self.node().kernel()
    }

    /// Evaluates the message in `text` on this node as the administrator, as a client's
    /// request would be (after its signature was checked).
    pub async fn call(&self, text: &str) -> Outcome {
        self.call_as(self.admin, text).await
    }

    /// Evaluates the message in `text` on this node as `author`.
    pub async fn call_as(&self, author: PublicKey, text: &str) -> Outcome {
        let msg = plexus_units::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        // Each request is a message of its own, whatever its text.
        let hash: [u8; 32] = rand::random();
        let kernel = self.kernel().clone();
        self.kernel()
            .spawn_task(None, "sim", author, move |task| async move {
                kernel.context(author, hash, None, task).run(msg).await
            })
            .outcome()
            .await
    }
}
