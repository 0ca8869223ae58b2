//! `time.chrono`: waiting, uptime, benchmarks.
//!
//! Time units, as command suffixes: `mcs` (microsecond), `ms`, `sec`, `min`, `hour`, `day`,
//! `week`, `mnh` (month, 30 days) and `year` (365 days). vnix counted a month as 4 weeks and
//! a year as 12 such months (336 days); Plexus uses the calendar's average lengths.
//!
//! Changes from vnix:
//!
//! - `wait` sleeps without busy-polling, also accepts `min`, `hour`, `day` (promised by
//!   vnix's help) and decimals (`(wait.sec 0.25)`), and refuses waits longer than
//!   [`MAX_WAIT_SECS`] or negative ones with an error;
//! - `get.up` is the uptime of this node, any size (no 32-bit wrap);
//! - `bch` times the evaluation of its argument only: the service takes its messages raw and
//!   evaluates the benchmarked unit inside the measurement.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use num_bigint::{BigInt, Sign};
use num_traits::ToPrimitive;
use plexus_kernel::{
    code, Arg, BoxFuture, Cx, Delivery, Entry, Error, Example, Help, Outcome, Service, Table,
};
use plexus_units::Unit;

const NAME: &str = "time.chrono";

/// Longest wait `wait` accepts: one week.
pub const MAX_WAIT_SECS: u64 = 7 * 24 * 3600;

/// The `time.chrono` service.
pub struct TimeChrono;

/// The `time.chrono` service.
pub fn service() -> Arc<dyn Service> {
    Arc::new(TimeChrono)
}

/// A time unit: its suffix and length in microseconds.
const UNITS: [(&str, u64); 9] = [
    ("mcs", 1),
    ("ms", 1_000),
    ("sec", 1_000_000),
    ("min", 60_000_000),
    ("hour", 3_600_000_000),
    ("day", 86_400_000_000),
    ("week", 604_800_000_000),
    ("mnh", 30 * 86_400_000_000),
    ("year", 365 * 86_400_000_000),
];

/// The length in microseconds of the unit named by `name` = `base` or `base.<unit>`
/// (`default` when there is no suffix).
fn unit_of(name: &str, base: &str, default: u64) -> Option<u64> {
    let rest = name.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(default);
    }
    let suffix = rest.strip_prefix('.')?;
    UNITS.iter().find(|(s, _)| *s == suffix).map(|(_, us)| *us)
}

const SEC: u64 = 1_000_000;
const MS: u64 = 1_000;

/// The commands, in the order of the manual.
static TABLE: LazyLock<Table<Chrono>> = LazyLock::new(table);

fn table() -> Table<Chrono> {
    Table::new(
        NAME,
        "Time: wait, this node's uptime, and benchmarks of evaluations",
        vec![
            Example {
                info: "Wait 10 milliseconds (no value)",
                com: "(wait.ms 10)@time.chrono",
                res: None,
            },
            Example {
                info: "Wait a fraction of a second",
                com: "{wait.sec:0.01}@time.chrono",
                res: None,
            },
            Example {
                info: "A bare number waits that many seconds",
                com: "0@time.chrono",
                res: None,
            },
        ],
        vec![
            Entry::new(
                "wait",
                "Sleeps, then gives no value. The argument is a non-negative int or \
                       decimal in the unit of the suffix (seconds without one); a bare number \
                       is seconds. At most one week",
                &[
                    "n",
                    "(wait n)",
                    "{wait:n}",
                    "(wait.mcs n)",
                    "(wait.ms n)",
                    "(wait.sec n)",
                    "(wait.min n)",
                    "(wait.hour n)",
                    "(wait.day n)",
                    "{wait.ms:n}",
                ],
                Arg::Required,
                Chrono::Wait,
            )
            .family(),
            Entry::new(
                "get.up",
                "This node's uptime as a whole number of the suffix's unit (seconds \
                       without one). A month is 30 days, a year 365",
                &[
                    "get.up",
                    "get.up.mcs",
                    "get.up.ms",
                    "get.up.sec",
                    "get.up.min",
                    "get.up.hour",
                    "get.up.day",
                    "get.up.week",
                    "get.up.mnh",
                    "get.up.year",
                ],
                Arg::None,
                Chrono::Up,
            )
            .family(),
            Entry::new(
                "bch",
                "Evaluates u (running its streams) and gives the time it took as a \
                       whole number of the suffix's unit (milliseconds without one); the \
                       value of u is discarded, an error in it is the result",
                &[
                    "(bch u)",
                    "(bch.mcs u)",
                    "(bch.ms u)",
                    "(bch.sec u)",
                    "{bch:u}",
                ],
                Arg::Required,
                Chrono::Bench,
            )
            .family(),
        ],
    )
}

/// What a command does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chrono {
    Wait,
    Up,
    Bench,
}

impl Service for TimeChrono {
    fn help(&self) -> &Help {
        TABLE.help()
    }

    fn delivery(&self) -> Delivery {
        Delivery::Raw
    }

    fn call<'a>(&'a self, cx: &'a Cx, msg: Unit) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            // A benchmark evaluates its argument inside the measurement.
            if let Some((entry, c)) = TABLE.find(&msg) {
                let unit = unit_of(c.name, "bch", MS).filter(|_| entry.run == Chrono::Bench);
                if let Some(unit) = unit {
                    let u = c.arg()?.clone();
                    let start = Instant::now();
                    cx.eval(u).await?;
                    return Ok(Some(in_unit(start.elapsed(), unit)));
                }
            }
            // Everything else is evaluated first.
            let msg = cx.eval(msg).await?;
            if matches!(msg, Unit::Int(_) | Unit::Dec(_)) {
                wait(&msg, SEC).await?;
                return Ok(None);
            }
            let unknown = || Error::unknown_command(NAME, &msg);
            let (entry, c) = TABLE.find(&msg).ok_or_else(unknown)?;
            match entry.run {
                Chrono::Wait => {
                    let unit = unit_of(c.name, "wait", SEC).ok_or_else(unknown)?;
                    wait(c.arg()?, unit).await?;
                    Ok(None)
                }
                Chrono::Up => {
                    let unit = unit_of(c.name, "get.up", SEC).ok_or_else(unknown)?;
                    Ok(Some(in_unit(cx.kernel().started().elapsed(), unit)))
                }
                // A benchmark whose name came out of evaluation is none.
                Chrono::Bench => Err(unknown()),
            }
        })
    }
}

/// `d` as a whole number of units of `unit_us` microseconds (rounded down).
fn in_unit(d: Duration, unit_us: u64) -> Unit {
    let n = d.as_micros() / u128::from(unit_us.max(1));
    Unit::Int(BigInt::from(n).into())
}

/// Sleeps `n` units of `unit_us` microseconds.
async fn wait(n: &Unit, unit_us: u64) -> Result<(), Error> {
    let us = wait_micros(n, unit_us)?;
    tokio::time::sleep(Duration::from_micros(us)).await;
    Ok(())
}

/// `n` units of `unit_us` microseconds, in whole microseconds, checked against the bounds.
fn wait_micros(n: &Unit, unit_us: u64) -> Result<u64, Error> {
    let unit_us = unit_us.max(1);
    let (mantissa, scale) = match n {
        Unit::Int(i) => (i.to_bigint(), 0),
        Unit::Dec(d) => (d.mantissa(), d.scale()),
        other => {
            return Err(Error::bad_argument(format!(
                "wait takes a number (of seconds, or of the suffix's unit), not {}",
                plexus_units::to_short(other, 40)
            )))
        }
    };
    if mantissa.sign() == Sign::Minus {
        return Err(Error::bad_argument(format!(
            "cannot wait a negative time ({})",
            plexus_units::to_short(n, 40)
        )));
    }
    let max_us = MAX_WAIT_SECS * SEC;
    // Compared as units (exact, whatever the size), so the arithmetic below stays small.
    let bound = Unit::int(i64::try_from(max_us / unit_us + 1).unwrap_or(i64::MAX));
    let too_long = || {
        Error::new(
            code::LIMIT,
            format!(
                "wait is limited to one week ({MAX_WAIT_SECS} seconds); {} is longer",
                plexus_units::to_short(n, 40)
            ),
        )
    };
    if *n > bound {
        return Err(too_long());
    }
    let scaled = mantissa * BigInt::from(unit_us);
    let us = if scale <= 0 {
        // n <= bound, so the exponent is small here.
        let exp = u32::try_from(-scale).map_err(|_| too_long())?;
        scaled * BigInt::from(10u32).pow(exp)
    } else if scale as u64 > scaled.bits() / 3 + 2 {
        // Less than one microsecond.
        BigInt::from(0u32)
    } else {
        let exp = u32::try_from(scale).map_err(|_| too_long())?;
        scaled / BigInt::from(10u32).pow(exp)
    };
    match us.to_u64() {
        Some(us) if us <= max_us => Ok(us),
        _ => Err(too_long()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_units::parse;

    #[test]
    fn wait_lengths() {
        let us = |t: &str, unit: u64| wait_micros(&parse(t).unwrap(), unit);
        assert_eq!(us("2", SEC).unwrap(), 2_000_000);
        assert_eq!(us("0.25", SEC).unwrap(), 250_000);
        assert_eq!(us("1.5", MS).unwrap(), 1_500);
        assert_eq!(us("0.0000001", SEC).unwrap(), 0);
        assert_eq!(us("1e-999999999", SEC).unwrap(), 0);
        assert_eq!(us("7", 86_400_000_000).unwrap(), MAX_WAIT_SECS * SEC);
        assert_eq!(
            us("7.0000001", 86_400_000_000).unwrap_err().code(),
            code::LIMIT
        );
        assert_eq!(us("1e999999999", SEC).unwrap_err().code(), code::LIMIT);
        assert_eq!(
            us("99999999999999999999999999", 1).unwrap_err().code(),
            code::LIMIT
        );
        assert_eq!(us("-1", SEC).unwrap_err().code(), code::BAD_ARGUMENT);
        assert_eq!(us("-0.5", SEC).unwrap_err().code(), code::BAD_ARGUMENT);
        assert_eq!(us("abc", SEC).unwrap_err().code(), code::BAD_ARGUMENT);
    }
}
