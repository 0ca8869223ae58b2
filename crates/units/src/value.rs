//! The unit data model: [`Unit`] and the types it is built from.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use bigdecimal::BigDecimal;
use bytes::{Bytes, BytesMut};
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{Signed, ToPrimitive};

/// A UTF-8 string that shares its storage: cloning and slicing do not copy.
pub type Str = bytestring::ByteString;

/// One Plexus value.
///
/// Equality is deep and structural. Two units of different types are never equal (the int `1`
/// is not the dec `1.0`); maps are *ordered*: they are equal when they hold equal entries in the
/// same order (see [`Map`]). [`Ord`] is a total order consistent with equality (see
/// [`Unit::cmp`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Unit {
    /// The absence of a value, written `-`.
    #[default]
    None,
    /// `t` or `f`.
    Bool(bool),
    /// One byte, written `0x1f`.
    Byte(u8),
    /// An integer of any size.
    Int(Int),
    /// An exact decimal number of any size and precision.
    Dec(Dec),
    /// A UTF-8 string.
    Str(Str),
    /// A binary blob, written `x"00ff"`.
    Bytes(Bytes),
    /// A path into a unit, written `@a.b.0`.
    Ref(Path),
    /// A lazy service call `unit@service[:node]`.
    Stream(Box<Stream>),
    /// Exactly two units, written `(a b)`.
    Pair(Box<(Unit, Unit)>),
    /// A sequence, written `[a b c]`.
    List(Vec<Unit>),
    /// Unique keys to values in insertion order, written `{k:v}`.
    Map(Map),
}

/// The type of a unit, without its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// [`Unit::None`]
    None,
    /// [`Unit::Bool`]
    Bool,
    /// [`Unit::Byte`]
    Byte,
    /// [`Unit::Int`] and [`Unit::Dec`] share a rank in the ordering, but not a kind.
    Int,
    /// [`Unit::Dec`]
    Dec,
    /// [`Unit::Str`]
    Str,
    /// [`Unit::Bytes`]
    Bytes,
    /// [`Unit::Ref`]
    Ref,
    /// [`Unit::Stream`]
    Stream,
    /// [`Unit::Pair`]
    Pair,
    /// [`Unit::List`]
    List,
    /// [`Unit::Map`]
    Map,
}

impl Kind {
    /// The lower-case name used in error messages and by `plx unit check`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Bool => "bool",
            Kind::Byte => "byte",
            Kind::Int => "int",
            Kind::Dec => "dec",
            Kind::Str => "str",
            Kind::Bytes => "bytes",
            Kind::Ref => "ref",
            Kind::Stream => "stream",
            Kind::Pair => "pair",
            Kind::List => "list",
            Kind::Map => "map",
        }
    }

    /// Rank in the total order: numbers of both kinds share one rank.
    fn rank(self) -> u8 {
        match self {
            Kind::None => 0,
            Kind::Bool => 1,
            Kind::Byte => 2,
            Kind::Int | Kind::Dec => 3,
            Kind::Str => 4,
            Kind::Bytes => 5,
            Kind::Ref => 6,
            Kind::Stream => 7,
            Kind::Pair => 8,
            Kind::List => 9,
            Kind::Map => 10,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Unit {
    /// About how many bytes this unit occupies in memory: its inline size plus what it owns on
    /// the heap (elements, text, bytes, number magnitudes). Memory budgets count units with it,
    /// so it walks the unit once and allocates nothing.
    pub fn footprint(&self) -> u64 {
        let own = std::mem::size_of::<Unit>() as u64;
        let heap = match self {
            Unit::None | Unit::Bool(_) | Unit::Byte(_) => 0,
            Unit::Int(i) => i.heap_bytes() as u64,
            Unit::Dec(d) => d.heap_bytes() as u64,
            Unit::Str(s) => s.len() as u64,
            Unit::Bytes(b) => b.len() as u64,
            Unit::Ref(p) => p.segments().iter().map(|s| s.len() as u64 + 16).sum(),
            Unit::Stream(s) => {
                s.unit.footprint() + (s.service().len() + s.node().map_or(0, str::len)) as u64
            }
            Unit::Pair(p) => p.0.footprint() + p.1.footprint(),
            Unit::List(l) => l.iter().map(Unit::footprint).sum(),
            Unit::Map(m) => m.iter().map(|(k, v)| k.footprint() + v.footprint()).sum(),
        };
        own + heap
    }

    /// This unit's type.
    pub fn kind(&self) -> Kind {
        match self {
            Unit::None => Kind::None,
            Unit::Bool(_) => Kind::Bool,
            Unit::Byte(_) => Kind::Byte,
            Unit::Int(_) => Kind::Int,
            Unit::Dec(_) => Kind::Dec,
            Unit::Str(_) => Kind::Str,
            Unit::Bytes(_) => Kind::Bytes,
            Unit::Ref(_) => Kind::Ref,
            Unit::Stream(_) => Kind::Stream,
            Unit::Pair(_) => Kind::Pair,
            Unit::List(_) => Kind::List,
            Unit::Map(_) => Kind::Map,
        }
    }

    /// A string unit.
    pub fn str(s: &str) -> Unit {
        Unit::Str(Str::from(s))
    }

    /// An integer unit.
    pub fn int(i: i64) -> Unit {
        Unit::Int(Int::from(i))
    }

    /// A pair unit.
    pub fn pair(a: Unit, b: Unit) -> Unit {
        Unit::Pair(Box::new((a, b)))
    }

    /// A stream `unit@service`, unpinned.
    pub fn stream(unit: Unit, service: &str) -> Result<Unit, NameError> {
        Ok(Unit::Stream(Box::new(Stream::new(unit, service, None)?)))
    }

    /// The string, if this is a [`Unit::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Unit::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a [`Unit::Int`].
    pub fn as_int(&self) -> Option<&Int> {
        match self {
            Unit::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The map, if this is a [`Unit::Map`].
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Unit::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The list, if this is a [`Unit::List`].
    pub fn as_list(&self) -> Option<&[Unit]> {
        match self {
            Unit::List(l) => Some(l),
            _ => None,
        }
    }

    /// The deepest nesting of pairs, lists, maps and streams (a scalar has depth 0).
    pub fn depth(&self) -> usize {
        match self {
            Unit::Stream(s) => 1 + s.unit.depth(),
            Unit::Pair(p) => 1 + p.0.depth().max(p.1.depth()),
            Unit::List(l) => 1 + l.iter().map(Unit::depth).max().unwrap_or(0),
            Unit::Map(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Follows `path` into this unit: a pair accepts `0`/`1`, a list a decimal index, a map the
    /// entry whose key is the string equal to the segment.
    pub fn find(&self, path: &Path) -> Option<&Unit> {
        let mut at = self;
        for seg in path.segments() {
            at = match at {
                Unit::Pair(p) => match &**seg {
                    "0" => &p.0,
                    "1" => &p.1,
                    _ => return None,
                },
                Unit::List(l) => l.get(seg.parse::<usize>().ok()?)?,
                Unit::Map(m) => m.get_str(seg)?,
                _ => return None,
            }
        }
        Some(at)
    }
}

impl From<bool> for Unit {
    fn from(b: bool) -> Unit {
        Unit::Bool(b)
    }
}

impl From<i64> for Unit {
    fn from(i: i64) -> Unit {
        Unit::int(i)
    }
}

impl From<&str> for Unit {
    fn from(s: &str) -> Unit {
        Unit::str(s)
    }
}

impl From<String> for Unit {
    fn from(s: String) -> Unit {
        Unit::Str(Str::from(s))
    }
}

impl From<Vec<Unit>> for Unit {
    fn from(l: Vec<Unit>) -> Unit {
        Unit::List(l)
    }
}

impl From<Map> for Unit {
    fn from(m: Map) -> Unit {
        Unit::Map(m)
    }
}

impl Ord for Unit {
    /// A total order: first by type (none < bool < byte < numbers < str < bytes < ref < stream <
    /// pair < list < map), then by value. Ints and decs compare by exact numeric value with each
    /// other (`1 < 1.5 < 2`); an int and a dec of equal value order the int first. Strings and
    /// bytes compare lexicographically by bytes (for strings, that is code point order);
    /// containers compare element by element, then by length.
    fn cmp(&self, other: &Unit) -> Ordering {
        let (ka, kb) = (self.kind(), other.kind());
        if ka.rank() != kb.rank() {
            return ka.rank().cmp(&kb.rank());
        }
        match (self, other) {
            (Unit::None, Unit::None) => Ordering::Equal,
            (Unit::Bool(a), Unit::Bool(b)) => a.cmp(b),
            (Unit::Byte(a), Unit::Byte(b)) => a.cmp(b),
            (Unit::Int(a), Unit::Int(b)) => a.cmp(b),
            (Unit::Dec(a), Unit::Dec(b)) => a.cmp(b),
            (Unit::Int(a), Unit::Dec(b)) => {
                Dec::cmp_parts(&a.to_bigint(), 0, &b.mantissa(), b.scale()).then(Ordering::Less)
            }
            (Unit::Dec(a), Unit::Int(b)) => {
                Dec::cmp_parts(&a.mantissa(), a.scale(), &b.to_bigint(), 0).then(Ordering::Greater)
            }
            (Unit::Str(a), Unit::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Unit::Bytes(a), Unit::Bytes(b)) => a.cmp(b),
            (Unit::Ref(a), Unit::Ref(b)) => a.cmp(b),
            (Unit::Stream(a), Unit::Stream(b)) => a.cmp(b),
            (Unit::Pair(a), Unit::Pair(b)) => a.cmp(b),
            (Unit::List(a), Unit::List(b)) => a.cmp(b),
            (Unit::Map(a), Unit::Map(b)) => a.entries.cmp(&b.entries),
            // Same rank implies same variant, except the int/dec cases handled above.
            _ => ka.cmp(&kb),
        }
    }
}

impl PartialOrd for Unit {
    fn partial_cmp(&self, other: &Unit) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An integer of any size, stored inline when it fits an `i64`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Int(IntRepr);

// Invariant: `Big` only holds values outside the i64 range, and its magnitude has no zero high
// byte, so each value has one representation and the derived equality and hashing are correct.
#[derive(Clone, PartialEq, Eq, Hash)]
enum IntRepr {
    Small(i64),
    /// The magnitude as little-endian bytes: the payload of the binary encoding's big-int
    /// forms. A decoded big int shares the input buffer instead of building a bignum; the
    /// bignum is made when asked for ([`Int::to_bigint`]).
    Big {
        negative: bool,
        magnitude: Bytes,
    },
}

impl Int {
    /// The value as an `i64`, if it fits.
    pub fn to_i64(&self) -> Option<i64> {
        match &self.0 {
            IntRepr::Small(i) => Some(*i),
            IntRepr::Big { .. } => None,
        }
    }

    /// The value as a big integer.
    pub fn to_bigint(&self) -> BigInt {
        match &self.0 {
            IntRepr::Small(i) => BigInt::from(*i),
            IntRepr::Big {
                negative,
                magnitude,
            } => BigInt::from_biguint(
                if *negative { Sign::Minus } else { Sign::Plus },
                BigUint::from_bytes_le(magnitude),
            ),
        }
    }

    /// The value as a big integer, when it does not fit an `i64`.
    pub fn to_big(&self) -> Option<BigInt> {
        match &self.0 {
            IntRepr::Small(_) => None,
            IntRepr::Big { .. } => Some(self.to_bigint()),
        }
    }

    /// Bytes the value holds outside its inline form (the magnitude of a big int).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            IntRepr::Small(_) => 0,
            IntRepr::Big { magnitude, .. } => magnitude.len(),
        }
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        match &self.0 {
            IntRepr::Small(i) => *i < 0,
            IntRepr::Big { negative, .. } => *negative,
        }
    }

    /// An int from its sign and little-endian magnitude bytes, which the caller has checked
    /// have no zero high byte and are outside the i64 range.
    #[inline]
    pub(crate) fn from_big_parts(negative: bool, magnitude: Bytes) -> Int {
        debug_assert!(magnitude.last().is_some_and(|&b| b != 0));
        debug_assert!(Int::from_magnitude(negative, &magnitude).is_none());
        Int(IntRepr::Big {
            negative,
            magnitude,
        })
    }

    /// The value, inline or as sign and little-endian magnitude bytes.
    pub(crate) fn view(&self) -> IntView<'_> {
        match &self.0 {
            IntRepr::Small(i) => IntView::Small(*i),
            IntRepr::Big {
                negative,
                magnitude,
            } => IntView::Big(*negative, magnitude),
        }
    }

    /// The i64 of sign and little-endian magnitude, if it fits.
    fn from_magnitude(negative: bool, magnitude: &[u8]) -> Option<i64> {
        if magnitude.len() > 8 {
            return None;
        }
        let mut word = [0u8; 8];
        word[..magnitude.len()].copy_from_slice(magnitude);
        let m = u64::from_le_bytes(word);
        if negative {
            0i64.checked_sub_unsigned(m)
        } else {
            i64::try_from(m).ok()
        }
    }

    /// The int `±magnitude` for a 64-bit magnitude.
    pub(crate) fn from_u64_magnitude(negative: bool, m: u64) -> Int {
        let small = if negative {
            0i64.checked_sub_unsigned(m)
        } else {
            i64::try_from(m).ok()
        };
        match small {
            Some(v) => Int(IntRepr::Small(v)),
            None => Int::from_big_parts(
                negative,
                Bytes::copy_from_slice(le_trimmed(&m.to_le_bytes())),
            ),
        }
    }
}

/// An [`Int`] as it is stored.
pub(crate) enum IntView<'a> {
    /// Fits an i64.
    Small(i64),
    /// Outside the i64 range: whether negative, and the magnitude's little-endian bytes (no zero
    /// high byte).
    Big(bool, &'a [u8]),
}

impl Int {
    /// The int `±magnitude` for a magnitude given as little-endian 64-bit limbs (no zero high
    /// limb). A big magnitude's bytes are written to `arena` and shared with it.
    #[inline]
    pub(crate) fn from_limbs(negative: bool, limbs: &[u64], arena: &mut BytesMut) -> Int {
        match limbs {
            [] => Int::from(0),
            [m] => Int::from_u64_magnitude(negative, *m),
            [low @ .., top] => {
                let top = top.to_le_bytes();
                let top = le_trimmed(&top);
                let len = low.len() * 8 + top.len();
                if arena.capacity() - arena.len() < len {
                    *arena = BytesMut::with_capacity(len.max(MAGNITUDE_ARENA));
                }
                for l in low {
                    arena.extend_from_slice(&l.to_le_bytes());
                }
                arena.extend_from_slice(top);
                Int::from_big_parts(negative, arena.split().freeze())
            }
        }
    }
}

/// Size of the blocks that the parser writes big-int magnitudes to.
const MAGNITUDE_ARENA: usize = 4096;

/// `bytes` without its zero high bytes.
fn le_trimmed(bytes: &[u8]) -> &[u8] {
    let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..len]
}

impl From<i64> for Int {
    fn from(i: i64) -> Int {
        Int(IntRepr::Small(i))
    }
}

impl From<BigInt> for Int {
    fn from(b: BigInt) -> Int {
        match b.to_i64() {
            Some(i) => Int(IntRepr::Small(i)),
            None => Int(IntRepr::Big {
                negative: b.is_negative(),
                magnitude: Bytes::from(b.magnitude().to_bytes_le()),
            }),
        }
    }
}

impl Ord for Int {
    fn cmp(&self, other: &Int) -> Ordering {
        match (&self.0, &other.0) {
            (IntRepr::Small(a), IntRepr::Small(b)) => a.cmp(b),
            // A big value lies beyond every i64: above them if positive, below if negative.
            (IntRepr::Small(_), IntRepr::Big { negative, .. }) => {
                if *negative {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (IntRepr::Big { negative, .. }, IntRepr::Small(_)) => {
                if *negative {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (
                IntRepr::Big {
                    negative: na,
                    magnitude: ma,
                },
                IntRepr::Big {
                    negative: nb,
                    magnitude: mb,
                },
            ) => match (na, nb) {
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                _ => {
                    // No zero high bytes: the longer magnitude is larger; equal lengths compare
                    // from the most significant byte.
                    let m = ma
                        .len()
                        .cmp(&mb.len())
                        .then_with(|| ma.iter().rev().cmp(mb.iter().rev()));
                    if *na {
                        m.reverse()
                    } else {
                        m
                    }
                }
            },
        }
    }
}

impl PartialOrd for Int {
    fn partial_cmp(&self, other: &Int) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            IntRepr::Small(i) => write!(f, "{i}"),
            IntRepr::Big { .. } => write!(f, "{}", self.to_bigint()),
        }
    }
}

impl fmt::Debug for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Int({self})")
    }
}

/// An exact decimal: `mantissa × 10^-scale`, kept normalized (the mantissa has no trailing
/// decimal zero, and zero has scale 0), so `1.50` and `1.5` are the same value.
#[derive(Clone)]
pub struct Dec(DecRepr);

// Invariant: normalized, and `Big` only holds mantissas outside the i64 range, so each value has
// one representation.
#[derive(Clone)]
enum DecRepr {
    /// A mantissa that fits an i64, stored inline: no allocation.
    Small {
        mantissa: i64,
        scale: i64,
    },
    Big(Box<BigDecimal>),
}

impl Dec {
    /// Bytes the value holds outside its inline form (about half a byte per digit of a big
    /// mantissa).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            DecRepr::Small { .. } => 0,
            DecRepr::Big(b) => (b.digits() as usize).div_ceil(2),
        }
    }

    /// The decimal `mantissa × 10^-scale`, normalized.
    pub fn new(mantissa: BigInt, scale: i64) -> Dec {
        if let Some(m) = mantissa.to_i64() {
            if let Some(d) = Dec::small(m, scale) {
                return d;
            }
        }
        Dec::from(BigDecimal::new(mantissa, scale))
    }

    /// The normalized decimal `m × 10^-scale`, unless normalizing would move the scale out of
    /// the i64 range.
    fn small(mut m: i64, mut scale: i64) -> Option<Dec> {
        if m == 0 {
            return Some(Dec::from_normalized_i64(0, 0));
        }
        while m % 10 == 0 {
            m /= 10;
            scale = scale.checked_sub(1)?;
        }
        Some(Dec::from_normalized_i64(m, scale))
    }

    /// The decimal `mantissa × 10^-scale` when the caller has checked it is normalized (the
    /// mantissa is not a multiple of ten, or is zero with scale 0): skips the normalizing pass,
    /// which converts the mantissa to decimal digits and back.
    pub(crate) fn from_normalized(mantissa: BigInt, scale: i64) -> Dec {
        if let Some(m) = mantissa.to_i64() {
            return Dec::from_normalized_i64(m, scale);
        }
        debug_assert!((&mantissa % 10u8).sign() != Sign::NoSign);
        Dec(DecRepr::Big(Box::new(BigDecimal::new(mantissa, scale))))
    }

    /// [`Dec::from_normalized`] for a mantissa that fits an i64.
    #[inline]
    pub(crate) fn from_normalized_i64(mantissa: i64, scale: i64) -> Dec {
        debug_assert!(if mantissa == 0 {
            scale == 0
        } else {
            mantissa % 10 != 0
        });
        Dec(DecRepr::Small { mantissa, scale })
    }

    /// The normalized mantissa.
    pub fn mantissa(&self) -> BigInt {
        match &self.0 {
            DecRepr::Small { mantissa, .. } => BigInt::from(*mantissa),
            DecRepr::Big(d) => d.as_bigint_and_scale().0.into_owned(),
        }
    }

    /// The normalized scale: the value is `mantissa × 10^-scale`.
    pub fn scale(&self) -> i64 {
        match &self.0 {
            DecRepr::Small { scale, .. } => *scale,
            DecRepr::Big(d) => d.as_bigint_and_scale().1,
        }
    }

    /// The mantissa and scale, when the mantissa fits an i64.
    pub(crate) fn small_parts(&self) -> Option<(i64, i64)> {
        match &self.0 {
            DecRepr::Small { mantissa, scale } => Some((*mantissa, *scale)),
            DecRepr::Big(_) => None,
        }
    }

    /// The value as a `BigDecimal`, for arithmetic.
    pub fn to_big_decimal(&self) -> BigDecimal {
        match &self.0 {
            DecRepr::Small { mantissa, scale } => BigDecimal::new(BigInt::from(*mantissa), *scale),
            DecRepr::Big(d) => (**d).clone(),
        }
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        match &self.0 {
            DecRepr::Small { mantissa, .. } => *mantissa < 0,
            DecRepr::Big(d) => d.is_negative(),
        }
    }

    /// Compares `m1 × 10^-s1` with `m2 × 10^-s2` without materializing huge powers of ten:
    /// magnitudes are first compared by the position of their leading digit, and only aligned
    /// when those agree (the shift is then at most the number of digits).
    pub(crate) fn cmp_parts(m1: &BigInt, s1: i64, m2: &BigInt, s2: i64) -> Ordering {
        let (sign1, sign2) = (m1.sign(), m2.sign());
        let sign_rank = |s: Sign| match s {
            Sign::Minus => 0,
            Sign::NoSign => 1,
            Sign::Plus => 2,
        };
        if sign1 != sign2 {
            return sign_rank(sign1).cmp(&sign_rank(sign2));
        }
        if sign1 == Sign::NoSign {
            return Ordering::Equal;
        }
        let magnitude = {
            let d1 = decimal_digits(m1);
            let d2 = decimal_digits(m2);
            let lead1 = i128::from(d1) - i128::from(s1);
            let lead2 = i128::from(d2) - i128::from(s2);
            if lead1 != lead2 {
                lead1.cmp(&lead2)
            } else {
                let (a, b) = (m1.magnitude(), m2.magnitude());
                // Equal leading positions: |s1 - s2| == |d1 - d2|, bounded by the digit count.
                match s1.cmp(&s2) {
                    Ordering::Equal => a.cmp(b),
                    Ordering::Less => {
                        let shift = (d2 - d1) as u32;
                        (a * num_bigint::BigUint::from(10u32).pow(shift)).cmp(b)
                    }
                    Ordering::Greater => {
                        let shift = (d1 - d2) as u32;
                        a.cmp(&(b * num_bigint::BigUint::from(10u32).pow(shift)))
                    }
                }
            }
        };
        if sign1 == Sign::Minus {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// Number of decimal digits of `|m|` (1 for zero).
pub(crate) fn decimal_digits(m: &BigInt) -> u64 {
    if let Some(v) = m.magnitude().to_u64() {
        return u64::from(v.checked_ilog10().unwrap_or(0)) + 1;
    }
    m.magnitude().to_str_radix(10).len() as u64
}

impl From<BigDecimal> for Dec {
    fn from(d: BigDecimal) -> Dec {
        let d = d.normalized();
        let (m, scale) = d.as_bigint_and_scale();
        match m.to_i64() {
            Some(m) => Dec::from_normalized_i64(m, scale),
            None => Dec(DecRepr::Big(Box::new(d))),
        }
    }
}

impl PartialEq for Dec {
    fn eq(&self, other: &Dec) -> bool {
        // Both sides are normalized and small whenever the mantissa fits an i64, so the
        // representation is the value.
        match (&self.0, &other.0) {
            (
                DecRepr::Small { mantissa, scale },
                DecRepr::Small {
                    mantissa: m2,
                    scale: s2,
                },
            ) => mantissa == m2 && scale == s2,
            (DecRepr::Big(a), DecRepr::Big(b)) => {
                a.as_bigint_and_scale() == b.as_bigint_and_scale()
            }
            _ => false,
        }
    }
}

impl Eq for Dec {}

impl Hash for Dec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            DecRepr::Small { mantissa, scale } => {
                mantissa.hash(state);
                scale.hash(state);
            }
            DecRepr::Big(d) => {
                let (mantissa, scale) = d.as_bigint_and_scale();
                mantissa.hash(state);
                scale.hash(state);
            }
        }
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Dec) -> Ordering {
        if let (Some((m1, s1)), Some((m2, s2))) = (self.small_parts(), other.small_parts()) {
            if s1 == s2 {
                return m1.cmp(&m2);
            }
        }
        Dec::cmp_parts(
            &self.mantissa(),
            self.scale(),
            &other.mantissa(),
            other.scale(),
        )
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Dec) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::print::dec_to_string(&self.mantissa(), self.scale()))
    }
}

impl fmt::Debug for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dec({self})")
    }
}

/// A path of string segments, written `@a.b.0`. It has at least one segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(Vec<Str>);

impl Path {
    /// A path from its segments; `None` if there are none.
    pub fn new(segments: Vec<Str>) -> Option<Path> {
        if segments.is_empty() {
            None
        } else {
            Some(Path(segments))
        }
    }

    /// A path from segments the caller has checked are not empty.
    pub(crate) fn from_segments(segments: Vec<Str>) -> Path {
        debug_assert!(!segments.is_empty());
        Path(segments)
    }

    /// Parses the dotted form `a.b.0` (without the `@`); empty segments are refused.
    pub fn parse_dotted(text: &str) -> Option<Path> {
        let segs: Vec<Str> = text.split('.').map(Str::from).collect();
        if segs.iter().any(|s| s.is_empty()) {
            return None;
        }
        Path::new(segs)
    }

    /// The segments, first to last.
    pub fn segments(&self) -> &[Str] {
        &self.0
    }
}

/// A lazy service call: send [`Stream::unit`] to the service, optionally on a given node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream {
    /// The unit to send.
    pub unit: Unit,
    service: Str,
    node: Option<Str>,
}

/// A service or node name that cannot be written in the notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} name {name:?}: {why}")]
pub struct NameError {
    /// `service` or `node`.
    pub what: &'static str,
    /// The refused name.
    pub name: String,
    /// Why it was refused.
    pub why: &'static str,
}

impl Stream {
    /// A stream to `service`, pinned to `node` if given. A service name is a non-empty word
    /// (letters, digits, `.`, `_`, `#`, `-`); a node name is any non-empty string.
    pub fn new(unit: Unit, service: &str, node: Option<&str>) -> Result<Stream, NameError> {
        Stream::check_names(service, node)?;
        Ok(Stream {
            unit,
            service: Str::from(service),
            node: node.map(Str::from),
        })
    }

    /// A stream from names already checked by [`Stream::check_names`].
    pub(crate) fn from_checked_strs(unit: Unit, service: Str, node: Option<Str>) -> Stream {
        debug_assert!(Stream::check_names(&service, node.as_deref()).is_ok());
        Stream {
            unit,
            service,
            node,
        }
    }

    pub(crate) fn check_names(service: &str, node: Option<&str>) -> Result<(), NameError> {
        // Service names are nearly always ASCII: test bytes, and chars only past ASCII.
        let word = service.bytes().all(crate::text::is_ascii_word_byte)
            || service.chars().all(crate::text::is_word_char);
        if service.is_empty() || !word {
            return Err(NameError {
                what: "service",
                name: service.to_owned(),
                why: "a service name is a non-empty word of letters, digits and . _ # -",
            });
        }
        if node.is_some_and(str::is_empty) {
            return Err(NameError {
                what: "node",
                name: String::new(),
                why: "a node name cannot be empty",
            });
        }
        Ok(())
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Removes the node pin.
    pub(crate) fn unpin(&mut self) {
        self.node = None;
    }

    /// The node this stream is pinned to, if any.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

/// A map from unique keys (any unit) to values, keeping insertion order.
///
/// Keys are unique under unit equality. Equality of maps is ordered: `{a:1 b:2}` and
/// `{b:2 a:1}` are different units (they print, encode and hash differently). Use
/// [`Map::same_entries`] to compare ignoring order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Map {
    entries: Vec<(Unit, Unit)>,
}

/// A map that would hold the same key twice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("duplicate map key (entry {index})")]
pub struct DuplicateKey {
    /// Index of the entry that repeats an earlier key.
    pub index: usize,
}

/// Up to this many entries, duplicate keys are found by comparing every pair; above, by hashing.
const LINEAR_DUPLICATE_SCAN: usize = 16;

impl Map {
    /// An empty map.
    pub fn new() -> Map {
        Map::default()
    }

    /// A map from entries in order; fails if a key repeats.
    pub fn from_entries(entries: Vec<(Unit, Unit)>) -> Result<Map, DuplicateKey> {
        if let Some(index) = first_duplicate(&entries) {
            return Err(DuplicateKey { index });
        }
        Ok(Map { entries })
    }

    /// A map from entries whose keys the caller has checked are unique.
    pub(crate) fn from_unique_entries(entries: Vec<(Unit, Unit)>) -> Map {
        debug_assert!(first_duplicate(&entries).is_none());
        Map { entries }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value for `key`.
    pub fn get(&self, key: &Unit) -> Option<&Unit> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value for the string key `key`.
    pub fn get_str(&self, key: &str) -> Option<&Unit> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`: an existing key keeps its position and its old value is returned;
    /// a new key goes last.
    pub fn insert(&mut self, key: Unit, value: Unit) -> Option<Unit> {
        if let Some((_, v)) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            return Some(std::mem::replace(v, value));
        }
        self.entries.push((key, value));
        None
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &Unit) -> Option<Unit> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Unit, &Unit)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries in order, as a slice.
    pub fn entries(&self) -> &[(Unit, Unit)] {
        &self.entries
    }

    /// Consumes the map, giving its entries in order.
    pub fn into_entries(self) -> Vec<(Unit, Unit)> {
        self.entries
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Unit> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Whether both maps hold the same entries, in any order.
    pub fn same_entries(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a Unit, &'a Unit);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Unit, Unit)>,
        fn(&'a (Unit, Unit)) -> (&'a Unit, &'a Unit),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

/// A cheap summary of a key, equal for equal units: a string's length and first bytes, a small
/// int's value, otherwise just the type.
fn fingerprint(u: &Unit) -> u64 {
    match u {
        Unit::Str(s) => crate::binary::key_print(s.as_bytes(), 0, s.len()),
        Unit::Int(i) => i.to_i64().map_or(u64::MAX, |v| v as u64),
        other => other.kind() as u64,
    }
}

/// Index of the first entry whose key equals an earlier key.
pub(crate) fn first_duplicate(entries: &[(Unit, Unit)]) -> Option<usize> {
    if entries.len() < 2 {
        return None;
    }
    if entries.len() <= LINEAR_DUPLICATE_SCAN {
        // Equal keys have equal fingerprints, so most pairs are told apart without a full
        // comparison.
        let mut prints = [0u64; LINEAR_DUPLICATE_SCAN];
        for (p, (k, _)) in prints.iter_mut().zip(entries) {
            *p = fingerprint(k);
        }
        return (1..entries.len())
            .find(|&i| (0..i).any(|j| prints[j] == prints[i] && entries[j].0 == entries[i].0));
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    entries.iter().position(|(k, _)| !seen.insert(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(m: i64, s: i64) -> Unit {
        Unit::Dec(Dec::new(BigInt::from(m), s))
    }

    #[test]
    fn decimals_are_normalized() {
        assert_eq!(dec(150, 2), dec(15, 1));
        assert_eq!(dec(0, 5), dec(0, -3));
        assert_ne!(dec(2, 0), Unit::int(2));
    }

    #[test]
    fn numbers_order_by_value_across_int_and_dec() {
        let mut v = vec![
            dec(15, 1),
            Unit::int(2),
            Unit::int(1),
            dec(-5, 1),
            dec(1, 0),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                dec(-5, 1),
                Unit::int(1),
                dec(1, 0),
                dec(15, 1),
                Unit::int(2)
            ]
        );
    }

    #[test]
    fn huge_exponents_compare_without_materializing() {
        let big = dec(1, -1_000_000_000_000);
        let small = dec(1, 1_000_000_000_000);
        assert!(big > small);
        assert!(big > Unit::int(i64::MAX));
        assert!(dec(-1, -1_000_000_000_000) < dec(-9, 0));
    }

    #[test]
    fn map_keys_are_unique() {
        let e = |k: &str| (Unit::str(k), Unit::None);
        assert_eq!(
            Map::from_entries(vec![e("a"), e("b"), e("a")]),
            Err(DuplicateKey { index: 2 })
        );
        let many: Vec<_> = (0..40).map(|i| (Unit::int(i % 39), Unit::None)).collect();
        assert_eq!(Map::from_entries(many), Err(DuplicateKey { index: 39 }));
    }

    #[test]
    fn ints_have_one_representation() {
        assert_eq!(Int::from(BigInt::from(5)), Int::from(5));
        assert!(Int::from(BigInt::from(i64::MAX) + 1).to_big().is_some());
        let big = BigInt::from(u64::MAX) * 3u8;
        assert_eq!(Int::from(big.clone()).to_bigint(), big);
        assert_eq!(Int::from(-big.clone()).to_bigint(), -big);
        assert_eq!(Int::from_u64_magnitude(true, 1 << 63), Int::from(i64::MIN));
        assert_eq!(
            Int::from_u64_magnitude(true, u64::MAX),
            Int::from(-BigInt::from(u64::MAX))
        );
    }
}
