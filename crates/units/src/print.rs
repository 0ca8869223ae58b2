//! Printers: canonical (the inverse of parsing), pretty (indented) and short (truncated).

use std::fmt::{self, Write};

use num_bigint::BigInt;
use num_traits::{Signed, Zero};

use crate::text::{is_bare_segment, is_bare_str, is_word_char};
use crate::value::{Path, Stream, Unit};

/// Plain decimal notation is used while it needs at most this many padding zeros; beyond,
/// the exponent form `1.5e40`.
const MAX_PLAIN_ZEROS: i128 = 20;

/// The canonical text of `u`: single spaces, strings bare where that reads back the same,
/// otherwise in backticks. `parse(&to_text(u)) == Ok(u)` for every unit.
pub fn to_text(u: &Unit) -> String {
    let mut out = String::new();
    write_canonical(&mut out, u);
    out
}

/// The pretty form: lists and maps with one element per line, each level indented by `step`
/// spaces more than its parent. It parses back to the same unit.
pub fn to_pretty(u: &Unit, step: usize) -> String {
    let mut out = String::new();
    write_pretty(&mut out, u, 0, step);
    out
}

/// The short form for display: strings, numbers, refs and byte strings longer than `n`
/// characters show their first `n` then `..`; lists and maps with more than `n` elements
/// show `n` of them then ` ..`. Not meant to be parsed back.
pub fn to_short(u: &Unit, n: usize) -> String {
    let mut out = String::new();
    write_short(&mut out, u, n);
    out
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_text(self))
    }
}

fn write_canonical(out: &mut String, u: &Unit) {
    match u {
        Unit::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_canonical(out, e);
            }
            out.push(']');
        }
        Unit::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_canonical(out, k);
                push_separator(out, k);
                write_canonical(out, v);
            }
            out.push('}');
        }
        Unit::Pair(p) => {
            out.push('(');
            write_canonical(out, &p.0);
            out.push(' ');
            write_canonical(out, &p.1);
            out.push(')');
        }
        Unit::Stream(s) => {
            write_canonical(out, &s.unit);
            write_link(out, s);
        }
        scalar => write_scalar(out, scalar),
    }
}

/// Writes `@service[:node]`.
fn write_link(out: &mut String, s: &Stream) {
    out.push('@');
    out.push_str(s.service());
    if let Some(node) = s.node() {
        out.push(':');
        if node.chars().all(is_word_char) {
            out.push_str(node);
        } else {
            write_quoted(out, node);
        }
    }
}

/// After a stream key the separator is followed by a space, so `{k@s: v@t:n}` cannot be read as
/// the key `k@s:v@t` (see `docs/units-text.md`).
fn push_separator(out: &mut String, key: &Unit) {
    out.push_str(if matches!(key, Unit::Stream(_)) {
        ": "
    } else {
        ":"
    });
}

fn write_scalar(out: &mut String, u: &Unit) {
    match u {
        Unit::None => out.push('-'),
        Unit::Bool(true) => out.push('t'),
        Unit::Bool(false) => out.push('f'),
        Unit::Byte(b) => {
            let _ = write!(out, "0x{b:02x}");
        }
        Unit::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Unit::Dec(d) => out.push_str(&dec_to_string(&d.mantissa(), d.scale())),
        Unit::Str(s) => {
            if is_bare_str(s) {
                out.push_str(s);
            } else {
                write_quoted(out, s);
            }
        }
        Unit::Bytes(b) => {
            out.reserve(b.len() * 2 + 3);
            out.push_str("x\"");
            for byte in b.iter() {
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 0xf)] as char);
            }
            out.push('"');
        }
        Unit::Ref(p) => write_path(out, p),
        other => write_canonical(out, other),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_path(out: &mut String, p: &Path) {
    for (i, seg) in p.segments().iter().enumerate() {
        out.push(if i == 0 { '@' } else { '.' });
        if is_bare_segment(seg) {
            out.push_str(seg);
        } else {
            write_quoted(out, seg);
        }
    }
}

/// Writes `s` in backticks with the escapes of the notation.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('`');
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '`' => Some("\\`"),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\0' => Some("\\0"),
            c if c.is_control() => None,
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
        plain_from = i + c.len_utf8();
    }
    out.push_str(&s[plain_from..]);
    out.push('`');
}

/// The canonical text of the decimal `mantissa × 10^-scale` (normalized input): always with a
/// point or an exponent so it reads back as a dec.
pub fn dec_to_string(mantissa: &BigInt, scale: i64) -> String {
    if mantissa.is_zero() {
        return "0.0".to_owned();
    }
    let digits = mantissa.magnitude().to_str_radix(10);
    let len = digits.len() as i128;
    let mut out = String::with_capacity(digits.len() + 8);
    if mantissa.is_negative() {
        out.push('-');
    }
    // Number of digits before the decimal point.
    let point = len - i128::from(scale);
    if scale <= 0 && -i128::from(scale) <= MAX_PLAIN_ZEROS {
        out.push_str(&digits);
        for _ in 0..-scale {
            out.push('0');
        }
        out.push_str(".0");
    } else if scale > 0 && point > 0 {
        let (int_part, frac) = digits.split_at(point as usize);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac);
    } else if scale > 0 && -point <= MAX_PLAIN_ZEROS {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        out.push('.');
        out.push_str(if rest.is_empty() { "0" } else { rest });
        let _ = write!(out, "e{}", point - 1);
    }
    out
}

fn write_pretty(out: &mut String, u: &Unit, indent: usize, step: usize) {
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
    match u {
        Unit::List(l) if !l.is_empty() => {
            out.push_str("[\n");
            for e in l {
                pad(out, indent + step);
                write_pretty(out, e, indent + step, step);
                out.push('\n');
            }
            pad(out, indent);
            out.push(']');
        }
        Unit::Map(m) if !m.is_empty() => {
            out.push_str("{\n");
            for (k, v) in m {
                pad(out, indent + step);
                write_canonical(out, k);
                push_separator(out, k);
                write_pretty(out, v, indent + step, step);
                out.push('\n');
            }
            pad(out, indent);
            out.push('}');
        }
        Unit::Stream(s) => {
            write_pretty(out, &s.unit, indent, step);
            write_link(out, s);
        }
        other => write_canonical(out, other),
    }
}

fn write_short(out: &mut String, u: &Unit, n: usize) {
    match u {
        Unit::List(l) => {
            out.push('[');
            for (i, e) in l.iter().take(n).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_short(out, e, n);
            }
            if l.len() > n {
                out.push_str(" ..");
            }
            out.push(']');
        }
        Unit::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().take(n).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_short(out, k, n);
                out.push(':');
                write_short(out, v, n);
            }
            if m.len() > n {
                out.push_str(" ..");
            }
            out.push('}');
        }
        Unit::Pair(p) => {
            out.push('(');
            write_short(out, &p.0, n);
            out.push(' ');
            write_short(out, &p.1, n);
            out.push(')');
        }
        Unit::Stream(s) => {
            write_short(out, &s.unit, n);
            out.push('@');
            out.push_str(s.service());
            if let Some(node) = s.node() {
                out.push(':');
                out.push_str(node);
            }
        }
        Unit::Str(s) if s.chars().count() > n => {
            let cut: String = s.chars().take(n).collect();
            if is_bare_str(s) {
                out.push_str(&cut);
            } else {
                write_quoted(out, &cut);
            }
            out.push_str("..");
        }
        scalar => {
            let mut text = String::new();
            write_scalar(&mut text, scalar);
            if text.chars().count() > n {
                out.extend(text.chars().take(n));
                out.push_str("..");
            } else {
                out.push_str(&text);
            }
        }
    }
}
