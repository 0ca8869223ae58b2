//! `plx img export`: write an image unit out as a PNG file.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Subcommand;

use crate::cli_io::{read_input, Output};
use crate::cmd_unit::parse_input;

/// Images.
#[derive(Subcommand, Debug)]
pub enum ImgCmd {
    /// Write an image unit ({size:(w h) fmt:rgb|rgb.rle img:[…]}) as a PNG file.
    ///
    /// Example: plx send '{fill:#ff8800 size:(64 32)}@gfx.2d' | plx img export -o orange.png
    Export {
        /// The image unit in units text; standard input when omitted or `-`.
        file: Option<PathBuf>,
        /// The PNG file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

/// Runs a `plx img` command.
pub fn run(cmd: ImgCmd) -> Result<()> {
    match cmd {
        ImgCmd::Export { file, output } => {
            let image = parse_input(&read_input(file.as_deref())?)?;
            let png = plexus_services::gfx_2d::image_to_png(&image).map_err(|e| anyhow!("{e}"))?;
            Output::new(Some(output.clone())).write(&png)?;
            eprintln!("plx: wrote {} ({} bytes)", output.display(), png.len());
            Ok(())
        }
    }
}
