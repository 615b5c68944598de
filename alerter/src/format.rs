//! What Sluice puts on the wire when it notifies a receiver: the Slack
//! message, the generic webhook body, and the signature that lets a webhook
//! receiver check a request came from Sluice.
//!
//! # Generic webhook
//!
//! Sluice sends `POST <url>` with `Content-Type: application/json` and these
//! headers:
//!
//! | header               | value                                                           |
//! |----------------------|-----------------------------------------------------------------|
//! | `X-Sluice-Id`        | the notification id (same as `id` in the body)                  |
//! | `X-Sluice-Timestamp` | when this attempt was signed, in whole seconds since the Unix epoch, decimal |
//! | `X-Sluice-Signature` | `v1=<hex>`, or several comma-separated `v1=<hex>` while secrets are being rotated |
//!
//! Any 2xx answer counts as delivered. 429 (honouring `Retry-After`), 408,
//! 425, 5xx and network errors are retried with exponential backoff; other
//! 4xx and all 3xx answers (redirects are not followed) drop the notification.
//! A notification can therefore arrive more than once: de-duplicate on `id`,
//! which stays the same on every redelivery. The timestamp and signature
//! change from one attempt to the next.
//!
//! ## Body
//!
//! One JSON object, keys always present and always in this order; absent
//! optional values are `null`. Timestamps are RFC 3339 UTC strings with nine
//! fractional digits.
//!
//! ```json
//! {
//!   "version": 1,
//!   "id": "01JDQ3N7Z5K3W8M2X4R6T9V0BC",
//!   "kind": "firing",
//!   "title": "checkout-errors: 37 errors in 60s",
//!   "source": "alerter",
//!   "rule": "checkout-errors",
//!   "app": "shop",
//!   "service": "checkout",
//!   "level": "ERROR",
//!   "count": 37,
//!   "window_secs": 60,
//!   "labels": {"host": "web-1"},
//!   "fingerprint": null,
//!   "template": null,
//!   "samples": [
//!     {"id": "01JDQ3N7Z5K3W8M2X4R6T9V0BD", "ts": "2026-11-22T10:00:00.123456789Z",
//!      "host": "web-1", "msg": "payment declined for order 8812", "request_id": "req-123"}
//!   ],
//!   "first_seen": "2026-11-22T10:00:00.123456789Z",
//!   "last_seen": "2026-11-22T10:00:59.000000000Z",
//!   "link": "https://sluice.example.com/query?q=app%3Dshop",
//!   "created": "2026-11-22T10:01:00.000000000Z"
//! }
//! ```
//!
//! (Sent without whitespace; shown indented here.)
//!
//! | key           | type            | meaning |
//! |---------------|-----------------|---------|
//! | `version`     | integer         | body format version, `1`; new keys may be added within a version, so ignore unknown keys |
//! | `id`          | string          | unique notification id, stable across redeliveries |
//! | `kind`        | string          | `firing`, `resolved`, `new_group`, `regressed` or `spike` |
//! | `title`       | string          | one-line summary |
//! | `source`      | string          | `alerter` (alert rules) or `aggregator` (message groups) |
//! | `rule`        | string or null  | alert rule name |
//! | `app`         | string          | application |
//! | `service`     | string or null  | service, when the rule or group names one |
//! | `level`       | string or null  | `TRACE` `DEBUG` `INFO` `WARN` `ERROR` or `FATAL` |
//! | `count`       | integer         | matching records in the window (or in the group) |
//! | `window_secs` | integer or null | counting window in seconds |
//! | `labels`      | object          | the rule's `group_by` values, string to string, sorted by key |
//! | `fingerprint` | string or null  | message group fingerprint |
//! | `template`    | string or null  | message group template |
//! | `samples`     | array           | example records: `id`, `ts` (RFC 3339), `host`, `msg`, `request_id` (string or null); messages may be cut short, ending in `…` |
//! | `first_seen`  | string          | earliest matching record (RFC 3339) |
//! | `last_seen`   | string          | latest matching record (RFC 3339) |
//! | `link`        | string or null  | URL of the matching records in the query UI |
//! | `created`     | string          | when the notification was created (RFC 3339) |
//!
//! ## Verifying the signature
//!
//! With the secret configured for the receiver:
//!
//! 1. Take the raw request body bytes exactly as received, before any JSON
//!    parsing or re-encoding.
//! 2. Read `X-Sluice-Timestamp` (decimal seconds) and reject the request if it
//!    is more than 5 minutes away from your clock (replay protection).
//! 3. Build the signed payload: the timestamp header's text, a `.` (full
//!    stop), then the body bytes.
//! 4. Compute HMAC-SHA256 of that payload, keyed with the secret's UTF-8
//!    bytes, and hex-encode it in lowercase.
//! 5. Split `X-Sluice-Signature` on `,`, trim spaces, keep the entries that
//!    start with `v1=` and ignore any other scheme. Accept the request if the
//!    hex after `v1=` of any entry equals yours, comparing in constant time
//!    (`hmac.compare_digest` in Python, `crypto.timingSafeEqual` in Node.js,
//!    `hmac.Equal` in Go).
//!
//! ### Worked example
//!
//! Secret `my-webhook-secret`, timestamp `1795341600`, and the (stand-in) body
//! `{"version":1,"id":"n-1"}`. The signed payload is
//! `1795341600.{"version":1,"id":"n-1"}` and the header is
//!
//! ```text
//! X-Sluice-Signature: v1=bf34f056457aaeb4b5165ebe1ed2614e770304b2530eba300ecfdfa8297d0696
//! ```
//!
//! Check it with OpenSSL:
//!
//! ```sh
//! printf '%s' '1795341600.{"version":1,"id":"n-1"}' | openssl dgst -sha256 -hmac 'my-webhook-secret'
//! # SHA2-256(stdin)= bf34f056457aaeb4b5165ebe1ed2614e770304b2530eba300ecfdfa8297d0696
//! ```
//!
//! or in Python:
//!
//! ```python
//! import hmac, hashlib, time
//! def verify(secret: bytes, ts: str, sig_header: str, body: bytes) -> bool:
//!     if abs(time.time() - int(ts)) > 300:
//!         return False
//!     mine = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
//!     return any(hmac.compare_digest(mine, s.strip()[3:])
//!                for s in sig_header.split(",") if s.strip().startswith("v1="))
//! ```
//!
//! # Slack
//!
//! [`slack_body`] renders an incoming-webhook message: a plain `text`
//! fallback (used in push notifications) and Block Kit `blocks`: a header
//! with a status marker (🔴 firing, ✅ resolved, 🆕 new group, 🔁 regressed,
//! 📈 spike), a section of fields (rule, app, service, level, count, window,
//! labels), the template and the sample records as code blocks, a context line
//! with first/last seen, source, fingerprint and notification id, and a
//! "View in Sluice" button when a link is configured.
//!
//! Whatever the notification's size, the message stays within Slack's
//! documented limits, which [`validate_slack`] checks:
//!
//! | element                                 | limit enforced |
//! |-----------------------------------------|----------------|
//! | blocks per message                      | ≤ 50 (at most 6 are produced) |
//! | top-level `text`                        | ≤ 40 000 (≤ 3 000 produced) |
//! | header text (`plain_text`)              | 1 ..= 150 |
//! | section text                            | 1 ..= 3 000 |
//! | section fields                          | 1 ..= 10 fields, each 1 ..= 2 000 |
//! | context elements                        | 1 ..= 10, each text ≤ 3 000 |
//! | actions elements                        | 1 ..= 25 |
//! | button text (`plain_text`) / url        | 1 ..= 75 / ≤ 3 000 |
//!
//! Lengths are counted in UTF-16 code units, which is never less than the
//! character count, so the limits hold however Slack counts. Text that does
//! not fit is cut and ends in `…`; sample lines that do not fit are replaced
//! by a `… and N more` line. In `mrkdwn` text, `&`, `<` and `>` are escaped as
//! `&amp;`, `&lt;` and `&gt;` (so log text cannot form links or mentions such
//! as `<!channel>`), and inside code blocks a zero-width space is put between
//! consecutive backticks so log text cannot close the block. The button is
//! left out when the link is not an `http(s)` URL of at most 3 000 units.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sluice_core::Level;
use sluice_core::record::format_ts;

use crate::notification::{Kind, Notification, Sample};

/// Header carrying the signature(s): `v1=<hex>[,v1=<hex>…]`.
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature";
/// Header carrying the signing time in decimal seconds since the epoch.
pub const TIMESTAMP_HEADER: &str = "X-Sluice-Timestamp";
/// Header carrying the notification id, for de-duplication.
pub const ID_HEADER: &str = "X-Sluice-Id";
/// Version of the webhook body, its `"version"` key.
pub const WEBHOOK_VERSION: u32 = 1;
/// Clock difference receivers should tolerate, in seconds (5 minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

// Slack's limits, in UTF-16 code units where they are lengths.
const MAX_BLOCKS: usize = 50;
const MAX_TOP_TEXT: usize = 40_000;
const FALLBACK_TEXT: usize = 3000;
const HEADER_TEXT: usize = 150;
const SECTION_TEXT: usize = 3000;
const MAX_FIELDS: usize = 10;
const FIELD_TEXT: usize = 2000;
const MAX_CONTEXT_ELEMENTS: usize = 10;
const CONTEXT_TEXT: usize = 3000;
const MAX_ACTION_ELEMENTS: usize = 25;
const BUTTON_TEXT: usize = 75;
const URL_LEN: usize = 3000;
const ACTION_ID_LEN: usize = 255;
const BLOCK_ID_LEN: usize = 255;

// Our own, tighter budgets within those limits.
const SAMPLE_LINE: usize = 1000;
const LABEL_LINE: usize = 200;
const CONTEXT_ITEM: usize = 300;
/// Room kept for a `\n… and N more` line (N up to 20 digits).
const MORE_RESERVE: usize = 32;
/// Below this much room another line is not started.
const MIN_LINE_ROOM: usize = 60;

const ZWSP: char = '\u{200b}';

/// Escapes text for Slack `mrkdwn`: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.
/// Nothing else needs escaping for Slack to show the text literally as far as
/// links, mentions and dates go.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// How [`render`] treats text.
#[derive(Clone, Copy)]
enum Style {
    /// `plain_text`, one line.
    Plain,
    /// `mrkdwn`, escaped, one line.
    Inline,
    /// Inside a `mrkdwn` code block: escaped, backtick runs broken, newlines kept.
    Code,
}

/// Length as Slack may count it: UTF-16 code units.
fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Renders the concatenation of `parts` in `style`, cut to at most `max`
/// UTF-16 units (ending in `…` when cut). Reads no further than needed, so
/// huge input costs only `max`.
fn render(parts: &[&str], max: usize, style: Style) -> String {
    let mut out = String::new();
    let mut used = 0;
    // Byte length of `out` at the last point where `…` would still fit.
    let mut mark = 0;
    let mut prev_backtick = false;
    let mut buf = [0u8; 4];
    for c in parts.iter().flat_map(|p| p.chars()) {
        let single_line = !matches!(style, Style::Code);
        let c = match c {
            '\n' | '\r' | '\t' if single_line => ' ',
            '\n' | '\t' => c,
            c if c.is_control() => ' ',
            c => c,
        };
        let piece: &str = match (style, c) {
            (Style::Plain, _) => c.encode_utf8(&mut buf),
            (_, '&') => "&amp;",
            (_, '<') => "&lt;",
            (_, '>') => "&gt;",
            _ => c.encode_utf8(&mut buf),
        };
        let break_run = matches!(style, Style::Code) && c == '`' && prev_backtick;
        prev_backtick = c == '`';
        let n = units(piece) + usize::from(break_run);
        if used + n > max {
            out.truncate(mark);
            if max > 0 {
                out.push('…');
            }
            return out;
        }
        if break_run {
            out.push(ZWSP);
        }
        out.push_str(piece);
        used += n;
        if used < max {
            mark = out.len();
        }
    }
    out
}

/// Joins rendered lines (`items`, `total` of them, rendered lazily) with `\n` within `budget`
/// units, each line cut to `per_line`; when lines are left out, ends with
/// `… and N more`.
fn render_lines<'a>(
    items: impl Iterator<Item = Vec<Cow<'a, str>>>,
    total: usize,
    budget: usize,
    per_line: usize,
    style: Style,
) -> String {
    let mut out = String::new();
    let mut used = 0;
    let mut shown = 0;
    for (i, parts) in items.enumerate() {
        let sep = usize::from(i > 0);
        let reserve = if i + 1 < total { MORE_RESERVE } else { 0 };
        let room = budget.saturating_sub(used + sep + reserve);
        if room < MIN_LINE_ROOM.min(per_line) {
            break;
        }
        let parts: Vec<&str> = parts.iter().map(|p| p.as_ref()).collect();
        let line = render(&parts, room.min(per_line), style);
        if sep == 1 {
            out.push('\n');
        }
        used += sep + units(&line);
        out.push_str(&line);
        shown += 1;
    }
    if shown < total {
        if shown > 0 {
            out.push('\n');
        }
        out.push_str(&format!("… and {} more", total - shown));
    }
    out
}

/// Status marker and word for a kind, as shown in the header and fallback.
fn marker(kind: Kind) -> &'static str {
    match kind {
        Kind::Firing => "🔴 Firing",
        Kind::Resolved => "✅ Resolved",
        Kind::NewGroup => "🆕 New group",
        Kind::Regressed => "🔁 Regressed",
        Kind::Spike => "📈 Spike",
    }
}

/// `90` → `90s`, `300` → `5m`, `7200` → `2h`.
fn human_secs(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// A `*Name*\nvalue` field, the value cut to fit.
fn field(name: &str, value: &str) -> Value {
    let head = format!("*{name}*\n");
    let value = render(&[value], FIELD_TEXT - units(&head), Style::Inline);
    mrkdwn(head + &value)
}

/// A section holding `title` and a code block of `body_lines`.
fn code_section(title: &str, body: &str) -> Value {
    mrkdwn(format!("*{title}*\n```\n{body}\n```"))
}

/// Room for the content of a [`code_section`] called `title`.
fn code_budget(title: &str) -> usize {
    SECTION_TEXT - units(&format!("*{title}*\n```\n\n```"))
}

/// The Slack incoming-webhook message for `n`; see the module documentation
/// for its layout and the limits it respects. Always passes
/// [`validate_slack`].
pub fn slack_body(n: &Notification) -> Value {
    let mark = marker(n.kind);
    let mut blocks = Vec::new();

    blocks.push(json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": render(&[mark, " · ", &n.title], HEADER_TEXT, Style::Plain),
            "emoji": true,
        },
    }));

    let mut fields = Vec::new();
    if let Some(rule) = &n.rule {
        fields.push(field("Rule", rule));
    }
    fields.push(field("App", &n.app));
    if let Some(service) = &n.service {
        fields.push(field("Service", service));
    }
    if let Some(level) = n.level {
        fields.push(field("Level", level.as_str()));
    }
    fields.push(field("Count", &n.count.to_string()));
    if let Some(window) = n.window_secs {
        fields.push(field("Window", &human_secs(window)));
    }
    if !n.labels.is_empty() {
        let head = "*Labels*\n";
        let lines = render_lines(
            n.labels
                .iter()
                .map(|(k, v)| vec![Cow::from(k), Cow::from(" = "), Cow::from(v)]),
            n.labels.len(),
            FIELD_TEXT - units(head),
            LABEL_LINE,
            Style::Inline,
        );
        fields.push(mrkdwn(format!("{head}{lines}")));
    }
    blocks.push(json!({"type": "section", "fields": fields}));

    if let Some(template) = n.template.as_deref().filter(|t| !t.is_empty()) {
        let title = "Template";
        let body = render(&[template], code_budget(title), Style::Code);
        blocks.push(json!({"type": "section", "text": code_section(title, &body)}));
    }

    if !n.samples.is_empty() {
        let title = if n.samples.len() == 1 {
            "Sample".to_string()
        } else {
            format!("Samples ({})", n.samples.len())
        };
        let body = render_lines(
            n.samples.iter().map(sample_parts),
            n.samples.len(),
            code_budget(&title),
            SAMPLE_LINE,
            Style::Code,
        );
        blocks.push(json!({"type": "section", "text": code_section(&title, &body)}));
    }

    let mut context = vec![
        mrkdwn(format!(
            "First seen {} · Last seen {}",
            format_ts(n.first_seen),
            format_ts(n.last_seen)
        )),
        mrkdwn(render(
            &["Source: ", &n.source],
            CONTEXT_ITEM,
            Style::Inline,
        )),
    ];
    if let Some(fp) = &n.fingerprint {
        context.push(mrkdwn(render(
            &["Fingerprint: ", fp],
            CONTEXT_ITEM,
            Style::Inline,
        )));
    }
    context.push(mrkdwn(render(
        &["Id: ", &n.id],
        CONTEXT_ITEM,
        Style::Inline,
    )));
    blocks.push(json!({"type": "context", "elements": context}));

    if let Some(link) = n.link.as_deref().filter(|l| usable_link(l)) {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "View in Sluice", "emoji": true},
                "url": link,
                "action_id": "sluice_view",
            }],
        }));
    }

    json!({
        "text": render(&[mark, ": ", &n.title], FALLBACK_TEXT, Style::Inline),
        "blocks": blocks,
    })
}

/// The parts of one sample line: `<ts> <host> [<request id>] <msg>`.
fn sample_parts(s: &Sample) -> Vec<Cow<'_, str>> {
    let mut parts = vec![
        Cow::Owned(format_ts(s.ts)),
        Cow::from(" "),
        Cow::from(&s.host),
    ];
    if let Some(req) = &s.request_id {
        parts.extend([Cow::from(" ["), Cow::from(req), Cow::from("]")]);
    }
    parts.extend([Cow::from(" "), Cow::from(&s.msg)]);
    parts
}

/// Whether a link can go in a Slack button.
fn usable_link(link: &str) -> bool {
    (link.starts_with("https://") || link.starts_with("http://"))
        && units(link) <= URL_LEN
        && !link.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks a Slack message body against Slack's documented structure and the
/// limits listed in the module documentation. Knows the block types `header`,
/// `section`, `context`, `actions` and `divider`, and `button` as the only
/// interactive element. The error names the offending JSON path.
pub fn validate_slack(v: &Value) -> Result<(), String> {
    let top = v.as_object().ok_or("body: not a JSON object")?;
    let text = top
        .get("text")
        .and_then(Value::as_str)
        .ok_or("text: missing or not a string")?;
    check_len("text", text, 0, MAX_TOP_TEXT)?;
    let blocks = top
        .get("blocks")
        .and_then(Value::as_array)
        .ok_or("blocks: missing or not an array")?;
    if blocks.len() > MAX_BLOCKS {
        return Err(format!(
            "blocks: {} blocks, at most {MAX_BLOCKS} allowed",
            blocks.len()
        ));
    }
    for (i, block) in blocks.iter().enumerate() {
        validate_block(&format!("blocks[{i}]"), block)?;
    }
    Ok(())
}

fn check_len(path: &str, text: &str, min: usize, max: usize) -> Result<(), String> {
    let n = units(text);
    if n < min || n > max {
        return Err(format!("{path}: length {n}, must be {min}..={max}"));
    }
    Ok(())
}

fn get_str<'a>(obj: &'a Value, path: &str, key: &str) -> Result<&'a str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{path}.{key}: missing or not a string"))
}

/// A text object: `plain_text` or `mrkdwn` (or only `plain_text` when
/// `plain_only`), with text of 1..=`max` units.
fn validate_text(path: &str, t: &Value, max: usize, plain_only: bool) -> Result<(), String> {
    if !t.is_object() {
        return Err(format!("{path}: not a text object"));
    }
    let kind = get_str(t, path, "type")?;
    match kind {
        "plain_text" => {
            if t.get("verbatim").is_some() {
                return Err(format!("{path}.verbatim: only allowed on mrkdwn"));
            }
            if t.get("emoji").is_some_and(|e| !e.is_boolean()) {
                return Err(format!("{path}.emoji: not a boolean"));
            }
        }
        "mrkdwn" if !plain_only => {
            if t.get("emoji").is_some() {
                return Err(format!("{path}.emoji: only allowed on plain_text"));
            }
        }
        other => {
            let allowed = if plain_only {
                "plain_text"
            } else {
                "plain_text or mrkdwn"
            };
            return Err(format!("{path}.type: {other:?}, must be {allowed}"));
        }
    }
    check_len(&format!("{path}.text"), get_str(t, path, "text")?, 1, max)
}

fn validate_block(path: &str, block: &Value) -> Result<(), String> {
    if !block.is_object() {
        return Err(format!("{path}: not an object"));
    }
    if let Some(id) = block.get("block_id") {
        let id = id
            .as_str()
            .ok_or_else(|| format!("{path}.block_id: not a string"))?;
        check_len(&format!("{path}.block_id"), id, 1, BLOCK_ID_LEN)?;
    }
    let sub = |key: &str| format!("{path}.{key}");
    match get_str(block, path, "type")? {
        "header" => {
            let text = block
                .get("text")
                .ok_or_else(|| format!("{path}.text: missing"))?;
            validate_text(&sub("text"), text, HEADER_TEXT, true)
        }
        "section" => {
            let text = block.get("text");
            let fields = block.get("fields");
            if text.is_none() && fields.is_none() {
                return Err(format!("{path}: section needs text or fields"));
            }
            if let Some(text) = text {
                validate_text(&sub("text"), text, SECTION_TEXT, false)?;
            }
            if let Some(fields) = fields {
                let fields = fields
                    .as_array()
                    .ok_or_else(|| format!("{path}.fields: not an array"))?;
                if fields.is_empty() || fields.len() > MAX_FIELDS {
                    return Err(format!(
                        "{path}.fields: {} fields, must be 1..={MAX_FIELDS}",
                        fields.len()
                    ));
                }
                for (i, f) in fields.iter().enumerate() {
                    validate_text(&format!("{path}.fields[{i}]"), f, FIELD_TEXT, false)?;
                }
            }
            Ok(())
        }
        "context" => {
            let elements = elements(block, path, MAX_CONTEXT_ELEMENTS)?;
            for (i, e) in elements.iter().enumerate() {
                let epath = format!("{path}.elements[{i}]");
                if e.get("type").and_then(Value::as_str) == Some("image") {
                    get_str(e, &epath, "image_url")?;
                    get_str(e, &epath, "alt_text")?;
                } else {
                    validate_text(&epath, e, CONTEXT_TEXT, false)?;
                }
            }
            Ok(())
        }
        "actions" => {
            let elements = elements(block, path, MAX_ACTION_ELEMENTS)?;
            for (i, e) in elements.iter().enumerate() {
                validate_button(&format!("{path}.elements[{i}]"), e)?;
            }
            Ok(())
        }
        "divider" => Ok(()),
        other => Err(format!("{path}.type: unknown block type {other:?}")),
    }
}

fn elements<'a>(block: &'a Value, path: &str, max: usize) -> Result<&'a Vec<Value>, String> {
    let elements = block
        .get("elements")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{path}.elements: missing or not an array"))?;
    if elements.is_empty() || elements.len() > max {
        return Err(format!(
            "{path}.elements: {} elements, must be 1..={max}",
            elements.len()
        ));
    }
    Ok(elements)
}

fn validate_button(path: &str, e: &Value) -> Result<(), String> {
    let kind = get_str(e, path, "type")?;
    if kind != "button" {
        return Err(format!("{path}.type: unsupported element type {kind:?}"));
    }
    let text = e
        .get("text")
        .ok_or_else(|| format!("{path}.text: missing"))?;
    validate_text(&format!("{path}.text"), text, BUTTON_TEXT, true)?;
    if let Some(url) = e.get("url") {
        let url = url
            .as_str()
            .ok_or_else(|| format!("{path}.url: not a string"))?;
        check_len(&format!("{path}.url"), url, 1, URL_LEN)?;
    }
    if let Some(id) = e.get("action_id") {
        let id = id
            .as_str()
            .ok_or_else(|| format!("{path}.action_id: not a string"))?;
        check_len(&format!("{path}.action_id"), id, 1, ACTION_ID_LEN)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct WireBody<'a> {
    version: u32,
    id: &'a str,
    kind: Kind,
    title: &'a str,
    source: &'a str,
    rule: Option<&'a str>,
    app: &'a str,
    service: Option<&'a str>,
    level: Option<Level>,
    count: u64,
    window_secs: Option<u64>,
    labels: &'a BTreeMap<String, String>,
    fingerprint: Option<&'a str>,
    template: Option<&'a str>,
    samples: Vec<WireSample<'a>>,
    first_seen: String,
    last_seen: String,
    link: Option<&'a str>,
    created: String,
}

#[derive(Serialize)]
struct WireSample<'a> {
    id: &'a str,
    ts: String,
    host: &'a str,
    msg: &'a str,
    request_id: Option<&'a str>,
}

/// The generic webhook body for `n` (compact JSON, documented in the module
/// documentation). It carries everything it is given: bound the size first
/// with [`Notification::truncated`].
pub fn webhook_body(n: &Notification) -> Vec<u8> {
    let body = WireBody {
        version: WEBHOOK_VERSION,
        id: &n.id,
        kind: n.kind,
        title: &n.title,
        source: &n.source,
        rule: n.rule.as_deref(),
        app: &n.app,
        service: n.service.as_deref(),
        level: n.level,
        count: n.count,
        window_secs: n.window_secs,
        labels: &n.labels,
        fingerprint: n.fingerprint.as_deref(),
        template: n.template.as_deref(),
        samples: n
            .samples
            .iter()
            .map(|s| WireSample {
                id: &s.id,
                ts: format_ts(s.ts),
                host: &s.host,
                msg: &s.msg,
                request_id: s.request_id.as_deref(),
            })
            .collect(),
        first_seen: format_ts(n.first_seen),
        last_seen: format_ts(n.last_seen),
        link: n.link.as_deref(),
        created: format_ts(n.created),
    };
    // Serialising strings, integers and string maps into JSON cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Sluice-Signature` value for `body` signed at `timestamp_secs`:
/// `v1=` followed by the lowercase hex HMAC-SHA256, keyed with `secret`, of
/// `"<timestamp_secs>." + body`. Send `timestamp_secs` in
/// [`TIMESTAMP_HEADER`].
pub fn sign(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp_secs.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex::encode(tag))
}

/// The signature header for several secrets at once (key rotation): each
/// [`sign`] result, joined with `,`. Receivers accept the request when any
/// of them matches.
pub fn sign_all<S: AsRef<[u8]>>(secrets: &[S], timestamp_secs: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s.as_ref(), timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a decimal integer.
    #[error("timestamp header {0:?} is not a whole number of seconds")]
    BadTimestamp(String),
    /// The timestamp is further from now than the tolerance.
    #[error("timestamp {timestamp} is more than {tolerance_secs} s away from now ({now_secs})")]
    Stale {
        /// The request's timestamp, seconds since the epoch.
        timestamp: i64,
        /// The receiver's clock, seconds since the epoch.
        now_secs: i64,
        /// The tolerance that was exceeded, in seconds.
        tolerance_secs: i64,
    },
    /// The signature header has no `v1=` entry.
    #[error("signature header carries no v1= signature")]
    NoSignature,
    /// No `v1=` entry matches the body, timestamp and secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a signed request as a receiver would: the timestamp must be within
/// `tolerance_secs` of `now_secs` (either way), and any `v1=` entry of the
/// comma-separated `signature_header` must equal the signature of
/// `timestamp_header` and `body` under `secret`, compared in constant time.
/// Entries of other schemes are ignored, so new schemes can be added later.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp_text = timestamp_header.trim();
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp_header.to_string()))?;
    if timestamp.abs_diff(now_secs) > tolerance_secs.max(0).unsigned_abs() {
        return Err(VerifyError::Stale {
            timestamp,
            now_secs,
            tolerance_secs,
        });
    }
    // The header's own text is signed, as the documented recipe says; `sign`
    // writes it in canonical decimal form.
    let expected = mac(secret, timestamp_text, body);
    let mut found = false;
    let mut matched = false;
    for entry in signature_header.split(',') {
        let Some(hex_sig) = entry.trim().strip_prefix("v1=") else {
            continue;
        };
        found = true;
        if let Ok(candidate) = hex::decode(hex_sig.trim()) {
            // `verify_slice` compares in constant time.
            matched |= expected.clone().verify_slice(&candidate).is_ok();
        }
    }
    match (found, matched) {
        (_, true) => Ok(()),
        (false, false) => Err(VerifyError::NoSignature),
        (true, false) => Err(VerifyError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::tests::sample_notification;
    use proptest::prelude::*;

    fn blocks(v: &Value) -> &Vec<Value> {
        v["blocks"].as_array().unwrap()
    }

    fn block<'a>(v: &'a Value, kind: &str) -> &'a Value {
        blocks(v)
            .iter()
            .find(|b| b["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} block in {v}"))
    }

    fn huge_notification() -> Notification {
        let mut n = sample_notification();
        n.title = "t".repeat(10_000);
        n.rule = Some("r<&>".repeat(5_000));
        n.app = "a".repeat(5_000);
        n.template = Some("`<*>` & ".repeat(100_000));
        n.fingerprint = Some("f".repeat(5_000));
        n.id = "i".repeat(5_000);
        n.labels = (0..100)
            .map(|i| (format!("label{i}"), "v&".repeat(i * 10)))
            .collect();
        let base = n.samples[0].clone();
        n.samples = (0..1000)
            .map(|i| Sample {
                id: format!("s{i}"),
                msg: format!("message {i} <@U123> ```"),
                ..base.clone()
            })
            .collect();
        n.samples[0].msg = "😀&".repeat(1 << 18); // > 1 MiB
        n.link = Some(format!("https://example.com/{}", "q".repeat(2000)));
        n
    }

    #[test]
    fn typical_slack_body() {
        let n = sample_notification();
        let v = slack_body(&n);
        validate_slack(&v).unwrap();
        assert_eq!(
            v["text"], "🔴 Firing: checkout-errors: 37 errors in 60s",
            "{v:#}"
        );
        let header = block(&v, "header");
        assert_eq!(
            header["text"]["text"],
            "🔴 Firing · checkout-errors: 37 errors in 60s"
        );
        assert_eq!(header["text"]["emoji"], true);
        let fields: Vec<&str> = blocks(&v)[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Rule*\ncheckout-errors",
                "*App*\nshop",
                "*Service*\ncheckout",
                "*Level*\nERROR",
                "*Count*\n37",
                "*Window*\n1m",
                "*Labels*\nhost = web-1",
            ]
        );
        let samples = blocks(&v)[2]["text"]["text"].as_str().unwrap();
        assert_eq!(
            samples,
            "*Samples (2)*\n```\n\
             2026-11-22T10:00:00.123456789Z web-1 [req-123] payment declined for order 8812\n\
             2026-11-22T10:00:01.000000000Z web-1 payment declined for order &lt;8813&gt; &amp; retried\n\
             ```"
        );
        let context = block(&v, "context")["elements"].as_array().unwrap();
        assert_eq!(
            context[0]["text"],
            "First seen 2026-11-22T10:00:00.123456789Z · Last seen 2026-11-22T10:00:59.000000000Z"
        );
        assert_eq!(
            context.last().unwrap()["text"],
            "Id: 01JDQ3N7Z5K3W8M2X4R6T9V0BC"
        );
        let button = &block(&v, "actions")["elements"][0];
        assert_eq!(
            button["url"],
            "https://sluice.example.com/query?q=app%3Dshop"
        );
        assert_eq!(blocks(&v).len(), 5);
    }

    #[test]
    fn slack_body_variants() {
        let mut n = sample_notification();
        n.link = None;
        n.kind = Kind::NewGroup;
        n.source = "aggregator".into();
        n.rule = None;
        n.service = None;
        n.level = None;
        n.window_secs = None;
        n.labels.clear();
        n.template = Some("payment declined for order <*>".into());
        n.fingerprint = Some("9f1c".into());
        n.samples.truncate(1);
        let v = slack_body(&n);
        validate_slack(&v).unwrap();
        assert!(!blocks(&v).iter().any(|b| b["type"] == "actions"));
        assert!(v["text"].as_str().unwrap().starts_with("🆕 New group: "));
        assert_eq!(blocks(&v)[1]["fields"].as_array().unwrap().len(), 2);
        assert_eq!(
            blocks(&v)[2]["text"]["text"],
            "*Template*\n```\npayment declined for order &lt;*&gt;\n```"
        );
        assert!(
            blocks(&v)[3]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Sample*\n```\n")
        );
        let context = block(&v, "context").to_string();
        assert!(context.contains("Fingerprint: 9f1c"), "{context}");
        assert!(context.contains("Source: aggregator"), "{context}");

        for (kind, mark) in [
            (Kind::Firing, "🔴"),
            (Kind::Resolved, "✅"),
            (Kind::NewGroup, "🆕"),
            (Kind::Regressed, "🔁"),
            (Kind::Spike, "📈"),
        ] {
            n.kind = kind;
            let v = slack_body(&n);
            let header = block(&v, "header")["text"]["text"].as_str().unwrap();
            assert!(header.starts_with(mark), "{header}");
        }

        // Links Slack would refuse are left out.
        for link in ["", "javascript:alert(1)", "https://a b", "ftp://x"] {
            n.link = Some(link.into());
            assert!(
                !blocks(&slack_body(&n))
                    .iter()
                    .any(|b| b["type"] == "actions")
            );
        }
        n.link = Some(format!("https://x/{}", "a".repeat(3000)));
        assert!(
            !blocks(&slack_body(&n))
                .iter()
                .any(|b| b["type"] == "actions")
        );
    }

    #[test]
    fn huge_slack_body_is_bounded() {
        let n = huge_notification();
        let v = slack_body(&n);
        validate_slack(&v).unwrap();
        let size = serde_json::to_vec(&v).unwrap().len();
        assert!(size < 40_000, "{size} bytes");
        let header = block(&v, "header")["text"]["text"].as_str().unwrap();
        assert_eq!(units(header), HEADER_TEXT);
        assert!(header.ends_with('…'));
        let samples = blocks(&v)
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .find(|t| t.starts_with("*Samples (1000)*"))
            .unwrap();
        assert!(samples.contains(" more\n```"), "{samples}");
        assert!(samples.ends_with("\n```"));
        // The three backticks in the messages cannot close the block.
        assert_eq!(samples.matches("```").count(), 2, "{samples}");
        let labels = blocks(&v)[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["text"].as_str())
            .find(|t| t.starts_with("*Labels*"))
            .unwrap();
        assert!(labels.contains(" more"), "{labels}");
        assert!(labels.contains("label0 = \n"), "{labels}");
        // Escapes are never cut in half.
        for b in blocks(&v) {
            let text = b.to_string();
            assert!(!text.contains("&am…") && !text.contains("&l…"), "{text}");
        }
    }

    #[test]
    fn mrkdwn_escaping() {
        assert_eq!(escape_mrkdwn("a & b <c> d"), "a &amp; b &lt;c&gt; d");
        assert_eq!(
            escape_mrkdwn("<!channel> <@U1|x>"),
            "&lt;!channel&gt; &lt;@U1|x&gt;"
        );
        assert_eq!(escape_mrkdwn("&amp;"), "&amp;amp;");
        assert_eq!(escape_mrkdwn("*bold* _i_ `c`"), "*bold* _i_ `c`");
        assert_eq!(render(&["a<b"], 100, Style::Plain), "a<b");
        assert_eq!(render(&["a<b"], 100, Style::Inline), "a&lt;b");
        assert_eq!(render(&["a\nb\tc\u{7}"], 100, Style::Inline), "a b c ");
        assert_eq!(render(&["a\nb"], 100, Style::Code), "a\nb");
        assert_eq!(
            render(&["x```y"], 100, Style::Code),
            "x`\u{200b}`\u{200b}`y"
        );
        assert_eq!(render(&["`a`"], 100, Style::Code), "`a`");
        // Cutting: never inside an escape, the result fits exactly.
        assert_eq!(render(&["abcdef"], 4, Style::Inline), "abc…");
        assert_eq!(render(&["abcd"], 4, Style::Inline), "abcd");
        assert_eq!(render(&["a&bcdef"], 5, Style::Inline), "a…");
        assert_eq!(render(&["a&bcdef"], 7, Style::Inline), "a&amp;…");
        assert_eq!(render(&["😀😀😀"], 5, Style::Plain), "😀😀…");
        assert_eq!(render(&["😀😀😀"], 4, Style::Plain), "😀…");
        assert_eq!(render(&["ab"], 0, Style::Plain), "");
    }

    #[test]
    fn user_text_cannot_mention_or_link() {
        let mut n = sample_notification();
        n.title = "<!channel> ping".into();
        n.app = "<https://evil|click>".into();
        n.labels.insert("who".into(), "<@U123>".into());
        let v = slack_body(&n);
        // Everything but the plain-text header is mrkdwn and escaped.
        for b in blocks(&v).iter().filter(|b| b["type"] != "header") {
            let b = b.to_string();
            assert!(!b.contains('<') && !b.contains('>'), "{b}");
        }
        assert_eq!(v["text"], "🔴 Firing: &lt;!channel&gt; ping");
        // The plain-text header shows the title literally.
        assert_eq!(
            block(&v, "header")["text"]["text"],
            "🔴 Firing · <!channel> ping"
        );
    }

    type Breaker = Box<dyn Fn(&mut Value)>;

    fn valid() -> Value {
        slack_body(&sample_notification())
    }

    #[test]
    fn validate_slack_rejects_broken_bodies() {
        let cases: Vec<(&str, Breaker)> = vec![
            ("not object", Box::new(|v: &mut Value| *v = json!([]))),
            (
                "missing text",
                Box::new(|v: &mut Value| _ = v.as_object_mut().unwrap().remove("text")),
            ),
            (
                "text not string",
                Box::new(|v: &mut Value| v["text"] = json!(5)),
            ),
            (
                "text too long",
                Box::new(|v: &mut Value| v["text"] = json!("x".repeat(40_001))),
            ),
            (
                "missing blocks",
                Box::new(|v: &mut Value| _ = v.as_object_mut().unwrap().remove("blocks")),
            ),
            (
                "51 blocks",
                Box::new(|v: &mut Value| v["blocks"] = json!(vec![json!({"type": "divider"}); 51])),
            ),
            (
                "unknown type",
                Box::new(|v: &mut Value| v["blocks"][0]["type"] = json!("banner")),
            ),
            (
                "block without type",
                Box::new(|v: &mut Value| v["blocks"][0] = json!({"text": "x"})),
            ),
            (
                "long header",
                Box::new(|v: &mut Value| v["blocks"][0]["text"]["text"] = json!("h".repeat(151))),
            ),
            (
                "empty header",
                Box::new(|v: &mut Value| v["blocks"][0]["text"]["text"] = json!("")),
            ),
            (
                "mrkdwn header",
                Box::new(|v: &mut Value| v["blocks"][0]["text"]["type"] = json!("mrkdwn")),
            ),
            (
                "header without text",
                Box::new(|v: &mut Value| v["blocks"][0] = json!({"type": "header"})),
            ),
            (
                "empty section",
                Box::new(|v: &mut Value| v["blocks"][1] = json!({"type": "section"})),
            ),
            (
                "11 fields",
                Box::new(|v: &mut Value| {
                    v["blocks"][1]["fields"] =
                        json!(vec![json!({"type": "mrkdwn", "text": "x"}); 11])
                }),
            ),
            (
                "0 fields",
                Box::new(|v: &mut Value| v["blocks"][1]["fields"] = json!([])),
            ),
            (
                "long field",
                Box::new(|v: &mut Value| {
                    v["blocks"][1]["fields"][0]["text"] = json!("f".repeat(2001))
                }),
            ),
            (
                "bad text type",
                Box::new(|v: &mut Value| v["blocks"][1]["fields"][0]["type"] = json!("html")),
            ),
            (
                "long section text",
                Box::new(|v: &mut Value| v["blocks"][2]["text"]["text"] = json!("s".repeat(3001))),
            ),
            (
                "emoji on mrkdwn",
                Box::new(|v: &mut Value| v["blocks"][2]["text"]["emoji"] = json!(true)),
            ),
            (
                "empty context",
                Box::new(|v: &mut Value| v["blocks"][3]["elements"] = json!([])),
            ),
            (
                "11 context elements",
                Box::new(|v: &mut Value| {
                    v["blocks"][3]["elements"] =
                        json!(vec![json!({"type": "mrkdwn", "text": "x"}); 11])
                }),
            ),
            (
                "26 actions",
                Box::new(|v: &mut Value| {
                    let b = v["blocks"][4]["elements"][0].clone();
                    v["blocks"][4]["elements"] = json!(vec![b; 26]);
                }),
            ),
            (
                "long button text",
                Box::new(|v: &mut Value| {
                    v["blocks"][4]["elements"][0]["text"]["text"] = json!("b".repeat(76))
                }),
            ),
            (
                "mrkdwn button text",
                Box::new(|v: &mut Value| {
                    v["blocks"][4]["elements"][0]["text"]["type"] = json!("mrkdwn")
                }),
            ),
            (
                "long url",
                Box::new(|v: &mut Value| {
                    v["blocks"][4]["elements"][0]["url"] = json!("u".repeat(3001))
                }),
            ),
            (
                "unknown element",
                Box::new(|v: &mut Value| {
                    v["blocks"][4]["elements"][0]["type"] = json!("datepicker")
                }),
            ),
            (
                "long block_id",
                Box::new(|v: &mut Value| v["blocks"][0]["block_id"] = json!("b".repeat(256))),
            ),
        ];
        for (name, break_it) in cases {
            let mut v = valid();
            break_it(&mut v);
            assert!(validate_slack(&v).is_err(), "{name}: accepted {v}");
        }
        // The limits themselves are fine.
        let mut v = valid();
        v["blocks"][0]["text"]["text"] = json!("h".repeat(150));
        v["blocks"][1]["fields"][0]["text"] = json!("f".repeat(2000));
        v["blocks"][2]["text"]["text"] = json!("s".repeat(3000));
        v["blocks"][4]["elements"][0]["text"]["text"] = json!("b".repeat(75));
        validate_slack(&v).unwrap();
        v["blocks"] = json!(vec![json!({"type": "divider"}); 50]);
        validate_slack(&v).unwrap();
        // Errors name the path.
        let mut v = valid();
        v["blocks"][0]["text"]["text"] = json!("h".repeat(151));
        let err = validate_slack(&v).unwrap_err();
        assert!(err.starts_with("blocks[0].text.text"), "{err}");
    }

    const GOLDEN: &str = concat!(
        r#"{"version":1,"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BC","kind":"firing","#,
        r#""title":"checkout-errors: 37 errors in 60s","source":"alerter","#,
        r#""rule":"checkout-errors","app":"shop","service":"checkout","level":"ERROR","#,
        r#""count":37,"window_secs":60,"labels":{"host":"web-1"},"fingerprint":null,"#,
        r#""template":null,"samples":[{"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BD","#,
        r#""ts":"2026-11-22T10:00:00.123456789Z","host":"web-1","#,
        r#""msg":"payment declined for order 8812","request_id":"req-123"},"#,
        r#"{"id":"01JDQ3N7Z5K3W8M2X4R6T9V0BE","ts":"2026-11-22T10:00:01.000000000Z","#,
        r#""host":"web-1","msg":"payment declined for order <8813> & retried","#,
        r#""request_id":null}],"first_seen":"2026-11-22T10:00:00.123456789Z","#,
        r#""last_seen":"2026-11-22T10:00:59.000000000Z","#,
        r#""link":"https://sluice.example.com/query?q=app%3Dshop","#,
        r#""created":"2026-11-22T10:01:00.000000000Z"}"#,
    );

    #[test]
    fn webhook_body_golden() {
        let body = webhook_body(&sample_notification());
        assert_eq!(std::str::from_utf8(&body).unwrap(), GOLDEN);
    }

    #[test]
    fn webhook_body_nulls() {
        let mut n = sample_notification();
        n.rule = None;
        n.service = None;
        n.level = None;
        n.window_secs = None;
        n.link = None;
        n.kind = Kind::Regressed;
        n.fingerprint = Some("9f1c".into());
        n.template = Some("payment declined for order <*>".into());
        let v: Value = serde_json::from_slice(&webhook_body(&n)).unwrap();
        for key in ["rule", "service", "level", "window_secs", "link"] {
            assert!(v[key].is_null(), "{key}: {v}");
        }
        assert_eq!(v["kind"], "regressed");
        assert_eq!(v["fingerprint"], "9f1c");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 19);
        assert!(v.get("receiver").is_none());
    }

    const SECRET: &[u8] = b"my-webhook-secret";
    const EXAMPLE_BODY: &[u8] = br#"{"version":1,"id":"n-1"}"#;
    const EXAMPLE_SIG: &str = "v1=bf34f056457aaeb4b5165ebe1ed2614e770304b2530eba300ecfdfa8297d0696";

    #[test]
    fn documented_worked_example() {
        assert_eq!(sign(SECRET, 1_795_341_600, EXAMPLE_BODY), EXAMPLE_SIG);
        verify(
            SECRET,
            "1795341600",
            EXAMPLE_SIG,
            EXAMPLE_BODY,
            1_795_341_600,
            300,
        )
        .unwrap();
    }

    #[test]
    fn sign_verify_round_trip() {
        let body = webhook_body(&sample_notification());
        let now = 1_795_341_660;
        let sig = sign(SECRET, now, &body);
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert_eq!(sig, sig.to_lowercase());
        verify(SECRET, &now.to_string(), &sig, &body, now, 300).unwrap();
        verify(SECRET, &now.to_string(), &sig, &body, now + 300, 300).unwrap();
        verify(SECRET, &now.to_string(), &sig, &body, now - 300, 300).unwrap();
        // Upper-case hex and surrounding spaces are accepted.
        let upper = format!(" v1={} ", sig[3..].to_uppercase());
        verify(SECRET, &format!(" {now} "), &upper, &body, now, 300).unwrap();
    }

    #[test]
    fn verify_rejects() {
        let now = 1_795_341_660;
        let ts = now.to_string();
        let sig = sign(SECRET, now, EXAMPLE_BODY);
        let v = |secret: &[u8], ts: &str, sig: &str, body: &[u8], at: i64| {
            verify(secret, ts, sig, body, at, DEFAULT_TOLERANCE_SECS)
        };
        // Tampered body.
        assert_eq!(
            v(SECRET, &ts, &sig, br#"{"version":1,"id":"n-2"}"#, now),
            Err(VerifyError::Mismatch)
        );
        // Wrong secret.
        assert_eq!(
            v(b"other", &ts, &sig, EXAMPLE_BODY, now),
            Err(VerifyError::Mismatch)
        );
        // Timestamp changed (signature was for another time).
        let later = (now + 1).to_string();
        assert_eq!(
            v(SECRET, &later, &sig, EXAMPLE_BODY, now),
            Err(VerifyError::Mismatch)
        );
        // Non-canonical timestamp text.
        assert_eq!(
            v(SECRET, &format!("+{now}"), &sig, EXAMPLE_BODY, now),
            Err(VerifyError::Mismatch)
        );
        // Stale and future timestamps.
        assert!(matches!(
            v(SECRET, &ts, &sig, EXAMPLE_BODY, now + 301),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            v(SECRET, &ts, &sig, EXAMPLE_BODY, now - 301),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &ts, &sig, EXAMPLE_BODY, i64::MIN, i64::MAX),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            verify(SECRET, &ts, &sig, EXAMPLE_BODY, now, -5),
            Ok(())
        ));
        // Malformed headers.
        for bad in ["", "abc", "12.5", "99999999999999999999"] {
            assert!(matches!(
                v(SECRET, bad, &sig, EXAMPLE_BODY, now),
                Err(VerifyError::BadTimestamp(_))
            ));
        }
        for bad in ["", "v0=abcd", &sig[3..], "sha256=00"] {
            assert_eq!(
                v(SECRET, &ts, bad, EXAMPLE_BODY, now),
                Err(VerifyError::NoSignature)
            );
        }
        for bad in ["v1=", "v1=zz", "v1=abcd", &format!("{sig}00")] {
            assert_eq!(
                v(SECRET, &ts, bad, EXAMPLE_BODY, now),
                Err(VerifyError::Mismatch)
            );
        }
    }

    #[test]
    fn multiple_signatures() {
        let now = 1_795_341_660;
        let ts = now.to_string();
        let header = sign_all(&[b"new-secret".as_slice(), SECRET], now, EXAMPLE_BODY);
        assert_eq!(header.matches("v1=").count(), 2);
        verify(SECRET, &ts, &header, EXAMPLE_BODY, now, 300).unwrap();
        verify(b"new-secret", &ts, &header, EXAMPLE_BODY, now, 300).unwrap();
        assert_eq!(
            verify(b"third", &ts, &header, EXAMPLE_BODY, now, 300),
            Err(VerifyError::Mismatch)
        );
        // Unknown schemes and junk entries are skipped.
        let mixed = format!("v2=ffff, v1=nothex, {}", sign(SECRET, now, EXAMPLE_BODY));
        verify(SECRET, &ts, &mixed, EXAMPLE_BODY, now, 300).unwrap();
    }

    fn arb_notification() -> impl Strategy<Value = Notification> {
        let text = || ".{0,400}";
        let sample = (
            text(),
            any::<i64>(),
            ".{0,50}",
            proptest::option::of(".{0,50}"),
        );
        (
            (
                proptest::sample::select(Kind::ALL.to_vec()),
                text(),
                proptest::option::of(text()),
                text(),
                proptest::option::of(text()),
                proptest::option::of(proptest::sample::select(Level::ALL.to_vec())),
                any::<u64>(),
                proptest::option::of(any::<u64>()),
            ),
            (
                proptest::collection::btree_map(".{0,60}", ".{0,300}", 0..40),
                proptest::option::of(text()),
                proptest::option::of(prop_oneof![text(), "https://[a-z./?=&%]{0,3500}",]),
                proptest::collection::vec(sample, 0..60),
                any::<(i64, i64)>(),
                prop_oneof![Just(0usize), 1usize..20_000],
            ),
        )
            .prop_map(|(a, b)| {
                let (kind, title, rule, app, service, level, count, window_secs) = a;
                let (labels, template, link, samples, (first_seen, last_seen), big) = b;
                let mut n = sample_notification();
                n.kind = kind;
                n.title = title;
                n.rule = rule;
                n.app = app;
                n.service = service;
                n.level = level;
                n.count = count;
                n.window_secs = window_secs;
                n.labels = labels;
                n.template = template;
                n.link = link;
                n.first_seen = first_seen;
                n.last_seen = last_seen;
                n.samples = samples
                    .into_iter()
                    .map(|(msg, ts, host, request_id)| Sample {
                        id: "s".into(),
                        ts,
                        host,
                        msg: msg.repeat(1 + big / 400),
                        request_id,
                    })
                    .collect();
                n
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn slack_body_always_validates(n in arb_notification()) {
            let v = slack_body(&n);
            if let Err(e) = validate_slack(&v) {
                return Err(TestCaseError::fail(format!("{e}\n{v:#}")));
            }
        }

        #[test]
        fn webhook_body_round_trips(n in arb_notification()) {
            let v: Value = serde_json::from_slice(&webhook_body(&n)).unwrap();
            prop_assert_eq!(v["id"].as_str(), Some(n.id.as_str()));
            prop_assert_eq!(v["samples"].as_array().unwrap().len(), n.samples.len());
            prop_assert_eq!(v["count"].as_u64(), Some(n.count));
        }
    }
}
