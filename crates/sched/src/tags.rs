//! Tag expressions: which nodes a process may run on, written as in OneOS.
//!
//! ```text
//! expr  := or
//! or    := and ("||" and)*
//! and   := unary ("&&" unary)*
//! unary := "!" unary | "(" expr ")" | tag
//! tag   := name ("=" value)?
//! ```
//!
//! Names and values are runs of ASCII letters, digits and `_ - . : /`; whitespace may surround
//! every token. `&&` binds tighter than `||`. The input is bounded ([`MAX_EXPR_LEN`] bytes,
//! [`MAX_DEPTH`] levels of `!` and parentheses), so parsing and evaluating take bounded stack.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A node's tags: name → value. A bare tag (`camera`) has the empty value.
pub type Tags = BTreeMap<String, String>;

/// Longest expression accepted, in bytes.
pub const MAX_EXPR_LEN: usize = 1024;

/// Deepest nesting of `!` and parentheses accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed tag expression. `And` and `Or` hold at least two operands (the parser never builds
/// shorter ones, and an empty one would print as nothing).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TagExpr {
    /// `name`: the node has the tag, with any value.
    Has(String),
    /// `name=value`: the node has the tag with exactly this value.
    Equals(String, String),
    /// `!e`
    Not(Box<TagExpr>),
    /// `a && b && …`
    And(Vec<TagExpr>),
    /// `a || b || …`
    Or(Vec<TagExpr>),
}

impl TagExpr {
    /// Parses an expression (same as `str::parse`).
    pub fn parse(text: &str) -> Result<TagExpr, TagExprError> {
        Parser::new(text)?.parse_all()
    }

    /// All of `operands` (one operand is itself); the parser passes at least one.
    fn and(mut operands: Vec<TagExpr>) -> TagExpr {
        if operands.len() == 1 {
            operands.remove(0)
        } else {
            TagExpr::And(operands)
        }
    }

    /// Any of `operands` (one operand is itself); the parser passes at least one.
    fn or(mut operands: Vec<TagExpr>) -> TagExpr {
        if operands.len() == 1 {
            operands.remove(0)
        } else {
            TagExpr::Or(operands)
        }
    }

    /// Whether a node with these tags satisfies the expression.
    pub fn matches(&self, tags: &Tags) -> bool {
        match self {
            TagExpr::Has(name) => tags.contains_key(name),
            TagExpr::Equals(name, value) => tags.get(name) == Some(value),
            TagExpr::Not(inner) => !inner.matches(tags),
            TagExpr::And(all) => all.iter().all(|e| e.matches(tags)),
            TagExpr::Or(any) => any.iter().any(|e| e.matches(tags)),
        }
    }

    /// Every tag the expression mentions, as `(name, value)`: `None` for a bare name.
    pub fn mentioned(&self) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        self.collect_mentioned(&mut out);
        out
    }

    fn collect_mentioned<'a>(&'a self, out: &mut Vec<(&'a str, Option<&'a str>)>) {
        match self {
            TagExpr::Has(name) => out.push((name, None)),
            TagExpr::Equals(name, value) => out.push((name, Some(value))),
            TagExpr::Not(inner) => inner.collect_mentioned(out),
            TagExpr::And(list) | TagExpr::Or(list) => {
                for e in list {
                    e.collect_mentioned(out);
                }
            }
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, parens: bool) -> fmt::Result {
        if parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// The canonical form: no whitespace, parentheses only where needed; it parses back to the
/// same expression.
impl fmt::Display for TagExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagExpr::Has(name) => f.write_str(name),
            TagExpr::Equals(name, value) => write!(f, "{name}={value}"),
            TagExpr::Not(inner) => {
                f.write_str("!")?;
                inner.fmt_operand(f, matches!(**inner, TagExpr::And(_) | TagExpr::Or(_)))
            }
            TagExpr::And(list) => {
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str("&&")?;
                    }
                    e.fmt_operand(f, matches!(e, TagExpr::And(_) | TagExpr::Or(_)))?;
                }
                Ok(())
            }
            TagExpr::Or(list) => {
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str("||")?;
                    }
                    e.fmt_operand(f, matches!(e, TagExpr::Or(_)))?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for TagExpr {
    type Err = TagExprError;

    fn from_str(text: &str) -> Result<TagExpr, TagExprError> {
        TagExpr::parse(text)
    }
}

/// Whether `c` may appear in a tag name or value.
pub fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/')
}

/// Why a tag expression was refused. `column` counts characters from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagExprError {
    /// Nothing but whitespace.
    #[error("empty tag expression")]
    Empty,
    /// Longer than [`MAX_EXPR_LEN`].
    #[error("tag expression is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("tag expression nests deeper than {max} levels at column {column}")]
    TooDeep {
        /// Where the limit was passed.
        column: usize,
        /// The limit.
        max: usize,
    },
    /// Something else than what the grammar allows here.
    #[error("tag expression, column {column}: expected {expected}, found {found}")]
    Unexpected {
        /// Where.
        column: usize,
        /// What would have been valid, for people.
        expected: &'static str,
        /// What was there: a quoted character or "the end".
        found: String,
    },
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, TagExprError> {
        if text.len() > MAX_EXPR_LEN {
            return Err(TagExprError::TooLong {
                len: text.len(),
                max: MAX_EXPR_LEN,
            });
        }
        if text.trim().is_empty() {
            return Err(TagExprError::Empty);
        }
        Ok(Parser {
            text,
            pos: 0,
            depth: 0,
        })
    }

    fn parse_all(mut self) -> Result<TagExpr, TagExprError> {
        let expr = self.parse_or()?;
        self.skip_ws();
        if self.pos < self.text.len() {
            return Err(self.unexpected("`&&`, `||` or the end"));
        }
        Ok(expr)
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn column(&self) -> usize {
        self.text.get(..self.pos).map_or(0, |s| s.chars().count()) + 1
    }

    fn unexpected(&self, expected: &'static str) -> TagExprError {
        let found = match self.peek() {
            Some(c) => format!("`{c}`"),
            None => "the end".to_string(),
        };
        TagExprError::Unexpected {
            column: self.column(),
            expected,
            found,
        }
    }

    /// Consumes `op` (after whitespace) if it is next. A lone `&` or `|` is an error, since
    /// it is most likely a typo for the doubled operator.
    fn eat_op(&mut self, op: &str) -> Result<bool, TagExprError> {
        self.skip_ws();
        if self.rest().starts_with(op) {
            self.pos += op.len();
            return Ok(true);
        }
        if self.rest().starts_with(&op[..1]) {
            return Err(self.unexpected(if op == "&&" { "`&&`" } else { "`||`" }));
        }
        Ok(false)
    }

    fn parse_or(&mut self) -> Result<TagExpr, TagExprError> {
        let mut operands = vec![self.parse_and()?];
        while self.eat_op("||")? {
            operands.push(self.parse_and()?);
        }
        Ok(TagExpr::or(operands))
    }

    fn parse_and(&mut self) -> Result<TagExpr, TagExprError> {
        let mut operands = vec![self.parse_unary()?];
        while self.eat_op("&&")? {
            operands.push(self.parse_unary()?);
        }
        Ok(TagExpr::and(operands))
    }

    fn enter(&mut self) -> Result<(), TagExprError> {
        if self.depth >= MAX_DEPTH {
            return Err(TagExprError::TooDeep {
                column: self.column(),
                max: MAX_DEPTH,
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_unary(&mut self) -> Result<TagExpr, TagExprError> {
        self.skip_ws();
        match self.peek() {
            Some('!') => {
                self.enter()?;
                self.pos += 1;
                let inner = self.parse_unary()?;
                self.depth -= 1;
                Ok(TagExpr::Not(Box::new(inner)))
            }
            Some('(') => {
                self.enter()?;
                self.pos += 1;
                let inner = self.parse_or()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.unexpected("`)`, `&&` or `||`"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            _ => self.parse_tag(),
        }
    }

    fn parse_word(&mut self, expected: &'static str) -> Result<String, TagExprError> {
        self.skip_ws();
        let rest = self.rest();
        let len = rest.find(|c: char| !is_tag_char(c)).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.unexpected(expected));
        }
        self.pos += len;
        Ok(rest[..len].to_string())
    }

    fn parse_tag(&mut self) -> Result<TagExpr, TagExprError> {
        let name = self.parse_word("a tag name, `!` or `(`")?;
        self.skip_ws();
        if self.peek() == Some('=') {
            self.pos += 1;
            let value = self.parse_word("a tag value after `=`")?;
            Ok(TagExpr::Equals(name, value))
        } else {
            Ok(TagExpr::Has(name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[(&str, &str)]) -> Tags {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(text: &str) -> TagExpr {
        match TagExpr::parse(text) {
            Ok(e) => e,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    #[test]
    fn the_issue_examples_parse_and_print_canonically() {
        for (text, canonical) in [
            ("camera", "camera"),
            ("site=lab", "site=lab"),
            ("camera||webcam", "camera||webcam"),
            ("gpu&&!laptop", "gpu&&!laptop"),
            (" ( gpu || tpu ) && ! laptop ", "(gpu||tpu)&&!laptop"),
            ("site = lab", "site=lab"),
            ("a||b&&c", "a||b&&c"),
            ("(a||b)||c", "(a||b)||c"),
            ("((a))", "a"),
            ("!(a&&b)", "!(a&&b)"),
            ("!!a", "!!a"),
        ] {
            assert_eq!(parse(text).to_string(), canonical, "{text:?}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("a||b&&c"),
            TagExpr::Or(vec![
                TagExpr::Has("a".into()),
                TagExpr::And(vec![TagExpr::Has("b".into()), TagExpr::Has("c".into())]),
            ])
        );
    }

    #[test]
    fn matching_follows_names_and_values() {
        let node = tags(&[("camera", ""), ("site", "lab")]);
        assert!(parse("camera").matches(&node));
        assert!(parse("site").matches(&node));
        assert!(parse("site=lab").matches(&node));
        assert!(!parse("site=home").matches(&node));
        assert!(!parse("gpu").matches(&node));
        assert!(parse("gpu||camera").matches(&node));
        assert!(!parse("camera&&!site").matches(&node));
        assert!(parse("camera&&!laptop").matches(&node));
    }

    #[test]
    fn errors_say_where() {
        let cases: &[(&str, TagExprError)] = &[
            ("", TagExprError::Empty),
            ("  ", TagExprError::Empty),
            (
                "gpu &",
                TagExprError::Unexpected {
                    column: 5,
                    expected: "`&&`",
                    found: "`&`".into(),
                },
            ),
            (
                "gpu&&",
                TagExprError::Unexpected {
                    column: 6,
                    expected: "a tag name, `!` or `(`",
                    found: "the end".into(),
                },
            ),
            (
                "(gpu",
                TagExprError::Unexpected {
                    column: 5,
                    expected: "`)`, `&&` or `||`",
                    found: "the end".into(),
                },
            ),
            (
                "gpu)",
                TagExprError::Unexpected {
                    column: 4,
                    expected: "`&&`, `||` or the end",
                    found: "`)`".into(),
                },
            ),
            (
                "site=",
                TagExprError::Unexpected {
                    column: 6,
                    expected: "a tag value after `=`",
                    found: "the end".into(),
                },
            ),
            (
                "é||x",
                TagExprError::Unexpected {
                    column: 1,
                    expected: "a tag name, `!` or `(`",
                    found: "`é`".into(),
                },
            ),
            (
                "a b",
                TagExprError::Unexpected {
                    column: 3,
                    expected: "`&&`, `||` or the end",
                    found: "`b`".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(TagExpr::parse(text).as_ref(), Err(want), "{text:?}");
        }
    }

    #[test]
    fn input_is_bounded() {
        let at_limit = "a||".repeat(MAX_EXPR_LEN / 3) + &"a".repeat(MAX_EXPR_LEN % 3);
        assert_eq!(at_limit.len(), MAX_EXPR_LEN);
        assert!(TagExpr::parse(&at_limit).is_ok());
        let long = at_limit + "a";
        assert!(matches!(
            TagExpr::parse(&long),
            Err(TagExprError::TooLong { .. })
        ));
        let deep = "(".repeat(MAX_DEPTH + 1) + "a" + &")".repeat(MAX_DEPTH + 1);
        assert_eq!(
            TagExpr::parse(&deep),
            Err(TagExprError::TooDeep {
                column: MAX_DEPTH + 1,
                max: MAX_DEPTH
            })
        );
        let just_deep_enough = "(".repeat(MAX_DEPTH) + "a" + &")".repeat(MAX_DEPTH);
        assert_eq!(
            TagExpr::parse(&just_deep_enough),
            Ok(TagExpr::Has("a".into()))
        );
        let nots = "!".repeat(MAX_DEPTH + 1) + "a";
        assert!(matches!(
            TagExpr::parse(&nots),
            Err(TagExprError::TooDeep { .. })
        ));
    }
}
