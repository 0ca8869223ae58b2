//! What evaluating a script yields: concrete graphs with their policies, as plain data.

use std::fmt::Write as _;

use plexus_sched::TagExpr;

/// How a process frames its input or output: `raw` (lines), `segment` (length-prefixed
/// frames) or `json` (whole JSON values); the pipes' own type.
pub use plexus_pipe::Format;

/// How an edge connects its ends once the graph is expanded (see [`crate::plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    /// `->`: one stream.
    Basic,
    /// `-/>`: the sink becomes parallel; the source feeds every replica.
    Split,
    /// `-*>`: every replica of the source feeds the sink; parallelism stops here.
    Merge,
}

impl EdgeKind {
    /// The arrow in scripts: `->`, `-/>`, `-*>`.
    pub fn arrow(self) -> &'static str {
        match self {
            EdgeKind::Basic => "->",
            EdgeKind::Split => "-/>",
            EdgeKind::Merge => "-*>",
        }
    }
}

/// A node of a concrete graph: one program to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The id in the graph.
    pub id: String,
    /// The program: `node`, `python`, `sh`, … or any executable.
    pub binary: String,
    /// The argument string split on whitespace.
    pub args: Vec<String>,
    /// Which argument names a file to resolve against the session's working directory: the
    /// first, when there is one. This crate resolves nothing.
    pub file_arg: Option<usize>,
    /// How the node reads its input.
    pub input_format: Format,
    /// How the node writes its output.
    pub output_format: Format,
}

/// An edge of a concrete graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The id in the graph.
    pub id: String,
    /// The source node's id.
    pub from: String,
    /// The sink node's id.
    pub to: String,
    /// Basic, split or merge.
    pub kind: EdgeKind,
}

/// A comparison operator of a numeric place constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==` (or `=`)
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether `actual <op> bound`.
    pub fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            CmpOp::Eq => actual == bound,
            CmpOp::Ne => actual != bound,
            CmpOp::Lt => actual < bound,
            CmpOp::Le => actual <= bound,
            CmpOp::Gt => actual > bound,
            CmpOp::Ge => actual >= bound,
        }
    }
}

/// `#tag <op> number` in a place expression, such as `#cores > 4`: the node's tag (or
/// resource) read as a number must compare so with `value`. Checking it is the scheduler
/// glue's job.
#[derive(Clone, Debug, PartialEq)]
pub struct NumericConstraint {
    /// The tag, without `#`.
    pub tag: String,
    /// The comparison.
    pub op: CmpOp,
    /// The number compared with.
    pub value: f64,
}

impl NumericConstraint {
    /// Whether a node whose tag reads as `actual` satisfies the constraint.
    pub fn matches(&self, actual: f64) -> bool {
        self.op.holds(actual, self.value)
    }
}

/// A `place` directive's argument: the tag expression and numeric constraints that must all
/// hold (the numeric ones are the top-level `&&` operands that compare with a number).
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The tag part, if any: `#camera && #site == "lab"` is `camera&&site=lab`.
    pub tags: Option<TagExpr>,
    /// The numeric part, in the order written.
    pub numeric: Vec<NumericConstraint>,
}

/// What a directive says, with its argument parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum DirectiveKind {
    /// `place(expr)` on nodes: a hard constraint on the host.
    Place(Placement),
    /// `always()` on nodes: keep a standby elsewhere and restart there.
    Always,
    /// `console()` on nodes: the node's output also goes to the terminal.
    Console,
    /// `checkpoint(s)` on nodes: save state every `seconds`.
    Checkpoint {
        /// The period.
        seconds: f64,
    },
    /// `min_rate(MB/s)` on edges.
    MinRate {
        /// MB/s.
        mb_per_s: f64,
    },
    /// `max_rate(MB/s)` on edges.
    MaxRate {
        /// MB/s.
        mb_per_s: f64,
    },
    /// `max_latency(ms)` on edges.
    MaxLatency {
        /// Milliseconds.
        ms: f64,
    },
    /// `order_by(fn)` on edges: the function's source text, such as `(msg) => msg.index`.
    OrderBy {
        /// The source text, trimmed.
        function: String,
    },
}

impl DirectiveKind {
    /// The directive's name in scripts.
    pub fn name(&self) -> &'static str {
        match self {
            DirectiveKind::Place(_) => "place",
            DirectiveKind::Always => "always",
            DirectiveKind::Console => "console",
            DirectiveKind::Checkpoint { .. } => "checkpoint",
            DirectiveKind::MinRate { .. } => "min_rate",
            DirectiveKind::MaxRate { .. } => "max_rate",
            DirectiveKind::MaxLatency { .. } => "max_latency",
            DirectiveKind::OrderBy { .. } => "order_by",
        }
    }

    /// Whether the directive applies to nodes (else to edges).
    pub fn on_nodes(&self) -> bool {
        matches!(
            self,
            DirectiveKind::Place(_)
                | DirectiveKind::Always
                | DirectiveKind::Console
                | DirectiveKind::Checkpoint { .. }
        )
    }
}

/// One directive of a concrete policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Directive {
    /// What it says.
    pub kind: DirectiveKind,
    /// The node or edge ids it applies to, as written.
    pub operands: Vec<String>,
}

/// A concrete policy: its directives with their arguments evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// The directives in the order written.
    pub directives: Vec<Directive>,
}

impl Policy {
    /// The directives that name `id` (a node or edge), in order.
    pub fn directives_for<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Directive> + 'a {
        self.directives
            .iter()
            .filter(move |d| d.operands.iter().any(|o| o == id))
    }
}

/// A concrete graph, checked, with its policy if it was spawned with one.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The graph's name.
    pub graph: String,
    /// Its nodes in the order declared.
    pub nodes: Vec<Node>,
    /// Its edges in the order declared.
    pub edges: Vec<Edge>,
    /// The policy given with `with` (or to `test_spawn`).
    pub policy: Option<Policy>,
}

impl Instance {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The edge with this id.
    pub fn edge(&self, id: &str) -> Option<&Edge> {
        self.edges.iter().find(|e| e.id == id)
    }

    /// A script that evaluates to a `spawn` of this instance: the graph with every value
    /// written out, and the policy if any. For an instance that evaluation produced it gives
    /// back an equal instance; an instance built by hand must use names for its ids and the
    /// policy's, arguments without whitespace and strings without line breaks.
    pub fn to_osh(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "graph {}() {{", self.graph);
        for n in &self.nodes {
            let _ = write!(
                out,
                "    node {}: process({}, {}",
                n.id,
                quote(&n.binary),
                quote(&n.args.join(" "))
            );
            if n.input_format == n.output_format {
                if n.input_format != Format::Raw {
                    let _ = write!(out, ", \"{}\"", n.input_format);
                }
            } else {
                let _ = write!(
                    out,
                    ", {{\"inputFormat\": \"{}\", \"outputFormat\": \"{}\"}}",
                    n.input_format, n.output_format
                );
            }
            out.push_str(");\n");
        }
        for e in &self.edges {
            let _ = writeln!(
                out,
                "    edge {}: {} {} {};",
                e.id,
                e.from,
                e.kind.arrow(),
                e.to
            );
        }
        out.push_str("}\n");
        if let Some(p) = &self.policy {
            let _ = writeln!(out, "\npolicy {}() for {} {{", p.name, self.graph);
            for d in &p.directives {
                let arg = match &d.kind {
                    DirectiveKind::Place(place) => placement_to_osh(place),
                    DirectiveKind::Always | DirectiveKind::Console => String::new(),
                    DirectiveKind::Checkpoint { seconds: x }
                    | DirectiveKind::MinRate { mb_per_s: x }
                    | DirectiveKind::MaxRate { mb_per_s: x }
                    | DirectiveKind::MaxLatency { ms: x } => format!("{x}"),
                    DirectiveKind::OrderBy { function } => function.clone(),
                };
                let _ = writeln!(
                    out,
                    "    {} ({arg}) {};",
                    d.kind.name(),
                    d.operands.join(", ")
                );
            }
            out.push_str("}\n");
            let _ = writeln!(out, "\nspawn {}() with {}();", self.graph, p.name);
        } else {
            let _ = writeln!(out, "\nspawn {}();", self.graph);
        }
        out
    }
}

/// A string literal: `"` and `\` escaped with a backslash.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A placement in OneOS syntax (`#camera && #site == "lab" && #cores > 4`); it parses back to
/// the same placement.
pub fn placement_to_osh(place: &Placement) -> String {
    let mut parts = Vec::new();
    if let Some(tags) = &place.tags {
        let mut text = String::new();
        write_tag(&mut text, tags);
        if matches!(tags, TagExpr::Or(_)) && !place.numeric.is_empty() {
            text = format!("({text})");
        }
        parts.push(text);
    }
    for n in &place.numeric {
        parts.push(format!("#{} {} {}", n.tag, n.op.symbol(), n.value));
    }
    parts.join(" && ")
}

fn write_tag(out: &mut String, expr: &TagExpr) {
    match expr {
        TagExpr::Has(name) => {
            out.push('#');
            out.push_str(name);
        }
        TagExpr::Equals(name, value) => {
            let _ = write!(out, "#{name} == {}", quote(value));
        }
        TagExpr::Not(inner) => {
            out.push('!');
            write_operand(
                out,
                inner,
                matches!(**inner, TagExpr::And(_) | TagExpr::Or(_)),
            );
        }
        TagExpr::And(list) => {
            for (i, e) in list.iter().enumerate() {
                if i > 0 {
                    out.push_str(" && ");
                }
                write_operand(out, e, matches!(e, TagExpr::And(_) | TagExpr::Or(_)));
            }
        }
        TagExpr::Or(list) => {
            for (i, e) in list.iter().enumerate() {
                if i > 0 {
                    out.push_str(" || ");
                }
                write_operand(out, e, matches!(e, TagExpr::Or(_)));
            }
        }
    }
}

fn write_operand(out: &mut String, expr: &TagExpr, parens: bool) {
    if parens {
        out.push('(');
        write_tag(out, expr);
        out.push(')');
    } else {
        write_tag(out, expr);
    }
}

/// What evaluating a script asks for, in order. Nothing is started by this crate.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// `print(a, b, …)`: the values joined by tabs, for the user's terminal.
    Print(String),
    /// `spawn G(…) [with P(…)]`: start this instance.
    Spawn(Instance),
    /// `test_spawn(G(…)[, P(…)])`: show this instance (and its plan) without starting it.
    TestSpawn(Instance),
}
