//! Arbitrary bytes as a binary document: decoding never panics, whatever decodes is the one
//! canonical encoding of its unit (encode gives back the input exactly), the zero-copy and the
//! borrowing decoders agree, and the unit survives the text notation.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use plexus_units::{
    decode, decode_bytes, decode_ref, encode, parse_with, to_text, Arena, Limits,
};

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);
    assert_eq!(decode_bytes(Bytes::copy_from_slice(data)), decoded);
    assert_eq!(decode_ref(data, &Arena::new()).map(|r| r.to_unit()), decoded);
    let Ok(u) = decoded else {
        return;
    };
    assert_eq!(encode(&u), data, "accepted a non-canonical encoding");
    let text = to_text(&u);
    // The binary digit limit is on magnitude bytes (max_digits / 2 + 1), which admits up to
    // ~1.2 × max_digits decimal digits: re-read the text with room for those.
    let limits = Limits {
        max_digits: Limits::DEFAULT.max_digits * 2,
        ..Limits::DEFAULT
    };
    match parse_with(&text, &limits) {
        Ok(back) => assert_eq!(back, u, "text round trip of {text:?}"),
        Err(e) => panic!("text {text:?} of a decoded unit does not parse: {e}"),
    }
});
