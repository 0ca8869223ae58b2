//! The argument of `place`: OneOS tag terms joined by `&&`, `||`, `!` and parentheses.
//!
//! ```text
//! or    := and ("||" and)*
//! and   := unary ("&&" unary)*
//! unary := "!" unary | "(" or ")" | term
//! term  := "#"? tag (cmp value)?          cmp := == | = | != | < | <= | > | >=
//! value := string | word
//! ```
//!
//! Tags and words are runs of letters, digits and `_ - . : /`. `#t` is the tag `t`;
//! `#t == "v"` and `#t = v` are `t=v`, `!=` their negation. A comparison with a number
//! (`#cores > 4`, `#cores == 4`) is a [`NumericConstraint`]; those may only be top-level `&&`
//! operands, since a [`TagExpr`] cannot hold them.

use plexus_sched::tags::is_tag_char;
use plexus_sched::TagExpr;

use crate::error::{ErrorKind, Fault};
use crate::lexer::{comment_at, skip_comment, string_end};
use crate::model::{CmpOp, NumericConstraint, Placement};
use crate::MAX_DEPTH;

#[derive(Clone, Debug, PartialEq)]
enum PTok {
    Hash,
    Word(String),
    Str(String),
    And,
    Or,
    Not,
    Cmp(CmpOp),
    Open,
    Close,
    End,
}

/// A parsed term tree before it is split into tags and numbers.
enum PNode {
    Tag(TagExpr),
    Num(NumericConstraint, usize, usize),
    Not(Box<PNode>),
    And(Vec<PNode>),
    Or(Vec<PNode>),
}

struct PlaceParser<'a> {
    src: &'a str,
    pos: usize,
    end: usize,
    depth: usize,
    /// The token at `pos` and its span, once read.
    peeked: Option<(PTok, usize, usize)>,
}

/// Parses the `place` argument at bytes `start..end` of `src`.
pub(crate) fn parse_placement(src: &str, start: usize, end: usize) -> Result<Placement, Fault> {
    let mut p = PlaceParser {
        src,
        pos: start,
        end,
        depth: 0,
        peeked: None,
    };
    let (first, s, e) = p.peek()?;
    if first == PTok::End {
        return Err(Fault::new(
            ErrorKind::BadDirectiveArgument {
                directive: "place".into(),
                expected: "a tag expression such as `#camera && #site == \"lab\"`".into(),
            },
            s,
            e,
        ));
    }
    let root = p.parse_or()?;
    let (tok, s, e) = p.peek()?;
    if tok != PTok::End {
        return Err(expected("`&&`, `||` or `)`", &tok, src, s, e));
    }
    let conjuncts = match root {
        PNode::And(list) => list,
        other => vec![other],
    };
    let mut tags = Vec::new();
    let mut numeric = Vec::new();
    for c in conjuncts {
        match c {
            PNode::Num(n, _, _) => numeric.push(n),
            other => tags.push(to_tag(other)?),
        }
    }
    let tags = match tags.len() {
        0 => None,
        1 => tags.pop(),
        _ => Some(TagExpr::And(tags)),
    };
    Ok(Placement { tags, numeric })
}

fn to_tag(node: PNode) -> Result<TagExpr, Fault> {
    Ok(match node {
        PNode::Tag(t) => t,
        PNode::Num(_, s, e) => return Err(Fault::new(ErrorKind::NumericNotTopLevel, s, e)),
        PNode::Not(inner) => TagExpr::Not(Box::new(to_tag(*inner)?)),
        PNode::And(list) => TagExpr::And(list.into_iter().map(to_tag).collect::<Result<_, _>>()?),
        PNode::Or(list) => TagExpr::Or(list.into_iter().map(to_tag).collect::<Result<_, _>>()?),
    })
}

fn describe(tok: &PTok, src: &str, s: usize, e: usize) -> String {
    match tok {
        PTok::End => "the end of the expression".into(),
        _ => format!("`{}`", src.get(s..e).unwrap_or("")),
    }
}

fn expected(what: &str, tok: &PTok, src: &str, s: usize, e: usize) -> Fault {
    Fault::new(
        ErrorKind::Expected {
            expected: what.into(),
            found: describe(tok, src, s, e),
        },
        s,
        e,
    )
}

/// The number a word spells, if it starts like one (a digit, or a sign and a digit).
fn number(word: &str) -> Option<f64> {
    let digits = word.strip_prefix(['-', '+']).unwrap_or(word);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    word.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl PlaceParser<'_> {
    fn peek(&mut self) -> Result<(PTok, usize, usize), Fault> {
        if let Some(t) = &self.peeked {
            return Ok(t.clone());
        }
        let t = self.read()?;
        self.peeked = Some(t.clone());
        Ok(t)
    }

    fn next(&mut self) -> Result<(PTok, usize, usize), Fault> {
        let t = self.peek()?;
        self.peeked = None;
        Ok(t)
    }

    fn read(&mut self) -> Result<(PTok, usize, usize), Fault> {
        let bytes = self.src.as_bytes().get(..self.end).unwrap_or(&[]);
        loop {
            match bytes.get(self.pos) {
                Some(b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c) => self.pos += 1,
                Some(_) if comment_at(bytes, self.pos) => {
                    self.pos = skip_comment(bytes, self.pos).unwrap_or(bytes.len());
                }
                _ => break,
            }
        }
        let s = self.pos;
        let Some(&b) = bytes.get(s) else {
            return Ok((PTok::End, s, s));
        };
        let two = bytes.get(s + 1).copied();
        let (tok, len) = match (b, two) {
            (b'#', _) => (PTok::Hash, 1),
            (b'&', Some(b'&')) => (PTok::And, 2),
            (b'|', Some(b'|')) => (PTok::Or, 2),
            (b'!', Some(b'=')) => (PTok::Cmp(CmpOp::Ne), 2),
            (b'!', _) => (PTok::Not, 1),
            (b'=', Some(b'=')) => (PTok::Cmp(CmpOp::Eq), 2),
            (b'=', _) => (PTok::Cmp(CmpOp::Eq), 1),
            (b'<', Some(b'=')) => (PTok::Cmp(CmpOp::Le), 2),
            (b'<', _) => (PTok::Cmp(CmpOp::Lt), 1),
            (b'>', Some(b'=')) => (PTok::Cmp(CmpOp::Ge), 2),
            (b'>', _) => (PTok::Cmp(CmpOp::Gt), 1),
            (b'(', _) => (PTok::Open, 1),
            (b')', _) => (PTok::Close, 1),
            (b'"' | b'\'', _) => {
                let e = string_end(bytes, s)?;
                let text = crate::lexer::unescape(self.src.get(s..e).unwrap_or(""));
                (PTok::Str(text), e - s)
            }
            _ => {
                let mut e = s;
                while let Some(c) = self.src.get(e..self.end).and_then(|r| r.chars().next()) {
                    if !is_tag_char(c) || comment_at(bytes, e) {
                        break;
                    }
                    e += c.len_utf8();
                }
                if e == s {
                    let ch = self
                        .src
                        .get(s..)
                        .and_then(|r| r.chars().next())
                        .unwrap_or('\u{fffd}');
                    let kind = if matches!(ch, '&' | '|') {
                        ErrorKind::Expected {
                            expected: format!("`{ch}{ch}`"),
                            found: format!("`{ch}`"),
                        }
                    } else {
                        ErrorKind::UnexpectedChar { ch }
                    };
                    return Err(Fault::new(kind, s, s + ch.len_utf8()));
                }
                (
                    PTok::Word(self.src.get(s..e).unwrap_or("").to_string()),
                    e - s,
                )
            }
        };
        self.pos = s + len;
        Ok((tok, s, s + len))
    }

    fn enter(&mut self, s: usize, e: usize) -> Result<(), Fault> {
        if self.depth >= MAX_DEPTH {
            return Err(Fault::new(ErrorKind::TooDeep { max: MAX_DEPTH }, s, e));
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_or(&mut self) -> Result<PNode, Fault> {
        let mut list = vec![self.parse_and()?];
        while self.peek()?.0 == PTok::Or {
            self.next()?;
            list.push(self.parse_and()?);
        }
        Ok(if list.len() == 1 {
            list.remove(0)
        } else {
            PNode::Or(list)
        })
    }

    fn parse_and(&mut self) -> Result<PNode, Fault> {
        let mut list = vec![self.parse_unary()?];
        while self.peek()?.0 == PTok::And {
            self.next()?;
            list.push(self.parse_unary()?);
        }
        Ok(if list.len() == 1 {
            list.remove(0)
        } else {
            PNode::And(list)
        })
    }

    fn parse_unary(&mut self) -> Result<PNode, Fault> {
        let (tok, s, e) = self.peek()?;
        match tok {
            PTok::Not => {
                self.next()?;
                self.enter(s, e)?;
                let inner = self.parse_unary()?;
                self.depth -= 1;
                Ok(PNode::Not(Box::new(inner)))
            }
            PTok::Open => {
                self.next()?;
                self.enter(s, e)?;
                let inner = self.parse_or()?;
                let (tok, s2, e2) = self.next()?;
                if tok != PTok::Close {
                    return Err(expected("`)`, `&&` or `||`", &tok, self.src, s2, e2));
                }
                self.depth -= 1;
                // A parenthesised group is one operand: a numeric comparison inside it is
                // not top-level any more.
                Ok(match inner {
                    PNode::Num(n, s, e) => PNode::And(vec![PNode::Num(n, s, e)]),
                    other => other,
                })
            }
            _ => self.parse_term(),
        }
    }

    fn parse_term(&mut self) -> Result<PNode, Fault> {
        let (mut tok, mut s, mut e) = self.next()?;
        let start = s;
        if tok == PTok::Hash {
            (tok, s, e) = self.next()?;
        }
        let PTok::Word(name) = tok else {
            return Err(expected(
                "a tag such as `#camera`, `!` or `(`",
                &tok,
                self.src,
                s,
                e,
            ));
        };
        let PTok::Cmp(op) = self.peek()?.0 else {
            return Ok(PNode::Tag(TagExpr::Has(name)));
        };
        self.next()?;
        let (value, vs, ve) = self.next()?;
        let end = ve;
        match value {
            PTok::Word(word) => {
                if let Some(v) = number(&word) {
                    return Ok(PNode::Num(
                        NumericConstraint {
                            tag: name,
                            op,
                            value: v,
                        },
                        start,
                        end,
                    ));
                }
                self.equality(name, op, word, vs, ve)
            }
            PTok::Str(text) => {
                if text.is_empty() || !text.chars().all(is_tag_char) {
                    return Err(Fault::new(ErrorKind::BadTagValue { value: text }, vs, ve));
                }
                self.equality(name, op, text, vs, ve)
            }
            other => Err(expected(
                "a value (a string, a word or a number)",
                &other,
                self.src,
                vs,
                ve,
            )),
        }
    }

    fn equality(
        &self,
        name: String,
        op: CmpOp,
        value: String,
        vs: usize,
        ve: usize,
    ) -> Result<PNode, Fault> {
        let eq = TagExpr::Equals(name, value);
        match op {
            CmpOp::Eq => Ok(PNode::Tag(eq)),
            CmpOp::Ne => Ok(PNode::Tag(TagExpr::Not(Box::new(eq)))),
            _ => Err(Fault::new(
                ErrorKind::Expected {
                    expected: format!("a number after `{}`", op.symbol()),
                    found: format!("`{}`", self.src.get(vs..ve).unwrap_or("")),
                },
                vs,
                ve,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(text: &str) -> Result<Placement, Fault> {
        parse_placement(text, 0, text.len())
    }

    fn tags(text: &str) -> TagExpr {
        TagExpr::parse(text).unwrap()
    }

    #[test]
    fn oneos_terms_become_tag_expressions() {
        for (osh, canonical) in [
            ("#camera", "camera"),
            ("#camera && #site == \"lab\"", "camera&&site=lab"),
            ("#site = lab", "site=lab"),
            ("#site != 'lab'", "!site=lab"),
            ("#a || #b && !#c", "a||b&&!c"),
            ("(#a || #b) && #c", "(a||b)&&c"),
            ("gpu&&!laptop", "gpu&&!laptop"),
            ("#a&&#b // c\n", "a&&b"),
            ("((#a))", "a"),
        ] {
            let p = place(osh).unwrap();
            assert_eq!(p.tags, Some(tags(canonical)), "{osh}");
            assert!(p.numeric.is_empty());
        }
    }

    #[test]
    fn numeric_comparisons_are_kept_apart() {
        let p = place("#camera && #cores > 4 && #memory >= 2048.5").unwrap();
        assert_eq!(p.tags, Some(tags("camera")));
        assert_eq!(
            p.numeric,
            vec![
                NumericConstraint {
                    tag: "cores".into(),
                    op: CmpOp::Gt,
                    value: 4.0
                },
                NumericConstraint {
                    tag: "memory".into(),
                    op: CmpOp::Ge,
                    value: 2048.5
                },
            ]
        );
        let p = place("#cores == 8").unwrap();
        assert_eq!(p.tags, None);
        assert_eq!(p.numeric[0].op, CmpOp::Eq);
        // A string compares as a tag value, even when it spells a number.
        assert_eq!(place("#rev == \"8\"").unwrap().tags, Some(tags("rev=8")));
    }

    #[test]
    fn numeric_comparisons_only_at_the_top() {
        for text in [
            "#a || #cores > 4",
            "!(#cores > 4)",
            "(#cores > 4) && #a",
            "#a && (#b && #c < 1)",
        ] {
            let err = place(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::NumericNotTopLevel, "{text}");
        }
    }

    #[test]
    fn errors_say_where() {
        let err = place("#a & #b").unwrap_err();
        assert_eq!((err.start, err.end), (3, 4));
        let err = place("#a && ").unwrap_err();
        assert_eq!((err.start, err.end), (6, 6));
        let err = place("#site > lab").unwrap_err();
        assert_eq!((err.start, err.end), (8, 11));
        let err = place("#site == \"a b\"").unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::BadTagValue {
                value: "a b".into()
            }
        );
        let err = place("(#a").unwrap_err();
        assert_eq!((err.start, err.end), (3, 3));
        let deep = "(".repeat(MAX_DEPTH + 1) + "#a" + &")".repeat(MAX_DEPTH + 1);
        assert_eq!(
            place(&deep).unwrap_err().kind,
            ErrorKind::TooDeep { max: MAX_DEPTH }
        );
    }
}
