//! `dat.gen`: data generators — inclusive ranges of ints and bytes, random ints and bytes.

use std::sync::{Arc, LazyLock};

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Signed, ToPrimitive};
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Entry, Error, Example, Help, Meter, Outcome, Service, Table,
};
use plexus_units::{Int, Unit};
use rand::Rng;

use crate::forms::{self, Cmd};

const NAME: &str = "dat.gen";

/// Most elements a generated list may have.
pub const MAX_LEN: usize = 10_000_000;

/// Largest range bound for random ints, in bits (a range wider than 2^65536 is refused).
const MAX_RANDOM_BITS: u64 = 65_536;

/// The `dat.gen` service.
pub struct DatGen;

/// The service, ready to register.
pub fn service() -> Arc<dyn plexus_kernel::Service> {
    Arc::new(DatGen)
}

/// How a command generates its value.
/// Builds a generator's unit, charging `Meter` for it as it goes.
type Make = fn(&Cmd<'_>, &Meter) -> Result<Unit, Error>;

struct Gen {
    make: Make,
    /// Whether it can make long lists (built off the async runtime when it has an argument).
    long: bool,
}

impl Service for DatGen {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (entry, c) = TABLE.lookup(&msg)?;
            let make = entry.run.make;
            let meter = cx.meter().clone();
            if entry.run.long && c.arg.is_some() {
                // Lists of up to MAX_LEN elements: build them off the async runtime.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    return handle
                        .spawn_blocking(move || generate(make, &msg, &meter))
                        .await
                        .map_err(|e| Error::internal(format!("dat.gen worker failed: {e}")))?;
                }
            }
            generate(make, &msg, &meter)
        })
    }
}

/// How many elements a generator builds between two checks for cancellation (an atomic
/// load). With 65,536 a cancelled list of 200-bit random ints went on for up to half a
/// second of CPU in a debug build before it stopped.
const CHECK_EVERY: usize = 1 << 10;

/// Charges a list of `len` units each owning up to `heap` bytes, before building it.
fn charge_list(meter: &Meter, len: usize, heap: u64) -> Result<(), Error> {
    let each = std::mem::size_of::<Unit>() as u64 + heap;
    meter.charge((len as u64).saturating_mul(each))
}

/// Bytes a big int of `bits` bits owns beyond its inline form.
fn int_heap(bits: u64) -> u64 {
    if bits < 64 {
        0
    } else {
        bits.div_ceil(8)
    }
}

/// Builds `len` elements with `next`, checking for cancellation as it goes.
fn build(meter: &Meter, len: usize, mut next: impl FnMut() -> Unit) -> Result<Unit, Error> {
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        if i % CHECK_EVERY == 0 {
            meter.check()?;
        }
        out.push(next());
    }
    Ok(Unit::List(out))
}

fn generate(make: Make, msg: &Unit, meter: &Meter) -> Outcome {
    let c = forms::command(msg).ok_or_else(|| Error::unknown_command(NAME, msg))?;
    make(&c, meter).map(Some)
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_argument(message)
}

fn too_long(what: &str) -> Error {
    Error::new(
        code::LIMIT,
        format!("{what}: the list would have more than {MAX_LEN} elements"),
    )
}

fn short(u: &Unit) -> String {
    plexus_units::to_short(u, 24)
}

fn bounds<'u>(name: &str, what: &str, u: &'u Unit) -> Result<(&'u Unit, &'u Unit), Error> {
    match u {
        Unit::Pair(p) => Ok((&p.0, &p.1)),
        other => Err(bad(format!(
            "{name} takes a pair ({what}), not {}",
            short(other)
        ))),
    }
}

fn big(name: &str, u: &Unit) -> Result<BigInt, Error> {
    u.as_int()
        .map(Int::to_bigint)
        .ok_or_else(|| bad(format!("{name}: {} is not an int", short(u))))
}

fn byte(name: &str, u: &Unit) -> Result<u8, Error> {
    match u {
        Unit::Byte(b) => Ok(*b),
        other => Err(bad(format!(
            "{name}: {} is not a byte (0x00 to 0xff)",
            short(other)
        ))),
    }
}

fn lin_int(c: &Cmd<'_>, meter: &Meter) -> Result<Unit, Error> {
    let (a, b) = bounds("lin.int", "a b", c.arg()?)?;
    let (a, b) = (big("lin.int", a)?, big("lin.int", b)?);
    let step = match c.opt("step") {
        None => BigInt::one(),
        Some(s) => {
            let s = big("lin.int: step", s)?;
            if !s.is_positive() {
                return Err(bad("lin.int: step must be at least 1"));
            }
            s
        }
    };
    let span = (&b - &a).abs();
    let len = (&span / &step + 1u32)
        .to_usize()
        .filter(|n| *n <= MAX_LEN)
        .ok_or_else(|| too_long("lin.int"))?;
    charge_list(meter, len, int_heap(a.bits().max(b.bits())))?;
    let step = if b < a { -step } else { step };
    let mut x = a;
    build(meter, len, || {
        let u = Unit::Int(Int::from(x.clone()));
        x += &step;
        u
    })
}

fn lin_byte(arg: &Unit) -> Result<Unit, Error> {
    let (a, b) = bounds("lin.byte", "a b", arg)?;
    let (a, b) = (byte("lin.byte", a)?, byte("lin.byte", b)?);
    Ok(Unit::List(if a <= b {
        (a..=b).map(Unit::Byte).collect()
    } else {
        (b..=a).rev().map(Unit::Byte).collect()
    }))
}

/// A uniformly random integer in `[0, n)`, `n > 0`.
fn below<R: Rng>(rng: &mut R, n: &BigUint) -> BigUint {
    let bits = n.bits();
    let bytes = bits.div_ceil(8) as usize;
    let top_mask = if bits.is_multiple_of(8) {
        0xff
    } else {
        (1u8 << (bits % 8)) - 1
    };
    let mut buf = vec![0u8; bytes];
    loop {
        rng.fill(buf.as_mut_slice());
        if let Some(last) = buf.last_mut() {
            *last &= top_mask;
        }
        let x = BigUint::from_bytes_le(&buf);
        if &x < n {
            return x;
        }
    }
}

/// A random-int generator for the bounds `(a b)` in either order.
struct IntRange {
    low: BigInt,
    width: BigUint,
}

impl IntRange {
    fn new(u: &Unit) -> Result<IntRange, Error> {
        let (a, b) = bounds("rnd.int", "a b", u)?;
        let (a, b) = (big("rnd.int", a)?, big("rnd.int", b)?);
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let width = (&high - &low + 1u32).magnitude().clone();
        if width.bits() > MAX_RANDOM_BITS {
            return Err(Error::new(
                code::LIMIT,
                format!("rnd.int: the range is wider than 2^{MAX_RANDOM_BITS}"),
            ));
        }
        Ok(IntRange { low, width })
    }

    fn sample<R: Rng>(&self, rng: &mut R) -> Unit {
        let x = &self.low + BigInt::from_biguint(Sign::Plus, below(rng, &self.width));
        Unit::Int(Int::from(x))
    }
}

/// `n` in `(n spec)`: a count below the list limit.
fn list_len(name: &str, n: &Unit) -> Result<usize, Error> {
    let n = forms::count(n, &format!("{name}: n"))?;
    if n > MAX_LEN {
        return Err(too_long(name));
    }
    Ok(n)
}

fn rnd_int(arg: Option<&Unit>, meter: &Meter) -> Result<Unit, Error> {
    let mut rng = rand::thread_rng();
    let Some(arg) = arg else {
        return Ok(Unit::int(rng.gen::<i64>()));
    };
    if let Unit::Pair(p) = arg {
        if let Unit::Pair(_) = &p.1 {
            let n = list_len("rnd.int", &p.0)?;
            let range = IntRange::new(&p.1)?;
            let widest = range.low.bits().max(range.width.bits()) + 1;
            charge_list(meter, n, int_heap(widest))?;
            return build(meter, n, || range.sample(&mut rng));
        }
    }
    let range = IntRange::new(arg)?;
    Ok(range.sample(&mut rng))
}

fn rnd_byte(arg: Option<&Unit>, meter: &Meter) -> Result<Unit, Error> {
    let mut rng = rand::thread_rng();
    let Some(arg) = arg else {
        return Ok(Unit::Byte(rng.gen()));
    };
    match arg {
        Unit::Int(_) => {
            let n = list_len("rnd.byte", arg)?;
            charge_list(meter, n, 0)?;
            build(meter, n, || Unit::Byte(rng.gen()))
        }
        Unit::Pair(p) if matches!(p.0, Unit::Int(_)) => {
            let n = list_len("rnd.byte", &p.0)?;
            let (lo, hi) = byte_range(&p.1)?;
            charge_list(meter, n, 0)?;
            build(meter, n, || Unit::Byte(rng.gen_range(lo..=hi)))
        }
        Unit::Pair(_) => {
            let (lo, hi) = byte_range(arg)?;
            Ok(Unit::Byte(rng.gen_range(lo..=hi)))
        }
        other => Err(bad(format!(
            "rnd.byte takes n, (a b) or (n (a b)), not {}",
            short(other)
        ))),
    }
}

fn byte_range(u: &Unit) -> Result<(u8, u8), Error> {
    let (a, b) = bounds("rnd.byte", "a b", u)?;
    let (a, b) = (byte("rnd.byte", a)?, byte("rnd.byte", b)?);
    Ok((a.min(b), a.max(b)))
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

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Gen>> = LazyLock::new(table);

fn table() -> Table<Gen> {
    Table::new(
        NAME,
        "Data generators: inclusive ranges of ints (any size) and bytes, random ints and \
               bytes. Generated lists hold at most 10,000,000 elements (limit error).",
        vec![
            ex(
                "An inclusive range",
                "(lin.int (-2 2))@dat.gen",
                "[-2 -1 0 1 2]",
            ),
            ex("Counting down", "(lin.int (3 1))@dat.gen", "[3 2 1]"),
            ex("With a step", "{lin.int:(0 10) step:5}@dat.gen", "[0 5 10]"),
            ex(
                "A range of bytes",
                "(lin.byte (0x0e 0x11))@dat.gen",
                "[0x0e 0x0f 0x10 0x11]",
            ),
            ex("A random int in [a, b]", "(rnd.int (7 7))@dat.gen", "7"),
            ex(
                "n random ints in [a, b]",
                "(rnd.int (3 (1 1)))@dat.gen",
                "[1 1 1]",
            ),
            ex(
                "A random byte in [a, b]",
                "(rnd.byte (0x2a 0x2a))@dat.gen",
                "0x2a",
            ),
            ex(
                "n random bytes in [a, b]",
                "(rnd.byte (2 (0xff 0xff)))@dat.gen",
                "[0xff 0xff]",
            ),
        ],
        vec![
            Entry::new(
                "lin.int",
                "The ints from a to b inclusive, counting down when a > b; step (map form, an \
                 int ≥ 1, default 1) is the distance between elements; the list stops at the \
                 last element not past b.",
                &["(lin.int (a b))", "{lin.int:(a b) step:n}"],
                Arg::Required,
                Gen {
                    make: lin_int,
                    long: true,
                },
            ),
            Entry::new(
                "lin.byte",
                "The bytes from a to b inclusive, counting down when a > b.",
                &["(lin.byte (a b))"],
                Arg::Required,
                Gen {
                    make: |c, _| lin_byte(c.arg()?),
                    long: false,
                },
            ),
            Entry::new(
                "rnd.int",
                "Uniformly random ints (thread-local CSPRNG): bare, any 64-bit int; (a b), an \
                 int between a and b inclusive (either order, any size up to 2^65536 wide); \
                 (n (a b)), a list of n of them.",
                &["rnd.int", "(rnd.int (a b))", "(rnd.int (n (a b)))"],
                Arg::Optional,
                Gen {
                    make: |c, m| rnd_int(c.arg, m),
                    long: true,
                },
            ),
            Entry::new(
                "rnd.byte",
                "Uniformly random bytes: bare, one byte; n, a list of n bytes; (a b), a byte \
                 between the bytes a and b inclusive; (n (a b)), a list of n of them.",
                &[
                    "rnd.byte",
                    "(rnd.byte n)",
                    "(rnd.byte (a b))",
                    "(rnd.byte (n (a b)))",
                ],
                Arg::Optional,
                Gen {
                    make: |c, m| rnd_byte(c.arg, m),
                    long: true,
                },
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generators_stop_once_cancelled() {
        let meter = Meter::new(1 << 30);
        meter.cancel();
        for msg in [
            "(lin.int (1 100000))",
            "(rnd.int (100000 (1 9)))",
            "(rnd.byte 100000)",
        ] {
            let msg = plexus_units::parse(msg).unwrap();
            let (entry, _) = TABLE.lookup(&msg).unwrap();
            let e = generate(entry.run.make, &msg, &meter).unwrap_err();
            assert_eq!(e.code(), code::CANCELLED, "{msg}");
        }
    }
}
