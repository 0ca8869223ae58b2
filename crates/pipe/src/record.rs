//! Records: cutting a byte stream into whole records, in the three formats OneOS offers.
//!
//! - [`Format::Raw`]: lines, each ending with `\n` (a last line without one is a record at the
//!   end of the stream).
//! - [`Format::Segment`]: frames, each a 4-byte little-endian length and that many bytes
//!   (OneOS's `process.stdout.segment`).
//! - [`Format::Json`]: whole JSON values, with any whitespace between them (OneOS cuts
//!   top-level objects by counting braces; this also takes arrays, strings and scalars, and
//!   knows that a brace inside a string is not one). Each record is the value followed by a
//!   newline, whatever whitespace stood around it.
//!
//! A record never passes [`Framer::max_record`] bytes: a longer line is cut there (and the
//! next piece goes on as a record of its own), a longer segment or JSON value is an error.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, Bytes, BytesMut};

/// How a stream is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Lines.
    #[default]
    Raw,
    /// 4-byte little-endian length-prefixed frames.
    Segment,
    /// Whole JSON values.
    Json,
}

impl Format {
    /// The name used in scripts and tables: `raw`, `segment`, `json`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Segment => "segment",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not `raw`, `segment` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record format {0:?} (one of raw, segment, json)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        match s {
            "raw" => Ok(Format::Raw),
            "segment" => Ok(Format::Segment),
            "json" => Ok(Format::Json),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// A stream that cannot be cut into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A segment or JSON value longer than the limit.
    #[error("a {format} record of more than {max} bytes")]
    TooLong {
        /// The format.
        format: Format,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a record.
    #[error("the stream ended inside a {format} record ({left} bytes left over)")]
    Partial {
        /// The format.
        format: Format,
        /// Bytes of the unfinished record.
        left: usize,
    },
    /// Bytes that are not JSON between values.
    #[error("not JSON at byte {at} of a record: {byte:#04x}")]
    NotJson {
        /// Offset in the record.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// JSON nested deeper than the limit.
    #[error("JSON nested more than {0} levels deep")]
    TooDeep(usize),
}

/// Deepest JSON nesting a framer follows.
pub const MAX_JSON_DEPTH: usize = 512;

/// Where a JSON scan is inside the buffered bytes.
#[derive(Debug, Default, Clone)]
struct JsonScan {
    /// Bytes of the buffer scanned.
    at: usize,
    /// Open `{` and `[` not yet closed.
    depth: usize,
    /// Inside a string.
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
    /// The value has started (after leading whitespace).
    started: bool,
    /// The value is a scalar (number, `true`, …), which ends at whitespace or a delimiter.
    scalar: bool,
}

/// Cuts a byte stream into records of one [`Format`].
#[derive(Debug)]
pub struct Framer {
    format: Format,
    max_record: usize,
    buf: BytesMut,
    /// Raw: bytes of `buf` already known to hold no newline.
    scanned: usize,
    /// Bytes of the stream taken out of `buf` so far (as records, or whitespace).
    consumed: u64,
    json: JsonScan,
}

impl Framer {
    /// A framer for `format` whose records are at most `max_record` bytes.
    pub fn new(format: Format, max_record: usize) -> Framer {
        Framer {
            format,
            max_record: max_record.max(1),
            buf: BytesMut::new(),
            scanned: 0,
            consumed: 0,
            json: JsonScan::default(),
        }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The longest record.
    pub fn max_record(&self) -> usize {
        self.max_record
    }

    /// Bytes held that are not yet a whole record.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of the stream taken out so far, in records or as whitespace between JSON values.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Takes the first `n` bytes of the buffer.
    fn take(&mut self, n: usize) -> BytesMut {
        self.consumed += n as u64;
        self.buf.split_to(n)
    }

    /// More bytes of the stream. Call [`Framer::next_record`] until it gives `None` before
    /// pushing more, so at most one record and one push are held.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record, with its delimiter or length prefix (so that records written one
    /// after another make the same stream again; JSON values one a line).
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordError> {
        match self.format {
            Format::Raw => Ok(self.next_line()),
            Format::Segment => self.next_segment(),
            Format::Json => self.next_json(),
        }
    }

    /// The stream ended: what is left, as a last record (a line without its newline), or an
    /// error when a segment or JSON value was cut off.
    pub fn finish(&mut self) -> Result<Option<Bytes>, RecordError> {
        if let Some(record) = self.next_record()? {
            return Ok(Some(record));
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        match self.format {
            Format::Raw => {
                self.scanned = 0;
                let n = self.buf.len();
                Ok(Some(self.take(n).freeze()))
            }
            Format::Json if self.json.scalar && self.json.depth == 0 => {
                let end = self.buf.len();
                self.take_json(end)
            }
            Format::Json if !self.json.started => {
                let n = self.buf.len();
                self.take(n); // only whitespace
                self.json = JsonScan::default();
                Ok(None)
            }
            format => Err(RecordError::Partial {
                format,
                left: self.buf.len(),
            }),
        }
    }

    fn next_line(&mut self) -> Option<Bytes> {
        if let Some(i) = memchr(b'\n', &self.buf[self.scanned..]) {
            let end = self.scanned + i + 1;
            if end <= self.max_record {
                self.scanned = 0;
                return Some(self.take(end).freeze());
            }
        }
        self.scanned = self.buf.len();
        if self.buf.len() >= self.max_record {
            // A line longer than a record may be: passed on in pieces.
            self.scanned = 0;
            let n = self.max_record;
            return Some(self.take(n).freeze());
        }
        None
    }

    fn next_segment(&mut self) -> Result<Option<Bytes>, RecordError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = (&self.buf[..4]).get_u32_le() as usize;
        if len > self.max_record.saturating_sub(4) {
            return Err(RecordError::TooLong {
                format: Format::Segment,
                max: self.max_record,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some(self.take(4 + len).freeze()))
    }

    fn next_json(&mut self) -> Result<Option<Bytes>, RecordError> {
        let s = &mut self.json;
        while s.at < self.buf.len() {
            let b = self.buf[s.at];
            s.at += 1;
            if !s.started {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'{' | b'[' => s.depth = 1,
                    b'"' => s.in_string = true,
                    b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => s.scalar = true,
                    _ => {
                        return Err(RecordError::NotJson {
                            at: s.at - 1,
                            byte: b,
                        })
                    }
                }
                s.started = true;
                continue;
            }
            if s.in_string {
                if s.escaped {
                    s.escaped = false;
                } else if b == b'\\' {
                    s.escaped = true;
                } else if b == b'"' {
                    s.in_string = false;
                    if s.depth == 0 {
                        let end = s.at;
                        return self.take_json(end);
                    }
                }
                continue;
            }
            if s.scalar {
                if matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'[' | b'"') {
                    s.at -= 1; // the delimiter starts the next value (or is whitespace)
                    let end = s.at;
                    return self.take_json(end);
                }
                continue;
            }
            match b {
                b'"' => s.in_string = true,
                b'{' | b'[' => {
                    s.depth += 1;
                    if s.depth > MAX_JSON_DEPTH {
                        return Err(RecordError::TooDeep(MAX_JSON_DEPTH));
                    }
                }
                b'}' | b']' => {
                    s.depth -= 1;
                    if s.depth == 0 {
                        let end = s.at;
                        return self.take_json(end);
                    }
                }
                _ => {}
            }
        }
        if self.buf.len() > self.max_record {
            return Err(RecordError::TooLong {
                format: Format::Json,
                max: self.max_record,
            });
        }
        Ok(None)
    }

    /// The JSON record ending at `end`: the value without the whitespace before it, and a
    /// newline after it, so that records from several streams, written one after another,
    /// are still apart (and one a line).
    fn take_json(&mut self, end: usize) -> Result<Option<Bytes>, RecordError> {
        if end > self.max_record {
            return Err(RecordError::TooLong {
                format: Format::Json,
                max: self.max_record,
            });
        }
        self.json = JsonScan::default();
        let taken = self.take(end);
        let start = taken
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(taken.len());
        let mut record = BytesMut::with_capacity(taken.len() - start + 1);
        record.extend_from_slice(&taken[start..]);
        record.extend_from_slice(b"\n");
        Ok(Some(record.freeze()))
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(format: Format, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut f = Framer::new(format, 64);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(r) = f.next_record()? {
                out.push(r.to_vec());
            }
        }
        while let Some(r) = f.finish()? {
            out.push(r.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn lines_across_pushes() {
        let got = all(Format::Raw, &[b"ab", b"c\nde\n", b"f"]).unwrap();
        assert_eq!(
            got,
            vec![b"abc\n".to_vec(), b"de\n".to_vec(), b"f".to_vec()]
        );
    }

    #[test]
    fn a_long_line_goes_in_pieces() {
        let line = vec![b'x'; 100];
        let got = all(Format::Raw, &[&line]).unwrap();
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![64, 36]);
    }

    #[test]
    fn segments() {
        let mut stream = Vec::new();
        for word in ["to", "be", ""] {
            stream.extend_from_slice(&(word.len() as u32).to_le_bytes());
            stream.extend_from_slice(word.as_bytes());
        }
        let got = all(Format::Segment, &[&stream[..3], &stream[3..]]).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][4..], b"to");
        let cut = all(Format::Segment, &[&stream[..7]]);
        assert!(matches!(cut, Err(RecordError::Partial { .. })));
        let long = 1000u32.to_le_bytes();
        assert!(matches!(
            all(Format::Segment, &[&long]),
            Err(RecordError::TooLong { .. })
        ));
    }

    #[test]
    fn json_values() {
        let got = all(
            Format::Json,
            &[b" {\"a\":\"}\\\"\"", b",\"b\":[1,{}]}\n[2] \"s\" 12 true{}"],
        )
        .unwrap();
        let got: Vec<String> = got
            .into_iter()
            .map(|r| String::from_utf8(r).unwrap().trim().to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "{\"a\":\"}\\\"\",\"b\":[1,{}]}",
                "[2]",
                "\"s\"",
                "12",
                "true",
                "{}"
            ]
        );
        assert!(matches!(
            all(Format::Json, &[b"{\"a\":1"]),
            Err(RecordError::Partial { .. })
        ));
        assert!(matches!(
            all(Format::Json, &[b"}"]),
            Err(RecordError::NotJson { .. })
        ));
    }
}
