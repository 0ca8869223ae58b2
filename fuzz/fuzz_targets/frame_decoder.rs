//! Arbitrary bytes as a length-framed stream (`plexus_protocol::frame`, the framing of client
//! connections and node links), pushed in pieces of two sizes: `FrameDecoder` gives exactly the
//! frames a plain reading of the stream gives, refuses exactly the first frame over its limit,
//! reserves memory as bytes arrive rather than on a header's word, and what it gives encodes
//! back to the bytes it came from (`encode`, and `begin`/`finish` alike).
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_protocol::frame::{self, FrameDecoder, FrameTooLarge, HEADER_LEN, MAX_FRAME_LIMIT};

/// A plain reading of `stream`: the complete frames' bodies in order, then the first frame
/// over `max`, or else how many bytes of an incomplete frame are left.
fn reference(stream: &[u8], max: usize) -> (Vec<&[u8]>, Result<usize, FrameTooLarge>) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        let Some(header) = rest.first_chunk::<HEADER_LEN>() else {
            return (frames, Ok(rest.len()));
        };
        let len = u32::from_le_bytes(*header) as usize;
        if len > max {
            return (frames, Err(FrameTooLarge { len, max }));
        }
        let Some(body) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            return (frames, Ok(rest.len()));
        };
        frames.push(body);
        rest = &rest[HEADER_LEN + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    // Four bytes of set-up: the limit (small, or the largest a header can announce, so that
    // huge announced frames are accepted and must not be reserved for) and the piece sizes.
    let [m0, m1, small, large, stream @ ..] = data else {
        return;
    };
    let max = match u16::from_le_bytes([*m0, *m1]) {
        m if m & 0x8000 != 0 => MAX_FRAME_LIMIT,
        m => usize::from(m),
    };
    let pieces = [usize::from(*small % 16) + 1, usize::from(*large) * 16 + 1];
    let (want, end) = reference(stream, max);

    let mut decoder = FrameDecoder::new(max);
    let mut got = Vec::new();
    let mut refused = None;
    let mut pushed = 0;
    'feed: for (i, size) in pieces.iter().cycle().enumerate() {
        if pushed == stream.len() {
            break;
        }
        let piece = &stream[pushed..(pushed + size).min(stream.len())];
        // Both ways bytes arrive: copied in, or read straight into the decoder's buffer.
        if i % 2 == 0 {
            decoder.push(piece);
        } else {
            decoder.buffer().extend_from_slice(piece);
        }
        pushed += piece.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(body)) => got.push(body),
                Ok(None) => break,
                Err(e) => {
                    refused = Some(e);
                    break 'feed;
                }
            }
        }
        // Room for a read and at most a bounded reservation ahead: a few MiB, never the up to
        // 4 GiB a header may announce.
        let capacity = decoder.buffer().capacity();
        assert!(
            capacity <= 2 * pushed + (4 << 20),
            "{capacity} bytes held after {pushed} pushed"
        );
    }

    assert_eq!(got, want);
    match (refused, end) {
        (Some(e), Err(first_too_large)) => assert_eq!(e, first_too_large),
        (None, Ok(incomplete)) => assert_eq!(decoder.pending(), incomplete),
        (refused, end) => panic!("decoder refused {refused:?}, a plain reading ends {end:?}"),
    }

    let mut wire = Vec::new();
    let mut in_place = Vec::new();
    for body in &got {
        frame::encode(body, max, &mut wire).expect("a frame within the limit encodes");
        let at = frame::begin(&mut in_place);
        in_place.extend_from_slice(body);
        frame::finish(&mut in_place, at, max).expect("a frame within the limit finishes");
    }
    assert_eq!(wire, stream[..wire.len()]);
    assert_eq!(in_place, wire);
    // A body over the limit is refused, and leaves nothing behind.
    if let Some(too_long) = stream.get(..max.saturating_add(1)) {
        let before = wire.len();
        assert!(frame::encode(too_long, max, &mut wire).is_err());
        let at = frame::begin(&mut wire);
        wire.extend_from_slice(too_long);
        assert!(frame::finish(&mut wire, at, max).is_err());
        assert_eq!(wire.len(), before);
    }
});
