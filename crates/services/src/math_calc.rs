//! `math.calc`: exact arithmetic on ints of any size and exact decimals.
//!
//! A message is an expression: a number (its own value), `(op arg)` or `{op:arg …}` (extra map
//! fields are ignored). Unary ops take one operand; fold ops take `(a b)` or `[a b c …]` and
//! reduce left to right. Every operand may itself be an expression. Int with int gives an int;
//! an int with a dec gives a dec.
//!
//! Unlike vnix, nothing panics: division by zero is `math.div0`, a square root of a negative
//! or a logarithm of a non-positive number is `math.domain`, and results beyond about
//! [`MAX_DIGITS`] decimal digits are `limit` errors. Work on big numbers runs on Tokio's
//! blocking pool so it never stalls the async runtime.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Entry, Error, Example, Help, Meter, Outcome, Service, Table,
};
use plexus_units::{Dec, Int, Unit};

use crate::forms;

const NAME: &str = "math.calc";

/// Largest result, in decimal digits of an int or of a dec's mantissa (about; the check is
/// done on bits: [`MAX_BITS`]).
pub const MAX_DIGITS: u64 = plexus_units::Limits::WIRE.max_digits as u64;

/// [`MAX_DIGITS`] in bits (⌈10⁶ · log₂ 10⌉).
pub const MAX_BITS: u64 = 3_321_929;

// Every result must be deliverable: its magnitude fits what binary decoding accepts
// (`max_digits / 2 + 1` bytes).
const _: () = assert!(MAX_BITS.div_ceil(8) <= MAX_DIGITS / 2 + 1);

/// Largest `n` for `fac` (200000! has 973,351 digits).
pub const MAX_FAC: u64 = 200_000;

/// Significant digits of inexact dec results (div, sqrt, log, negative powers).
pub const PRECISION: u32 = 50;

/// Deepest nesting of expressions.
pub const MAX_NESTING: usize = 256;

/// Largest decimal exponent a dec may have (the binary encoding's limit).
const MAX_SCALE: i64 = plexus_units::binary::MAX_SCALE;

/// Estimated work (in bits) above which an operation runs on the blocking pool.
const BLOCKING_COST: u64 = 100_000;

/// The `math.calc` service.
pub struct MathCalc;

/// The service, ready to register.
pub fn service() -> Arc<dyn plexus_kernel::Service> {
    Arc::new(MathCalc)
}

impl Service for MathCalc {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match &msg {
                Unit::Int(_) | Unit::Dec(_) => return Ok(Some(msg)),
                _ => {}
            }
            let (entry, cmd) = TABLE.lookup(&msg)?;
            let out = eval_op(entry.run, cmd.arg()?, cx.meter()).await?;
            // Normalizing a huge dec converts it to decimal digits: not on the runtime.
            let cost = if out.is_dec() { out.cost() } else { 0 };
            Ok(Some(offload(cost, move || out.into_unit()).await?))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// A number while computing: an int, or the dec `mantissa × 10^-scale` (not necessarily
/// normalized).
#[derive(Clone, Debug)]
enum Num {
    Int(BigInt),
    Dec(BigInt, i64),
}

impl Num {
    fn from_unit(u: &Unit) -> Option<Num> {
        match u {
            Unit::Int(i) => Some(Num::Int(i.to_bigint())),
            Unit::Dec(d) => Some(Num::Dec(d.mantissa(), d.scale())),
            _ => None,
        }
    }

    fn into_unit(self) -> Result<Unit, Error> {
        match self {
            Num::Int(i) => {
                check_bits(&i)?;
                Ok(Unit::Int(Int::from(i)))
            }
            Num::Dec(m, s) => {
                check_bits(&m)?;
                check_scale(i128::from(s))?;
                Ok(Unit::Dec(Dec::new(m, s)))
            }
        }
    }

    /// The value as `(mantissa, scale)`.
    fn parts(&self) -> (&BigInt, i64) {
        match self {
            Num::Int(i) => (i, 0),
            Num::Dec(m, s) => (m, *s),
        }
    }

    fn is_dec(&self) -> bool {
        matches!(self, Num::Dec(..))
    }

    fn is_zero(&self) -> bool {
        self.parts().0.is_zero()
    }

    fn sign(&self) -> Sign {
        self.parts().0.sign()
    }

    /// A rough measure of the work numbers of this size cost, in bits.
    fn cost(&self) -> u64 {
        let (m, s) = self.parts();
        m.bits().saturating_add(s.unsigned_abs().saturating_mul(4))
    }

    fn describe(&self) -> String {
        match self.clone().into_unit() {
            Ok(u) => plexus_units::to_short(&u, 24),
            Err(_) => "a huge number".into(),
        }
    }
}

fn limit(message: impl Into<String>) -> Error {
    Error::new(code::LIMIT, message)
}

fn domain(message: impl Into<String>) -> Error {
    Error::new(code::DOMAIN, message)
}

fn div0(op: &str) -> Error {
    Error::new(code::DIVISION_BY_ZERO, format!("{op} by zero"))
}

fn too_big() -> Error {
    limit(format!(
        "the result would have more than about {MAX_DIGITS} digits"
    ))
}

fn check_bits(m: &BigInt) -> Result<(), Error> {
    if m.bits() > MAX_BITS {
        Err(too_big())
    } else {
        Ok(())
    }
}

fn check_scale(s: i128) -> Result<i64, Error> {
    if s.unsigned_abs() > MAX_SCALE.unsigned_abs() as u128 {
        return Err(limit(format!(
            "the result's decimal exponent is beyond ±{MAX_SCALE}"
        )));
    }
    i64::try_from(s).map_err(|_| limit("decimal exponent out of range"))
}

/// An upper bound (never below, at most one above) of the number of decimal digits of `|m|`.
fn digits_est(m: &BigUint) -> u64 {
    if m.is_zero() {
        return 1;
    }
    m.bits().saturating_mul(30_103) / 100_000 + 1
}

/// Exact number of decimal digits of `|m|` (for small numbers).
fn digits_exact(m: &BigUint) -> u64 {
    m.to_str_radix(10).len() as u64
}

/// 10^k, refusing exponents no sane computation needs.
fn pow10(k: u64) -> Result<BigUint, Error> {
    if k > 4 * MAX_DIGITS + 1_000 {
        return Err(too_big());
    }
    let k = u32::try_from(k).map_err(|_| too_big())?;
    Ok(BigUint::from(10u32).pow(k))
}

/// The two numbers as mantissas at a common scale, refusing alignments that would make a
/// number longer than the limit.
fn align(a: &Num, b: &Num) -> Result<(BigInt, BigInt, i64), Error> {
    let (ma, sa) = a.parts();
    let (mb, sb) = b.parts();
    let s = sa.max(sb);
    let shift_a = (i128::from(s) - i128::from(sa)) as u128;
    let shift_b = (i128::from(s) - i128::from(sb)) as u128;
    let lim = u128::from(MAX_DIGITS) + 2;
    let grow = |m: &BigInt, shift: u128| -> Result<BigInt, Error> {
        if shift == 0 || m.is_zero() {
            return Ok(m.clone());
        }
        if u128::from(digits_est(m.magnitude())) + shift > lim {
            return Err(too_big());
        }
        Ok(m * BigInt::from(pow10(shift as u64)?))
    };
    Ok((grow(ma, shift_a)?, grow(mb, shift_b)?, s))
}

fn add(a: &Num, b: &Num) -> Result<Num, Error> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Ok(Num::Int(x + y)),
        _ => {
            if a.is_zero() {
                let (m, s) = b.parts();
                return Ok(Num::Dec(m.clone(), s));
            }
            if b.is_zero() {
                let (m, s) = a.parts();
                return Ok(Num::Dec(m.clone(), s));
            }
            let (x, y, s) = align(a, b)?;
            Ok(Num::Dec(x + y, s))
        }
    }
}

fn neg(a: &Num) -> Num {
    match a {
        Num::Int(x) => Num::Int(-x),
        Num::Dec(m, s) => Num::Dec(-m, *s),
    }
}

fn sub(a: &Num, b: &Num) -> Result<Num, Error> {
    add(a, &neg(b))
}

fn mul(a: &Num, b: &Num) -> Result<Num, Error> {
    let (ma, sa) = a.parts();
    let (mb, sb) = b.parts();
    if !ma.is_zero() && !mb.is_zero() && ma.bits() + mb.bits() > MAX_BITS + 1 {
        return Err(too_big());
    }
    let m = ma * mb;
    check_bits(&m)?;
    if a.is_dec() || b.is_dec() {
        let s = check_scale(i128::from(sa) + i128::from(sb))?;
        Ok(Num::Dec(m, s))
    } else {
        Ok(Num::Int(m))
    }
}

/// `n / d` rounded to `sig` significant digits (half to even) as `(q, s)`: the value is about
/// `q × 10^-s`. `n` must not be zero, `d` not zero.
fn div_round(n: &BigInt, d: &BigInt, sig: u32) -> Result<(BigInt, i64), Error> {
    let negative = n.sign() != d.sign();
    let (nm, dm) = (n.magnitude(), d.magnitude());
    let est = digits_est(nm) as i64 - digits_est(dm) as i64;
    let want = u64::from(sig) + 1;
    let mut s = i64::from(sig) + 2 - est;
    let mut attempt = 0;
    let (q, rem_nonzero) = loop {
        let (q, r) = if s >= 0 {
            (nm * pow10(s as u64)?).div_rem(dm)
        } else {
            nm.div_rem(&(dm * pow10(s.unsigned_abs())?))
        };
        let qd = digits_exact(&q);
        if qd >= want || attempt >= 3 {
            break (q, !r.is_zero());
        }
        s += (want - qd) as i64;
        attempt += 1;
    };
    let qd = digits_exact(&q);
    let drop = qd.saturating_sub(u64::from(sig));
    let (q, s) = if drop == 0 {
        (q, s)
    } else {
        let p = pow10(drop)?;
        let (q2, r2) = q.div_rem(&p);
        let twice = &r2 << 1u32;
        let round_up = match twice.cmp(&p) {
            Ordering::Greater => true,
            Ordering::Equal => rem_nonzero || q2.is_odd(),
            Ordering::Less => false,
        };
        (if round_up { q2 + 1u32 } else { q2 }, s - drop as i64)
    };
    let q = BigInt::from_biguint(if negative { Sign::Minus } else { Sign::Plus }, q);
    Ok((q, s))
}

/// Removes the factors 5 from `m`, returning how many there were. Uses 5, 5², 5⁴, … so a
/// huge power of five costs a logarithmic number of divisions.
fn strip_fives(m: &mut BigUint) -> u64 {
    if m.is_zero() {
        return 0;
    }
    let mut powers = vec![BigUint::from(5u32)];
    while let Some(last) = powers.last() {
        if last.bits().saturating_mul(2) > m.bits() + 1 {
            break;
        }
        let next = last * last;
        powers.push(next);
    }
    let mut n = 0u64;
    // Greedy from the largest: the count left is always below twice the current power.
    for (t, p) in powers.iter().enumerate().rev() {
        if p.bits() > m.bits() {
            continue;
        }
        let (q, r) = m.div_rem(p);
        if r.is_zero() {
            *m = q;
            n += 1u64 << t;
        }
    }
    n
}

/// `(ma·10^-sa) / (mb·10^-sb)` as a dec: exact when the quotient terminates, otherwise
/// rounded to [`PRECISION`] significant digits.
fn dec_div(ma: &BigInt, sa: i64, mb: &BigInt, sb: i64) -> Result<Num, Error> {
    if ma.is_zero() {
        return Ok(Num::Dec(BigInt::zero(), 0));
    }
    let base = i128::from(sa) - i128::from(sb);
    let mut rest = mb.magnitude().clone();
    let twos = rest.trailing_zeros().unwrap_or(0);
    rest >>= twos;
    let fives = strip_fives(&mut rest);
    let rest = BigInt::from(rest);
    let (q, r) = ma.div_rem(&rest);
    if r.is_zero() {
        // ma/mb = q / (2^twos · 5^fives) = q · 2^(k-twos) · 5^(k-fives) / 10^k.
        let k = twos.max(fives);
        let extra = (k - twos) + (k - fives) * 7 / 3;
        if q.bits().saturating_add(extra) > MAX_BITS + 8 {
            return Err(too_big());
        }
        let two_pow = u32::try_from(k - twos).map_err(|_| too_big())?;
        let five_pow = u32::try_from(k - fives).map_err(|_| too_big())?;
        let mut m = q
            * BigInt::from(BigUint::from(2u32).pow(two_pow))
            * BigInt::from(BigUint::from(5u32).pow(five_pow));
        if mb.is_negative() {
            m = -m;
        }
        check_bits(&m)?;
        let s = check_scale(i128::from(k) + base)?;
        return Ok(Num::Dec(m, s));
    }
    let (q, s) = div_round(ma, mb, PRECISION)?;
    Ok(Num::Dec(q, check_scale(i128::from(s) + base)?))
}

fn div(a: &Num, b: &Num) -> Result<Num, Error> {
    if b.is_zero() {
        return Err(div0("division"));
    }
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Ok(Num::Int(x / y)),
        _ => {
            let (ma, sa) = a.parts();
            let (mb, sb) = b.parts();
            dec_div(ma, sa, mb, sb)
        }
    }
}

fn rem(a: &Num, b: &Num) -> Result<Num, Error> {
    if b.is_zero() {
        return Err(div0("remainder"));
    }
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Ok(Num::Int(x % y)),
        _ => {
            let (x, y, s) = align(a, b)?;
            Ok(Num::Dec(x % y, s))
        }
    }
}

fn pow(a: &Num, e: &Num) -> Result<Num, Error> {
    let Num::Int(e) = e else {
        return Err(Error::bad_argument(format!(
            "pow: the exponent must be an int, not {}",
            e.describe()
        )));
    };
    if e.is_negative() {
        if a.is_zero() {
            return Err(div0("pow: zero to a negative power is a division"));
        }
        let p = pow(a, &Num::Int(-e))?;
        let (mp, sp) = p.parts();
        return dec_div(&BigInt::one(), 0, mp, sp);
    }
    let (m, s) = a.parts();
    let one_like = m.magnitude().is_one() || m.is_zero();
    let ee = match e.to_u64() {
        Some(v) => v,
        None if one_like && s == 0 => u64::MAX,
        None => return Err(too_big()),
    };
    let make = |m: BigInt, s: i64| -> Num {
        if a.is_dec() {
            Num::Dec(m, s)
        } else {
            Num::Int(m)
        }
    };
    if ee == 0 {
        return Ok(make(BigInt::one(), 0));
    }
    if m.is_zero() {
        return Ok(make(BigInt::zero(), 0));
    }
    let scale = check_scale(i128::from(s) * i128::from(ee))?;
    let odd = e.is_odd();
    if m.magnitude().is_one() {
        let r = if m.is_negative() && odd {
            -BigInt::one()
        } else {
            BigInt::one()
        };
        return Ok(make(r, scale));
    }
    let est = (m.bits() - 1).saturating_mul(ee);
    if est > MAX_BITS {
        return Err(too_big());
    }
    let ee = u32::try_from(ee).map_err(|_| too_big())?;
    let r = m.pow(ee);
    check_bits(&r)?;
    Ok(make(r, scale))
}

fn fac(a: &Num, meter: &Meter) -> Result<Num, Error> {
    let Num::Int(n) = a else {
        return Err(Error::bad_argument(format!(
            "fac takes an int, not {}",
            a.describe()
        )));
    };
    if n.is_negative() {
        return Err(domain(format!("fac of a negative number ({n})")));
    }
    let n = match n.to_u64() {
        Some(n) if n <= MAX_FAC => n,
        _ => {
            return Err(limit(format!(
                "fac is limited to n ≤ {MAX_FAC} (results of about {MAX_DIGITS} digits)"
            )))
        }
    };
    Ok(Num::Int(BigInt::from(product(1, n, meter)?)))
}

/// The product of `lo..=hi`, by splitting so the big multiplications are balanced; stops
/// with `cancelled` once the call is cancelled.
fn product(lo: u64, hi: u64, meter: &Meter) -> Result<BigUint, Error> {
    if lo > hi {
        return Ok(BigUint::one());
    }
    if hi - lo < 16 {
        meter.check()?;
        let mut p = BigUint::one();
        for k in lo..=hi {
            p *= k;
        }
        return Ok(p);
    }
    let mid = lo + (hi - lo) / 2;
    Ok(product(lo, mid, meter)? * product(mid + 1, hi, meter)?)
}

fn sqrt(a: &Num) -> Result<Num, Error> {
    if a.sign() == Sign::Minus {
        return Err(domain(format!(
            "sqrt of a negative number ({})",
            a.describe()
        )));
    }
    match a {
        Num::Int(i) => Ok(Num::Int(i.sqrt())),
        Num::Dec(m, s) => {
            if m.is_zero() {
                return Ok(Num::Dec(BigInt::zero(), 0));
            }
            let (mut m, mut s) = (m.magnitude().clone(), i128::from(*s));
            if s.rem_euclid(2) == 1 {
                m *= 10u32;
                s += 1;
            }
            let half = s / 2;
            let target = 2 * (u64::from(PRECISION) + 4);
            let dm = digits_est(&m);
            if dm > target + 2 && !maybe_square(&m) {
                // Not a perfect square: the root of the leading digits rounds the same way.
                let t = (dm - target) / 2;
                let lead = &m / pow10(2 * t)?;
                let r = lead.sqrt();
                return round_root(r, half - i128::from(t));
            }
            let e = if dm < target {
                (target - dm).div_ceil(2)
            } else {
                0
            };
            let big = m * pow10(2 * e)?;
            let r = big.sqrt();
            if &r * &r == big {
                let s = check_scale(half + i128::from(e))?;
                return Ok(Num::Dec(BigInt::from(r), s));
            }
            round_root(r, half + i128::from(e))
        }
    }
}

/// Rounds the irrational root whose floor is `r × 10^-s` (`r` with enough digits): the root
/// lies strictly between `r` and `r + 1`, where no rounding boundary falls, so rounding
/// `r + ½` rounds the root correctly.
fn round_root(r: BigUint, s: i128) -> Result<Num, Error> {
    let n = BigInt::from((r << 1u32) + 1u32);
    let (q, qs) = div_round(&n, &BigInt::from(2u32), PRECISION)?;
    Ok(Num::Dec(q, check_scale(s + i128::from(qs))?))
}

/// False when `m` is certainly not a perfect square (quadratic residues modulo 64, 63, 65
/// and 11).
fn maybe_square(m: &BigUint) -> bool {
    const MODULUS: u32 = 64 * 63 * 65 * 11;
    let r = (m % MODULUS).to_u32().unwrap_or(0);
    [64u32, 63, 65, 11]
        .iter()
        .all(|&k| (0..k).any(|x| (x * x) % k == r % k))
}

// ---------------------------------------------------------------------------------------------
// Logarithms

/// Fractional digits of the fixed-point computation of `ln` away from 1.
const LN_FIXED: u32 = 130;
/// Relative digits of the computation of `ln` near 1.
const LN_RELATIVE: u32 = 80;

/// `atanh(num/den) · 10^w`, for `0 ≤ num/den ≤ 1/3`.
fn atanh_fixed(num: &BigInt, den: &BigInt, w: u32) -> Result<BigInt, Error> {
    let one = BigInt::from(pow10(u64::from(w))?);
    let y = num * &one / den;
    let y2 = &y * &y / &one;
    let mut term = y.clone();
    let mut sum = y;
    let mut k = 1u32;
    loop {
        term = term * &y2 / &one;
        if term.is_zero() || k > 10 * w {
            break;
        }
        sum += &term / BigInt::from(2 * k + 1);
        k += 1;
    }
    Ok(sum)
}

/// `ln(m · 10^-s)` for `m > 0`, as `(q, t)` meaning `q × 10^-t`, with at least
/// [`LN_RELATIVE`] correct significant digits; `q` is zero exactly when the argument is 1.
fn ln_parts(m: &BigInt, s: i64) -> Result<(BigInt, i64), Error> {
    let lead = digits_est(m.magnitude()) as i128 - i128::from(s);
    if (0..=2).contains(&lead) {
        // Maybe near 1: compute with relative precision (no cancellation).
        let (n, d) = if s >= 0 {
            (m.clone(), BigInt::from(pow10(s as u64)?))
        } else {
            (m * BigInt::from(pow10(s.unsigned_abs())?), BigInt::one())
        };
        let two_n = &n * 2u32;
        let two_d = &d * 2u32;
        if two_n >= d && n <= two_d {
            let num = &n - &d;
            if num.is_zero() {
                return Ok((BigInt::zero(), 0));
            }
            let den = &n + &d;
            let w2 = LN_RELATIVE + 10;
            let t = i64::from(LN_RELATIVE) + digits_est(den.magnitude()) as i64
                - digits_est(num.magnitude()) as i64
                + 1;
            let t = t.max(0);
            let y_rel = &num * BigInt::from(pow10(t as u64)?) / &den;
            let one = BigInt::from(pow10(u64::from(w2))?);
            let y2 = &num * &num * &one / (&den * &den);
            let mut term = one.clone();
            let mut sum = one.clone();
            let mut k = 1u32;
            loop {
                term = term * &y2 / &one;
                if term.is_zero() || k > 10 * w2 {
                    break;
                }
                sum += &term / BigInt::from(2 * k + 1);
                k += 1;
            }
            let q = y_rel * sum * 2u32;
            return Ok((q, t + i64::from(w2)));
        }
    }
    // Away from 1: ln(m) = ln(m / 2^k) + k·ln 2, and ln(10^-s) = -s·ln 10.
    let w = LN_FIXED;
    let k = m.bits() - 1;
    let pk = BigInt::one() << k;
    let reduced = atanh_fixed(&(m - &pk), &(m + &pk), w)? * 2u32;
    let ln2 = atanh_fixed(&BigInt::one(), &BigInt::from(3u32), w)? * 2u32;
    let ln10 = &ln2 * 3u32 + atanh_fixed(&BigInt::one(), &BigInt::from(9u32), w)? * 2u32;
    let q = reduced + &ln2 * BigInt::from(k) - ln10 * BigInt::from(s);
    Ok((q, i64::from(w)))
}

fn positive_parts(x: &Num, what: &str) -> Result<(BigInt, i64), Error> {
    if x.sign() != Sign::Plus {
        return Err(domain(format!(
            "log of {what} {} (it must be above 0)",
            x.describe()
        )));
    }
    let (m, s) = x.parts();
    Ok((m.clone(), s))
}

/// Natural logarithm of `x`, or the logarithm in `base`, rounded to [`PRECISION`] digits.
fn log(x: &Num, base: Option<&Num>) -> Result<Num, Error> {
    let (mx, sx) = positive_parts(x, "the number")?;
    let (lx, tx) = ln_parts(&mx, sx)?;
    let (num, den, shift) = match base {
        None => (lx, BigInt::one(), i128::from(tx)),
        Some(b) => {
            let (mb, sb) = positive_parts(b, "the base")?;
            let (lb, tb) = ln_parts(&mb, sb)?;
            if lb.is_zero() {
                return Err(domain("log in base 1"));
            }
            (lx, lb, i128::from(tx) - i128::from(tb))
        }
    };
    if num.is_zero() {
        return Ok(Num::Dec(BigInt::zero(), 0));
    }
    let (q, s) = div_round(&num, &den, PRECISION)?;
    Ok(Num::Dec(q, check_scale(i128::from(s) + shift)?))
}

fn min_max(a: Num, b: Num, want: Ordering) -> Result<Num, Error> {
    let ua = a.clone().into_unit()?;
    let ub = b.clone().into_unit()?;
    Ok(if ub.cmp(&ua) == want { b } else { a })
}

// ---------------------------------------------------------------------------------------------
// Expressions

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Neg,
    Abs,
    Inc,
    Dec,
    Sqr,
    Sqrt,
    Fac,
    Log,
    Sum,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Min,
    Max,
}

impl Op {
    fn from_name(name: &str) -> Option<Op> {
        TABLE.get(name).map(|e| e.run)
    }

    fn name(self) -> &'static str {
        TABLE
            .entries()
            .iter()
            .find(|e| e.run == self)
            .map_or("?", |e| e.command.name)
    }

    fn is_fold(self) -> bool {
        matches!(
            self,
            Op::Sum | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow | Op::Min | Op::Max
        )
    }
}

/// Runs `f` on the blocking pool when `cost` is high (and a Tokio runtime is there).
async fn offload<T, F>(cost: u64, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    if cost >= BLOCKING_COST {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return handle
                .spawn_blocking(f)
                .await
                .map_err(|e| Error::internal(format!("math.calc worker failed: {e}")))?;
        }
    }
    f()
}

fn unary(op: Op, x: &Num, meter: &Meter) -> Result<Num, Error> {
    match op {
        Op::Neg => Ok(neg(x)),
        Op::Abs => Ok(if x.sign() == Sign::Minus {
            neg(x)
        } else {
            x.clone()
        }),
        Op::Inc => add(x, &Num::Int(BigInt::one())),
        Op::Dec => sub(x, &Num::Int(BigInt::one())),
        Op::Sqr => mul(x, x),
        Op::Sqrt => sqrt(x),
        Op::Fac => fac(x, meter),
        Op::Log => log(x, None),
        _ => Err(Error::internal("not a unary op")),
    }
}

fn binary(op: Op, a: Num, b: Num) -> Result<Num, Error> {
    match op {
        Op::Sum => add(&a, &b),
        Op::Sub => sub(&a, &b),
        Op::Mul => mul(&a, &b),
        Op::Div => div(&a, &b),
        Op::Mod => rem(&a, &b),
        Op::Pow => pow(&a, &b),
        Op::Min => min_max(a, b, Ordering::Less),
        Op::Max => min_max(a, b, Ordering::Greater),
        _ => Err(Error::internal("not a fold op")),
    }
}

fn unary_cost(op: Op, x: &Num) -> u64 {
    match op {
        Op::Fac => match x {
            Num::Int(n) => n.to_u64().unwrap_or(u64::MAX).saturating_mul(18),
            Num::Dec(..) => 0,
        },
        Op::Sqr => x.cost().saturating_mul(2),
        _ => x.cost(),
    }
}

fn binary_cost(op: Op, a: &Num, b: &Num) -> u64 {
    match op {
        Op::Pow => {
            let e = match b {
                Num::Int(e) => e.to_u64().unwrap_or(u64::MAX),
                Num::Dec(..) => 0,
            };
            a.cost().saturating_mul(e)
        }
        _ => a.cost().saturating_add(b.cost()),
    }
}

/// One step of an expression compiled to postfix order: evaluating a nested unit with async
/// recursion would cost a deep stack, so expressions are flattened first and run by a loop.
enum Instr {
    /// Push a number.
    Push(Num),
    /// Replace the top number by `op` of it.
    Unary(Op),
    /// Replace the base and the number on top by the logarithm.
    LogBase,
    /// Replace the top `n` numbers by their fold with `op`, left to right.
    Fold(Op, usize),
}

/// Compiles an operand: a number or a nested expression.
fn compile_operand(u: &Unit, depth: usize, out: &mut Vec<Instr>) -> Result<(), Error> {
    if let Some(n) = Num::from_unit(u) {
        out.push(Instr::Push(n));
        return Ok(());
    }
    if let Some(cmd) = forms::command(u) {
        if let Some(op) = Op::from_name(cmd.name) {
            return compile_op(op, cmd.arg()?, depth + 1, out);
        }
    }
    Err(Error::bad_argument(format!(
        "{} is not a number or an expression (an int, a dec, (op arg) or {{op:arg}})",
        plexus_units::to_short(u, 24)
    )))
}

/// Compiles `(op arg)`.
fn compile_op(op: Op, arg: &Unit, depth: usize, out: &mut Vec<Instr>) -> Result<(), Error> {
    if depth > MAX_NESTING {
        return Err(limit(format!(
            "expressions nested deeper than {MAX_NESTING}"
        )));
    }
    if op == Op::Log {
        if let Unit::Pair(p) = arg {
            if p.0.as_str().is_none() {
                compile_operand(&p.0, depth, out)?;
                compile_operand(&p.1, depth, out)?;
                out.push(Instr::LogBase);
                return Ok(());
            }
        }
    }
    if !op.is_fold() {
        compile_operand(arg, depth, out)?;
        out.push(Instr::Unary(op));
        return Ok(());
    }
    let operands: Vec<&Unit> = match arg {
        Unit::Pair(p) => vec![&p.0, &p.1],
        Unit::List(l) => l.iter().collect(),
        other => {
            return Err(Error::bad_argument(format!(
                "{} takes a pair (a b) or a list [a b …] of operands, not {}",
                op.name(),
                plexus_units::to_short(other, 24)
            )))
        }
    };
    if operands.is_empty() && !matches!(op, Op::Sum | Op::Mul) {
        return Err(Error::bad_argument(format!(
            "{} needs at least one operand",
            op.name()
        )));
    }
    for u in &operands {
        compile_operand(u, depth, out)?;
    }
    out.push(Instr::Fold(op, operands.len()));
    Ok(())
}

/// Runs compiled code, offloading expensive steps to the blocking pool.
async fn execute(code: Vec<Instr>, meter: &Meter) -> Result<Num, Error> {
    let lost = || Error::internal("math.calc: malformed expression code");
    let mut stack: Vec<Num> = Vec::new();
    for ins in code {
        // Each operation is bounded (about a million digits); a cancelled call stops between
        // them, and inside fac.
        meter.check()?;
        let v = match ins {
            Instr::Push(n) => n,
            Instr::Unary(op) => {
                let x = stack.pop().ok_or_else(lost)?;
                let cost = unary_cost(op, &x);
                let meter = meter.clone();
                offload(cost, move || unary(op, &x, &meter)).await?
            }
            Instr::LogBase => {
                let x = stack.pop().ok_or_else(lost)?;
                let b = stack.pop().ok_or_else(lost)?;
                let cost = b.cost().saturating_add(x.cost());
                offload(cost, move || log(&x, Some(&b))).await?
            }
            Instr::Fold(op, n) => {
                let at = stack.len().checked_sub(n).ok_or_else(lost)?;
                let mut it = stack.split_off(at).into_iter();
                match it.next() {
                    None if op == Op::Mul => Num::Int(BigInt::one()),
                    None => Num::Int(BigInt::zero()),
                    Some(first) => {
                        let mut acc = first;
                        for x in it {
                            let cost = binary_cost(op, &acc, &x);
                            acc = offload(cost, move || binary(op, acc, x)).await?;
                        }
                        acc
                    }
                }
            }
        };
        stack.push(v);
    }
    stack.pop().ok_or_else(lost)
}

/// The value of `(op arg)`.
async fn eval_op(op: Op, arg: &Unit, meter: &Meter) -> Result<Num, Error> {
    let mut code = Vec::new();
    compile_op(op, arg, 0, &mut code)?;
    execute(code, meter).await
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

/// The commands: every operator, in the order of the manual.
static TABLE: LazyLock<Table<Op>> = LazyLock::new(table);

fn table() -> Table<Op> {
    Table::new(
        NAME,
        "Exact arithmetic on ints of any size and exact decimals. An expression is a \
               number, (op arg) or {op:arg}; operands may be expressions themselves. Int with \
               int gives an int, anything with a dec gives a dec. Inexact dec results (div, \
               sqrt, log, negative pow) are rounded half to even to 50 significant digits. \
               Errors: math.div0 (division or mod by zero), math.domain (sqrt of a negative, \
               log of a number ≤ 0 or in base 1, fac of a negative), limit (results over about \
               1,000,000 digits, fac over 200000, nesting over 256), arg.bad (an operand that \
               is not a number).",
        vec![
            ex("A number is its own value", "7@math.calc", "7"),
            ex("Add two ints", "(sum (1 2))@math.calc", "3"),
            ex(
                "An int with a dec gives a dec",
                "(sum (1.5 2))@math.calc",
                "3.5",
            ),
            ex(
                "Nested expressions, pair and map forms",
                "{mul:[2 {inc:4} (sub (10 3))]}@math.calc",
                "70",
            ),
            ex("Fold left to right", "(sub [10 1 2])@math.calc", "7"),
            ex(
                "Ints of any size",
                "(mul (99999999999999999999 99999999999999999999))@math.calc",
                "9999999999999999999800000000000000000001",
            ),
            ex(
                "Int division truncates toward zero",
                "(div (-7 2))@math.calc",
                "-3",
            ),
            ex(
                "Dec division is exact when it terminates",
                "(div (1.0 8))@math.calc",
                "0.125",
            ),
            ex(
                "…otherwise rounded to 50 significant digits",
                "(div (2.0 3))@math.calc",
                "0.66666666666666666666666666666666666666666666666667",
            ),
            ex(
                "mod takes the dividend's sign",
                "(mod (-7 3))@math.calc",
                "-1",
            ),
            ex("mod on decs", "(mod (7.5 2))@math.calc", "1.5"),
            ex(
                "pow",
                "(pow (2 100))@math.calc",
                "1267650600228229401496703205376",
            ),
            ex(
                "A negative exponent gives a dec",
                "(pow (2 -3))@math.calc",
                "0.125",
            ),
            ex("pow of a dec", "(pow (1.5 2))@math.calc", "2.25"),
            ex(
                "Factorial",
                "(fac 25)@math.calc",
                "15511210043330985984000000",
            ),
            ex("Int square root is the floor", "(sqrt 17)@math.calc", "4"),
            ex("Dec square root, exact", "(sqrt 2.25)@math.calc", "1.5"),
            ex(
                "Dec square root, rounded",
                "(sqrt 2.0)@math.calc",
                "1.4142135623730950488016887242096980785696718753769",
            ),
            ex(
                "Natural logarithm",
                "(log 2)@math.calc",
                "0.69314718055994530941723212145817656807550013436026",
            ),
            ex(
                "Logarithm in base b: (log (b x))",
                "(log (2 1024))@math.calc",
                "10.0",
            ),
            ex("neg", "(neg 5)@math.calc", "-5"),
            ex("abs", "{abs:-2.5}@math.calc", "2.5"),
            ex("inc", "(inc 41)@math.calc", "42"),
            ex("dec", "(dec 0.5)@math.calc", "-0.5"),
            ex("sqr", "(sqr -12)@math.calc", "144"),
            ex(
                "min keeps the operand as it is",
                "(min [3 1.5 2])@math.calc",
                "1.5",
            ),
            ex("max", "(max (3 10))@math.calc", "10"),
        ],
        vec![
            Entry::new(
                "neg",
                "Negation: -x.",
                &["(neg x)", "{neg:x}"],
                Arg::Required,
                Op::Neg,
            ),
            Entry::new(
                "abs",
                "Absolute value.",
                &["(abs x)", "{abs:x}"],
                Arg::Required,
                Op::Abs,
            ),
            Entry::new(
                "inc",
                "x + 1.",
                &["(inc x)", "{inc:x}"],
                Arg::Required,
                Op::Inc,
            ),
            Entry::new(
                "dec",
                "x - 1.",
                &["(dec x)", "{dec:x}"],
                Arg::Required,
                Op::Dec,
            ),
            Entry::new(
                "sqr",
                "x².",
                &["(sqr x)", "{sqr:x}"],
                Arg::Required,
                Op::Sqr,
            ),
            Entry::new(
                "sqrt",
                "Square root. Of an int: the int floor of the root. Of a dec: exact when the \
                 root is a terminating decimal, otherwise rounded to 50 significant digits \
                 (pass 2.0 rather than 2 for the real root). A negative x is math.domain.",
                &["(sqrt x)", "{sqrt:x}"],
                Arg::Required,
                Op::Sqrt,
            ),
            Entry::new(
                "fac",
                "Factorial n! of an int 0 ≤ n ≤ 200000 (a negative n is math.domain, a larger \
                 one a limit error).",
                &["(fac n)", "{fac:n}"],
                Arg::Required,
                Op::Fac,
            ),
            Entry::new(
                "log",
                "Logarithm as a dec rounded to 50 significant digits: natural with one \
                 operand, in base b with a pair (b x) whose first element is not an op name. \
                 x ≤ 0, b ≤ 0 and b = 1 are math.domain.",
                &["(log x)", "(log (b x))", "{log:x}", "{log:(b x)}"],
                Arg::Required,
                Op::Log,
            ),
            Entry::new(
                "sum",
                "a + b + …, left to right; [] gives 0.",
                &["(sum (a b))", "(sum [a b …])", "{sum:[a b …]}"],
                Arg::Required,
                Op::Sum,
            ),
            Entry::new(
                "sub",
                "a - b - …, left to right.",
                &["(sub (a b))", "(sub [a b …])", "{sub:[a b …]}"],
                Arg::Required,
                Op::Sub,
            ),
            Entry::new(
                "mul",
                "a · b · …, left to right; [] gives 1.",
                &["(mul (a b))", "(mul [a b …])", "{mul:[a b …]}"],
                Arg::Required,
                Op::Mul,
            ),
            Entry::new(
                "div",
                "a / b / …, left to right. Ints: truncated toward zero (-7/2 = -3). With a \
                 dec: exact when the quotient terminates, otherwise rounded half to even to 50 \
                 significant digits. Division by zero is math.div0.",
                &["(div (a b))", "(div [a b …])", "{div:[a b …]}"],
                Arg::Required,
                Op::Div,
            ),
            Entry::new(
                "mod",
                "Remainder of the truncating division: it has the sign of the dividend \
                 (a = (div a b)·b + (mod a b) for ints; -7 mod 3 = -1, 7 mod -3 = 1). Works \
                 on decs exactly. By zero: math.div0.",
                &["(mod (a b))", "(mod [a b …])", "{mod:[a b …]}"],
                Arg::Required,
                Op::Mod,
            ),
            Entry::new(
                "pow",
                "a to the power b, left to right; b must be an int. A negative b gives the \
                 reciprocal as a dec (like div on decs); 0 to a negative power is math.div0; \
                 pow (x 0) is 1. Results over about 1,000,000 digits are a limit error.",
                &["(pow (a b))", "(pow [a b …])", "{pow:[a b …]}"],
                Arg::Required,
                Op::Pow,
            ),
            Entry::new(
                "min",
                "The smallest operand, returned unchanged (an int before an equal dec).",
                &["(min (a b))", "(min [a b …])", "{min:[a b …]}"],
                Arg::Required,
                Op::Min,
            ),
            Entry::new(
                "max",
                "The largest operand, returned unchanged.",
                &["(max (a b))", "(max [a b …])", "{max:[a b …]}"],
                Arg::Required,
                Op::Max,
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fac_stops_once_cancelled() {
        let meter = Meter::new(1 << 30);
        assert!(fac(&Num::Int(BigInt::from(100)), &meter).is_ok());
        meter.cancel();
        let e = fac(&Num::Int(BigInt::from(100_000)), &meter).unwrap_err();
        assert_eq!(e.code(), code::CANCELLED);
    }
}
