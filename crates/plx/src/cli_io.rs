//! Reading command input and writing command output safely.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Largest input a command reads; beyond it the units limits would refuse it anyway.
pub const MAX_INPUT: u64 = plexus_units::Limits::DEFAULT.max_size as u64;

/// Where a command's input comes from, for error messages.
pub struct Input {
    /// `<stdin>` or the file path.
    pub name: String,
    /// The raw bytes.
    pub bytes: Vec<u8>,
}

impl Input {
    /// The input as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                self.name,
                e.valid_up_to()
            )
        })
    }
}

/// Reads `file` (or standard input for `None` or `-`), refusing more than [`MAX_INPUT`] bytes.
pub fn read_input(file: Option<&Path>) -> Result<Input> {
    let (name, reader): (String, Box<dyn Read>) = match file {
        None => ("<stdin>".to_owned(), Box::new(io::stdin().lock())),
        Some(p) if p == Path::new("-") => ("<stdin>".to_owned(), Box::new(io::stdin().lock())),
        Some(p) => (
            p.display().to_string(),
            Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
        ),
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    if bytes.len() as u64 > MAX_INPUT {
        bail!("{name}: input larger than the limit of {MAX_INPUT} bytes");
    }
    Ok(Input { name, bytes })
}

/// Where a command's output goes.
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file, written whole at the end.
    File(PathBuf),
}

impl Output {
    /// Standard output, or `path` when given (`-` also means standard output).
    pub fn new(path: Option<PathBuf>) -> Output {
        match path {
            Some(p) if p != Path::new("-") => Output::File(p),
            _ => Output::Stdout,
        }
    }

    /// Whether this is standard output attached to a terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Output::Stdout) && io::stdout().is_terminal()
    }

    /// Writes `bytes`. A closed pipe on standard output (`plx … | head`) is not an error.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                match out.write_all(bytes).and_then(|()| out.flush()) {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    other => other.context("cannot write to standard output"),
                }
            }
            Output::File(p) => {
                std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
            }
        }
    }

    /// Writes `text` followed by a newline.
    pub fn line(&self, text: &str) -> Result<()> {
        let mut s = String::with_capacity(text.len() + 1);
        s.push_str(text);
        s.push('\n');
        self.write(s.as_bytes())
    }
}

/// Decodes hex text (whitespace ignored).
pub fn from_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        bail!("hex input has an odd number of digits");
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let s = std::str::from_utf8(pair).unwrap_or("??");
            u8::from_str_radix(s, 16)
                .with_context(|| format!("invalid hex digits {s:?} at byte {i}"))
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}
