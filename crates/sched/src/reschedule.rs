//! Moving the processes of a node declared down.
//!
//! [`reschedule`] places each `on-failure` or `always` process of the dead node again, as
//! [`crate::place`] would, avoiding the dead node; `never` processes are lost. Processes are
//! placed one after another in the order given, each placement counted in the view the next one
//! sees, so that a batch neither overfills a node nor piles onto one.

use crate::place::{place, Placement, Refusal, Request};
use crate::restart::RestartPolicy;
use crate::view::ClusterView;

/// A process that was running on the dead node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedProcess {
    /// Its id.
    pub id: String,
    /// What it asked for when it was placed.
    pub request: Request,
    /// Its restart policy.
    pub policy: RestartPolicy,
}

/// What becomes of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RescheduleOutcome {
    /// Start it on `placement.node`.
    Moved(Placement),
    /// It should move, but no node can take it.
    Unplaceable(Refusal),
    /// Its policy is `never`: it is lost with its node.
    Lost,
}

/// One process and what becomes of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rescheduled {
    /// The process's id.
    pub id: String,
    /// Its new placement, or why there is none.
    pub outcome: RescheduleOutcome,
}

/// Decides, for every process of `down_node` (in order), where it runs now.
pub fn reschedule(
    view: &ClusterView,
    down_node: &str,
    processes: &[PlacedProcess],
) -> Vec<Rescheduled> {
    let mut view = view.clone();
    if let Some(node) = view.nodes.get_mut(down_node) {
        node.up = false;
    }
    processes
        .iter()
        .map(|process| {
            let outcome = if process.policy == RestartPolicy::Never {
                RescheduleOutcome::Lost
            } else {
                let mut request = process.request.clone();
                request.avoid.insert(down_node.to_string());
                match place(&view, &request) {
                    Ok(placement) => {
                        if let Some(node) = view.nodes.get_mut(&placement.node) {
                            node.add_process(request.reserve);
                        }
                        RescheduleOutcome::Moved(placement)
                    }
                    Err(refusal) => RescheduleOutcome::Unplaceable(refusal),
                }
            };
            Rescheduled {
                id: process.id.clone(),
                outcome,
            }
        })
        .collect()
}
