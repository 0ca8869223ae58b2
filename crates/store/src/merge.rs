//! Merging and saving into units: pure functions, no I/O.
//!
//! These are vnix's `merge_with` and `merge(path, v)` (reference §2.4), with two fixes: maps
//! have unique keys (a pair sets an entry instead of appending a duplicate), and saving to a
//! path that does not exist yet creates it instead of silently doing nothing.

use plexus_units::{Kind, Path, Str, Unit};

/// Merges `b` into `a`:
///
/// | a | b | result |
/// |---|---|---|
/// | equal to b | | `a` |
/// | list | list | `a` then `b`'s elements (concatenation) |
/// | list | anything else | `a` with `b` appended |
/// | map | pair `(k v)` | `a` with entry `k` set to `v`: an existing key keeps its position and gets the new value; a new key goes last |
/// | map | map | each key of `b` already in `a` is merged recursively (in `a`'s order); `b`'s other entries are appended in `b`'s order |
/// | anything else | | `b` (scalars are replaced) |
///
/// Map keys stay unique. Merging a map of `n` entries with one of `m` entries costs
/// `O(n·m)` key comparisons (maps are ordered association lists).
pub fn merge_with(a: Unit, b: Unit) -> Unit {
    if a == b {
        return a;
    }
    match (a, b) {
        (Unit::List(mut a), Unit::List(b)) => {
            a.extend(b);
            Unit::List(a)
        }
        (Unit::List(mut a), b) => {
            a.push(b);
            Unit::List(a)
        }
        (Unit::Map(mut a), Unit::Pair(p)) => {
            let (k, v) = *p;
            a.insert(k, v);
            Unit::Map(a)
        }
        (Unit::Map(mut a), Unit::Map(b)) => {
            for (k, vb) in b.into_entries() {
                // Taking the old value out (by replacing it with none) keeps its position.
                match a.insert(k.clone(), Unit::None) {
                    Some(va) => {
                        a.insert(k, merge_with(va, vb));
                    }
                    None => {
                        a.insert(k, vb);
                    }
                }
            }
            Unit::Map(a)
        }
        (_, b) => b,
    }
}

/// Why [`save_at`] could not save.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaveError {
    /// A unit on the way to the target cannot hold the next segment: a scalar (other than
    /// none), a stream or a ref.
    #[error("cannot save at {target}: {at} holds {}, not a map", article(*kind))]
    NotAContainer {
        /// The whole path being saved to, as text (`@a.b.c`).
        target: String,
        /// The prefix that holds the scalar (`@a.b`).
        at: String,
        /// Its type.
        kind: Kind,
    },
    /// A list or pair on the way has no element at that segment (a list takes an index
    /// below its length, a pair `0` or `1`).
    #[error("cannot save at {target}: {at} is {what}, which has no element {segment}")]
    NoSuchElement {
        /// The whole path being saved to.
        target: String,
        /// The prefix that holds the list or pair.
        at: String,
        /// The segment that does not name an element.
        segment: String,
        /// `a pair` or `a list of n elements`.
        what: String,
    },
}

/// Saves `value` at `path` inside `root`, with merge semantics.
///
/// - If `path` exists, the unit there becomes `merge_with(old, value)` ([`merge_with`]).
/// - Segments are followed as [`Unit::find`] does: a map by string key, a list by decimal
///   index, a pair by `0`/`1`.
/// - A **missing map key creates the path**: the key is appended to that map, holding
///   `value` wrapped in one new single-entry map per remaining segment (saving `5` at
///   `@a.b.c` into `{}` gives `{a:{b:{c:5}}}`).
/// - A none (`-`) on the way counts as missing and is replaced by such new maps.
/// - Any other unit on the way that cannot hold the next segment — a scalar, a ref, a stream,
///   a list without that index, a pair with a segment other than `0`/`1` — is an error, and
///   `root` is left unchanged: a save never destroys data to make room for a path.
pub fn save_at(root: &mut Unit, path: &Path, value: Unit) -> Result<(), SaveError> {
    save_in(root, path, 0, value)
}

/// [`save_at`] from segment `i` of `path` on; `at` is the unit at `path[..i]`. On error `at`
/// is unchanged.
pub(crate) fn save_in(at: &mut Unit, path: &Path, i: usize, value: Unit) -> Result<(), SaveError> {
    let segs = path.segments();
    let Some(seg) = segs.get(i) else {
        let old = std::mem::take(at);
        *at = merge_with(old, value);
        return Ok(());
    };
    match at {
        Unit::None => {
            *at = nest(&segs[i..], value);
            Ok(())
        }
        Unit::Map(m) => {
            let key = Unit::Str(seg.clone());
            // Take the child out (keeping its position), work on it, put it back.
            match m.insert(key.clone(), Unit::None) {
                Some(mut child) => {
                    let out = save_in(&mut child, path, i + 1, value);
                    m.insert(key, child);
                    out
                }
                None => {
                    m.insert(key, nest(&segs[i + 1..], value));
                    Ok(())
                }
            }
        }
        Unit::Pair(p) => match &**seg {
            "0" => save_in(&mut p.0, path, i + 1, value),
            "1" => save_in(&mut p.1, path, i + 1, value),
            _ => Err(no_element(path, i, "a pair".to_owned())),
        },
        Unit::List(l) => {
            let len = l.len();
            // Indexes read as `Unit::find` reads them.
            match seg.parse::<usize>().ok().and_then(|n| l.get_mut(n)) {
                Some(e) => save_in(e, path, i + 1, value),
                None => Err(no_element(path, i, format!("a list of {len} elements"))),
            }
        }
        other => Err(SaveError::NotAContainer {
            target: ref_text(segs),
            at: ref_text(&segs[..i]),
            kind: other.kind(),
        }),
    }
}

fn no_element(path: &Path, i: usize, what: String) -> SaveError {
    let segs = path.segments();
    SaveError::NoSuchElement {
        target: ref_text(segs),
        at: ref_text(&segs[..i]),
        segment: segs.get(i).map(|s| s.to_string()).unwrap_or_default(),
        what,
    }
}

/// `a str`, `an int`…
pub(crate) fn article(kind: Kind) -> String {
    let name = kind.name();
    match name.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {name}"),
        _ => format!("a {name}"),
    }
}

/// `value` wrapped in one single-entry map per segment, innermost last.
pub(crate) fn nest(segs: &[Str], value: Unit) -> Unit {
    segs.iter().rev().fold(value, |inner, seg| {
        let mut m = plexus_units::Map::new();
        m.insert(Unit::Str(seg.clone()), inner);
        Unit::Map(m)
    })
}

/// A path as text, `@a.b`; the empty prefix is the store's root, written `the root`.
pub(crate) fn ref_text(segs: &[Str]) -> String {
    match Path::new(segs.to_vec()) {
        Some(p) => plexus_units::to_text(&Unit::Ref(p)),
        None => "the root".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_units::parse;

    fn u(t: &str) -> Unit {
        parse(t).unwrap()
    }

    fn p(t: &str) -> Path {
        Path::parse_dotted(t).unwrap()
    }

    #[test]
    fn merge_table() {
        let cases = [
            ("5", "5", "5"),
            ("[1 2]", "[1 2]", "[1 2]"),
            ("[1 2]", "[3]", "[1 2 3]"),
            ("[1 2]", "3", "[1 2 3]"),
            ("[1 2]", "{a:1}", "[1 2 {a:1}]"),
            ("{a:1 b:2}", "(a 9)", "{a:9 b:2}"),
            ("{a:1 b:2}", "(c 9)", "{a:1 b:2 c:9}"),
            (
                "{a:[1] b:{x:1}}",
                "{b:{y:2} a:[2] c:3}",
                "{a:[1 2] b:{x:1 y:2} c:3}",
            ),
            ("{a:1}", "5", "5"),
            ("5", "[1]", "[1]"),
            ("abc", "def", "def"),
            ("-", "{a:1}", "{a:1}"),
            ("(1 2)", "(3 4)", "(3 4)"),
        ];
        for (a, b, want) in cases {
            assert_eq!(merge_with(u(a), u(b)), u(want), "merge_with({a}, {b})");
        }
    }

    #[test]
    fn save_creates_missing_paths() {
        let mut root = u("{}");
        save_at(&mut root, &p("a.b.c"), u("5")).unwrap();
        assert_eq!(root, u("{a:{b:{c:5}}}"));
        save_at(&mut root, &p("a.b.d"), u("6")).unwrap();
        assert_eq!(root, u("{a:{b:{c:5 d:6}}}"));
        save_at(&mut root, &p("a.b.c"), u("7")).unwrap();
        assert_eq!(root, u("{a:{b:{c:7 d:6}}}"));
        save_at(&mut root, &p("a.l"), u("[1]")).unwrap();
        save_at(&mut root, &p("a.l"), u("2")).unwrap();
        assert_eq!(root, u("{a:{b:{c:7 d:6} l:[1 2]}}"));
        save_at(&mut root, &p("a.l.1"), u("{x:1}")).unwrap();
        assert_eq!(root, u("{a:{b:{c:7 d:6} l:[1 {x:1}]}}"));
        save_at(&mut root, &p("a.l.1.y"), u("2")).unwrap();
        assert_eq!(root, u("{a:{b:{c:7 d:6} l:[1 {x:1 y:2}]}}"));
    }

    #[test]
    fn none_on_the_way_is_replaced() {
        let mut root = u("{a:-}");
        save_at(&mut root, &p("a.b"), u("1")).unwrap();
        assert_eq!(root, u("{a:{b:1}}"));
        let mut none = Unit::None;
        save_at(&mut none, &p("x.y"), u("1")).unwrap();
        assert_eq!(none, u("{x:{y:1}}"));
    }

    #[test]
    fn scalars_on_the_way_are_errors_and_nothing_changes() {
        let before = u("{a:{b:5} l:[1 2] p:(1 2)}");
        for (path, why) in [
            (
                "a.b.c",
                "cannot save at @a.b.c: @a.b holds an int, not a map",
            ),
            (
                "l.2",
                "cannot save at @l.2: @l is a list of 2 elements, which has no element 2",
            ),
            (
                "l.x.y",
                "cannot save at @l.x.y: @l is a list of 2 elements, which has no element x",
            ),
            (
                "p.2",
                "cannot save at @p.2: @p is a pair, which has no element 2",
            ),
        ] {
            let mut root = before.clone();
            let e = save_at(&mut root, &p(path), u("1")).unwrap_err();
            assert_eq!(e.to_string(), why);
            assert_eq!(root, before);
        }
        let mut s = u("abc");
        assert!(save_at(&mut s, &p("x"), u("1")).is_err());
        assert_eq!(s, u("abc"));
    }
}
