//! The canonical binary encoding, specified in `docs/units-binary.md`.
//!
//! Every unit has exactly one encoding; [`decode`] refuses anything else (overlong lengths,
//! a long form where a short one exists, unnormalized decimals, duplicate map keys), so the
//! bytes can be hashed and signed.

use bytes::Bytes;
use num_bigint::BigInt;
use num_integer::Integer;

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
    match u {
        Unit::None => out.push(tag::NONE),
        Unit::Bool(false) => out.push(tag::FALSE),
        Unit::Bool(true) => out.push(tag::TRUE),
        Unit::Byte(b) => out.extend_from_slice(&[tag::BYTE, *b]),
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
            out.extend_from_slice(s.as_bytes());
        }
        Unit::Bytes(b) => {
            out.push(tag::BYTES);
            put_varint(b.len() as u64, out);
            out.extend_from_slice(b);
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
            encode_into(&s.unit, out);
            put_text(s.service(), out);
            if let Some(node) = s.node() {
                put_text(node, out);
            }
        }
        Unit::Pair(p) => {
            out.push(tag::PAIR);
            encode_into(&p.0, out);
            encode_into(&p.1, out);
        }
        Unit::List(l) => {
            put_count(l.len(), tag::LIST_SHORT, tag::LIST, out);
            for e in l {
                encode_into(e, out);
            }
        }
        Unit::Map(m) => {
            put_count(m.len(), tag::MAP_SHORT, tag::MAP, out);
            for (k, v) in m {
                encode_into(k, out);
                encode_into(v, out);
            }
        }
    }
}

fn encode_i64(v: i64, out: &mut Vec<u8>) {
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

fn encode_int(i: &Int, out: &mut Vec<u8>) {
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
    out.extend_from_slice(mag);
}

/// 2^64 as little-endian magnitude bytes: the one 9-byte magnitude whose negative fits
/// `INT_NEG`.
const TWO_POW_64: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 1];

fn put_count(n: usize, short: u8, long: u8, out: &mut Vec<u8>) {
    if n <= SHORT_COUNT_MAX {
        out.push(short + n as u8);
    } else {
        out.push(long);
        put_varint(n as u64, out);
    }
}

fn put_text(s: &str, out: &mut Vec<u8>) {
    put_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Unsigned LEB128.
pub(crate) fn put_varint(mut v: u64, out: &mut Vec<u8>) {
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

/// Decodes a whole document (version byte, then one unit) with the default [`Limits`].
/// The input is copied once; use [`decode_bytes`] to share its storage instead.
pub fn decode(input: &[u8]) -> Result<Unit, DecodeError> {
    decode_bytes_with(Bytes::copy_from_slice(input), &Limits::DEFAULT)
}

/// Decodes a whole document without copying: strings, byte strings and the magnitudes of big
/// ints in the result share `input`'s storage (which therefore stays alive while they do).
pub fn decode_bytes(input: Bytes) -> Result<Unit, DecodeError> {
    decode_bytes_with(input, &Limits::DEFAULT)
}

/// [`decode_bytes`] with explicit limits.
pub fn decode_bytes_with(input: Bytes, limits: &Limits) -> Result<Unit, DecodeError> {
    if input.len() > limits.max_size {
        return Err(DecodeError::Limit {
            what: "input size",
            offset: 0,
            limit: limits.max_size,
        });
    }
    let Some(&version) = input.first() else {
        return Err(DecodeError::Truncated {
            offset: 0,
            expected: "the format version byte",
        });
    };
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version { version });
    }
    let mut d = Decoder {
        input: &input,
        data: &input,
        pos: 1,
        depth: 0,
        limits,
    };
    let unit = d.unit()?;
    if d.pos != input.len() {
        return Err(DecodeError::Trailing {
            offset: d.pos,
            count: input.len() - d.pos,
        });
    }
    Ok(unit)
}

struct Decoder<'a> {
    /// The document, for sharing strings and byte strings with it.
    input: &'a Bytes,
    /// The same bytes, for reading (one indirection fewer than through `input`).
    data: &'a [u8],
    pos: usize,
    depth: usize,
    limits: &'a Limits,
}

impl Decoder<'_> {
    fn truncated(&self, expected: &'static str) -> DecodeError {
        DecodeError::Truncated {
            offset: self.pos,
            expected,
        }
    }

    fn non_canonical(&self, offset: usize, why: &'static str) -> DecodeError {
        DecodeError::NonCanonical { offset, why }
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

    #[inline]
    fn take(&mut self, len: u64, expected: &'static str) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.skip(len, expected)?;
        Ok(self.input.slice(start..self.pos))
    }

    /// Like [`Decoder::take`], but borrowed: no reference count to touch.
    #[inline]
    fn skip(&mut self, len: u64, expected: &'static str) -> Result<&[u8], DecodeError> {
        let remaining = self.data.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= remaining)
            .ok_or_else(|| self.truncated(expected))?;
        let start = self.pos;
        self.pos += len;
        Ok(&self.data[start..start + len])
    }

    #[inline]
    fn varint(&mut self, expected: &'static str) -> Result<u64, DecodeError> {
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

    fn text(&mut self, expected: &'static str) -> Result<Str, DecodeError> {
        let at = self.pos;
        let len = self.varint(expected)?;
        let raw = self.take(len, expected)?;
        Str::try_from(raw).map_err(|_| DecodeError::InvalidText {
            offset: at,
            why: "not UTF-8",
        })
    }

    /// Decodes the next unit into `slot`. Small ints and short strings, the bulk of typical
    /// documents, are decoded right here (inlined into the list and map loops); the rest goes
    /// through [`Decoder::unit_into`]. Units are written in place rather than returned: moving
    /// a returned unit through memory costs more than decoding a small one.
    // Not forced inline in debug builds, where the inlined copies make the recursive frame large.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn next_into(&mut self, slot: &mut Unit) -> Result<(), DecodeError> {
        match self.data.get(self.pos) {
            Some(&t @ tag::POS_SMALL..=0x7f) => {
                self.pos += 1;
                *slot = Unit::int(i64::from(t - tag::POS_SMALL));
                Ok(())
            }
            Some(&t @ tag::STR_SHORT..=0xbf) => {
                let start = self.pos + 1;
                let end = start + usize::from(t - tag::STR_SHORT);
                if end > self.data.len() {
                    // The general path reports the truncation.
                    return self.unit_into(slot);
                }
                let s = Str::try_from(self.input.slice(start..end)).map_err(|_| {
                    DecodeError::InvalidText {
                        offset: self.pos,
                        why: "string is not UTF-8",
                    }
                })?;
                self.pos = end;
                *slot = Unit::Str(s);
                Ok(())
            }
            Some(&t @ (tag::BIG_POS | tag::BIG_NEG)) => {
                let start = self.pos;
                self.pos += 1;
                *slot = Unit::Int(self.big_int_after_tag(t, start)?);
                Ok(())
            }
            _ => self.unit_into(slot),
        }
    }

    fn unit(&mut self) -> Result<Unit, DecodeError> {
        let mut unit = Unit::None;
        self.unit_into(&mut unit)?;
        Ok(unit)
    }

    fn unit_into(&mut self, slot: &mut Unit) -> Result<(), DecodeError> {
        let start = self.pos;
        let t = self.byte("a unit")?;
        *slot = match t {
            tag::NONE => Unit::None,
            tag::FALSE => Unit::Bool(false),
            tag::TRUE => Unit::Bool(true),
            tag::BYTE => Unit::Byte(self.byte("a byte")?),
            tag::POS_SMALL..=0x7f => Unit::int(i64::from(t - tag::POS_SMALL)),
            tag::NEG_SMALL..=0x3f => Unit::int(-1 - i64::from(t - tag::NEG_SMALL)),
            tag::INT_POS..=tag::BIG_NEG => Unit::Int(self.int_after_tag(t, start)?),
            tag::DEC => {
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
                if !matches!(mt, tag::INT_POS..=tag::BIG_NEG | tag::NEG_SMALL..=0x7f) {
                    return Err(self.non_canonical(mstart, "decimal mantissa is not an int"));
                }
                let not_normalized = |d: &Self| {
                    d.non_canonical(start, "decimal not normalized (trailing zero digit)")
                };
                // Most mantissas fit an i64: checked for a trailing zero digit and stored
                // without big numbers.
                let m = match mt {
                    tag::POS_SMALL..=0x7f => Int::from(i64::from(mt - tag::POS_SMALL)),
                    tag::NEG_SMALL..=0x3f => Int::from(-1 - i64::from(mt - tag::NEG_SMALL)),
                    _ => self.int_after_tag(mt, mstart)?,
                };
                match m.view() {
                    IntView::Small(v) => {
                        let normalized = if v == 0 { scale == 0 } else { v % 10 != 0 };
                        if !normalized {
                            return Err(not_normalized(self));
                        }
                        Unit::Dec(Dec::from_normalized_i64(v, scale))
                    }
                    IntView::Big(..) => {
                        let m = m.to_bigint();
                        if m.is_multiple_of(&BigInt::from(10u8)) {
                            return Err(not_normalized(self));
                        }
                        Unit::Dec(Dec::from_normalized(m, scale))
                    }
                }
            }
            tag::STR | tag::STR_SHORT..=0xbf => {
                let len = if t == tag::STR {
                    let n = self.varint("a string length")?;
                    if n <= SHORT_STR_MAX as u64 {
                        return Err(self.non_canonical(start, "string length fits the short form"));
                    }
                    n
                } else {
                    u64::from(t - tag::STR_SHORT)
                };
                let raw = self.take(len, "string bytes")?;
                Unit::Str(Str::try_from(raw).map_err(|_| DecodeError::InvalidText {
                    offset: start,
                    why: "string is not UTF-8",
                })?)
            }
            tag::BYTES => {
                let len = self.varint("a byte string length")?;
                Unit::Bytes(self.take(len, "byte string contents")?)
            }
            tag::REF => {
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
                let mut segs = Vec::with_capacity(n);
                for _ in 0..n {
                    segs.push(self.text("a path segment")?);
                }
                Unit::Ref(Path::new(segs).ok_or_else(|| self.truncated("path segments"))?)
            }
            tag::STREAM | tag::STREAM_PINNED => {
                self.enter()?;
                let unit = self.unit()?;
                let service = self.text("a service name")?;
                let node = if t == tag::STREAM_PINNED {
                    Some(self.text("a node name")?)
                } else {
                    None
                };
                self.depth -= 1;
                Unit::Stream(Box::new(Stream::from_strs(unit, service, node).map_err(
                    |e| DecodeError::InvalidText {
                        offset: start,
                        why: e.why,
                    },
                )?))
            }
            tag::PAIR => {
                self.enter()?;
                let mut pair = Box::new((Unit::None, Unit::None));
                self.next_into(&mut pair.0)?;
                self.next_into(&mut pair.1)?;
                self.depth -= 1;
                Unit::Pair(pair)
            }
            tag::LIST | tag::LIST_SHORT..=0xcf => {
                let n = self.count(t, tag::LIST_SHORT)?;
                self.enter()?;
                // `count` checked that the input can hold `n` units. The slots are filled in
                // place: pushing each decoded unit would copy it through the stack, and the
                // wide reads of that copy stall on the narrow writes that built it.
                let mut items = Vec::with_capacity(n);
                items.resize_with(n, || Unit::None);
                for item in &mut items {
                    self.next_into(item)?;
                }
                self.depth -= 1;
                Unit::List(items)
            }
            tag::MAP | tag::MAP_SHORT..=0xdf => {
                let n = self.count(t, tag::MAP_SHORT)?;
                // An entry takes at least two bytes: allocate no more than the input can fill.
                if n > (self.data.len() - self.pos) / 2 {
                    return Err(self.truncated("the entries of a map"));
                }
                self.enter()?;
                // Filled in place, as a list's items are.
                let mut entries = Vec::with_capacity(n);
                entries.resize_with(n, || (Unit::None, Unit::None));
                for (k, v) in &mut entries {
                    self.next_into(k)?;
                    self.next_into(v)?;
                }
                self.depth -= 1;
                Unit::Map(
                    Map::from_entries(entries)
                        .map_err(|_| DecodeError::DuplicateKey { offset: start })?,
                )
            }
            _ => {
                return Err(DecodeError::UnknownTag {
                    tag: t,
                    offset: start,
                })
            }
        };
        Ok(())
    }

    /// The int after its tag `t` (one of `INT_POS`, `INT_NEG`, `BIG_POS`, `BIG_NEG`) at
    /// `start`. A big magnitude is shared with the input, not converted.
    #[inline]
    fn int_after_tag(&mut self, t: u8, start: usize) -> Result<Int, DecodeError> {
        Ok(match t {
            tag::INT_POS | tag::INT_NEG => {
                let v = self.varint("an int")?;
                let short_max = if t == tag::INT_POS { 63 } else { 31 };
                if v <= short_max {
                    return Err(self.non_canonical(start, "int fits the one-byte form"));
                }
                match (t, i64::try_from(v)) {
                    (tag::INT_POS, Ok(v)) => Int::from(v),
                    (_, Ok(v)) => Int::from(-1 - v),
                    (tag::INT_POS, Err(_)) => Int::from_u64_magnitude(false, v),
                    // -1 - v: magnitude v + 1, which is 2^64 for the largest v.
                    (_, Err(_)) => match v.checked_add(1) {
                        Some(m) => Int::from_u64_magnitude(true, m),
                        None => Int::from_big_parts(true, Bytes::from_static(TWO_POW_64)),
                    },
                }
            }
            _ => self.big_int_after_tag(t, start)?,
        })
    }

    /// The int after its tag `t` (`BIG_POS` or `BIG_NEG`) at `start`: the magnitude is shared
    /// with the input, not converted.
    #[cfg_attr(not(debug_assertions), inline(always))]
    fn big_int_after_tag(&mut self, t: u8, start: usize) -> Result<Int, DecodeError> {
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
        let mag = self.input.slice(self.pos..end);
        self.pos = end;
        Ok(Int::from_big_parts(negative, mag))
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
