//! The service interface, help texts and policies.

use std::future::Future;
use std::pin::Pin;

use plexus_units::{Map, Unit};

use crate::{Cx, Error};

/// A boxed future, as returned by [`Service::call`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a call gives: a value, nothing (a call done for its effect, like printing), or an
/// error.
pub type Outcome = Result<Option<Unit>, Error>;

/// How a service wants its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every stream and ref in the message is evaluated before the service sees it (depth
    /// first, left to right, each stream once).
    Evaluated,
    /// The message arrives as written; the service evaluates the parts it needs with
    /// [`Cx::eval`] (for loops, higher-order commands, benchmarks).
    Raw,
}

/// Who may call a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Only the service's owner.
    Owner,
    /// Any user registered with the node (`sys.usr`).
    Registered,
    /// Any user with a valid signature.
    Anyone,
}

impl Policy {
    /// The policy's name: `owner`, `registered` or `anyone`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Owner => "owner",
            Policy::Registered => "registered",
            Policy::Anyone => "anyone",
        }
    }
}

/// A named handler of messages.
///
/// Implementations must never panic on any message: every malformed input is an [`Error`].
pub trait Service: Send + Sync + 'static {
    /// The service's help: name, description, examples and commands.
    fn help(&self) -> &Help;

    /// How messages are delivered; [`Delivery::Evaluated`] unless overridden.
    fn delivery(&self) -> Delivery {
        Delivery::Evaluated
    }

    /// Whether this service acts for the caller's session (`io.term`): such services are always
    /// run by the node the session is connected to.
    fn session_scoped(&self) -> bool {
        false
    }

    /// Whether `msg` waits for a place in the service's mailbox (of [`crate::SERVICE_MAILBOX`]
    /// places) before it is handled; `true` unless overridden. A service that admits its work
    /// by other means (`sys.task` bounds each user's running tasks) returns `false`, so that
    /// its listings and `kill` never queue behind long-running calls.
    fn queues(&self, _msg: &Unit) -> bool {
        true
    }

    /// Handles one message.
    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome>;
}

/// One worked example in a help text. Tests run every example and check its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// What it shows.
    pub info: &'static str,
    /// The message, in units text (with the stream to the service).
    pub com: &'static str,
    /// The expected result in units text; `None` when the call has no value.
    pub res: Option<&'static str>,
}

/// One command in a help text's manual.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command's name.
    pub name: &'static str,
    /// What it does.
    pub info: &'static str,
    /// Its forms, in units text with placeholders.
    pub forms: &'static [&'static str],
}

/// A service's help, served by the kernel for `help`, `help.info`, `help.tut`, `help.man`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Help {
    /// The service name, such as `math.calc`.
    pub name: &'static str,
    /// One sentence.
    pub info: &'static str,
    /// Worked examples.
    pub tut: Vec<Example>,
    /// The commands.
    pub man: Vec<Command>,
}

impl Help {
    /// The help as a unit `{name info tut:[{info com res}…] man:{cmd:{info forms}…}}`.
    pub fn to_unit(&self) -> Unit {
        let mut m = Map::new();
        m.insert(Unit::str("name"), Unit::str(self.name));
        m.insert(Unit::str("info"), Unit::str(self.info));
        m.insert(Unit::str("tut"), self.tut_unit());
        m.insert(Unit::str("man"), self.man_unit());
        Unit::Map(m)
    }

    /// The examples as a list of `{info com res}` maps.
    pub fn tut_unit(&self) -> Unit {
        Unit::List(
            self.tut
                .iter()
                .map(|e| {
                    let mut m = Map::new();
                    m.insert(Unit::str("info"), Unit::str(e.info));
                    m.insert(
                        Unit::str("com"),
                        plexus_units::parse(e.com).unwrap_or_else(|_| Unit::str(e.com)),
                    );
                    m.insert(
                        Unit::str("res"),
                        match e.res {
                            Some(r) => plexus_units::parse(r).unwrap_or_else(|_| Unit::str(r)),
                            None => Unit::None,
                        },
                    );
                    Unit::Map(m)
                })
                .collect(),
        )
    }

    /// The commands as a map `{cmd:{info forms:[…]}}`.
    pub fn man_unit(&self) -> Unit {
        let mut m = Map::new();
        for c in &self.man {
            let mut entry = Map::new();
            entry.insert(Unit::str("info"), Unit::str(c.info));
            entry.insert(
                Unit::str("forms"),
                Unit::List(c.forms.iter().map(|f| Unit::str(f)).collect()),
            );
            m.insert(Unit::str(c.name), Unit::Map(entry));
        }
        Unit::Map(m)
    }
}
