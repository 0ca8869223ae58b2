//! Arbitrary bytes as text: parsing never panics, and whatever parses prints back to itself
//! (canonical and pretty forms) and survives the binary codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_units::{decode, encode, parse, to_pretty, to_short, to_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = parse(text) else {
        return;
    };
    let printed = to_text(&u);
    match parse(&printed) {
        Ok(back) => assert_eq!(back, u, "text round trip of {printed:?}"),
        Err(e) => panic!("canonical text {printed:?} does not parse: {e}"),
    }
    let pretty = to_pretty(&u, 2);
    match parse(&pretty) {
        Ok(back) => assert_eq!(back, u, "pretty round trip of {pretty:?}"),
        Err(e) => panic!("pretty text {pretty:?} does not parse: {e}"),
    }
    let bytes = encode(&u);
    assert_eq!(
        decode(&bytes).as_ref(),
        Ok(&u),
        "binary round trip of {printed:?}"
    );
    let _ = to_short(&u, 8);
});
