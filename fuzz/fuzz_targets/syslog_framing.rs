//! RFC 6587 framing never panics, never exceeds its bound, and gives the
//! same frames however the bytes are split across reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_agent::sources::syslog::framing::{Frame, Framer};
use tokio_util::codec::Decoder;

const MAX: usize = 64;

fn frames(parts: &[&[u8]]) -> Vec<Frame> {
    let mut framer = Framer::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        while let Some(f) = framer.decode(&mut buf).expect("decode never fails") {
            out.push(f);
        }
        assert!(buf.len() <= MAX + 16, "framer buffered {} bytes", buf.len());
    }
    while let Some(f) = framer.decode_eof(&mut buf).expect("decode_eof never fails") {
        out.push(f);
    }
    for f in &out {
        assert!(f.data.len() <= MAX);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let whole = frames(&[rest]);
    let at = usize::from(split) % (rest.len() + 1);
    let (a, b) = rest.split_at(at);
    assert_eq!(whole, frames(&[a, b]), "split at {at} changed the frames");
    let bytewise: Vec<&[u8]> = rest.chunks(1).collect();
    assert_eq!(whole, frames(&bytewise), "byte-at-a-time reads changed the frames");
});
