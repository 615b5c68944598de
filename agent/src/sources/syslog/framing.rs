//! RFC 6587 framing of a syslog TCP stream. Both methods may be mixed on one
//! connection; each frame's first byte decides.
//!
//! - Between frames, `\n`, `\r` and `\0` bytes are skipped.
//! - **Octet counting**: a digit 1–9, at most 10 digits in all, then one
//!   space: `N SP` followed by exactly N bytes of message. When N exceeds
//!   `max_message_bytes`, the first `max_message_bytes` bytes are delivered
//!   as soon as they have arrived (`truncated`), and the remaining bytes are
//!   dropped as they arrive, without being buffered.
//! - **Non-transparent framing** (anything else, including digits that are
//!   not followed by a space within 10 digits, like `2026-…`; the digits then
//!   belong to the data): the frame ends at `\n`, which is removed together
//!   with one `\r` before it. Without a `\n` within `max_message_bytes`
//!   bytes, the first `max_message_bytes` bytes are delivered (`truncated`)
//!   and everything up to and including the next `\n` is dropped.
//! - A wrong octet count cannot be detected: a count too small leaves the
//!   rest of the message in the stream, where it is decoded as the next
//!   frame (newline-framed unless it happens to start with `N SP`); a count
//!   too large swallows the beginning of the following frame(s).
//! - At end of stream, an octet-counted frame cut short is delivered with
//!   `incomplete`; leftover bytes without a final `\n` (or a lone count
//!   prefix such as `12`) are delivered as a newline-framed frame.
//!
//! The decoder never fails, and after `decode` returns `Ok(None)` it holds at
//! most `max_message_bytes + 11` bytes of the buffer (`decode_eof` always
//! drains it). Frame data shares the read buffer's memory (no copy).

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Longest octet count, in digits.
const MAX_COUNT_DIGITS: usize = 10;

/// One framed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message bytes, without count prefix or line terminator.
    pub data: Bytes,
    /// The message was longer than `max_message_bytes` and was cut to it.
    pub truncated: bool,
    /// The connection closed before the octet-counted message was complete.
    pub incomplete: bool,
    /// The frame used octet counting (otherwise newline framing).
    pub octet_counted: bool,
}

/// Decoder state between calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary or inside a frame not yet complete.
    Frame,
    /// Dropping this many more bytes of an oversize octet-counted frame.
    SkipBytes(u64),
    /// Dropping an oversize newline-framed frame up to and including `\n`.
    SkipLine,
}

/// What the start of the buffer says about the frame.
enum Prefix {
    /// `N SP` of `header` bytes.
    Count { len: u64, header: usize },
    /// Only digits so far; the next byte decides.
    NeedMore,
    /// A newline-framed frame.
    Newline,
}

/// [`Decoder`] of RFC 6587 frames (octet counting and newline framing, mixed
/// freely), turning a syslog TCP stream into [`Frame`]s.
#[derive(Debug, Clone)]
pub struct Framer {
    max: usize,
    state: State,
    /// Bytes at the start of the buffer already searched for `\n`.
    scanned: usize,
}

impl Framer {
    /// A framer delivering at most `max_message_bytes` bytes per frame
    /// (values below 1 are treated as 1).
    pub fn new(max_message_bytes: usize) -> Framer {
        Framer {
            max: max_message_bytes.max(1),
            state: State::Frame,
            scanned: 0,
        }
    }

    /// Decodes the frame at the start of `buf` (separators already skipped).
    fn frame(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let max = self.max;
        match count_prefix(buf) {
            Prefix::NeedMore => None,
            Prefix::Count { len, header } => {
                let want = usize::try_from(len).map_or(max, |n| n.min(max));
                let needed = header + want;
                if buf.len() < needed {
                    buf.reserve(needed - buf.len());
                    return None;
                }
                buf.advance(header);
                let data = buf.split_to(want).freeze();
                let truncated = len > want as u64;
                if truncated {
                    self.state = State::SkipBytes(len - want as u64);
                }
                Some(Frame {
                    data,
                    truncated,
                    incomplete: false,
                    octet_counted: true,
                })
            }
            Prefix::Newline => {
                // A line of `max` bytes may still be followed by `\r\n`.
                let limit = buf.len().min(max.saturating_add(2));
                let from = self.scanned.min(limit);
                let newline = buf.get(from..limit).and_then(|w| memchr::memchr(b'\n', w));
                match newline {
                    Some(i) => {
                        self.scanned = 0;
                        let mut line = buf.split_to(from + i + 1);
                        line.truncate(from + i);
                        Some(newline_frame(line, max))
                    }
                    None if buf.len() >= max.saturating_add(2) => {
                        self.scanned = 0;
                        self.state = State::SkipLine;
                        Some(Frame {
                            data: buf.split_to(max).freeze(),
                            truncated: true,
                            incomplete: false,
                            octet_counted: false,
                        })
                    }
                    None => {
                        self.scanned = limit;
                        None
                    }
                }
            }
        }
    }
}

/// Classifies the start of a frame.
fn count_prefix(buf: &[u8]) -> Prefix {
    if !matches!(buf.first(), Some(b'1'..=b'9')) {
        return Prefix::Newline;
    }
    let mut len: u64 = 0;
    for (i, &c) in buf.iter().enumerate().take(MAX_COUNT_DIGITS + 1) {
        match c {
            b'0'..=b'9' if i < MAX_COUNT_DIGITS => len = len * 10 + u64::from(c - b'0'),
            b' ' => return Prefix::Count { len, header: i + 1 },
            _ => return Prefix::Newline,
        }
    }
    Prefix::NeedMore
}

/// A newline-framed frame from `line` (terminator removed): drops one
/// trailing `\r` and cuts to `max` bytes.
fn newline_frame(mut line: BytesMut, max: usize) -> Frame {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    let truncated = line.len() > max;
    line.truncate(max);
    Frame {
        data: line.freeze(),
        truncated,
        incomplete: false,
        octet_counted: false,
    }
}

impl Decoder for Framer {
    type Item = Frame;
    type Error = io::Error;

    /// Returns the next complete frame, or `Ok(None)` when more bytes are
    /// needed. Never returns an error.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        loop {
            match self.state {
                State::SkipBytes(left) => {
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    buf.advance(n);
                    let left = left - n as u64;
                    if left > 0 {
                        self.state = State::SkipBytes(left);
                        return Ok(None);
                    }
                    self.state = State::Frame;
                }
                State::SkipLine => match memchr::memchr(b'\n', buf) {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.state = State::Frame;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                },
                State::Frame => {
                    let skip = buf
                        .iter()
                        .position(|&c| !matches!(c, b'\n' | b'\r' | 0))
                        .unwrap_or(buf.len());
                    if skip > 0 {
                        buf.advance(skip);
                        self.scanned = 0;
                    }
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(self.frame(buf));
                }
            }
        }
    }

    /// Like [`Framer::decode`], then delivers whatever is left at end of
    /// stream (see the module docs); `Ok(None)` once the buffer is empty.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        self.state = State::Frame;
        self.scanned = 0;
        if buf.is_empty() {
            return Ok(None);
        }
        let frame = match count_prefix(buf) {
            Prefix::Count { len, header } => {
                buf.advance(header);
                let data = buf.split().freeze();
                Frame {
                    data,
                    truncated: len > self.max as u64,
                    incomplete: true,
                    octet_counted: true,
                }
            }
            Prefix::NeedMore | Prefix::Newline => newline_frame(buf.split(), self.max),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Upper bound on what the framer may hold after `Ok(None)`.
    const SLACK: usize = 16;

    fn frame(data: &[u8], octet_counted: bool) -> Frame {
        Frame {
            data: Bytes::copy_from_slice(data),
            truncated: false,
            incomplete: false,
            octet_counted,
        }
    }

    fn oc(data: &[u8]) -> Frame {
        frame(data, true)
    }

    fn nl(data: &[u8]) -> Frame {
        frame(data, false)
    }

    fn truncated(mut f: Frame) -> Frame {
        f.truncated = true;
        f
    }

    fn incomplete(mut f: Frame) -> Frame {
        f.incomplete = true;
        f
    }

    /// Feeds `chunks` one after the other, decoding after each, then EOF;
    /// checks the memory bound along the way.
    fn decode_chunks(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = Framer::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(f) = framer.decode(&mut buf).expect("never fails") {
                assert!(f.data.len() <= max);
                out.push(f);
            }
            assert!(buf.len() <= max + SLACK, "holds {} bytes", buf.len());
        }
        while let Some(f) = framer.decode_eof(&mut buf).expect("never fails") {
            assert!(f.data.len() <= max);
            out.push(f);
        }
        assert!(buf.is_empty());
        out
    }

    fn decode_all(max: usize, input: &[u8]) -> Vec<Frame> {
        decode_chunks(max, &[input])
    }

    #[test]
    fn mixed_methods() {
        let input = b"5 hello\n<13>line one\r\n11 two\nwords\n\n\0\r<14>last";
        assert_eq!(
            decode_all(100, input),
            vec![
                oc(b"hello"),
                nl(b"<13>line one"),
                oc(b"two\nwords\n\n"),
                nl(b"<14>last"),
            ]
        );
    }

    #[test]
    fn digits_without_space_are_newline_framed() {
        let input = b"2026-11-22 x\n123abc\n1234567890123 y\n9999999999 ab\n";
        assert_eq!(
            decode_all(100, input),
            vec![
                nl(b"2026-11-22 x"),
                nl(b"123abc"),
                nl(b"1234567890123 y"),
                // A ten-digit count is still a count: oversize, truncated.
                truncated(incomplete(oc(b"ab\n"))),
            ]
        );
    }

    #[test]
    fn separators_and_crlf() {
        let input = b"\0\0\r\na\r\n\r\n\0b\r\r\n3 c\r\n\0";
        assert_eq!(
            decode_all(100, input),
            vec![nl(b"a"), nl(b"b\r"), oc(b"c\r\n")]
        );
    }

    #[test]
    fn oversize_octet_counted() {
        let mut input = b"20 ".to_vec();
        input.extend_from_slice(&[b'x'; 20]);
        input.extend_from_slice(b"3 abc");
        assert_eq!(
            decode_all(8, &input),
            vec![truncated(oc(b"xxxxxxxx")), oc(b"abc")]
        );
        // Delivered as soon as `max` bytes are there; the rest never buffered.
        let mut framer = Framer::new(8);
        let mut buf = BytesMut::from(&b"1000000 abcdefgh"[..]);
        let f = framer.decode(&mut buf).expect("ok").expect("frame");
        assert_eq!(f, truncated(oc(b"abcdefgh")));
        for _ in 0..99 {
            buf.extend_from_slice(&[b'y'; 10_000]);
            assert_eq!(framer.decode(&mut buf).expect("ok"), None);
            assert!(buf.is_empty());
        }
        buf.extend_from_slice(&[b'y'; 9_992]);
        buf.extend_from_slice(b"2 ok");
        assert_eq!(framer.decode(&mut buf).expect("ok"), Some(oc(b"ok")));
    }

    #[test]
    fn oversize_newline() {
        let mut input = vec![b'a'; 50];
        input.extend_from_slice(b"\nnext\n");
        assert_eq!(
            decode_all(10, &input),
            vec![truncated(nl(b"aaaaaaaaaa")), nl(b"next")]
        );
        // Exactly max bytes plus CRLF fits; max + 1 does not.
        assert_eq!(
            decode_all(3, b"abc\r\nabcd\n"),
            vec![nl(b"abc"), truncated(nl(b"abc"))]
        );
        // Memory bounded while the line goes on.
        let mut framer = Framer::new(10);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for _ in 0..1000 {
            buf.extend_from_slice(b"zzzzzzz");
            while let Some(f) = framer.decode(&mut buf).expect("ok") {
                frames.push(f);
            }
            assert!(buf.len() <= 10 + SLACK);
        }
        buf.extend_from_slice(b"\n1 k");
        while let Some(f) = framer.decode_eof(&mut buf).expect("ok") {
            frames.push(f);
        }
        assert_eq!(frames, vec![truncated(nl(b"zzzzzzzzzz")), oc(b"k")]);
    }

    #[test]
    fn wrong_octet_count() {
        // Too small: the rest of the message becomes the next frame.
        assert_eq!(
            decode_all(100, b"5 hello world\n4 next"),
            vec![oc(b"hello"), nl(b" world"), oc(b"next")]
        );
        // Too large: the next frame is swallowed (here its count prefix and
        // part of its data), and what is left is read as a frame of its own.
        assert_eq!(
            decode_all(100, b"10 hello\n5 world"),
            vec![oc(b"hello\n5 wo"), nl(b"rld")]
        );
    }

    #[test]
    fn end_of_stream() {
        assert_eq!(decode_all(100, b"12"), vec![nl(b"12")]);
        assert_eq!(decode_all(100, b"12 "), vec![incomplete(oc(b""))]);
        assert_eq!(decode_all(100, b"12 abc"), vec![incomplete(oc(b"abc"))]);
        assert_eq!(decode_all(100, b"no newline\r"), vec![nl(b"no newline")]);
        assert_eq!(decode_all(100, b"\n\r\0"), vec![]);
        assert_eq!(decode_all(100, b""), vec![]);
        assert_eq!(decode_all(3, b"abcd"), vec![truncated(nl(b"abc"))]);
        // Oversize frame cut short after the delivered part: nothing more.
        assert_eq!(decode_all(2, b"9 abcd"), vec![truncated(oc(b"ab"))]);
    }

    #[test]
    fn garbage_binary() {
        let garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let frames = decode_all(64, &garbage);
        assert!(!frames.is_empty());
        assert!(frames.iter().all(|f| f.data.len() <= 64));
    }

    #[test]
    fn zero_copy() {
        let mut buf = BytesMut::from(&b"3 abc"[..]);
        let start = buf.as_ptr();
        let f = Framer::new(10)
            .decode(&mut buf)
            .expect("ok")
            .expect("frame");
        assert_eq!(f.data.as_ptr(), start.wrapping_add(2));
    }

    /// A frame as a sender would write it, and what the framer should give.
    fn well_formed(max: usize) -> impl Strategy<Value = (Vec<u8>, Frame)> {
        let counted = proptest::collection::vec(any::<u8>(), 1..=max).prop_map(|data| {
            let mut wire = format!("{} ", data.len()).into_bytes();
            wire.extend_from_slice(&data);
            (wire, oc(&data))
        });
        let line = (
            proptest::sample::select(b"<abc XYZ-".to_vec()),
            proptest::collection::vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..max),
            any::<bool>(),
        )
            .prop_filter("no trailing CR", |(_, rest, _)| rest.last() != Some(&b'\r'))
            .prop_map(|(first, rest, crlf)| {
                let mut data = vec![first];
                data.extend_from_slice(&rest);
                let mut wire = data.clone();
                wire.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                (wire, nl(&data))
            });
        prop_oneof![counted, line]
    }

    proptest! {
        #[test]
        fn split_points_do_not_matter(
            frames in proptest::collection::vec(well_formed(40), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let wire: Vec<u8> = frames.iter().flat_map(|(w, _)| w.clone()).collect();
            let expected: Vec<Frame> = frames.into_iter().map(|(_, f)| f).collect();
            prop_assert_eq!(decode_all(40, &wire), expected.clone());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts {
                chunks.push(&wire[last..c]);
                last = c;
            }
            chunks.push(&wire[last..]);
            prop_assert_eq!(decode_chunks(40, &chunks), expected);
        }

        #[test]
        fn arbitrary_input_any_split(
            input in proptest::collection::vec(
                prop_oneof![any::<u8>(), proptest::sample::select(b"0123456789 \n\r\0".to_vec())],
                0..400,
            ),
            max in 1usize..50,
            cut in any::<usize>(),
        ) {
            let whole = decode_all(max, &input);
            let cut = cut % (input.len() + 1);
            prop_assert_eq!(decode_chunks(max, &[&input[..cut], &input[cut..]]), whole.clone());
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(decode_chunks(max, &bytes), whole);
        }
    }

    #[test]
    fn every_split_of_a_mixed_stream() {
        let wire = b"5 hello\n<13>line one\r\n11 two\nwords\n\n\0\r<14>last\n30 ".to_vec();
        let whole = decode_all(12, &wire);
        for cut in 0..=wire.len() {
            assert_eq!(
                decode_chunks(12, &[&wire[..cut], &wire[cut..]]),
                whole,
                "cut {cut}"
            );
        }
    }
}
