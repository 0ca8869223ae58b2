#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Mesh frames: the decoder never panics, accepts exactly what the encoder makes, and the
//! two round-trip.

use plexus_net::mesh::{decode_mesh_frame, MeshFrame};
use proptest::prelude::*;

/// Owned parts of a frame, to generate borrowed frames from.
#[derive(Clone, Debug)]
struct Parts {
    kind: u8,
    channel: u8,
    id: u64,
    deadline_ms: u32,
    body: Vec<u8>,
    message: String,
}

impl Parts {
    fn frame(&self) -> MeshFrame<'_> {
        let (channel, id) = (self.channel, self.id);
        match self.kind {
            0 => MeshFrame::Message {
                channel,
                body: &self.body,
            },
            1 => MeshFrame::Call {
                channel,
                id,
                deadline_ms: self.deadline_ms,
                body: &self.body,
            },
            2 => MeshFrame::ReplyOk {
                channel,
                id,
                body: &self.body,
            },
            3 => MeshFrame::ReplyErr {
                channel,
                id,
                message: &self.message,
            },
            4 => MeshFrame::Cancel { channel, id },
            _ => MeshFrame::Overloaded { channel, id },
        }
    }
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        0u8..6,
        any::<u8>(),
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..100),
        ".{0,40}",
    )
        .prop_map(|(kind, channel, id, deadline_ms, body, message)| Parts {
            kind,
            channel,
            id,
            deadline_ms,
            body,
            message,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_never_panics_and_what_decodes_encodes_back(
        bytes in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        if let Ok(frame) = decode_mesh_frame(&bytes) {
            prop_assert_eq!(frame.encode(), bytes);
        }
    }

    #[test]
    fn likely_prefixes_never_panic(
        kind in 0u8..8,
        rest in proptest::collection::vec(any::<u8>(), 0..24)
    ) {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&rest);
        if let Ok(frame) = decode_mesh_frame(&bytes) {
            prop_assert_eq!(frame.kind(), kind);
            prop_assert_eq!(frame.encode(), bytes);
        }
    }

    #[test]
    fn frames_round_trip(p in parts()) {
        let frame = p.frame();
        let wire = frame.encode();
        prop_assert_eq!(wire.len(), frame.encoded_len());
        prop_assert_eq!(decode_mesh_frame(&wire).unwrap(), frame);
        // Every cut inside the header is refused.
        for cut in 0..frame.header_len() {
            prop_assert!(decode_mesh_frame(&wire[..cut]).is_err());
        }
    }
}
