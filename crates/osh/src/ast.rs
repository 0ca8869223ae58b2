//! The parsed script. Every piece keeps its byte span for error messages.

use crate::model::{EdgeKind, Placement};

/// Bytes `start..end` of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sp {
    pub start: usize,
    pub end: usize,
}

impl Sp {
    pub(crate) fn to(self, other: Sp) -> Sp {
        Sp {
            start: self.start,
            end: other.end.max(self.start),
        }
    }
}

/// A name as written, with where.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ident {
    pub name: String,
    pub sp: Sp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    Number(f64, Sp),
    Str(String, Sp),
    Bool(bool, Sp),
    Null(Sp),
    Name(Ident),
    /// `{ "key": value, … }`
    Object(Vec<(String, Expr)>, Sp),
    /// `value.key`
    Member(Box<Expr>, Ident, Sp),
    /// `name(args)`
    Call(Call),
    /// `-value`
    Neg(Box<Expr>, Sp),
    /// `first op e op e …`, left to right (kept flat so that long chains take no stack).
    Chain(Box<Expr>, Vec<(BinOp, Expr)>, Sp),
}

impl Expr {
    pub(crate) fn sp(&self) -> Sp {
        match self {
            Expr::Number(_, sp)
            | Expr::Str(_, sp)
            | Expr::Bool(_, sp)
            | Expr::Null(sp)
            | Expr::Object(_, sp)
            | Expr::Member(_, _, sp)
            | Expr::Neg(_, sp)
            | Expr::Chain(_, _, sp) => *sp,
            Expr::Name(id) => id.sp,
            Expr::Call(call) => call.sp,
        }
    }
}

/// `name(args)`; `sp` runs from the name to the closing parenthesis.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Call {
    pub name: Ident,
    pub args: Vec<Expr>,
    pub sp: Sp,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Stmt {
    /// `let name = value;` or `const name = value;`
    Let { name: Ident, value: Expr },
    /// `expr;`
    Expr(Expr),
    /// `spawn G(args) [with P(args)];`
    Spawn { graph: Call, policy: Option<Call> },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeDef {
    pub id: Ident,
    pub expr: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EdgeDef {
    pub id: Ident,
    pub from: Ident,
    pub to: Ident,
    pub kind: EdgeKind,
    /// From `edge` to the sink's name.
    pub sp: Sp,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GraphDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub init: Option<Vec<Stmt>>,
    pub nodes: Vec<NodeDef>,
    pub edges: Vec<EdgeDef>,
}

/// A directive's argument as the directive takes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DirArg {
    /// `place`: parsed when the script is.
    Place(Placement),
    /// `always`, `console`: nothing.
    Nothing,
    /// `checkpoint`, `min_rate`, `max_rate`, `max_latency`: evaluated with the policy's
    /// parameters.
    Number(Expr),
    /// `order_by`: the source text.
    Text(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DirectiveDef {
    pub name: Ident,
    pub arg: DirArg,
    pub operands: Vec<Ident>,
}

impl DirectiveDef {
    /// Whether the directive applies to nodes (else to edges).
    pub(crate) fn on_nodes(&self) -> bool {
        matches!(
            self.name.name.as_str(),
            "place" | "always" | "console" | "checkpoint"
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PolicyDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub graph: Ident,
    pub directives: Vec<DirectiveDef>,
}
