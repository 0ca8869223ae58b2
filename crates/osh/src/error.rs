//! The one error type: what went wrong ([`ErrorKind`]) and where ([`Span`]), with a rendering
//! that shows the line and underlines the span.

use std::fmt;

use crate::model::Format;

/// A place in the script: byte offsets `start..end` into the source as given (a leading BOM
/// counts in the offsets), and the 1-based line and column of `start`. Columns count
/// characters, not bytes, and a leading BOM is not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte (equal to `start` for a point, such as the end of the script).
    pub end: usize,
    /// Line of `start`, from 1.
    pub line: usize,
    /// Column of `start` in characters, from 1.
    pub column: usize,
}

impl Span {
    /// The span of bytes `start..end` in `source`, with its line and column. Offsets past the
    /// end are clamped to it, and offsets inside a character move back to its start.
    pub fn locate(source: &str, start: usize, end: usize) -> Span {
        let start = floor_boundary(source, start);
        let end = floor_boundary(source, end.max(start));
        let before = source.get(..start).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let mut text = before.get(line_start..).unwrap_or("");
        if line_start == 0 {
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        Span {
            start,
            end,
            line,
            column: text.chars().count() + 1,
        }
    }
}

fn floor_boundary(source: &str, at: usize) -> usize {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Why a script was refused. Whatever the kind, a script with an error yields no effects.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}:{}: {kind}", span.line, span.column)]
pub struct OshError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where.
    pub span: Span,
}

impl OshError {
    /// `file:line:col: message`, then the source line, then `^` under the span (clipped to
    /// that line, at least one). `source` must be the text the error came from; with another
    /// text only the first line is complete.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = format!(
            "{file}:{}:{}: {}",
            self.span.line, self.span.column, self.kind
        );
        let start = floor_boundary(source, self.span.start);
        let line_start = source
            .get(..start)
            .unwrap_or("")
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line_end = source
            .get(start..)
            .unwrap_or("")
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let mut text = source.get(line_start..line_end).unwrap_or("");
        text = text.strip_suffix('\r').unwrap_or(text);
        let mut bom = 0;
        if line_start == 0 {
            if let Some(rest) = text.strip_prefix('\u{feff}') {
                text = rest;
                bom = '\u{feff}'.len_utf8();
            }
        }
        let text_start = line_start + bom;
        let col_in = start.saturating_sub(text_start).min(text.len());
        let col_in = floor_boundary(text, col_in);
        let end = floor_boundary(source, self.span.end.max(start)).min(text_start + text.len());
        let under = source
            .get(start..end.max(start))
            .map_or(0, |s| s.chars().count());
        let mut caret: String = text
            .get(..col_in)
            .unwrap_or("")
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        caret.push_str(&"^".repeat(under.max(1)));
        out.push('\n');
        out.push_str(text);
        out.push('\n');
        out.push_str(&caret);
        out
    }
}

/// Which kind of graph member an id should name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A `node`.
    Node,
    /// An `edge`.
    Edge,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Node => "node",
            IdKind::Edge => "edge",
        })
    }
}

/// What went wrong. Match on the variant, never on the message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The script is longer than [`crate::MAX_SCRIPT_BYTES`].
    TooLarge {
        /// The script's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Expressions, objects or a place expression nest deeper than [`crate::MAX_DEPTH`].
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A string would be longer than [`crate::MAX_STRING_BYTES`].
    StringTooLong {
        /// The limit.
        max: usize,
    },
    /// The script produces more than [`crate::MAX_OUTPUT_BYTES`] of text and instances.
    OutputTooLarge {
        /// The limit.
        max: usize,
    },
    /// Evaluating the script takes more than [`crate::MAX_STEPS`] steps.
    TooMuchWork {
        /// The limit.
        max: usize,
    },
    /// A character that starts no token.
    UnexpectedChar {
        /// The character.
        ch: char,
    },
    /// A string without its closing quote on the same line.
    UnterminatedString,
    /// A `/*` comment without `*/`.
    UnterminatedComment,
    /// A syntax error.
    Expected {
        /// What would have been valid.
        expected: String,
        /// What was there.
        found: String,
    },
    /// Part of the OneOS language that Plexus does not run (`if`, functions, agents,
    /// channels, `lambda.*` nodes, …).
    Unsupported {
        /// What, for people.
        what: String,
    },
    /// A graph or policy name used twice, or the name of a builtin.
    Redefined {
        /// The name.
        name: String,
    },
    /// `let`/`const` of a name already bound in the same scope.
    Redeclared {
        /// The name.
        name: String,
    },
    /// Two parameters of one graph or policy with the same name.
    DuplicateParam {
        /// The parameter.
        name: String,
    },
    /// Two `init` blocks in one graph.
    DuplicateInit {
        /// The graph.
        graph: String,
    },
    /// Two nodes or edges of one graph with the same id.
    DuplicateId {
        /// The graph.
        graph: String,
        /// The id.
        id: String,
    },
    /// An id the graph does not declare (edge endpoint or policy operand).
    UnknownId {
        /// The graph.
        graph: String,
        /// The id.
        id: String,
        /// What it should have named.
        expected: IdKind,
    },
    /// A directive on the wrong kind of id (a node directive on an edge or the reverse).
    WrongOperand {
        /// The directive.
        directive: String,
        /// The operand.
        id: String,
        /// What the directive applies to.
        expected: IdKind,
    },
    /// The same directive twice on one node or edge.
    DuplicateDirective {
        /// The directive.
        directive: String,
        /// The node or edge.
        id: String,
    },
    /// A directive name Plexus does not know.
    UnknownDirective {
        /// The name.
        name: String,
    },
    /// A directive's argument is not what it takes.
    BadDirectiveArgument {
        /// The directive.
        directive: String,
        /// What it takes.
        expected: String,
    },
    /// `min_rate` above `max_rate` on one edge.
    RateOrder {
        /// The edge.
        edge: String,
        /// Its `min_rate`, MB/s.
        min: f64,
        /// Its `max_rate`, MB/s.
        max: f64,
    },
    /// A numeric comparison inside `||`, `!` or parentheses of a `place` expression.
    NumericNotTopLevel,
    /// A tag value with characters tags cannot hold.
    BadTagValue {
        /// The value.
        value: String,
    },
    /// An edge joining a node's output to a node's input of another format.
    FormatMismatch {
        /// The edge.
        edge: String,
        /// The source node.
        from: String,
        /// The source's output format.
        output: Format,
        /// The sink node.
        to: String,
        /// The sink's input format.
        input: Format,
    },
    /// A format other than `raw`, `segment` and `json`.
    UnknownFormat {
        /// What was given.
        format: String,
    },
    /// A key of a `process` options object other than `inputFormat` and `outputFormat`.
    UnknownOption {
        /// The key.
        key: String,
    },
    /// A graph with a cycle of edges.
    Cycle {
        /// The graph.
        graph: String,
        /// The cycle's edges in order, each leading to the next one's source.
        edges: Vec<String>,
    },
    /// A `spawn` of, or a `for`, naming no graph.
    UnknownGraph {
        /// The name.
        name: String,
    },
    /// A `with` naming no policy.
    UnknownPolicy {
        /// The name.
        name: String,
    },
    /// A policy applied to a graph other than the one it is written `for`.
    PolicyForOtherGraph {
        /// The policy.
        policy: String,
        /// The graph it is for.
        for_graph: String,
        /// The graph it was applied to.
        graph: String,
    },
    /// More arguments than parameters.
    TooManyArguments {
        /// The graph, policy or builtin called.
        callee: String,
        /// How many it takes at most.
        max: usize,
        /// How many were given.
        given: usize,
    },
    /// A parameter without default left without argument.
    MissingArgument {
        /// The graph, policy or builtin called.
        callee: String,
        /// The parameter.
        param: String,
    },
    /// A variable that is not bound.
    UnknownName {
        /// The name.
        name: String,
    },
    /// A call of a name that is no graph, policy or builtin.
    UnknownFunction {
        /// The name.
        name: String,
    },
    /// `object.key` with no such key.
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A value of the wrong type.
    TypeMismatch {
        /// What was needed.
        expected: &'static str,
        /// What it was.
        found: &'static str,
    },
    /// A node whose expression is not a `process(…)`.
    NotAProcess {
        /// The node.
        node: String,
        /// What it was.
        found: &'static str,
    },
    /// `process` with an empty binary.
    EmptyBinary,
    /// A graph or policy instantiated, or `test_spawn` called, while a graph or policy is
    /// being instantiated (in `init`, a node or a default).
    NestedInstance,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::TooLarge { len, max } => {
                write!(f, "the script is {len} bytes long; the limit is {max}")
            }
            ErrorKind::TooDeep { max } => write!(f, "nested deeper than {max} levels"),
            ErrorKind::StringTooLong { max } => {
                write!(f, "a string would be longer than {max} bytes")
            }
            ErrorKind::OutputTooLarge { max } => {
                write!(f, "the script produces more than {max} bytes of output")
            }
            ErrorKind::TooMuchWork { max } => {
                write!(f, "evaluating the script takes more than {max} steps")
            }
            ErrorKind::UnexpectedChar { ch } => write!(f, "unexpected character {ch:?}"),
            ErrorKind::UnterminatedString => f.write_str("string without its closing quote"),
            ErrorKind::UnterminatedComment => f.write_str("`/*` comment without `*/`"),
            ErrorKind::Expected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            ErrorKind::Unsupported { what } => write!(f, "{what} not supported"),
            ErrorKind::Redefined { name } => write!(f, "`{name}` is already defined"),
            ErrorKind::Redeclared { name } => {
                write!(f, "`{name}` is already declared in this scope")
            }
            ErrorKind::DuplicateParam { name } => write!(f, "parameter `{name}` is repeated"),
            ErrorKind::DuplicateInit { graph } => {
                write!(f, "graph `{graph}` has a second `init` block")
            }
            ErrorKind::DuplicateId { graph, id } => {
                write!(f, "graph `{graph}` already has a node or edge `{id}`")
            }
            ErrorKind::UnknownId {
                graph,
                id,
                expected,
            } => write!(f, "graph `{graph}` has no {expected} `{id}`"),
            ErrorKind::WrongOperand {
                directive,
                id,
                expected,
            } => {
                let other = if *expected == IdKind::Node {
                    "an edge"
                } else {
                    "a node"
                };
                write!(
                    f,
                    "`{directive}` applies to {expected}s, and `{id}` is {other}"
                )
            }
            ErrorKind::DuplicateDirective { directive, id } => {
                write!(f, "a second `{directive}` for `{id}`")
            }
            ErrorKind::UnknownDirective { name } => write!(
                f,
                "unknown directive `{name}` (known: place, always, console, checkpoint, \
                 min_rate, max_rate, max_latency, order_by)"
            ),
            ErrorKind::BadDirectiveArgument {
                directive,
                expected,
            } => write!(f, "`{directive}` takes {expected}"),
            ErrorKind::RateOrder { edge, min, max } => write!(
                f,
                "edge `{edge}` has min_rate {min} MB/s above its max_rate {max} MB/s"
            ),
            ErrorKind::NumericNotTopLevel => f.write_str(
                "a numeric comparison may only be joined to the rest of a place expression \
                 with `&&`, outside parentheses",
            ),
            ErrorKind::BadTagValue { value } => write!(
                f,
                "tag value {value:?} is not a run of letters, digits and `_ - . : /`"
            ),
            ErrorKind::FormatMismatch {
                edge,
                from,
                output,
                to,
                input,
            } => write!(
                f,
                "edge `{edge}` joins `{from}`, whose output format is {output}, to `{to}`, \
                 whose input format is {input}"
            ),
            ErrorKind::UnknownFormat { format } => {
                write!(f, "unknown format {format:?} (known: raw, segment, json)")
            }
            ErrorKind::UnknownOption { key } => write!(
                f,
                "unknown process option {key:?} (known: inputFormat, outputFormat)"
            ),
            ErrorKind::Cycle { graph, edges } => write!(
                f,
                "graph `{graph}` has a cycle: edges {}",
                edges
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ErrorKind::UnknownGraph { name } => write!(f, "no graph `{name}`"),
            ErrorKind::UnknownPolicy { name } => write!(f, "no policy `{name}`"),
            ErrorKind::PolicyForOtherGraph {
                policy,
                for_graph,
                graph,
            } => write!(
                f,
                "policy `{policy}` is for graph `{for_graph}`, not `{graph}`"
            ),
            ErrorKind::TooManyArguments { callee, max, given } => write!(
                f,
                "`{callee}` takes at most {max} argument{}, given {given}",
                if *max == 1 { "" } else { "s" }
            ),
            ErrorKind::MissingArgument { callee, param } => {
                write!(f, "`{callee}` needs an argument for `{param}`")
            }
            ErrorKind::UnknownName { name } => write!(f, "`{name}` is not defined"),
            ErrorKind::UnknownFunction { name } => {
                write!(f, "`{name}` is not a graph, a policy or a builtin")
            }
            ErrorKind::UnknownKey { key } => write!(f, "the object has no key {key:?}"),
            ErrorKind::TypeMismatch { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            ErrorKind::NotAProcess { node, found } => {
                write!(f, "node `{node}` must be a process(…), found {found}")
            }
            ErrorKind::EmptyBinary => f.write_str("the process's binary is empty"),
            ErrorKind::NestedInstance => f.write_str(
                "graphs and policies cannot be instantiated, nor test_spawn called, while a \
                 graph or policy is being instantiated",
            ),
        }
    }
}

/// An error before its line and column are known: the crate's inner result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fault {
    pub kind: ErrorKind,
    pub start: usize,
    pub end: usize,
}

impl Fault {
    pub(crate) fn new(kind: ErrorKind, start: usize, end: usize) -> Fault {
        Fault { kind, start, end }
    }

    pub(crate) fn locate(self, source: &str) -> OshError {
        OshError {
            kind: self.kind,
            span: Span::locate(source, self.start, self.end),
        }
    }
}
