//! Placement: which node runs a new process, and why each other node was not chosen.
//!
//! [`place`] is a pure function of a [`ClusterView`] and a [`Request`]. Every node is judged
//! (a [`Candidate`] with its [`Verdict`]); among the nodes that fit, the lowest score wins and
//! ties go to the first name in byte order. The score spreads load:
//!
//! ```text
//! score = load‰ × 1000 + min(processes, 999)
//! load‰ = max(cpu reserved after placing / cpu capacity,
//!             mem reserved after placing / mem capacity) in thousandths, at most 1000
//! ```
//!
//! so the node left least loaded (in its most loaded resource) wins, and among equally loaded
//! nodes (for example when no process reserves anything) the one running fewest processes.

use std::collections::BTreeSet;
use std::fmt;

use crate::resources::{Bytes, Cores, Resources};
use crate::tags::{TagExpr, Tags};
use crate::view::{ClusterView, NodeView};

/// What a new process asks of its node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The one node it must run on (`--on n2`), if any.
    pub on: Option<String>,
    /// Tag expressions the node must all satisfy (`--tag`, repeatable).
    pub tags: Vec<TagExpr>,
    /// CPU and memory to reserve on the node (`--cpu`, `--mem`).
    pub reserve: Resources,
    /// Nodes not to use, e.g. the node a process is being moved away from.
    pub avoid: BTreeSet<String>,
}

/// What a pipe between the process and another, already placed, asks of the link between
/// their nodes (`.osh` `min_rate` and `max_latency`). Within one node, every need is met.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkNeed {
    /// The other process's node.
    pub peer: String,
    /// The least rate the link must carry, in bytes per second.
    pub min_rate: Option<u64>,
    /// The longest round trip the link may have, in microseconds.
    pub max_rtt_us: Option<u64>,
}

/// Why a node cannot take the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The node is down.
    Down,
    /// The request avoids this node.
    Avoided,
    /// The request names another node.
    NotAsked {
        /// The node asked for.
        asked: String,
    },
    /// A required tag (`camera`, `site=lab`) is missing.
    LacksTag {
        /// The tag as written.
        tag: String,
    },
    /// A required `name=value` tag has another value here.
    TagValue {
        /// The tag's name.
        name: String,
        /// The node's value.
        has: String,
        /// The value required.
        wants: String,
    },
    /// A tag excluded with `!` is present.
    HasExcluded {
        /// The tag as written.
        tag: String,
    },
    /// A compound expression is false for this node's tags.
    NoMatch {
        /// The expression.
        expr: TagExpr,
    },
    /// Not enough CPU left unreserved (millicores).
    Cpu {
        /// What the request reserves.
        needs: u64,
        /// What the node has left.
        free: u64,
    },
    /// Not enough memory left unreserved or free (bytes).
    Mem {
        /// What the request reserves.
        needs: u64,
        /// What the node has left.
        free: u64,
    },
    /// Neither end of the link to `peer` has measured it yet.
    LinkUnmeasured {
        /// The other process's node.
        peer: String,
    },
    /// The link to `peer` carries less than the pipe needs (bytes per second).
    LinkRate {
        /// The other process's node.
        peer: String,
        /// What the link was measured to carry; 0 while its rate is unmeasured.
        has: u64,
        /// What the pipe needs.
        needs: u64,
    },
    /// The link to `peer` has a longer round trip than the pipe allows (microseconds).
    LinkLatency {
        /// The other process's node.
        peer: String,
        /// The measured round trip.
        has: u64,
        /// The longest allowed.
        allows: u64,
    },
}

impl Reason {
    /// Whether it is about a link to another process's node (a [`LinkNeed`] not met).
    pub fn is_link(&self) -> bool {
        matches!(
            self,
            Reason::LinkUnmeasured { .. } | Reason::LinkRate { .. } | Reason::LinkLatency { .. }
        )
    }
}

impl Refusal {
    /// Whether some node was refused for a link ([`Reason::is_link`]).
    pub fn for_links(&self) -> bool {
        let Refusal::NoFit { candidates } = self else {
            return false;
        };
        candidates.iter().any(|c| match &c.verdict {
            Verdict::Unfit(reasons) => reasons.iter().any(Reason::is_link),
            Verdict::Fits { .. } => false,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Down => f.write_str("down"),
            Reason::Avoided => f.write_str("avoided"),
            Reason::NotAsked { asked } => write!(f, "not the node asked for ({asked})"),
            Reason::LacksTag { tag } => write!(f, "lacks tag {tag}"),
            Reason::TagValue { name, has, wants } => {
                write!(f, "has tag {name}={has}, not {name}={wants}")
            }
            Reason::HasExcluded { tag } => write!(f, "has excluded tag {tag}"),
            Reason::NoMatch { expr } => write!(f, "tags do not match {expr}"),
            Reason::Cpu { needs, free } => {
                write!(f, "needs {}, {} free", Cores(*needs), Cores(*free))
            }
            Reason::Mem { needs, free } => {
                write!(f, "needs {}, {} free", Bytes(*needs), Bytes(*free))
            }
            Reason::LinkUnmeasured { peer } => write!(f, "its link to {peer} is not measured yet"),
            Reason::LinkRate {
                peer,
                has: 0,
                needs,
            } => write!(
                f,
                "its link to {peer} has no measured rate (needs {}/s)",
                Bytes(*needs)
            ),
            Reason::LinkRate { peer, has, needs } => write!(
                f,
                "its link to {peer} carries {}/s, needs {}/s",
                Bytes(*has),
                Bytes(*needs)
            ),
            Reason::LinkLatency { peer, has, allows } => write!(
                f,
                "its link to {peer} has a {} round trip, at most {} allowed",
                Micros(*has),
                Micros(*allows)
            ),
        }
    }
}

/// A duration in microseconds as people read it: `250 µs`, `1.20 ms`.
struct Micros(u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1000 {
            write!(f, "{} µs", self.0)
        } else {
            write!(f, "{:.2} ms", self.0 as f64 / 1000.0)
        }
    }
}

/// The judgement on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The node can take the process.
    Fits {
        /// Lower wins (see the module documentation).
        score: u64,
        /// The node's load after placing, in thousandths.
        load_permille: u64,
        /// Processes running there now.
        processes: u32,
    },
    /// The node cannot take it, for these reasons (all of them, not just the first).
    Unfit(Vec<Reason>),
}

/// One node and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node's name.
    pub node: String,
    /// Whether and how well it fits.
    pub verdict: Verdict,
}

impl Candidate {
    /// The score, for nodes that fit.
    pub fn score(&self) -> Option<u64> {
        match self.verdict {
            Verdict::Fits { score, .. } => Some(score),
            Verdict::Unfit(_) => None,
        }
    }
}

/// A successful placement: the chosen node and every node's verdict, best first (the nodes
/// that fit by score then name, then the others by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node (the first candidate).
    pub node: String,
    /// Every node of the view.
    pub candidates: Vec<Candidate>,
}

/// Why no node was chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The view has no node at all.
    #[error("no nodes to place on")]
    NoNodes,
    /// `--on` names a node the cluster does not have.
    #[error("unknown node {asked:?}; the nodes are {}", known.join(", "))]
    UnknownNode {
        /// The name asked for.
        asked: String,
        /// Every node's name.
        known: Vec<String>,
    },
    /// Nothing fits, and a tag expression mentions a tag no node (up or down) has: most
    /// likely a typo.
    #[error(
        "no node has tag {tag}; {}",
        list_or(known, "no node has any tag", "the tags are")
    )]
    UnknownTag {
        /// The tag as written (`gpu`, `site=moon`).
        tag: String,
        /// Every tag some node has.
        known: Vec<String>,
    },
    /// Every node was judged and none fits.
    #[error("no node can take this process:\n{}", CandidateTable { candidates, chosen: None })]
    NoFit {
        /// Every node with its reasons, by name.
        candidates: Vec<Candidate>,
    },
}

fn list_or(list: &[String], empty: &str, intro: &str) -> String {
    if list.is_empty() {
        empty.to_string()
    } else {
        format!("{intro} {}", list.join(", "))
    }
}

/// Chooses the node for `request` (see the module documentation for the rules).
pub fn place(view: &ClusterView, request: &Request) -> Result<Placement, Refusal> {
    place_linked(view, request, &[])
}

/// [`place_linked`] for a process that reads from processes already placed on the `links`'
/// peers: beside one of them, in the order given, where it fits (a pipe within a node needs
/// no link; the other links must still meet their needs), and otherwise on any node whose
/// links meet them all. A process bound to a node (`on`) is only placed there.
pub fn place_near(
    view: &ClusterView,
    request: &Request,
    links: &[LinkNeed],
) -> Result<Placement, Refusal> {
    if request.on.is_none() {
        for need in links {
            let beside = Request {
                on: Some(need.peer.clone()),
                ..request.clone()
            };
            if let Ok(placed) = place_linked(view, &beside, links) {
                return Ok(placed);
            }
        }
    }
    place_linked(view, request, links)
}

/// [`place`] for a process whose pipes to processes already placed need `links`: a node
/// whose measured links do not meet them cannot take it.
pub fn place_linked(
    view: &ClusterView,
    request: &Request,
    links: &[LinkNeed],
) -> Result<Placement, Refusal> {
    if view.nodes.is_empty() {
        return Err(Refusal::NoNodes);
    }
    if let Some(asked) = &request.on {
        if !view.nodes.contains_key(asked) {
            return Err(Refusal::UnknownNode {
                asked: asked.clone(),
                known: view.nodes.keys().cloned().collect(),
            });
        }
    }
    let mut candidates: Vec<Candidate> = view
        .nodes
        .iter()
        .map(|(name, node)| Candidate {
            node: name.clone(),
            verdict: with_links(judge(name, node, request), link_reasons(view, name, links)),
        })
        .collect();
    // The map iterates by name, and the sort is stable: ties keep name order.
    candidates.sort_by_key(|c| c.score().map_or((1, 0), |s| (0, s)));
    match candidates.first() {
        Some(best) if best.score().is_some() => Ok(Placement {
            node: best.node.clone(),
            candidates,
        }),
        _ => Err(unknown_tag(view, request).unwrap_or(Refusal::NoFit { candidates })),
    }
}

/// The refusal for a tag the request mentions and no node (up or down) has, if there is one.
/// Only asked when nothing fits: `camera||webcam` still places on a camera node when no node
/// has `webcam`, but when nothing fits, a misspelt tag is the likeliest reason.
fn unknown_tag(view: &ClusterView, request: &Request) -> Option<Refusal> {
    let (name, value) = request
        .tags
        .iter()
        .flat_map(TagExpr::mentioned)
        .find(|(name, value)| !view.has_tag(name, *value))?;
    Some(Refusal::UnknownTag {
        tag: match value {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        },
        known: view.known_tags(),
    })
}

/// Why the links from node `name` do not meet `links`.
fn link_reasons(view: &ClusterView, name: &str, links: &[LinkNeed]) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for need in links.iter().filter(|n| n.peer != name) {
        let Some(link) = view.link(name, &need.peer) else {
            reasons.push(Reason::LinkUnmeasured {
                peer: need.peer.clone(),
            });
            continue;
        };
        if let Some(needs) = need.min_rate.filter(|&r| link.rate < r) {
            reasons.push(Reason::LinkRate {
                peer: need.peer.clone(),
                has: link.rate,
                needs,
            });
        }
        if let Some(allows) = need.max_rtt_us.filter(|&l| link.rtt_us > l) {
            reasons.push(Reason::LinkLatency {
                peer: need.peer.clone(),
                has: link.rtt_us,
                allows,
            });
        }
    }
    reasons
}

/// `verdict` with the link reasons added: any makes the node unfit.
fn with_links(verdict: Verdict, mut links: Vec<Reason>) -> Verdict {
    if links.is_empty() {
        return verdict;
    }
    match verdict {
        Verdict::Fits { .. } => Verdict::Unfit(links),
        Verdict::Unfit(mut reasons) => {
            reasons.append(&mut links);
            Verdict::Unfit(reasons)
        }
    }
}

/// The verdict on one node.
pub fn judge(name: &str, node: &NodeView, request: &Request) -> Verdict {
    let mut reasons = Vec::new();
    if !node.up {
        reasons.push(Reason::Down);
    }
    if request.avoid.contains(name) {
        reasons.push(Reason::Avoided);
    }
    if let Some(asked) = &request.on {
        if asked != name {
            reasons.push(Reason::NotAsked {
                asked: asked.clone(),
            });
        }
    }
    for expr in &request.tags {
        if !expr.matches(&node.tags) {
            reasons.push(tag_reason(expr, &node.tags));
        }
    }
    let free = node.free();
    if request.reserve.cpu_millis > free.cpu_millis {
        reasons.push(Reason::Cpu {
            needs: request.reserve.cpu_millis,
            free: free.cpu_millis,
        });
    }
    if request.reserve.mem_bytes > free.mem_bytes {
        reasons.push(Reason::Mem {
            needs: request.reserve.mem_bytes,
            free: free.mem_bytes,
        });
    }
    if !reasons.is_empty() {
        return Verdict::Unfit(reasons);
    }
    let after = node.reserved.saturating_add(request.reserve);
    let load_permille = permille(after.cpu_millis, node.capacity.cpu_millis)
        .max(permille(after.mem_bytes, node.capacity.mem_bytes));
    Verdict::Fits {
        score: load_permille * 1000 + u64::from(node.processes.min(999)),
        load_permille,
        processes: node.processes,
    }
}

/// `part / whole` in thousandths, at most 1000; nothing of nothing is 0.
fn permille(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return if part == 0 { 0 } else { 1000 };
    }
    let value = u128::from(part) * 1000 / u128::from(whole);
    u64::try_from(value.min(1000)).unwrap_or(1000)
}

/// The most precise reason an expression the node fails gives.
fn tag_reason(expr: &TagExpr, tags: &Tags) -> Reason {
    match expr {
        TagExpr::Has(name) => Reason::LacksTag { tag: name.clone() },
        TagExpr::Equals(name, wants) => match tags.get(name) {
            Some(has) => Reason::TagValue {
                name: name.clone(),
                has: has.clone(),
                wants: wants.clone(),
            },
            None => Reason::LacksTag {
                tag: expr.to_string(),
            },
        },
        TagExpr::Not(inner) if matches!(**inner, TagExpr::Has(_) | TagExpr::Equals(..)) => {
            Reason::HasExcluded {
                tag: inner.to_string(),
            }
        }
        _ => Reason::NoMatch { expr: expr.clone() },
    }
}

/// The candidates as a table: node, score, reasons; the chosen node marked with `*`.
struct CandidateTable<'a> {
    candidates: &'a [Candidate],
    chosen: Option<&'a str>,
}

impl fmt::Display for CandidateTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<(String, String, String)> = self
            .candidates
            .iter()
            .map(|c| {
                let (score, why) = match &c.verdict {
                    Verdict::Fits {
                        score,
                        load_permille,
                        processes,
                    } => (
                        score.to_string(),
                        format!(
                            "fits: {}.{}% reserved after, {processes} running",
                            load_permille / 10,
                            load_permille % 10
                        ),
                    ),
                    Verdict::Unfit(reasons) => (
                        "-".to_string(),
                        reasons
                            .iter()
                            .map(Reason::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                };
                (c.node.clone(), score, why)
            })
            .collect();
        let node_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
        let score_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(5);
        write!(
            f,
            "  {:node_width$}  {:>score_width$}  REASONS",
            "NODE", "SCORE"
        )?;
        for (node, score, why) in rows {
            let mark = if Some(node.as_str()) == self.chosen {
                '*'
            } else {
                ' '
            };
            write!(
                f,
                "\n{mark} {node:node_width$}  {score:>score_width$}  {why}"
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "placed on {} (of {} nodes; the lowest score wins):",
            self.node,
            self.candidates.len()
        )?;
        write!(
            f,
            "{}",
            CandidateTable {
                candidates: &self.candidates,
                chosen: Some(&self.node),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn node(cores: u64, mem_mib: u64) -> NodeView {
        NodeView::up(Resources::new(cores * 1000, mem_mib * MIB))
    }

    fn tagged(mut n: NodeView, tags: &[(&str, &str)]) -> NodeView {
        n.tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        n
    }

    fn expr(text: &str) -> TagExpr {
        match TagExpr::parse(text) {
            Ok(e) => e,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn three() -> ClusterView {
        let mut busy = node(4, 1024);
        busy.processes = 3;
        let mut down = tagged(node(8, 4096), &[("camera", "")]);
        down.up = false;
        ClusterView::new()
            .with_node("n1", busy)
            .with_node(
                "n2",
                tagged(node(4, 1024), &[("camera", ""), ("site", "lab")]),
            )
            .with_node("n3", down)
    }

    #[test]
    fn spreads_to_the_node_running_fewest() {
        let placement = place(&three(), &Request::default());
        assert_eq!(placement.map(|p| p.node), Ok("n2".to_string()));
    }

    #[test]
    fn reservations_count_before_process_counts() {
        let mut reserved = node(4, 1024);
        reserved.reserved = Resources::new(2000, 0);
        let mut many = node(4, 1024);
        many.processes = 50;
        let view = ClusterView::new()
            .with_node("a", reserved)
            .with_node("b", many);
        let request = Request {
            reserve: Resources::new(500, 0),
            ..Request::default()
        };
        assert_eq!(place(&view, &request).map(|p| p.node), Ok("b".to_string()));
    }

    #[test]
    fn ties_go_to_the_first_name() {
        let view = ClusterView::new()
            .with_node("b", node(1, 1))
            .with_node("a", node(1, 1))
            .with_node("c", node(1, 1));
        let placement = place(&view, &Request::default());
        assert_eq!(placement.map(|p| p.node), Ok("a".to_string()));
    }

    #[test]
    fn every_node_gets_its_reasons() {
        let request = Request {
            tags: vec![expr("camera"), expr("site=lab")],
            reserve: Resources::new(0, 200 * MIB),
            ..Request::default()
        };
        let mut view = three();
        if let Some(n2) = view.nodes.get_mut("n2") {
            n2.reserved.mem_bytes = 904 * MIB;
        }
        let refusal = place(&view, &request);
        let want = Refusal::NoFit {
            candidates: vec![
                Candidate {
                    node: "n1".into(),
                    verdict: Verdict::Unfit(vec![
                        Reason::LacksTag {
                            tag: "camera".into(),
                        },
                        Reason::LacksTag {
                            tag: "site=lab".into(),
                        },
                    ]),
                },
                Candidate {
                    node: "n2".into(),
                    verdict: Verdict::Unfit(vec![Reason::Mem {
                        needs: 200 * MIB,
                        free: 120 * MIB,
                    }]),
                },
                Candidate {
                    node: "n3".into(),
                    verdict: Verdict::Unfit(vec![
                        Reason::Down,
                        Reason::LacksTag {
                            tag: "site=lab".into(),
                        },
                    ]),
                },
            ],
        };
        assert_eq!(refusal, Err(want));
        let text = match refusal {
            Err(r) => r.to_string(),
            Ok(p) => panic!("placed: {p}"),
        };
        assert_eq!(
            text,
            "no node can take this process:\n  \
             NODE  SCORE  REASONS\n  \
             n1        -  lacks tag camera; lacks tag site=lab\n  \
             n2        -  needs 200 MiB, 120 MiB free\n  \
             n3        -  down; lacks tag site=lab"
        );
    }

    #[test]
    fn the_placement_prints_as_a_table() {
        let request = Request {
            reserve: Resources::new(1000, 0),
            ..Request::default()
        };
        let placement = match place(&three(), &request) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            placement.to_string(),
            "placed on n2 (of 3 nodes; the lowest score wins):\n  \
             NODE   SCORE  REASONS\n\
             * n2    250000  fits: 25.0% reserved after, 0 running\n  \
             n1    250003  fits: 25.0% reserved after, 3 running\n  \
             n3         -  down"
        );
    }

    #[test]
    fn explicit_node_and_avoided_nodes() {
        let on_n1 = Request {
            on: Some("n1".into()),
            ..Request::default()
        };
        let placement = place(&three(), &on_n1);
        assert_eq!(placement.as_ref().map(|p| p.node.as_str()), Ok("n1"));
        let n2 = placement
            .ok()
            .and_then(|p| p.candidates.into_iter().find(|c| c.node == "n2"));
        assert_eq!(
            n2.map(|c| c.verdict),
            Some(Verdict::Unfit(vec![Reason::NotAsked {
                asked: "n1".into()
            }]))
        );
        let on_n3 = Request {
            on: Some("n3".into()),
            ..Request::default()
        };
        assert!(matches!(
            place(&three(), &on_n3),
            Err(Refusal::NoFit { .. })
        ));
        let avoiding = Request {
            avoid: ["n2".to_string()].into(),
            ..Request::default()
        };
        assert_eq!(
            place(&three(), &avoiding).map(|p| p.node),
            Ok("n1".to_string())
        );
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let on_n9 = Request {
            on: Some("n9".into()),
            ..Request::default()
        };
        let err = place(&three(), &on_n9);
        assert_eq!(
            err.as_ref().map_err(ToString::to_string),
            Err("unknown node \"n9\"; the nodes are n1, n2, n3".to_string())
        );
        for (tag, missing) in [("gpu&&camera", "gpu"), ("site=moon", "site=moon")] {
            let request = Request {
                tags: vec![expr(tag)],
                ..Request::default()
            };
            assert_eq!(
                place(&three(), &request).map_err(|e| e.to_string()),
                Err(format!(
                    "no node has tag {missing}; the tags are camera, site=lab"
                ))
            );
        }
        let untagged = ClusterView::new().with_node("n1", node(1, 1));
        let gpu = Request {
            tags: vec![expr("gpu")],
            ..Request::default()
        };
        assert_eq!(
            place(&untagged, &gpu).map_err(|e| e.to_string()),
            Err("no node has tag gpu; no node has any tag".to_string())
        );
        // An unknown alternative is no error while another one fits.
        let either = Request {
            tags: vec![expr("gpu||camera")],
            ..Request::default()
        };
        assert_eq!(place(&three(), &either).map(|p| p.node), Ok("n2".into()));
        assert_eq!(
            place(&ClusterView::new(), &Request::default()),
            Err(Refusal::NoNodes)
        );
    }

    #[test]
    fn tag_reasons_are_precise() {
        let request = Request {
            tags: vec![expr("site=home"), expr("!camera"), expr("camera&&!site")],
            ..Request::default()
        };
        let view = ClusterView::new()
            .with_node("n2", tagged(node(1, 1), &[("camera", ""), ("site", "lab")]))
            .with_node("n4", tagged(node(1, 1), &[("site", "home")]));
        let refusal = place(&view, &request);
        let n2_reasons = match refusal {
            Err(Refusal::NoFit { candidates }) => candidates
                .into_iter()
                .find(|c| c.node == "n2")
                .map(|c| c.verdict),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            n2_reasons,
            Some(Verdict::Unfit(vec![
                Reason::TagValue {
                    name: "site".into(),
                    has: "lab".into(),
                    wants: "home".into()
                },
                Reason::HasExcluded {
                    tag: "camera".into()
                },
                Reason::NoMatch {
                    expr: expr("camera&&!site")
                },
            ]))
        );
    }

    #[test]
    fn measured_free_memory_bounds_the_reservation() {
        let mut n = node(4, 1024);
        n.measured_free_mem = Some(100 * MIB);
        let view = ClusterView::new().with_node("n1", n);
        let request = Request {
            reserve: Resources::new(0, 200 * MIB),
            ..Request::default()
        };
        assert!(matches!(
            place(&view, &request),
            Err(Refusal::NoFit { candidates }) if candidates[0].verdict
                == Verdict::Unfit(vec![Reason::Mem { needs: 200 * MIB, free: 100 * MIB }])
        ));
    }
}
