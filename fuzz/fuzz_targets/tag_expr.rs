//! Arbitrary bytes as a tag expression: parsing never panics, and whatever parses prints to a
//! canonical form no longer than the input that parses back to the same expression.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_sched::{TagExpr, Tags};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = TagExpr::parse(text) else {
        return;
    };
    let printed = expr.to_string();
    assert!(
        printed.len() <= text.len(),
        "canonical {printed:?} longer than {text:?}"
    );
    match TagExpr::parse(&printed) {
        Ok(back) => assert_eq!(back, expr, "round trip of {printed:?}"),
        Err(e) => panic!("canonical text {printed:?} does not parse: {e}"),
    }
    let mut tags = Tags::new();
    for (name, _) in expr.mentioned() {
        tags.insert(name.to_string(), String::new());
        let _ = expr.matches(&tags);
    }
});
