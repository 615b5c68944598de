//! Undoing `Content-Encoding: gzip` before the body is decoded, with a hard
//! cap on the decompressed size.

use std::io::{self, Read};

/// Why a gzip body could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    /// The decompressed body would exceed the limit.
    #[error("decompressed body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not valid gzip (bad header, corrupt or truncated data,
    /// checksum mismatch, trailing garbage).
    #[error("invalid gzip body: {0}")]
    Invalid(String),
}

/// Decompresses a gzip body of one or more members into at most `limit`
/// bytes.
///
/// Decompression stops as soon as the output would pass `limit`, and the
/// output buffer never grows beyond `limit` bytes, so a gzip bomb costs at
/// most `limit` bytes of memory and the time to inflate them.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    const CHUNK: usize = 64 * 1024;
    let mut decoder = flate2::read::MultiGzDecoder::new(body);
    let chunk_len = CHUNK.min(limit.saturating_add(1));
    // Text usually compresses 4–10×; start near that and grow by doubling.
    let mut out: Vec<u8> =
        Vec::with_capacity(body.len().saturating_mul(4).max(chunk_len).min(limit));
    let mut chunk = vec![0u8; chunk_len];
    loop {
        // Never ask for more than one byte past the limit.
        let want = chunk_len.min((limit - out.len()).saturating_add(1));
        let n = match decoder.read(&mut chunk[..want]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GunzipError::Invalid(e.to_string())),
        };
        let needed = out.len() + n;
        if needed > limit {
            return Err(GunzipError::TooLarge { limit });
        }
        if needed > out.capacity() {
            let target = out.capacity().saturating_mul(2).max(needed).min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sources::http::body::decode;
    use crate::sources::http::body::tests::{LIMITS, TYPICAL, gz};

    #[test]
    fn gzip_round_trip() {
        let body = format!("{TYPICAL}\n{TYPICAL}\n");
        let out = gunzip(&gz(body.as_bytes()), 1 << 20).unwrap();
        assert_eq!(out, body.as_bytes());
        assert_eq!(decode(&out, &LIMITS).unwrap().len(), 2);
        // Exactly at the limit is fine; one byte less is not.
        assert_eq!(
            gunzip(&gz(body.as_bytes()), body.len()).unwrap().len(),
            body.len()
        );
        assert_eq!(
            gunzip(&gz(body.as_bytes()), body.len() - 1),
            Err(GunzipError::TooLarge {
                limit: body.len() - 1
            })
        );
        assert_eq!(gunzip(&gz(b""), 0).unwrap(), b"");
        // No gzip member at all is not a gzip body.
        assert!(matches!(gunzip(b"", 10), Err(GunzipError::Invalid(_))));
    }

    #[test]
    fn multi_member_gzip() {
        let mut body = gz(b"{\"message\":\"a\"}\n");
        body.extend(gz(b""));
        body.extend(gz(b"{\"message\":\"b\"}\n"));
        let out = gunzip(&body, 1 << 20).unwrap();
        assert_eq!(out, b"{\"message\":\"a\"}\n{\"message\":\"b\"}\n");
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..100 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let start = Instant::now();
        let limit = 1 << 20;
        assert_eq!(gunzip(&bomb, limit), Err(GunzipError::TooLarge { limit }));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn gunzip_grows_its_buffer_only_up_to_the_limit() {
        let data = vec![b'x'; 300_000];
        let out = gunzip(&gz(&data), 300_000).unwrap();
        assert_eq!(out.len(), 300_000);
        assert!(out.capacity() <= 300_000, "{}", out.capacity());
    }

    #[test]
    fn broken_gzip_is_invalid() {
        let good = gz(TYPICAL.as_bytes());
        let invalid = |data: &[u8]| matches!(gunzip(data, 1 << 20), Err(GunzipError::Invalid(_)));
        // Truncated anywhere (including the CRC trailer).
        for cut in [1, 5, 10, 20, good.len() - 4, good.len() - 1] {
            assert!(invalid(&good[..cut]), "cut at {cut}");
        }
        // Not gzip at all.
        assert!(invalid(TYPICAL.as_bytes()));
        // Corrupted checksum.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xff;
        assert!(invalid(&bad));
        // Trailing garbage after a member.
        let mut bad = good.clone();
        bad.extend_from_slice(b"garbage!");
        assert!(invalid(&bad));
        let e = gunzip(&good[..10], 100).unwrap_err();
        assert!(e.to_string().starts_with("invalid gzip body: "), "{e}");
    }
}
