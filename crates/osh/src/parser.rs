//! Tokens to statements, graphs and policies.

use crate::ast::{
    BinOp, Call, DirArg, DirectiveDef, EdgeDef, Expr, GraphDef, Ident, NodeDef, Param, PolicyDef,
    Sp, Stmt,
};
use crate::error::{ErrorKind, Fault};
use crate::lexer::{unescape, Tk, Token};
use crate::model::EdgeKind;
use crate::place::parse_placement;
use crate::MAX_DEPTH;

/// Words of the OneOS language that cannot name anything.
const KEYWORDS: &[&str] = &[
    "null", "false", "true", "let", "const", "function", "return", "if", "else", "do", "while",
    "for", "in", "break", "continue", "public", "class", "agent", "action", "enter", "exit",
    "tick", "import", "export", "graph", "node", "edge", "spawn", "policy", "with",
];

/// Keywords that start statements of the OneOS language this crate does not run.
const UNSUPPORTED_STATEMENTS: &[&str] = &[
    "function", "return", "if", "else", "do", "while", "for", "break", "continue", "public",
    "class", "agent", "action", "enter", "exit", "tick", "import", "export",
];

/// The directives, and what their argument is.
const DIRECTIVES: &[&str] = &[
    "place",
    "always",
    "console",
    "checkpoint",
    "min_rate",
    "max_rate",
    "max_latency",
    "order_by",
];

/// A parsed script's parts: statements in order, graphs and policies by declaration.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub stmts: Vec<Stmt>,
    pub graphs: Vec<GraphDef>,
    pub policies: Vec<PolicyDef>,
}

pub(crate) struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    pub(crate) fn new(src: &'s str, toks: Vec<Token>) -> Parser<'s> {
        Parser {
            src,
            toks,
            pos: 0,
            depth: 0,
        }
    }

    fn tok(&self) -> Token {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .copied()
            .unwrap_or(Token {
                kind: Tk::Eof,
                start: self.src.len(),
                end: self.src.len(),
            })
    }

    fn text(&self, t: Token) -> &'s str {
        self.src.get(t.start..t.end).unwrap_or("")
    }

    fn is(&self, kind: Tk, text: &str) -> bool {
        let t = self.tok();
        t.kind == kind && self.text(t) == text
    }

    fn is_punct(&self, p: &str) -> bool {
        self.is(Tk::Punct, p)
    }

    fn is_word(&self, w: &str) -> bool {
        self.is(Tk::Name, w)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn describe(&self, t: Token) -> String {
        let text = self.text(t);
        let short: String = text.chars().take(32).collect();
        let short = if short.len() < text.len() {
            format!("{short}…")
        } else {
            short
        };
        match t.kind {
            Tk::Eof => "the end of the script".into(),
            Tk::Str => format!("the string {short}"),
            Tk::Number => format!("the number {short}"),
            Tk::Name if KEYWORDS.contains(&text) => format!("the keyword `{short}`"),
            _ => format!("`{short}`"),
        }
    }

    fn expected(&self, what: &str) -> Fault {
        let t = self.tok();
        Fault::new(
            ErrorKind::Expected {
                expected: what.into(),
                found: self.describe(t),
            },
            t.start,
            t.end,
        )
    }

    fn expect_punct(&mut self, p: &str) -> Result<Sp, Fault> {
        let t = self.tok();
        if self.eat_punct(p) {
            Ok(Sp {
                start: t.start,
                end: t.end,
            })
        } else {
            Err(self.expected(&format!("`{p}`")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<Ident, Fault> {
        let t = self.tok();
        let text = self.text(t);
        if t.kind != Tk::Name || KEYWORDS.contains(&text) {
            return Err(self.expected(what));
        }
        self.pos += 1;
        Ok(Ident {
            name: text.to_string(),
            sp: Sp {
                start: t.start,
                end: t.end,
            },
        })
    }

    fn enter(&mut self) -> Result<(), Fault> {
        if self.depth >= MAX_DEPTH {
            let t = self.tok();
            return Err(Fault::new(
                ErrorKind::TooDeep { max: MAX_DEPTH },
                t.start,
                t.end,
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// The whole script.
    pub(crate) fn parse_script(mut self) -> Result<Parsed, Fault> {
        let mut parsed = Parsed {
            stmts: Vec::new(),
            graphs: Vec::new(),
            policies: Vec::new(),
        };
        while self.tok().kind != Tk::Eof {
            if self.eat_punct(";") {
                continue;
            }
            if self.is_word("graph") {
                self.pos += 1;
                let g = self.parse_graph()?;
                parsed.graphs.push(g);
            } else if self.is_word("policy") {
                self.pos += 1;
                let p = self.parse_policy()?;
                parsed.policies.push(p);
            } else if self.is_word("spawn") {
                self.pos += 1;
                let graph = self.parse_named_call("a graph name")?;
                let policy = if self.is_word("with") {
                    self.pos += 1;
                    Some(self.parse_named_call("a policy name")?)
                } else {
                    None
                };
                self.end_statement()?;
                parsed.stmts.push(Stmt::Spawn { graph, policy });
            } else {
                let s = self.parse_simple_statement()?;
                parsed.stmts.push(s);
            }
        }
        Ok(parsed)
    }

    /// `;`, or nothing before `}` or the end.
    fn end_statement(&mut self) -> Result<(), Fault> {
        if self.eat_punct(";") || self.is_punct("}") || self.tok().kind == Tk::Eof {
            Ok(())
        } else {
            Err(self.expected("`;`"))
        }
    }

    /// `let`/`const` or an expression statement (what `init` may hold too).
    fn parse_simple_statement(&mut self) -> Result<Stmt, Fault> {
        let t = self.tok();
        let text = self.text(t);
        if t.kind == Tk::Name && (text == "let" || text == "const") {
            self.pos += 1;
            let name = self.ident("a variable name")?;
            let eq = self.tok();
            if !(eq.kind == Tk::Op && self.text(eq) == "=") {
                return Err(self.expected("`=`"));
            }
            self.pos += 1;
            let value = self.parse_expr()?;
            self.end_statement()?;
            return Ok(Stmt::Let { name, value });
        }
        if t.kind == Tk::Name && UNSUPPORTED_STATEMENTS.contains(&text) {
            return Err(Fault::new(
                ErrorKind::Unsupported {
                    what: format!("`{text}` is"),
                },
                t.start,
                t.end,
            ));
        }
        if t.kind == Tk::Name && matches!(text, "graph" | "policy" | "spawn") {
            return Err(Fault::new(
                ErrorKind::Unsupported {
                    what: format!("`{text}` inside a block is"),
                },
                t.start,
                t.end,
            ));
        }
        let e = self.parse_expr()?;
        self.end_statement()?;
        Ok(Stmt::Expr(e))
    }

    /// `NAME(args)` where NAME names a graph or policy.
    fn parse_named_call(&mut self, what: &str) -> Result<Call, Fault> {
        let name = self.ident(what)?;
        if !self.is_punct("(") {
            return Err(self.expected("`(`"));
        }
        self.parse_call_rest(name)
    }

    /// After the callee's name: `(args)`.
    fn parse_call_rest(&mut self, name: Ident) -> Result<Call, Fault> {
        self.expect_punct("(")?;
        let mut args = Vec::new();
        while !self.is_punct(")") {
            args.push(self.parse_expr()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        let close = self.tok();
        if !self.eat_punct(")") {
            return Err(self.expected("`,` or `)`"));
        }
        let sp = name.sp.to(Sp {
            start: close.start,
            end: close.end,
        });
        Ok(Call { name, args, sp })
    }

    /// `(p1, p2 = default, …)`, or nothing.
    fn parse_params(&mut self) -> Result<Vec<Param>, Fault> {
        let mut params = Vec::new();
        if !self.eat_punct("(") {
            return Ok(params);
        }
        while !self.is_punct(")") {
            let name = self.ident("a parameter name")?;
            let default = if self.is(Tk::Op, "=") {
                self.pos += 1;
                Some(self.parse_expr()?)
            } else {
                None
            };
            params.push(Param { name, default });
            if !self.eat_punct(",") {
                break;
            }
        }
        if !self.eat_punct(")") {
            return Err(self.expected("`,` or `)`"));
        }
        Ok(params)
    }

    fn parse_graph(&mut self) -> Result<GraphDef, Fault> {
        let name = self.ident("a graph name")?;
        let params = self.parse_params()?;
        self.expect_punct("{")?;
        let mut graph = GraphDef {
            name,
            params,
            init: None,
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        loop {
            if self.eat_punct("}") {
                break;
            }
            if self.eat_punct(";") {
                continue;
            }
            let t = self.tok();
            if self.is_word("init") {
                self.pos += 1;
                if graph.init.is_some() {
                    return Err(Fault::new(
                        ErrorKind::DuplicateInit {
                            graph: graph.name.name.clone(),
                        },
                        t.start,
                        t.end,
                    ));
                }
                self.expect_punct("{")?;
                let mut stmts = Vec::new();
                loop {
                    if self.eat_punct("}") {
                        break;
                    }
                    if self.eat_punct(";") {
                        continue;
                    }
                    if self.tok().kind == Tk::Eof {
                        return Err(self.expected("a statement or `}`"));
                    }
                    stmts.push(self.parse_simple_statement()?);
                }
                graph.init = Some(stmts);
            } else if self.is_word("node") {
                self.pos += 1;
                let id = self.ident("a node id")?;
                self.expect_punct(":")?;
                let expr = self.parse_expr()?;
                graph.nodes.push(NodeDef { id, expr });
            } else if self.is_word("edge") {
                self.pos += 1;
                let id = self.ident("an edge id")?;
                self.expect_punct(":")?;
                let from = self.ident("a node id")?;
                let op = self.tok();
                let kind = match (op.kind, self.text(op)) {
                    (Tk::Op, "->") => EdgeKind::Basic,
                    (Tk::Op, "-/>") => EdgeKind::Split,
                    (Tk::Op, "-*>") => EdgeKind::Merge,
                    _ => return Err(self.expected("`->`, `-/>` or `-*>`")),
                };
                self.pos += 1;
                let to = self.ident("a node id")?;
                let sp = Sp {
                    start: t.start,
                    end: to.sp.end,
                };
                graph.edges.push(EdgeDef {
                    id,
                    from,
                    to,
                    kind,
                    sp,
                });
            } else {
                return Err(self.expected("`node`, `edge`, `init` or `}`"));
            }
        }
        Ok(graph)
    }

    fn parse_policy(&mut self) -> Result<PolicyDef, Fault> {
        let name = self.ident("a policy name")?;
        let params = self.parse_params()?;
        if !self.is_word("for") {
            return Err(self.expected("`for`"));
        }
        self.pos += 1;
        let graph = self.ident("a graph name")?;
        self.expect_punct("{")?;
        let mut directives = Vec::new();
        loop {
            if self.eat_punct("}") {
                break;
            }
            if self.eat_punct(";") {
                continue;
            }
            directives.push(self.parse_directive()?);
        }
        Ok(PolicyDef {
            name,
            params,
            graph,
            directives,
        })
    }

    /// `NAME (args) operand, operand, …`
    fn parse_directive(&mut self) -> Result<DirectiveDef, Fault> {
        let name = self.ident("a directive (such as `place`) or `}`")?;
        if !DIRECTIVES.contains(&name.name.as_str()) {
            return Err(Fault::new(
                ErrorKind::UnknownDirective {
                    name: name.name.clone(),
                },
                name.sp.start,
                name.sp.end,
            ));
        }
        let open = self.tok();
        self.expect_punct("(")?;
        let close = self.matching_close()?;
        let inner: Vec<Token> = self.toks.get(self.pos..close).unwrap_or(&[]).to_vec();
        let close_tok = self.toks.get(close).copied().unwrap_or(open);
        let text_span = match (inner.first(), inner.last()) {
            (Some(a), Some(b)) => (a.start, b.end),
            _ => (open.end, open.end),
        };
        let bad = |expected: &str, start: usize, end: usize| {
            Fault::new(
                ErrorKind::BadDirectiveArgument {
                    directive: name.name.clone(),
                    expected: expected.into(),
                },
                start,
                end,
            )
        };
        let arg = match name.name.as_str() {
            "place" => {
                // The expression may also be given as one string: `place("#camera")`.
                let (s, e) = match inner.as_slice() {
                    [t] if t.kind == Tk::Str => (t.start + 1, t.end - 1),
                    _ => text_span,
                };
                DirArg::Place(parse_placement(self.src, s, e)?)
            }
            "always" | "console" => {
                if let (Some(a), Some(b)) = (inner.first(), inner.last()) {
                    return Err(bad("no argument: `()`", a.start, b.end));
                }
                DirArg::Nothing
            }
            "order_by" => {
                if inner.is_empty() {
                    return Err(bad(
                        "a function such as `(msg) => msg.index`",
                        close_tok.start,
                        close_tok.end,
                    ));
                }
                DirArg::Text(
                    self.src
                        .get(text_span.0..text_span.1)
                        .unwrap_or("")
                        .to_string(),
                )
            }
            _ => {
                if inner.is_empty() {
                    return Err(bad("a positive number", close_tok.start, close_tok.end));
                }
                let e = self.parse_expr()?;
                if self.pos != close {
                    return Err(self.expected("`)`"));
                }
                DirArg::Number(e)
            }
        };
        self.pos = close + 1;
        let mut operands = vec![self.ident("a node or edge id")?];
        while self.eat_punct(",") {
            operands.push(self.ident("a node or edge id")?);
        }
        Ok(DirectiveDef {
            name,
            arg,
            operands,
        })
    }

    /// The index of the `)` closing the `(` just consumed.
    fn matching_close(&self) -> Result<usize, Fault> {
        let mut depth = 0usize;
        let mut i = self.pos;
        while let Some(t) = self.toks.get(i) {
            if t.kind == Tk::Punct {
                match self.text(*t) {
                    "(" => depth += 1,
                    ")" if depth == 0 => return Ok(i),
                    ")" => depth -= 1,
                    _ => {}
                }
            }
            if t.kind == Tk::Eof {
                let t = *t;
                return Err(Fault::new(
                    ErrorKind::Expected {
                        expected: "`)`".into(),
                        found: self.describe(t),
                    },
                    t.start,
                    t.end,
                ));
            }
            i += 1;
        }
        Err(self.expected("`)`"))
    }

    /// An expression: `+ -` over `* / %` over unary `-` over calls, `.key` and primaries.
    pub(crate) fn parse_expr(&mut self) -> Result<Expr, Fault> {
        self.enter()?;
        let e = self.parse_chain(true);
        self.leave();
        e
    }

    fn bin_op(&self, additive: bool) -> Option<BinOp> {
        let t = self.tok();
        if t.kind != Tk::Op {
            return None;
        }
        match (additive, self.text(t)) {
            (true, "+") => Some(BinOp::Add),
            (true, "-") => Some(BinOp::Sub),
            (false, "*") => Some(BinOp::Mul),
            (false, "/") => Some(BinOp::Div),
            (false, "%") => Some(BinOp::Rem),
            _ => None,
        }
    }

    fn parse_chain(&mut self, additive: bool) -> Result<Expr, Fault> {
        let first = if additive {
            self.parse_chain(false)?
        } else {
            self.parse_unary()?
        };
        let mut rest = Vec::new();
        while let Some(op) = self.bin_op(additive) {
            self.pos += 1;
            let e = if additive {
                self.parse_chain(false)?
            } else {
                self.parse_unary()?
            };
            rest.push((op, e));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let sp = first
            .sp()
            .to(rest.last().map_or(first.sp(), |(_, e)| e.sp()));
        Ok(Expr::Chain(Box::new(first), rest, sp))
    }

    fn parse_unary(&mut self) -> Result<Expr, Fault> {
        let t = self.tok();
        if t.kind == Tk::Op && self.text(t) == "-" {
            self.pos += 1;
            self.enter()?;
            let inner = self.parse_unary();
            self.leave();
            let inner = inner?;
            let sp = Sp {
                start: t.start,
                end: inner.sp().end,
            };
            return Ok(Expr::Neg(Box::new(inner), sp));
        }
        self.parse_postfix()
    }

    fn parse_postfix(&mut self) -> Result<Expr, Fault> {
        let mut e = self.parse_primary()?;
        let mut members = 0;
        while self.is_punct(".") {
            // Each `.key` nests the expression one level deeper.
            members += 1;
            if self.depth + members > MAX_DEPTH {
                let t = self.tok();
                return Err(Fault::new(
                    ErrorKind::TooDeep { max: MAX_DEPTH },
                    t.start,
                    t.end,
                ));
            }
            self.pos += 1;
            // Any name, keywords too (`options.in`).
            let t = self.tok();
            if t.kind != Tk::Name {
                return Err(self.expected("a key after `.`"));
            }
            self.pos += 1;
            let key = Ident {
                name: self.text(t).to_string(),
                sp: Sp {
                    start: t.start,
                    end: t.end,
                },
            };
            if self.is_punct("(") {
                let t = self.tok();
                let what = if matches!(&e, Expr::Name(n) if n.name == "lambda") {
                    "`lambda` nodes are".to_string()
                } else {
                    "method calls are".to_string()
                };
                return Err(Fault::new(
                    ErrorKind::Unsupported { what },
                    e.sp().start,
                    t.end,
                ));
            }
            let sp = e.sp().to(key.sp);
            e = Expr::Member(Box::new(e), key, sp);
        }
        Ok(e)
    }

    fn parse_primary(&mut self) -> Result<Expr, Fault> {
        let t = self.tok();
        let text = self.text(t);
        let sp = Sp {
            start: t.start,
            end: t.end,
        };
        match t.kind {
            Tk::Number => {
                self.pos += 1;
                // A run of digits with at most one dot always parses; the fallback is for
                // the type checker only.
                Ok(Expr::Number(text.parse().unwrap_or(f64::NAN), sp))
            }
            Tk::Str => {
                self.pos += 1;
                Ok(Expr::Str(unescape(text), sp))
            }
            Tk::Name => match text {
                "true" | "false" => {
                    self.pos += 1;
                    Ok(Expr::Bool(text == "true", sp))
                }
                "null" => {
                    self.pos += 1;
                    Ok(Expr::Null(sp))
                }
                _ if KEYWORDS.contains(&text) => {
                    if UNSUPPORTED_STATEMENTS.contains(&text) {
                        Err(Fault::new(
                            ErrorKind::Unsupported {
                                what: format!("`{text}` is"),
                            },
                            t.start,
                            t.end,
                        ))
                    } else {
                        Err(self.expected("an expression"))
                    }
                }
                _ => {
                    let name = self.ident("a name")?;
                    if self.is_punct("(") {
                        self.enter()?;
                        let call = self.parse_call_rest(name);
                        self.leave();
                        Ok(Expr::Call(call?))
                    } else {
                        Ok(Expr::Name(name))
                    }
                }
            },
            Tk::Punct if text == "(" => {
                self.pos += 1;
                let e = self.parse_expr()?;
                self.expect_punct(")")?;
                Ok(e)
            }
            Tk::Punct if text == "{" => {
                self.pos += 1;
                self.enter()?;
                let obj = self.parse_object_rest(sp);
                self.leave();
                obj
            }
            Tk::Punct if text == "[" => Err(Fault::new(
                ErrorKind::Unsupported {
                    what: "arrays are".into(),
                },
                t.start,
                t.end,
            )),
            Tk::Op if text == "@" => Err(Fault::new(
                ErrorKind::Unsupported {
                    what: "channels (`@name`) are".into(),
                },
                t.start,
                t.end,
            )),
            _ => Err(self.expected("an expression")),
        }
    }

    /// After `{`: `"key": value, …}` (keys may be names too).
    fn parse_object_rest(&mut self, open: Sp) -> Result<Expr, Fault> {
        let mut entries = Vec::new();
        while !self.is_punct("}") {
            let t = self.tok();
            let key = match t.kind {
                Tk::Str => unescape(self.text(t)),
                Tk::Name => self.text(t).to_string(),
                _ => return Err(self.expected("a key or `}`")),
            };
            self.pos += 1;
            self.expect_punct(":")?;
            let value = self.parse_expr()?;
            entries.push((key, value));
            if !self.eat_punct(",") {
                break;
            }
        }
        let close = self.tok();
        if !self.eat_punct("}") {
            return Err(self.expected("`,` or `}`"));
        }
        Ok(Expr::Object(
            entries,
            open.to(Sp {
                start: close.start,
                end: close.end,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::lex;

    fn parse(src: &str) -> Result<Parsed, Fault> {
        Parser::new(src, lex(src)?).parse_script()
    }

    fn err(src: &str) -> (ErrorKind, &str) {
        match parse(src) {
            Ok(_) => panic!("{src:?} should not parse"),
            Err(f) => (f.kind, &src[f.start..f.end]),
        }
    }

    #[test]
    fn members_may_go_without_semicolons() {
        let p = parse(
            "graph G(a, b = 2) { init { print(a); let c = 1 } node x: process(\"sh\", \"a\") \
             node y: process(\"sh\", \"b\") edge e: x -> y }; spawn G(1)",
        )
        .unwrap();
        assert_eq!(p.graphs.len(), 1);
        let g = &p.graphs[0];
        assert_eq!(g.params.len(), 2);
        assert!(g.params[1].default.is_some());
        assert_eq!(g.init.as_ref().map(Vec::len), Some(2));
        assert_eq!((g.nodes.len(), g.edges.len()), (2, 1));
        assert_eq!(p.stmts.len(), 1);
    }

    #[test]
    fn chains_stay_flat() {
        let src = format!("let x = {}1;", "1 + ".repeat(10_000));
        let p = parse(&src).unwrap();
        let Stmt::Let {
            value: Expr::Chain(_, rest, _),
            ..
        } = &p.stmts[0]
        else {
            panic!("not a chain: {:?}", p.stmts[0]);
        };
        assert_eq!(rest.len(), 10_000);
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!(
            "let x = {}1{};",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(err(&deep).0, ErrorKind::TooDeep { max: MAX_DEPTH });
        let members = format!("let x = o{};", ".a".repeat(100_000));
        assert_eq!(err(&members).0, ErrorKind::TooDeep { max: MAX_DEPTH });
        let negs = format!("let x = {}1;", "- ".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&negs).0, ErrorKind::TooDeep { max: MAX_DEPTH });
        let objs = format!(
            "let x = {}{};",
            "{a:".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(err(&objs).0, ErrorKind::TooDeep { max: MAX_DEPTH });
        let ok = format!(
            "let x = {}1{};",
            "(".repeat(MAX_DEPTH - 2),
            ")".repeat(MAX_DEPTH - 2)
        );
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn directive_arguments() {
        let p = parse(
            "policy P(r) for G { place (#a && #b) x, y; always () x; max_rate (r * 2) e; \
             order_by ((m) => m.index /* i */) e }",
        )
        .unwrap();
        let d = &p.policies[0].directives;
        assert_eq!(d.len(), 4);
        assert!(matches!(&d[0].arg, DirArg::Place(_)));
        assert_eq!(d[0].operands.len(), 2);
        assert_eq!(d[1].arg, DirArg::Nothing);
        assert!(matches!(&d[2].arg, DirArg::Number(Expr::Chain(..))));
        assert_eq!(d[3].arg, DirArg::Text("(m) => m.index".into()));
    }

    #[test]
    fn syntax_errors_point_at_the_token() {
        assert_eq!(
            err("graph G( { }"),
            (
                ErrorKind::Expected {
                    expected: "a parameter name".into(),
                    found: "`{`".into()
                },
                "{"
            )
        );
        assert_eq!(err("graph G() { edge e: a => b }").1, "=>");
        assert_eq!(
            err("policy P() for G { fast () x }"),
            (
                ErrorKind::UnknownDirective {
                    name: "fast".into()
                },
                "fast"
            )
        );
        assert_eq!(err("policy P() for G { always (1) x }").1, "1");
        assert_eq!(err("policy P() for G { max_rate () x }").1, ")");
        assert_eq!(err("policy P() for G { max_rate (1 2) x }").1, "2");
        assert_eq!(
            err("let x = 1 let y = 2"),
            (
                ErrorKind::Expected {
                    expected: "`;`".into(),
                    found: "the keyword `let`".into()
                },
                "let"
            )
        );
        assert!(parse("let x = 1").is_ok());
        assert_eq!(
            err("if (x) { }"),
            (
                ErrorKind::Unsupported {
                    what: "`if` is".into()
                },
                "if"
            )
        );
        assert_eq!(err("graph G() { node a: lambda.map(f) }").1, "lambda.map(");
        assert_eq!(err("let node = 1;").1, "node");
        assert_eq!(err("print(1").1, "");
    }
}
