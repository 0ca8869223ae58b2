//! Reading commands out of messages, shared by the services.
//!
//! A command comes in one of three forms: a bare string `cmd`, a pair `(cmd arg)`, or a map
//! `{cmd:arg opt:val …}` whose first key is the command and whose other entries are options.

use plexus_kernel::Error;
use plexus_units::{Int, Map, Unit};

/// A message read as a command.
#[derive(Clone, Copy, Debug)]
pub struct Cmd<'a> {
    /// The command's name.
    pub name: &'a str,
    /// Its argument, absent in the bare form.
    pub arg: Option<&'a Unit>,
    /// The whole map in the map form, to read options from.
    pub opts: Option<&'a Map>,
}

impl<'a> Cmd<'a> {
    /// The argument, or a `arg.bad` error naming the command.
    pub fn arg(&self) -> Result<&'a Unit, Error> {
        self.arg
            .ok_or_else(|| Error::bad_argument(format!("{} needs an argument", self.name)))
    }

    /// Option `key` of the map form.
    pub fn opt(&self, key: &str) -> Option<&'a Unit> {
        self.opts.and_then(|m| m.get_str(key))
    }

    /// Boolean option `key`, `default` when absent.
    pub fn opt_bool(&self, key: &str, default: bool) -> Result<bool, Error> {
        match self.opt(key) {
            None => Ok(default),
            Some(Unit::Bool(b)) => Ok(*b),
            Some(other) => Err(Error::bad_argument(format!(
                "option {key} must be t or f, not {}",
                plexus_units::to_short(other, 20)
            ))),
        }
    }

    /// Count option `key` (a non-negative int that fits `usize`), `None` when absent.
    pub fn opt_count(&self, key: &str) -> Result<Option<usize>, Error> {
        self.opt(key).map(|u| count(u, key)).transpose()
    }
}

/// Reads `msg` as a command, if it has one of the three forms.
pub fn command(msg: &Unit) -> Option<Cmd<'_>> {
    match msg {
        Unit::Str(s) => Some(Cmd {
            name: s,
            arg: None,
            opts: None,
        }),
        Unit::Pair(p) => Some(Cmd {
            name: p.0.as_str()?,
            arg: Some(&p.1),
            opts: None,
        }),
        Unit::Map(m) => {
            let (k, v) = m.iter().next()?;
            Some(Cmd {
                name: k.as_str()?,
                arg: Some(v),
                opts: Some(m),
            })
        }
        _ => None,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_units::parse;

    #[test]
    fn reads_the_three_forms() {
        let u = parse("len").unwrap();
        let c = command(&u).unwrap();
        assert_eq!((c.name, c.arg), ("len", None));
        let u = parse("(len [1 2])").unwrap();
        let c = command(&u).unwrap();
        assert_eq!(c.name, "len");
        assert_eq!(c.arg, Some(&parse("[1 2]").unwrap()));
        let u = parse("{say:hi nl:t shrt:5}").unwrap();
        let c = command(&u).unwrap();
        assert_eq!(c.name, "say");
        assert!(c.opt_bool("nl", false).unwrap());
        assert_eq!(c.opt_count("shrt").unwrap(), Some(5));
        assert!(command(&parse("[1 2]").unwrap()).is_none());
    }
}
