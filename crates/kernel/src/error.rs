//! Errors as units: `{err:<code> msg:<text> …}`.

use std::fmt;

use plexus_units::{Map, Str, Unit};

/// A failed call. Errors are values: they print and travel as the unit
/// `{err:<code> msg:<text> …}` (plus fields that help, such as `serv` or `path`), and they stop
/// only the evaluation they occur in. Codes are dotted words; see [`code`] for the standard ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Str,
    message: String,
    extra: Vec<(Str, Unit)>,
}

/// The standard error codes (kept in `plexus-units`, so crates below the kernel use the same
/// ones).
pub use plexus_units::code;

impl Error {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Error {
        Error {
            code: Str::from(code),
            message: message.into(),
            extra: Vec::new(),
        }
    }

    /// Adds a field to the error unit.
    pub fn with(mut self, key: &str, value: impl Into<Unit>) -> Error {
        self.extra.push((Str::from(key), value.into()));
        self
    }

    /// [`code::BAD_ARGUMENT`].
    pub fn bad_argument(message: impl Into<String>) -> Error {
        Error::new(code::BAD_ARGUMENT, message)
    }

    /// [`code::UNKNOWN_COMMAND`] for `service`.
    pub fn unknown_command(service: &str, msg: &Unit) -> Error {
        Error::new(
            code::UNKNOWN_COMMAND,
            format!(
                "{service} does not understand {} (try help@{service})",
                plexus_units::to_short(msg, 40)
            ),
        )
        .with("serv", service)
    }

    /// [`code::INTERNAL`].
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(code::INTERNAL, message)
    }

    /// The error code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An extra field.
    pub fn get(&self, key: &str) -> Option<&Unit> {
        self.extra.iter().find(|(k, _)| &**k == key).map(|(_, v)| v)
    }

    /// The error as a unit `{err:code msg:text …}`.
    pub fn to_unit(&self) -> Unit {
        let mut m = Map::new();
        m.insert(Unit::str("err"), Unit::Str(self.code.clone()));
        m.insert(Unit::str("msg"), Unit::str(&self.message));
        for (k, v) in &self.extra {
            if !matches!(&**k, "err" | "msg") {
                m.insert(Unit::Str(k.clone()), v.clone());
            }
        }
        Unit::Map(m)
    }

    /// Reads an error unit back; `None` if `u` is not one.
    pub fn from_unit(u: &Unit) -> Option<Error> {
        let m = u.as_map()?;
        let code = m.get_str("err")?.as_str()?;
        let message = m.get_str("msg").and_then(Unit::as_str).unwrap_or("");
        let mut e = Error::new(code, message);
        for (k, v) in m {
            match k.as_str() {
                Some("err" | "msg") => {}
                Some(key) => e = e.with(key, v.clone()),
                None => {}
            }
        }
        Some(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_units() {
        let e = Error::new(code::NOT_FOUND, "nothing at @a.b").with("path", Unit::str("a.b"));
        let u = e.to_unit();
        assert_eq!(
            plexus_units::to_text(&u),
            "{err:not.found msg:`nothing at @a.b` path:a.b}"
        );
        assert_eq!(Error::from_unit(&u), Some(e));
        assert_eq!(Error::from_unit(&Unit::int(1)), None);
    }
}
