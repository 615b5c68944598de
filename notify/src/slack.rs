//! The Slack message Sluice sends to an incoming webhook.
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
//! documented limits, which the test harness's Slack validator
//! (`sluice_testing::slack::validate`) checks:
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

use serde_json::{Value, json};
use sluice_core::record::format_ts;

use crate::notification::{Kind, Notification, Sample};

// Slack's limits, in UTF-16 code units where they are lengths.
const FALLBACK_TEXT: usize = 3000;
const HEADER_TEXT: usize = 150;
const SECTION_TEXT: usize = 3000;
const FIELD_TEXT: usize = 2000;
const URL_LEN: usize = 3000;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::tests::{arb_notification, sample_notification};
    use proptest::prelude::*;
    use sluice_testing::slack::validate as validate_slack;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn slack_body_always_validates(n in arb_notification()) {
            let v = slack_body(&n);
            if let Err(e) = validate_slack(&v) {
                return Err(TestCaseError::fail(format!("{e}\n{v:#}")));
            }
        }
    }
}
