//! Arbitrary text as a join token (`plx node --join`): decoding never panics, and an accepted
//! token encodes back to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_node::cluster::token::{JoinToken, PREFIX};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [text.to_owned(), format!("{PREFIX}{text}")] {
        if let Ok(token) = JoinToken::decode(&candidate) {
            assert_eq!(JoinToken::decode(&token.encode()).ok(), Some(token));
        }
    }
});
