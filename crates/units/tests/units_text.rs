//! Example-based tests of the text notation: the grammar, the vnix quirks it fixes, error
//! positions, limits and the display forms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use num_bigint::BigInt;
use plexus_units::binary::MAX_SCALE;
use plexus_units::{
    decode, encode, parse, parse_with, to_pretty, to_short, to_text, Dec, Int, Limits, Map,
    ParseError, Path, Str, Stream, Unit,
};

fn p(text: &str) -> Unit {
    parse(text).unwrap_or_else(|e| panic!("{text:?} should parse:\n{e}"))
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(u) => panic!("{text:?} should not parse, got {u:?}"),
        Err(e) => e,
    }
}

/// Asserts that `text` fails with a message containing `needle` at (line, column).
fn fails(text: &str, needle: &str, line: usize, column: usize) {
    let e = err(text);
    assert!(
        e.message.contains(needle),
        "{text:?}: message {:?} lacks {needle:?}",
        e.message
    );
    assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
}

fn s(x: &str) -> Unit {
    Unit::str(x)
}

fn i(v: i64) -> Unit {
    Unit::int(v)
}

fn dec(m: i64, scale: i64) -> Unit {
    Unit::Dec(Dec::new(BigInt::from(m), scale))
}

fn list(v: Vec<Unit>) -> Unit {
    Unit::List(v)
}

fn map(entries: Vec<(Unit, Unit)>) -> Unit {
    Unit::Map(Map::from_entries(entries).unwrap())
}

fn stream(u: Unit, service: &str, node: Option<&str>) -> Unit {
    Unit::Stream(Box::new(Stream::new(u, service, node).unwrap()))
}

fn path(segs: &[&str]) -> Unit {
    Unit::Ref(Path::new(segs.iter().map(|s| Str::from(*s)).collect()).unwrap())
}

/// Parses, checks the value, and checks that the canonical text is `printed` and reads back.
fn reads(text: &str, expected: Unit, printed: &str) {
    let u = p(text);
    assert_eq!(u, expected, "{text:?}");
    assert_eq!(to_text(&u), printed, "{text:?}");
    assert_eq!(p(printed), u);
}

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

#[test]
fn none_and_bools() {
    reads("-", Unit::None, "-");
    reads("t", Unit::Bool(true), "t");
    reads("f", Unit::Bool(false), "f");
    // vnix read `true` as a string.
    reads("true", Unit::Bool(true), "t");
    reads("false", Unit::Bool(false), "f");
    reads("True", s("True"), "True");
    // `t-` is one word, not `t` then `-`; `-abc` is one word, not none then `abc`.
    reads("t-", s("t-"), "t-");
    reads("-abc", s("-abc"), "-abc");
    reads("--", s("--"), "--");
}

#[test]
fn bytes_are_0x_and_exactly_two_hex_digits() {
    reads("0x1f", Unit::Byte(0x1f), "0x1f");
    reads("0xFF", Unit::Byte(0xff), "0xff");
    // Bytes below 0x10 print with two digits (vnix printed `0x1`).
    reads("0x01", Unit::Byte(1), "0x01");
    reads("0x00", Unit::Byte(0), "0x00");
    // vnix read any 4-character hex token as a byte.
    reads("00ff", s("00ff"), "00ff");
    reads("0012", i(12), "12");
    reads("1234", i(1234), "1234");
    for bad in ["0x1", "0x", "0x123", "0xzz", "0x1g", "0x1f2"] {
        fails(bad, "a byte is 0x and exactly two hex digits", 1, 1);
    }
    fails("[1 0x1]", "a byte is 0x", 1, 4);
    // `+` is not a word character.
    fails("+0ff", "unexpected character '+'", 1, 1);
    // Other `0x…`-like words are strings.
    reads("0X1f", s("0X1f"), "0X1f");
    reads("-0x1f", s("-0x1f"), "-0x1f");
}

#[test]
fn ints_of_any_size() {
    reads("42", i(42), "42");
    reads("-7", i(-7), "-7");
    reads("-0", i(0), "0");
    reads("007", i(7), "7");
    reads("9223372036854775807", i(i64::MAX), "9223372036854775807");
    reads("-9223372036854775808", i(i64::MIN), "-9223372036854775808");
    let big = "123456789012345678901234567890123456789012345678901234567890";
    let u = p(big);
    assert_eq!(u, Unit::Int(Int::from(big.parse::<BigInt>().unwrap())));
    assert_eq!(to_text(&u), big);
    let neg = format!("-{big}");
    assert_eq!(to_text(&p(&neg)), neg);
    // Just past i64 on both sides.
    reads(
        "9223372036854775808",
        Unit::Int(Int::from(BigInt::from(i64::MAX) + 1)),
        "9223372036854775808",
    );
    reads(
        "-9223372036854775809",
        Unit::Int(Int::from(BigInt::from(i64::MIN) - 1)),
        "-9223372036854775809",
    );
}

#[test]
fn decimals_are_exact() {
    // vnix read the fraction as an integer (`1.05` = 1.5) and signed only the integer part.
    assert_ne!(p("1.05"), p("1.5"));
    reads("1.05", dec(105, 2), "1.05");
    reads("-0.5", dec(-5, 1), "-0.5");
    assert!(p("-0.5") < i(0));
    reads("-1.5", dec(-15, 1), "-1.5");
    reads("1.50", dec(15, 1), "1.5");
    reads("1.0", dec(1, 0), "1.0");
    reads("0.0", dec(0, 0), "0.0");
    reads("-0.0", dec(0, 0), "0.0");
    reads("100.000", dec(1, -2), "100.0");
    reads("0.001", dec(1, 3), "0.001");
    // Exponents.
    reads("1e3", dec(1, -3), "1000.0");
    reads("1E3", dec(1, -3), "1000.0");
    reads("2.5e-3", dec(25, 4), "0.0025");
    reads("-2.5E-3", dec(-25, 4), "-0.0025");
    reads("1e40", dec(1, -40), "1.0e40");
    reads("1.5e-40", dec(15, 41), "1.5e-40");
    reads("1e20", dec(1, -20), "100000000000000000000.0");
    reads("1e21", dec(1, -21), "1.0e21");
    // A dec is never equal to an int, but they order by value.
    assert_ne!(p("2.0"), p("2"));
    assert!(p("1") < p("1.5") && p("1.5") < p("2"));
    // 1/3 style values are not rounded through f32 (vnix printed 0.33333334).
    let third = "0.333333333333333333333333";
    reads(
        third,
        Unit::Dec(Dec::new("333333333333333333333333".parse().unwrap(), 24)),
        third,
    );
}

#[test]
fn tokens_are_whole_words() {
    // vnix read `1-2` as `1` then `-2`, `1.2.3` as `1` then `.2.3`.
    reads("1-2", s("1-2"), "1-2");
    reads("1.2.3", s("1.2.3"), "1.2.3");
    reads(".5", s(".5"), ".5");
    reads("1.", s("1."), "1.");
    reads("1e", s("1e"), "1e");
    reads("1e-", s("1e-"), "1e-");
    reads("1.5x", s("1.5x"), "1.5x");
    // Strings that would read as other literals print quoted.
    for (text, printed) in [
        ("`123`", "`123`"),
        ("`t`", "`t`"),
        ("`f`", "`f`"),
        ("`true`", "`true`"),
        ("`-`", "`-`"),
        ("`0x1f`", "`0x1f`"),
        ("`0x1`", "`0x1`"),
        ("`1.5`", "`1.5`"),
        ("`1e5`", "`1e5`"),
        ("`-7`", "`-7`"),
        ("\"\"", "``"),
        ("`a b`", "`a b`"),
        ("`@x`", "`@x`"),
        ("`a:b`", "`a:b`"),
    ] {
        let u = p(text);
        assert!(matches!(u, Unit::Str(_)), "{text}");
        assert_eq!(to_text(&u), printed);
        assert_eq!(p(printed), u);
    }
}

#[test]
fn bare_words_take_unicode_and_punctuation() {
    reads("#ff0000", s("#ff0000"), "#ff0000");
    reads("λ_#x.y", s("λ_#x.y"), "λ_#x.y");
    reads("a-b_c.d#e", s("a-b_c.d#e"), "a-b_c.d#e");
    reads("日本語", s("日本語"), "日本語");
    reads("١٢٣", s("١٢٣"), "١٢٣");
    // A non-alphanumeric character ends a word.
    fails("a!b", "unexpected input after the unit", 1, 2);
    fails("a€", "unexpected input after the unit", 1, 2);
}

// ---------------------------------------------------------------------------------------------
// Quoted strings and byte strings
// ---------------------------------------------------------------------------------------------

#[test]
fn three_quotes_and_escapes() {
    assert_eq!(p("`a b`"), s("a b"));
    assert_eq!(p("'a b'"), s("a b"));
    assert_eq!(p("\"a b\""), s("a b"));
    // Other quotes need no escape.
    assert_eq!(p("`it's \"x\"`"), s("it's \"x\""));
    assert_eq!(p(r#"'say "hi"'"#), s("say \"hi\""));
    // Every escape, in every quote.
    for q in ['`', '\'', '"'] {
        let text = format!(r#"{q}\\ \n \r \t \0 \` \' \" \u{{41}} \u{{1F600}} \u{{e9}}{q}"#);
        assert_eq!(p(&text), s("\\ \n \r \t \0 ` ' \" A 😀 é"), "{text}");
    }
    // Raw newlines and control characters are allowed inside quotes.
    assert_eq!(p("`a\nb\u{1}`"), s("a\nb\u{1}"));
    // The printer uses backticks and escapes what it must.
    assert_eq!(
        to_text(&s("a`b\\c\nd\te\r\0\u{1}\u{7f}'\"")),
        r#"`a\`b\\c\nd\te\r\0\u{1}\u{7f}'"`"#
    );
}

#[test]
fn empty_strings_and_unterminated_quotes() {
    reads("\"\"", s(""), "``");
    reads("``", s(""), "``");
    reads("''", s(""), "``");
    fails("`abc", "unterminated string: expected a closing `", 1, 1);
    fails(
        "[x 'abc]",
        "unterminated string: expected a closing '",
        1,
        4,
    );
    fails("\"abc\\\"", "unterminated string", 1, 1);
    fails("`abc\\", "unterminated string after '\\'", 1, 1);
}

#[test]
fn bad_escapes() {
    fails(r"`a\qb`", "unknown escape", 1, 3);
    fails(r"`\u41`", r"expected \u{hex}", 1, 2);
    fails(r"`\u{}`", r"invalid \u{…} escape", 1, 2);
    fails(r"`\u{1234567}`", r"invalid \u{…} escape", 1, 2);
    fails(r"`\u{d800}`", r"invalid \u{…} escape", 1, 2);
    fails(r"`\u{110000}`", r"invalid \u{…} escape", 1, 2);
    fails(r"`\u{zz}`", r"invalid \u{…} escape", 1, 2);
    // Regression: from_str_radix accepts a sign, the grammar does not.
    fails(r"`\u{+41}`", r"invalid \u{…} escape", 1, 2);
    fails(r"`\u{41`", r"unterminated \u{…} escape", 1, 2);
}

#[test]
fn byte_strings() {
    reads("x\"00ff\"", Unit::Bytes(vec![0, 0xff].into()), "x\"00ff\"");
    reads("x''", Unit::Bytes(Vec::new().into()), "x\"\"");
    reads(
        "x`DE AD\nbe ef`",
        Unit::Bytes(vec![0xde, 0xad, 0xbe, 0xef].into()),
        "x\"deadbeef\"",
    );
    fails("x\"0\"", "expected a second hex digit", 1, 4);
    fails("x\"0g\"", "expected a second hex digit", 1, 4);
    fails("x\"zz\"", "expected hex digits in a byte string", 1, 3);
    fails("x\"00", "unterminated byte string", 1, 2);
    // `x` alone, or followed by a word, is a string.
    reads("x", s("x"), "x");
    reads("xy", s("xy"), "xy");
}

// ---------------------------------------------------------------------------------------------
// Refs, containers, comments, whole input
// ---------------------------------------------------------------------------------------------

#[test]
fn refs() {
    reads("@a.b.0", path(&["a", "b", "0"]), "@a.b.0");
    reads("@a", path(&["a"]), "@a");
    reads(
        "@a.`b c`.'d.e'",
        path(&["a", "b c", "d.e"]),
        "@a.`b c`.`d.e`",
    );
    reads("@``", path(&[""]), "@``");
    reads("@-.0x1.t", path(&["-", "0x1", "t"]), "@-.0x1.t");
    fails("@", "expected a path segment", 1, 2);
    fails("@a..b", "expected a path segment", 1, 4);
    fails("@a.", "expected a path segment", 1, 4);
    fails("@.a", "expected a path segment", 1, 2);
}

#[test]
fn whole_input_is_one_unit() {
    // vnix read `a b c` as `a`.
    fails("a b c", "unexpected input after the unit", 1, 3);
    fails("[a] b", "unexpected input after the unit", 1, 5);
    fails("a]", "unexpected input after the unit", 1, 2);
    fails("", "expected a unit, found the end of the input", 1, 1);
    fails("  // only a comment\n", "expected a unit", 2, 1);
    // Whitespace around the unit is fine (vnix refused leading whitespace).
    assert_eq!(p("  \n\t a \r\n"), s("a"));
}

#[test]
fn free_whitespace_inside_brackets() {
    reads("[ ]", list(vec![]), "[]");
    reads("{ }", map(vec![]), "{}");
    reads("( a b )", Unit::pair(s("a"), s("b")), "(a b)");
    reads("(\n a\n b\n)", Unit::pair(s("a"), s("b")), "(a b)");
    reads("[\n  1\n  2 ]", list(vec![i(1), i(2)]), "[1 2]");
    reads(
        "{ a : 1  b:2 }",
        map(vec![(s("a"), i(1)), (s("b"), i(2))]),
        "{a:1 b:2}",
    );
    reads(
        "[[a][b]]",
        list(vec![list(vec![s("a")]), list(vec![s("b")])]),
        "[[a] [b]]",
    );
    fails(
        "[a`b`]",
        "expected whitespace between a word and a quoted string",
        1,
        3,
    );
    fails("[`a``b`]", "expected whitespace between units", 1, 5);
}

#[test]
fn pairs_hold_exactly_two() {
    fails("()", "a pair holds exactly two units, found 0", 1, 2);
    fails("(a)", "a pair holds exactly two units, found 1", 1, 3);
    fails(
        "(a b c)",
        "expected ')': a pair holds exactly two units",
        1,
        6,
    );
    fails("(a b", "unclosed pair", 1, 1);
    fails("[a b", "unclosed list", 1, 1);
    fails("{a:b", "unclosed map", 1, 1);
    fails("[a)", "unexpected ')'", 1, 3);
    fails(")", "unexpected ')' with nothing open to close", 1, 1);
}

#[test]
fn maps() {
    reads(
        "{a:1 `b c`:[x] 1:2 1.0:3 (k k):- [l]:t {m:n}:f @r:0x01}",
        map(vec![
            (s("a"), i(1)),
            (s("b c"), list(vec![s("x")])),
            (i(1), i(2)),
            (dec(1, 0), i(3)),
            (Unit::pair(s("k"), s("k")), Unit::None),
            (list(vec![s("l")]), Unit::Bool(true)),
            (map(vec![(s("m"), s("n"))]), Unit::Bool(false)),
            (path(&["r"]), Unit::Byte(1)),
        ]),
        "{a:1 `b c`:[x] 1:2 1.0:3 (k k):- [l]:t {m:n}:f @r:0x01}",
    );
    // Maps are ordered.
    assert_ne!(p("{a:1 b:2}"), p("{b:2 a:1}"));
    fails("{a}", "expected ':' after the map key", 1, 3);
    fails("{a:}", "expected a value after ':'", 1, 4);
    fails("{a b:c}", "expected ':' after the map key", 1, 4);
    fails("[a:b]", "unexpected ':'", 1, 3);
}

#[test]
fn duplicate_keys_are_an_error() {
    fails("{a:1 b:2 a:3}", "duplicate map key", 1, 10);
    fails("{a:1\n `a`:2}", "duplicate map key", 2, 2);
    fails("{[1 2]:a [1 2]:b}", "duplicate map key", 1, 10);
    fails("{1.50:a 1.5:b}", "duplicate map key", 1, 9);
    // Different types are different keys.
    assert_eq!(p("{1:a 1.0:b `1`:c}").as_map().unwrap().len(), 3);
}

#[test]
fn comments() {
    assert_eq!(
        p("// head\n[1 /* two */ 2 // three\n 3] /* tail */"),
        list(vec![i(1), i(2), i(3)])
    );
    assert_eq!(p("[1/* a */2]"), list(vec![i(1), i(2)]));
    assert_eq!(p("{a:/**/b}"), map(vec![(s("a"), s("b"))]));
    assert_eq!(p("`// not a comment`"), s("// not a comment"));
    fails("[1 /* open", "unterminated comment", 1, 4);
    fails("[1/2]", "unexpected '/'", 1, 3);
    fails("a/", "unexpected '/'", 1, 2);
}

// ---------------------------------------------------------------------------------------------
// Streams and node addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn streams_and_nodes() {
    reads("x@serv", stream(s("x"), "serv", None), "x@serv");
    // vnix dropped `:node` at top level and refused it inside a map.
    reads(
        "x@serv:node",
        stream(s("x"), "serv", Some("node")),
        "x@serv:node",
    );
    reads(
        "{mul:[2 {inc:4} (sub (10 3))]}@math.calc:node-b",
        stream(
            p("{mul:[2 {inc:4} (sub (10 3))]}"),
            "math.calc",
            Some("node-b"),
        ),
        "{mul:[2 {inc:4} (sub (10 3))]}@math.calc:node-b",
    );
    reads(
        "x@s:`node b`",
        stream(s("x"), "s", Some("node b")),
        "x@s:`node b`",
    );
    reads("x@s:'n'", stream(s("x"), "s", Some("n")), "x@s:n");
    // Streams nest to the left.
    reads(
        "a@b:n@c",
        stream(stream(s("a"), "b", Some("n")), "c", None),
        "a@b:n@c",
    );
    reads(
        "[a@b c@d:e]",
        list(vec![
            stream(s("a"), "b", None),
            stream(s("c"), "d", Some("e")),
        ]),
        "[a@b c@d:e]",
    );
    reads("@a.b@s", stream(path(&["a", "b"]), "s", None), "@a.b@s");
    reads("1.5@s", stream(dec(15, 1), "s", None), "1.5@s");
    reads("-@s", stream(Unit::None, "s", None), "-@s");
    reads("`a b`@s", stream(s("a b"), "s", None), "`a b`@s");
    fails("x@", "expected a service name after '@'", 1, 3);
    fails("x@ s", "expected a service name after '@'", 1, 3);
    fails("x@s:", "expected a node name right after ':'", 1, 5);
    fails("x@s: n", "expected a node name right after ':'", 1, 5);
    fails("x@s:``", "a node name cannot be empty", 1, 7);
    // Names that the notation cannot write are refused by the constructor.
    assert!(Stream::new(Unit::None, "a b", None).is_err());
    assert!(Stream::new(Unit::None, "", None).is_err());
    assert!(Stream::new(Unit::None, "s", Some("")).is_err());
}

#[test]
fn stream_keys_in_maps() {
    // `{k@s:v}`: the node is demoted to the separator when no ':' follows it.
    reads(
        "{k@s:v}",
        map(vec![(stream(s("k"), "s", None), s("v"))]),
        "{k@s: v}",
    );
    // `{k@s:n: v}`: a ':' follows the node, so the key is pinned.
    reads(
        "{k@s:n: v}",
        map(vec![(stream(s("k"), "s", Some("n")), s("v"))]),
        "{k@s:n: v}",
    );
    reads(
        "{k@s:n:v}",
        map(vec![(stream(s("k"), "s", Some("n")), s("v"))]),
        "{k@s:n: v}",
    );
    reads(
        "{k@s:n :v}",
        map(vec![(stream(s("k"), "s", Some("n")), s("v"))]),
        "{k@s:n: v}",
    );
    reads(
        "{k@s :v}",
        map(vec![(stream(s("k"), "s", None), s("v"))]),
        "{k@s: v}",
    );
    // Quoted nodes and values.
    reads(
        "{k@s:`v`}",
        map(vec![(stream(s("k"), "s", None), s("v"))]),
        "{k@s: v}",
    );
    reads(
        "{k@s:`n m`:v}",
        map(vec![(stream(s("k"), "s", Some("n m")), s("v"))]),
        "{k@s:`n m`: v}",
    );
    // Values may be streams too; the printed space keeps `{k@s: v@t:n}` unambiguous.
    reads(
        "{k@s: v@t:n a:b}",
        map(vec![
            (stream(s("k"), "s", None), stream(s("v"), "t", Some("n"))),
            (s("a"), s("b")),
        ]),
        "{k@s: v@t:n a:b}",
    );
    reads(
        "{k@s:n: v@t:m}",
        map(vec![(
            stream(s("k"), "s", Some("n")),
            stream(s("v"), "t", Some("m")),
        )]),
        "{k@s:n: v@t:m}",
    );
    // Key `(a@s:b)@t`: only the outermost link's node is demoted.
    reads(
        "{a@s:b@t:c}",
        map(vec![(
            stream(stream(s("a"), "s", Some("b")), "t", None),
            s("c"),
        )]),
        "{a@s:b@t: c}",
    );
    // Inside a container a key's streams are ordinary.
    reads(
        "{[k@s:n]:v}",
        map(vec![(list(vec![stream(s("k"), "s", Some("n"))]), s("v"))]),
        "{[k@s:n]:v}",
    );
    // `{k@s}` has no value.
    fails("{k@s}", "expected ':' after the map key", 1, 5);
    // Same key, pinned or not, are different keys.
    assert_eq!(p("{k@s:n: 1 k@s: 2}").as_map().unwrap().len(), 2);
    fails("{k@s:1 k@s:2}", "duplicate map key", 1, 8);
}

// ---------------------------------------------------------------------------------------------
// Error display
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_carry_line_column_and_a_caret() {
    let e = err("{a:1\n  b:}");
    assert_eq!((e.line, e.column, e.offset), (2, 5, 9));
    assert_eq!(
        e.to_string(),
        "expected a value after ':' at line 2, column 5\n\
         2 |   b:}\n  \
           |     ^"
    );
    // Columns count characters, not bytes.
    let e = err("[λλ\n\n  ééé 0x1]");
    assert_eq!(
        e.to_string(),
        "a byte is 0x and exactly two hex digits (0x1f); write a byte string as x\"0102ff\" \
         at line 3, column 7\n\
         3 |   ééé 0x1]\n  \
           |       ^"
    );
    // A wider gutter for line 10; tabs show as one space so the caret stays aligned.
    let e = err(&format!("{}\t[1 2\t3)", "\n".repeat(9)));
    assert_eq!(
        e.to_string(),
        "unexpected ')' with nothing open to close at line 10, column 8\n\
         10 |  [1 2 3)\n   \
            |        ^"
    );
}

#[test]
fn long_lines_are_cut_around_the_error() {
    let text = format!("[{} 0x1 {}]", "a ".repeat(100), "b ".repeat(100));
    let e = err(&text);
    assert_eq!(e.column, 203);
    assert!(e.context.starts_with('…') && e.context.ends_with('…'));
    let caret_char: String = e
        .context
        .chars()
        .skip(e.context_column - 1)
        .take(3)
        .collect();
    assert_eq!(caret_char, "0x1");
    assert!(e.context.chars().count() < 130);
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn depth_limit() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(p(&deep(128)).depth(), 128);
    let e = err(&deep(129));
    assert!(
        e.message.contains("nesting deeper than the limit of 128"),
        "{e}"
    );
    assert_eq!(e.column, 129);
    let small = Limits {
        max_depth: 3,
        ..Limits::DEFAULT
    };
    assert!(parse_with("[(a {b:c})]", &small).is_ok());
    assert!(parse_with("[(a {b:[c]})]", &small).is_err());
    assert!(parse_with("a@b@c@d", &small).is_ok());
    assert!(parse_with("a@b@c@d@e", &small).is_err());
}

#[test]
fn stream_links_count_from_the_deepest_point() {
    // Regression: streams counted depth from where their unit started, so the parser accepted
    // `[[…128…]]@s` (depth 129) which the binary decoder then refused.
    let at_limit = format!("{}{}@s", "[".repeat(127), "]".repeat(127));
    let u = p(&at_limit);
    assert_eq!(u.depth(), 128);
    assert_eq!(decode(&encode(&u)).unwrap(), u);
    let over = format!("{}{}@s", "[".repeat(128), "]".repeat(128));
    assert!(err(&over).message.contains("nesting deeper than the limit"));
    let small = Limits {
        max_depth: 3,
        ..Limits::DEFAULT
    };
    assert!(parse_with("[[x]]@s", &small).is_ok());
    assert!(parse_with("[[x]]@s@t", &small).is_err());
    assert!(parse_with("[[x]@s]", &small).is_ok());
    assert!(parse_with("[[x]@s@t]", &small).is_err());
    assert!(parse_with("[[[x]] y@s@t]", &small).is_ok());
    assert!(parse_with("{[x]@s:[y]@t}", &small).is_ok());
}

#[test]
fn huge_inputs_are_rejected() {
    let text = "[".repeat(100 << 20);
    let e = parse(&text).unwrap_err();
    assert_eq!(
        e.message,
        "input is 104857600 bytes; the limit is 67108864 bytes"
    );
    let raised = Limits {
        max_size: 200 << 20,
        ..Limits::DEFAULT
    };
    let e = parse_with(&text, &raised).unwrap_err();
    assert_eq!(e.message, "nesting deeper than the limit of 128");
    assert_eq!((e.line, e.column), (1, 129));
    assert!(e.context.ends_with('…'));
}

#[test]
fn digit_limit() {
    let ok = "9".repeat(4096);
    assert_eq!(to_text(&p(&ok)), ok);
    let e = err(&"9".repeat(4097));
    assert_eq!(e.message, "number has 4097 digits; the limit is 4096");
    let e = err(&format!("-1.{}", "2".repeat(4096)));
    assert_eq!(e.message, "number has 4097 digits; the limit is 4096");
    let few = Limits {
        max_digits: 5,
        ..Limits::DEFAULT
    };
    assert!(parse_with("12345", &few).is_ok());
    assert!(parse_with("123456", &few).is_err());
    assert!(parse_with("123.45", &few).is_ok());
    assert!(parse_with("123.456", &few).is_err());
    // Regression: zeros that carry no value are not counted, so everything the printer writes
    // for a number within the limit reads back (`e20` prints as 20 zeros).
    assert!(parse_with("1230000.000", &few).is_ok());
    assert!(parse_with("0.000012345", &few).is_ok());
    assert!(parse_with("-000012345", &few).is_ok());
    let wide = format!("{}e20", "7".repeat(4096));
    let u = p(&wide);
    assert_eq!(p(&to_text(&u)), u);
    let narrow = Unit::Dec(Dec::new("7".repeat(4096).parse().unwrap(), 4096 + 20));
    assert_eq!(p(&to_text(&narrow)), narrow);
    // Leading zeros cost nothing.
    assert_eq!(p(&format!("{}5", "0".repeat(100_000))), i(5));
    assert_eq!(p(&format!("0.{}5", "0".repeat(10))), dec(5, 11));
}

#[test]
fn decimal_scale_limit() {
    // Regression: these panicked (overflow while normalizing) or parsed to decs that neither
    // printed back (`1.2e9223372036854775808`) nor survived the binary codec.
    for text in [
        "100e9223372036854775807",
        "12e9223372036854775807",
        "1e-9223372036854775808",
        "1e4611686018427387905",
        "1e-4611686018427387905",
        "1000e4611686018427387902",
        "1e99999999999999999999",
    ] {
        let e = err(text);
        assert!(
            e.message.contains("decimal exponent out of range"),
            "{text}: {e}"
        );
    }
    for text in [
        "1e4611686018427387904",
        "1e-4611686018427387904",
        "10e4611686018427387903",
    ] {
        let u = p(text);
        assert_eq!(p(&to_text(&u)), u);
        assert_eq!(decode(&encode(&u)).unwrap(), u);
    }
    assert_eq!(p("1e-4611686018427387904"), dec(1, MAX_SCALE));
    // Zero has no scale to overflow.
    assert_eq!(p("0.0e4611686018427387999"), dec(0, 0));
}

// ---------------------------------------------------------------------------------------------
// Display forms
// ---------------------------------------------------------------------------------------------

#[test]
fn pretty_form() {
    // vnix's `{say:[x {k:v}] nice:2}`.
    assert_eq!(
        to_pretty(&p("[x {k:v}]"), 2),
        "[\n  x\n  {\n    k:v\n  }\n]"
    );
    let u = p("{a:[1 [] {}] b:{c:(d [e]) f:g@s:n} k@s:[x]}");
    let pretty = to_pretty(&u, 2);
    assert_eq!(
        pretty,
        "{\n\
         \x20 a:[\n\
         \x20   1\n\
         \x20   []\n\
         \x20   {}\n\
         \x20 ]\n\
         \x20 b:{\n\
         \x20   c:(d [e])\n\
         \x20   f:g@s:n\n\
         \x20 }\n\
         \x20 k@s: [\n\
         \x20   x\n\
         \x20 ]\n\
         }"
    );
    assert_eq!(p(&pretty), u);
    assert_eq!(
        to_pretty(&p("[1 [2]]"), 4),
        "[\n    1\n    [\n        2\n    ]\n]"
    );
    assert_eq!(to_pretty(&p("a"), 2), "a");
}

#[test]
fn short_form() {
    let long = "abcdefghijklmnopqrstuvwxyz".repeat(3);
    assert_eq!(to_short(&s(&long), 5), "abcde..");
    assert_eq!(to_short(&s("a b c d e f g"), 5), "`a b c`..");
    assert_eq!(to_short(&s("abc"), 5), "abc");
    assert_eq!(to_short(&s("12345678"), 5), "`12345`..");
    let digits = "1234567890".repeat(4);
    assert_eq!(to_short(&p(&digits), 5), "12345..");
    assert_eq!(to_short(&p("@aaaa.bbbb.cccc"), 5), "@aaaa..");
    assert_eq!(to_short(&p("[1 2 3 4 5 6 7]"), 3), "[1 2 3 ..]");
    assert_eq!(to_short(&p("{a:1 b:2 c:3}"), 2), "{a:1 b:2 ..}");
    assert_eq!(to_short(&p("[1 2 3]"), 3), "[1 2 3]");
    assert_eq!(
        to_short(&p(&format!("[{long} ({long} x)]@s:n")), 4),
        "[abcd.. (abcd.. x)]@s:n"
    );
    assert_eq!(to_short(&p("[a b]"), 0), "[ ..]");
}

#[test]
fn display_is_the_canonical_text() {
    let u = p("{mul:[2 {inc:4} (sub (10 3))]}@math.calc");
    assert_eq!(u.to_string(), "{mul:[2 {inc:4} (sub (10 3))]}@math.calc");
    assert_eq!(p(&u.to_string()), u);
}

#[test]
fn numbers_of_every_length_parse_exactly() {
    // The parser converts digits in 8- and 19-digit chunks: cover every chunk boundary.
    let mut seed = 7u64;
    let mut digit = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        char::from(b'0' + ((seed >> 33) % 10) as u8)
    };
    for len in 1..=120 {
        let mut digits: String = (0..len).map(|_| digit()).collect();
        if len > 1 && digits.starts_with('0') {
            digits.replace_range(0..1, "7");
        }
        let value: BigInt = digits.parse().unwrap();
        assert_eq!(p(&digits), Unit::Int(Int::from(value.clone())), "{digits}");
        assert_eq!(
            p(&format!("-{digits}")),
            Unit::Int(Int::from(-value.clone()))
        );
        for point in [1, len / 2, len - 1] {
            if point == 0 || point >= len {
                continue;
            }
            let text = format!("-{}.{}", &digits[..point], &digits[point..]);
            let expected = Unit::Dec(Dec::new(-value.clone(), (len - point) as i64));
            assert_eq!(p(&text), expected, "{text}");
        }
    }
    for all_nines in [18, 19, 20, 37, 38, 39] {
        let digits = "9".repeat(all_nines);
        assert_eq!(to_text(&p(&digits)), digits);
    }
}

// ---------------------------------------------------------------------------------------------
// Fast paths (plain numbers in lists and map values, plain map keys, long byte strings): they
// must read exactly what the general path reads.
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_numbers_in_lists_and_maps() {
    reads(
        "[1 -2 007 1.50 -0.0 1e3 2E-2 -0]",
        list(vec![
            i(1),
            i(-2),
            i(7),
            dec(15, 1),
            dec(0, 0),
            dec(1, -3),
            dec(2, 2),
            i(0),
        ]),
        "[1 -2 7 1.5 0.0 1000.0 0.02 0]",
    );
    // A number followed by '@' is the unit of a stream.
    reads(
        "[5@s 6]",
        list(vec![stream(i(5), "s", None), i(6)]),
        "[5@s 6]",
    );
    reads(
        "{a:5@s b:7}",
        map(vec![(s("a"), stream(i(5), "s", None)), (s("b"), i(7))]),
        "{a:5@s b:7}",
    );
    // Words that start like numbers are strings.
    reads(
        "[12ab 1.5.2 1e -3x 1-2]",
        list(vec![s("12ab"), s("1.5.2"), s("1e"), s("-3x"), s("1-2")]),
        "[12ab 1.5.2 1e -3x 1-2]",
    );
    reads("[1é]", list(vec![s("1é")]), "[1é]");
    fails(
        "[5`a`]",
        "expected whitespace between a word and a quoted string",
        1,
        3,
    );
    fails(
        "{a:5`a`}",
        "expected whitespace between a word and a quoted string",
        1,
        5,
    );
    // Big ints in lists and maps, either sign.
    let big = "123456789012345678901234567890123456789";
    let n: BigInt = big.parse().unwrap();
    reads(
        &format!("[{big} -{big}]"),
        list(vec![
            Unit::Int(Int::from(n.clone())),
            Unit::Int(Int::from(-n)),
        ]),
        &format!("[{big} -{big}]"),
    );
}

#[test]
fn plain_map_keys() {
    reads(
        "{name:1 _x:2 a.b-c#d:3 é:4}",
        map(vec![
            (s("name"), i(1)),
            (s("_x"), i(2)),
            (s("a.b-c#d"), i(3)),
            (s("é"), i(4)),
        ]),
        "{name:1 _x:2 a.b-c#d:3 é:4}",
    );
    // Keys that are not strings.
    reads(
        "{t:1 false:2 -:3}",
        map(vec![
            (Unit::Bool(true), i(1)),
            (Unit::Bool(false), i(2)),
            (Unit::None, i(3)),
        ]),
        "{t:1 f:2 -:3}",
    );
    fails("{t:1 true:2}", "duplicate map key", 1, 6);
    // Keys followed by a space, or by a stream link.
    reads("{a :1}", map(vec![(s("a"), i(1))]), "{a:1}");
    reads(
        "{a@s:1 b@s:n:2}",
        map(vec![
            (stream(s("a"), "s", None), i(1)),
            (stream(s("b"), "s", Some("n")), i(2)),
        ]),
        "{a@s: 1 b@s:n: 2}",
    );
    fails("{a:1 a:2}", "duplicate map key", 1, 6);
}

#[test]
fn long_byte_strings() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let upper = hex.to_uppercase();
    let u = Unit::Bytes(bytes.clone().into());
    reads(&format!("x\"{hex}\""), u.clone(), &format!("x\"{hex}\""));
    assert_eq!(p(&format!("x'{upper}'")), u);
    // Whitespace between pairs, anywhere in a long run.
    let spaced = format!("x`{} {}\n{}`", &hex[..70], &hex[70..1000], &hex[1000..]);
    assert_eq!(p(&spaced), u);
    // Errors deep inside a long run are placed exactly.
    let bad = format!("x\"{}zz{}\"", &hex[..100], &hex[102..]);
    fails(&bad, "expected hex digits in a byte string", 1, 103);
    let odd = format!("x\"{}\"", &hex[..101]);
    fails(&odd, "expected a second hex digit", 1, 104);
    // An unterminated byte string is reported as such, whatever it holds.
    fails(&format!("x\"{hex}"), "unterminated byte string", 1, 2);
    fails(
        &format!("x\"{}zz", &hex[..100]),
        "unterminated byte string",
        1,
        2,
    );
    fails("x\"0", "unterminated byte string", 1, 2);
    fails("[x\"00\" x'zz]", "unterminated byte string", 1, 9);
}
