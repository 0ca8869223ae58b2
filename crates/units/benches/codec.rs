//! Codec benchmarks: our binary encode/decode and text parse/print against `serde_json::Value`
//! and `ciborium::Value` on equivalent documents. The corpus is generated deterministically
//! below and described in `docs/benchmarks.md`.
//!
//! Run: `cargo bench -p plexus-units --bench codec -- --warm-up-time 1 --measurement-time 2`.
//! Criterion runs first; then a summary measured in the same process (median of several
//! rounds, `std::time::Instant`) prints MB/s and the ratios against the targets. To profile one
//! operation alone, run the bench executable with `CODEC_LOOP=case:op:iterations` (see `main`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive};
use plexus_units::{
    dec_to_string, decode, decode_bytes, decode_ref, encode, parse, to_text, Arena, Dec, Int, Map,
    Unit,
};

// ---------------------------------------------------------------------------------------------
// Deterministic corpus
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a tiny deterministic generator, so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
];
const LAST: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Wirth",
];
const TAGS: &[&str] = &[
    "admin", "beta", "ops", "dev", "eu-west", "us-east", "vip", "trial", "legacy", "mobile",
];
const WORDS: &[&str] = &[
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "unit", "stream", "node",
    "message", "service", "calc",
];

fn map(entries: Vec<(&str, Unit)>) -> Unit {
    Unit::Map(
        Map::from_entries(
            entries
                .into_iter()
                .map(|(k, v)| (Unit::str(k), v))
                .collect(),
        )
        .unwrap(),
    )
}

fn dec(mantissa: i64, scale: i64) -> Unit {
    Unit::Dec(Dec::new(BigInt::from(mantissa), scale))
}

fn sentence(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// (a) A service call as the λ shell sends it.
fn small_call() -> Unit {
    parse("{mul:[2 {inc:4} (sub (10 3))]}@math.calc").unwrap()
}

/// (a) An 8-field map of mixed scalars.
fn small_map() -> Unit {
    parse("{id:48213 name:`Ada Lovelace` active:t score:97.25 code:0x2a parent:- delta:-17 home:@users.ada}")
        .unwrap()
}

/// (b) A list of 5,000 records, about 1 MB of text.
fn large_doc() -> Unit {
    let mut rng = Rng(1);
    let records = (0..5000)
        .map(|i| {
            let name = if rng.below(3) == 0 {
                rng.pick(FIRST).to_owned()
            } else {
                format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
            };
            let tags = (0..rng.below(5))
                .map(|_| Unit::str(rng.pick(TAGS)))
                .collect();
            let words = 3 + rng.below(8) as usize;
            let mut note = sentence(&mut rng, words);
            if rng.below(10) == 0 {
                note.push_str("\n\"quoted\" and `ticked`");
            }
            map(vec![
                ("id", Unit::int(100_000 + i)),
                ("name", Unit::from(name)),
                ("tags", Unit::List(tags)),
                ("score", dec(rng.below(1_000_000) as i64 - 200_000, 3)),
                ("active", Unit::Bool(rng.below(2) == 0)),
                (
                    "meta",
                    map(vec![
                        (
                            "created",
                            Unit::int(1_600_000_000 + rng.below(100_000_000) as i64),
                        ),
                        ("region", Unit::str(rng.pick(TAGS))),
                        ("ratio", dec(rng.below(10_000) as i64, 4)),
                        ("note", Unit::from(note)),
                    ]),
                ),
            ])
        })
        .collect();
    Unit::List(records)
}

/// (c) 1,000 ints of 40 to 120 decimal digits, either sign.
fn big_ints() -> Unit {
    let mut rng = Rng(2);
    let ints = (0..1000)
        .map(|_| {
            let len = 40 + rng.below(81) as usize;
            let mut digits = String::with_capacity(len + 1);
            if rng.below(2) == 0 {
                digits.push('-');
            }
            digits.push(char::from(b'1' + rng.below(9) as u8));
            for _ in 1..len {
                digits.push(char::from(b'0' + rng.below(10) as u8));
            }
            Unit::Int(Int::from(digits.parse::<BigInt>().unwrap()))
        })
        .collect();
    Unit::List(ints)
}

/// (d) 100 strings of 10 KB; every fourth has characters that need escapes, and non-ASCII.
fn long_strings() -> Unit {
    let mut rng = Rng(3);
    let strings = (0..100)
        .map(|i| {
            let mut s = String::with_capacity(10_300);
            while s.len() < 10_240 {
                s.push_str(rng.pick(WORDS));
                if i % 4 == 0 {
                    s.push_str(match rng.below(8) {
                        0 => "\n",
                        1 => "\t",
                        2 => "`",
                        3 => "\\",
                        4 => "\"",
                        5 => "é",
                        6 => "😀",
                        _ => " ",
                    });
                } else {
                    s.push(' ');
                }
            }
            Unit::from(s)
        })
        .collect();
    Unit::List(strings)
}

/// (e) One 1 MiB byte string.
fn blob() -> Unit {
    let mut rng = Rng(4);
    let data: Vec<u8> = (0..1 << 17)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    Unit::Bytes(Bytes::from(data))
}

// ---------------------------------------------------------------------------------------------
// Equivalent JSON and CBOR
// ---------------------------------------------------------------------------------------------

/// JSON text of `u`: ints and decs as JSON numbers (any size), bytes as a base64 string, maps
/// with string keys as objects (others as arrays of pairs), pairs as arrays, refs as strings,
/// streams as `{"$stream": {...}}`.
fn json_of(u: &Unit, out: &mut String) {
    match u {
        Unit::None => out.push_str("null"),
        Unit::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Unit::Byte(b) => out.push_str(&b.to_string()),
        Unit::Int(i) => out.push_str(&i.to_string()),
        Unit::Dec(d) => out.push_str(&dec_to_string(&d.mantissa(), d.scale())),
        Unit::Str(s) => out.push_str(&serde_json::to_string(&**s).unwrap()),
        Unit::Bytes(b) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push('"');
        }
        Unit::Ref(_) => out.push_str(&serde_json::to_string(&to_text(u)).unwrap()),
        Unit::Stream(s) => {
            out.push_str("{\"$stream\":{\"unit\":");
            json_of(&s.unit, out);
            out.push_str(",\"service\":");
            out.push_str(&serde_json::to_string(s.service()).unwrap());
            out.push_str("}}");
        }
        Unit::Pair(p) => {
            out.push('[');
            json_of(&p.0, out);
            out.push(',');
            json_of(&p.1, out);
            out.push(']');
        }
        Unit::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_of(e, out);
            }
            out.push(']');
        }
        Unit::Map(m) => {
            let object = m.keys().all(|k| matches!(k, Unit::Str(_)));
            out.push(if object { '{' } else { '[' });
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if object {
                    json_of(k, out);
                    out.push(':');
                } else {
                    out.push('[');
                    json_of(k, out);
                    out.push(',');
                }
                json_of(v, out);
                if !object {
                    out.push(']');
                }
            }
            out.push(if object { '}' } else { ']' });
        }
    }
}

fn cbor_int(i: &BigInt) -> ciborium::Value {
    if let Some(v) = i
        .to_i128()
        .and_then(|v| ciborium::value::Integer::try_from(v).ok())
    {
        return ciborium::Value::Integer(v);
    }
    // RFC 8949 bignums: tag 2 for n, tag 3 for -1 - n, big-endian magnitude.
    if i.is_negative() {
        let n = -(i + 1u8);
        ciborium::Value::Tag(3, Box::new(ciborium::Value::Bytes(n.to_bytes_be().1)))
    } else {
        ciborium::Value::Tag(2, Box::new(ciborium::Value::Bytes(i.to_bytes_be().1)))
    }
}

/// The CBOR value of `u`: big ints as bignums (tags 2/3), decs as decimal fractions (tag 4),
/// bytes as a byte string, maps with their keys as they are.
fn cbor_of(u: &Unit) -> ciborium::Value {
    use ciborium::Value as C;
    match u {
        Unit::None => C::Null,
        Unit::Bool(b) => C::Bool(*b),
        Unit::Byte(b) => C::Integer((*b).into()),
        Unit::Int(i) => match i.to_i64() {
            Some(v) => C::Integer(v.into()),
            None => cbor_int(&i.to_bigint()),
        },
        Unit::Dec(d) => C::Tag(
            4,
            Box::new(C::Array(vec![
                C::Integer((-d.scale()).into()),
                cbor_int(&d.mantissa()),
            ])),
        ),
        Unit::Str(s) => C::Text(s.to_string()),
        Unit::Bytes(b) => C::Bytes(b.to_vec()),
        Unit::Ref(_) => C::Text(to_text(u)),
        Unit::Stream(s) => C::Map(vec![
            (C::Text("unit".into()), cbor_of(&s.unit)),
            (C::Text("service".into()), C::Text(s.service().into())),
        ]),
        Unit::Pair(p) => C::Array(vec![cbor_of(&p.0), cbor_of(&p.1)]),
        Unit::List(l) => C::Array(l.iter().map(cbor_of).collect()),
        Unit::Map(m) => C::Map(m.iter().map(|(k, v)| (cbor_of(k), cbor_of(v))).collect()),
    }
}

/// One corpus entry in all its forms.
struct Case {
    name: &'static str,
    unit: Unit,
    binary: Bytes,
    /// `binary` decoded: its strings share `binary`'s buffer, as every decoded tree's do.
    decoded: Unit,
    text: String,
    json: String,
    cbor: Vec<u8>,
}

impl Case {
    fn new(name: &'static str, unit: Unit) -> Case {
        let binary = Bytes::from(encode(&unit));
        let text = to_text(&unit);
        assert_eq!(parse(&text).unwrap(), unit, "{name}: text round trip");
        let decoded = decode_bytes(binary.clone()).unwrap();
        assert_eq!(decoded, unit, "{name}: binary round trip");
        let mut json = String::new();
        json_of(&unit, &mut json);
        serde_json::from_str::<serde_json::Value>(&json).expect("valid JSON");
        let mut cbor = Vec::new();
        ciborium::into_writer(&cbor_of(&unit), &mut cbor).unwrap();
        Case {
            name,
            unit,
            binary,
            decoded,
            text,
            json,
            cbor,
        }
    }
}

fn corpus() -> Vec<Case> {
    vec![
        Case::new("small_call", small_call()),
        Case::new("small_map", small_map()),
        Case::new("large_doc", large_doc()),
        Case::new("big_ints", big_ints()),
        Case::new("long_strings", long_strings()),
        Case::new("bytes_1mb", blob()),
    ]
}

// ---------------------------------------------------------------------------------------------
// The operations
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// The arena `decode_ref` decodes into, reset after each document as a reader of many
    /// messages would.
    static ARENA: std::cell::RefCell<Arena> = std::cell::RefCell::new(Arena::new());
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Encode,
    DecodeBytes,
    DecodeSlice,
    DecodeRef,
    Parse,
    Print,
    SerdeJson,
    Ciborium,
    /// Clones a decoded unit and drops the clone: the allocations and reference counts of the
    /// tree that decoding builds, without reading any input. No decoder can take less.
    Tree,
}

const OPS: [Op; 9] = [
    Op::Encode,
    Op::DecodeBytes,
    Op::DecodeSlice,
    Op::DecodeRef,
    Op::Parse,
    Op::Print,
    Op::SerdeJson,
    Op::Ciborium,
    Op::Tree,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Encode => "binary encode",
            Op::DecodeBytes => "binary decode_bytes",
            Op::DecodeSlice => "binary decode(&[u8])",
            Op::DecodeRef => "binary decode_ref",
            Op::Parse => "text parse",
            Op::Print => "text print",
            Op::SerdeJson => "serde_json::Value parse",
            Op::Ciborium => "ciborium::Value decode",
            Op::Tree => "unit clone + drop",
        }
    }

    /// A short name, for `CODEC_LOOP`.
    fn key(self) -> &'static str {
        match self {
            Op::Encode => "encode",
            Op::DecodeBytes => "decode_bytes",
            Op::DecodeSlice => "decode",
            Op::DecodeRef => "decode_ref",
            Op::Parse => "parse",
            Op::Print => "print",
            Op::SerdeJson => "serde_json",
            Op::Ciborium => "ciborium",
            Op::Tree => "tree",
        }
    }

    /// Bytes read or written by one run, for MB/s.
    fn size(self, c: &Case) -> usize {
        match self {
            Op::Encode | Op::DecodeBytes | Op::DecodeSlice | Op::DecodeRef | Op::Tree => {
                c.binary.len()
            }
            Op::Parse | Op::Print => c.text.len(),
            Op::SerdeJson => c.json.len(),
            Op::Ciborium => c.cbor.len(),
        }
    }

    fn run(self, c: &Case) {
        match self {
            Op::Encode => {
                black_box(encode(black_box(&c.unit)));
            }
            Op::DecodeBytes => {
                black_box(decode_bytes(black_box(c.binary.clone())).unwrap());
            }
            Op::DecodeSlice => {
                black_box(decode(black_box(&c.binary[..])).unwrap());
            }
            Op::DecodeRef => ARENA.with_borrow_mut(|arena| {
                black_box(decode_ref(black_box(&c.binary[..]), arena).unwrap());
                arena.reset();
            }),
            Op::Parse => {
                black_box(parse(black_box(&c.text)).unwrap());
            }
            Op::Print => {
                black_box(to_text(black_box(&c.unit)));
            }
            Op::SerdeJson => {
                black_box(serde_json::from_str::<serde_json::Value>(black_box(&c.json)).unwrap());
            }
            Op::Ciborium => {
                black_box(
                    ciborium::from_reader::<ciborium::Value, _>(black_box(&c.cbor[..])).unwrap(),
                );
            }
            Op::Tree => {
                black_box(black_box(&c.decoded).clone());
            }
        }
    }
}

fn criterion_benches(c: &mut Criterion, corpus: &[Case]) {
    for case in corpus {
        let mut group = c.benchmark_group(case.name);
        for op in OPS {
            group.throughput(Throughput::Bytes(op.size(case) as u64));
            group.bench_function(op.name(), |b| b.iter(|| op.run(case)));
        }
        group.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------------

/// Rounds of the summary; each op runs for at least ~20 ms per round.
const ROUNDS: usize = 9;

/// Median time of one run of each op on `case`. The rounds interleave the ops (round 1 of
/// every op, then round 2, ...), so load from other processes on a shared machine hits ours
/// and the reference parsers alike and the ratios stay meaningful.
fn median_times(case: &Case) -> Vec<(Op, Duration)> {
    let iters: Vec<u32> = OPS
        .iter()
        .map(|&op| {
            let start = Instant::now();
            op.run(case);
            let once = start.elapsed().max(Duration::from_nanos(20));
            (Duration::from_millis(20).as_nanos() / once.as_nanos()).clamp(1, 1_000_000) as u32
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(ROUNDS); OPS.len()];
    for _ in 0..ROUNDS {
        for (k, &op) in OPS.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..iters[k] {
                op.run(case);
            }
            samples[k].push(start.elapsed() / iters[k]);
        }
    }
    OPS.iter()
        .zip(samples)
        .map(|(&op, mut s)| {
            s.sort();
            (op, s[s.len() / 2])
        })
        .collect()
}

fn fmt_time(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// One case's line of the targets table.
struct Ratios {
    case: &'static str,
    /// serde_json's time over `decode_ref`'s.
    borrowed: f64,
    /// serde_json's time over `decode_bytes`'s.
    shared: f64,
    /// serde_json's time over `decode`'s.
    copied: f64,
    /// ciborium's time over `decode_bytes`'s.
    vs_cbor: f64,
    /// Text parse time over serde_json's.
    parse: f64,
    /// serde_json's time over `unit clone + drop`'s.
    ceiling: f64,
}

fn summary(corpus: &[Case]) {
    println!("\n== Summary (median of 9 interleaved rounds, std::time::Instant; MB/s = 10^6 bytes of that op's input or output per second)\n");
    println!(
        "{:<13} {:<26} {:>10} {:>11} {:>9}",
        "case", "operation", "bytes", "time", "MB/s"
    );
    let mut ratios = Vec::new();
    for case in corpus {
        let times = median_times(case);
        for &(op, t) in &times {
            let size = op.size(case);
            let mbs = size as f64 / t.as_secs_f64() / 1e6;
            println!(
                "{:<13} {:<26} {:>10} {:>11} {:>9.1}",
                case.name,
                op.name(),
                size,
                fmt_time(t),
                mbs
            );
        }
        println!();
        let t = |op: Op| {
            times
                .iter()
                .find(|(o, _)| *o == op)
                .unwrap()
                .1
                .as_secs_f64()
        };
        ratios.push(Ratios {
            case: case.name,
            borrowed: t(Op::SerdeJson) / t(Op::DecodeRef),
            shared: t(Op::SerdeJson) / t(Op::DecodeBytes),
            copied: t(Op::SerdeJson) / t(Op::DecodeSlice),
            vs_cbor: t(Op::Ciborium) / t(Op::DecodeBytes),
            parse: t(Op::Parse) / t(Op::SerdeJson),
            ceiling: t(Op::SerdeJson) / t(Op::Tree),
        });
    }
    let mark = |ok: bool| if ok { "ok  " } else { "MISS" };
    println!("== Targets (speedup = their time / our time)\n");
    println!(
        "{:<13} {:>24} {:>24} {:>22} {:>24} {:>26} {:>24}",
        "case",
        "decode_ref vs serde_json",
        "decode_bytes vs serde_json",
        "decode(&[u8]) vs serde",
        "decode_bytes vs ciborium",
        "text parse time / serde_json",
        "clone + drop vs serde_json"
    );
    println!(
        "{:<13} {:>24} {:>24} {:>22} {:>24} {:>26} {:>24}",
        "",
        "(borrowed; need ≥ 3×)",
        "(owned Unit; info)",
        "(info)",
        "(need ≥ 1×)",
        "(need ≤ 1.5)",
        "(owned decode's ceiling)"
    );
    for r in ratios {
        println!(
            "{:<13} {:>18.2}× {} {:>23.2}× {:>21.2}× {:>18.2}× {} {:>20.2} {} {:>23.2}×",
            r.case,
            r.borrowed,
            mark(r.borrowed >= 3.0),
            r.shared,
            r.copied,
            r.vs_cbor,
            mark(r.vs_cbor >= 1.0),
            r.parse,
            mark(r.parse <= 1.5),
            r.ceiling
        );
    }
    println!("\nDocument sizes (bytes):");
    println!(
        "{:<13} {:>10} {:>10} {:>10} {:>10}",
        "case", "binary", "text", "JSON", "CBOR"
    );
    for c in corpus {
        println!(
            "{:<13} {:>10} {:>10} {:>10} {:>10}",
            c.name,
            c.binary.len(),
            c.text.len(),
            c.json.len(),
            c.cbor.len()
        );
    }
}

fn main() {
    let corpus = corpus();
    // For profiling: `CODEC_LOOP=case:op:iterations` runs one operation (op as in
    // `Op::key`) that many times and nothing else, e.g. under `perf record`.
    if let Ok(spec) = std::env::var("CODEC_LOOP") {
        let parts: Vec<&str> = spec.split(':').collect();
        assert_eq!(parts.len(), 3, "CODEC_LOOP=case:op:iterations");
        let case = corpus
            .iter()
            .find(|c| c.name == parts[0])
            .expect("CODEC_LOOP: unknown case");
        let op = *OPS
            .iter()
            .find(|o| o.key() == parts[1])
            .expect("CODEC_LOOP: unknown op (encode, decode_bytes, decode, decode_ref, parse, print, serde_json, ciborium, tree)");
        let iterations: u64 = parts[2].parse().expect("CODEC_LOOP: iterations");
        let started = Instant::now();
        for _ in 0..iterations {
            op.run(case);
        }
        let per_op = started.elapsed().as_nanos() / u128::from(iterations.max(1));
        eprintln!("{} {}: {per_op} ns per run", case.name, op.key());
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &corpus);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the timed
    // summary there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    summary(&corpus);
}
