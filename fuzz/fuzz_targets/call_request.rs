//! Arbitrary bytes as the body of a call another node routed here: the request and the
//! message in it are decoded as slices of the body, as `serve_call` does; nothing panics, and
//! a request that decodes encodes back, in parts, to what it encodes to whole.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use plexus_node::cluster::wire::{self, CallRequest};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let Ok(request) = plexus_protocol::decode_shared::<CallRequest>(&body) else {
        return;
    };
    let Ok(msg) = plexus_units::decode_bytes(request.msg.clone()) else {
        return;
    };
    let whole = wire::encode(&request).expect("re-encode");
    let parts = request.encode_parts(&msg).expect("encode in parts");
    // The units decoder accepts only canonical encodings, so the message encodes back to
    // the bytes it came from, and the parts to the whole request.
    assert_eq!(parts.concat(), whole);
});
