//! Arbitrary bytes as a signed message: decoding never panics, whatever decodes is canonical
//! (encodes back to the input), and verification answers without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_identity::{verify_batch, SignedMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = SignedMessage::from_bytes(data) else {
        return;
    };
    assert_eq!(msg.to_bytes(), data, "accepted a non-canonical message");
    let single = msg.verify();
    let batch = verify_batch(&[msg]);
    assert_eq!(batch.len(), 1);
    assert_eq!(single.is_ok(), batch[0].is_ok());
});
