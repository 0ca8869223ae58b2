//! Arbitrary bytes as a mesh frame (the body of one link frame): the decoder never panics,
//! and every frame it accepts encodes back to exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_net::mesh::{decode_mesh_frame, MeshFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode_mesh_frame(data) else {
        return;
    };
    assert_eq!(frame.encode(), data, "{frame:?} re-encodes to other bytes");
    assert_eq!(frame.encoded_len(), data.len());
    assert_eq!(Some(&frame.kind()), data.first());
    assert_eq!(Some(&frame.channel()), data.get(1));
    match frame.id() {
        Some(id) => assert_eq!(data.get(2..10).map(|b| b.to_vec()), Some(id.to_le_bytes().to_vec())),
        None => assert!(matches!(frame, MeshFrame::Message { .. })),
    }
});
