//! Borrowed units: [`UnitRef`], what [`decode_ref`](crate::decode_ref) returns.
//!
//! A `UnitRef` is a unit whose strings, byte strings and big-int magnitudes are slices of the
//! binary document it was decoded from, and whose lists, maps, pairs and streams live in an
//! [`Arena`]. Reading a document this way copies no string, touches no reference count and
//! frees nothing one by one: resetting the arena frees a whole document at once. Use it to
//! inspect, route or validate messages; call [`UnitRef::to_unit`] for an owned [`Unit`] that
//! outlives the input and the arena.

use std::fmt;

use bumpalo::Bump;
use bytes::Bytes;

use crate::binary::{wide_int, IntParts, Tree};
use crate::value::{Dec, Int, Kind, Map, Path, Str, Stream, Unit};

/// Memory for the lists, maps, pairs and streams of borrowed units: a bump allocator that
/// frees everything at once. Keep one per thread or connection and [`Arena::reset`] it between
/// documents, so that decoding allocates nothing after the first few.
#[derive(Default)]
pub struct Arena {
    bump: Bump,
}

impl Arena {
    /// An empty arena; it grows as needed.
    pub fn new() -> Arena {
        Arena::default()
    }

    /// An arena that refuses to hold more than `bytes` bytes: decoding a document that needs
    /// more fails with [`DecodeError::OutOfMemory`](crate::DecodeError::OutOfMemory).
    pub fn with_limit(bytes: usize) -> Arena {
        let bump = Bump::new();
        bump.set_allocation_limit(Some(bytes));
        Arena { bump }
    }

    /// Frees every unit decoded into this arena, keeping its largest block for reuse.
    pub fn reset(&mut self) {
        self.bump.reset();
    }

    /// Bytes currently handed out to decoded units.
    pub fn allocated_bytes(&self) -> usize {
        self.bump.allocated_bytes()
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

/// A unit borrowed from a binary document and an [`Arena`]. It is `Copy`; equality is that of
/// the units they stand for.
///
/// ```
/// use plexus_units::{decode_ref, encode, parse, Arena, UnitRef};
///
/// let doc = encode(&parse("{to:`ada` body:[1 2 3]}").unwrap());
/// let mut arena = Arena::new();
/// let msg = decode_ref(&doc, &arena).unwrap();
/// let to = msg.as_map().and_then(|m| m.get_str("to")).and_then(UnitRef::as_str);
/// assert_eq!(to, Some("ada"));
/// assert_eq!(msg.to_unit(), parse("{to:`ada` body:[1 2 3]}").unwrap());
/// arena.reset(); // ready for the next document
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnitRef<'a> {
    /// `-`
    #[default]
    None,
    /// `t` or `f`.
    Bool(bool),
    /// One byte.
    Byte(u8),
    /// An integer of any size.
    Int(IntRef<'a>),
    /// An exact decimal.
    Dec(DecRef<'a>),
    /// A UTF-8 string.
    Str(&'a str),
    /// A binary blob.
    Bytes(&'a [u8]),
    /// A path into a unit.
    Ref(PathRef<'a>),
    /// A lazy service call.
    Stream(&'a StreamRef<'a>),
    /// Exactly two units.
    Pair(&'a (UnitRef<'a>, UnitRef<'a>)),
    /// A sequence.
    List(&'a [UnitRef<'a>]),
    /// Unique keys to values in order.
    Map(MapRef<'a>),
}

impl<'a> UnitRef<'a> {
    /// This unit's type.
    pub fn kind(&self) -> Kind {
        match self {
            UnitRef::None => Kind::None,
            UnitRef::Bool(_) => Kind::Bool,
            UnitRef::Byte(_) => Kind::Byte,
            UnitRef::Int(_) => Kind::Int,
            UnitRef::Dec(_) => Kind::Dec,
            UnitRef::Str(_) => Kind::Str,
            UnitRef::Bytes(_) => Kind::Bytes,
            UnitRef::Ref(_) => Kind::Ref,
            UnitRef::Stream(_) => Kind::Stream,
            UnitRef::Pair(_) => Kind::Pair,
            UnitRef::List(_) => Kind::List,
            UnitRef::Map(_) => Kind::Map,
        }
    }

    /// The string, if this is a str.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            UnitRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The int, if this is an int.
    pub fn as_int(&self) -> Option<IntRef<'a>> {
        match *self {
            UnitRef::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&'a [UnitRef<'a>]> {
        match *self {
            UnitRef::List(l) => Some(l),
            _ => None,
        }
    }

    /// The map, if this is a map.
    pub fn as_map(&self) -> Option<MapRef<'a>> {
        match *self {
            UnitRef::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The deepest nesting of pairs, lists, maps and streams (a scalar has depth 0), as
    /// [`Unit::depth`].
    pub fn depth(&self) -> usize {
        match self {
            UnitRef::Stream(s) => 1 + s.unit.depth(),
            UnitRef::Pair(p) => 1 + p.0.depth().max(p.1.depth()),
            UnitRef::List(l) => 1 + l.iter().map(UnitRef::depth).max().unwrap_or(0),
            UnitRef::Map(m) => {
                1 + m
                    .entries
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The owned unit: strings, byte strings and big magnitudes are copied.
    pub fn to_unit(&self) -> Unit {
        match *self {
            UnitRef::None => Unit::None,
            UnitRef::Bool(b) => Unit::Bool(b),
            UnitRef::Byte(b) => Unit::Byte(b),
            UnitRef::Int(i) => Unit::Int(i.to_int()),
            UnitRef::Dec(d) => Unit::Dec(d.to_dec()),
            UnitRef::Str(s) => Unit::str(s),
            UnitRef::Bytes(b) => Unit::Bytes(Bytes::copy_from_slice(b)),
            UnitRef::Ref(p) => Unit::Ref(p.to_path()),
            UnitRef::Stream(s) => Unit::Stream(Box::new(Stream::from_checked_strs(
                s.unit.to_unit(),
                Str::from(s.service),
                s.node.map(Str::from),
            ))),
            UnitRef::Pair(p) => Unit::pair(p.0.to_unit(), p.1.to_unit()),
            UnitRef::List(l) => Unit::List(l.iter().map(UnitRef::to_unit).collect()),
            UnitRef::Map(m) => Unit::Map(Map::from_unique_entries(
                m.entries
                    .iter()
                    .map(|(k, v)| (k.to_unit(), v.to_unit()))
                    .collect(),
            )),
        }
    }
}

/// An integer of any size, borrowed: a big magnitude is a slice of the document.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntRef<'a>(IntRefRepr<'a>);

// Invariant (the decoder's canonical checks): each value has one representation, so the derived
// equality and hashing are those of the values.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum IntRefRepr<'a> {
    Small(i64),
    /// Outside the i64 range, within ±2^64: `v`, or `-1 - v` when negative.
    Wide {
        negative: bool,
        v: u64,
    },
    /// Little-endian magnitude bytes, no zero high byte, more than 2^64.
    Big {
        negative: bool,
        magnitude: &'a [u8],
    },
}

impl<'a> IntRef<'a> {
    #[inline(always)]
    fn from_parts(data: &'a [u8], parts: IntParts) -> IntRef<'a> {
        IntRef(match parts {
            IntParts::Small(v) => IntRefRepr::Small(v),
            IntParts::Wide { negative, v } => IntRefRepr::Wide { negative, v },
            IntParts::Big {
                negative,
                start,
                end,
            } => IntRefRepr::Big {
                negative,
                magnitude: &data[start..end],
            },
        })
    }

    /// The value as an `i64`, if it fits.
    pub fn to_i64(&self) -> Option<i64> {
        match self.0 {
            IntRefRepr::Small(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        match self.0 {
            IntRefRepr::Small(v) => v < 0,
            IntRefRepr::Wide { negative, .. } | IntRefRepr::Big { negative, .. } => negative,
        }
    }

    /// The owned int.
    pub fn to_int(&self) -> Int {
        match self.0 {
            IntRefRepr::Small(v) => Int::from(v),
            IntRefRepr::Wide { negative, v } => wide_int(negative, v),
            IntRefRepr::Big {
                negative,
                magnitude,
            } => Int::from_big_parts(negative, Bytes::copy_from_slice(magnitude)),
        }
    }
}

impl From<i64> for IntRef<'_> {
    fn from(v: i64) -> Self {
        IntRef(IntRefRepr::Small(v))
    }
}

impl fmt::Display for IntRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IntRefRepr::Small(v) => write!(f, "{v}"),
            _ => write!(f, "{}", self.to_int()),
        }
    }
}

impl fmt::Debug for IntRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An exact decimal, borrowed: `mantissa × 10^-scale`, normalized as [`Dec`] is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecRef<'a>(DecRefRepr<'a>);

// Invariant: normalized, and `Big` only holds mantissas outside the i64 range, so each value has
// one representation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum DecRefRepr<'a> {
    Small { mantissa: i64, scale: i64 },
    Big(&'a BigDecRef<'a>),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BigDecRef<'a> {
    mantissa: IntRef<'a>,
    scale: i64,
}

impl DecRef<'_> {
    /// The scale: the value is `mantissa × 10^-scale`.
    pub fn scale(&self) -> i64 {
        match self.0 {
            DecRefRepr::Small { scale, .. } => scale,
            DecRefRepr::Big(big) => big.scale,
        }
    }

    /// The owned decimal.
    pub fn to_dec(&self) -> Dec {
        match self.0 {
            DecRefRepr::Small { mantissa, scale } => Dec::from_normalized_i64(mantissa, scale),
            DecRefRepr::Big(big) => {
                Dec::from_normalized(big.mantissa.to_int().to_bigint(), big.scale)
            }
        }
    }
}

impl fmt::Display for DecRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_dec())
    }
}

impl fmt::Debug for DecRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A path `@a.b.0`, borrowed: its segments are read from the document when iterated.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathRef<'a> {
    /// The encoded segments (each a length and UTF-8 bytes), checked by the decoder.
    encoded: &'a [u8],
    count: usize,
}

impl<'a> PathRef<'a> {
    /// Number of segments (at least one).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a path has at least one segment.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The segments in order.
    pub fn segments(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.encoded;
        std::iter::from_fn(move || {
            let mut len = 0usize;
            let mut shift = 0;
            while let Some((&b, tail)) = rest.split_first() {
                rest = tail;
                len |= usize::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let (segment, tail) = rest.split_at_checked(len)?;
            rest = tail;
            std::str::from_utf8(segment).ok()
        })
        .take(self.count)
    }

    /// The owned path.
    pub fn to_path(&self) -> Path {
        Path::from_segments(self.segments().map(Str::from).collect())
    }
}

impl fmt::Debug for PathRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

/// A lazy service call, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamRef<'a> {
    /// The unit to send.
    pub unit: UnitRef<'a>,
    service: &'a str,
    node: Option<&'a str>,
}

impl<'a> StreamRef<'a> {
    /// The service name.
    pub fn service(&self) -> &'a str {
        self.service
    }

    /// The node the call is pinned to, if any.
    pub fn node(&self) -> Option<&'a str> {
        self.node
    }
}

/// A map, borrowed: unique keys to values in the document's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapRef<'a> {
    entries: &'a [(UnitRef<'a>, UnitRef<'a>)],
}

impl<'a> MapRef<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`.
    pub fn get(&self, key: &UnitRef<'_>) -> Option<&'a UnitRef<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value under the string key `key`.
    pub fn get_str(&self, key: &str) -> Option<&'a UnitRef<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn entries(&self) -> &'a [(UnitRef<'a>, UnitRef<'a>)] {
        self.entries
    }
}

/// From this length on, text is validated with SIMD instructions (below it, the set-up costs more
/// than it saves).
const LONG_TEXT: usize = 64;

impl<'a> Tree<'a> for UnitRef<'a> {
    type Source = [u8];
    type Context = Arena;
    type Text = &'a str;
    type Segments = ();
    type Items = &'a mut [UnitRef<'a>];
    type Entries = &'a mut [(UnitRef<'a>, UnitRef<'a>)];
    type Halves = &'a mut (UnitRef<'a>, UnitRef<'a>);

    #[inline(always)]
    fn none() -> Self {
        UnitRef::None
    }
    #[inline(always)]
    fn boolean(b: bool) -> Self {
        UnitRef::Bool(b)
    }
    #[inline(always)]
    fn byte(b: u8) -> Self {
        UnitRef::Byte(b)
    }
    #[inline(always)]
    fn small_int(v: i64) -> Self {
        UnitRef::Int(IntRef(IntRefRepr::Small(v)))
    }
    #[inline(always)]
    fn int(_: &'a [u8], data: &'a [u8], parts: IntParts) -> Self {
        UnitRef::Int(IntRef::from_parts(data, parts))
    }
    #[inline(always)]
    fn dec(arena: &'a Arena, data: &'a [u8], mantissa: IntParts, scale: i64) -> Option<Self> {
        Some(UnitRef::Dec(DecRef(match mantissa {
            IntParts::Small(mantissa) => DecRefRepr::Small { mantissa, scale },
            big => DecRefRepr::Big(
                arena
                    .bump
                    .try_alloc(BigDecRef {
                        mantissa: IntRef::from_parts(data, big),
                        scale,
                    })
                    .ok()?,
            ),
        })))
    }
    #[inline(always)]
    fn text(_: &'a [u8], data: &'a [u8], start: usize, end: usize) -> Option<&'a str> {
        let bytes = &data[start..end];
        if bytes.len() >= LONG_TEXT {
            return simdutf8::basic::from_utf8(bytes).ok();
        }
        // Short strings are nearly always ASCII, which is checked inline at a fraction of the
        // cost of a call to the general validator.
        match ascii::AsciiStr::from_ascii(bytes) {
            Ok(text) => Some(text.as_str()),
            Err(_) => std::str::from_utf8(bytes).ok(),
        }
    }
    #[inline(always)]
    fn str(text: &'a str) -> Self {
        UnitRef::Str(text)
    }
    #[inline(always)]
    fn bytes(_: &'a [u8], data: &'a [u8], start: usize, end: usize) -> Self {
        UnitRef::Bytes(&data[start..end])
    }
    #[inline(always)]
    fn segments(_: usize) {}
    #[inline(always)]
    fn push_segment(_: &mut (), _: &'a str) {}
    #[inline(always)]
    fn path(_: (), data: &'a [u8], start: usize, end: usize, count: usize) -> Self {
        UnitRef::Ref(PathRef {
            encoded: &data[start..end],
            count,
        })
    }
    #[inline(always)]
    fn stream(
        arena: &'a Arena,
        unit: Self,
        service: &'a str,
        node: Option<&'a str>,
    ) -> Option<Self> {
        let stream = arena
            .bump
            .try_alloc(StreamRef {
                unit,
                service,
                node,
            })
            .ok()?;
        Some(UnitRef::Stream(stream))
    }
    #[inline(always)]
    fn halves(arena: &'a Arena) -> Option<Self::Halves> {
        arena.bump.try_alloc((UnitRef::None, UnitRef::None)).ok()
    }
    #[inline(always)]
    fn pair(halves: Self::Halves) -> Self {
        UnitRef::Pair(halves)
    }
    #[inline(always)]
    fn items(arena: &'a Arena, count: usize) -> Option<Self::Items> {
        arena
            .bump
            .try_alloc_slice_fill_with(count, |_| UnitRef::None)
            .ok()
    }
    #[inline(always)]
    fn list(items: Self::Items) -> Self {
        UnitRef::List(items)
    }
    #[inline(always)]
    fn entries(arena: &'a Arena, count: usize) -> Option<Self::Entries> {
        arena
            .bump
            .try_alloc_slice_fill_with(count, |_| (UnitRef::None, UnitRef::None))
            .ok()
    }
    #[inline(always)]
    fn map(entries: Self::Entries) -> Self {
        UnitRef::Map(MapRef { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, decode_ref, encode, parse, DecodeError};

    fn borrowed_round_trip(text: &str) {
        let u = parse(text).unwrap();
        let doc = encode(&u);
        let arena = Arena::new();
        let r = decode_ref(&doc, &arena).unwrap();
        assert_eq!(r.to_unit(), u, "{text}");
        assert_eq!(r.depth(), u.depth(), "{text}");
        assert_eq!(r.kind(), u.kind(), "{text}");
    }

    #[test]
    fn every_kind_round_trips() {
        for text in [
            "-",
            "t",
            "0x1f",
            "5",
            "-33",
            "9223372036854775808",
            "-18446744073709551616",
            "18446744073709551615",
            "123456789012345678901234567890",
            "-123456789012345678901234567890",
            "1.5",
            "-0.0001",
            "123456789012345678901234567.891",
            "-18446744073709551615.5",
            "`hello`",
            "x\"00ff\"",
            "@a.b.0",
            "@``",
            "[1 2]@math.calc:n1",
            "(1 `two`)",
            "{a:1 b:[x y] c:{d:-}}",
        ] {
            borrowed_round_trip(text);
        }
    }

    #[test]
    fn strings_borrow_the_input() {
        let doc = encode(&parse("[`borrowed text` x\"0102\"]").unwrap());
        let arena = Arena::new();
        let r = decode_ref(&doc, &arena).unwrap();
        let list = r.as_list().unwrap();
        let range = doc.as_ptr_range();
        let s = list[0].as_str().unwrap();
        assert!(range.contains(&s.as_ptr()));
        let UnitRef::Bytes(b) = list[1] else {
            panic!("not bytes")
        };
        assert!(range.contains(&b.as_ptr()));
    }

    #[test]
    fn paths_and_streams_read_back() {
        let doc = encode(&parse("@users.ada.0@dir.get:n2").unwrap());
        let arena = Arena::new();
        let r = decode_ref(&doc, &arena).unwrap();
        let UnitRef::Stream(s) = r else {
            panic!("not a stream")
        };
        assert_eq!((s.service(), s.node()), ("dir.get", Some("n2")));
        let UnitRef::Ref(p) = s.unit else {
            panic!("not a ref")
        };
        assert_eq!(p.segments().collect::<Vec<_>>(), ["users", "ada", "0"]);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn refuses_what_decode_refuses() {
        let arena = Arena::new();
        let dup = [1, 0xd2, 0x81, b'a', 0x00, 0x81, b'a', 0x00];
        assert_eq!(decode_ref(&dup, &arena).err(), decode(&dup).err());
        let bad_utf8 = [1, 0x81, 0xff];
        assert!(decode_ref(&bad_utf8, &arena).is_err());
        let unnormalized = [
            1,
            crate::binary::tag::DEC,
            4,
            crate::binary::tag::INT_POS,
            150,
            1,
        ];
        assert!(decode_ref(&unnormalized, &arena).is_err());
    }

    #[test]
    fn map_lookup() {
        let doc = encode(&parse("{1:one two:2}").unwrap());
        let arena = Arena::new();
        let r = decode_ref(&doc, &arena).unwrap();
        let m = r.as_map().unwrap();
        assert_eq!(m.get(&UnitRef::Int(1.into())), Some(&UnitRef::Str("one")));
        assert_eq!(m.get_str("two").and_then(UnitRef::as_int), Some(2.into()));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_limited_arena_refuses_big_documents() {
        let doc = encode(&parse(&format!("[{}]", "[1 2] ".repeat(100))).unwrap());
        let small = Arena::with_limit(1024);
        assert!(matches!(
            decode_ref(&doc, &small),
            Err(DecodeError::OutOfMemory { .. })
        ));
        let mut roomy = Arena::new();
        for _ in 0..3 {
            assert_eq!(
                decode_ref(&doc, &roomy).unwrap().to_unit(),
                decode(&doc).unwrap()
            );
            assert!(roomy.allocated_bytes() >= 100 * 2 * std::mem::size_of::<UnitRef>());
            roomy.reset();
        }
    }
}
