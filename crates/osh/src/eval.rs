//! Running a checked script: statements in order, graphs and policies instantiated when they
//! are called, effects collected. The first error stops everything and the effects gathered
//! so far are dropped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use crate::ast::{BinOp, Call, DirArg, Expr, GraphDef, Param, PolicyDef, Sp, Stmt};
use crate::error::{ErrorKind, Fault, IdKind};
use crate::model::{quote, Directive, DirectiveKind, Edge, Effect, Format, Instance, Node, Policy};
use crate::parser::Parsed;
use crate::{MAX_DEPTH, MAX_OUTPUT_BYTES, MAX_STEPS, MAX_STRING_BYTES};

#[derive(Clone, Debug)]
enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    Obj(Rc<Obj>),
    /// A `process(…)`: a node without its id.
    Process(Rc<Node>),
    /// `G(…)`: an instance without policy.
    Graph(Rc<Instance>),
    /// `P(…)`.
    Policy(Rc<PolicyValue>),
}

#[derive(Debug)]
struct Obj {
    /// 1 for an object of scalars.
    depth: usize,
    /// In the order first written.
    entries: Vec<(String, Value)>,
    /// Key → index in `entries`.
    index: HashMap<String, usize>,
}

#[derive(Debug)]
struct PolicyValue {
    for_graph: String,
    policy: Policy,
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::Obj(_) => "an object",
            Value::Process(_) => "a process",
            Value::Graph(_) => "a graph instance",
            Value::Policy(_) => "a policy instance",
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Value::Null | Value::Bool(_) | Value::Num(_) | Value::Str(_)
        )
    }
}

/// A number as OneOS (JavaScript) prints it, near enough: `1`, `1.5`, `NaN`, `Infinity`.
fn number_text(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{x}")
    }
}

type Locals = HashMap<String, Value>;

fn fault(kind: ErrorKind, sp: Sp) -> Fault {
    Fault::new(kind, sp.start, sp.end)
}

pub(crate) struct Evaluator<'s> {
    graphs: HashMap<&'s str, &'s GraphDef>,
    policies: HashMap<&'s str, &'s PolicyDef>,
    globals: Locals,
    effects: Vec<Effect>,
    /// Bytes of strings, text and instances made so far.
    output: usize,
    steps: usize,
    /// Whether a graph or policy is being instantiated.
    nested: bool,
}

impl<'s> Evaluator<'s> {
    pub(crate) fn new(parsed: &'s Parsed) -> Evaluator<'s> {
        Evaluator {
            graphs: parsed
                .graphs
                .iter()
                .map(|g| (g.name.name.as_str(), g))
                .collect(),
            policies: parsed
                .policies
                .iter()
                .map(|p| (p.name.name.as_str(), p))
                .collect(),
            globals: Locals::new(),
            effects: Vec::new(),
            output: 0,
            steps: 0,
            nested: false,
        }
    }

    pub(crate) fn run(mut self, stmts: &[Stmt]) -> Result<Vec<Effect>, Fault> {
        for s in stmts {
            self.exec(s, None)?;
        }
        Ok(self.effects)
    }

    fn charge(&mut self, bytes: usize, sp: Sp) -> Result<(), Fault> {
        self.output = self.output.saturating_add(bytes);
        if self.output > MAX_OUTPUT_BYTES {
            return Err(fault(
                ErrorKind::OutputTooLarge {
                    max: MAX_OUTPUT_BYTES,
                },
                sp,
            ));
        }
        Ok(())
    }

    fn step(&mut self, sp: Sp) -> Result<(), Fault> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(fault(ErrorKind::TooMuchWork { max: MAX_STEPS }, sp));
        }
        Ok(())
    }

    fn exec(&mut self, stmt: &Stmt, locals: Option<&mut Locals>) -> Result<(), Fault> {
        match stmt {
            Stmt::Let { name, value } => {
                let v = self.eval(value, locals.as_deref())?;
                let scope = match locals {
                    Some(l) => l,
                    None => &mut self.globals,
                };
                if scope.contains_key(&name.name) {
                    return Err(fault(
                        ErrorKind::Redeclared {
                            name: name.name.clone(),
                        },
                        name.sp,
                    ));
                }
                scope.insert(name.name.clone(), v);
                Ok(())
            }
            Stmt::Expr(e) => self.eval(e, locals.as_deref()).map(drop),
            Stmt::Spawn { graph, policy } => {
                let Some(&g) = self.graphs.get(graph.name.name.as_str()) else {
                    return Err(fault(
                        ErrorKind::UnknownGraph {
                            name: graph.name.name.clone(),
                        },
                        graph.name.sp,
                    ));
                };
                let args = self.eval_args(&graph.args, locals.as_deref())?;
                let mut inst = self.instantiate_graph(g, args, graph.sp)?;
                if let Some(pc) = policy {
                    let Some(&p) = self.policies.get(pc.name.name.as_str()) else {
                        return Err(fault(
                            ErrorKind::UnknownPolicy {
                                name: pc.name.name.clone(),
                            },
                            pc.name.sp,
                        ));
                    };
                    let args = self.eval_args(&pc.args, locals.as_deref())?;
                    let pv = self.instantiate_policy(p, args, pc.sp)?;
                    attach(&mut inst, &pv, pc.sp)?;
                }
                self.effects.push(Effect::Spawn(inst));
                Ok(())
            }
        }
    }

    fn eval_args(
        &mut self,
        args: &[Expr],
        locals: Option<&Locals>,
    ) -> Result<Vec<(Value, Sp)>, Fault> {
        args.iter()
            .map(|a| Ok((self.eval(a, locals)?, a.sp())))
            .collect()
    }

    fn eval(&mut self, e: &Expr, locals: Option<&Locals>) -> Result<Value, Fault> {
        self.step(e.sp())?;
        match e {
            Expr::Number(x, _) => Ok(Value::Num(*x)),
            Expr::Str(s, sp) => {
                self.charge(s.len(), *sp)?;
                Ok(Value::Str(Rc::from(s.as_str())))
            }
            Expr::Bool(b, _) => Ok(Value::Bool(*b)),
            Expr::Null(_) => Ok(Value::Null),
            Expr::Name(id) => locals
                .and_then(|l| l.get(&id.name))
                .or_else(|| self.globals.get(&id.name))
                .cloned()
                .ok_or_else(|| {
                    fault(
                        ErrorKind::UnknownName {
                            name: id.name.clone(),
                        },
                        id.sp,
                    )
                }),
            Expr::Object(entries, sp) => {
                let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
                let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
                let mut depth = 1;
                for (k, v) in entries {
                    let v = self.eval(v, locals)?;
                    if let Value::Obj(o) = &v {
                        depth = depth.max(o.depth + 1);
                    }
                    self.charge(2 * k.len() + 48, *sp)?;
                    // A repeated key keeps its place and takes the last value.
                    match index.get(k).and_then(|&i| out.get_mut(i)) {
                        Some(slot) => slot.1 = v,
                        None => {
                            index.insert(k.clone(), out.len());
                            out.push((k.clone(), v));
                        }
                    }
                }
                if depth > MAX_DEPTH {
                    return Err(fault(ErrorKind::TooDeep { max: MAX_DEPTH }, *sp));
                }
                Ok(Value::Obj(Rc::new(Obj {
                    depth,
                    entries: out,
                    index,
                })))
            }
            Expr::Member(obj, key, _) => match self.eval(obj, locals)? {
                Value::Obj(o) => o
                    .index
                    .get(&key.name)
                    .and_then(|&i| o.entries.get(i))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        fault(
                            ErrorKind::UnknownKey {
                                key: key.name.clone(),
                            },
                            key.sp,
                        )
                    }),
                other => Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "an object",
                        found: other.type_name(),
                    },
                    obj.sp(),
                )),
            },
            Expr::Neg(inner, _) => match self.eval(inner, locals)? {
                Value::Num(x) => Ok(Value::Num(-x)),
                other => Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "a number",
                        found: other.type_name(),
                    },
                    inner.sp(),
                )),
            },
            Expr::Chain(first, rest, _) => {
                let mut acc = self.eval(first, locals)?;
                for (op, operand) in rest {
                    let rhs = self.eval(operand, locals)?;
                    acc = self.binary(*op, acc, rhs, first.sp().to(operand.sp()))?;
                }
                Ok(acc)
            }
            Expr::Call(call) => self.call(call, locals),
        }
    }

    fn binary(&mut self, op: BinOp, a: Value, b: Value, sp: Sp) -> Result<Value, Fault> {
        if let (Value::Num(x), Value::Num(y)) = (&a, &b) {
            let (x, y) = (*x, *y);
            return Ok(Value::Num(match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Rem => x % y,
            }));
        }
        let strings = matches!(a, Value::Str(_)) || matches!(b, Value::Str(_));
        if op == BinOp::Add && strings && a.is_scalar() && b.is_scalar() {
            let mut text = self.text(&a, false, sp)?;
            let right = self.text(&b, false, sp)?;
            if text.len() + right.len() > MAX_STRING_BYTES {
                return Err(fault(
                    ErrorKind::StringTooLong {
                        max: MAX_STRING_BYTES,
                    },
                    sp,
                ));
            }
            text.push_str(&right);
            self.charge(text.len(), sp)?;
            return Ok(Value::Str(Rc::from(text)));
        }
        let bad = if op == BinOp::Add {
            if a.is_scalar() {
                &b
            } else {
                &a
            }
        } else if matches!(a, Value::Num(_)) {
            &b
        } else {
            &a
        };
        Err(fault(
            ErrorKind::TypeMismatch {
                expected: if op == BinOp::Add {
                    "a number or a string"
                } else {
                    "a number"
                },
                found: bad.type_name(),
            },
            sp,
        ))
    }

    /// A value as text: strings as they are (or quoted inside objects), the rest as
    /// JavaScript would print them. Bounded by [`MAX_STRING_BYTES`].
    fn text(&mut self, v: &Value, quoted: bool, sp: Sp) -> Result<String, Fault> {
        let mut out = String::new();
        write_value(&mut out, v, quoted).map_err(|()| {
            fault(
                ErrorKind::StringTooLong {
                    max: MAX_STRING_BYTES,
                },
                sp,
            )
        })?;
        Ok(out)
    }

    fn call(&mut self, call: &Call, locals: Option<&Locals>) -> Result<Value, Fault> {
        let name = call.name.name.as_str();
        let instantiates = matches!(name, "test_spawn")
            || self.graphs.contains_key(name)
            || self.policies.contains_key(name);
        if instantiates && self.nested {
            return Err(fault(ErrorKind::NestedInstance, call.sp));
        }
        match name {
            "print" => {
                let args = self.eval_args(&call.args, locals)?;
                let mut line = String::new();
                for (i, (v, _)) in args.iter().enumerate() {
                    if i > 0 {
                        line.push('\t');
                    }
                    write_value(&mut line, v, false).map_err(|()| {
                        fault(
                            ErrorKind::StringTooLong {
                                max: MAX_STRING_BYTES,
                            },
                            call.sp,
                        )
                    })?;
                }
                self.charge(line.len() + 16, call.sp)?;
                self.effects.push(Effect::Print(line));
                Ok(Value::Null)
            }
            "process" => {
                let args = self.eval_args(&call.args, locals)?;
                self.process(call, args)
            }
            "test_spawn" => {
                let args = self.eval_args(&call.args, locals)?;
                let inst = self.test_spawn(call, args)?;
                self.effects.push(Effect::TestSpawn(inst));
                Ok(Value::Null)
            }
            _ => {
                if let Some(&g) = self.graphs.get(name) {
                    let args = self.eval_args(&call.args, locals)?;
                    let inst = self.instantiate_graph(g, args, call.sp)?;
                    Ok(Value::Graph(Rc::new(inst)))
                } else if let Some(&p) = self.policies.get(name) {
                    let args = self.eval_args(&call.args, locals)?;
                    let pv = self.instantiate_policy(p, args, call.sp)?;
                    Ok(Value::Policy(Rc::new(pv)))
                } else {
                    Err(fault(
                        ErrorKind::UnknownFunction {
                            name: name.to_string(),
                        },
                        call.name.sp,
                    ))
                }
            }
        }
    }

    /// Checks the argument count of a call of `callee` with parameters `params` (names, and
    /// whether each has a default).
    fn arity(
        callee: &str,
        params: &[(&str, bool)],
        given: &[(Value, Sp)],
        call_sp: Sp,
    ) -> Result<(), Fault> {
        if let Some((_, sp)) = given.get(params.len()) {
            return Err(fault(
                ErrorKind::TooManyArguments {
                    callee: callee.to_string(),
                    max: params.len(),
                    given: given.len(),
                },
                *sp,
            ));
        }
        if let Some((param, _)) = params.iter().skip(given.len()).find(|(_, d)| !d) {
            return Err(fault(
                ErrorKind::MissingArgument {
                    callee: callee.to_string(),
                    param: (*param).to_string(),
                },
                call_sp,
            ));
        }
        Ok(())
    }

    fn process(&mut self, call: &Call, args: Vec<(Value, Sp)>) -> Result<Value, Fault> {
        Self::arity(
            "process",
            &[("binary", false), ("args", true), ("options", true)],
            &args,
            call.sp,
        )?;
        let mut args = args.into_iter();
        let (binary, bsp) = args.next().unwrap_or((Value::Null, call.sp));
        let binary = match binary {
            Value::Str(s) => s,
            other => {
                return Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "a string (the program)",
                        found: other.type_name(),
                    },
                    bsp,
                ))
            }
        };
        if binary.trim().is_empty() {
            return Err(fault(ErrorKind::EmptyBinary, bsp));
        }
        let argv: Vec<String> = match args.next() {
            None | Some((Value::Null, _)) => Vec::new(),
            Some((Value::Str(s), _)) => s.split_whitespace().map(str::to_string).collect(),
            Some((Value::Num(x), _)) => vec![number_text(x)],
            Some((other, sp)) => {
                return Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "a string (the arguments)",
                        found: other.type_name(),
                    },
                    sp,
                ))
            }
        };
        let (input_format, output_format) = match args.next() {
            None | Some((Value::Null, _)) => (Format::Raw, Format::Raw),
            Some((Value::Str(s), sp)) => {
                let f = format_named(&s, sp)?;
                (f, f)
            }
            Some((Value::Obj(o), sp)) => {
                let mut formats = (Format::Raw, Format::Raw);
                for (k, v) in &o.entries {
                    let slot = match k.as_str() {
                        "inputFormat" => &mut formats.0,
                        "outputFormat" => &mut formats.1,
                        _ => {
                            return Err(fault(ErrorKind::UnknownOption { key: k.clone() }, sp));
                        }
                    };
                    *slot = match v {
                        Value::Str(s) => format_named(s, sp)?,
                        other => {
                            return Err(fault(
                                ErrorKind::TypeMismatch {
                                    expected: "a format name",
                                    found: other.type_name(),
                                },
                                sp,
                            ))
                        }
                    };
                }
                formats
            }
            Some((other, sp)) => {
                return Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "a format name or an options object",
                        found: other.type_name(),
                    },
                    sp,
                ))
            }
        };
        let size = binary.len() + argv.iter().map(|a| a.len() + 24).sum::<usize>() + 96;
        self.charge(size, call.sp)?;
        Ok(Value::Process(Rc::new(Node {
            id: String::new(),
            binary: binary.to_string(),
            file_arg: if argv.is_empty() { None } else { Some(0) },
            args: argv,
            input_format,
            output_format,
        })))
    }

    fn test_spawn(&mut self, call: &Call, args: Vec<(Value, Sp)>) -> Result<Instance, Fault> {
        Self::arity(
            "test_spawn",
            &[("graph", false), ("policy", true)],
            &args,
            call.sp,
        )?;
        let mut args = args.into_iter();
        let mut inst = match args.next() {
            Some((Value::Graph(g), _)) => (*g).clone(),
            Some((other, sp)) => {
                return Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "a graph instance such as `G(…)`",
                        found: other.type_name(),
                    },
                    sp,
                ))
            }
            None => {
                return Err(fault(
                    ErrorKind::MissingArgument {
                        callee: "test_spawn".into(),
                        param: "graph".into(),
                    },
                    call.sp,
                ))
            }
        };
        match args.next() {
            None | Some((Value::Null, _)) => {}
            Some((Value::Policy(p), sp)) => attach(&mut inst, &p, sp)?,
            Some((other, sp)) => {
                return Err(fault(
                    ErrorKind::TypeMismatch {
                        expected: "a policy instance such as `P(…)`",
                        found: other.type_name(),
                    },
                    sp,
                ))
            }
        }
        self.charge(instance_size(&inst), call.sp)?;
        Ok(inst)
    }

    /// Binds parameters to arguments or defaults, in a new scope.
    fn bind(
        &mut self,
        callee: &str,
        params: &[Param],
        args: Vec<(Value, Sp)>,
        call_sp: Sp,
    ) -> Result<Locals, Fault> {
        let shape: Vec<(&str, bool)> = params
            .iter()
            .map(|p| (p.name.name.as_str(), p.default.is_some()))
            .collect();
        Self::arity(callee, &shape, &args, call_sp)?;
        let mut locals = Locals::new();
        let mut args = args.into_iter();
        for p in params {
            let v = match (args.next(), &p.default) {
                (Some((v, _)), _) => v,
                (None, Some(d)) => self.eval(d, Some(&locals))?,
                (None, None) => Value::Null,
            };
            locals.insert(p.name.name.clone(), v);
        }
        Ok(locals)
    }

    fn instantiate_graph(
        &mut self,
        g: &GraphDef,
        args: Vec<(Value, Sp)>,
        call_sp: Sp,
    ) -> Result<Instance, Fault> {
        let was = std::mem::replace(&mut self.nested, true);
        let inst = self.instantiate_graph_nested(g, args, call_sp);
        self.nested = was;
        inst
    }

    fn instantiate_graph_nested(
        &mut self,
        g: &GraphDef,
        args: Vec<(Value, Sp)>,
        call_sp: Sp,
    ) -> Result<Instance, Fault> {
        let mut locals = self.bind(&g.name.name, &g.params, args, call_sp)?;
        for s in g.init.iter().flatten() {
            self.exec(s, Some(&mut locals))?;
        }
        let mut nodes = Vec::with_capacity(g.nodes.len());
        let mut index = HashMap::with_capacity(g.nodes.len());
        for n in &g.nodes {
            match self.eval(&n.expr, Some(&locals))? {
                Value::Process(p) => {
                    let mut node = (*p).clone();
                    node.id = n.id.name.clone();
                    index.insert(n.id.name.as_str(), nodes.len());
                    nodes.push(node);
                }
                other => {
                    return Err(fault(
                        ErrorKind::NotAProcess {
                            node: n.id.name.clone(),
                            found: other.type_name(),
                        },
                        n.expr.sp(),
                    ))
                }
            }
        }
        let mut edges = Vec::with_capacity(g.edges.len());
        for e in &g.edges {
            let ends = (
                index.get(e.from.name.as_str()).and_then(|&i| nodes.get(i)),
                index.get(e.to.name.as_str()).and_then(|&i| nodes.get(i)),
            );
            let (Some(from), Some(to)) = ends else {
                // The static check has ruled this out.
                return Err(fault(
                    ErrorKind::UnknownId {
                        graph: g.name.name.clone(),
                        id: e.from.name.clone(),
                        expected: IdKind::Node,
                    },
                    e.sp,
                ));
            };
            if from.output_format != to.input_format {
                return Err(fault(
                    ErrorKind::FormatMismatch {
                        edge: e.id.name.clone(),
                        from: from.id.clone(),
                        output: from.output_format,
                        to: to.id.clone(),
                        input: to.input_format,
                    },
                    e.sp,
                ));
            }
            edges.push(Edge {
                id: e.id.name.clone(),
                from: e.from.name.clone(),
                to: e.to.name.clone(),
                kind: e.kind,
            });
        }
        let inst = Instance {
            graph: g.name.name.clone(),
            nodes,
            edges,
            policy: None,
        };
        self.charge(instance_size(&inst), call_sp)?;
        Ok(inst)
    }

    fn instantiate_policy(
        &mut self,
        p: &PolicyDef,
        args: Vec<(Value, Sp)>,
        call_sp: Sp,
    ) -> Result<PolicyValue, Fault> {
        let was = std::mem::replace(&mut self.nested, true);
        let pv = self.instantiate_policy_nested(p, args, call_sp);
        self.nested = was;
        pv
    }

    fn instantiate_policy_nested(
        &mut self,
        p: &PolicyDef,
        args: Vec<(Value, Sp)>,
        call_sp: Sp,
    ) -> Result<PolicyValue, Fault> {
        let locals = self.bind(&p.name.name, &p.params, args, call_sp)?;
        let mut directives = Vec::with_capacity(p.directives.len());
        // Per edge: its min_rate and max_rate so far.
        let mut rates: HashMap<&str, (Option<f64>, Option<f64>)> = HashMap::new();
        for d in &p.directives {
            let name = d.name.name.as_str();
            let kind = match &d.arg {
                DirArg::Place(place) => DirectiveKind::Place(place.clone()),
                DirArg::Nothing if name == "console" => DirectiveKind::Console,
                DirArg::Nothing => DirectiveKind::Always,
                DirArg::Text(t) => DirectiveKind::OrderBy {
                    function: t.clone(),
                },
                DirArg::Number(e) => {
                    let (unit, make): (&str, fn(f64) -> DirectiveKind) = match name {
                        "checkpoint" => ("seconds", |x| DirectiveKind::Checkpoint { seconds: x }),
                        "min_rate" => ("MB/s", |x| DirectiveKind::MinRate { mb_per_s: x }),
                        "max_rate" => ("MB/s", |x| DirectiveKind::MaxRate { mb_per_s: x }),
                        _ => ("milliseconds", |x| DirectiveKind::MaxLatency { ms: x }),
                    };
                    match self.eval(e, Some(&locals))? {
                        Value::Num(x) if x.is_finite() && x > 0.0 => make(x),
                        _ => {
                            return Err(fault(
                                ErrorKind::BadDirectiveArgument {
                                    directive: name.to_string(),
                                    expected: format!("a positive number of {unit}"),
                                },
                                e.sp(),
                            ))
                        }
                    }
                }
            };
            let rate = match kind {
                DirectiveKind::MinRate { mb_per_s } => Some((true, mb_per_s)),
                DirectiveKind::MaxRate { mb_per_s } => Some((false, mb_per_s)),
                _ => None,
            };
            if let Some((is_min, x)) = rate {
                for op in &d.operands {
                    let slot = rates.entry(op.name.as_str()).or_default();
                    if is_min {
                        slot.0 = Some(x);
                    } else {
                        slot.1 = Some(x);
                    }
                    if let (Some(min), Some(max)) = *slot {
                        if min > max {
                            return Err(fault(
                                ErrorKind::RateOrder {
                                    edge: op.name.clone(),
                                    min,
                                    max,
                                },
                                op.sp,
                            ));
                        }
                    }
                }
            }
            self.charge(
                64 + d.operands.iter().map(|o| o.name.len() + 24).sum::<usize>(),
                d.name.sp,
            )?;
            directives.push(Directive {
                kind,
                operands: d.operands.iter().map(|o| o.name.clone()).collect(),
            });
        }
        Ok(PolicyValue {
            for_graph: p.graph.name.clone(),
            policy: Policy {
                name: p.name.name.clone(),
                directives,
            },
        })
    }
}

/// Gives `inst` the policy, which must be written for its graph.
fn attach(inst: &mut Instance, pv: &PolicyValue, sp: Sp) -> Result<(), Fault> {
    if pv.for_graph != inst.graph {
        return Err(fault(
            ErrorKind::PolicyForOtherGraph {
                policy: pv.policy.name.clone(),
                for_graph: pv.for_graph.clone(),
                graph: inst.graph.clone(),
            },
            sp,
        ));
    }
    inst.policy = Some(pv.policy.clone());
    Ok(())
}

fn format_named(name: &str, sp: Sp) -> Result<Format, Fault> {
    name.parse::<Format>().ok().ok_or_else(|| {
        fault(
            ErrorKind::UnknownFormat {
                format: name.to_string(),
            },
            sp,
        )
    })
}

/// Roughly the bytes an instance holds, for the output budget.
fn instance_size(inst: &Instance) -> usize {
    let nodes: usize = inst
        .nodes
        .iter()
        .map(|n| {
            96 + n.id.len() + n.binary.len() + n.args.iter().map(|a| a.len() + 24).sum::<usize>()
        })
        .sum();
    let edges: usize = inst
        .edges
        .iter()
        .map(|e| 64 + e.id.len() + e.from.len() + e.to.len())
        .sum();
    let policy: usize = inst.policy.as_ref().map_or(0, |p| {
        p.directives
            .iter()
            .map(|d| {
                let arg = match &d.kind {
                    DirectiveKind::Place(place) => {
                        32 * (place.numeric.len()
                            + place.tags.as_ref().map_or(0, |t| t.mentioned().len()))
                    }
                    DirectiveKind::OrderBy { function } => function.len(),
                    _ => 0,
                };
                64 + arg + d.operands.iter().map(|o| o.len() + 24).sum::<usize>()
            })
            .sum()
    });
    64 + inst.graph.len() + nodes + edges + policy
}

/// Writes a value as text; `Err` once the text passes [`MAX_STRING_BYTES`].
fn write_value(out: &mut String, v: &Value, quoted: bool) -> Result<(), ()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Num(x) => out.push_str(&number_text(*x)),
        Value::Str(s) if quoted => {
            if s.len() > MAX_STRING_BYTES {
                return Err(());
            }
            out.push_str(&quote(s));
        }
        Value::Str(s) => {
            if s.len() > MAX_STRING_BYTES {
                return Err(());
            }
            out.push_str(s);
        }
        Value::Obj(o) => {
            out.push('{');
            for (i, (k, v)) in o.entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(k));
                out.push_str(": ");
                write_value(out, v, true)?;
                if out.len() > MAX_STRING_BYTES {
                    return Err(());
                }
            }
            out.push('}');
        }
        Value::Process(n) => {
            let _ = write!(
                out,
                "process({}, {})",
                quote(&n.binary),
                quote(&n.args.join(" "))
            );
        }
        Value::Graph(g) => {
            let _ = write!(out, "<graph {}>", g.graph);
        }
        Value::Policy(p) => {
            let _ = write!(out, "<policy {} for {}>", p.policy.name, p.for_graph);
        }
    }
    if out.len() > MAX_STRING_BYTES {
        return Err(());
    }
    Ok(())
}
