//! Loopback ports and a minimal HTTP client for admin endpoints.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A minimal HTTP/1.0 GET against 127.0.0.1:port: the status and the body.
///
/// Panics when nothing listens there or the answer is not HTTP, so an
/// endpoint that is down fails the test instead of reading as empty; use
/// [`try_http_get`] to poll an endpoint that may not be up yet.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path).unwrap_or_else(|err| panic!("GET 127.0.0.1:{port}{path}: {err}"))
}

/// Like [`http_get`], but an error when the endpoint cannot be reached or
/// does not answer HTTP.
pub fn try_http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    try_http_get_as(port, path, None)
}

/// Like [`try_http_get`], with `Authorization: Bearer <token>` when a
/// token is given.
pub fn try_http_get_as(
    port: u16,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("cannot connect: {e} (is the process running?)"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n")
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let status = out
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                out.chars().take(80).collect::<String>()
            )
        })?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// An HTTP/1.0 GET whose answer is read as it comes (a stream, such as
/// server-sent events or NDJSON): the status is read at once, the body
/// later, piece by piece.
pub struct Streaming {
    stream: TcpStream,
    /// Bytes read but not yet taken.
    pending: Vec<u8>,
    pub status: u16,
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Streaming {
    /// Sends `GET path` with the headers given and reads the status line and
    /// headers; fails when nothing answers HTTP.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Streaming, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("cannot connect: {e} (is the process running?)"))?;
        // The head comes when the answer starts: a slow query may take long.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n"
        )
        .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut s = Streaming {
            stream,
            pending: Vec::new(),
            status: 0,
        };
        let head = loop {
            if let Some(end) = find(&s.pending, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&s.pending[..end]).to_string();
                s.pending.drain(..end + 4);
                break head;
            }
            if !s
                .fill()
                .map_err(|e| format!("reading the answer's head: {e}"))?
            {
                return Err("the connection closed before the answer's head".into());
            }
        };
        s.status = head
            .strip_prefix("HTTP/")
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {head:?}"))?;
        Ok(s)
    }

    /// Reads more bytes: `false` at the end of the answer.
    fn fill(&mut self) -> std::io::Result<bool> {
        let mut buf = [0u8; 16 << 10];
        let n = self.stream.read(&mut buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n > 0)
    }

    /// Waits at most `timeout` for the next line of the body; `Ok(None)`
    /// at its end, an error on timeout.
    pub fn line(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        let _ = self.stream.set_read_timeout(Some(timeout));
        loop {
            if let Some(end) = find(&self.pending, b"\n") {
                let line = String::from_utf8_lossy(&self.pending[..end]).to_string();
                self.pending.drain(..=end);
                return Ok(Some(line));
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) if self.pending.is_empty() => return Ok(None),
                Ok(false) => {
                    let line = String::from_utf8_lossy(&self.pending).to_string();
                    self.pending.clear();
                    return Ok(Some(line));
                }
                Err(e) => return Err(format!("no line within {timeout:?}: {e}")),
            }
        }
    }

    /// Waits at most `timeout` for the next server-sent event (comments,
    /// such as keep-alives, are passed over); `Ok(None)` when the stream
    /// ended.
    pub fn event(&mut self, timeout: Duration) -> Result<Option<SseEvent>, String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut event = SseEvent::default();
        let mut any = false;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!("no event within {timeout:?}"));
            }
            let Some(line) = self.line(left)? else {
                return Ok(None);
            };
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if any {
                    return Ok(Some(event));
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => continue,
                "id" => event.id = Some(value.to_string()),
                "event" => event.event = Some(value.to_string()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => continue,
            }
            any = true;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
