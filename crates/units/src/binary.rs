//! The canonical binary encoding, specified in `docs/units-binary.md`.
//!
//! Every unit has exactly one encoding; [`decode`] refuses anything else (overlong lengths,
//! a long form where a short one exists, unnormalized decimals, duplicate map keys), so the
//! bytes can be hashed and signed.

use bytes::Bytes;
#[cfg(test)]
use num_bigint::BigInt;

use std::ops::DerefMut;

use crate::borrowed::{Arena, UnitRef};
use crate::value::{Dec, Int, IntView, Map, Path, Str, Stream, Unit};
use crate::Limits;

/// The format version written as the first byte of every encoded document.
pub const FORMAT_VERSION: u8 = 1;

/// Largest decimal scale magnitude accepted, so printed exponents fit an `i64`.
pub const MAX_SCALE: i64 = 1 << 62;

pub(crate) mod tag {
    pub const NONE: u8 = 0x00;
    pub const FALSE: u8 = 0x01;
    pub const TRUE: u8 = 0x02;
    pub const BYTE: u8 = 0x03;
    pub const INT_POS: u8 = 0x04;
    pub const INT_NEG: u8 = 0x05;
    pub const BIG_POS: u8 = 0x06;
    pub const BIG_NEG: u8 = 0x07;
    pub const DEC: u8 = 0x08;
    pub const STR: u8 = 0x09;
    pub const BYTES: u8 = 0x0a;
    pub const REF: u8 = 0x0b;
    pub const STREAM: u8 = 0x0c;
    pub const STREAM_PINNED: u8 = 0x0d;
    pub const PAIR: u8 = 0x0e;
    pub const LIST: u8 = 0x0f;
    pub const MAP: u8 = 0x10;
    /// 0x20..=0x3f: the ints -1 down to -32.
    pub const NEG_SMALL: u8 = 0x20;
    /// 0x40..=0x7f: the ints 0 to 63.
    pub const POS_SMALL: u8 = 0x40;
    /// 0x80..=0xbf: strings of 0 to 63 bytes.
    pub const STR_SHORT: u8 = 0x80;
    /// 0xc0..=0xcf: lists of 0 to 15 elements.
    pub const LIST_SHORT: u8 = 0xc0;
    /// 0xd0..=0xdf: maps of 0 to 15 entries.
    pub const MAP_SHORT: u8 = 0xd0;
}

const SHORT_STR_MAX: usize = 63;
const SHORT_COUNT_MAX: usize = 15;

/// Why bytes are not a canonical encoding of a unit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a unit.
    #[error("truncated input: expected {expected} at byte {offset}")]
    Truncated {
        /// Where more input was needed.
        offset: usize,
        /// What was being read.
        expected: &'static str,
    },
    /// The document starts with a version this build does not read.
    #[error("unsupported format version {version} (this build reads version {FORMAT_VERSION})")]
    Version {
        /// The version byte found.
        version: u8,
    },
    /// A tag byte that means nothing.
    #[error("unknown tag 0x{tag:02x} at byte {offset}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// Its offset.
        offset: usize,
    },
    /// A valid but non-canonical form (there is exactly one encoding per unit).
    #[error("non-canonical encoding at byte {offset}: {why}")]
    NonCanonical {
        /// Where.
        offset: usize,
        /// Which rule was broken.
        why: &'static str,
    },
    /// A string or name that is not UTF-8, or a name the notation cannot write.
    #[error("invalid text at byte {offset}: {why}")]
    InvalidText {
        /// Where.
        offset: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A map key equal to an earlier key.
    #[error("duplicate map key at byte {offset}")]
    DuplicateKey {
        /// Offset of the map.
        offset: usize,
    },
    /// A limit from [`Limits`] was exceeded.
    #[error("{what} at byte {offset} exceeds the limit of {limit}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Where.
        offset: usize,
        /// The limit's value.
        limit: usize,
    },
    /// The arena refused memory for the decoded units (see [`Arena::with_limit`]).
    #[error("out of memory for the decoded units at byte {offset}")]
    OutOfMemory {
        /// Where.
        offset: usize,
    },
    /// Bytes left over after the unit.
    #[error("{count} unexpected bytes after the unit at byte {offset}")]
    Trailing {
        /// Where they start.
        offset: usize,
        /// How many.
        count: usize,
    },
}

/// The canonical encoding of `u`, starting with the format version byte.
pub fn encode(u: &Unit) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_VERSION);
    encode_into(u, &mut out);
    out
}

/// Appends the canonical encoding of `u` (without the version byte) to `out`.
pub fn encode_into(u: &Unit, out: &mut Vec<u8>) {
    write(u, out);
}

/// Byte strings at least this long are their own part in [`encode_parts`]: below it, copying
/// costs less than the part.
pub const SHARED_PART_MIN: usize = 4096;

/// The canonical encoding of `u` (version byte first) as parts whose concatenation is
/// [`encode`]'s result. Each byte string of [`SHARED_PART_MIN`] bytes or more is a part of its
/// own that shares the unit's storage: a chunk of a pipe or a file goes to the network layer
/// without being copied into the message.
pub fn encode_parts(u: &Unit) -> Vec<Bytes> {
    let mut parts = Parts::default();
    parts.push(FORMAT_VERSION);
    write(u, &mut parts);
    parts.finish()
}

/// Where an encoding goes: a `Vec` takes copies of everything; [`Parts`] keeps large byte
/// strings as they are.
pub(crate) trait Sink {
    fn push(&mut self, byte: u8);
    fn put(&mut self, bytes: &[u8]);
    /// A byte string's content (after its tag and length).
    fn put_shared(&mut self, bytes: &Bytes) {
        self.put(bytes);
    }
}

impl Sink for Vec<u8> {
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The parts of [`encode_parts`]: small pieces are gathered in `small`, which becomes a part
/// whenever a shared one follows.
#[derive(Default)]
struct Parts {
    done: Vec<Bytes>,
    small: Vec<u8>,
}

impl Parts {
    fn finish(mut self) -> Vec<Bytes> {
        if !self.small.is_empty() || self.done.is_empty() {
            self.done.push(Bytes::from(self.small));
        }
        self.done
    }
}

impl Sink for Parts {
    fn push(&mut self, byte: u8) {
        self.small.push(byte);
    }
    fn put(&mut self, bytes: &[u8]) {
        self.small.extend_from_slice(bytes);
    }
    fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_PART_MIN {
            return self.put(bytes);
        }
        if !self.small.is_empty() {
            self.done.push(Bytes::from(std::mem::take(&mut self.small)));
        }
        self.done.push(bytes.clone());
    }
}

fn write<S: Sink>(u: &Unit, out: &mut S) {
    match u {
        Unit::None => out.push(tag::NONE),
        Unit::Bool(false) => out.push(tag::FALSE),
        Unit::Bool(true) => out.push(tag::TRUE),
        Unit::Byte(b) => out.put(&[tag::BYTE, *b]),
        Unit::Int(i) => encode_int(i, out),
        Unit::Dec(d) => {
            out.push(tag::DEC);
            put_varint(zigzag(d.scale()), out);
            match d.small_parts() {
                Some((m, _)) => encode_i64(m, out),
                None => encode_int(&Int::from(d.mantissa()), out),
            }
        }
        Unit::Str(s) => {
            if s.len() <= SHORT_STR_MAX {
                out.push(tag::STR_SHORT + s.len() as u8);
            } else {
                out.push(tag::STR);
                put_varint(s.len() as u64, out);
            }
            out.put(s.as_bytes());
        }
        Unit::Bytes(b) => {
            out.push(tag::BYTES);
            put_varint(b.len() as u64, out);
            out.put_shared(b);
        }
        Unit::Ref(p) => {
            out.push(tag::REF);
            put_varint(p.segments().len() as u64, out);
            for seg in p.segments() {
                put_text(seg, out);
            }
        }
        Unit::Stream(s) => {
            out.push(if s.node().is_some() {
                tag::STREAM_PINNED
            } else {
                tag::STREAM
            });
            write(&s.unit, out);
            put_text(s.service(), out);
            if let Some(node) = s.node() {
                put_text(node, out);
            }
        }
        Unit::Pair(p) => {
            out.push(tag::PAIR);
            write(&p.0, out);
            write(&p.1, out);
        }
        Unit::List(l) => {
            put_count(l.len(), tag::LIST_SHORT, tag::LIST, out);
            for e in l {
                write(e, out);
            }
        }
        Unit::Map(m) => {
            put_count(m.len(), tag::MAP_SHORT, tag::MAP, out);
            for (k, v) in m {
                write(k, out);
                write(v, out);
            }
        }
    }
}

fn encode_i64(v: i64, out: &mut impl Sink) {
    match v {
        0..=63 => out.push(tag::POS_SMALL + v as u8),
        -32..=-1 => out.push(tag::NEG_SMALL + (-1 - v) as u8),
        64.. => {
            out.push(tag::INT_POS);
            put_varint(v as u64, out);
        }
        _ => {
            out.push(tag::INT_NEG);
            // -1 - v is non-negative and fits: v >= i64::MIN.
            put_varint((-1 - v) as u64, out);
        }
    }
}

fn encode_int(i: &Int, out: &mut impl Sink) {
    let (negative, mag) = match i.view() {
        IntView::Small(v) => return encode_i64(v, out),
        IntView::Big(negative, mag) => (negative, mag),
    };
    if mag.len() <= 8 {
        let mut word = [0u8; 8];
        word[..mag.len()].copy_from_slice(mag);
        let m = u64::from_le_bytes(word);
        if negative {
            out.push(tag::INT_NEG);
            // |v| >= 2^63 > 0, so |v| - 1 does not underflow.
            put_varint(m - 1, out);
        } else {
            out.push(tag::INT_POS);
            put_varint(m, out);
        }
        return;
    }
    if negative && mag == TWO_POW_64 {
        out.push(tag::INT_NEG);
        put_varint(u64::MAX, out);
        return;
    }
    out.push(if negative { tag::BIG_NEG } else { tag::BIG_POS });
    put_varint(mag.len() as u64, out);
    out.put(mag);
}

/// 2^64 as little-endian magnitude bytes: the one 9-byte magnitude whose negative fits
/// `INT_NEG`.
const TWO_POW_64: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 1];

fn put_count(n: usize, short: u8, long: u8, out: &mut impl Sink) {
    if n <= SHORT_COUNT_MAX {
        out.push(short + n as u8);
    } else {
        out.push(long);
        put_varint(n as u64, out);
    }
}

fn put_text(s: &str, out: &mut impl Sink) {
    put_varint(s.len() as u64, out);
    out.put(s.as_bytes());
}

/// Unsigned LEB128.
pub(crate) fn put_varint(mut v: u64, out: &mut impl Sink) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Decodes a whole document (version byte, then one unit) with [`Limits::WIRE`].
/// The input is copied once; use [`decode_bytes`] to share its storage instead, or
/// [`decode_ref`] to borrow it.
pub fn decode(input: &[u8]) -> Result<Unit, DecodeError> {
    decode_bytes_with(Bytes::copy_from_slice(input), &Limits::WIRE)
}

/// Decodes a whole document without copying: strings, byte strings and the magnitudes of big
/// ints in the result share `input`'s storage (which therefore stays alive while they do).
pub fn decode_bytes(input: Bytes) -> Result<Unit, DecodeError> {
    decode_bytes_with(input, &Limits::WIRE)
}

/// [`decode_bytes`] with explicit limits.
pub fn decode_bytes_with(input: Bytes, limits: &Limits) -> Result<Unit, DecodeError> {
    decode_document::<Unit>(&input, &input, &(), limits)
}

/// Decodes a whole document into a [`UnitRef`] that borrows `input`, with its lists, maps,
/// pairs and streams in `arena`: no string is copied, no reference count is touched and
/// nothing is freed one by one, so this is the fastest way to read a document. It accepts and
/// refuses exactly what [`decode`] does; [`UnitRef::to_unit`] makes the owned unit. Reuse the
/// arena for the next document after [`Arena::reset`].
pub fn decode_ref<'a>(input: &'a [u8], arena: &'a Arena) -> Result<UnitRef<'a>, DecodeError> {
    decode_ref_with(input, arena, &Limits::WIRE)
}

/// [`decode_ref`] with explicit limits.
pub fn decode_ref_with<'a>(
    input: &'a [u8],
    arena: &'a Arena,
    limits: &Limits,
) -> Result<UnitRef<'a>, DecodeError> {
    decode_document::<UnitRef<'a>>(input, input, arena, limits)
}

fn decode_document<'a, T: Tree<'a>>(
    src: &'a T::Source,
    data: &'a [u8],
    cx: &'a T::Context,
    limits: &Limits,
) -> Result<T, DecodeError> {
    if data.len() > limits.max_size {
        return Err(DecodeError::Limit {
            what: "input size",
            offset: 0,
            limit: limits.max_size,
        });
    }
    let Some(&version) = data.first() else {
        return Err(DecodeError::Truncated {
            offset: 0,
            expected: "the format version byte",
        });
    };
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version { version });
    }
    let mut d = Decoder {
        src,
        data,
        cx,
        pos: 1,
        depth: 0,
        limits: *limits,
    };
    let mut unit = T::none();
    d.unit_into(&mut unit)?;
    if d.pos != data.len() {
        return Err(DecodeError::Trailing {
            offset: d.pos,
            count: data.len() - d.pos,
        });
    }
    Ok(unit)
}

/// An int read from its encoding, before it becomes part of a tree.
#[derive(Clone, Copy)]
pub(crate) enum IntParts {
    /// Fits an i64.
    Small(i64),
    /// Outside the i64 range but read from a varint: `v`, or `-1 - v` when negative.
    Wide { negative: bool, v: u64 },
    /// A big magnitude: little-endian bytes `start..end` of the input, no zero high byte.
    Big {
        negative: bool,
        start: usize,
        end: usize,
    },
}

impl IntParts {
    /// The owned int; `magnitude` makes a big magnitude from its byte range.
    fn to_int(self, magnitude: impl FnOnce(usize, usize) -> Bytes) -> Int {
        match self {
            IntParts::Small(v) => Int::from(v),
            IntParts::Wide { negative, v } => wide_int(negative, v),
            IntParts::Big {
                negative,
                start,
                end,
            } => Int::from_big_parts(negative, magnitude(start, end)),
        }
    }

    /// Whether the value is a multiple of ten (a dec mantissa must not be).
    #[inline]
    fn is_multiple_of_ten(self, data: &[u8]) -> bool {
        match self {
            IntParts::Small(v) => v % 10 == 0,
            IntParts::Wide { negative: false, v } => v.is_multiple_of(10),
            IntParts::Wide { negative: true, v } => (u128::from(v) + 1).is_multiple_of(10),
            // 256^k ≡ 6 (mod 10) for every k ≥ 1.
            IntParts::Big { start, end, .. } => {
                let mag = &data[start..end];
                let rest = mag[1..].iter().fold(0u64, |r, &b| (r + u64::from(b)) % 10);
                (u64::from(mag[0]) + 6 * rest).is_multiple_of(10)
            }
        }
    }

    /// The dec `self × 10^-scale` for a mantissa checked to be normalized.
    #[inline(always)]
    fn to_dec(self, data: &[u8], scale: i64) -> Dec {
        match self {
            IntParts::Small(v) => Dec::from_normalized_i64(v, scale),
            parts => {
                let int = parts.to_int(|start, end| Bytes::copy_from_slice(&data[start..end]));
                Dec::from_normalized(int.to_bigint(), scale)
            }
        }
    }
}

/// The int `v`, or `-1 - v` when `negative` (the payload of `INT_POS` and `INT_NEG`).
pub(crate) fn wide_int(negative: bool, v: u64) -> Int {
    if !negative {
        return Int::from_u64_magnitude(false, v);
    }
    // -1 - v: magnitude v + 1, which is 2^64 for the largest v.
    match v.checked_add(1) {
        Some(m) => Int::from_u64_magnitude(true, m),
        None => Int::from_big_parts(true, Bytes::from_static(TWO_POW_64)),
    }
}

/// A tree the decoder builds: the owned [`Unit`], or the borrowed [`UnitRef`]. One decoder
/// serves both, so they accept exactly the same documents. Constructors that allocate return
/// `None` when the memory is refused (an [`Arena`] with a limit).
pub(crate) trait Tree<'a>: Sized {
    /// What strings and byte strings are cut from: [`Bytes`] to share, `[u8]` to borrow.
    type Source: ?Sized;
    /// Where containers are allocated: the heap (`()`) or an [`Arena`].
    type Context: ?Sized;
    /// A validated UTF-8 string cut from the input.
    type Text: AsRef<str>;
    /// The segments of a path while they are read.
    type Segments;
    /// A list's slots, each holding [`Tree::none`] until decoded into.
    type Items: DerefMut<Target = [Self]>;
    /// A map's slots.
    type Entries: DerefMut<Target = [(Self, Self)]>;
    /// A pair's slots.
    type Halves: DerefMut<Target = (Self, Self)>;

    fn none() -> Self;
    fn boolean(b: bool) -> Self;
    fn byte(b: u8) -> Self;
    fn small_int(v: i64) -> Self;
    fn int(src: &'a Self::Source, data: &'a [u8], parts: IntParts) -> Self;
    /// The dec `mantissa × 10^-scale`, the mantissa checked to be normalized.
    fn dec(cx: &'a Self::Context, data: &'a [u8], mantissa: IntParts, scale: i64) -> Option<Self>;
    /// The bytes `start..end` of the input as text, if they are UTF-8.
    fn text(src: &'a Self::Source, data: &'a [u8], start: usize, end: usize) -> Option<Self::Text>;
    fn str(text: Self::Text) -> Self;
    fn bytes(src: &'a Self::Source, data: &'a [u8], start: usize, end: usize) -> Self;
    fn segments(count: usize) -> Self::Segments;
    fn push_segment(segments: &mut Self::Segments, segment: Self::Text);
    /// A path of `count ≥ 1` segments, read from the input's bytes `start..end`.
    fn path(
        segments: Self::Segments,
        data: &'a [u8],
        start: usize,
        end: usize,
        count: usize,
    ) -> Self;
    /// A stream whose names are checked.
    fn stream(
        cx: &'a Self::Context,
        unit: Self,
        service: Self::Text,
        node: Option<Self::Text>,
    ) -> Option<Self>;
    fn halves(cx: &'a Self::Context) -> Option<Self::Halves>;
    fn pair(halves: Self::Halves) -> Self;
    fn items(cx: &'a Self::Context, count: usize) -> Option<Self::Items>;
    fn list(items: Self::Items) -> Self;
    fn entries(cx: &'a Self::Context, count: usize) -> Option<Self::Entries>;
    /// A map whose keys are checked to be unique.
    fn map(entries: Self::Entries) -> Self;
}

impl<'a> Tree<'a> for Unit {
    type Source = Bytes;
    type Context = ();
    type Text = Str;
    type Segments = Vec<Str>;
    type Items = Vec<Unit>;
    type Entries = Vec<(Unit, Unit)>;
    type Halves = Box<(Unit, Unit)>;

    #[inline(always)]
    fn none() -> Unit {
        Unit::None
    }
    #[inline(always)]
    fn boolean(b: bool) -> Unit {
        Unit::Bool(b)
    }
    #[inline(always)]
    fn byte(b: u8) -> Unit {
        Unit::Byte(b)
    }
    #[inline(always)]
    fn small_int(v: i64) -> Unit {
        Unit::int(v)
    }
    #[inline(always)]
    fn int(src: &Bytes, _: &[u8], parts: IntParts) -> Unit {
        Unit::Int(parts.to_int(|start, end| src.slice(start..end)))
    }
    #[inline(always)]
    fn dec(_: &(), data: &[u8], mantissa: IntParts, scale: i64) -> Option<Unit> {
        Some(Unit::Dec(mantissa.to_dec(data, scale)))
    }
    #[inline(always)]
    fn text(src: &Bytes, _: &[u8], start: usize, end: usize) -> Option<Str> {
        Str::try_from(src.slice(start..end)).ok()
    }
    #[inline(always)]
    fn str(text: Str) -> Unit {
        Unit::Str(text)
    }
    #[inline(always)]
    fn bytes(src: &Bytes, _: &[u8], start: usize, end: usize) -> Unit {
        Unit::Bytes(src.slice(start..end))
    }
    #[inline(always)]
    fn segments(count: usize) -> Vec<Str> {
        Vec::with_capacity(count)
    }
    #[inline(always)]
    fn push_segment(segments: &mut Vec<Str>, segment: Str) {
        segments.push(segment);
    }
    #[inline(always)]
    fn path(segments: Vec<Str>, _: &[u8], _: usize, _: usize, _: usize) -> Unit {
        Unit::Ref(Path::from_segments(segments))
    }
    #[inline(always)]
    fn stream(_: &(), unit: Unit, service: Str, node: Option<Str>) -> Option<Unit> {
        Some(Unit::Stream(Box::new(Stream::from_checked_strs(
            unit, service, node,
        ))))
    }
    #[inline(always)]
    fn halves(_: &()) -> Option<Box<(Unit, Unit)>> {
        Some(Box::new((Unit::None, Unit::None)))
    }
    #[inline(always)]
    fn pair(halves: Box<(Unit, Unit)>) -> Unit {
        Unit::Pair(halves)
    }
    #[inline(always)]
    fn items(_: &(), count: usize) -> Option<Vec<Unit>> {
        let mut items = Vec::with_capacity(count);
        items.resize_with(count, || Unit::None);
        Some(items)
    }
    #[inline(always)]
    fn list(items: Vec<Unit>) -> Unit {
        Unit::List(items)
    }
    #[inline(always)]
    fn entries(_: &(), count: usize) -> Option<Vec<(Unit, Unit)>> {
        let mut entries = Vec::with_capacity(count);
        entries.resize_with(count, || (Unit::None, Unit::None));
        Some(entries)
    }
    #[inline(always)]
    fn map(entries: Vec<(Unit, Unit)>) -> Unit {
        Unit::Map(Map::from_unique_entries(entries))
    }
}

struct Decoder<'a, T: Tree<'a>> {
    /// The document, for sharing or borrowing strings and byte strings.
    src: &'a T::Source,
    /// The same bytes, for reading.
    data: &'a [u8],
    /// Where containers are allocated.
    cx: &'a T::Context,
    pos: usize,
    depth: usize,
    limits: Limits,
}

/// Up to this many entries, a map's keys are checked for duplicates by comparing every pair;
/// above, by hashing.
const LINEAR_KEY_SCAN: usize = 16;

/// Writes `unit` into `slot`, which holds a placeholder (such as [`Tree::none`]): forgetting it
/// instead of dropping it saves a call to the drop glue (which dispatches on the type) per unit.
/// The decoder and the parser fill every slot this way.
#[inline(always)]
pub(crate) fn fill<T>(slot: &mut T, unit: T) {
    std::mem::forget(std::mem::replace(slot, unit));
}

/// A cheap summary of the bytes `data[start..end]` (an encoded map key, or a string key),
/// equal for equal bytes: their length and first bytes, read as one 8-byte word masked to the
/// key when `data` has room for it.
#[inline(always)]
pub(crate) fn key_print(data: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    let head = match data.get(start..).and_then(<[u8]>::first_chunk::<8>) {
        Some(word) => {
            let word = u64::from_le_bytes(*word);
            if len >= 8 {
                word
            } else {
                word & ((1u64 << (8 * len)) - 1)
            }
        }
        None => data[start..end]
            .iter()
            .rev()
            .fold(0, |h, &c| h << 8 | u64::from(c)),
    };
    head ^ (len as u64).rotate_left(48)
}

impl<'a, T: Tree<'a>> Decoder<'a, T> {
    fn truncated(&self, expected: &'static str) -> DecodeError {
        DecodeError::Truncated {
            offset: self.pos,
            expected,
        }
    }

    fn non_canonical(&self, offset: usize, why: &'static str) -> DecodeError {
        DecodeError::NonCanonical { offset, why }
    }

    #[cold]
    fn out_of_memory(&self) -> DecodeError {
        DecodeError::OutOfMemory { offset: self.pos }
    }

    #[inline]
    fn byte(&mut self, expected: &'static str) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.truncated(expected))?;
        self.pos += 1;
        Ok(b)
    }

    /// Steps over `len` bytes and returns where they start.
    #[inline]
    fn skip(&mut self, len: u64, expected: &'static str) -> Result<usize, DecodeError> {
        let remaining = self.data.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= remaining)
            .ok_or_else(|| self.truncated(expected))?;
        let start = self.pos;
        self.pos += len;
        Ok(start)
    }

    /// Reads a varint. One-byte varints, nearly all of them, are read inline: the general
    /// path returns its result through memory.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn varint(&mut self, expected: &'static str) -> Result<u64, DecodeError> {
        match self.data.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.long_varint(expected),
        }
    }

    #[inline(never)]
    fn long_varint(&mut self, expected: &'static str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte(expected)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.non_canonical(start, "varint longer than 64 bits"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(self.non_canonical(start, "varint with a redundant zero byte"));
                }
                return Ok(v);
            }
        }
        Err(self.non_canonical(start, "varint longer than 64 bits"))
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(DecodeError::Limit {
                what: "nesting depth",
                offset: self.pos,
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    fn count(&mut self, tag: u8, short: u8) -> Result<usize, DecodeError> {
        let start = self.pos - 1;
        if tag >= short {
            return Ok(usize::from(tag - short));
        }
        let n = self.varint("an element count")?;
        if n <= SHORT_COUNT_MAX as u64 {
            return Err(self.non_canonical(start, "count that fits the short form"));
        }
        // Every element takes at least one byte: a larger count cannot be satisfied.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.data.len() - self.pos)
            .ok_or_else(|| self.truncated("the elements of a list or map"))
    }

    fn text(&mut self, expected: &'static str) -> Result<T::Text, DecodeError> {
        let at = self.pos;
        let len = self.varint(expected)?;
        let start = self.skip(len, expected)?;
        T::text(self.src, self.data, start, self.pos).ok_or(DecodeError::InvalidText {
            offset: at,
            why: "not UTF-8",
        })
    }

    /// Decodes the next unit into `slot`. Ints, short strings, none and bools, the bulk of
    /// typical documents, are decoded right here (inlined into the list and map loops); the rest
    /// goes through [`Decoder::unit_into`]. Units are written in place rather than returned: moving
    /// a returned unit through memory costs more than decoding a small one.
    // Not forced inline in debug builds, where the inlined copies make the recursive frame large.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn next_into(&mut self, slot: &mut T) -> Result<(), DecodeError> {
        match self.data.get(self.pos) {
            Some(&t @ tag::POS_SMALL..=0x7f) => {
                self.pos += 1;
                fill(slot, T::small_int(i64::from(t - tag::POS_SMALL)));
                Ok(())
            }
            Some(&t @ tag::STR_SHORT..=0xbf) => {
                let start = self.pos + 1;
                let end = start + usize::from(t - tag::STR_SHORT);
                if end > self.data.len() {
                    // The general path reports the truncation.
                    return self.unit_into(slot);
                }
                let s =
                    T::text(self.src, self.data, start, end).ok_or(DecodeError::InvalidText {
                        offset: self.pos,
                        why: "string is not UTF-8",
                    })?;
                self.pos = end;
                fill(slot, T::str(s));
                Ok(())
            }
            Some(&t @ tag::NEG_SMALL..=0x3f) => {
                self.pos += 1;
                fill(slot, T::small_int(-1 - i64::from(t - tag::NEG_SMALL)));
                Ok(())
            }
            Some(&tag::NONE) => {
                self.pos += 1;
                fill(slot, T::none());
                Ok(())
            }
            Some(&t @ (tag::FALSE | tag::TRUE)) => {
                self.pos += 1;
                fill(slot, T::boolean(t == tag::TRUE));
                Ok(())
            }
            Some(&t @ tag::INT_POS..=tag::BIG_NEG) => {
                let start = self.pos;
                self.pos += 1;
                let parts = self.int_after_tag(t, start)?;
                fill(slot, T::int(self.src, self.data, parts));
                Ok(())
            }
            _ => self.unit_into(slot),
        }
    }

    fn unit_into(&mut self, slot: &mut T) -> Result<(), DecodeError> {
        let start = self.pos;
        let t = self.byte("a unit")?;
        match t {
            tag::NONE => fill(slot, T::none()),
            tag::FALSE => fill(slot, T::boolean(false)),
            tag::TRUE => fill(slot, T::boolean(true)),
            tag::BYTE => fill(slot, T::byte(self.byte("a byte")?)),
            tag::POS_SMALL..=0x7f => fill(slot, T::small_int(i64::from(t - tag::POS_SMALL))),
            tag::NEG_SMALL..=0x3f => fill(slot, T::small_int(-1 - i64::from(t - tag::NEG_SMALL))),
            tag::INT_POS..=tag::BIG_NEG => {
                let parts = self.int_after_tag(t, start)?;
                fill(slot, T::int(self.src, self.data, parts));
            }
            tag::DEC => self.dec_into(slot, start)?,
            tag::STR | tag::STR_SHORT..=0xbf => self.str_into(slot, t, start)?,
            tag::BYTES => {
                let len = self.varint("a byte string length")?;
                let from = self.skip(len, "byte string contents")?;
                fill(slot, T::bytes(self.src, self.data, from, self.pos));
            }
            tag::REF => self.ref_into(slot, start)?,
            tag::STREAM | tag::STREAM_PINNED => {
                self.enter()?;
                let mut unit = T::none();
                self.unit_into(&mut unit)?;
                self.depth -= 1;
                self.stream_into(slot, unit, t, start)?;
            }
            tag::PAIR => self.pair_into(slot)?,
            tag::LIST | tag::LIST_SHORT..=0xcf => self.list_into(slot, t)?,
            tag::MAP | tag::MAP_SHORT..=0xdf => self.map_into(slot, t, start)?,
            _ => {
                return Err(DecodeError::UnknownTag {
                    tag: t,
                    offset: start,
                })
            }
        }
        Ok(())
    }

    // Containers: inlined into `unit_into` in optimized builds; in debug builds, where every
    // local of an inlined function keeps its own stack slot, kept apart so that each level of
    // nesting only pays for the kind it holds.

    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline(never))]
    fn pair_into(&mut self, slot: &mut T) -> Result<(), DecodeError> {
        self.enter()?;
        let mut halves = T::halves(self.cx).ok_or_else(|| self.out_of_memory())?;
        let (a, b) = &mut *halves;
        self.next_into(a)?;
        self.next_into(b)?;
        self.depth -= 1;
        fill(slot, T::pair(halves));
        Ok(())
    }

    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline(never))]
    fn list_into(&mut self, slot: &mut T, t: u8) -> Result<(), DecodeError> {
        let n = self.count(t, tag::LIST_SHORT)?;
        self.enter()?;
        // `count` checked that the input can hold `n` units. The slots are filled in place:
        // pushing each decoded unit would copy it through the stack, and the wide reads of that
        // copy stall on the narrow writes that built it.
        let mut items = T::items(self.cx, n).ok_or_else(|| self.out_of_memory())?;
        for item in items.iter_mut() {
            self.next_into(item)?;
        }
        self.depth -= 1;
        fill(slot, T::list(items));
        Ok(())
    }

    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline(never))]
    fn map_into(&mut self, slot: &mut T, t: u8, start: usize) -> Result<(), DecodeError> {
        let n = self.count(t, tag::MAP_SHORT)?;
        // An entry takes at least two bytes: allocate no more than the input can fill.
        if n > (self.data.len() - self.pos) / 2 {
            return Err(self.truncated("the entries of a map"));
        }
        self.enter()?;
        // Filled in place, as a list's items are.
        let mut entries = T::entries(self.cx, n).ok_or_else(|| self.out_of_memory())?;
        self.entries_into(&mut entries, start)?;
        self.depth -= 1;
        fill(slot, T::map(entries));
        Ok(())
    }

    // The less common kinds are decoded out of line: `unit_into` recurses once per level, and
    // their locals would otherwise grow every frame.

    #[inline(never)]
    fn dec_into(&mut self, slot: &mut T, start: usize) -> Result<(), DecodeError> {
        let scale = unzigzag(self.varint("a decimal scale")?);
        if !(-MAX_SCALE..=MAX_SCALE).contains(&scale) {
            return Err(DecodeError::Limit {
                what: "decimal scale",
                offset: start,
                limit: MAX_SCALE as usize,
            });
        }
        let mstart = self.pos;
        let mt = self.byte("a decimal mantissa")?;
        let mantissa = match mt {
            tag::POS_SMALL..=0x7f => IntParts::Small(i64::from(mt - tag::POS_SMALL)),
            tag::NEG_SMALL..=0x3f => IntParts::Small(-1 - i64::from(mt - tag::NEG_SMALL)),
            tag::INT_POS..=tag::BIG_NEG => self.int_after_tag(mt, mstart)?,
            _ => return Err(self.non_canonical(mstart, "decimal mantissa is not an int")),
        };
        let normalized = match mantissa {
            IntParts::Small(0) => scale == 0,
            m => !m.is_multiple_of_ten(self.data),
        };
        if !normalized {
            return Err(self.non_canonical(start, "decimal not normalized (trailing zero digit)"));
        }
        let dec =
            T::dec(self.cx, self.data, mantissa, scale).ok_or_else(|| self.out_of_memory())?;
        fill(slot, dec);
        Ok(())
    }

    #[inline(never)]
    fn str_into(&mut self, slot: &mut T, t: u8, start: usize) -> Result<(), DecodeError> {
        let len = if t == tag::STR {
            let n = self.varint("a string length")?;
            if n <= SHORT_STR_MAX as u64 {
                return Err(self.non_canonical(start, "string length fits the short form"));
            }
            n
        } else {
            u64::from(t - tag::STR_SHORT)
        };
        let from = self.skip(len, "string bytes")?;
        let text =
            T::text(self.src, self.data, from, self.pos).ok_or(DecodeError::InvalidText {
                offset: start,
                why: "string is not UTF-8",
            })?;
        fill(slot, T::str(text));
        Ok(())
    }

    #[inline(never)]
    fn ref_into(&mut self, slot: &mut T, start: usize) -> Result<(), DecodeError> {
        let n = self.varint("a path length")?;
        if n == 0 {
            return Err(DecodeError::InvalidText {
                offset: start,
                why: "a path has at least one segment",
            });
        }
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.data.len() - self.pos)
            .ok_or_else(|| self.truncated("path segments"))?;
        let from = self.pos;
        let mut segments = T::segments(n);
        for _ in 0..n {
            let segment = self.text("a path segment")?;
            T::push_segment(&mut segments, segment);
        }
        fill(slot, T::path(segments, self.data, from, self.pos, n));
        Ok(())
    }

    /// The rest of a stream after its unit: the names.
    #[inline(never)]
    fn stream_into(
        &mut self,
        slot: &mut T,
        unit: T,
        t: u8,
        start: usize,
    ) -> Result<(), DecodeError> {
        let service = self.text("a service name")?;
        let node = if t == tag::STREAM_PINNED {
            Some(self.text("a node name")?)
        } else {
            None
        };
        Stream::check_names(service.as_ref(), node.as_ref().map(AsRef::as_ref)).map_err(|e| {
            DecodeError::InvalidText {
                offset: start,
                why: e.why,
            }
        })?;
        let stream = T::stream(self.cx, unit, service, node).ok_or_else(|| self.out_of_memory())?;
        fill(slot, stream);
        Ok(())
    }

    /// Decodes a map's entries into their slots and checks that no key repeats. The encoding is
    /// canonical, so keys are equal exactly when their encoded bytes are: the check compares
    /// bytes, not units.
    #[inline]
    fn entries_into(
        &mut self,
        entries: &mut [(T, T)],
        map_start: usize,
    ) -> Result<(), DecodeError> {
        let duplicate = DecodeError::DuplicateKey { offset: map_start };
        if entries.len() <= LINEAR_KEY_SCAN {
            let mut keys = [(0u64, 0usize, 0usize); LINEAR_KEY_SCAN];
            for (i, (k, v)) in entries.iter_mut().enumerate() {
                let start = self.pos;
                self.next_into(k)?;
                let key = &self.data[start..self.pos];
                let print = key_print(self.data, start, self.pos);
                if keys[..i]
                    .iter()
                    .any(|&(p, s, e)| p == print && self.data[s..e] == *key)
                {
                    return Err(duplicate);
                }
                keys[i] = (print, start, self.pos);
                self.next_into(v)?;
            }
        } else {
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            let data = self.data;
            for (k, v) in entries.iter_mut() {
                let start = self.pos;
                self.next_into(k)?;
                if !seen.insert(&data[start..self.pos]) {
                    return Err(duplicate);
                }
                self.next_into(v)?;
            }
        }
        Ok(())
    }

    /// The int after its tag `t` (one of `INT_POS`, `INT_NEG`, `BIG_POS`, `BIG_NEG`) at
    /// `start`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn int_after_tag(&mut self, t: u8, start: usize) -> Result<IntParts, DecodeError> {
        Ok(match t {
            tag::INT_POS | tag::INT_NEG => {
                let v = self.varint("an int")?;
                let short_max = if t == tag::INT_POS { 63 } else { 31 };
                if v <= short_max {
                    return Err(self.non_canonical(start, "int fits the one-byte form"));
                }
                let negative = t == tag::INT_NEG;
                match i64::try_from(v) {
                    Ok(v) if negative => IntParts::Small(-1 - v),
                    Ok(v) => IntParts::Small(v),
                    Err(_) => IntParts::Wide { negative, v },
                }
            }
            _ => self.big_int_after_tag(t, start)?,
        })
    }

    /// The int after its tag `t` (`BIG_POS` or `BIG_NEG`) at `start`.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn big_int_after_tag(&mut self, t: u8, start: usize) -> Result<IntParts, DecodeError> {
        let len = self.varint("a big int length")?;
        let max_bytes = self.limits.max_digits / 2 + 1;
        if len > max_bytes as u64 {
            return Err(DecodeError::Limit {
                what: "big int size in bytes",
                offset: start,
                limit: max_bytes,
            });
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.truncated("big int magnitude"))?;
        if self.data[self.pos..end].last().is_none_or(|&b| b == 0) {
            return Err(self.non_canonical(start, "big int magnitude with a leading zero"));
        }
        // Magnitudes up to 2^64 - 1 (8 bytes) fit INT_POS; for negatives, up to 2^64.
        let negative = t == tag::BIG_NEG;
        if len <= 8 || (len == 9 && negative && self.data[self.pos..end] == *TWO_POW_64) {
            return Err(self.non_canonical(start, "big int fits a varint"));
        }
        let parts = IntParts::Big {
            negative,
            start: self.pos,
            end,
        };
        self.pos = end;
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(u: Unit) -> Vec<u8> {
        let bytes = encode(&u);
        assert_eq!(decode(&bytes), Ok(u));
        bytes
    }

    #[test]
    fn examples_in_the_spec_hold() {
        // The table at the end of docs/units-binary.md.
        let cases = [
            ("-", "00"),
            ("t", "02"),
            ("0x1f", "031f"),
            ("5", "45"),
            ("-1", "20"),
            ("64", "0440"),
            ("300", "04ac02"),
            ("-100", "0563"),
            ("1.5", "08024f"),
            ("ab", "826162"),
            ("x\"ff\"", "0a01ff"),
            ("@a.b", "0b0201610162"),
            ("1@m", "0c41016d"),
            ("(1 2)", "0e4142"),
            ("[1 2]", "c24142"),
            ("{a:1}", "d1816141"),
        ];
        for (text, hex) in cases {
            let u = crate::parse(text).unwrap();
            let got: String = encode(&u)[1..].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{text}");
        }
    }

    #[test]
    fn small_values_are_one_byte() {
        assert_eq!(round(Unit::int(5)), [1, 0x45]);
        assert_eq!(round(Unit::int(-1)), [1, 0x20]);
        assert_eq!(round(Unit::int(64)), [1, tag::INT_POS, 64]);
        assert_eq!(round(Unit::str("ab")), [1, 0x82, b'a', b'b']);
        assert_eq!(round(Unit::List(vec![])), [1, 0xc0]);
    }

    #[test]
    fn int_boundaries_round_trip() {
        for v in [i64::MIN, i64::MAX, -33, -32, 63, 64, i64::from(u32::MAX)] {
            round(Unit::int(v));
        }
        let two64 = BigInt::from(u64::MAX) + 1u8;
        for b in [
            BigInt::from(u64::MAX),
            two64.clone(),
            -two64.clone(),
            -two64 - 1u8,
        ] {
            round(Unit::Int(Int::from(b)));
        }
    }

    #[test]
    fn rejects_non_canonical_forms() {
        // 5 as a varint instead of the one-byte form.
        assert!(matches!(
            decode(&[1, tag::INT_POS, 5]),
            Err(DecodeError::NonCanonical { .. })
        ));
        // Overlong varint for 64.
        assert!(matches!(
            decode(&[1, tag::INT_POS, 0xc0, 0x00]),
            Err(DecodeError::NonCanonical { .. })
        ));
        // Dec 1.50 (mantissa 150, scale 2) is not normalized.
        assert!(matches!(
            decode(&[1, tag::DEC, 4, tag::INT_POS, 150, 1]),
            Err(DecodeError::NonCanonical { .. })
        ));
        // A map with a duplicate key.
        assert!(matches!(
            decode(&[1, 0xd2, 0x81, b'a', 0x00, 0x81, b'a', 0x00]),
            Err(DecodeError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn rejects_truncated_and_trailing_input() {
        let full = encode(&Unit::List(vec![Unit::str("hello"), Unit::int(1000)]));
        for cut in 0..full.len() {
            assert!(decode(&full[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut extra = full.clone();
        extra.push(0);
        assert!(matches!(decode(&extra), Err(DecodeError::Trailing { .. })));
    }

    #[test]
    fn huge_counts_fail_without_allocating() {
        let mut doc = vec![1, tag::LIST];
        put_varint(u64::MAX, &mut doc);
        assert!(matches!(decode(&doc), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut doc = vec![1];
        doc.extend(std::iter::repeat_n(0xc1, 100_000));
        doc.push(0);
        assert!(matches!(decode(&doc), Err(DecodeError::Limit { .. })));
    }

    #[test]
    fn big_magnitudes_mod_ten() {
        // A deterministic spread of magnitudes of 9 to 40 bytes, against the bignum remainder.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 9..=40usize {
            for _ in 0..50 {
                let mag: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let parts = IntParts::Big {
                    negative: false,
                    start: 0,
                    end: len,
                };
                let want = num_bigint::BigUint::from_bytes_le(&mag) % 10u8 == 0u8.into();
                assert_eq!(parts.is_multiple_of_ten(&mag), want, "{mag:02x?}");
            }
        }
    }

    #[test]
    fn strings_share_the_input() {
        let doc = Bytes::from(encode(&Unit::str("shared storage")));
        let Unit::Str(s) = decode_bytes(doc.clone()).unwrap() else {
            panic!("not a str")
        };
        let inner = s.as_bytes().as_ptr() as usize;
        let outer = doc.as_ptr() as usize;
        assert!(inner > outer && inner < outer + doc.len());
    }
}
