//! Reading arguments out of messages, shared by the services. Commands themselves are read
//! by the kernel's command tables ([`plexus_kernel::Table`]).

use plexus_kernel::Error;
pub use plexus_kernel::{command, Cmd};
use plexus_units::{Int, Unit};

/// The int in `u` as an `i64`, or an `arg.bad` error saying what `what` must be.
pub fn int64(u: &Unit, what: &str) -> Result<i64, Error> {
    u.as_int()
        .and_then(Int::to_i64)
        .ok_or_else(|| Error::bad_argument(format!("{what} must be an int in the 64-bit range")))
}

/// A non-negative int that fits `usize` (counts, sizes, indexes).
pub fn count(u: &Unit, what: &str) -> Result<usize, Error> {
    u.as_int()
        .and_then(Int::to_i64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| Error::bad_argument(format!("{what} must be a non-negative int")))
}

/// A non-negative int that fits `u32`.
pub fn uint32(u: &Unit, what: &str) -> Result<u32, Error> {
    u.as_int()
        .and_then(Int::to_i64)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| Error::bad_argument(format!("{what} must be an int from 0 to {}", u32::MAX)))
}

/// The elements of a list or pair.
pub fn elements(u: &Unit) -> Option<Vec<&Unit>> {
    match u {
        Unit::List(l) => Some(l.iter().collect()),
        Unit::Pair(p) => Some(vec![&p.0, &p.1]),
        _ => None,
    }
}

/// A map of `entries`, keys as strings: how the services build their replies.
pub fn map_of(entries: impl IntoIterator<Item = (&'static str, Unit)>) -> Unit {
    let mut m = plexus_units::Map::new();
    for (k, v) in entries {
        m.insert(Unit::str(k), v);
    }
    Unit::Map(m)
}

/// `n` as an int unit (saturating at `i64::MAX`).
pub fn int_u64(n: u64) -> Unit {
    Unit::int(i64::try_from(n).unwrap_or(i64::MAX))
}
