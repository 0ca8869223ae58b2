//! The JSON bridge: units to JSON and back, losslessly.
//!
//! JSON values map to the units of the same shape; the unit types JSON lacks are written as
//! *tagged objects*, objects with exactly one key naming the type:
//!
//! | unit | JSON |
//! |---|---|
//! | none | `null` |
//! | bool | `true`, `false` |
//! | byte | `{"$byte": 31}` (an integer 0 to 255) |
//! | int | a number without fraction or exponent, any size: `-12`, `123456789012345678901234567890` |
//! | dec | a number with a fraction or an exponent, exact: `1.05`, `2.0`, `1.0e40` |
//! | str | a string |
//! | bytes | `{"$bytes": "AP8="}` (standard base64 alphabet, padded) |
//! | ref | `{"$ref": ["a", "b", "0"]}` (the segments, at least one) |
//! | stream | `{"$stream": {"unit": …, "service": "math.calc", "node": "n1"}}` (`node` only when pinned) |
//! | pair | `{"$pair": [a, b]}` |
//! | list | an array |
//! | map whose keys are all strings, none starting with `$` | an object, entries in order |
//! | any other map | `{"$map": [[key, value], …]}` |
//!
//! Reading ([`from_json`]) is strict RFC 8259 JSON, plus these rules:
//!
//! - numbers keep their exact decimal value: `1.05` is exactly 1.05 and `1e400` is fine; a
//!   number with neither fraction nor exponent is an int, any other is a dec;
//! - an object repeating a key is an error (units have unique keys);
//! - an object with exactly one key that is one of the six tags above is decoded as that type,
//!   and is an error if its value does not have the documented shape (`{"$pair": [1]}`); an
//!   object with one other `$`-key (`{"$price": 3}`) is a plain map;
//! - a stream's `node` may also be `null` (unpinned), and `$map` is accepted even when its keys
//!   could have been an object.
//!
//! Writing ([`to_json`], [`to_json_pretty`]) always picks the forms in the table, so
//! `from_json(&to_json(u)) == Ok(u)` for every unit `u` (within the [`Limits`]), and a JSON
//! document without `$`-keys reads back to the same JSON value. The format is specified in
//! `docs/units-json.md`.
//!
//! ```
//! use plexus_units::json::{from_json, to_json};
//! use plexus_units::parse;
//!
//! let u = from_json(r#"{"price": 1.05, "qty": 3, "tags": ["a", "b"]}"#).unwrap();
//! assert_eq!(u, parse("{price:1.05 qty:3 tags:[a b]}").unwrap());
//! assert_eq!(to_json(&u), r#"{"price":1.05,"qty":3,"tags":["a","b"]}"#);
//!
//! let p = parse(r#"(0x01 x"00ff")"#).unwrap();
//! assert_eq!(to_json(&p), r#"{"$pair":[{"$byte":1},{"$bytes":"AP8="}]}"#);
//! assert_eq!(from_json(&to_json(&p)).unwrap(), p);
//!
//! let e = from_json(r#"{"a": 1, "a": 2}"#).unwrap_err();
//! assert_eq!((e.line, e.column), (1, 10));
//! ```

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use num_bigint::BigInt;
use num_traits::Zero;

use crate::print::dec_to_string;
use crate::value::{Dec, DuplicateKey, Int, Map, Path, Str, Stream, Unit};
use crate::Limits;

/// A JSON document that could not be read as a unit: what was expected, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct JsonError {
    /// What went wrong, phrased as what was expected where possible.
    pub message: String,
    /// 1-based line of the failure.
    pub line: usize,
    /// 1-based column (in characters) of the failure.
    pub column: usize,
    /// Byte offset of the failure in the input.
    pub offset: usize,
}

impl JsonError {
    fn at(src: &str, offset: usize, message: impl Into<String>) -> JsonError {
        let offset = offset.min(src.len());
        let offset = (0..=offset)
            .rev()
            .find(|&o| src.is_char_boundary(o))
            .unwrap_or(0);
        let before = src.get(..offset).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        JsonError {
            message: message.into(),
            line: before.matches('\n').count() + 1,
            column: before.get(line_start..).unwrap_or("").chars().count() + 1,
            offset,
        }
    }
}

/// Reads one unit from a JSON document with the default [`Limits`].
///
/// Whitespace may surround the value; anything else after it is an error.
pub fn from_json(text: &str) -> Result<Unit, JsonError> {
    from_json_with(text, &Limits::DEFAULT)
}

/// Reads one unit from a JSON document with explicit limits.
///
/// [`Limits::max_depth`] bounds the depth of the resulting unit (as [`Unit::depth`] counts it,
/// so a tagged object costs no extra level: whatever [`to_json`] writes for a unit reads back
/// under the limits that unit satisfies). The reader does not recurse, and gives up as soon as
/// the JSON nesting exceeds what the depth limit could allow (`3 × max_depth + 2`).
/// [`Limits::max_size`] bounds the input length in bytes and [`Limits::max_digits`] the digits
/// of each number (integer and fraction digits, not the exponent).
pub fn from_json_with(text: &str, limits: &Limits) -> Result<Unit, JsonError> {
    if text.len() > limits.max_size {
        return Err(JsonError::at(
            text,
            0,
            format!(
                "input is {} bytes; the limit is {} bytes",
                text.len(),
                limits.max_size
            ),
        ));
    }
    Reader {
        src: text,
        b: text.as_bytes(),
        pos: 0,
        limits,
        // A unit level costs at most three JSON levels (`{"$map": [[k, v]]}`), and a scalar two
        // (`{"$ref": ["a"]}`).
        max_nesting: limits.max_depth.saturating_mul(3).saturating_add(2),
    }
    .document()
}

/// The compact JSON text of `u`: no whitespace at all.
pub fn to_json(u: &Unit) -> String {
    let mut w = Writer {
        out: String::new(),
        pretty: false,
        level: 0,
    };
    w.unit(u);
    w.out
}

/// The pretty JSON text of `u`: one array element or object entry per line, each level indented
/// by two spaces, `": "` after keys. The small tagged forms (`$byte`, `$bytes`, `$ref`) stay on
/// one line.
pub fn to_json_pretty(u: &Unit) -> String {
    let mut w = Writer {
        out: String::new(),
        pretty: true,
        level: 0,
    };
    w.unit(u);
    w.out
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// The tags of the tagged objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Byte,
    Bytes,
    Ref,
    Stream,
    Pair,
    Map,
}

impl Tag {
    fn from_key(key: &str) -> Option<Tag> {
        Some(match key {
            "$byte" => Tag::Byte,
            "$bytes" => Tag::Bytes,
            "$ref" => Tag::Ref,
            "$stream" => Tag::Stream,
            "$pair" => Tag::Pair,
            "$map" => Tag::Map,
            _ => return None,
        })
    }
}

/// An array or object being read.
#[derive(Clone, Copy)]
struct Frame {
    object: bool,
    /// Offset of the `[` or `{`.
    start: usize,
    /// Where this container's elements start on the value stack.
    values: usize,
    /// Where this object's keys start on the key stack.
    keys: usize,
    /// Greatest unit depth among the elements read so far.
    child_depth: usize,
}

/// An object key being read.
struct Key {
    name: Str,
    /// Offset of the key's opening quote.
    at: usize,
    /// Offset of its value.
    value_at: usize,
}

#[derive(Clone, Copy)]
struct Reader<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    max_nesting: usize,
}

/// Exponents are clamped to this magnitude while reading; any exponent this large is out of
/// range for a decimal whatever its digits.
const EXPONENT_CLAMP: i128 = 1_000_000_000_000_000_000_000_000_000_000;

impl<'a> Reader<'a> {
    fn err(&self, message: impl Into<String>) -> JsonError {
        JsonError::at(self.src, self.pos, message)
    }

    fn err_at(&self, offset: usize, message: impl Into<String>) -> JsonError {
        JsonError::at(self.src, offset, message)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Reads the whole document without recursion: open containers live on `frames`, their
    /// finished elements on `values` and their keys on `keys`.
    fn document(mut self) -> Result<Unit, JsonError> {
        let mut frames: Vec<Frame> = Vec::new();
        let mut values: Vec<Unit> = Vec::new();
        let mut keys: Vec<Key> = Vec::new();
        self.skip_ws();
        if self.pos == self.b.len() {
            return Err(self.err("expected a JSON value, found the end of the input"));
        }
        let root = self.pos;
        'value: loop {
            // A value starts at `self.pos`, after any whitespace.
            let (mut unit, mut depth) = match self.peek() {
                Some(open @ (b'[' | b'{')) => {
                    if frames.len() >= self.max_nesting {
                        return Err(self.err(format!(
                            "nesting deeper than the limit of {}",
                            self.limits.max_depth
                        )));
                    }
                    let object = open == b'{';
                    let start = self.pos;
                    self.pos += 1;
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        self.check_depth(1, start, true)?;
                        let empty = if object {
                            Unit::Map(Map::new())
                        } else {
                            Unit::List(Vec::new())
                        };
                        (empty, 1)
                    } else {
                        frames.push(Frame {
                            object,
                            start,
                            values: values.len(),
                            keys: keys.len(),
                            child_depth: 0,
                        });
                        if object {
                            self.key(&mut keys, "expected a string key in double quotes or '}'")?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => (Unit::Str(self.string()?), 0),
                Some(b'-' | b'0'..=b'9') => (self.number()?, 0),
                Some(b't') => (self.literal("true", Unit::Bool(true))?, 0),
                Some(b'f') => (self.literal("false", Unit::Bool(false))?, 0),
                Some(b'n') => (self.literal("null", Unit::None)?, 0),
                Some(_) => {
                    return Err(self.err(
                        "expected a JSON value (null, true, false, a number, a string, an array or an object)",
                    ))
                }
                None => return Err(self.err("expected a JSON value, found the end of the input")),
            };
            // Hand the finished value to its container, closing every container that ends here.
            loop {
                let Some(frame) = frames.last_mut() else {
                    self.check_depth(depth, root, false)?;
                    self.skip_ws();
                    if self.pos != self.b.len() {
                        return Err(self.err(
                            "unexpected input after the JSON value (a document holds one value)",
                        ));
                    }
                    return Ok(unit);
                };
                values.push(unit);
                frame.child_depth = frame.child_depth.max(depth);
                let frame = *frame;
                self.skip_ws();
                match (self.peek(), frame.object) {
                    (Some(b','), object) => {
                        self.pos += 1;
                        self.skip_ws();
                        if object {
                            let msg = if self.peek() == Some(b'}') {
                                "expected a key after ',' (JSON allows no trailing comma)"
                            } else {
                                "expected a string key in double quotes after ','"
                            };
                            self.key(&mut keys, msg)?;
                        } else if self.peek() == Some(b']') {
                            return Err(self.err(
                                "expected a value after ',' (JSON allows no trailing comma)",
                            ));
                        }
                        continue 'value;
                    }
                    (Some(b']'), false) | (Some(b'}'), true) => {
                        self.pos += 1;
                        frames.pop();
                        (unit, depth) = self.close(frame, &mut values, &mut keys)?;
                    }
                    (None, false) => {
                        return Err(self.err_at(
                            frame.start,
                            "unterminated array: expected ']' before the end of the input",
                        ))
                    }
                    (None, true) => {
                        return Err(self.err_at(
                            frame.start,
                            "unterminated object: expected '}' before the end of the input",
                        ))
                    }
                    (Some(_), false) => {
                        return Err(self.err("expected ',' or ']' after an array element"))
                    }
                    (Some(_), true) => {
                        return Err(self.err("expected ',' or '}' after an object value"))
                    }
                }
            }
        }
    }

    /// Checks the unit depth of a finished value against the limit.
    ///
    /// An array or object can be the value of a tagged object one level shallower than itself
    /// (the outer array of `$map`, the array of `$ref`), which is only known once its parent
    /// closes; so plain containers are checked with one level of `slack`. Any container that
    /// exceeds the limit by exactly one is then caught by its parent's check, or, for the
    /// document's value, by the exact check at the end.
    fn check_depth(&self, depth: usize, at: usize, slack: bool) -> Result<(), JsonError> {
        let limit = if slack {
            self.limits.max_depth.saturating_add(1)
        } else {
            self.limits.max_depth
        };
        if depth > limit {
            return Err(self.err_at(
                at,
                format!("nesting deeper than the limit of {}", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    /// Reads `"key":` and any whitespace after it, pushing the key; `expected` is the message if
    /// no key is there.
    fn key(&mut self, keys: &mut Vec<Key>, expected: &str) -> Result<(), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.err(expected));
        }
        let at = self.pos;
        let name = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.err("expected ':' after the object key"));
        }
        self.pos += 1;
        self.skip_ws();
        keys.push(Key {
            name,
            at,
            value_at: self.pos,
        });
        Ok(())
    }

    /// Builds the array or object `frame` from the top of the stacks; gives the unit and its
    /// depth.
    fn close(
        &self,
        frame: Frame,
        values: &mut Vec<Unit>,
        keys: &mut Vec<Key>,
    ) -> Result<(Unit, usize), JsonError> {
        if !frame.object {
            let depth = frame.child_depth + 1;
            self.check_depth(depth, frame.start, true)?;
            return Ok((Unit::List(values.split_off(frame.values)), depth));
        }
        let n = values.len().saturating_sub(frame.values);
        if n == 1 {
            if let Some(tag) = keys.last().and_then(|k| Tag::from_key(&k.name)) {
                let value_at = keys.pop().map_or(frame.start, |k| k.value_at);
                let value = values.pop().unwrap_or_default();
                let unit = self.tagged(tag, value, value_at)?;
                // The tag's value has depth `child_depth`; see `Unit::depth`.
                let depth = match tag {
                    Tag::Byte | Tag::Bytes | Tag::Ref => 0,
                    Tag::Pair | Tag::Stream => frame.child_depth,
                    Tag::Map => frame.child_depth.saturating_sub(1).max(1),
                };
                self.check_depth(depth, frame.start, false)?;
                return Ok((unit, depth));
            }
        }
        let depth = frame.child_depth + 1;
        self.check_depth(depth, frame.start, true)?;
        let mut entries = Vec::with_capacity(n);
        let own_keys = keys.get_mut(frame.keys..).unwrap_or_default();
        for (k, v) in own_keys.iter_mut().zip(values.drain(frame.values..)) {
            entries.push((Unit::Str(std::mem::take(&mut k.name)), v));
        }
        match Map::from_entries(entries) {
            Ok(m) => {
                keys.truncate(frame.keys);
                Ok((Unit::Map(m), depth))
            }
            Err(DuplicateKey { index }) => {
                let at = keys.get(frame.keys + index).map_or(frame.start, |k| k.at);
                // The key was moved into the dropped entries: read it again for the message.
                let mut again = *self;
                again.pos = at;
                let message = match again.string() {
                    Ok(name) => format!("duplicate key {:?} in object", &*name),
                    Err(_) => "duplicate key in object".to_owned(),
                };
                Err(self.err_at(at, message))
            }
        }
    }

    /// Decodes the value of a tagged object.
    fn tagged(&self, tag: Tag, value: Unit, at: usize) -> Result<Unit, JsonError> {
        let fail = |message: String| Err(self.err_at(at, message));
        match tag {
            Tag::Byte => match &value {
                Unit::Int(i) => match i.to_i64().and_then(|v| u8::try_from(v).ok()) {
                    Some(b) => Ok(Unit::Byte(b)),
                    None => fail(format!("$byte expects an integer from 0 to 255, found {i}")),
                },
                other => fail(format!(
                    "$byte expects an integer from 0 to 255, found {}",
                    describe(other)
                )),
            },
            Tag::Bytes => match &value {
                Unit::Str(s) => match BASE64.decode(s.as_bytes()) {
                    Ok(bytes) => Ok(Unit::Bytes(Bytes::from(bytes))),
                    Err(e) => fail(format!(
                        "$bytes expects standard padded base64 (A-Z a-z 0-9 + /, = padding): {e}"
                    )),
                },
                other => fail(format!(
                    "$bytes expects a base64 string, found {}",
                    describe(other)
                )),
            },
            Tag::Ref => match value {
                Unit::List(items) => {
                    let mut segments = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        match item {
                            Unit::Str(s) => segments.push(s),
                            other => {
                                return fail(format!(
                                    "$ref expects an array of strings; element {i} is {}",
                                    describe(&other)
                                ))
                            }
                        }
                    }
                    match Path::new(segments) {
                        Some(path) => Ok(Unit::Ref(path)),
                        None => fail("$ref expects at least one path segment, found []".to_owned()),
                    }
                }
                other => fail(format!(
                    "$ref expects an array of path segments, found {}",
                    describe(&other)
                )),
            },
            Tag::Stream => match value {
                Unit::Map(m) => self.stream(m, at),
                other => fail(format!(
                    "$stream expects an object {{\"unit\": …, \"service\": …, \"node\": …}}, found {}",
                    describe(&other)
                )),
            },
            Tag::Pair => match value {
                Unit::List(items) if items.len() == 2 => {
                    let mut it = items.into_iter();
                    match (it.next(), it.next()) {
                        (Some(a), Some(b)) => Ok(Unit::pair(a, b)),
                        _ => fail("$pair expects an array of exactly 2 values".to_owned()),
                    }
                }
                Unit::List(items) => fail(format!(
                    "$pair expects an array of exactly 2 values, found {}",
                    items.len()
                )),
                other => fail(format!(
                    "$pair expects an array of exactly 2 values, found {}",
                    describe(&other)
                )),
            },
            Tag::Map => match value {
                Unit::List(items) => {
                    let mut entries = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        let entry = match item {
                            Unit::List(kv) if kv.len() == 2 => {
                                let mut it = kv.into_iter();
                                it.next().zip(it.next())
                            }
                            _ => None,
                        };
                        match entry {
                            Some(kv) => entries.push(kv),
                            None => {
                                return fail(format!(
                                    "$map expects an array of [key, value] arrays; entry {i} is not one"
                                ))
                            }
                        }
                    }
                    match Map::from_entries(entries) {
                        Ok(m) => Ok(Unit::Map(m)),
                        Err(DuplicateKey { index }) => {
                            fail(format!("$map has a duplicate key (entry {index})"))
                        }
                    }
                }
                other => fail(format!(
                    "$map expects an array of [key, value] arrays, found {}",
                    describe(&other)
                )),
            },
        }
    }

    /// Decodes the object of a `$stream`.
    fn stream(&self, m: Map, at: usize) -> Result<Unit, JsonError> {
        let fail = |message: String| Err(self.err_at(at, message));
        let (mut unit, mut service, mut node) = (None, None, None);
        for (k, v) in m.into_entries() {
            match (k.as_str(), v) {
                (Some("unit"), v) => unit = Some(v),
                (Some("service"), Unit::Str(s)) => service = Some(s),
                (Some("node"), Unit::Str(s)) => node = Some(s),
                (Some("node"), Unit::None) => {}
                (Some(name @ ("service" | "node")), other) => {
                    return fail(format!(
                        "$stream expects \"{name}\" to be a string, found {}",
                        describe(&other)
                    ))
                }
                _ => {
                    return fail(format!(
                        "$stream object has an unexpected key {}; expected \"unit\", \"service\" and \"node\"",
                        to_json(&k)
                    ))
                }
            }
        }
        let Some(unit) = unit else {
            return fail("$stream object needs a \"unit\"".to_owned());
        };
        let Some(service) = service else {
            return fail("$stream object needs a \"service\" name".to_owned());
        };
        match Stream::new(unit, &service, node.as_deref()) {
            Ok(s) => Ok(Unit::Stream(Box::new(s))),
            Err(e) => fail(format!("$stream: {e}")),
        }
    }

    fn literal(&mut self, word: &str, unit: Unit) -> Result<Unit, JsonError> {
        if self
            .b
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word.as_bytes()))
        {
            self.pos += word.len();
            Ok(unit)
        } else {
            Err(self.err(format!(
                "expected a JSON value (did you mean {word}? JSON literals are lower case and exact)"
            )))
        }
    }

    /// Reads a string starting at its opening quote.
    fn string(&mut self) -> Result<Str, JsonError> {
        let open = self.pos;
        let start = open + 1;
        let mut i = start;
        // Fast path: no escapes.
        loop {
            match self.b.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Str::from(self.slice(start, i)?));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => return Err(self.control_char(i, c)),
                Some(_) => i += 1,
                None => return Err(self.unterminated(open)),
            }
        }
        let mut s = String::with_capacity(i - start + 16);
        s.push_str(self.slice(start, i)?);
        loop {
            match self.b.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Str::from(s));
                }
                Some(b'\\') => {
                    let esc = match self.b.get(i + 1) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let (c, len) = self.unicode_escape(i)?;
                            s.push(c);
                            i += len;
                            continue;
                        }
                        None => return Err(self.unterminated(open)),
                        Some(_) => {
                            return Err(self.err_at(
                                i,
                                "invalid escape: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                            ))
                        }
                    };
                    s.push(esc);
                    i += 2;
                }
                Some(&c) if c < 0x20 => return Err(self.control_char(i, c)),
                Some(_) => {
                    let run = self.b.get(i..).unwrap_or_default();
                    let len = run
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .unwrap_or(run.len());
                    s.push_str(self.slice(i, i + len)?);
                    i += len;
                }
                None => return Err(self.unterminated(open)),
            }
        }
    }

    /// The text between two offsets that are character boundaries by construction.
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, JsonError> {
        self.src.get(from..to).ok_or_else(|| {
            self.err_at(
                from,
                "internal error: string slice off a character boundary",
            )
        })
    }

    fn unterminated(&self, open: usize) -> JsonError {
        self.err_at(open, "unterminated string: expected a closing '\"'")
    }

    fn control_char(&self, at: usize, c: u8) -> JsonError {
        self.err_at(
            at,
            format!("control character U+{c:04X} in a string: JSON requires it escaped (\\n, \\t, \\u{c:04x}…)"),
        )
    }

    /// Reads `\uXXXX` (and the low half of a surrogate pair) at `at`; gives the character and
    /// the number of bytes read.
    fn unicode_escape(&self, at: usize) -> Result<(char, usize), JsonError> {
        let hex4 = |from: usize| -> Option<u32> {
            let digits = self.b.get(from..from + 4)?;
            digits
                .iter()
                .try_fold(0u32, |acc, &d| Some(acc << 4 | char::from(d).to_digit(16)?))
        };
        let Some(first) = hex4(at + 2) else {
            return Err(self.err_at(at, "expected four hex digits after \\u"));
        };
        match first {
            0xD800..=0xDBFF => {
                let low = match (self.b.get(at + 6), self.b.get(at + 7)) {
                    (Some(b'\\'), Some(b'u')) => hex4(at + 8),
                    _ => None,
                };
                match low {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        let c = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                        match char::from_u32(c) {
                            Some(c) => Ok((c, 12)),
                            None => Err(self.err_at(at, "invalid surrogate pair")),
                        }
                    }
                    _ => Err(self.err_at(
                        at,
                        format!(
                            "lone high surrogate \\u{first:04X}: expected a low surrogate \\uDC00-\\uDFFF right after it"
                        ),
                    )),
                }
            }
            0xDC00..=0xDFFF => Err(self.err_at(
                at,
                format!("lone low surrogate \\u{first:04X}: it must follow a high surrogate \\uD800-\\uDBFF"),
            )),
            _ => match char::from_u32(first) {
                Some(c) => Ok((c, 6)),
                None => Err(self.err_at(at, "invalid \\u escape")),
            },
        }
    }

    /// Reads a number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<Unit, JsonError> {
        let b = self.b;
        let start = self.pos;
        let digits_end = |from: usize| {
            b.get(from..)
                .unwrap_or_default()
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(b.len(), |n| from + n)
        };
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let int_start = i;
        match b.get(i) {
            Some(b'0') => {
                i += 1;
                if b.get(i).is_some_and(u8::is_ascii_digit) {
                    return Err(
                        self.err_at(int_start, "leading zeros are not allowed in JSON numbers")
                    );
                }
            }
            Some(b'1'..=b'9') => i = digits_end(i),
            _ => return Err(self.err_at(i, "expected a digit after '-'")),
        }
        let int_end = i;
        let (mut frac_start, mut frac_end) = (i, i);
        let mut is_dec = false;
        if b.get(i) == Some(&b'.') {
            is_dec = true;
            frac_start = i + 1;
            frac_end = digits_end(frac_start);
            if frac_end == frac_start {
                return Err(self.err_at(frac_start, "expected a digit after the decimal point"));
            }
            i = frac_end;
        }
        let mut exponent: i128 = 0;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            is_dec = true;
            i += 1;
            let exp_negative = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let exp_end = digits_end(i);
            if exp_end == i {
                return Err(self.err_at(i, "expected a digit in the exponent"));
            }
            for &d in b.get(i..exp_end).unwrap_or_default() {
                exponent = (exponent * 10 + i128::from(d - b'0')).min(EXPONENT_CLAMP);
            }
            if exp_negative {
                exponent = -exponent;
            }
            i = exp_end;
        }
        self.pos = i;
        let int_digits = b.get(int_start..int_end).unwrap_or_default();
        let frac_digits = b.get(frac_start..frac_end).unwrap_or_default();
        let n_digits = int_digits.len() + frac_digits.len();
        if n_digits > self.limits.max_digits {
            return Err(self.err_at(
                start,
                format!(
                    "number has {n_digits} digits; the limit is {}",
                    self.limits.max_digits
                ),
            ));
        }
        if !is_dec {
            if int_digits.len() <= 18 {
                let v = int_digits
                    .iter()
                    .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
                return Ok(Unit::Int(Int::from(if negative { -v } else { v })));
            }
            return match BigInt::parse_bytes(b.get(start..int_end).unwrap_or_default(), 10) {
                Some(big) => Ok(Unit::Int(Int::from(big))),
                None => Err(self.err_at(start, "invalid integer")),
            };
        }
        // value = (int_digits frac_digits) × 10^(exponent - frac len). Trailing zeros are
        // dropped first, so the scale checked below is the normalized one.
        let frac_zeros = frac_digits.iter().rev().take_while(|&&d| d == b'0').count();
        let (int_part, frac_part, zeros) = if frac_zeros == frac_digits.len() {
            let int_zeros = int_digits.iter().rev().take_while(|&&d| d == b'0').count();
            let int_part = int_digits
                .get(..int_digits.len() - int_zeros)
                .unwrap_or_default();
            (int_part, &[][..], frac_zeros + int_zeros)
        } else {
            let frac_part = frac_digits
                .get(..frac_digits.len() - frac_zeros)
                .unwrap_or_default();
            (int_digits, frac_part, frac_zeros)
        };
        if int_part.iter().chain(frac_part).all(|&d| d == b'0') {
            return Ok(Unit::Dec(Dec::new(BigInt::zero(), 0)));
        }
        let scale = frac_digits.len() as i128 - exponent - zeros as i128;
        let Some(scale) = i64::try_from(scale)
            .ok()
            .filter(|s| (-crate::binary::MAX_SCALE..=crate::binary::MAX_SCALE).contains(s))
        else {
            return Err(self.err_at(start, "decimal exponent out of range (at most ±2^62)"));
        };
        let mantissa = if int_part.len() + frac_part.len() <= 18 {
            let v = int_part
                .iter()
                .chain(frac_part)
                .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
            BigInt::from(if negative { -v } else { v })
        } else {
            let mut text = Vec::with_capacity(int_part.len() + frac_part.len() + 1);
            if negative {
                text.push(b'-');
            }
            text.extend_from_slice(int_part);
            text.extend_from_slice(frac_part);
            match BigInt::parse_bytes(&text, 10) {
                Some(m) => m,
                None => return Err(self.err_at(start, "invalid decimal")),
            }
        };
        Ok(Unit::Dec(Dec::new(mantissa, scale)))
    }
}

/// How a decoded value reads in an error message, in JSON terms.
fn describe(u: &Unit) -> &'static str {
    match u {
        Unit::None => "null",
        Unit::Bool(_) => "a boolean",
        Unit::Int(_) => "an integer",
        Unit::Dec(_) => "a decimal number",
        Unit::Str(_) => "a string",
        Unit::List(_) => "an array",
        Unit::Map(_) => "an object",
        Unit::Byte(_) => "a $byte",
        Unit::Bytes(_) => "a $bytes",
        Unit::Ref(_) => "a $ref",
        Unit::Stream(_) => "a $stream",
        Unit::Pair(_) => "a $pair",
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

struct Writer {
    out: String,
    pretty: bool,
    /// Current indentation level (pretty only).
    level: usize,
}

impl Writer {
    fn unit(&mut self, u: &Unit) {
        match u {
            Unit::None => self.out.push_str("null"),
            Unit::Bool(true) => self.out.push_str("true"),
            Unit::Bool(false) => self.out.push_str("false"),
            Unit::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Unit::Dec(d) => self.out.push_str(&dec_to_string(&d.mantissa(), d.scale())),
            Unit::Str(s) => write_string(&mut self.out, s),
            Unit::Byte(b) => {
                self.inline_tag("$byte");
                let _ = write!(self.out, "{b}");
                self.out.push('}');
            }
            Unit::Bytes(b) => {
                self.inline_tag("$bytes");
                self.out.push('"');
                BASE64.encode_string(b, &mut self.out);
                self.out.push_str("\"}");
            }
            Unit::Ref(p) => {
                self.inline_tag("$ref");
                self.out.push('[');
                for (i, seg) in p.segments().iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(if self.pretty { ", " } else { "," });
                    }
                    write_string(&mut self.out, seg);
                }
                self.out.push_str("]}");
            }
            Unit::Stream(s) => {
                self.open(b'{');
                self.item(true);
                self.key("$stream");
                self.open(b'{');
                self.item(true);
                self.key("unit");
                self.unit(&s.unit);
                self.item(false);
                self.key("service");
                write_string(&mut self.out, s.service());
                if let Some(node) = s.node() {
                    self.item(false);
                    self.key("node");
                    write_string(&mut self.out, node);
                }
                self.close(b'}', false);
                self.close(b'}', false);
            }
            Unit::Pair(p) => {
                self.open(b'{');
                self.item(true);
                self.key("$pair");
                self.open(b'[');
                self.item(true);
                self.unit(&p.0);
                self.item(false);
                self.unit(&p.1);
                self.close(b']', false);
                self.close(b'}', false);
            }
            Unit::List(l) => {
                self.open(b'[');
                for (i, e) in l.iter().enumerate() {
                    self.item(i == 0);
                    self.unit(e);
                }
                self.close(b']', l.is_empty());
            }
            Unit::Map(m) => {
                let plain = m
                    .keys()
                    .all(|k| matches!(k, Unit::Str(s) if !s.starts_with('$')));
                if plain {
                    self.open(b'{');
                    for (i, (k, v)) in m.iter().enumerate() {
                        self.item(i == 0);
                        self.key(k.as_str().unwrap_or_default());
                        self.unit(v);
                    }
                    self.close(b'}', m.is_empty());
                } else {
                    self.open(b'{');
                    self.item(true);
                    self.key("$map");
                    self.open(b'[');
                    for (i, (k, v)) in m.iter().enumerate() {
                        self.item(i == 0);
                        self.open(b'[');
                        self.item(true);
                        self.unit(k);
                        self.item(false);
                        self.unit(v);
                        self.close(b']', false);
                    }
                    self.close(b']', m.is_empty());
                    self.close(b'}', false);
                }
            }
        }
    }

    /// Writes `{"tag":` for a tagged object kept on one line.
    fn inline_tag(&mut self, tag: &str) {
        self.out.push('{');
        write_string(&mut self.out, tag);
        self.out.push_str(if self.pretty { ": " } else { ":" });
    }

    fn open(&mut self, bracket: u8) {
        self.out.push(char::from(bracket));
        self.level += 1;
    }

    /// Starts an element: the comma before all but the first, and in pretty mode a new line.
    fn item(&mut self, first: bool) {
        if !first {
            self.out.push(',');
        }
        if self.pretty {
            self.newline();
        }
    }

    fn close(&mut self, bracket: u8, empty: bool) {
        self.level = self.level.saturating_sub(1);
        if self.pretty && !empty {
            self.newline();
        }
        self.out.push(char::from(bracket));
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.out.extend(std::iter::repeat_n(' ', 2 * self.level));
    }

    fn key(&mut self, k: &str) {
        write_string(&mut self.out, k);
        self.out.push_str(if self.pretty { ": " } else { ":" });
    }
}

/// Writes `s` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\r`, `\t`,
/// `\b`, `\f` or `\u00XX`, everything else as is.
fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut plain_from = 0;
    for (i, &c) in s.as_bytes().iter().enumerate() {
        let esc = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte and `plain_from` just after one: both are char boundaries.
        out.push_str(s.get(plain_from..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{c:04x}");
        } else {
            out.push_str(esc);
        }
        plain_from = i + 1;
    }
    out.push_str(s.get(plain_from..).unwrap_or_default());
    out.push('"');
}
