//! Property tests of tag expressions: printing and parsing are inverse, arbitrary text never
//! panics, and whitespace between tokens does not matter.

mod common;

use plexus_sched::tags::{is_tag_char, MAX_DEPTH, MAX_EXPR_LEN};
use plexus_sched::{TagExpr, TagExprError};
use proptest::prelude::*;

/// Leaves with any legal name and value, not just the shared vocabulary.
fn any_leaf() -> impl Strategy<Value = TagExpr> {
    let word = "[A-Za-z0-9_.:/-]{1,8}";
    prop_oneof![
        word.prop_map(TagExpr::Has),
        (word, word).prop_map(|(n, v)| TagExpr::Equals(n, v)),
    ]
}

/// The canonical text with whitespace sprinkled between tokens.
fn spaced(canonical: &str, spaces: &[usize]) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    for (i, c) in canonical.chars().enumerate() {
        // Between two characters of one word a space would split it; elsewhere it is allowed.
        let inside_word = prev.is_some_and(is_tag_char) && is_tag_char(c);
        let inside_operator = matches!((prev, c), (Some('&'), '&') | (Some('|'), '|'));
        if !inside_word && !inside_operator {
            out.push_str(&" ".repeat(spaces.get(i).copied().unwrap_or(0)));
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

proptest! {
    #[test]
    fn printing_then_parsing_gives_the_expression_back(
        expr in common::tag_expr_from(any_leaf().boxed())
    ) {
        let printed = expr.to_string();
        prop_assume!(printed.len() <= MAX_EXPR_LEN);
        prop_assert_eq!(TagExpr::parse(&printed), Ok(expr));
    }

    #[test]
    fn whitespace_between_tokens_changes_nothing(
        expr in common::tag_expr(),
        spaces in proptest::collection::vec(0usize..3, 0..200),
    ) {
        let text = spaced(&expr.to_string(), &spaces);
        prop_assume!(text.len() <= MAX_EXPR_LEN);
        prop_assert_eq!(TagExpr::parse(&text), Ok(expr));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        check_parse_result(&text)?;
    }

    #[test]
    fn near_misses_never_panic(text in "[a-z=!()&| \t]{0,120}") {
        check_parse_result(&text)?;
    }

    #[test]
    fn negation_conjunction_and_disjunction_mean_what_they_say(
        a in common::tag_expr(),
        b in common::tag_expr(),
        tags in common::tags(),
    ) {
        let (ma, mb) = (a.matches(&tags), b.matches(&tags));
        prop_assert_eq!(TagExpr::Not(Box::new(a.clone())).matches(&tags), !ma);
        prop_assert_eq!(TagExpr::And(vec![a.clone(), b.clone()]).matches(&tags), ma && mb);
        prop_assert_eq!(TagExpr::Or(vec![a, b]).matches(&tags), ma || mb);
    }
}

/// What holds for any input: an accepted expression prints to text no longer than the input
/// that parses back to it; a refusal's column lies within the input (or just after it).
fn check_parse_result(text: &str) -> Result<(), TestCaseError> {
    match TagExpr::parse(text) {
        Ok(expr) => {
            let printed = expr.to_string();
            prop_assert!(
                printed.len() <= text.len(),
                "{:?} printed as {:?}",
                text,
                printed
            );
            prop_assert_eq!(TagExpr::parse(&printed), Ok(expr));
        }
        Err(TagExprError::Unexpected { column, .. } | TagExprError::TooDeep { column, .. }) => {
            prop_assert!(column >= 1 && column <= text.chars().count() + 1)
        }
        Err(TagExprError::Empty) => prop_assert!(text.trim().is_empty()),
        Err(TagExprError::TooLong { len, .. }) => prop_assert!(len > MAX_EXPR_LEN),
    }
    Ok(())
}

#[test]
fn the_depth_limit_holds_for_mixed_nesting() {
    let deep = "!(".repeat(MAX_DEPTH / 2) + "a" + &")".repeat(MAX_DEPTH / 2);
    assert!(TagExpr::parse(&deep).is_ok());
    let deeper = "!(".repeat(MAX_DEPTH / 2 + 1) + "a" + &")".repeat(MAX_DEPTH / 2 + 1);
    assert!(matches!(
        TagExpr::parse(&deeper),
        Err(TagExprError::TooDeep { .. })
    ));
}
