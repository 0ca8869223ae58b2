//! Command tables: a service's commands in one table that drives its dispatch, its help and
//! the check of each command's argument, so adding a command is adding one entry.
//!
//! A command comes in one of three forms: a bare string `cmd`, a pair `(cmd arg)`, or a map
//! `{cmd:arg opt:val …}` whose first key is the command and whose other entries are options.

use std::collections::HashMap;

use plexus_units::{Int, Map, Unit};

use crate::service::{Command, Example, Help};
use crate::Error;

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
        self.opt(key)
            .map(|u| {
                u.as_int()
                    .and_then(Int::to_i64)
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or_else(|| Error::bad_argument(format!("{key} must be a non-negative int")))
            })
            .transpose()
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

/// Whether a command takes an argument; checked before its handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Only the pair or map form: the bare name is an `arg.bad` error.
    Required,
    /// Any form; the handler reads the argument if there is one.
    Optional,
    /// Only the bare form: with an argument, the message is not this command.
    None,
}

/// One command of a service: its help entry, the names it answers to, its argument and its
/// handler `H` (a function, or a value the service dispatches on).
pub struct Entry<H> {
    /// The command as its help describes it.
    pub command: Command,
    /// Other names it answers to (`size.kb` for `size`), shown in its forms.
    pub also: &'static [&'static str],
    /// Whether it also answers to its name with suffixes, `name.<suffix>…` (`wait.ms` for
    /// `wait`), which its handler reads (and refuses if it does not know them).
    pub family: bool,
    /// Whether it needs an argument.
    pub arg: Arg,
    /// What runs it.
    pub run: H,
}

impl<H> Entry<H> {
    /// A command named `name`, described by `info` and its `forms`, run by `run`.
    pub fn new(
        name: &'static str,
        info: &'static str,
        forms: &'static [&'static str],
        arg: Arg,
        run: H,
    ) -> Entry<H> {
        Entry {
            command: Command { name, info, forms },
            also: &[],
            family: false,
            arg,
            run,
        }
    }

    /// The same command, also answering to its name with suffixes.
    pub fn family(mut self) -> Entry<H> {
        self.family = true;
        self
    }

    /// The same command, also answering to `names`.
    pub fn also(mut self, names: &'static [&'static str]) -> Entry<H> {
        self.also = names;
        self
    }
}

/// A service's commands and its help, made from one list of entries.
pub struct Table<H> {
    help: Help,
    entries: Vec<Entry<H>>,
    by_name: HashMap<&'static str, usize>,
}

impl<H> Table<H> {
    /// The table of service `name`, described by `info` and `tut`, with `entries` as its
    /// commands (in the order of its manual; a name given twice keeps its first entry).
    pub fn new(
        name: &'static str,
        info: &'static str,
        tut: Vec<Example>,
        entries: Vec<Entry<H>>,
    ) -> Table<H> {
        let mut by_name = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            for n in std::iter::once(&e.command.name).chain(e.also) {
                by_name.entry(*n).or_insert(i);
            }
        }
        let help = Help {
            name,
            info,
            tut,
            man: entries.iter().map(|e| e.command.clone()).collect(),
        };
        Table {
            help,
            entries,
            by_name,
        }
    }

    /// The help, made from the entries.
    pub fn help(&self) -> &Help {
        &self.help
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry<H>] {
        &self.entries
    }

    /// The entry answering to `name`: by that name, or else the family of its longest
    /// prefix ending before a `.`.
    pub fn get(&self, name: &str) -> Option<&Entry<H>> {
        if let Some(&i) = self.by_name.get(name) {
            return Some(&self.entries[i]);
        }
        let mut prefix = name;
        while let Some(dot) = prefix.rfind('.') {
            prefix = &prefix[..dot];
            if let Some(&i) = self.by_name.get(prefix) {
                let e = &self.entries[i];
                return e.family.then_some(e);
            }
        }
        None
    }

    /// The command in `msg` and its entry, if `msg` is a command of this table.
    pub fn find<'m>(&self, msg: &'m Unit) -> Option<(&Entry<H>, Cmd<'m>)> {
        let c = command(msg)?;
        let entry = self.get(c.name)?;
        if entry.arg == Arg::None && c.arg.is_some() {
            return None;
        }
        Some((entry, c))
    }

    /// The command in `msg` and its entry, with its argument checked: `cmd.unknown` if `msg`
    /// is no command of this table, `arg.bad` if the command needs an argument it lacks.
    pub fn lookup<'m>(&self, msg: &'m Unit) -> Result<(&Entry<H>, Cmd<'m>), Error> {
        let (entry, c) = self
            .find(msg)
            .ok_or_else(|| Error::unknown_command(self.help.name, msg))?;
        if entry.arg == Arg::Required {
            c.arg()?;
        }
        Ok((entry, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code;
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

    fn table() -> Table<u8> {
        Table::new(
            "t.svc",
            "A test service",
            vec![],
            vec![
                Entry::new("len", "Length", &["(len u)"], Arg::Required, 1),
                Entry::new("get", "Listings", &["get", "get.all"], Arg::None, 2).also(&["get.all"]),
                Entry::new("wait", "Waits", &["(wait.ms n)"], Arg::Required, 3).family(),
            ],
        )
    }

    #[test]
    fn one_table_gives_dispatch_help_and_argument_checks() {
        let t = table();
        let names: Vec<&str> = t.help().man.iter().map(|c| c.name).collect();
        assert_eq!(names, ["len", "get", "wait"]);
        let run = |text: &str| t.lookup(&parse(text).unwrap()).map(|(e, _)| e.run);
        assert_eq!(run("(len [1])"), Ok(1));
        assert_eq!(run("{len:x}"), Ok(1));
        assert_eq!(run("get"), Ok(2));
        assert_eq!(run("get.all"), Ok(2));
        assert_eq!(run("(wait 1)"), Ok(3));
        assert_eq!(run("(wait.ms.x 1)"), Ok(3));
        assert_eq!(run("len").unwrap_err().code(), code::BAD_ARGUMENT);
        for unknown in [
            "lens",
            "(x 1)",
            "[len]",
            "5",
            "(get 1)",
            "{get.all:-}",
            "len.x",
            "get.run",
            "wai",
        ] {
            assert_eq!(
                run(unknown).unwrap_err().code(),
                code::UNKNOWN_COMMAND,
                "{unknown}"
            );
        }
    }
}
