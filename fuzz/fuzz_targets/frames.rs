//! Arbitrary bytes on a client or node connection: the frame reader never panics, and every
//! frame it returns encodes back to a frame that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_protocol::{encode_frame, ClientFrame, FrameReader, NodeFrame};

fn check<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut reader = FrameReader::new();
    // Feed in two pieces to exercise reassembly.
    let (a, b) = data.split_at(data.len() / 2);
    reader.push(a);
    let mut frames: Vec<T> = Vec::new();
    while let Ok(Some(f)) = reader.next_frame::<T>() {
        frames.push(f);
    }
    reader.push(b);
    while let Ok(Some(f)) = reader.next_frame::<T>() {
        frames.push(f);
    }
    for f in frames {
        let mut wire = Vec::new();
        encode_frame(&f, &mut wire).expect("re-encode");
        let mut again = FrameReader::new();
        again.push(&wire);
        assert_eq!(again.next_frame::<T>().ok().flatten(), Some(f));
    }
}

fuzz_target!(|data: &[u8]| {
    check::<ClientFrame>(data);
    check::<NodeFrame>(data);
});
