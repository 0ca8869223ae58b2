//! Shell pipelines across machines: `cat /var/log/syslog @n1 | grep error @n2 | sort`.
//!
//! A pipeline is one line of words, split as a shell splits them: whitespace separates
//! words, `'…'` quotes literally, `"…"` quotes with `\"` and `\\` escapes, a backslash outside
//! quotes takes the next character as it is, and an unquoted `|` (alone or inside a word)
//! separates stages. Trailing unquoted words of a stage that start with `@` place it:
//! `@NODE` on that node, `@#EXPR` on a node whose tags match the expression (`@#camera`,
//! `@#site=lab`, `@#camera||webcam`; several must all hold). A stage without them goes where
//! the scheduler puts it. The first stage reads the terminal, the last writes to it, every
//! stage's standard error comes to it, and the exit status is bash's `pipefail`: the last
//! non-zero status, else 0. `plx run 'LINE'` and the λ shell's `run LINE` (or a line with a
//! `|` that is not a unit) take the same syntax.

use anyhow::{anyhow, bail, Result};
use plexus_units::{Map, Unit};

/// One word of a line: its text, whether any of it was quoted or escaped, and where it
/// starts in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word with quotes and escapes taken out.
    pub text: String,
    /// Whether any of it was quoted or escaped (then it is never `|` or a placement).
    pub quoted: bool,
    /// Byte offset of its first character in the line.
    pub start: usize,
}

/// A token of a line: a word or an unquoted `|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A word.
    Word(Word),
    /// A `|`, at this byte offset.
    Pipe(usize),
}

/// Splits `line` into words and pipes.
pub fn tokens(line: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut word: Option<Word> = None;
    let mut chars = line.char_indices().peekable();
    let start_word = |word: &mut Option<Word>, at: usize| {
        if word.is_none() {
            *word = Some(Word {
                text: String::new(),
                quoted: false,
                start: at,
            });
        }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    out.push(Token::Word(w));
                }
            }
            '|' => {
                if let Some(w) = word.take() {
                    out.push(Token::Word(w));
                }
                out.push(Token::Pipe(at));
            }
            '\'' => {
                start_word(&mut word, at);
                let w = word.as_mut().ok_or_else(|| anyhow!("internal: no word"))?;
                w.quoted = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => w.text.push(c),
                        None => bail!("a ' quote is not closed"),
                    }
                }
            }
            '"' => {
                start_word(&mut word, at);
                let w = word.as_mut().ok_or_else(|| anyhow!("internal: no word"))?;
                w.quoted = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\' | '$' | '`'))) => w.text.push(c),
                            Some((_, c)) => {
                                w.text.push('\\');
                                w.text.push(c);
                            }
                            None => bail!("a \" quote is not closed"),
                        },
                        Some((_, c)) => w.text.push(c),
                        None => bail!("a \" quote is not closed"),
                    }
                }
            }
            '\\' => {
                start_word(&mut word, at);
                let w = word.as_mut().ok_or_else(|| anyhow!("internal: no word"))?;
                w.quoted = true;
                match chars.next() {
                    Some((_, c)) => w.text.push(c),
                    None => bail!("a \\ ends the line"),
                }
            }
            c => {
                start_word(&mut word, at);
                if let Some(w) = word.as_mut() {
                    w.text.push(c);
                }
            }
        }
    }
    if let Some(w) = word.take() {
        out.push(Token::Word(w));
    }
    Ok(out)
}

/// Whether `line` has an unquoted `|` (and so is a pipeline); false when it cannot be split.
pub fn is_pipeline(line: &str) -> bool {
    tokens(line).is_ok_and(|t| t.iter().any(|t| matches!(t, Token::Pipe(_))))
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stage {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// The node it must run on (`@NODE`).
    pub on: Option<String>,
    /// Tag expressions its node must match (`@#EXPR`).
    pub tags: Vec<String>,
}

/// The stages of a pipeline line.
pub fn stages(line: &str) -> Result<Vec<Stage>> {
    let mut stages = vec![Vec::new()];
    for t in tokens(line)? {
        match t {
            Token::Pipe(_) => stages.push(Vec::new()),
            Token::Word(w) => {
                if let Some(last) = stages.last_mut() {
                    last.push(w);
                }
            }
        }
    }
    let count = stages.len();
    stages
        .into_iter()
        .enumerate()
        .map(|(i, words)| {
            let mut stage = Stage::default();
            let placed = words
                .iter()
                .rev()
                .take_while(|w| !w.quoted && w.text.starts_with('@'))
                .count();
            let (command, placement) = words.split_at(words.len() - placed);
            for w in placement {
                match w.text.strip_prefix("@#") {
                    Some(expr) => {
                        plexus_sched::TagExpr::parse(expr)
                            .map_err(|e| anyhow!("stage {}: @#{expr}: {e}", i + 1))?;
                        stage.tags.push(expr.to_owned());
                    }
                    None => {
                        let node = &w.text[1..];
                        if node.is_empty() {
                            bail!(
                                "stage {}: @ names no node (@NODE, or @#TAG for tags)",
                                i + 1
                            );
                        }
                        if let Some(first) = &stage.on {
                            bail!("stage {}: placed on two nodes, {first} and {node}", i + 1);
                        }
                        stage.on = Some(node.to_owned());
                    }
                }
            }
            stage.argv = command.iter().map(|w| w.text.clone()).collect();
            if stage.argv.is_empty() {
                bail!(
                    "stage {} of {count} has no program (a `|` with nothing {})",
                    i + 1,
                    if i == 0 { "before it" } else { "after it" }
                );
            }
            Ok(stage)
        })
        .collect()
}

/// Per-stage options a pipeline takes from `plx run`'s flags.
#[derive(Debug, Clone, Default)]
pub struct Common {
    /// Entries added to every stage's run map (env, cwd, cpu, mem, restart).
    pub entries: Vec<(&'static str, Unit)>,
    /// Stay attached (the output here, the exit status back).
    pub attach: bool,
    /// Start nothing; show the placement.
    pub dry: bool,
}

/// The `{graph:…}@sys.proc` body of a pipeline line.
pub fn graph_body(line: &str, common: &Common) -> Result<Unit> {
    let stages = stages(line)?;
    let last = stages.len();
    let mut procs = Vec::with_capacity(last);
    for (i, s) in stages.iter().enumerate() {
        let mut m = Map::new();
        m.insert(Unit::str("stage"), Unit::int(i as i64 + 1));
        m.insert(
            Unit::str("run"),
            Unit::List(s.argv.iter().map(|a| Unit::str(a)).collect()),
        );
        if let Some(on) = &s.on {
            m.insert(Unit::str("on"), Unit::str(on));
        }
        if !s.tags.is_empty() {
            m.insert(
                Unit::str("tag"),
                Unit::List(s.tags.iter().map(|t| Unit::str(t)).collect()),
            );
        }
        for (k, v) in &common.entries {
            m.insert(Unit::str(k), v.clone());
        }
        if i == 0 {
            m.insert(Unit::str("stdin"), Unit::Bool(true));
        }
        if i + 1 == last {
            m.insert(Unit::str("console"), Unit::Bool(true));
        }
        procs.push(Unit::Map(m));
    }
    let pipes = (1..last)
        .map(|i| {
            let mut m = Map::new();
            m.insert(Unit::str("from"), Unit::int(i as i64));
            m.insert(Unit::str("to"), Unit::int(i as i64 + 1));
            Unit::Map(m)
        })
        .collect();
    let mut graph = Map::new();
    graph.insert(Unit::str("name"), Unit::str("pipeline"));
    graph.insert(Unit::str("procs"), Unit::List(procs));
    graph.insert(Unit::str("pipes"), Unit::List(pipes));
    let mut body = Map::new();
    body.insert(Unit::str("graph"), Unit::Map(graph));
    if common.attach {
        body.insert(Unit::str("attach"), Unit::Bool(true));
    }
    if common.dry {
        body.insert(Unit::str("dry"), Unit::Bool(true));
    }
    Ok(Unit::Map(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn argvs(line: &str) -> Vec<Vec<String>> {
        stages(line).unwrap().into_iter().map(|s| s.argv).collect()
    }

    #[test]
    fn stages_split_at_unquoted_pipes() {
        assert_eq!(
            argvs("cat /var/log/syslog | grep error|sort"),
            vec![
                vec!["cat", "/var/log/syslog"],
                vec!["grep", "error"],
                vec!["sort"]
            ]
        );
        assert_eq!(
            argvs(r#"grep '|' f | tr "a|b" \| x"#),
            vec![vec!["grep", "|", "f"], vec!["tr", "a|b", "|", "x"]]
        );
        assert!(!is_pipeline("grep '|' f"));
        assert!(is_pipeline("a|b"));
    }

    #[test]
    fn trailing_at_words_place_a_stage() {
        let s = stages("cat f @n1 | grep x @#camera @#site=lab | uniq -c '@n3'").unwrap();
        assert_eq!(s[0].on.as_deref(), Some("n1"));
        assert_eq!(s[1].tags, vec!["camera", "site=lab"]);
        assert_eq!(s[1].argv, vec!["grep", "x"]);
        assert_eq!(s[2].on, None);
        assert_eq!(s[2].argv, vec!["uniq", "-c", "@n3"]);
    }

    #[test]
    fn bad_pipelines_say_why() {
        let err = |l: &str| stages(l).unwrap_err().to_string();
        assert!(err("| sort").contains("stage 1 of 2 has no program"));
        assert!(err("cat f |").contains("stage 2 of 2 has no program"));
        assert!(err("cat f @n1 @n2 | sort").contains("two nodes"));
        assert!(err("cat f @#a&& | sort").contains("@#a&&"));
        assert!(err("cat 'f | sort").contains("not closed"));
        assert!(err("cat f @ | sort").contains("names no node"));
    }

    #[test]
    fn the_body_is_a_graph_of_stages() {
        let common = Common {
            entries: vec![("cwd", Unit::str("/tmp"))],
            attach: true,
            dry: false,
        };
        let body = graph_body("cat f @n1 | sort", &common).unwrap();
        assert_eq!(
            plexus_units::to_text(&body),
            "{graph:{name:pipeline procs:[{stage:1 run:[cat `f`] on:n1 cwd:`/tmp` stdin:t} \
             {stage:2 run:[sort] cwd:`/tmp` console:t}] pipes:[{from:1 to:2}]} attach:t}"
        );
    }

    proptest! {
        #[test]
        fn any_line_splits_or_says_why(line in "\\PC{0,64}") {
            let _ = stages(&line);
        }

        #[test]
        fn quoted_words_come_back_as_written(words in proptest::collection::vec("[^'\\x00]{1,8}", 1..5)) {
            let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" | ");
            let s = stages(&line).unwrap();
            prop_assert_eq!(s.len(), words.len());
            for (stage, w) in s.iter().zip(&words) {
                prop_assert_eq!(&stage.argv[0], w);
            }
        }
    }
}
