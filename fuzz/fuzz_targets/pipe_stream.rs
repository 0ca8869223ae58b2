//! Arbitrary bytes as the frames a hostile producer's end sends a consumer's end, and as a
//! stream cut into records: nothing panics, the consumer's end never holds more than its
//! window, the bytes it hands on are a prefix-consistent stream (each offset once, in order),
//! and the records of every format, written one after another, are the stream again (raw and
//! segment exactly; JSON up to the whitespace between values).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use plexus_pipe::{Config, Format, Frame, Framer, Receiver};

fuzz_target!(|data: &[u8]| {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let window = u64::from(setup % 64) + 1;
    let config = Config {
        window,
        max_frame: 16,
        retransmit_ms: 10,
    };
    let mut rx = Receiver::new(config);
    let mut handed: Vec<u8> = Vec::new();
    let mut offsets: Vec<(u64, u8)> = Vec::new();
    let mut at = 0;
    // Each frame: a kind byte, an offset byte, a length byte, then that many bytes.
    let mut input = rest;
    while let [kind, offset, len, tail @ ..] = input {
        let len = (*len as usize % 24).min(tail.len());
        let (body, next) = tail.split_at(len);
        input = next;
        let offset = u64::from(*offset);
        let frame = match kind % 5 {
            0 | 1 => Frame::Data {
                offset,
                bytes: Bytes::copy_from_slice(body),
            },
            2 => Frame::Eof { offset },
            3 => Frame::Reset {
                reason: String::from_utf8_lossy(body).into_owned(),
            },
            _ => {
                // The consumer takes some of what it was handed.
                rx.release(u64::from(*kind) % 8);
                continue;
            }
        };
        if let Frame::Data { offset, bytes } = &frame {
            for (i, b) in bytes.iter().enumerate() {
                offsets.push((offset + i as u64, *b));
            }
        }
        let _ = rx.on_frame(frame);
        assert!(rx.buffered() <= window, "{} held, window {window}", rx.buffered());
        while let Some(bytes) = rx.read() {
            handed.extend_from_slice(&bytes);
            rx.release(bytes.len() as u64);
        }
        at += 1;
    }
    let _ = at;
    // Whatever was handed on is, byte by byte, what some frame said stood at that offset.
    for (i, b) in handed.iter().enumerate() {
        assert!(
            offsets.contains(&(i as u64, *b)),
            "byte {i} ({b:#04x}) was never sent at that offset"
        );
    }

    for format in [Format::Raw, Format::Segment, Format::Json] {
        let mut framer = Framer::new(format, 64);
        let mut out = Vec::new();
        let mut failed = false;
        for piece in rest.chunks(7) {
            framer.push(piece);
            loop {
                match framer.next_record() {
                    Ok(Some(r)) => {
                        assert!(r.len() <= 65, "{format} record of {} bytes", r.len());
                        out.extend_from_slice(&r);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
        }
        if failed {
            continue;
        }
        match framer.finish() {
            Ok(Some(r)) => out.extend_from_slice(&r),
            Ok(None) => {}
            Err(_) => continue,
        }
        match format {
            Format::Raw | Format::Segment => assert_eq!(out, rest, "{format} records rejoin"),
            Format::Json => {
                let squeeze = |b: &[u8]| -> Vec<u8> {
                    b.iter()
                        .copied()
                        .filter(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
                        .collect()
                };
                assert_eq!(squeeze(&out), squeeze(rest), "json records rejoin");
            }
        }
    }
});
