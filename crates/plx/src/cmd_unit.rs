//! `plx unit …`: the units notation, binary encoding and JSON bridge from the command line.

use std::borrow::Cow;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use plexus_units::{
    decode, decode_ref, encode, json, parse, to_pretty, to_short, to_text, Arena, Unit,
};

use crate::cli_io::{from_hex, read_input, to_hex, Input, Output};

/// Work with units: format, check, encode, decode, convert to and from JSON.
#[derive(Subcommand, Debug)]
pub enum UnitCmd {
    /// Print a unit in canonical notation (or pretty / short form).
    ///
    /// Reads units text from FILE or standard input and prints it back in canonical form:
    /// single spaces, strings bare where possible and otherwise in backticks, decimals exact.
    /// Example: echo '[ 1  2.50 `a` ]' | plx unit fmt   →   [1 2.5 a]
    Fmt {
        #[command(flatten)]
        input: InputArg,
        /// Indented form, one element per line.
        #[arg(long, conflicts_with = "short")]
        pretty: bool,
        /// Indentation step for --pretty.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=16))]
        indent: u16,
        /// Short form for display: truncate strings and lists after N items.
        #[arg(long, value_name = "N")]
        short: Option<usize>,
    },
    /// Check that the input is one valid unit; print its type, depth and encoded size.
    ///
    /// With --binary the input is a binary document (as `plx unit encode` writes), checked to
    /// be the one canonical encoding of a unit within the default limits. It is read in place:
    /// no string in it is copied.
    Check {
        #[command(flatten)]
        input: InputArg,
        /// The input is the canonical binary form rather than units text.
        #[arg(long)]
        binary: bool,
        /// With --binary: the input is hex text rather than raw bytes.
        #[arg(long, requires = "binary")]
        hex: bool,
    },
    /// Encode units text into the canonical binary form.
    ///
    /// Binary is not written to a terminal: use -o FILE, a pipe, or --hex.
    Encode {
        #[command(flatten)]
        input: InputArg,
        /// Write lower-case hex instead of raw bytes.
        #[arg(long)]
        hex: bool,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Decode the canonical binary form into units text.
    Decode {
        #[command(flatten)]
        input: InputArg,
        /// The input is hex text rather than raw bytes.
        #[arg(long)]
        hex: bool,
        /// Indented output.
        #[arg(long)]
        pretty: bool,
    },
    /// Convert units text to JSON (non-JSON types become tagged objects like {"$bytes":…}).
    Json {
        #[command(flatten)]
        input: InputArg,
        /// Indented JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Convert JSON to units text (numbers stay exact; tagged objects become their types).
    FromJson {
        #[command(flatten)]
        input: InputArg,
        /// Indented output.
        #[arg(long)]
        pretty: bool,
    },
}

/// The input file argument shared by the unit commands.
#[derive(Args, Debug)]
pub struct InputArg {
    /// Input file; standard input when omitted or `-`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

fn read(input: &InputArg) -> Result<Input> {
    if input.file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("plx: reading from standard input (end with Ctrl-D)");
    }
    read_input(input.file.as_deref())
}

/// Parses the input as units text, with the parse error shown under a caret.
pub fn parse_input(input: &Input) -> Result<Unit> {
    let text = input.text()?;
    parse(text).map_err(|e| anyhow!("{}: {e}", input.name))
}

/// The input's bytes, from hex text when `hex`.
fn read_binary(input: &Input, hex: bool) -> Result<Cow<'_, [u8]>> {
    if hex {
        Ok(Cow::Owned(from_hex(input.text()?)?))
    } else {
        Ok(Cow::Borrowed(&input.bytes))
    }
}

/// Runs one `plx unit` command.
pub fn run(cmd: UnitCmd) -> Result<()> {
    let out = Output::new(None);
    match cmd {
        UnitCmd::Fmt {
            input,
            pretty,
            indent,
            short,
        } => {
            let u = parse_input(&read(&input)?)?;
            let text = match (pretty, short) {
                (true, _) => to_pretty(&u, usize::from(indent)),
                (false, Some(n)) => to_short(&u, n),
                (false, None) => to_text(&u),
            };
            out.line(&text)
        }
        UnitCmd::Check {
            input,
            binary: true,
            hex,
        } => {
            let input = read(&input)?;
            let bytes = read_binary(&input, hex)?;
            let arena = Arena::new();
            let u = decode_ref(&bytes, &arena).map_err(|e| anyhow!("{}: {e}", input.name))?;
            out.line(&format!(
                "ok: {}, depth {}, {} bytes encoded",
                u.kind(),
                u.depth(),
                bytes.len()
            ))
        }
        UnitCmd::Check { input, .. } => {
            let u = parse_input(&read(&input)?)?;
            let size = encode(&u).len();
            out.line(&format!(
                "ok: {}, depth {}, {size} bytes encoded",
                u.kind(),
                u.depth()
            ))
        }
        UnitCmd::Encode { input, hex, output } => {
            let u = parse_input(&read(&input)?)?;
            let bytes = encode(&u);
            let out = Output::new(output);
            if hex {
                out.line(&to_hex(&bytes))
            } else if out.is_terminal() {
                bail!("refusing to write binary to a terminal: use --hex, -o FILE or a pipe")
            } else {
                out.write(&bytes)
            }
        }
        UnitCmd::Decode { input, hex, pretty } => {
            let input = read(&input)?;
            let bytes = read_binary(&input, hex)?;
            let u = decode(&bytes).map_err(|e| anyhow!("{}: {e}", input.name))?;
            out.line(&if pretty {
                to_pretty(&u, 2)
            } else {
                to_text(&u)
            })
        }
        UnitCmd::Json { input, pretty } => {
            let u = parse_input(&read(&input)?)?;
            out.line(&if pretty {
                json::to_json_pretty(&u)
            } else {
                json::to_json(&u)
            })
        }
        UnitCmd::FromJson { input, pretty } => {
            let input = read(&input)?;
            let u = json::from_json(input.text()?).map_err(|e| anyhow!("{}: {e}", input.name))?;
            out.line(&if pretty {
                to_pretty(&u, 2)
            } else {
                to_text(&u)
            })
        }
    }
}
