//! The text notation: a hand-written parser. The grammar is specified in `docs/units-text.md`.

use std::fmt;

use bytes::BytesMut;
use num_bigint::{BigInt, BigUint};

use crate::binary::{fill, MAX_SCALE};
use crate::value::{first_duplicate, Dec, Int, Map, Path, Str, Stream, Unit};
use crate::Limits;

/// Whether `c` may appear in a bare word: Unicode letters and digits, `.`, `#`, `_` and `-`.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        WORD_ASCII[c as usize]
    } else {
        c.is_alphanumeric()
    }
}

/// Whether the byte `b` is an ASCII character that may appear in a bare word.
pub(crate) fn is_ascii_word_byte(b: u8) -> bool {
    b < 0x80 && WORD_ASCII[usize::from(b)]
}

const WORD_ASCII: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'.' || c == b'#' || c == b'_' || c == b'-';
        i += 1;
    }
    t
};

/// A parse failure, with the position and a line of context to show under a caret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// What went wrong, phrased as what was expected where possible.
    pub message: String,
    /// 1-based line of the failure.
    pub line: usize,
    /// 1-based column (in characters) of the failure.
    pub column: usize,
    /// Byte offset of the failure in the input.
    pub offset: usize,
    /// The text of the failing line (shortened around the column if very long).
    pub context: String,
    /// Column of the caret within [`ParseError::context`] (1-based, in characters).
    pub context_column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )?;
        let gutter = self.line.to_string();
        writeln!(f, "{} | {}", gutter, self.context)?;
        write!(
            f,
            "{} | {}^",
            " ".repeat(gutter.len()),
            " ".repeat(self.context_column.saturating_sub(1))
        )
    }
}

impl ParseError {
    fn at(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
        let offset = offset.min(src.len());
        let offset = (0..=offset)
            .rev()
            .find(|&o| src.is_char_boundary(o))
            .unwrap_or(0);
        let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
        let line = src[..offset].matches('\n').count() + 1;
        let column = src[line_start..offset].chars().count() + 1;
        // Long lines (a minified document) are cut to a window around the failure.
        const WINDOW: usize = 60;
        // Only the window is visited, so an error on a 100 MB one-line input stays cheap.
        let from = column.saturating_sub(1).saturating_sub(WINDOW);
        let mut line_chars = src[line_start..line_end].chars().skip(from);
        let mut context: String = line_chars
            .by_ref()
            .take(column + WINDOW - from)
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let mut context_column = column - from;
        if from > 0 {
            context.insert(0, '…');
            context_column += 1;
        }
        if line_chars.next().is_some() {
            context.push('…');
        }
        ParseError {
            message: message.into(),
            line,
            column,
            offset,
            context,
            context_column,
        }
    }
}

/// Parses exactly one unit from `text` (whitespace and comments around it are allowed).
pub fn parse_with(text: &str, limits: &Limits) -> Result<Unit, ParseError> {
    if text.len() > limits.max_size {
        return Err(ParseError::at(
            text,
            0,
            format!(
                "input is {} bytes; the limit is {} bytes",
                text.len(),
                limits.max_size
            ),
        ));
    }
    let mut parser = Parser {
        src: text,
        b: text.as_bytes(),
        pos: 0,
        depth: 0,
        high: 0,
        magnitudes: BytesMut::new(),
        limits,
    };
    parser.document().map_err(|e| *e)
}

/// Appends `placeholder` and returns its slot. The vector grows first, so that the placeholder
/// is written straight into its slot rather than built on the stack and copied (the copy's
/// wide reads would stall on the narrow writes of the tags).
#[inline(always)]
fn push_placeholder<T>(v: &mut Vec<T>, placeholder: T) -> &mut T {
    v.reserve(1);
    let last = v.len();
    v.push(placeholder);
    &mut v[last]
}

/// Gives a finished list's or map's spare capacity back when it is more than a little: a
/// parsed unit may live long, and vectors grow by doubling.
#[inline]
fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() - v.len() > 4 + v.len() / 8 {
        v.shrink_to_fit();
    }
}

/// Where a map's keys start, for the error about a repeated one; the first
/// [`INLINE_KEY_OFFSETS`] are kept without allocating.
#[derive(Default)]
struct KeyOffsets {
    first: [usize; INLINE_KEY_OFFSETS],
    rest: Vec<usize>,
    len: usize,
}

impl KeyOffsets {
    fn push(&mut self, offset: usize) {
        match self.first.get_mut(self.len) {
            Some(o) => *o = offset,
            None => self.rest.push(offset),
        }
        self.len += 1;
    }

    fn get(&self, i: usize) -> usize {
        match self.first.get(i) {
            Some(&o) => o,
            None => self.rest.get(i - INLINE_KEY_OFFSETS).copied().unwrap_or(0),
        }
    }
}

/// Key offsets of a map kept inline by [`KeyOffsets`].
const INLINE_KEY_OFFSETS: usize = 16;

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// The deepest `depth` reached so far inside the unit being parsed.
    high: usize,
    /// Where the magnitudes of big ints are written: they share its allocations, a few
    /// kilobytes each, instead of allocating one by one.
    magnitudes: BytesMut,
    limits: &'a Limits,
}

/// Parser results box the (large) error, so the common `Ok` path moves less data.
type PResult<T> = Result<T, Box<ParseError>>;

/// Whether a unit stands in map key position, where `k@serv:x` may end at the ':' (see
/// `docs/units-text.md`, "Streams as map keys").
type InKey = bool;

impl<'a> Parser<'a> {
    fn err(&self, message: impl Into<String>) -> Box<ParseError> {
        Box::new(ParseError::at(self.src, self.pos, message))
    }

    fn err_at(&self, offset: usize, message: impl Into<String>) -> Box<ParseError> {
        Box::new(ParseError::at(self.src, offset, message))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.b.get(self.pos + ahead).copied()
    }

    /// The whole input: one unit, with only whitespace and comments around it.
    fn document(&mut self) -> PResult<Unit> {
        self.skip_ws()?;
        if self.pos == self.b.len() {
            return Err(self.err("expected a unit, found the end of the input"));
        }
        let unit = self.unit(false)?;
        self.skip_ws()?;
        if self.pos != self.b.len() {
            return Err(self.err(
                "unexpected input after the unit (a message is one unit: put several in [ ])",
            ));
        }
        Ok(unit)
    }

    /// Skips whitespace and comments. Most calls find none: that case is inlined.
    #[inline(always)]
    fn skip_ws(&mut self) -> PResult<()> {
        match self.peek() {
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'/') => self.skip_ws_and_comments(),
            _ => Ok(()),
        }
    }

    fn skip_ws_and_comments(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(b'/') => match self.peek_at(1) {
                    Some(b'/') => {
                        self.pos = self.b[self.pos..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(self.b.len(), |i| self.pos + i);
                    }
                    Some(b'*') => {
                        let start = self.pos;
                        match self.src[self.pos + 2..].find("*/") {
                            Some(i) => self.pos += 2 + i + 2,
                            None => {
                                return Err(self.err_at(start, "unterminated comment: expected */"))
                            }
                        }
                    }
                    _ => return Err(self.err("unexpected '/' (comments are // or /* */)")),
                },
                _ => return Ok(()),
            }
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        self.high = self.high.max(self.depth);
        if self.depth > self.limits.max_depth {
            return Err(self.err(format!(
                "nesting deeper than the limit of {}",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    fn unit(&mut self, in_key: InKey) -> PResult<Unit> {
        let mut unit = Unit::None;
        self.unit_into(in_key, &mut unit)?;
        Ok(unit)
    }

    /// Parses a unit (a base and its stream links, if any) into `slot`, which holds a
    /// placeholder. Units are written where they belong rather than returned: copying a unit
    /// that was just written costs more than parsing a small one (the wide reads of the copy
    /// stall on the narrow writes that built it).
    fn unit_into(&mut self, in_key: InKey, slot: &mut Unit) -> PResult<()> {
        let depth_before = self.depth;
        let high_before = std::mem::replace(&mut self.high, depth_before);
        self.base_into(slot)?;
        if self.peek() == Some(b'@') {
            self.stream_links(in_key, slot)?;
        }
        self.high = self.high.max(high_before);
        self.depth = depth_before;
        Ok(())
    }

    /// The `@service[:node]` links after the base in `slot`, which becomes the stream.
    #[inline(never)]
    fn stream_links(&mut self, in_key: InKey, slot: &mut Unit) -> PResult<()> {
        let mut unit = std::mem::take(slot);
        // A stream contains its unit (as in `Unit::depth` and the binary decoder), so its
        // links count from the deepest point of the base, not from where the base started.
        self.depth = self.high;
        // Offset of the ':' that pinned the outermost stream, if it is pinned.
        let mut node_colon = None;
        while self.peek() == Some(b'@') {
            self.enter()?;
            self.pos += 1;
            let start = self.pos;
            let service = self.word();
            if service.is_empty() {
                return Err(self.err("expected a service name after '@' (as in x@math.calc)"));
            }
            let mut node = None;
            node_colon = None;
            if self.peek() == Some(b':') {
                let colon = self.pos;
                let attached = match self.peek_at(1) {
                    Some(b'`' | b'\'' | b'"') => true,
                    Some(_) => {
                        self.pos += 1;
                        let w = self.word();
                        self.pos = colon;
                        !w.is_empty()
                    }
                    None => false,
                };
                if attached {
                    self.pos += 1;
                    node = Some(self.node_name()?);
                    node_colon = Some(colon);
                } else if !in_key {
                    self.pos += 1;
                    return Err(
                        self.err("expected a node name right after ':' (as in x@math.calc:node-b)")
                    );
                }
            }
            let stream = Stream::new(unit, service, node.as_deref())
                .map_err(|e| self.err_at(start, e.to_string()))?;
            unit = Unit::Stream(Box::new(stream));
        }
        if in_key {
            // `{k@s:n:v}` pins the key; in `{k@s:v}` the last ':' separates key and value.
            if let (Some(colon), Unit::Stream(stream)) = (node_colon, &mut unit) {
                let saved = self.pos;
                self.skip_ws()?;
                if self.peek() != Some(b':') {
                    stream.unpin();
                    self.pos = colon;
                } else {
                    self.pos = saved;
                }
            }
        }
        fill(slot, unit);
        Ok(())
    }

    fn node_name(&mut self) -> PResult<String> {
        match self.peek() {
            Some(q @ (b'`' | b'\'' | b'"')) => {
                let s = self.quoted(q)?;
                if s.is_empty() {
                    return Err(self.err("a node name cannot be empty"));
                }
                Ok(s)
            }
            _ => {
                let w = self.word();
                if w.is_empty() {
                    return Err(
                        self.err("expected a node name after ':' (as in x@math.calc:node-b)")
                    );
                }
                Ok(w.to_owned())
            }
        }
    }

    /// Consumes a run of word characters (possibly empty).
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(&c) = self.b.get(self.pos) {
            if c < 0x80 {
                if !WORD_ASCII[c as usize] {
                    break;
                }
                // Long numbers: skip their digits eight at a time.
                self.pos = if c.is_ascii_digit() {
                    digit_run(self.b, self.pos)
                } else {
                    self.pos + 1
                };
            } else {
                // `pos` is on a char boundary: we only ever step over whole chars.
                let Some(ch) = self.src[self.pos..].chars().next() else {
                    break;
                };
                if !ch.is_alphanumeric() {
                    break;
                }
                self.pos += ch.len_utf8();
            }
        }
        &self.src[start..self.pos]
    }

    /// After a unit inside brackets: whitespace, a bracket or the end must follow, unless the
    /// unit itself ended with a closing bracket.
    fn after_unit(&self) -> PResult<()> {
        match self.peek() {
            None
            | Some(b' ' | b'\t' | b'\n' | b'\r' | b']' | b')' | b'}' | b'[' | b'(' | b'{' | b'/') => {
                Ok(())
            }
            _ if matches!(
                self.b.get(self.pos.wrapping_sub(1)),
                Some(b']' | b')' | b'}')
            ) =>
            {
                Ok(())
            }
            Some(b':') => Err(self.err("unexpected ':' (only maps have keys: {k:v})")),
            _ => Err(self.err("expected whitespace between units")),
        }
    }

    fn base_into(&mut self, slot: &mut Unit) -> PResult<()> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.err("expected a unit, found the end of the input"));
        };
        match c {
            b'[' => {
                self.enter()?;
                self.pos += 1;
                // Each level fills a vector of its own, so its slots stay put while nested
                // units are parsed into them.
                let mut items: Vec<Unit> = Vec::new();
                loop {
                    self.skip_ws()?;
                    match self.peek() {
                        Some(b']') => break,
                        None => return Err(self.err_at(start, "unclosed list: expected ']'")),
                        _ => {
                            let item = push_placeholder(&mut items, Unit::None);
                            if !self.number_element_into(item)? {
                                self.unit_into(false, item)?;
                            }
                            self.after_unit()?;
                        }
                    }
                }
                self.pos += 1;
                self.depth -= 1;
                trim(&mut items);
                fill(slot, Unit::List(items));
            }
            b'(' => {
                self.enter()?;
                self.pos += 1;
                let mut halves = Box::new((Unit::None, Unit::None));
                let mut count = 0;
                loop {
                    self.skip_ws()?;
                    match self.peek() {
                        Some(b')') => break,
                        None => return Err(self.err_at(start, "unclosed pair: expected ')'")),
                        _ if count == 2 => {
                            return Err(self.err(
                                "expected ')': a pair holds exactly two units (use [ ] for a list)",
                            ))
                        }
                        _ => {
                            let half = if count == 0 {
                                &mut halves.0
                            } else {
                                &mut halves.1
                            };
                            self.unit_into(false, half)?;
                            count += 1;
                            self.after_unit()?;
                        }
                    }
                }
                if count != 2 {
                    return Err(self.err(format!(
                        "a pair holds exactly two units, found {count} (use [ ] for a list)"
                    )));
                }
                self.pos += 1;
                self.depth -= 1;
                fill(slot, Unit::Pair(halves));
            }
            b'{' => {
                self.enter()?;
                self.pos += 1;
                let mut entries: Vec<(Unit, Unit)> = Vec::new();
                let mut key_offsets = KeyOffsets::default();
                loop {
                    self.skip_ws()?;
                    match self.peek() {
                        Some(b'}') => break,
                        None => return Err(self.err_at(start, "unclosed map: expected '}'")),
                        _ => {
                            key_offsets.push(self.pos);
                            let entry = push_placeholder(&mut entries, (Unit::None, Unit::None));
                            match self.plain_key() {
                                Some(word) => fill(&mut entry.0, Unit::Str(Str::from(word))),
                                None => self.unit_into(true, &mut entry.0)?,
                            }
                            self.skip_ws()?;
                            if self.peek() != Some(b':') {
                                return Err(self.err("expected ':' after the map key"));
                            }
                            self.pos += 1;
                            self.skip_ws()?;
                            if matches!(self.peek(), Some(b'}') | None) {
                                return Err(self.err("expected a value after ':'"));
                            }
                            if !self.number_element_into(&mut entry.1)? {
                                self.unit_into(false, &mut entry.1)?;
                            }
                            self.after_unit()?;
                        }
                    }
                }
                if let Some(i) = first_duplicate(&entries) {
                    return Err(self.err_at(
                        key_offsets.get(i),
                        "duplicate map key (each key may appear once)",
                    ));
                }
                self.pos += 1;
                self.depth -= 1;
                trim(&mut entries);
                fill(slot, Unit::Map(Map::from_unique_entries(entries)));
            }
            b'@' => {
                self.pos += 1;
                fill(slot, self.path()?);
            }
            b'`' | b'\'' | b'"' => fill(slot, Unit::Str(Str::from(self.quoted(c)?))),
            b'x' if matches!(self.peek_at(1), Some(b'`' | b'\'' | b'"')) => {
                self.pos += 1;
                fill(slot, self.bytes_literal()?);
            }
            b']' | b')' | b'}' => {
                return Err(self.err(format!(
                    "unexpected '{}' with nothing open to close",
                    c as char
                )))
            }
            _ => {
                if (c.is_ascii_digit() || c == b'-') && self.number_into(start, b'`', slot)? {
                    return Ok(());
                }
                let word = self.word();
                if word.is_empty() {
                    let ch = self.src[self.pos..].chars().next().unwrap_or(' ');
                    return Err(self.err(format!(
                        "unexpected character {ch:?} (quote text that is not a plain word: `…`)"
                    )));
                }
                if matches!(self.peek(), Some(b'`' | b'\'' | b'"')) {
                    return Err(self.err("expected whitespace between a word and a quoted string"));
                }
                self.classify_word_into(word, start, slot)?;
            }
        }
        Ok(())
    }

    /// A list element or map value that is a plain number and not the unit of a stream, read
    /// into `slot` without the general [`Parser::unit_into`] path (which would give the same
    /// result). `false` (nothing consumed) for anything else.
    #[inline]
    fn number_element_into(&mut self, slot: &mut Unit) -> PResult<bool> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() || c == b'-' => self.number_into(self.pos, b'@', slot),
            _ => Ok(false),
        }
    }

    /// A map key that is a plain word followed right away by ':' (`{name:…}`), read without
    /// the general [`Parser::unit`] path (which would give the same result). `None` (nothing
    /// consumed) for any other key.
    #[inline]
    fn plain_key(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        {
            return None;
        }
        // Starting with a letter, the word is not a number, a byte or none.
        let word = self.word();
        if self.peek() != Some(b':') || matches!(word, "t" | "f" | "true" | "false") {
            self.pos = start;
            return None;
        }
        Some(word)
    }

    /// A word at `start` that is a number (`-12`, `3.25`, `1e-5`), read into `slot` in one
    /// pass without the general word scan. `false` (nothing consumed) for any other word, or a
    /// number followed by `also_not`: the general path decides.
    #[inline]
    fn number_into(&mut self, start: usize, also_not: u8, slot: &mut Unit) -> PResult<bool> {
        let b = self.b;
        let Some((shape, end)) = number_prefix(b, start) else {
            return Ok(false);
        };
        // The number must be the whole word (and no quote may follow it).
        match b.get(end) {
            Some(&c)
                if c >= 0x80
                    || WORD_ASCII[usize::from(c)]
                    || matches!(c, b'`' | b'\'' | b'"')
                    || c == also_not =>
            {
                Ok(false)
            }
            _ => {
                self.pos = end;
                self.number_shape_into(shape, start, slot)?;
                Ok(true)
            }
        }
    }

    fn path(&mut self) -> PResult<Unit> {
        let mut segments = Vec::new();
        loop {
            let seg_start = self.pos;
            let seg = match self.peek() {
                Some(q @ (b'`' | b'\'' | b'"')) => Str::from(self.quoted(q)?),
                _ => {
                    let start = self.pos;
                    while let Some(&c) = self.b.get(self.pos) {
                        if c == b'.' {
                            break;
                        }
                        if c < 0x80 {
                            if !WORD_ASCII[c as usize] {
                                break;
                            }
                            self.pos += 1;
                        } else {
                            match self.src[self.pos..].chars().next() {
                                Some(ch) if ch.is_alphanumeric() => self.pos += ch.len_utf8(),
                                _ => break,
                            }
                        }
                    }
                    if self.pos == start {
                        return Err(self.err_at(
                            seg_start,
                            "expected a path segment (as in @a.b.0; quote unusual ones: @a.`b c`)",
                        ));
                    }
                    Str::from(&self.src[start..self.pos])
                }
            };
            segments.push(seg);
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Path::new(segments)
            .map(Unit::Ref)
            .ok_or_else(|| self.err("expected a path segment after '@'"))
    }

    /// Reads a quoted string starting at the opening quote `q`.
    fn quoted(&mut self, q: u8) -> PResult<String> {
        let open = self.pos;
        self.pos += 1;
        let body_start = self.pos;
        // Fast path: no escapes.
        let i = find2(&self.b[self.pos..], q, b'\\').map_or(self.b.len(), |n| self.pos + n);
        if i < self.b.len() && self.b[i] == q {
            self.pos = i + 1;
            return Ok(self.src[body_start..i].to_owned());
        }
        let mut out = String::with_capacity(i - body_start + 16);
        out.push_str(&self.src[body_start..i]);
        self.pos = i;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err_at(
                    open,
                    format!("unterminated string: expected a closing {}", q as char),
                ));
            };
            if c == q {
                self.pos += 1;
                return Ok(out);
            }
            if c != b'\\' {
                let run_end =
                    find2(&self.b[self.pos..], q, b'\\').map_or(self.b.len(), |n| self.pos + n);
                out.push_str(&self.src[self.pos..run_end]);
                self.pos = run_end;
                continue;
            }
            let esc_at = self.pos;
            self.pos += 1;
            let Some(e) = self.peek() else {
                return Err(self.err_at(open, "unterminated string after '\\'"));
            };
            self.pos += 1;
            match e {
                b'\\' => out.push('\\'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'0' => out.push('\0'),
                b'`' => out.push('`'),
                b'\'' => out.push('\''),
                b'"' => out.push('"'),
                b'u' => {
                    if self.peek() != Some(b'{') {
                        return Err(self.err_at(esc_at, "expected \\u{hex} (as in \\u{1F600})"));
                    }
                    let hex_start = self.pos + 1;
                    let Some(len) = self.b[hex_start..].iter().position(|&b| b == b'}') else {
                        return Err(self.err_at(esc_at, "unterminated \\u{…} escape"));
                    };
                    let hex = &self.src[hex_start..hex_start + len];
                    let ch = ((1..=6).contains(&hex.len())
                        && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| u32::from_str_radix(hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32);
                    match ch {
                        Some(ch) => out.push(ch),
                        None => {
                            return Err(self.err_at(
                                esc_at,
                                "invalid \\u{…} escape: 1 to 6 hex digits naming a Unicode scalar value",
                            ))
                        }
                    }
                    self.pos = hex_start + len + 1;
                }
                _ => {
                    return Err(self.err_at(
                        esc_at,
                        "unknown escape (use \\\\ \\n \\r \\t \\0 \\` \\' \\\" or \\u{hex})",
                    ))
                }
            }
        }
    }

    /// Reads `"…hex…"` after the `x`: pairs of hex digits, whitespace allowed between pairs.
    fn bytes_literal(&mut self) -> PResult<Unit> {
        let open = self.pos;
        let Some(q) = self.peek() else {
            return Err(self.err("expected a quote"));
        };
        let body_start = self.pos + 1;
        // The body is decoded as it is scanned (no separate search for the closing quote);
        // a quote cannot be a hex digit, so the block decoder stops before it.
        let rest = &self.b[body_start..];
        let unterminated = |p: &Self| {
            p.err_at(
                open,
                format!("unterminated byte string: expected a closing {}", q as char),
            )
        };
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            // Fast paths: a run of pairs of hex digits, in blocks, then pair by pair.
            i += hex_blocks(&rest[i..], &mut out);
            for pair in rest[i..].chunks_exact(2) {
                let (h, l) = (
                    HEX_VALUE[usize::from(pair[0])],
                    HEX_VALUE[usize::from(pair[1])],
                );
                if h | l >= 16 {
                    break;
                }
                out.push(h << 4 | l);
                i += 2;
            }
            let Some(&c) = rest.get(i) else {
                return Err(unterminated(self));
            };
            match c {
                c if c == q => break,
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                // An unterminated byte string is reported as such, whatever its contents.
                _ if find2(&rest[i..], q, q).is_none() => return Err(unterminated(self)),
                c if HEX_VALUE[usize::from(c)] < 16 => {
                    return Err(self.err_at(
                        body_start + i + 1,
                        "expected a second hex digit: a byte string holds pairs of hex digits",
                    ))
                }
                _ => {
                    return Err(self.err_at(
                        body_start + i,
                        "expected hex digits in a byte string (as in x\"00ff\")",
                    ))
                }
            }
        }
        self.pos = body_start + i + 1;
        // One allocation of the exact size for the result.
        out.shrink_to_fit();
        Ok(Unit::Bytes(out.into()))
    }

    #[inline]
    fn classify_word_into(&mut self, word: &str, start: usize, slot: &mut Unit) -> PResult<()> {
        match word {
            "-" => {
                fill(slot, Unit::None);
                return Ok(());
            }
            "t" | "true" => {
                fill(slot, Unit::Bool(true));
                return Ok(());
            }
            "f" | "false" => {
                fill(slot, Unit::Bool(false));
                return Ok(());
            }
            _ => {}
        }
        let wb = word.as_bytes();
        if let Some(hex) = word.strip_prefix("0x") {
            let hb = hex.as_bytes();
            return match (hb.len(), hb.first().and_then(|&c| hex_val(c)), hb.get(1).and_then(|&c| hex_val(c))) {
                (2, Some(h), Some(l)) => {
                    fill(slot, Unit::Byte(h << 4 | l));
                    Ok(())
                }
                _ => Err(self.err_at(
                    start,
                    "a byte is 0x and exactly two hex digits (0x1f); write a byte string as x\"0102ff\"",
                )),
            };
        }
        match scan_number(wb) {
            Some(n) => self.number_shape_into(n, start, slot),
            None => {
                fill(slot, Unit::Str(Str::from(word)));
                Ok(())
            }
        }
    }

    #[inline(always)]
    fn number_shape_into(&mut self, n: NumberShape, start: usize, slot: &mut Unit) -> PResult<()> {
        if n.is_dec() {
            fill(slot, self.decimal(n, start)?);
            return Ok(());
        }
        // Leading zeros carry no value: they are neither counted against the limit nor
        // converted.
        let lead = n.int_digits.iter().take_while(|&&c| c == b'0').count();
        let digits = &n.int_digits[lead..];
        self.check_digits(digits.len(), start)?;
        if let Some(v) = small_decimal(digits) {
            fill(slot, Unit::Int(Int::from(if n.negative { -v } else { v })));
            return Ok(());
        }
        let arena = &mut self.magnitudes;
        let int = with_decimal_limbs(digits, |limbs| Int::from_limbs(n.negative, limbs, arena));
        fill(slot, Unit::Int(int));
        Ok(())
    }

    fn check_digits(&self, digits: usize, start: usize) -> PResult<()> {
        if digits > self.limits.max_digits {
            return Err(self.err_at(
                start,
                format!(
                    "number has {digits} digits; the limit is {}",
                    self.limits.max_digits
                ),
            ));
        }
        Ok(())
    }

    fn decimal(&self, n: NumberShape, start: usize) -> PResult<Unit> {
        // Leading and trailing zeros carry no value: they are neither counted against the limit
        // nor converted, so every number the printer writes (`1e30` prints with 30 zeros) reads
        // back, and a long run of zeros costs no big-number work.
        // The mantissa's digits are int_digits then frac_digits; typical numbers are joined on
        // the stack.
        let joined_len = n.int_digits.len() + n.frac_digits.len();
        let mut inline = [0u8; 64];
        let mut heap = Vec::new();
        let all: &mut [u8] = if joined_len <= inline.len() {
            &mut inline[..joined_len]
        } else {
            heap.resize(joined_len, 0);
            &mut heap
        };
        all[..n.int_digits.len()].copy_from_slice(n.int_digits);
        all[n.int_digits.len()..].copy_from_slice(n.frac_digits);
        let lead = all.iter().take_while(|&&c| c == b'0').count();
        let trail = all[lead..].iter().rev().take_while(|&&c| c == b'0').count();
        let digits = &all[lead..all.len() - trail];
        self.check_digits(digits.len(), start)?;
        let out_of_range = || {
            self.err_at(
                start,
                format!("decimal exponent out of range (the scale is limited to ±{MAX_SCALE})"),
            )
        };
        let exponent: i64 = match n.exponent {
            None => 0,
            Some(e) => std::str::from_utf8(e)
                .ok()
                .and_then(|e| e.parse().ok())
                .ok_or_else(out_of_range)?,
        };
        if digits.is_empty() {
            return Ok(Unit::Dec(Dec::from_normalized_i64(0, 0)));
        }
        // value = digits × 10^(trail + exponent - frac_len)
        let scale = i64::try_from(n.frac_digits.len())
            .ok()
            .and_then(|f| f.checked_sub(i64::try_from(trail).ok()?))
            .and_then(|s| s.checked_sub(exponent))
            .filter(|s| (-MAX_SCALE..=MAX_SCALE).contains(s))
            .ok_or_else(out_of_range)?;
        // No trailing zero digit: the value is already normalized.
        if let Some(v) = small_decimal(digits) {
            return Ok(Unit::Dec(Dec::from_normalized_i64(
                if n.negative { -v } else { v },
                scale,
            )));
        }
        let m = BigInt::from(with_decimal_limbs(digits, |limbs| {
            BigUint::from_bytes_le(
                &limbs
                    .iter()
                    .flat_map(|l| l.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        }));
        Ok(Unit::Dec(Dec::from_normalized(
            if n.negative { -m } else { m },
            scale,
        )))
    }
}

/// The value of at most 18 ASCII decimal digits.
fn small_decimal(digits: &[u8]) -> Option<i64> {
    (digits.len() <= 18).then(|| digits_value(digits) as i64)
}

/// The value of at most 19 ASCII decimal digits, eight at a time.
fn digits_value(digits: &[u8]) -> u64 {
    let mut chunks = digits.chunks_exact(8);
    let mut v = 0u64;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        v = v * 100_000_000 + eight_digits(word);
    }
    chunks
        .remainder()
        .iter()
        .fold(v, |v, &d| v * 10 + u64::from(d - b'0'))
}

/// The value of eight ASCII decimal digits, the first in the lowest byte: pairs are combined,
/// then pairs of pairs, with multiplications (Lemire's "parse eight digits" trick).
#[inline]
fn eight_digits(word: [u8; 8]) -> u64 {
    let w = u64::from_le_bytes(word).wrapping_sub(0x3030_3030_3030_3030);
    let w = w.wrapping_mul(10).wrapping_add(w >> 8);
    let lo = (w & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32));
    let hi = ((w >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32));
    lo.wrapping_add(hi) >> 32
}

/// 10^0 to 10^19.
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Calls `f` with the value of a run of ASCII decimal digits as little-endian 64-bit limbs
/// (no zero high limb), converted 19 digits at a time (several times faster than num-bigint's
/// generic radix conversion at these sizes).
fn with_decimal_limbs<R>(digits: &[u8], f: impl FnOnce(&[u64]) -> R) -> R {
    // Up to 32 limbs (512 digits) stay on the stack.
    let mut inline = [0u64; 32];
    let mut heap = Vec::new();
    let needed = digits.len() / 16 + 1;
    let limbs: &mut [u64] = if needed <= inline.len() {
        &mut inline[..needed]
    } else {
        heap.resize(needed, 0);
        &mut heap
    };
    let mut used = 0;
    let mut rest = digits;
    // A first chunk of up to 16 digits, then chunks of exactly 16, whose two halves convert
    // independently.
    let mut take = match digits.len() % 16 {
        0 => 16,
        n => n,
    };
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(take.min(rest.len()));
        let scale = u128::from(POW10[chunk.len()]);
        let value = match chunk.first_chunk::<16>() {
            Some(sixteen) => {
                let (high, low) = sixteen.split_at(8);
                let (mut h, mut l) = ([0u8; 8], [0u8; 8]);
                h.copy_from_slice(high);
                l.copy_from_slice(low);
                eight_digits(h) * 100_000_000 + eight_digits(l)
            }
            None => digits_value(chunk),
        };
        // limbs = limbs × 10^len + value (each step a 64 × 64-bit product: no overflow)
        let mut carry = u128::from(value);
        for limb in &mut limbs[..used] {
            let t = u128::from(*limb) * scale + carry;
            *limb = t as u64;
            carry = t >> 64;
        }
        if carry != 0 {
            limbs[used] = carry as u64;
            used += 1;
        }
        rest = tail;
        take = 16;
    }
    f(&limbs[..used])
}

/// End of the run of ASCII digits in `b` starting at `from`, checking eight bytes at a time.
fn digit_run(b: &[u8], mut from: usize) -> usize {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    while let Some(chunk) = b.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // Every byte is 0x30..=0x39: high nibble 3, and still 3 after adding 6.
        if w & HIGH_NIBBLES != ZEROS
            || w.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS
        {
            break;
        }
        from += 8;
    }
    from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Index of the first byte of `hay` equal to `a` or `b`, scanning eight bytes at a time.
fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    // Long runs: 32 bytes at a time, branch-free within a block so that the compiler
    // vectorizes the test.
    let mut skipped = 0;
    let mut rest = hay;
    while let Some((block, tail)) = rest.split_first_chunk::<32>() {
        if block
            .iter()
            .fold(false, |hit, &c| hit | (c == a) | (c == b))
        {
            break;
        }
        skipped += block.len();
        rest = tail;
    }
    find2_words(rest, a, b).map(|i| skipped + i)
}

/// [`find2`] eight bytes at a time.
fn find2_words(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let (wa, wb) = (ONES * u64::from(a), ONES * u64::from(b));
    let mut chunks = hay.chunks_exact(8);
    for (k, chunk) in (&mut chunks).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (x, y) = (w ^ wa, w ^ wb);
        // The lowest set high bit marks the first zero byte of x or y exactly.
        let hits = ((x.wrapping_sub(ONES) & !x) | (y.wrapping_sub(ONES) & !y)) & HIGHS;
        if hits != 0 {
            return Some(k * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let done = hay.len() - chunks.remainder().len();
    chunks
        .remainder()
        .iter()
        .position(|&c| c == a || c == b)
        .map(|p| done + p)
}

/// Decodes whole blocks of hex digits from the start of `hex` into `out`, stopping before the
/// first block that holds anything else; returns the number of digits consumed. Branch-free
/// within a block, so the compiler vectorizes it.
fn hex_blocks(hex: &[u8], out: &mut Vec<u8>) -> usize {
    const BLOCK: usize = 32;
    let mut done = 0;
    for block in hex.chunks_exact(BLOCK) {
        let mut nibbles = [0u8; BLOCK];
        let mut bad = false;
        for (n, &c) in nibbles.iter_mut().zip(block) {
            let digit = c.wrapping_sub(b'0');
            let letter = (c | 0x20).wrapping_sub(b'a');
            let (is_digit, is_letter) = (digit < 10, letter < 6);
            bad |= !(is_digit | is_letter);
            *n = if is_digit {
                digit
            } else {
                letter.wrapping_add(10)
            };
        }
        if bad {
            break;
        }
        let mut bytes = [0u8; BLOCK / 2];
        for (b, pair) in bytes.iter_mut().zip(nibbles.chunks_exact(2)) {
            *b = pair[0] << 4 | pair[1];
        }
        out.extend_from_slice(&bytes);
        done += BLOCK;
    }
    done
}

/// Value of each byte as a hex digit, or 0xff.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => 0xff,
        };
        i += 1;
    }
    t
};

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The parts of a word that is a number: `-?D+(.D+)?([eE]-?D+)?`.
pub(crate) struct NumberShape<'a> {
    negative: bool,
    int_digits: &'a [u8],
    frac_digits: &'a [u8],
    has_point: bool,
    exponent: Option<&'a [u8]>,
}

impl NumberShape<'_> {
    fn is_dec(&self) -> bool {
        self.has_point || self.exponent.is_some()
    }
}

/// Splits `w` into number parts if the whole word is a number.
pub(crate) fn scan_number(w: &[u8]) -> Option<NumberShape<'_>> {
    number_prefix(w, 0).and_then(|(shape, end)| (end == w.len()).then_some(shape))
}

/// The number parts of the longest prefix of `w[from..]` of the form `-?D+(.D+)?([eE]-?D+)?`,
/// and where it ends.
#[inline(always)]
fn number_prefix(w: &[u8], from: usize) -> Option<(NumberShape<'_>, usize)> {
    let mut i = from;
    let negative = w.get(from) == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits = |from: usize| digit_run(w, from);
    let int_end = digits(i);
    if int_end == i {
        return None;
    }
    let int_digits = &w[i..int_end];
    i = int_end;
    let mut frac_digits: &[u8] = &[];
    let mut has_point = false;
    if w.get(i) == Some(&b'.') {
        let frac_end = digits(i + 1);
        if frac_end == i + 1 {
            return None;
        }
        frac_digits = &w[i + 1..frac_end];
        has_point = true;
        i = frac_end;
    }
    let mut exponent = None;
    if matches!(w.get(i), Some(b'e' | b'E')) {
        let mut e = i + 1;
        let sign_start = e;
        if w.get(e) == Some(&b'-') {
            e += 1;
        }
        let exp_end = digits(e);
        if exp_end == e {
            return None;
        }
        exponent = Some(&w[sign_start..exp_end]);
        i = exp_end;
    }
    Some((
        NumberShape {
            negative,
            int_digits,
            frac_digits,
            has_point,
            exponent,
        },
        i,
    ))
}

/// Whether a string can be printed bare: a non-empty word that reads back as that string.
pub(crate) fn is_bare_str(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(is_word_char)
        && !matches!(s, "-" | "t" | "f" | "true" | "false")
        && !s.starts_with("0x")
        && scan_number(s.as_bytes()).is_none()
}

/// Whether a path segment can be printed bare.
pub(crate) fn is_bare_segment(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c != '.' && is_word_char(c))
}
