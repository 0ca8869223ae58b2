//! Plexus scheduler: where a process runs, and what happens when it ends or its node dies.
//!
//! Everything here is pure (sans-io): no sockets, no clock, no randomness. The cluster's state
//! comes in as a [`ClusterView`] and time as milliseconds, and the answers are plain data, so
//! the same inputs always give the same decision and every rule is tested alone. The node's
//! `sys.proc` service gathers the view from membership and the process table and applies the
//! decisions. Rules, scoring and limits: `docs/scheduler.md`.
//!
//! - [`TagExpr`]: OneOS-style tag expressions (`camera||webcam`, `gpu&&!laptop`,
//!   `site=lab`), parsed with bounds and printed canonically.
//! - [`place`]: a [`Request`] (node, tags, CPU and memory to reserve, nodes to avoid) against
//!   the view gives a [`Placement`] or a [`Refusal`]; both list every node with its score or
//!   its reasons and print as a table (`plx run --dry-run`, `explain`).
//! - [`RestartTracker`]: `--restart never|on-failure|always` with exponential backoff and a
//!   crash-loop limit.
//! - [`reconcile_everywhere`]: which nodes of an `--everywhere` group start, stop or lose a copy.
//! - [`reschedule`]: new placements for the processes of a node declared down.
//!
//! ```
//! use plexus_sched::{place, ClusterView, NodeView, Request, Resources, TagExpr};
//!
//! let mut lab = NodeView::up(Resources::new(4000, 8 << 30));
//! lab.tags.insert("site".into(), "lab".into());
//! let view = ClusterView::new()
//!     .with_node("n1", NodeView::up(Resources::new(4000, 8 << 30)))
//!     .with_node("n2", lab);
//! let request = Request {
//!     tags: vec![TagExpr::parse("site=lab").unwrap()],
//!     reserve: Resources::new(500, 200 << 20),
//!     ..Request::default()
//! };
//! let placement = place(&view, &request).unwrap();
//! assert_eq!(placement.node, "n2");
//! assert_eq!(
//!     placement.to_string(),
//!     "placed on n2 (of 2 nodes; the lowest score wins):
//!   NODE   SCORE  REASONS
//! * n2    125000  fits: 12.5% reserved after, 0 running
//!   n1         -  lacks tag site=lab"
//! );
//! ```

pub mod everywhere;
pub mod place;
pub mod reschedule;
pub mod resources;
pub mod restart;
pub mod tags;
pub mod view;

pub use everywhere::{reconcile_everywhere, EverywherePlan};
pub use place::{
    judge, place, place_linked, place_near, Candidate, LinkNeed, Placement, Reason, Refusal,
    Request, Verdict,
};
pub use reschedule::{reschedule, PlacedProcess, RescheduleOutcome, Rescheduled};
pub use resources::{parse_cpu, parse_mem, AmountError, Resources};
pub use restart::{
    Exit, ExitEvent, RestartDecision, RestartLimits, RestartPolicy, RestartTracker, StopReason,
    UnknownRestartPolicy,
};
pub use tags::{TagExpr, TagExprError, Tags};
pub use view::{ClusterView, Disk, LinkView, NodeView};
