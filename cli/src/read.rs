//! `sluice search`, `sluice tail` and `sluice request`: records from the
//! query service's API, printed for people or as NDJSON.
//!
//! For people, each record is one line: time, level (coloured on a
//! terminal unless `NO_COLOR` is set), app/service, host, message and
//! attributes. Log text is never interpreted by the terminal: control
//! characters, ANSI escapes and bidirectional overrides are shown escaped
//! (`\x1b`, `\n`, `\u{202e}`).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::Value;
use sluice_core::Record;
use sluice_core::record::format_ts;

/// Where the query service is and who is asking.
#[derive(Args, Clone)]
pub struct Endpoint {
    /// The query service (default: `[query] listen` of --config, or
    /// http://127.0.0.1:9885).
    #[arg(long, env = "SLUICE_URL")]
    pub url: Option<String>,
    /// A `[[query.tokens]]` secret, sent as a bearer token.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print NDJSON, one record per line.
    #[arg(long)]
    pub json: bool,
}

/// The filters the commands share.
#[derive(Args, Clone)]
pub struct Filters {
    /// Only these apps (repeatable).
    #[arg(long = "app", short)]
    pub apps: Vec<String>,
    /// Only these services (repeatable).
    #[arg(long = "service", short)]
    pub services: Vec<String>,
    /// The lowest level shown (`warn` shows warn, error and fatal).
    #[arg(long, short)]
    pub level: Option<String>,
}

impl Filters {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        out.extend(self.apps.iter().map(|a| ("app", a.clone())));
        out.extend(self.services.iter().map(|s| ("service", s.clone())));
        out.extend(self.level.iter().map(|l| ("level", l.clone())));
        out
    }
}

/// The service's base URL.
fn base(endpoint: &Endpoint, configured: Option<std::net::SocketAddr>) -> String {
    let url = endpoint.url.clone().unwrap_or_else(|| match configured {
        Some(addr) => format!("http://{addr}"),
        None => "http://127.0.0.1:9885".into(),
    });
    url.trim_end_matches('/').to_string()
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(
        endpoint: &Endpoint,
        configured: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            base: base(endpoint, configured),
            token: endpoint.token.clone(),
        })
    }

    fn get(&self, path: &str, pairs: &[(&str, String)]) -> reqwest::RequestBuilder {
        let mut request = self.http.get(format!("{}{path}", self.base)).query(pairs);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends `request`; fails naming the service, or with the API's error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the query service at {} (is `sluice query` or `sluice up` running? --url sets where)",
                self.base
            )
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(body);
        bail!("the query service answered {status}: {message}")
    }

    async fn json(&self, path: &str, pairs: &[(&str, String)]) -> anyhow::Result<Value> {
        let response = self.send(self.get(path, pairs)).await?;
        response
            .json()
            .await
            .context("the query service's answer is not JSON")
    }
}

/// `sluice search`.
#[allow(clippy::too_many_arguments)]
pub async fn search(
    endpoint: Endpoint,
    configured: Option<std::net::SocketAddr>,
    query: String,
    filters: Filters,
    since: Option<String>,
    until: Option<String>,
    limit: usize,
    oldest_first: bool,
) -> anyhow::Result<()> {
    let client = Client::new(&endpoint, configured)?;
    let mut pairs = filters.pairs();
    pairs.push(("query", query));
    pairs.push(("limit", limit.to_string()));
    if let Some(since) = since {
        pairs.push(("start_time", relative(&since)));
    }
    if let Some(until) = until {
        pairs.push(("end_time", relative(&until)));
    }
    if oldest_first {
        pairs.push(("order", "asc".into()));
    }
    let answer = client.json("/api/v1/logs/search", &pairs).await?;
    let printer = Printer::new(endpoint.json);
    let mut out = std::io::stdout().lock();
    for record in answer["logs"].as_array().into_iter().flatten() {
        printer.print(&mut out, record)?;
    }
    out.flush()?;
    if !endpoint.json {
        let stats = &answer["stats"];
        let shown = answer["logs"].as_array().map_or(0, Vec::len);
        let total = &answer["total"];
        let bound = if answer["total_exact"] == true {
            ""
        } else {
            "at least "
        };
        eprintln!(
            "{shown} shown of {bound}{total} · {} blobs read, {} skipped · {} ms",
            stats["blobs_read"],
            skipped(stats),
            stats["elapsed_ms"]
        );
        if stats["partial"] == true {
            eprintln!("warning: the answer is partial: {}", stats["errors"]);
        }
    }
    Ok(())
}

fn skipped(stats: &Value) -> u64 {
    [
        "skipped_by_time",
        "skipped_by_level",
        "skipped_by_service",
        "skipped_by_bloom",
        "skipped_by_order",
        "skipped_replaced",
    ]
    .iter()
    .filter_map(|k| stats[k].as_u64())
    .sum()
}

/// `1h` means an hour ago; anything else goes to the API as it is.
fn relative(text: &str) -> String {
    if humantime::parse_duration(text).is_ok() {
        format!("now-{text}")
    } else {
        text.to_string()
    }
}

/// `sluice tail`: follows new matches until interrupted, reconnecting
/// after the last record seen when the connection drops.
pub async fn tail(
    endpoint: Endpoint,
    configured: Option<std::net::SocketAddr>,
    query: String,
    filters: Filters,
) -> anyhow::Result<()> {
    let client = Client::new(&endpoint, configured)?;
    let mut pairs = filters.pairs();
    pairs.push(("query", query));
    let printer = Printer::new(endpoint.json);
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    let mut connected = false;
    loop {
        let mut request = client.get("/api/v1/logs/tail", &pairs);
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = match client.send(request).await {
            Ok(r) => r,
            Err(err) if connected && failures < 30 => {
                failures += 1;
                eprintln!("warning: {err:#}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        failures = 0;
        connected = true;
        let mut body = response.bytes_stream();
        let mut pending = String::new();
        let mut event = (None::<String>, String::new(), None::<String>);
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    let (id, data, kind) = std::mem::take(&mut event);
                    if kind.as_deref() == Some("gap") {
                        eprintln!("warning: {data}");
                    } else if !data.is_empty()
                        && let Ok(record) = serde_json::from_str::<Value>(&data)
                    {
                        let mut out = std::io::stdout().lock();
                        printer.print(&mut out, &record)?;
                        out.flush()?;
                    }
                    if id.is_some() {
                        last_id = id;
                    }
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => event.0 = Some(value.to_string()),
                    "data" => event.1.push_str(value),
                    "event" => event.2 = Some(value.to_string()),
                    _ => {}
                }
            }
        }
        // The stream ended (the service stopped, or the connection broke):
        // go on from the last record seen.
        eprintln!("warning: the tail was cut off; reconnecting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `sluice request`: a request's spans, then its records.
pub async fn request(
    endpoint: Endpoint,
    configured: Option<std::net::SocketAddr>,
    value: String,
    filters: Filters,
    since: Option<String>,
) -> anyhow::Result<()> {
    let client = Client::new(&endpoint, configured)?;
    let mut pairs = filters.pairs();
    if let Some(since) = since {
        pairs.push(("start_time", relative(&since)));
    }
    let path = format!("/api/v1/requests/{}", encode_path(&value));
    let answer = client.json(&path, &pairs).await?;
    let printer = Printer::new(endpoint.json);
    let mut out = std::io::stdout().lock();
    if !endpoint.json {
        for span in answer["spans"].as_array().into_iter().flatten() {
            let line = format!(
                "{:>9.3} ms gap  {:>9.3} ms  {:>5} records  {:5}  {}/{}",
                span["gap_before_ms"].as_f64().unwrap_or(0.0),
                span["duration_ms"].as_f64().unwrap_or(0.0),
                span["count"],
                span["level"].as_str().unwrap_or(""),
                span["app"].as_str().map(escape).unwrap_or_default(),
                span["service"].as_str().map(escape).unwrap_or_default(),
            );
            writeln!(out, "{line}")?;
        }
        writeln!(out)?;
    }
    for record in answer["logs"].as_array().into_iter().flatten() {
        printer.print(&mut out, record)?;
    }
    out.flush()?;
    if !endpoint.json && answer["logs"].as_array().is_none_or(Vec::is_empty) {
        eprintln!("no records carry request_id or trace_id {}", escape(&value));
    }
    Ok(())
}

/// Percent-encodes a path segment.
fn encode_path(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prints records as NDJSON or as lines for people.
struct Printer {
    json: bool,
    colour: bool,
}

impl Printer {
    fn new(json: bool) -> Printer {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer { json, colour }
    }

    fn print(&self, out: &mut impl std::io::Write, record: &Value) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{record}");
        }
        match serde_json::from_value::<Record>(record.clone()) {
            Ok(r) => writeln!(out, "{}", human(&r, self.colour)),
            Err(_) => writeln!(out, "{}", escape(&record.to_string())),
        }
    }
}

/// One record as a line for people.
pub fn human(r: &Record, colour: bool) -> String {
    let level = r.level.as_str();
    let level = if colour {
        let code = match r.level {
            sluice_core::Level::Trace | sluice_core::Level::Debug => "2",
            sluice_core::Level::Info => "32",
            sluice_core::Level::Warn => "33",
            sluice_core::Level::Error => "31",
            sluice_core::Level::Fatal => "1;31",
        };
        format!("\x1b[{code}m{level:<5}\x1b[0m")
    } else {
        format!("{level:<5}")
    };
    let mut line = format!(
        "{} {level} {}/{} {} {}",
        format_ts(r.ts),
        escape(&r.app),
        escape(&r.service),
        escape(&r.host),
        escape(&r.msg)
    );
    for (k, v) in &r.attrs {
        let _ = write!(line, " {}={}", escape(k), escape(v));
    }
    line
}

/// `text` with every character a terminal would act on shown escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || bidi => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_in_log_text_are_shown_escaped() {
        assert_eq!(escape("plain text ü"), "plain text ü");
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(escape("a\nb\rc\td\\"), "a\\nb\\rc\\td\\\\");
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("\x07\x00\x7f"), "\\x07\\x00\\x7f");
    }

    #[test]
    fn a_record_is_one_line_with_its_level_coloured_only_when_asked() {
        let r = Record {
            id: "01J".into(),
            ts: 1_795_341_600_000_000_000,
            app: "shop".into(),
            service: "api".into(),
            host: "web-1".into(),
            level: sluice_core::Level::Error,
            msg: "boom\x1b]0;pwned\x07\nnext".into(),
            attrs: [("request_id".to_string(), "req-1".to_string())].into(),
            source: String::new(),
        };
        let plain = human(&r, false);
        assert_eq!(
            plain,
            "2026-11-22T10:00:00.000000000Z ERROR shop/api web-1 boom\\x1b]0;pwned\\x07\\nnext request_id=req-1"
        );
        let coloured = human(&r, true);
        assert!(coloured.contains("\x1b[31mERROR\x1b[0m"));
        assert_eq!(coloured.matches('\x1b').count(), 2, "only our own escapes");
        assert_eq!(relative("1h"), "now-1h");
        assert_eq!(relative("2026-11-22T10:00:00Z"), "2026-11-22T10:00:00Z");
        assert_eq!(encode_path("req 1/2"), "req%201%2F2");
    }
}
