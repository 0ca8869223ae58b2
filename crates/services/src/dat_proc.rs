//! `dat.proc`: data processing — lengths, sorting, higher-order map/fold/scan, list building,
//! hashing, compression and (de)serialization.
//!
//! Commands come in the pair form `(cmd arg)` or the map form `{cmd:arg}` (vnix accepted only
//! the pair form). The service takes its messages raw: `map`, `fold` and `scn` take their
//! stream argument apart instead of running it, and `get` keeps its path literal; every other
//! command evaluates the whole message first.

use std::io::{Read, Write};
use std::sync::Arc;

use base64::Engine as _;
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Delivery, Entry, Error, Example, Help, Outcome, Service, Table,
};
use plexus_units::{Limits, Map, Path, Unit};

use crate::forms::{self, Cmd};

const NAME: &str = "dat.proc";

/// Most units a list-producing command may create (elements, counting nested units of copies).
pub const MAX_UNITS: usize = 10_000_000;

/// Largest decompressed size `unzip` accepts, in bytes.
pub const MAX_UNZIPPED: usize = 64 << 20;

/// Limits for decoding binary data (`unzip`, `prs.bytes`): those of units in binary form, for
/// up to [`MAX_UNZIPPED`] bytes.
const BINARY_LIMITS: Limits = Limits {
    max_size: MAX_UNZIPPED,
    ..Limits::WIRE
};

/// The `dat.proc` service.
pub struct DatProc {
    table: Table<Run>,
}

/// The service, ready to register.
pub fn service() -> Arc<dyn plexus_kernel::Service> {
    Arc::new(DatProc { table: table() })
}

/// A command's handler: its name and argument to its value.
type Handler = fn(&str, &Unit) -> Result<Unit, Error>;

/// How a command runs.
#[derive(Clone, Copy)]
enum Run {
    /// On the evaluated message (on the blocking pool when the message is big).
    Plain(Handler),
    /// Like `Plain`, but always on the blocking pool: it can make big lists out of a small
    /// message.
    Growing(Handler),
    /// Takes its stream argument `(com data)@serv` apart instead of running it.
    Higher,
    /// A ref path as the first of its pair argument stays literal (not resolved against the
    /// message).
    LiteralPath(Handler),
}

impl Service for DatProc {
    fn help(&self) -> &Help {
        self.table.help()
    }

    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.table.find(&msg) {
                Some((e, c)) if matches!(e.run, Run::Higher) => {
                    if let Unit::Stream(_) = c.arg()? {
                        return higher(cx, c.name, c.arg()?).await.map(Some);
                    }
                }
                Some((e, c)) if matches!(e.run, Run::LiteralPath(_)) => {
                    if let Unit::Pair(p) = c.arg()? {
                        if let Unit::Ref(path) = &p.0 {
                            let path = path.clone();
                            let masked = with_arg(&msg, Unit::pair(Unit::None, p.1.clone()));
                            let evaluated = cx.eval(masked).await?;
                            let src = forms::command(&evaluated)
                                .and_then(|c| c.arg)
                                .and_then(|a| match a {
                                    Unit::Pair(p) => Some(&p.1),
                                    _ => None,
                                })
                                .ok_or_else(|| Error::internal("get: lost its argument"))?;
                            return get_path(&path, src).map(Some);
                        }
                    }
                }
                _ => {}
            }
            let msg = cx.eval(msg).await?;
            let (entry, c) = self.table.lookup(&msg)?;
            let (handler, growing) = match entry.run {
                Run::Higher => return higher(cx, c.name, c.arg()?).await.map(Some),
                Run::Plain(h) | Run::LiteralPath(h) => (h, false),
                Run::Growing(h) => (h, true),
            };
            // dup, prod and cat.zip can make big lists out of small messages.
            cx.charge(build_estimate(&c))?;
            if growing || is_heavy(&msg) {
                // Sorting, hashing or (un)packing big data: not on the async runtime.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    return handle
                        .spawn_blocking(move || run_owned(handler, &msg))
                        .await
                        .map_err(|e| Error::internal(format!("dat.proc worker failed: {e}")))?;
                }
            }
            run_owned(handler, &msg)
        })
    }
}

/// Runs `handler` on the evaluated command `msg`.
fn run_owned(handler: Handler, msg: &Unit) -> Outcome {
    let c = forms::command(msg).ok_or_else(|| Error::unknown_command(NAME, msg))?;
    handler(c.name, c.arg()?).map(Some)
}

/// About how many bytes `dup`, `prod` and `cat.zip` are about to build: their results can be
/// far bigger than their messages, so the message's memory budget is charged before they
/// build them (the kernel charges the rest of any result when it is returned).
fn build_estimate(c: &Cmd<'_>) -> u64 {
    let Some(Unit::Pair(p)) = c.arg else {
        return 0;
    };
    let pair = 3 * std::mem::size_of::<Unit>() as u64;
    let lists = || Some((p.0.as_list()?.len() as u64, p.1.as_list()?.len() as u64));
    let (fx, fy) = (p.0.footprint(), p.1.footprint());
    match c.name {
        "dup" => {
            p.0.as_int()
                .and_then(|n| n.to_i64())
                .map_or(0, |n| u64::try_from(n).unwrap_or(0).saturating_mul(fy))
        }
        "prod" => lists().map_or(0, |(x, y)| {
            (x.saturating_mul(y).saturating_mul(pair))
                .saturating_add(fx.saturating_mul(y))
                .saturating_add(fy.saturating_mul(x))
        }),
        "cat.zip" => match lists() {
            Some((x, y)) if x > 0 && y > 0 => {
                let n = x.max(y);
                n.saturating_mul(pair)
                    .saturating_add(fx.saturating_mul(n / x + 1))
                    .saturating_add(fy.saturating_mul(n / y + 1))
            }
            _ => 0,
        },
        _ => 0,
    }
}

/// Weight (units, plus a unit per KiB of text or bytes) above which a command runs on the
/// blocking pool.
const HEAVY: usize = 20_000;

/// Whether `u` weighs more than [`HEAVY`]; stops counting as soon as it does.
fn is_heavy(u: &Unit) -> bool {
    fn weigh(u: &Unit, left: &mut usize) -> bool {
        let w = match u {
            Unit::Str(s) => 1 + s.len() / 1024,
            Unit::Bytes(b) => 1 + b.len() / 1024,
            _ => 1,
        };
        if w >= *left {
            return true;
        }
        *left -= w;
        match u {
            Unit::Stream(s) => weigh(&s.unit, left),
            Unit::Pair(p) => weigh(&p.0, left) || weigh(&p.1, left),
            Unit::List(l) => l.iter().any(|e| weigh(e, left)),
            Unit::Map(m) => m.iter().any(|(k, v)| weigh(k, left) || weigh(v, left)),
            _ => false,
        }
    }
    let mut left = HEAVY;
    weigh(u, &mut left)
}

/// `msg` (a pair or map command) with its argument replaced.
fn with_arg(msg: &Unit, arg: Unit) -> Unit {
    match msg {
        Unit::Pair(p) => Unit::pair(p.0.clone(), arg),
        Unit::Map(m) => {
            let mut entries = m.entries().to_vec();
            if let Some(first) = entries.first_mut() {
                first.1 = arg;
            }
            Map::from_entries(entries).map_or(Unit::None, Unit::Map)
        }
        other => other.clone(),
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_argument(message)
}

fn limit_error(what: &str) -> Error {
    Error::new(
        code::LIMIT,
        format!("{what}: the result would hold more than {MAX_UNITS} units"),
    )
}

fn short(u: &Unit) -> String {
    plexus_units::to_short(u, 24)
}

/// Number of units in `u`, counting itself and everything nested.
fn nodes(u: &Unit) -> usize {
    match u {
        Unit::Stream(s) => 1usize.saturating_add(nodes(&s.unit)),
        Unit::Pair(p) => 1usize
            .saturating_add(nodes(&p.0))
            .saturating_add(nodes(&p.1)),
        Unit::List(l) => l.iter().fold(1usize, |n, e| n.saturating_add(nodes(e))),
        Unit::Map(m) => m.iter().fold(1usize, |n, (k, v)| {
            n.saturating_add(nodes(k)).saturating_add(nodes(v))
        }),
        _ => 1,
    }
}

fn seq<'u>(name: &str, u: &'u Unit) -> Result<Vec<&'u Unit>, Error> {
    forms::elements(u)
        .ok_or_else(|| bad(format!("{name} takes a list or a pair, not {}", short(u))))
}

fn pair_arg<'u>(name: &str, form: &str, u: &'u Unit) -> Result<(&'u Unit, &'u Unit), Error> {
    match u {
        Unit::Pair(p) => Ok((&p.0, &p.1)),
        other => Err(bad(format!(
            "{name} takes a pair {form}, not {}",
            short(other)
        ))),
    }
}

fn str_arg<'u>(name: &str, u: &'u Unit) -> Result<&'u str, Error> {
    u.as_str()
        .ok_or_else(|| bad(format!("{name} takes a str, not {}", short(u))))
}

fn owned(v: Vec<&Unit>) -> Vec<Unit> {
    v.into_iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// map, fold, scn

/// Runs `map`, `fold` or `scn` with the stream `(com data)@serv` taken apart.
async fn higher(cx: &Cx, name: &str, arg: &Unit) -> Result<Unit, Error> {
    let Unit::Stream(s) = arg else {
        return Err(bad(format!(
            "{name} takes a stream (com data)@serv, not {}",
            short(arg)
        )));
    };
    if !matches!(s.unit, Unit::Pair(_)) {
        return Err(bad(format!(
            "{name} takes a stream whose message is a pair (com data), not {}",
            short(&s.unit)
        )));
    }
    // Refs inside the stream resolve against its message, as they would if it ran.
    let Unit::Pair(p) = cx.eval(s.unit.clone()).await? else {
        return Err(Error::internal("evaluating a pair gave something else"));
    };
    let (com, data) = *p;
    let serv = s.service();
    let node = s.node();
    let call = |e: Unit| {
        let com = com.clone();
        async move {
            Ok::<Unit, Error>(
                cx.send(serv, node, Unit::pair(com, e))
                    .await?
                    .unwrap_or(Unit::None),
            )
        }
    };
    match name {
        "map" => match data {
            Unit::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                for e in l {
                    out.push(call(e).await?);
                }
                Ok(Unit::List(out))
            }
            Unit::Pair(p) => {
                let (a, b) = *p;
                let a = call(a).await?;
                let b = call(b).await?;
                Ok(Unit::pair(a, b))
            }
            Unit::Map(m) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, v) in m.into_entries() {
                    out.push((k, call(v).await?));
                }
                Map::from_entries(out)
                    .map(Unit::Map)
                    .map_err(|e| Error::internal(e.to_string()))
            }
            other => Err(bad(format!(
                "map applies to a list, a pair or a map's values, not {}",
                short(&other)
            ))),
        },
        _ => {
            let items = match data {
                Unit::List(l) => l,
                Unit::Pair(p) => vec![p.0, p.1],
                other => {
                    return Err(bad(format!(
                        "{name} takes a list or a pair of values, not {}",
                        short(&other)
                    )))
                }
            };
            let mut it = items.into_iter();
            let Some(mut acc) = it.next() else {
                return Err(bad(format!("{name} needs at least one value")));
            };
            let mut steps = Vec::new();
            for x in it {
                acc = call(Unit::pair(acc, x)).await?;
                if name == "scn" {
                    steps.push(acc.clone());
                }
            }
            Ok(if name == "scn" {
                Unit::List(steps)
            } else {
                acc
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The other commands, on an evaluated message

fn enumerate(name: &str, a: &Unit) -> Result<Unit, Error> {
    Ok(Unit::List(
        seq(name, a)?
            .into_iter()
            .enumerate()
            .map(|(i, e)| Unit::pair(Unit::int(i as i64), e.clone()))
            .collect(),
    ))
}

fn keys(_: &str, a: &Unit) -> Result<Unit, Error> {
    match a {
        Unit::Map(m) => Ok(Unit::List(m.keys().cloned().collect())),
        other => Err(bad(format!("keys takes a map, not {}", short(other)))),
    }
}

fn get(name: &str, a: &Unit) -> Result<Unit, Error> {
    let (p, src) = pair_arg(name, "(@path src)", a)?;
    let path = match p {
        Unit::Ref(p) => p.clone(),
        Unit::Str(s) => {
            Path::parse_dotted(s).ok_or_else(|| bad(format!("get: {s} is not a path")))?
        }
        other => {
            return Err(bad(format!(
                "get takes a path @a.b (or the str a.b), not {}",
                short(other)
            )))
        }
    };
    get_path(&path, src)
}

fn fst_last(name: &str, a: &Unit) -> Result<Unit, Error> {
    let items = seq(name, a)?;
    let e = if name == "fst" {
        items.first()
    } else {
        items.last()
    };
    e.map(|e| (*e).clone())
        .ok_or_else(|| bad(format!("{name} of an empty list")))
}

fn hash(_: &str, a: &Unit) -> Result<Unit, Error> {
    Ok(Unit::str(
        blake3::hash(&plexus_units::encode(a)).to_hex().as_str(),
    ))
}

fn size(name: &str, a: &Unit) -> Result<Unit, Error> {
    let bytes = plexus_units::encode(a).len() as u64;
    let shift = match name {
        "size.kb" => 10,
        "size.mb" => 20,
        "size.gb" => 30,
        _ => 0,
    };
    Ok(Unit::int((bytes >> shift) as i64))
}

fn prs_str(name: &str, a: &Unit) -> Result<Unit, Error> {
    let text = str_arg(name, a)?;
    plexus_units::parse(text).map_err(|e| bad(format!("prs.str: {e}")))
}

fn len(a: &Unit) -> Result<Unit, Error> {
    let n = match a {
        Unit::Str(s) => s.chars().count(),
        Unit::List(l) => l.len(),
        Unit::Pair(_) => 2,
        Unit::Map(m) => m.len(),
        Unit::Bytes(b) => b.len(),
        other => {
            return Err(bad(format!(
                "len takes a str, list, pair, map or bytes, not {}",
                short(other)
            )))
        }
    };
    Ok(Unit::int(n as i64))
}

fn sort(a: &Unit) -> Result<Unit, Error> {
    match a {
        Unit::List(l) => {
            let mut l = l.clone();
            l.sort();
            Ok(Unit::List(l))
        }
        Unit::Pair(p) => {
            let (x, y) = (&p.0, &p.1);
            Ok(if y < x {
                Unit::pair(y.clone(), x.clone())
            } else {
                Unit::pair(x.clone(), y.clone())
            })
        }
        other => Err(bad(format!(
            "sort takes a list or a pair, not {}",
            short(other)
        ))),
    }
}

fn rev(a: &Unit) -> Result<Unit, Error> {
    match a {
        Unit::List(l) => Ok(Unit::List(l.iter().rev().cloned().collect())),
        Unit::Pair(p) => Ok(Unit::pair(p.1.clone(), p.0.clone())),
        Unit::Str(s) => Ok(Unit::from(s.chars().rev().collect::<String>())),
        other => Err(bad(format!(
            "rev takes a list, a pair or a str, not {}",
            short(other)
        ))),
    }
}

fn dup(a: &Unit) -> Result<Unit, Error> {
    let (n, u) = pair_arg("dup", "(n u)", a)?;
    let n = forms::count(n, "dup: n")?;
    if n.saturating_mul(nodes(u)) > MAX_UNITS {
        return Err(limit_error("dup"));
    }
    Ok(Unit::List(vec![u.clone(); n]))
}

fn cat(a: &Unit) -> Result<Unit, Error> {
    match a {
        Unit::Pair(p) => match (&p.0, &p.1) {
            (Unit::Str(x), Unit::Str(y)) => Ok(Unit::from(format!("{x}{y}"))),
            (Unit::Bytes(x), Unit::Bytes(y)) => {
                let mut v = x.to_vec();
                v.extend_from_slice(y);
                Ok(Unit::Bytes(v.into()))
            }
            (Unit::List(x), Unit::List(y)) => {
                let mut v = x.clone();
                v.extend(y.iter().cloned());
                Ok(Unit::List(v))
            }
            (x, Unit::List(y)) => {
                let mut v = Vec::with_capacity(y.len() + 1);
                v.push(x.clone());
                v.extend(y.iter().cloned());
                Ok(Unit::List(v))
            }
            (Unit::List(x), y) => {
                let mut v = x.clone();
                v.push(y.clone());
                Ok(Unit::List(v))
            }
            _ => Err(bad(format!(
                "cat takes two strs, two bytes, two lists, or a list and a unit, not {}",
                short(a)
            ))),
        },
        Unit::List(items) => {
            if items.iter().all(|u| matches!(u, Unit::Str(_))) {
                Ok(Unit::from(
                    items.iter().filter_map(Unit::as_str).collect::<String>(),
                ))
            } else if items.iter().all(|u| matches!(u, Unit::Bytes(_))) {
                let mut v = Vec::new();
                for u in items {
                    if let Unit::Bytes(b) = u {
                        v.extend_from_slice(b);
                    }
                }
                Ok(Unit::Bytes(v.into()))
            } else if items.iter().all(|u| matches!(u, Unit::List(_))) {
                Ok(Unit::List(
                    items
                        .iter()
                        .filter_map(Unit::as_list)
                        .flat_map(|l| l.iter().cloned())
                        .collect(),
                ))
            } else {
                Err(bad(
                    "cat of a list needs all strs, all bytes or all lists".to_string()
                ))
            }
        }
        other => Err(bad(format!(
            "cat takes a pair (a b) or a list [a b …], not {}",
            short(other)
        ))),
    }
}

fn cat_zip(a: &Unit) -> Result<Unit, Error> {
    let (x, y) = pair_arg("cat.zip", "(l1 l2)", a)?;
    let x = seq("cat.zip", x)?;
    let y = seq("cat.zip", y)?;
    if x.is_empty() || y.is_empty() {
        return Ok(Unit::List(Vec::new()));
    }
    let n = x.len().max(y.len());
    let sum = |v: &[&Unit]| v.iter().fold(0usize, |s, u| s.saturating_add(nodes(u)));
    let reps = |v: &[&Unit]| n / v.len() + 1;
    let total = n
        .saturating_add(sum(&x).saturating_mul(reps(&x)))
        .saturating_add(sum(&y).saturating_mul(reps(&y)));
    if total > MAX_UNITS {
        return Err(limit_error("cat.zip"));
    }
    Ok(Unit::List(
        (0..n)
            .map(|i| Unit::pair(x[i % x.len()].clone(), y[i % y.len()].clone()))
            .collect(),
    ))
}

fn prod(a: &Unit) -> Result<Unit, Error> {
    let (x, y) = pair_arg("prod", "(A B)", a)?;
    let x = seq("prod", x)?;
    let y = seq("prod", y)?;
    let sum = |v: &[&Unit]| v.iter().fold(0usize, |s, u| s.saturating_add(nodes(u)));
    let total = x
        .len()
        .saturating_mul(y.len())
        .saturating_add(sum(&x).saturating_mul(y.len()))
        .saturating_add(sum(&y).saturating_mul(x.len()));
    if total > MAX_UNITS {
        return Err(limit_error("prod"));
    }
    let mut out = Vec::with_capacity(x.len() * y.len());
    for e in &x {
        for f in &y {
            out.push(Unit::pair((*e).clone(), (*f).clone()));
        }
    }
    Ok(Unit::List(out))
}

fn split(a: &Unit) -> Result<Unit, Error> {
    let (sep, s) = pair_arg("split", "(sep s)", a)?;
    let sep = str_arg("split: sep", sep)?;
    let s = str_arg("split: s", s)?;
    let parts: Vec<Unit> = if sep.is_empty() {
        s.chars().map(|c| Unit::from(c.to_string())).collect()
    } else {
        s.split(sep).map(Unit::str).collect()
    };
    Ok(Unit::List(parts))
}

fn split_uz(a: &Unit) -> Result<Unit, Error> {
    let items = seq("split.uz", a)?;
    let mut left = Vec::with_capacity(items.len());
    let mut right = Vec::with_capacity(items.len());
    for e in items {
        match forms::elements(e) {
            Some(v) if v.len() == 2 => {
                left.push(v[0].clone());
                right.push(v[1].clone());
            }
            _ => {
                return Err(bad(format!(
                    "split.uz takes a list of pairs, and {} is not a pair",
                    short(e)
                )))
            }
        }
    }
    Ok(Unit::pair(Unit::List(left), Unit::List(right)))
}

fn make(a: &Unit) -> Result<Unit, Error> {
    let (kind, data) = pair_arg("make", "(kind data)", a)?;
    let kind = str_arg("make: kind", kind)?;
    match kind {
        "pair" => match forms::elements(data) {
            Some(v) if v.len() == 2 => Ok(Unit::pair(v[0].clone(), v[1].clone())),
            _ => Err(bad(format!(
                "make pair takes a list of two elements, not {}",
                short(data)
            ))),
        },
        "lst" => match data {
            Unit::Map(m) => Ok(Unit::List(
                m.iter()
                    .map(|(k, v)| Unit::pair(k.clone(), v.clone()))
                    .collect(),
            )),
            other => Ok(Unit::List(owned(seq("make lst", other)?))),
        },
        "map" => {
            let entries: Vec<(Unit, Unit)> = match data {
                Unit::Map(m) => return Ok(Unit::Map(m.clone())),
                Unit::Pair(p) => vec![(p.0.clone(), p.1.clone())],
                Unit::List(l) => {
                    let mut v = Vec::with_capacity(l.len());
                    for e in l {
                        match e {
                            Unit::Pair(p) => v.push((p.0.clone(), p.1.clone())),
                            other => {
                                return Err(bad(format!(
                                "make map takes a list of (key value) pairs, and {} is not a pair",
                                short(other)
                            )))
                            }
                        }
                    }
                    v
                }
                other => {
                    return Err(bad(format!(
                        "make map takes a pair or a list of pairs, not {}",
                        short(other)
                    )))
                }
            };
            Map::from_entries(entries)
                .map(Unit::Map)
                .map_err(|e| bad(format!("make map: {e}: keys must be unique")))
        }
        other => Err(bad(format!("make builds a pair, lst or map, not {other}"))),
    }
}

fn take_cut(name: &str, a: &Unit) -> Result<Unit, Error> {
    let (n, data) = pair_arg(name, "(n list)", a)?;
    let n = forms::count(n, &format!("{name}: n"))?;
    if let Unit::Str(s) = data {
        let out: String = if name == "take" {
            s.chars().take(n).collect()
        } else {
            s.chars().skip(n).collect()
        };
        return Ok(Unit::from(out));
    }
    let items = seq(name, data)?;
    let out = if name == "take" {
        items.into_iter().take(n).cloned().collect()
    } else {
        items.into_iter().skip(n).cloned().collect()
    };
    Ok(Unit::List(out))
}

fn grp(a: &Unit) -> Result<Unit, Error> {
    let (n, data) = pair_arg("grp", "(n list)", a)?;
    let n = forms::count(n, "grp: n")?;
    if n == 0 {
        return Err(bad("grp: n must be at least 1"));
    }
    let items = seq("grp", data)?;
    if items.len() % n != 0 {
        return Err(bad(format!(
            "grp: the length {} is not a multiple of {n}",
            items.len()
        )));
    }
    Ok(Unit::List(
        items
            .chunks(n)
            .map(|c| {
                if n == 2 {
                    Unit::pair(c[0].clone(), c[1].clone())
                } else {
                    Unit::List(c.iter().map(|u| (*u).clone()).collect())
                }
            })
            .collect(),
    ))
}

fn flat(a: &Unit) -> Result<Unit, Error> {
    let mut out = Vec::new();
    for e in seq("flat", a)? {
        match e {
            Unit::List(l) => out.extend(l.iter().cloned()),
            Unit::Pair(p) => {
                out.push(p.0.clone());
                out.push(p.1.clone());
            }
            other => out.push(other.clone()),
        }
    }
    Ok(Unit::List(out))
}

fn get_path(path: &Path, src: &Unit) -> Result<Unit, Error> {
    src.find(path).cloned().ok_or_else(|| {
        Error::new(
            code::NOT_FOUND,
            format!(
                "get: nothing at {} in {}",
                Unit::Ref(path.clone()),
                short(src)
            ),
        )
        .with("path", Unit::Ref(path.clone()))
    })
}

fn contains(a: &Unit) -> Result<Unit, Error> {
    let (e, c) = pair_arg("in", "(e list)", a)?;
    let found = match (e, c) {
        (Unit::Str(needle), Unit::Str(hay)) => hay.contains(&**needle),
        (_, Unit::Map(m)) => m.get(e).is_some(),
        (_, Unit::List(l)) => l.contains(e),
        (_, Unit::Pair(p)) => p.0 == *e || p.1 == *e,
        _ => {
            return Err(bad(format!(
                "in looks in a list, a pair, a map's keys or a str, not {}",
                short(c)
            )))
        }
    };
    Ok(Unit::Bool(found))
}

fn zip(a: &Unit) -> Result<Unit, Error> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plexus_units::encode(a))
        .map_err(|e| Error::internal(format!("zip: {e}")))?;
    let bytes = gz
        .finish()
        .map_err(|e| Error::internal(format!("zip: {e}")))?;
    Ok(Unit::from(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

fn unzip(a: &Unit) -> Result<Unit, Error> {
    let text = str_arg("unzip", a)?;
    let packed = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| bad(format!("unzip: not base64: {e}")))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(packed.as_slice())
        .take(MAX_UNZIPPED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("unzip: not gzip data: {e}")))?;
    if out.len() > MAX_UNZIPPED {
        return Err(Error::new(
            code::LIMIT,
            format!("unzip: the data unpacks to more than {MAX_UNZIPPED} bytes"),
        ));
    }
    plexus_units::decode_bytes_with(out.into(), &BINARY_LIMITS)
        .map_err(|e| bad(format!("unzip: not an encoded unit: {e}")))
}

fn prs_bytes(a: &Unit) -> Result<Unit, Error> {
    let bytes: bytes::Bytes = match a {
        Unit::Bytes(b) => b.clone(),
        Unit::List(l) => {
            let mut v = Vec::with_capacity(l.len());
            for e in l {
                match e {
                    Unit::Byte(b) => v.push(*b),
                    other => {
                        return Err(bad(format!(
                            "prs.bytes takes bytes or a list of bytes, and {} is not a byte",
                            short(other)
                        )))
                    }
                }
            }
            v.into()
        }
        other => {
            return Err(bad(format!(
                "prs.bytes takes bytes x\"…\" or a list of bytes, not {}",
                short(other)
            )))
        }
    };
    plexus_units::decode_bytes_with(bytes, &BINARY_LIMITS)
        .map_err(|e| bad(format!("prs.bytes: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Help

fn ex(info: &'static str, com: &'static str, res: &'static str) -> Example {
    Example {
        info,
        com,
        res: Some(res),
    }
}

fn table() -> Table<Run> {
    Table::new(
        NAME,
        "Data processing: lengths, sorting, map/fold/scan over a service, building and \
               reshaping lists, pairs and maps, hashing, compression and (de)serialization. \
               Commands take the pair form (cmd arg) or the map form {cmd:arg}. List-producing \
               commands are limited to 10,000,000 units (limit error).",
        vec![
            ex(
                "Length of a str in characters",
                "(len `héllo`)@dat.proc",
                "5",
            ),
            ex("The map form works too", "{len:[a b c]}@dat.proc", "3"),
            ex(
                "Sort by the unit order",
                "(sort [b 2 a 1.5])@dat.proc",
                "[1.5 2 a b]",
            ),
            ex("Reverse", "(rev [1 2 3])@dat.proc", "[3 2 1]"),
            ex("Enumerate", "(enum [a b])@dat.proc", "[(0 a) (1 b)]"),
            ex(
                "Map a service over a list",
                "(map (inc [1 2 3])@math.calc)@dat.proc",
                "[2 3 4]",
            ),
            ex(
                "Fold left to right",
                "(fold (sum [1 2 3 4])@math.calc)@dat.proc",
                "10",
            ),
            ex(
                "Scan: every accumulator after the first element",
                "(scn (mul [2 3 4])@math.calc)@dat.proc",
                "[6 24]",
            ),
            ex("Duplicate", "(dup (3 x))@dat.proc", "[x x x]"),
            ex("Concatenate strs", "(cat (ab cd))@dat.proc", "abcd"),
            ex("Concatenate lists", "(cat ([1 2] [3]))@dat.proc", "[1 2 3]"),
            ex("Prepend", "(cat (0 [1 2]))@dat.proc", "[0 1 2]"),
            ex(
                "Zip two lists, cycling the shorter",
                "(cat.zip ([1 2 3 4] [a b]))@dat.proc",
                "[(1 a) (2 b) (3 a) (4 b)]",
            ),
            ex(
                "Cartesian product",
                "(prod ([1 2] (a b)))@dat.proc",
                "[(1 a) (1 b) (2 a) (2 b)]",
            ),
            ex("Split a str", "(split (`,` `a,b,c`))@dat.proc", "[a b c]"),
            ex(
                "Unzip a list of pairs",
                "(split.uz [(1 a) (2 b)])@dat.proc",
                "([1 2] [a b])",
            ),
            ex(
                "Make a map from pairs",
                "(make (map [(a 1) (b 2)]))@dat.proc",
                "{a:1 b:2}",
            ),
            ex(
                "Make a list of a map's entries",
                "(make (lst {a:1}))@dat.proc",
                "[(a 1)]",
            ),
            ex("Make a pair", "(make (pair [a b]))@dat.proc", "(a b)"),
            ex("Keys of a map", "(keys {a:1 b:2})@dat.proc", "[a b]"),
            ex("Take", "(take (2 [a b c]))@dat.proc", "[a b]"),
            ex("Cut", "(cut (2 [a b c]))@dat.proc", "[c]"),
            ex(
                "Group in pairs",
                "(grp (2 [1 2 3 4]))@dat.proc",
                "[(1 2) (3 4)]",
            ),
            ex(
                "Group in threes",
                "(grp (3 [1 2 3 4 5 6]))@dat.proc",
                "[[1 2 3] [4 5 6]]",
            ),
            ex(
                "Flatten one level",
                "(flat [1 [2 3] (4 5)])@dat.proc",
                "[1 2 3 4 5]",
            ),
            ex(
                "Get by a literal path",
                "(get (@a.1 {a:[x y]}))@dat.proc",
                "y",
            ),
            ex("First", "(fst [1 2 3])@dat.proc", "1"),
            ex("Last", "(last (a b))@dat.proc", "b"),
            ex("Membership", "(in (2 [1 2 3]))@dat.proc", "t"),
            ex(
                "zip and unzip",
                "(unzip (zip [1 2 3])@dat.proc)@dat.proc",
                "[1 2 3]",
            ),
            ex(
                "BLAKE3 hash of the canonical encoding, in hex",
                "(hash abc)@dat.proc",
                "`47bce6e2fd8960f80c7e4c7471559b5aa1f43c6eeae444ac646bc853fd5379c0`",
            ),
            ex(
                "Canonical encoded size in bytes",
                "(size [1 2])@dat.proc",
                "4",
            ),
            ex("Size in KiB, truncated", "(size.kb [1 2])@dat.proc", "0"),
            ex("To text", "(ser.str {a:[1 2]})@dat.proc", "`{a:[1 2]}`"),
            ex("From text", "{prs.str:`123`}@dat.proc", "123"),
            ex("To canonical bytes", "(ser.bytes 1)@dat.proc", "x\"0141\""),
            ex("From bytes", "(prs.bytes [0x01 0x41])@dat.proc", "1"),
        ],
        vec![
            Entry::new(
                "len",
                "Number of characters (Unicode scalars) of a str, elements of a list or map, \
                 bytes of a bytes; 2 for a pair.",
                &["(len s)", "(len [a …])", "{len:u}"],
                Arg::Required,
                Run::Plain(|_, a| len(a)),
            ),
            Entry::new(
                "sort",
                "A list or pair sorted (stably) by the unit total order: none < bool < byte < \
                 numbers (ints and decs by value) < str < bytes < ref < stream < pair < list \
                 < map.",
                &["(sort [a …])", "(sort (a b))"],
                Arg::Required,
                Run::Plain(|_, a| sort(a)),
            ),
            Entry::new(
                "rev",
                "A list or pair reversed; a str reversed by characters.",
                &["(rev [a …])", "(rev (a b))", "(rev s)"],
                Arg::Required,
                Run::Plain(|_, a| rev(a)),
            ),
            Entry::new(
                "enum",
                "A list of (index element) pairs, indexes from 0.",
                &["(enum [a …])", "(enum (a b))"],
                Arg::Required,
                Run::Plain(enumerate),
            ),
            Entry::new(
                "map",
                "Takes the stream apart instead of running it: evaluates data (and com), then \
                 sends (com e) to serv for each element e; keeps the shape of a list or pair, \
                 and the keys of a map. A call with no value gives -.",
                &[
                    "(map (com [e …])@serv)",
                    "(map (com (a b))@serv)",
                    "(map (com {k:v …})@serv)",
                ],
                Arg::Required,
                Run::Higher,
            ),
            Entry::new(
                "fold",
                "acc = x0; for each next x, acc = the value of (com (acc x))@serv; gives acc. \
                 An empty list is an arg.bad error.",
                &["(fold (com [x0 x1 …])@serv)", "(fold (com (x0 x1))@serv)"],
                Arg::Required,
                Run::Higher,
            ),
            Entry::new(
                "scn",
                "Like fold, but gives the list of accumulators after each step (x0 excluded).",
                &["(scn (com [x0 x1 …])@serv)"],
                Arg::Required,
                Run::Higher,
            ),
            Entry::new(
                "dup",
                "A list of n copies of u (n · units of u at most 10,000,000).",
                &["(dup (n u))"],
                Arg::Required,
                Run::Growing(|_, a| dup(a)),
            ),
            Entry::new(
                "cat",
                "Concatenation: two strs, two bytes or two lists; (u [l …]) prepends u, \
                 ([l …] u) appends it. A list of strs, of bytes or of lists is concatenated \
                 as a whole.",
                &[
                    "(cat (s1 s2))",
                    "(cat ([a] [b]))",
                    "(cat (u [l …]))",
                    "(cat ([l …] u))",
                    "(cat [x y …])",
                ],
                Arg::Required,
                Run::Plain(|_, a| cat(a)),
            ),
            Entry::new(
                "cat.zip",
                "A list of pairs (a b) as long as the longer list; the shorter list is cycled \
                 from its start. If either list is empty, the result is [].",
                &["(cat.zip ([a …] [b …]))"],
                Arg::Required,
                Run::Growing(|_, a| cat_zip(a)),
            ),
            Entry::new(
                "prod",
                "Cartesian product of two lists or pairs as a list of pairs, first list \
                 major.",
                &["(prod ([a …] [b …]))"],
                Arg::Required,
                Run::Growing(|_, a| prod(a)),
            ),
            Entry::new(
                "split",
                "Splits the str s at every occurrence of the str sep into a list of strs \
                 (adjacent separators give empty strs; an empty sep splits into characters).",
                &["(split (sep s))"],
                Arg::Required,
                Run::Plain(|_, a| split(a)),
            ),
            Entry::new(
                "split.uz",
                "Unzips a list of pairs into a pair of lists.",
                &["(split.uz [(a b) …])"],
                Arg::Required,
                Run::Plain(|_, a| split_uz(a)),
            ),
            Entry::new(
                "make",
                "Builds a pair from two elements, a list from a pair, list or map (a map \
                 gives its (key value) pairs), or a map from a pair or a list of pairs \
                 (repeated keys are an arg.bad error).",
                &[
                    "(make (pair [a b]))",
                    "(make (lst (a b)))",
                    "(make (lst {k:v …}))",
                    "(make (map (k v)))",
                    "(make (map [(k v) …]))",
                ],
                Arg::Required,
                Run::Plain(|_, a| make(a)),
            ),
            Entry::new(
                "keys",
                "The keys of a map, in order.",
                &["(keys {k:v …})"],
                Arg::Required,
                Run::Plain(keys),
            ),
            Entry::new(
                "take",
                "The first n elements of a list or pair (all if fewer), or characters of a \
                 str.",
                &["(take (n [a …]))", "(take (n s))"],
                Arg::Required,
                Run::Plain(take_cut),
            ),
            Entry::new(
                "cut",
                "A list or str without its first n elements or characters.",
                &["(cut (n [a …]))", "(cut (n s))"],
                Arg::Required,
                Run::Plain(take_cut),
            ),
            Entry::new(
                "grp",
                "Consecutive groups of n: pairs when n = 2, lists otherwise. n = 0 or a length \
                 that is not a multiple of n is an arg.bad error.",
                &["(grp (n [a …]))"],
                Arg::Required,
                Run::Plain(|_, a| grp(a)),
            ),
            Entry::new(
                "flat",
                "Flattens one level: list and pair elements are spliced in.",
                &["(flat [a [b c] (d e)])"],
                Arg::Required,
                Run::Plain(|_, a| flat(a)),
            ),
            Entry::new(
                "get",
                "The unit at a path in src. The path is literal (not resolved against the \
                 message); a str a.b works too. A missing path is a not.found error.",
                &["(get (@a.b src))", "(get (a.b src))"],
                Arg::Required,
                Run::LiteralPath(get),
            ),
            Entry::new(
                "fst",
                "The first element of a list or pair.",
                &["(fst [a …])"],
                Arg::Required,
                Run::Plain(fst_last),
            ),
            Entry::new(
                "last",
                "The last element of a list or pair.",
                &["(last [a …])"],
                Arg::Required,
                Run::Plain(fst_last),
            ),
            Entry::new(
                "in",
                "t if e is an element of the list or pair, a key of the map, or (for strs) a \
                 substring; else f.",
                &["(in (e [a …]))", "(in (k {k:v}))", "(in (sub s))"],
                Arg::Required,
                Run::Plain(|_, a| contains(a)),
            ),
            Entry::new(
                "zip",
                "base64 (standard, padded) of the gzip of the unit's canonical encoding, as a \
                 str (differs from vnix's bytes).",
                &["(zip u)"],
                Arg::Required,
                Run::Plain(|_, a| zip(a)),
            ),
            Entry::new(
                "unzip",
                "The unit back from a zip str. Bad base64, gzip or encodings are arg.bad; more \
                 than 64 MiB unpacked is a limit error.",
                &["(unzip s)"],
                Arg::Required,
                Run::Plain(|_, a| unzip(a)),
            ),
            Entry::new(
                "hash",
                "Lowercase hex BLAKE3 hash of the unit's canonical encoding (vnix used base64 \
                 SHA3).",
                &["(hash u)"],
                Arg::Required,
                Run::Plain(hash),
            ),
            Entry::new(
                "size",
                "Size of the unit's canonical binary encoding in bytes (vnix counted 32 bytes \
                 per node instead); .kb/.mb/.gb divide by 1024, 1024², 1024³, truncating.",
                &["(size u)", "(size.kb u)", "(size.mb u)", "(size.gb u)"],
                Arg::Required,
                Run::Plain(size),
            )
            .also(&["size.kb", "size.mb", "size.gb"]),
            Entry::new(
                "ser.str",
                "The canonical text of a unit, as a str.",
                &["(ser.str u)"],
                Arg::Required,
                Run::Plain(|_, a| Ok(Unit::from(plexus_units::to_text(a)))),
            ),
            Entry::new(
                "prs.str",
                "Parses units text (the whole text must be one unit); a parse error is an \
                 arg.bad error with its message.",
                &["(prs.str s)", "{prs.str:s}"],
                Arg::Required,
                Run::Plain(prs_str),
            ),
            Entry::new(
                "ser.bytes",
                "The canonical binary encoding of a unit, as bytes.",
                &["(ser.bytes u)"],
                Arg::Required,
                Run::Plain(|_, a| Ok(Unit::Bytes(plexus_units::encode(a).into()))),
            ),
            Entry::new(
                "prs.bytes",
                "Decodes a canonical encoding given as bytes or a list of byte units; invalid \
                 input is an arg.bad error.",
                &["(prs.bytes x\"…\")", "(prs.bytes [0x01 …])"],
                Arg::Required,
                Run::Plain(|_, a| prs_bytes(a)),
            ),
        ],
    )
}
