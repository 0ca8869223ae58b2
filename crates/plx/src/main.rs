//! `plx`: the Plexus command-line tool.
//!
//! Today it handles units (`plx unit …`), users and their key files (`plx user …`) and signed
//! messages (`plx msg …`). Every command has `--help`. Errors go to standard error with a
//! non-zero exit code (1 for a failed command, 2 for a usage error).

mod cli_io;
mod cmd_msg;
mod cmd_unit;
mod cmd_user;
mod home;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Plexus: the machines you own as one computer.
///
/// plx is the one binary of Plexus. This build provides the foundation: the units notation
/// and binary encoding, users (ed25519 key pairs kept in key files) and signed messages.
#[derive(Parser, Debug)]
#[command(
    name = "plx",
    version,
    arg_required_else_help = true,
    max_term_width = 100
)]
struct Cli {
    /// Plexus home directory for users and settings [env: PLX_HOME; default: ~/.plexus]
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with units: format, check, encode, decode, JSON.
    #[command(subcommand)]
    Unit(cmd_unit::UnitCmd),
    /// Manage users (key pairs): new, list, show, use, export, import.
    #[command(subcommand)]
    User(cmd_user::UserCmd),
    /// Sign a unit as the current user, or verify a signed message.
    #[command(subcommand)]
    Msg(cmd_msg::MsgCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Unit(cmd) => cmd_unit::run(cmd),
        Command::User(cmd) => home::Home::locate(cli.home).and_then(|h| cmd_user::run(&h, cmd)),
        Command::Msg(cmd) => home::Home::locate(cli.home).and_then(|h| cmd_msg::run(&h, cmd)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plx: {e:#}");
            ExitCode::FAILURE
        }
    }
}
