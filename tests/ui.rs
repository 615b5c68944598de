//! The web page in headless Chromium over WebDriver, against a real
//! `sluice query` over records posted to `sluice-agent` and filed by
//! `sluice filterer` into s3s-fs (and grouped by `sluice aggregator`).
//!
//! Screenshots of the search, the request view and the errors are written
//! to `target/tmp/ui-screenshots/` (the README's come from there).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use sluice_testing::{Browser, NatsServer, S3Server, try_http_get_as, wait_until};
use sluice_tests::{Stack, StackOptions, filed, post, post_status, stack_with};

const APPS: [&str; 3] = ["shop", "billing", "ledger"];
const SERVICES: [&str; 4] = ["api", "web", "checkout", "db"];
const LEVELS: [&str; 5] = ["debug", "info", "info", "warn", "error"];
const RECORDS: usize = 600;

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// 600 records over the last three hours, a needle, one request across
/// four services, and repeated errors for the aggregator to group.
fn records() -> Vec<Value> {
    let now = now_ms();
    let mut out: Vec<Value> = (0..RECORDS)
        .map(|i| {
            json!({
                "app": APPS[i % 3],
                "service": SERVICES[(i / 3) % 4],
                "host": format!("web-{}", i % 5 + 1),
                "level": LEVELS[(i / 7) % 5],
                "message": if LEVELS[(i / 7) % 5] == "error" {
                    format!("payment declined for order {i}")
                } else {
                    format!("order {i} handled in {} ms", i % 97)
                },
                "timestamp": rfc3339(now - 60_000 - (i as u64) * 17_000),
                "metadata": {"user": format!("u{}", i % 9)},
            })
        })
        .collect();
    out.push(json!({
        "app": "shop", "service": "api", "host": "web-1", "level": "info",
        "message": "the zebra crossed at dawn", "timestamp": rfc3339(now - 30_000),
    }));
    let start = now - 20_000;
    for (app, service, offset) in [
        ("shop", "web", 0),
        ("shop", "checkout", 40),
        ("shop", "checkout", 90),
        ("billing", "api", 250),
        ("ledger", "db", 400),
    ] {
        out.push(json!({
            "app": app, "service": service, "host": "web-2", "level": "info",
            "message": format!("{service} step of the flow"),
            "timestamp": rfc3339(start + offset),
            "metadata": {"request_id": "req-flow"},
        }));
    }
    out
}

/// Records a hostile sender could write.
fn hostile() -> Vec<Value> {
    let now = now_ms();
    let long: String = "long ".repeat(2_000);
    let many: serde_json::Map<String, Value> = (0..500)
        .map(|i| (format!("attr_{i:03}"), json!(format!("value {i}"))))
        .collect();
    let at = |i: u64| rfc3339(now - 10_000 - i * 1_000);
    vec![
        json!({"app":"shop","service":"api","level":"error","timestamp":at(0),
               "message":"hostile <img src=x onerror=\"window.__pwned=1\"> tag"}),
        json!({"app":"shop","service":"api","level":"warn","timestamp":at(1),
               "message":"hostile <script>window.__pwned=2</script> script"}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(2),
               "message":"hostile link",
               "metadata":{"request_id":"javascript:window.__pwned=3","link":"javascript:window.__pwned=4"}}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(3),
               "message":"hostile \u{1b}[31mred\u{1b}[0m \u{1b}]8;;http://evil.example\u{7}ansi\u{1b}]8;;\u{7} \u{1b}[2J"}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(4),
               "message":"hostile attribute keys",
               "metadata":{"<img src=x onerror=window.__pwned=5>":"<b onmouseover=window.__pwned=6>bold</b>"}}),
        // Service names are refused at ingest unless valid (see below); a
        // host can be any text.
        json!({"app":"shop","service":"api","host":"<iframe src=javascript:window.__pwned=8>",
               "level":"info","timestamp":at(5),"message":"hostile host name"}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(6),
               "message":format!("hostile long {long}")}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(7),
               "message":"hostile many attributes","metadata":many}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(8),
               "message":"hostile junk \u{0}\u{1}\u{7f}\u{fffd}\u{fffd}\u{80}\u{9b}31m \u{feff}"}),
        json!({"app":"shop","service":"api","level":"info","timestamp":at(9),
               "message":"hostile rtl \u{202e}gnp.exe\u{202c} שלום עולם مرحبا"}),
    ]
}

fn api(stack: &Stack, path: &str, token: Option<&str>) -> Value {
    let (status, body) = try_http_get_as(stack.query, path, token).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Posts `records` and waits until the filterer has filed all of them.
fn post_and_wait(stack: &Stack, records: &[Value]) {
    let before = filed(&stack.root).0;
    for chunk in records.chunks(200) {
        post(stack.http, &serde_json::to_vec(chunk).unwrap());
    }
    let want = before + records.len() as u64;
    wait_until(Duration::from_secs(60), "every record filed", || {
        std::thread::sleep(Duration::from_millis(100));
        filed(&stack.root).0 >= want
    });
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Polls `script` (a function body returning a value) until it returns
/// something truthy, and returns it.
async fn until(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if Instant::now() >= deadline {
            // What the page says, to tell a failing API from a slow page.
            let page = client
                .execute("return document.body.innerText.slice(0, 2000)", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "timed out waiting for {what}; last {value}; the page says:\n{}",
                page.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

fn url(stack: &Stack, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", stack.query)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One test's servers and stack; dropped, the stack stops first.
struct Filed {
    stack: Stack,
    s3: S3Server,
    _nats: NatsServer,
    _dir: tempfile::TempDir,
}

/// A fresh nats-server and s3s-fs, the stack (with the aggregator) with
/// `query_extra` in `[query]`, and `data` posted and filed.
fn filed_stack(query_extra: &str, data: &[Value]) -> Filed {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let options = StackOptions {
        flush_secs: 1,
        query_extra,
        aggregator: true,
    };
    let stack = stack_with(&nats, &s3, dir.path(), &options);
    post_and_wait(&stack, data);
    Filed {
        stack,
        s3,
        _nats: nats,
        _dir: dir,
    }
}

#[test]
fn search_finds_narrows_by_facet_zooms_and_is_restored_from_its_url() {
    let data = records();
    let filed = filed_stack("", &data);
    let stack = &filed.stack;
    runtime().block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;

        // A known record is found.
        c.goto(&url(stack, "/?q=zebra")).await.unwrap();
        let text = until(c, "the needle", "return document.querySelector('#results .row .msg')?.textContent").await;
        assert_eq!(text, "the zebra crossed at dawn");
        let stats = until(c, "stats", "return document.querySelector('#stats')?.textContent").await;
        // Read from the filed blobs, most of them skipped by their sidecars.
        let counts: Vec<u64> = stats.as_str().unwrap().split(['·', ' ']).filter_map(|w| w.parse().ok()).collect();
        assert!(counts.len() >= 2 && counts[0] >= 1 && counts[0] * 2 < counts[1], "from the filed blob: {stats}");

        // The facets' counts are the API's.
        c.goto(&url(stack, "/")).await.unwrap();
        let shown = until(
            c,
            "the service facet",
            "const li = [...document.querySelectorAll('#facet-service li')];
             return li.length ? li.map(e => [e.dataset.value, Number(e.dataset.count)]) : null",
        )
        .await;
        let hits = api(stack, "/api/v1/logs/hits?by=service&start_time=now-24h", None);
        let expected: Vec<Value> = hits["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!([s["group"], s["total"]]))
            .collect();
        assert_eq!(shown, Value::Array(expected));

        // The histogram's bars add up to the total.
        let sum = until(c, "the histogram", "return document.querySelector('#histogram')?.dataset.sum").await;
        let exact = api(stack, "/api/v1/logs/search?count=exact&limit=1&start_time=now-24h", None);
        assert_eq!(sum.as_str().unwrap(), exact["total"].to_string());
        assert_eq!(exact["total"], data.len());
        // The host facet (read from the blobs) counts every record too.
        let hosts = until(
            c,
            "the host facet",
            "const li = [...document.querySelectorAll('#facet-host li')];
             return li.length ? li.reduce((n, e) => n + Number(e.dataset.count), 0) : null",
        )
        .await;
        assert_eq!(hosts, data.len());
        screenshot(c, "search").await;

        // A facet click narrows the results, and the counts agree.
        let plus = c
            .find(Locator::Css("#facet-service li[data-value='checkout'] button"))
            .await
            .unwrap();
        plus.click().await.unwrap();
        until(c, "the narrowed URL", "return location.search.includes('q=service%3Acheckout')").await;
        let narrowed = api(
            stack,
            "/api/v1/logs/search?count=exact&limit=1&start_time=now-24h&query=service%3Acheckout",
            None,
        );
        until(
            c,
            "the narrowed histogram",
            &format!("return document.querySelector('#histogram')?.dataset.sum === '{}'", narrowed["total"]),
        )
        .await;
        let services = until(
            c,
            "narrowed rows",
            "const r = [...document.querySelectorAll('#results .row .src:not(.host)')].map(e => e.textContent);
             return r.length ? r : null",
        )
        .await;
        assert!(
            services.as_array().unwrap().iter().all(|s| s.as_str().unwrap().ends_with("/checkout")),
            "{services}"
        );

        // Dragging over the histogram zooms into that range, in the URL.
        let over = c.find(Locator::Css("#histogram .u-over")).await.unwrap();
        let width = js(c, "return document.querySelector('#histogram .u-over').getBoundingClientRect().width").await;
        let w = width.as_f64().unwrap();
        let drag = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: over.clone(), duration: None, x: w * 0.3, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::MoveToElement {
                element: over,
                duration: Some(Duration::from_millis(200)),
                x: w * 0.45,
                y: 0.0,
            })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        c.perform_actions(drag).await.unwrap();
        let zoomed = until(c, "the zoomed URL", "return location.search.includes('to=') && location.search").await;
        let params: Vec<(String, String)> = url::form_urlencoded::parse(zoomed.as_str().unwrap().trim_start_matches('?').as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        let (from, to) = (get("from"), get("to"));
        let (from_t, to_t) = (humantime::parse_rfc3339(&from).unwrap(), humantime::parse_rfc3339(&to).unwrap());
        assert!(from_t < to_t, "{from} .. {to}");
        let now = std::time::SystemTime::now();
        assert!(now.duration_since(from_t).unwrap() < Duration::from_secs(24 * 3600), "{from}");
        assert!(to_t < now, "the right part of the range was left out: {to}");

        // Reloading the URL restores the same view.
        until(c, "the zoomed histogram", "return document.querySelector('#histogram')?.dataset.sum").await;
        let first = until(c, "zoomed rows", "return document.querySelector('#results .row')?.dataset.id || document.querySelector('#results .end')?.textContent").await;
        let before = js(c, "return [location.href, document.querySelector('#q').value, document.querySelector('#range').selectedOptions[0].textContent, document.querySelector('#histogram').dataset.sum]").await;
        c.refresh().await.unwrap();
        until(c, "the reloaded histogram", "return document.querySelector('#histogram')?.dataset.sum").await;
        let again = until(c, "reloaded rows", "return document.querySelector('#results .row')?.dataset.id || document.querySelector('#results .end')?.textContent").await;
        let after = js(c, "return [location.href, document.querySelector('#q').value, document.querySelector('#range').selectedOptions[0].textContent, document.querySelector('#histogram').dataset.sum]").await;
        assert_eq!(before, after);
        assert_eq!(first, again);
        assert_eq!(after[1], "service:checkout");

        // Back goes to the view before the zoom.
        c.back().await.unwrap();
        until(c, "the view before the zoom", "return !location.search.includes('to=') && document.querySelector('#range')?.value === 'now-24h'").await;

        // "/" focuses the search box.
        js(c, "document.activeElement.blur()").await;
        c.find(Locator::Css("body")).await.unwrap().send_keys("/").await.unwrap();
        assert_eq!(js(c, "return document.activeElement.id").await, "q");
        browser.close().await;
    });
}

#[test]
fn a_request_id_opens_its_waterfall_errors_are_grouped_and_the_live_tail_shows_new_records() {
    let filed = filed_stack("", &records());
    let stack = &filed.stack;
    runtime().block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;

        // A request id in an opened record leads to the stitched request.
        c.goto(&url(stack, "/?q=flow+step")).await.unwrap();
        until(c, "the flow's records", "return document.querySelectorAll('#results .row').length === 5").await;
        c.find(Locator::Css("#results .row .line")).await.unwrap().click().await.unwrap();
        let link = until(c, "the request link", "return document.querySelector('#results .reqlink')?.textContent").await;
        assert_eq!(link, "req-flow");
        c.find(Locator::Css("#results .reqlink")).await.unwrap().click().await.unwrap();
        let spans = until(
            c,
            "the waterfall",
            "const s = [...document.querySelectorAll('#waterfall .span')];
             return s.length ? s.map(e => e.dataset.app + '/' + e.dataset.service) : null",
        )
        .await;
        assert_eq!(spans, json!(["shop/web", "shop/checkout", "billing/api", "ledger/db"]));
        assert_eq!(
            js(c, "return new URLSearchParams(location.search).get('id')").await,
            "req-flow"
        );
        let rows = js(c, "return document.querySelectorAll('#request-records tr.rec').length").await;
        assert_eq!(rows, 5);
        // The bars move right in time order, and the gap before billing shows.
        let lefts = js(c, "return [...document.querySelectorAll('#waterfall .wf-bar')].map(e => parseFloat(e.style.left))").await;
        let lefts: Vec<f64> = serde_json::from_value(lefts).unwrap();
        assert!(lefts.windows(2).all(|w| w[0] < w[1]), "{lefts:?}");
        assert_eq!(js(c, "return document.querySelectorAll('#waterfall .wf-gap').length").await, 3);
        screenshot(c, "request").await;

        // The aggregator's groups, with a sparkline and a link to a search.
        wait_until(Duration::from_secs(30), "the error groups", || {
            api(stack, "/api/v1/errors", None)["total"].as_u64() >= Some(3)
        });
        c.goto(&url(stack, "/?view=errors")).await.unwrap();
        let groups = until(
            c,
            "the error groups",
            "const g = [...document.querySelectorAll('#errors section')];
             return g.length ? g.map(s => s.dataset.app) : null",
        )
        .await;
        assert_eq!(groups, json!(["billing", "ledger", "shop"]));
        until(c, "sparklines", "return document.querySelectorAll('#errors .spark canvas').length >= 3").await;
        screenshot(c, "errors").await;
        c.find(Locator::Css("#errors tr.group a")).await.unwrap().click().await.unwrap();
        let q = until(c, "the group's search", "return document.querySelector('#q')?.value").await;
        assert!(q.as_str().unwrap().contains("payment declined"), "{q}");
        until(c, "the group's records", "return document.querySelectorAll('#results .row').length > 0").await;
        let msgs = js(c, "return [...document.querySelectorAll('#results .row .msg')].map(e => e.textContent)").await;
        assert!(
            msgs.as_array().unwrap().iter().all(|m| m.as_str().unwrap().starts_with("payment declined")),
            "{msgs}"
        );

        // The overview draws each app's hours from the aggregates.
        c.goto(&url(stack, "/?view=overview")).await.unwrap();
        let apps = until(
            c,
            "the volume charts",
            "const a = [...document.querySelectorAll('#volume .chart-app')];
             return a.length && document.querySelector('#firing') ? a.map(e => e.dataset.app) : null",
        )
        .await;
        assert_eq!(apps, json!(["billing", "ledger", "shop"]));

        // Live tail: a record posted after the page opened appears.
        c.goto(&url(stack, "/?tail=1&q=kangaroo")).await.unwrap();
        until(c, "the tail streaming", "return document.querySelector('#stats')?.textContent === 'streaming'").await;
        post(
            stack.http,
            &serde_json::to_vec(&json!({"app":"shop","service":"api","message":"a kangaroo hopped in"})).unwrap(),
        );
        let shown = until(c, "the tailed record", "return document.querySelector('#results .row .msg')?.textContent").await;
        assert_eq!(shown, "a kangaroo hopped in");
        // Paused, new records wait; resumed, they are shown.
        c.find(Locator::Css("#pause")).await.unwrap().click().await.unwrap();
        post(
            stack.http,
            &serde_json::to_vec(&json!({"app":"shop","service":"api","message":"a second kangaroo"})).unwrap(),
        );
        until(c, "the paused count", "return document.querySelector('#pause').textContent.includes('1 new')").await;
        assert_eq!(js(c, "return document.querySelectorAll('#results .row').length").await, 1);
        c.find(Locator::Css("#pause")).await.unwrap().click().await.unwrap();
        until(c, "the resumed tail", "return document.querySelectorAll('#results .row').length === 2").await;
        browser.close().await;
    });
}

#[test]
fn hostile_records_render_as_text_run_nothing_and_keep_the_layout() {
    let data = hostile();
    let filed = filed_stack("", &data);
    let stack = &filed.stack;
    // A service name that is markup never reaches the page: the agent
    // refuses it, naming the field.
    let (status, body) = post_status(
        stack.http,
        &serde_json::to_vec(
            &json!({"service":"<svg onload=window.__pwned=7>","message":"hostile"}),
        )
        .unwrap(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("field \\\"service\\\""), "{body}");
    runtime().block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;
        c.goto(&url(stack, "/?q=hostile")).await.unwrap();
        until(c, "the hostile records", &format!("return document.querySelectorAll('#results .row').length === {}", data.len())).await;
        // Every row one line high, however long or strange its text.
        let heights = js(c, "return [...document.querySelectorAll('#results .row')].map(e => e.offsetHeight)").await;
        assert!(heights.as_array().unwrap().iter().all(|h| h == 23), "{heights}");
        // Open every record, so every field is drawn.
        let n = data.len();
        for i in 0..n {
            let lines = c.find_all(Locator::Css("#results .row:not(.open) .line")).await.unwrap();
            assert_eq!(lines.len(), n - i);
            lines[0].click().await.unwrap();
        }
        until(c, "every record open", &format!("return document.querySelectorAll('#results .row.open').length === {n}")).await;
        let text = js(c, "return document.querySelector('#results').textContent").await;
        let text = text.as_str().unwrap();
        for shown in [
            "<img src=x onerror=\"window.__pwned=1\">",
            "<script>window.__pwned=2</script>",
            "javascript:window.__pwned=4",
            "<img src=x onerror=window.__pwned=5>",
            "<b onmouseover=window.__pwned=6>bold</b>",
            "<iframe src=javascript:window.__pwned=8>",
            "\\x1b[31mred\\x1b[0m",
            "\\x1b]8;;http://evil.example\\x07ansi",
            "\\u202egnp.exe\\u202c",
            "\\x00\\x01\\x7f",
            "שלום עולם",
        ] {
            assert!(text.contains(shown), "{shown:?} not shown as text");
        }
        assert!(!text.contains('\u{1b}'), "a raw escape reached the page");
        assert!(!text.contains('\u{202e}'), "a raw override reached the page");
        // Nothing was made of the markup, nothing ran, no link leaves.
        let made = js(
            c,
            "return document.querySelectorAll('#main img, #main script, #main svg, #main iframe, #main [onerror], #main [onload], #main [onmouseover]').length",
        )
        .await;
        assert_eq!(made, 0);
        assert_eq!(js(c, "return typeof window.__pwned").await, "undefined");
        let hrefs = js(c, "return [...document.querySelectorAll('a')].map(a => a.getAttribute('href'))").await;
        for href in hrefs.as_array().unwrap() {
            let href = href.as_str().unwrap();
            assert!(href.starts_with('/') || href == "#", "a link out of the page: {href}");
        }
        // The hostile request id is a link to this page's request view, and
        // following it runs nothing.
        c.find(Locator::Css("#results .reqlink")).await.unwrap().click().await.unwrap();
        until(c, "the request view", "return document.querySelector('#request h2')?.textContent.includes('javascript:')").await;
        assert_eq!(js(c, "return typeof window.__pwned").await, "undefined");
        c.back().await.unwrap();
        until(c, "the results again", "return document.querySelectorAll('#results .row').length > 0").await;
        // No sideways scrolling, and 500 attributes stay inside their box.
        let wide = js(c, "return document.documentElement.scrollWidth <= innerWidth && document.querySelector('#results').scrollWidth <= document.querySelector('#results').clientWidth").await;
        assert_eq!(wide, true);
        c.find(Locator::Css("#results .row .line")).await.unwrap();
        let many = c.find_all(Locator::Css("#results .row .line")).await.unwrap();
        for line in many {
            if line.text().await.unwrap().contains("many attributes") {
                line.click().await.unwrap();
            }
        }
        let tall = until(
            c,
            "the 500 attributes",
            "const f = [...document.querySelectorAll('#results .fields')].find(e => e.textContent.includes('attr_499'));
             return f ? [f.offsetHeight, innerHeight] : null",
        )
        .await;
        let (h, inner) = (tall[0].as_f64().unwrap(), tall[1].as_f64().unwrap());
        assert!(h <= inner * 0.61, "the attributes box is {h}px in a {inner}px window");
        // Response headers: the policy and nosniff on the page and the API.
        for path in ["/", "/ui/js/main.js", "/api/v1/apps"] {
            let head = head_of(stack.query, path);
            assert!(head.contains("x-content-type-options: nosniff"), "{path}: {head}");
            assert!(head.contains("content-security-policy: default-src 'none'"), "{path}: {head}");
        }
        assert!(head_of(stack.query, "/").contains("script-src 'self'"));
        browser.close().await;
    });
}

/// The response headers of `GET path`, lower-cased.
fn head_of(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
}

#[test]
fn a_token_for_one_app_shows_nothing_of_another_anywhere_on_the_page() {
    let tokens = "[[query.tokens]]\nname = \"shop-team\"\ntoken = \"shop-secret\"\napps = [\"shop\"]\n\
                  [[query.tokens]]\nname = \"ops\"\ntoken = \"ops-secret\"\napps = [\"*\"]\n";
    let mut data = records();
    data.push(
        json!({"app":"billing","service":"api","level":"error","message":"billing only wombat"}),
    );
    let filed = filed_stack(tokens, &data);
    let stack = &filed.stack;
    wait_until(Duration::from_secs(30), "the error groups", || {
        api(stack, "/api/v1/errors", Some("ops-secret"))["total"].as_u64() >= Some(3)
    });
    runtime().block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;
        c.goto(&url(stack, "/")).await.unwrap();
        // The token is asked for, once.
        until(c, "the token dialog", "return document.querySelector('#token-dialog').open").await;
        let input = c.find(Locator::Css("#token-input")).await.unwrap();
        input.send_keys("shop-secret\n").await.unwrap();
        until(c, "results", "return document.querySelectorAll('#results .row').length > 0").await;
        until(c, "the facets", "return document.querySelectorAll('#facet-host li').length > 0").await;
        until(c, "the histogram", "return document.querySelector('#histogram').dataset.sum").await;
        let apps = js(c, "return [...document.querySelectorAll('#facet-app li')].map(e => e.dataset.value)").await;
        assert_eq!(apps, json!(["shop"]));
        let others = ["billing", "ledger", "wombat"];
        let seen = |page: String| {
            let lower = page.to_lowercase();
            others.iter().filter(|o| lower.contains(*o)).map(|o| o.to_string()).collect::<Vec<_>>()
        };
        let page = js(c, "return document.body.innerText + document.body.innerHTML").await;
        assert_eq!(seen(page.as_str().unwrap().to_string()), Vec::<String>::new(), "search");
        // Scrolled to the end: still only the token's app.
        js(c, "const l = document.querySelector('#results'); l.scrollTop = l.scrollHeight").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page = js(c, "return document.body.innerText + document.body.innerHTML").await;
        assert!(seen(page.as_str().unwrap().to_string()).is_empty(), "scrolled");
        for (view, ready) in [
            ("/?view=errors", "return document.querySelectorAll('#errors section').length > 0"),
            ("/?view=overview", "return document.querySelector('#firing') && document.querySelectorAll('#volume .chart-app').length > 0"),
            ("/?view=request&id=req-flow", "return document.querySelectorAll('#waterfall .span').length > 0"),
            ("/?tail=1", "return document.querySelector('#stats')?.textContent === 'streaming'"),
        ] {
            c.goto(&url(stack, view)).await.unwrap();
            until(c, view, ready).await;
            if view == "/?tail=1" {
                post(stack.http, &serde_json::to_vec(&json!([
                    {"app":"billing","service":"api","message":"tailed wombat"},
                    {"app":"shop","service":"api","message":"tailed shop record"},
                ])).unwrap());
                until(c, "the shop record tailed", "return document.querySelector('#results .row .msg')?.textContent === 'tailed shop record'").await;
            }
            let page = js(c, "return document.body.innerText + document.body.innerHTML").await;
            assert_eq!(seen(page.as_str().unwrap().to_string()), Vec::<String>::new(), "{view}");
            assert_eq!(js(c, "return document.querySelector('#token-dialog').open").await, false, "asked again on {view}");
        }
        // The waterfall shows only the token's app's spans.
        c.goto(&url(stack, "/?view=request&id=req-flow")).await.unwrap();
        let spans = until(c, "the spans", "const s = [...document.querySelectorAll('#waterfall .span')]; return s.length ? s.map(e => e.dataset.app) : null").await;
        assert_eq!(spans, json!(["shop", "shop"]));
        // Naming another app in the URL is refused, in view.
        c.goto(&url(stack, "/?app=billing")).await.unwrap();
        let notice = until(c, "the refusal", "return !document.querySelector('#notice').hidden && document.querySelector('#notice').textContent").await;
        assert!(notice.as_str().unwrap().contains("may not read"), "{notice}");
        assert_eq!(js(c, "return document.querySelectorAll('#results .row').length").await, 0);
        browser.close().await;
    });
}

/// The key `key` as the text WebDriver sends for it.
fn key(key: fantoccini::key::Key) -> String {
    char::from(key).to_string()
}

#[test]
fn the_query_box_completes_fields_and_values_and_marks_a_refused_query_where_the_api_does() {
    let filed = filed_stack("", &records());
    let stack = &filed.stack;
    runtime().block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;
        c.goto(&url(stack, "/")).await.unwrap();
        // Attribute names are learned from the records shown, values of
        // the built-in fields from the facets.
        until(c, "results", "return document.querySelectorAll('#results .row').length > 0").await;
        until(c, "the service facet", "return document.querySelectorAll('#facet-service li').length > 0").await;
        let q = c.find(Locator::Css("#q")).await.unwrap();
        let offered = "const l = document.querySelector('.suggest');
                       return !l.hidden && [...l.querySelectorAll('li')].map(e => e.textContent)";
        for (typed, field, value_typed, completed) in [
            ("use", "user:", "u3", "user:u3 "),
            ("serv", "service:", "ch", "service:checkout "),
        ] {
            q.clear().await.unwrap();
            q.send_keys(typed).await.unwrap();
            let names = until(c, "field names offered", offered).await;
            assert!(names.as_array().unwrap().contains(&json!(field)), "{names}");
            q.send_keys(&key(fantoccini::key::Key::Tab)).await.unwrap();
            assert_eq!(js(c, "return document.querySelector('#q').value").await, field);
            // Taking a name offers its values.
            let values = until(c, "values offered", offered).await;
            assert!(values.as_array().unwrap().len() > 1, "{values}");
            q.send_keys(value_typed).await.unwrap();
            until(
                c,
                "one value offered",
                &format!("const l = document.querySelector('.suggest'); return !l.hidden && l.querySelector('li.sel')?.textContent === '{}'", completed.trim_end()),
            )
            .await;
            q.send_keys(&key(fantoccini::key::Key::Tab)).await.unwrap();
            assert_eq!(js(c, "return document.querySelector('#q').value").await, completed);
            assert_eq!(js(c, "return document.activeElement.id").await, "q", "the focus stays");
        }
        // Enter runs the completed query.
        q.send_keys(&key(fantoccini::key::Key::Enter)).await.unwrap();
        until(c, "the completed query's URL", "return location.search.includes('q=service%3Acheckout')").await;
        let narrowed = api(
            stack,
            "/api/v1/logs/search?count=exact&limit=1&start_time=now-24h&query=service%3Acheckout",
            None,
        );
        until(
            c,
            "the completed query's histogram",
            &format!("return document.querySelector('#histogram')?.dataset.sum === '{}'", narrowed["total"]),
        )
        .await;

        // A refused query is marked where the API says, counted in
        // characters, and the results are left alone.
        let refused = "héllo «wörld» (a OR";
        let (status, body) = try_http_get_as(
            stack.query,
            &format!(
                "/api/v1/logs/search?query={}",
                url::form_urlencoded::byte_serialize(refused.as_bytes()).collect::<String>()
            ),
            None,
        )
        .unwrap();
        assert_eq!(status, 400, "{body}");
        let message: Value = serde_json::from_str(&body).unwrap();
        let message = message["error"].as_str().unwrap().to_string();
        let at: usize = message
            .strip_prefix("query: at ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no position in {message:?}"));
        // The view was drawn again for the new query.
        let q = c.find(Locator::Css("#q")).await.unwrap();
        q.clear().await.unwrap();
        q.send_keys(refused).await.unwrap();
        js(c, "document.querySelector('.suggest').hidden = true").await;
        q.send_keys(&key(fantoccini::key::Key::Enter)).await.unwrap();
        let shown = until(
            c,
            "the marked error",
            "const e = document.querySelector('#qerr'); return !e.hidden && e.dataset.position && [e.dataset.position, e.textContent]",
        )
        .await;
        assert_eq!(shown[0], at.to_string(), "{shown}");
        let lines: Vec<&str> = shown[1].as_str().unwrap().lines().collect();
        assert_eq!(lines[0], refused);
        assert_eq!(lines[1], format!("{}^", " ".repeat(at - 1)), "{lines:?}");
        assert!(message.ends_with(lines[2]), "{message:?} vs {lines:?}");
        assert_eq!(js(c, "return document.querySelector('#q').classList.contains('bad')").await, true);
        assert_eq!(js(c, "return document.querySelector('#notice').hidden").await, true, "not an outage");
        // Typing clears the mark (in the box of the view drawn for it).
        let q = c.find(Locator::Css("#q")).await.unwrap();
        q.send_keys(" b)").await.unwrap();
        until(c, "the mark cleared", "return document.querySelector('#qerr').hidden").await;
        browser.close().await;
    });
}

#[test]
fn on_a_phone_nothing_scrolls_sideways_and_a_store_outage_is_said_not_hidden() {
    // Listings never reused, so every search asks the store.
    let mut filed = filed_stack("listing_cache_secs = 0\n", &records());
    let (stack, s3) = (&filed.stack, &mut filed.s3);
    runtime().block_on(async {
        let browser = Browser::start_sized((390, 844)).await;
        let c = &browser.client;
        let narrow = "return document.documentElement.scrollWidth <= innerWidth
                      && (document.querySelector('#q')?.getBoundingClientRect().right ?? 0) <= innerWidth";
        for (view, ready) in [
            ("/", "return document.querySelectorAll('#results .row').length > 0 && document.querySelector('#histogram')?.dataset.sum"),
            ("/?view=request&id=req-flow", "return document.querySelectorAll('#waterfall .span').length === 4"),
            ("/?view=errors", "return document.querySelectorAll('#errors section').length > 0"),
            ("/?view=overview", "return document.querySelectorAll('#volume .chart-app').length > 0"),
        ] {
            c.goto(&url(stack, view)).await.unwrap();
            until(c, view, ready).await;
            assert_eq!(js(c, narrow).await, true, "{view} scrolls sideways on a phone");
        }
        // An opened record wraps inside the screen.
        c.goto(&url(stack, "/?q=flow+step")).await.unwrap();
        until(c, "results", "return document.querySelectorAll('#results .row').length > 0").await;
        c.find(Locator::Css("#results .row .line")).await.unwrap().click().await.unwrap();
        until(c, "the open record", "return document.querySelector('#results .row.open .fields')").await;
        assert_eq!(js(c, narrow).await, true, "an open record scrolls sideways on a phone");
        screenshot(c, "phone").await;

        // The store gone: the page says so, and shows no stale rows.
        s3.stop();
        c.goto(&url(stack, "/?q=order")).await.unwrap();
        let said = until(
            c,
            "the outage notice",
            "const n = document.querySelector('#notice'); return !n.hidden && n.classList.contains('bad') && n.textContent",
        )
        .await;
        assert!(said.as_str().unwrap().contains("store"), "{said}");
        assert_eq!(js(c, "return document.querySelectorAll('#results .row').length").await, 0);
        browser.close().await;
    });
}
