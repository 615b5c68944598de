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
