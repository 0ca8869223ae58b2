//! `plx msg …`: sign a unit as the current user; verify a signed message.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use plexus_identity::SignedMessage;
use plexus_units::{parse, to_pretty, to_text};

use crate::cli_io::{from_hex, read_input, to_hex, Output};
use crate::home::Home;

/// Sign and verify messages.
#[derive(Subcommand, Debug)]
pub enum MsgCmd {
    /// Sign a unit as the current user (creating a default user if there is none).
    ///
    /// Reads units text from FILE or standard input and prints the signed message
    /// {author time nonce body sig} in units notation (or binary with --binary / --hex).
    /// Example: echo '(neg 5)@math.calc' | plx msg sign > msg.unit
    Sign {
        /// Input file; standard input when omitted or `-`.
        file: Option<PathBuf>,
        /// Sign as this user instead of the current one.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Write the canonical binary form (not to a terminal: use -o or a pipe).
        #[arg(long, conflicts_with = "hex")]
        binary: bool,
        /// Write the canonical binary form as hex.
        #[arg(long)]
        hex: bool,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Verify a signed message; print its body on standard output and its author on
    /// standard error. Exits non-zero if the signature does not hold.
    ///
    /// The input may be units text (as printed by `plx msg sign`), binary, or hex (--hex).
    Verify {
        /// Input file; standard input when omitted or `-`.
        file: Option<PathBuf>,
        /// The input is hex of the binary form.
        #[arg(long)]
        hex: bool,
        /// Print the body indented.
        #[arg(long)]
        pretty: bool,
    },
}

/// Runs one `plx msg` command.
pub fn run(home: &Home, cmd: MsgCmd) -> Result<()> {
    match cmd {
        MsgCmd::Sign {
            file,
            user,
            binary,
            hex,
            output,
        } => {
            let input = read_input(file.as_deref())?;
            let body = parse(input.text()?).map_err(|e| anyhow!("{}: {e}", input.name))?;
            let name = home.acting_user(user.as_deref())?;
            let keypair = home.unlock(&name)?;
            let msg = crate::cmd_node::sign_with(&keypair, body)?;
            let out = Output::new(output);
            if hex {
                out.line(&to_hex(&msg.to_bytes()))
            } else if binary {
                if out.is_terminal() {
                    bail!("refusing to write binary to a terminal: use --hex, -o FILE or a pipe");
                }
                out.write(&msg.to_bytes())
            } else {
                out.line(&to_text(&msg.to_unit()))
            }
        }
        MsgCmd::Verify { file, hex, pretty } => {
            let input = read_input(file.as_deref())?;
            let first = input
                .bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .copied();
            let msg = if hex {
                SignedMessage::from_bytes(&from_hex(input.text()?)?)
                    .map_err(|e| anyhow!("{}: {e}", input.name))?
            } else if first == Some(plexus_units::binary::FORMAT_VERSION) {
                SignedMessage::from_bytes(&input.bytes)
                    .map_err(|e| anyhow!("{}: {e}", input.name))?
            } else {
                let unit = parse(input.text()?).map_err(|e| anyhow!("{}: {e}", input.name))?;
                SignedMessage::from_unit(&unit).map_err(|e| anyhow!("{}: {e}", input.name))?
            };
            msg.verify()
                .map_err(|e| anyhow!("{}: signature check failed: {e}", input.name))?;
            let author = msg.author();
            let known = home
                .user_names()?
                .into_iter()
                .find(|n| home.load(n).is_ok_and(|f| f.public() == author));
            eprintln!(
                "verified: signed by {} ({author}) at {}",
                known.as_deref().unwrap_or("an unknown user"),
                format_time_ms(msg.time_ms())
            );
            let body = msg.body();
            Output::new(None).line(&if pretty {
                to_pretty(body, 2)
            } else {
                to_text(body)
            })
        }
    }
}

/// `2026-11-22T03:04:05.678Z` for milliseconds since the Unix epoch.
pub(crate) fn format_time_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_times() {
        assert_eq!(super::format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_time_ms(1_795_230_245_678),
            "2026-11-21T03:04:05.678Z"
        );
        assert_eq!(
            super::format_time_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
