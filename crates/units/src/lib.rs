//! Plexus units: the one data model of the system.
//!
//! Everything a Plexus user or service handles is a [`Unit`]: none, bool, byte, int (any size),
//! dec (exact decimal), str, bytes, ref (`@a.b`), stream (`u@serv[:node]`, a lazy service
//! call), pair, list and map. This crate is pure (no I/O) and gives units
//!
//! - a **text notation** ([`parse`], [`to_text`]; grammar in `docs/units-text.md`) whose
//!   canonical printer is the exact inverse of the parser, plus [`to_pretty`] and [`to_short`]
//!   for people;
//! - a **canonical binary encoding** ([`encode`], [`decode`], [`decode_bytes`]; format in
//!   `docs/units-binary.md`): one encoding per value, so the bytes can be hashed and signed;
//!   [`decode_ref`] reads a document into a [`UnitRef`] that borrows it (and an [`Arena`]),
//!   the fastest way to inspect a message;
//! - a **JSON bridge** ([`json`]);
//! - [`Limits`] on depth, size and number length against hostile input.
//!
//! ```
//! use plexus_units::{decode, encode, parse, to_text, Unit};
//!
//! let u = parse("{mul:[2 {inc:4} (sub (10 3))]}@math.calc").unwrap();
//! assert_eq!(to_text(&u), "{mul:[2 {inc:4} (sub (10 3))]}@math.calc");
//! assert_eq!(decode(&encode(&u)).unwrap(), u);
//! assert_eq!(parse("1.05").unwrap(), parse("1.050").unwrap());
//! assert_ne!(parse("`123`").unwrap(), Unit::int(123));
//! ```

pub mod binary;
mod borrowed;
pub mod code;
pub mod json;
mod print;
#[cfg(feature = "proptest")]
pub mod testing;
pub mod text;
mod value;

pub use binary::{
    decode, decode_bytes, decode_bytes_with, decode_ref, decode_ref_with, encode, encode_into,
    encode_parts, DecodeError, SHARED_PART_MIN,
};
pub use borrowed::{Arena, DecRef, IntRef, MapRef, PathRef, StreamRef, UnitRef};
pub use print::{dec_to_string, to_pretty, to_short, to_text};
pub use text::ParseError;
pub use value::{Dec, DuplicateKey, Int, Kind, Map, NameError, Path, Str, Stream, Unit};

/// Bounds on what the parser and decoder accept, so hostile input fails fast with bounded
/// memory. [`Limits::DEFAULT`] suits messages; raise them for trusted bulk data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists, pairs, maps and stream links. The parser and decoder recurse
    /// once per level (about 1 KiB of stack per level in optimized builds, up to ~10 KiB in
    /// debug builds), so keep this to a few hundred on 2 MiB thread stacks.
    pub max_depth: usize,
    /// Largest input in bytes (text or binary).
    pub max_size: usize,
    /// Most decimal digits in one number (ints, and dec mantissas). Big numbers cost
    /// quadratic time to convert, so this bounds the work per number. In binary input the
    /// check is on magnitude bytes (`max_digits / 2 + 1`).
    pub max_digits: usize,
}

impl Limits {
    /// Depth 128, 64 MiB, 4096 digits: for text and JSON, whose numbers cost quadratic time to
    /// convert.
    pub const DEFAULT: Limits = Limits {
        max_depth: 128,
        max_size: 64 << 20,
        max_digits: 4096,
    };

    /// Depth 128, 64 MiB, 1,000,000 digits: the one set of limits for units in binary form
    /// between clients, nodes and the store ([`decode`] and [`decode_bytes`] use it). A
    /// binary number's magnitude is read in linear time, so numbers may be as long as a
    /// service computes them (`math.calc` stops at this many digits): every value a service
    /// returns within these limits can be delivered.
    pub const WIRE: Limits = Limits {
        max_depth: Limits::DEFAULT.max_depth,
        max_size: Limits::DEFAULT.max_size,
        max_digits: 1_000_000,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Parses one unit from its text notation with the default [`Limits`].
pub fn parse(text: &str) -> Result<Unit, ParseError> {
    text::parse_with(text, &Limits::DEFAULT)
}

/// Parses one unit with explicit limits.
pub fn parse_with(text: &str, limits: &Limits) -> Result<Unit, ParseError> {
    text::parse_with(text, limits)
}
