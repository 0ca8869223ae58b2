//! Tokens of a script, as in OneOS (B.4): names, numbers, strings, punctuation and operators.
//! Tokens keep only their kind and byte span; the parser reads their text from the source.

use crate::error::{ErrorKind, Fault};

/// A token's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tk {
    /// `[A-Za-z_][A-Za-z0-9_]*`
    Name,
    /// `[0-9]+(\.[0-9]+)?`
    Number,
    /// `"…"` or `'…'`, quotes included.
    Str,
    /// One of `. , : ; ( ) [ ] { }`.
    Punct,
    /// An operator (a greedy run of operator characters, cut into known operators).
    Op,
    /// The end of the script; its span is just after the last token.
    Eof,
}

/// A token: its kind and bytes `start..end` of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Tk,
    pub start: usize,
    pub end: usize,
}

/// Operators made of several characters, longest first; every operator character alone is
/// an operator too.
const OPERATORS: &[&str] = &[
    "-/>", "-*>", "->", "<-", "=>", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=",
];

pub(crate) fn is_op_char(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'%'
            | b'&'
            | b'*'
            | b'+'
            | b'-'
            | b'/'
            | b'<'
            | b'='
            | b'>'
            | b'?'
            | b'@'
            | b'^'
            | b'|'
            | b'#'
    )
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether a comment starts at `i`.
pub(crate) fn comment_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i) == Some(&b'/') && matches!(bytes.get(i + 1), Some(b'/') | Some(b'*'))
}

/// Skips the comment at `i` (which [`comment_at`] found); returns where it ends.
pub(crate) fn skip_comment(bytes: &[u8], i: usize) -> Result<usize, Fault> {
    if bytes.get(i + 1) == Some(&b'/') {
        let mut j = i + 2;
        while j < bytes.len() && bytes[j] != b'\n' {
            j += 1;
        }
        Ok(j)
    } else {
        let mut j = i + 2;
        while j + 1 < bytes.len() {
            if bytes[j] == b'*' && bytes[j + 1] == b'/' {
                return Ok(j + 2);
            }
            j += 1;
        }
        Err(Fault::new(ErrorKind::UnterminatedComment, i, i + 2))
    }
}

/// Where the string starting at `i` (with its quote) ends, past the closing quote. `\\`,
/// `\"` and `\'` are escapes; any other backslash is itself.
pub(crate) fn string_end(bytes: &[u8], i: usize) -> Result<usize, Fault> {
    let quote = bytes[i];
    let mut j = i + 1;
    loop {
        match bytes.get(j) {
            Some(&b) if b == quote => return Ok(j + 1),
            Some(b'\\') if matches!(bytes.get(j + 1), Some(b'\\' | b'"' | b'\'')) => j += 2,
            Some(b'\n') | None => {
                return Err(Fault::new(ErrorKind::UnterminatedString, i, j));
            }
            Some(_) => j += 1,
        }
    }
}

/// The value of a string token's text (quotes included).
pub(crate) fn unescape(token: &str) -> String {
    let inner = token.get(1..token.len().saturating_sub(1)).unwrap_or("");
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if matches!(next, '\\' | '"' | '\'') {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Splits a script into tokens. The caller has checked its size.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, Fault> {
    let bytes = src.as_bytes();
    let mut i = if src.starts_with('\u{feff}') { 3 } else { 0 };
    let mut out = Vec::new();
    let mut last_end = i;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            _ if comment_at(bytes, i) => {
                i = skip_comment(bytes, i)?;
                continue;
            }
            _ if is_name_start(b) => {
                while i < bytes.len() && is_name_char(bytes[i]) {
                    i += 1;
                }
                Tk::Name
            }
            b'0'..=b'9' => {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                Tk::Number
            }
            b'"' | b'\'' => {
                i = string_end(bytes, i)?;
                Tk::Str
            }
            b'.' | b',' | b':' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}' => {
                i += 1;
                Tk::Punct
            }
            _ if is_op_char(b) => {
                while i < bytes.len() && is_op_char(bytes[i]) && !comment_at(bytes, i) {
                    i += 1;
                }
                split_operators(src, start, i, &mut out);
                last_end = i;
                continue;
            }
            _ => {
                let ch = src
                    .get(i..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('\u{fffd}');
                if ch.is_whitespace() {
                    i += ch.len_utf8();
                    continue;
                }
                return Err(Fault::new(
                    ErrorKind::UnexpectedChar { ch },
                    i,
                    i + ch.len_utf8(),
                ));
            }
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
        last_end = i;
    }
    out.push(Token {
        kind: Tk::Eof,
        start: last_end,
        end: last_end,
    });
    Ok(out)
}

/// Cuts the operator run `start..end` into the longest known operators from the left.
fn split_operators(src: &str, start: usize, end: usize, out: &mut Vec<Token>) {
    let mut i = start;
    while i < end {
        let rest = src.get(i..end).unwrap_or("");
        let len = OPERATORS
            .iter()
            .find(|op| rest.starts_with(**op))
            .map_or(1, |op| op.len());
        out.push(Token {
            kind: Tk::Op,
            start: i,
            end: i + len,
        });
        i += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_and_texts(src: &str) -> Vec<(Tk, &str)> {
        lex(src)
            .unwrap()
            .iter()
            .map(|t| (t.kind, &src[t.start..t.end]))
            .collect()
    }

    #[test]
    fn tokens_of_a_graph_member() {
        assert_eq!(
            kinds_and_texts("edge e1: a -/> b; // x\n"),
            vec![
                (Tk::Name, "edge"),
                (Tk::Name, "e1"),
                (Tk::Punct, ":"),
                (Tk::Name, "a"),
                (Tk::Op, "-/>"),
                (Tk::Name, "b"),
                (Tk::Punct, ";"),
                (Tk::Eof, ""),
            ]
        );
    }

    #[test]
    fn operator_runs_are_cut_into_known_operators() {
        let ops: Vec<_> = kinds_and_texts("x=-1 &&#a !#b a-*>b c->//d")
            .into_iter()
            .filter(|(k, _)| *k == Tk::Op)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(ops, ["=", "-", "&&", "#", "!", "#", "-*>", "->"]);
    }

    #[test]
    fn numbers_strings_and_comments() {
        assert_eq!(
            kinds_and_texts("\u{feff}1.5 2. \"a\\\"b\" /* c */ 'q'"),
            vec![
                (Tk::Number, "1.5"),
                (Tk::Number, "2"),
                (Tk::Punct, "."),
                (Tk::Str, "\"a\\\"b\""),
                (Tk::Str, "'q'"),
                (Tk::Eof, ""),
            ]
        );
        assert_eq!(unescape("\"a\\\"b\\\\c\\n\""), "a\"b\\c\\n");
    }

    #[test]
    fn the_end_token_follows_the_last_token() {
        let toks = lex("a  // trailing\n\n").unwrap();
        assert_eq!(
            toks[1],
            Token {
                kind: Tk::Eof,
                start: 1,
                end: 1
            }
        );
    }

    #[test]
    fn lexical_errors_say_where() {
        assert_eq!(
            lex("a \"bc\nd\"").unwrap_err(),
            Fault::new(ErrorKind::UnterminatedString, 2, 5)
        );
        assert_eq!(
            lex("a /* b").unwrap_err(),
            Fault::new(ErrorKind::UnterminatedComment, 2, 4)
        );
        assert_eq!(
            lex("a $").unwrap_err(),
            Fault::new(ErrorKind::UnexpectedChar { ch: '$' }, 2, 3)
        );
        assert_eq!(
            lex("é").unwrap_err(),
            Fault::new(ErrorKind::UnexpectedChar { ch: 'é' }, 0, 2)
        );
    }
}
