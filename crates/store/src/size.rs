//! Sizes of units: the length of their canonical binary encoding.
//!
//! vnix counted 32 bytes per node plus payload, an estimate of its in-memory layout. Plexus
//! measures what a unit really costs to store or send: the number of bytes of its canonical
//! encoding as a document (`docs/units-binary.md`), version byte included. Equal units have
//! equal sizes on every node.

use num_bigint::BigInt;
use plexus_units::{Dec, Unit};

/// The size of `u` in bytes: the length of `plexus_units::encode(u)`.
pub fn size(u: &Unit) -> u64 {
    let mut out = Vec::new();
    plexus_units::encode_into(u, &mut out);
    // + the version byte of a document.
    out.len() as u64 + 1
}

/// The length in bytes of a map's header (tag and count) for `n` entries: maps of up to 15
/// entries carry the count in the tag byte, larger ones a varint after it.
pub(crate) fn map_header_len(n: u64) -> u64 {
    if n <= 15 {
        1
    } else {
        1 + varint_len(n)
    }
}

fn varint_len(mut n: u64) -> u64 {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// A unit of data size: bytes, or binary kilo-, mega-, gigabytes (1024, 1024², 1024³ bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeUnit {
    /// Bytes: sizes are ints.
    B,
    /// KiB (1024 bytes).
    Kb,
    /// MiB (1024² bytes).
    Mb,
    /// GiB (1024³ bytes).
    Gb,
}

impl SizeUnit {
    /// The unit named by a command suffix: `kb`, `mb`, `gb` (and `b`).
    pub fn from_suffix(s: &str) -> Option<SizeUnit> {
        match s {
            "b" => Some(SizeUnit::B),
            "kb" => Some(SizeUnit::Kb),
            "mb" => Some(SizeUnit::Mb),
            "gb" => Some(SizeUnit::Gb),
            _ => None,
        }
    }

    /// Reads a command name `base[.kb|.mb|.gb]`: the unit it asks for, if it is `base` or
    /// `base.` followed by a suffix.
    pub fn parse_command(name: &str, base: &str) -> Option<SizeUnit> {
        let rest = name.strip_prefix(base)?;
        if rest.is_empty() {
            return Some(SizeUnit::B);
        }
        SizeUnit::from_suffix(rest.strip_prefix('.')?)
    }

    /// `bytes` in this unit: an int for bytes, an exact dec otherwise (a power of two
    /// divides exactly in decimal: 1536 bytes are `1.5` kb, 1 byte is `0.0009765625` kb).
    pub fn scale(self, bytes: u64) -> Unit {
        let pow = match self {
            SizeUnit::B => return Unit::Int(BigInt::from(bytes).into()),
            SizeUnit::Kb => 10u32,
            SizeUnit::Mb => 20,
            SizeUnit::Gb => 30,
        };
        // bytes / 2^pow = bytes · 5^pow / 10^pow.
        let mantissa = BigInt::from(bytes) * BigInt::from(5u32).pow(pow);
        Unit::Dec(Dec::new(mantissa, i64::from(pow)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_units::parse;

    #[test]
    fn scales_exactly() {
        assert_eq!(SizeUnit::B.scale(1536), Unit::int(1536));
        assert_eq!(SizeUnit::Kb.scale(1536), parse("1.5").unwrap());
        assert_eq!(SizeUnit::Kb.scale(1), parse("0.0009765625").unwrap());
        assert_eq!(SizeUnit::Mb.scale(3 << 20), parse("3.0").unwrap());
        assert_eq!(SizeUnit::Gb.scale(0), parse("0.0").unwrap());
        assert_eq!(
            SizeUnit::B.scale(u64::MAX),
            parse("18446744073709551615").unwrap()
        );
    }

    #[test]
    fn commands() {
        assert_eq!(
            SizeUnit::parse_command("get.size", "get.size"),
            Some(SizeUnit::B)
        );
        assert_eq!(
            SizeUnit::parse_command("get.size.kb", "get.size"),
            Some(SizeUnit::Kb)
        );
        assert_eq!(SizeUnit::parse_command("get.sizekb", "get.size"), None);
        assert_eq!(SizeUnit::parse_command("get.size.tb", "get.size"), None);
    }

    #[test]
    fn sizes_are_encoded_lengths() {
        for t in ["-", "1", "{a:[1 2 3] b:`hello`}", "x\"00ff\""] {
            let u = parse(t).unwrap();
            assert_eq!(size(&u), plexus_units::encode(&u).len() as u64);
        }
        for n in [0u64, 15, 16, 127, 128, 16383, 16384] {
            let entries = (0..n).map(|i| (Unit::int(i as i64), Unit::None)).collect();
            let m = Unit::Map(plexus_units::Map::from_entries(entries).unwrap());
            let body: u64 = (0..n).map(|i| size(&Unit::int(i as i64)) - 1 + 1).sum();
            assert_eq!(size(&m), 1 + map_header_len(n) + body, "n = {n}");
        }
    }
}
