//! Plexus `.osh`: the OneOS graph language (its C# dialect), parsed, checked and evaluated to
//! plain data. Pure: no I/O, nothing is started here.
//!
//! A script declares dataflow **graphs** (nodes are programs, edges are pipes: `->` basic,
//! `-/>` split, `-*>` merge), **policies** for them (`place`, `always`, `console`,
//! `checkpoint`, `min_rate`, `max_rate`, `max_latency`, `order_by`) and **spawns** graphs with
//! policies. Evaluating it yields [`Effect`]s in order: text to print, and concrete
//! [`Instance`]s to spawn or only to show. A script with any error yields no effect at all.
//! The language, the checks and the expansion: `docs/osh.md`.
//!
//! - [`Script::parse`] reads and checks a script (syntax, names, ids, edge ends, cycles,
//!   policy operands); [`Script::evaluate`] runs it; [`run`] does both.
//! - [`OshError`] is the one error type: an [`ErrorKind`] and a [`Span`] (line, column,
//!   bytes); [`OshError::render`] prints `file:line:col: message`, the line and carets.
//! - [`Instance`] is a concrete graph: [`Node`]s (program, arguments, formats), [`Edge`]s and
//!   an optional [`Policy`] of [`Directive`]s whose `place` argument is a
//!   [`plexus_sched::TagExpr`] plus [`NumericConstraint`]s.
//! - [`plan`] expands an instance's parallel nodes into replicas and its edges into pipes
//!   ([`Plan`]); [`Instance::to_osh`] prints an instance back as a script.
//!
//! The word-count benchmark of OneOS, verbatim:
//!
//! ```
//! use plexus_osh::{plan, run, Effect, Format};
//!
//! let script = r#"graph DSP_wordcount (inputFile, outputFile) {
//!   init {
//!     print("Starting DSPBench - wordcount");
//!   }
//!
//!   node split: process("node", "SplitSentence.js " + inputFile);
//!   node count: process("node", "WordCount.js");
//!   node sink: process("node", "/home/root/writer.js " + outputFile);
//!
//!   //node split: process("node", "combined.js " + inputFile);
//!   //node sink: process("node", "/home/root/writer.js " + outputFile);
//!
//!   edge e1: split -> count;
//!   edge e2: count -> sink;
//!
//!   //edge e1: split -> sink;
//! };
//!
//! policy BasicPolicy () for DSP_wordcount {
//!     
//! };
//!
//! // test_spawn(DSP_wordcount("books.dat", "wordcount.out"), BasicPolicy());
//!
//! spawn DSP_wordcount("books.dat", "wordcount.out") with BasicPolicy();
//! "#;
//! let effects = run(script).unwrap();
//! assert_eq!(effects[0], Effect::Print("Starting DSPBench - wordcount".into()));
//! let Effect::Spawn(instance) = &effects[1] else { panic!("a spawn") };
//! assert_eq!(instance.graph, "DSP_wordcount");
//! let split = &instance.nodes[0];
//! assert_eq!((split.id.as_str(), split.binary.as_str()), ("split", "node"));
//! assert_eq!(split.args, ["SplitSentence.js", "books.dat"]);
//! assert_eq!(split.file_arg, Some(0));
//! assert_eq!(split.output_format, Format::Raw);
//! assert_eq!(instance.edges[1].from, "count");
//! assert_eq!(instance.policy.as_ref().unwrap().name, "BasicPolicy");
//! assert_eq!(plan(instance, 3).pipes.len(), 2);
//! ```

mod ast;
mod check;
mod error;
mod eval;
mod lexer;
mod model;
mod parser;
mod place;
mod plan;

pub use error::{ErrorKind, IdKind, OshError, Span};
pub use model::{
    placement_to_osh, CmpOp, Directive, DirectiveKind, Edge, EdgeKind, Effect, Format, Instance,
    Node, NumericConstraint, Placement, Policy,
};
pub use plan::{parallel_nodes, plan, Plan, PlannedPipe, PlannedProcess};

use error::Fault;

/// Longest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// Deepest nesting of expressions, objects and `place` expressions.
pub const MAX_DEPTH: usize = 64;

/// Longest string a script may build, in bytes.
pub const MAX_STRING_BYTES: usize = 1 << 20;

/// Most bytes of strings, printed text and instances one evaluation may produce.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// Most expression evaluations one evaluation may take.
pub const MAX_STEPS: usize = 10_000_000;

/// A parsed and checked script, ready to evaluate (as often as wanted: evaluation has no side
/// effects, so each gives the same effects).
#[derive(Debug)]
pub struct Script {
    source: String,
    parsed: parser::Parsed,
}

impl Script {
    /// Reads a script and makes every check that needs no evaluation: syntax, graph and
    /// policy names, duplicate ids and parameters, edge ends, cycles, policy operands and
    /// their kinds, repeated directives, `place` expressions. A leading BOM and CRLF line
    /// ends are accepted.
    pub fn parse(source: &str) -> Result<Script, OshError> {
        let located = |f: Fault| f.locate(source);
        if source.len() > MAX_SCRIPT_BYTES {
            return Err(located(Fault::new(
                ErrorKind::TooLarge {
                    len: source.len(),
                    max: MAX_SCRIPT_BYTES,
                },
                0,
                0,
            )));
        }
        let tokens = lexer::lex(source).map_err(located)?;
        let parsed = parser::Parser::new(source, tokens)
            .parse_script()
            .map_err(located)?;
        check::check(&parsed.graphs, &parsed.policies).map_err(located)?;
        Ok(Script {
            source: source.to_string(),
            parsed,
        })
    }

    /// Runs the script's statements in order and returns the effects, or the first error
    /// (then no effect at all). Checks made here: argument counts, unknown names, types,
    /// formats on each edge, directive arguments, `min_rate` ≤ `max_rate`, a policy used for
    /// its own graph, and the bounds on work and output.
    pub fn evaluate(&self) -> Result<Vec<Effect>, OshError> {
        eval::Evaluator::new(&self.parsed)
            .run(&self.parsed.stmts)
            .map_err(|f| f.locate(&self.source))
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The graphs declared, by name, in order.
    pub fn graphs(&self) -> impl Iterator<Item = &str> {
        self.parsed.graphs.iter().map(|g| g.name.name.as_str())
    }

    /// The policies declared, by name, in order.
    pub fn policies(&self) -> impl Iterator<Item = &str> {
        self.parsed.policies.iter().map(|p| p.name.name.as_str())
    }
}

/// Parses, checks and evaluates a script: its effects, or the first error.
pub fn run(source: &str) -> Result<Vec<Effect>, OshError> {
    Script::parse(source)?.evaluate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + 'static>() {}

    #[test]
    fn results_cross_threads() {
        shareable::<Script>();
        shareable::<OshError>();
        shareable::<Effect>();
        shareable::<Plan>();
    }
}
