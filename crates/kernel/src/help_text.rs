//! A service's help as text for people (the λ shell's `help@serv`), made from the help unit a
//! node answers (`help`, `help.man`, `help.tut`), so it works for services on any node.

use std::fmt::Write as _;

use plexus_units::{to_text, Map, Unit};

/// Width the text is wrapped to.
const WIDTH: usize = 80;

/// Command names longer than this do not widen the name column; their text starts on the
/// next line.
const MAX_NAME_COLUMN: usize = 12;

/// The text of a help unit: `{name info tut man}` (the whole help), `{cmd:{info forms}…}` (the
/// manual) or `[{info com res}…]` (the examples). `None` for anything else, which is then
/// best shown as a unit.
pub fn help_text(help: &Unit) -> Option<String> {
    let mut out = String::new();
    match help {
        Unit::Map(m) if m.get_str("man").is_some() || m.get_str("tut").is_some() => {
            let name = m.get_str("name").and_then(Unit::as_str).unwrap_or("");
            let info = m.get_str("info").and_then(Unit::as_str).unwrap_or("");
            wrap_into(&mut out, &format!("{name}: {info}"), 0, 0);
            if let Some(man) = m.get_str("man") {
                out.push_str("\nCommands:\n");
                commands(&mut out, man.as_map()?)?;
            }
            if let Some(tut) = m.get_str("tut") {
                out.push_str("\nExamples:\n");
                examples(&mut out, tut.as_list()?)?;
            }
        }
        Unit::Map(man) => commands(&mut out, man)?,
        Unit::List(tut) => examples(&mut out, tut)?,
        _ => return None,
    }
    Some(out)
}

/// `{cmd:{info forms:[…]}…}`: each command, its description, then its forms.
fn commands(out: &mut String, man: &Map) -> Option<()> {
    let column = man
        .keys()
        .filter_map(Unit::as_str)
        .map(|n| n.chars().count())
        .filter(|&n| n <= MAX_NAME_COLUMN)
        .max()
        .unwrap_or(0);
    let indent = 2 + column + 2;
    for (name, entry) in man.iter() {
        let name = name.as_str()?;
        let entry = entry.as_map()?;
        let info = entry.get_str("info").and_then(Unit::as_str).unwrap_or("");
        let forms: Vec<&str> = match entry.get_str("forms") {
            Some(Unit::List(l)) => l.iter().filter_map(Unit::as_str).collect(),
            _ => Vec::new(),
        };
        let head = format!("  {name:column$}  ");
        if head.chars().count() > indent {
            out.push_str(head.trim_end());
            out.push('\n');
            pad(out, indent);
        } else {
            out.push_str(&head);
        }
        wrap_into(out, info, indent, indent);
        if !forms.is_empty() {
            pad(out, indent);
            wrap_items(out, forms, "   ", indent);
        }
    }
    Some(())
}

/// `[{info com res}…]`: what each example shows, the message, and its result.
fn examples(out: &mut String, tut: &[Unit]) -> Option<()> {
    for (i, example) in tut.iter().enumerate() {
        let example = example.as_map()?;
        if i > 0 {
            out.push('\n');
        }
        let info = example.get_str("info").and_then(Unit::as_str).unwrap_or("");
        pad(out, 2);
        wrap_into(out, info, 2, 2);
        if let Some(com) = example.get_str("com") {
            let _ = writeln!(out, "    {}", to_text(com));
        }
        match example.get_str("res") {
            None | Some(Unit::None) => out.push_str("    → (no value)\n"),
            Some(res) => {
                let _ = writeln!(out, "    → {}", to_text(res));
            }
        }
    }
    Some(())
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Appends `text` wrapped at [`WIDTH`] on spaces, from column `start` (where the caller has
/// left the line), its next lines indented by `rest`.
fn wrap_into(out: &mut String, text: &str, start: usize, rest: usize) {
    wrap_words(out, text.split_whitespace(), " ", start, rest);
}

/// Appends `items` (forms, which have spaces of their own) separated by `sep` and wrapped
/// between items, from column `indent` (already padded) and indented by `indent`.
fn wrap_items(out: &mut String, items: Vec<&str>, sep: &str, indent: usize) {
    wrap_words(out, items.into_iter(), sep, indent, indent);
}

/// Appends `words` separated by `sep`, wrapped at [`WIDTH`]; a word longer than a line gets a
/// line of its own.
fn wrap_words<'w>(
    out: &mut String,
    words: impl Iterator<Item = &'w str>,
    sep: &str,
    start: usize,
    rest: usize,
) {
    let sep_len = sep.chars().count();
    let mut line_len = start;
    let mut at_start = true;
    for word in words {
        let len = word.chars().count();
        if !at_start && line_len + sep_len + len > WIDTH {
            out.push('\n');
            pad(out, rest);
            line_len = rest;
            at_start = true;
        }
        if !at_start {
            out.push_str(sep);
            line_len += sep_len;
        }
        out.push_str(word);
        line_len += len;
        at_start = false;
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Example, Help};

    fn help() -> Help {
        Help {
            name: "math.calc",
            info: "Exact arithmetic on ints and decimals of any size: negation, sums, \
                   products, powers, roots and more",
            tut: vec![
                Example {
                    info: "Negate",
                    com: "(neg 5)@math.calc",
                    res: Some("-5"),
                },
                Example {
                    info: "Print, no value",
                    com: "(say hi)@io.term",
                    res: None,
                },
            ],
            man: vec![
                Command {
                    name: "neg",
                    info: "Negation",
                    forms: &["(neg x)", "{neg:x}"],
                },
                Command {
                    name: "a.very.long.name",
                    info: "A command whose name is too long for the column",
                    forms: &["(a.very.long.name x)"],
                },
            ],
        }
    }

    #[test]
    fn the_whole_help_reads_as_text() {
        let text = help_text(&help().to_unit()).unwrap();
        assert_eq!(
            text,
            "math.calc: Exact arithmetic on ints and decimals of any size: negation, sums,\n\
             products, powers, roots and more\n\
             \n\
             Commands:\n\
             \x20 neg  Negation\n\
             \x20      (neg x)   {neg:x}\n\
             \x20 a.very.long.name\n\
             \x20      A command whose name is too long for the column\n\
             \x20      (a.very.long.name x)\n\
             \n\
             Examples:\n\
             \x20 Negate\n\
             \x20   (neg 5)@math.calc\n\
             \x20   → -5\n\
             \n\
             \x20 Print, no value\n\
             \x20   (say hi)@io.term\n\
             \x20   → (no value)\n"
        );
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    }

    #[test]
    fn the_manual_and_the_examples_alone() {
        let h = help();
        let man = help_text(&h.man_unit()).unwrap();
        assert!(man.starts_with("  neg  Negation\n"), "{man}");
        let tut = help_text(&h.tut_unit()).unwrap();
        assert!(
            tut.starts_with("  Negate\n    (neg 5)@math.calc\n    → -5\n"),
            "{tut}"
        );
    }

    #[test]
    fn other_units_are_not_help() {
        for text in ["5", "abc", "{a:1}", "[1 2]", "{man:5}", "{tut:{}}"] {
            let u = plexus_units::parse(text).unwrap();
            assert_eq!(help_text(&u), None, "{text}");
        }
    }

    #[test]
    fn long_words_and_text_wrap() {
        let mut out = String::new();
        let word = "x".repeat(100);
        pad(&mut out, 4);
        wrap_into(&mut out, &format!("a {word} b"), 4, 4);
        assert_eq!(out, format!("    a\n    {word}\n    b\n"));
        out.clear();
        wrap_into(&mut out, &"word ".repeat(40), 0, 2);
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert_eq!(out.lines().count(), 3);
    }
}
