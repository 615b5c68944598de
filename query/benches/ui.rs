//! The web page's benchmark, in headless Chromium over WebDriver, on the
//! search benchmark's data (about 2 GB filed by the release filterer; see
//! `corpus`), served by the release `sluice query`:
//!
//! * first load: from navigation to the first results on screen (and the
//!   browser's own DOMContentLoaded and load), cold and warm;
//! * from pressing Enter in the query box to the results drawn, for the
//!   needle and for a query whose first page is 100 records, each beside
//!   the API's own answer time for the same request (the limit: the page
//!   cannot be faster than the answer it draws);
//! * the longest frame while scrolling through 10,000 results (fetched by
//!   endless scrolling), beside the 16.7 ms of a 60 Hz frame.
//!
//! `cargo bench -p sluice-query --bench ui` (`BENCH_BYTES` sets the data
//! size). Needs `chromium` and `chromium-driver`.

mod corpus;

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;
use sluice_testing::{Browser, spawn_bench_role, try_http_get, wait_until};

use corpus::{NEEDLE, call, enc, row};

/// Enter-to-drawn runs per query after the first.
const RUNS: usize = 5;
/// Rows to scroll through.
const SCROLL_ROWS: u64 = 10_000;

async fn js(c: &fantoccini::Client, script: &str) -> Value {
    js_with(c, script, vec![]).await
}

async fn js_with(c: &fantoccini::Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args).await.unwrap()
}

/// Waits until `script` returns something other than null or false.
async fn until(c: &fantoccini::Client, what: &str, script: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let v = js(c, script).await;
        if !matches!(v, Value::Null | Value::Bool(false)) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Loads the page and returns (first results on screen, DOMContentLoaded,
/// load), ms from navigation start.
async fn first_load(c: &fantoccini::Client, url: &str) -> (f64, f64, f64) {
    c.goto(url).await.unwrap();
    let v = until(
        c,
        "the first results",
        "const m = performance.getEntriesByName('sluice:results')[0];
         const n = performance.getEntriesByType('navigation')[0];
         return m && n.loadEventEnd > 0 ? [m.startTime, n.domContentLoadedEventEnd, n.loadEventEnd] : null",
    )
    .await;
    let f = |i: usize| v[i].as_f64().unwrap();
    (f(0), f(1), f(2))
}

/// Types `query` and presses Enter; ms from the key to the results on
/// screen, and how many rows were drawn.
async fn enter_to_drawn(c: &fantoccini::Client, query: &str) -> (f64, u64) {
    js_with(
        c,
        "performance.clearMarks('sluice:results');
         performance.clearMarks('sluice:histogram');
         window.__enter = null;
         if (!window.__listening) {
           window.__listening = true;
           document.addEventListener('keydown', e => { if (e.key === 'Enter') window.__enter = performance.now(); }, true);
         }
         const q = document.querySelector('#q'); q.value = arguments[0]; q.focus();",
        vec![Value::String(query.to_string())],
    )
    .await;
    // Only Enter is typed: typed text would open the completion list, whose
    // Enter takes a suggestion instead of searching.
    let q = c.find(Locator::Css("#q")).await.unwrap();
    q.send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    let v = until(
        c,
        "the results",
        "const m = performance.getEntriesByName('sluice:results').find(m => window.__enter !== null && m.startTime > window.__enter);
         return m ? [m.startTime - window.__enter, Number(document.querySelector('#results').dataset.count)] : null",
    )
    .await;
    // Let the histogram of this search finish, so the next run does not
    // share the machine with it.
    until(
        c,
        "the histogram",
        "return performance.getEntriesByName('sluice:histogram').length > 0",
    )
    .await;
    (v[0].as_f64().unwrap(), v[1].as_u64().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let corpus = corpus::prepare();
    let query = spawn_bench_role(&corpus.sluice, &["query"], &corpus.config);
    let port = corpus.query_port;
    wait_until(Duration::from_secs(60), "the query service", || {
        try_http_get(port, "/ready").is_ok_and(|(s, _)| s == 200)
    });
    let base = format!("http://127.0.0.1:{port}");
    let needle = format!("request_id:{NEEDLE}");
    let hundred = "level:error";
    corpus.runtime.block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;
        c.update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(Duration::from_secs(600)),
            Some(Duration::from_secs(300)),
            Some(Duration::from_secs(0)),
        ))
        .await
        .unwrap();

        // First load, cold (a fresh query service) and warm.
        let (cold, dcl, load) = first_load(c, &format!("{base}/")).await;
        until(c, "the facets", "return document.querySelector('#histogram').dataset.sum !== undefined").await;
        let (warm, _, _) = first_load(c, &format!("{base}/?reload=1")).await;
        until(c, "the facets", "return document.querySelector('#histogram').dataset.sum !== undefined").await;
        row(
            "first load to results on screen",
            format!("{cold:.0} ms cold, {warm:.0} ms warm (DOMContentLoaded {dcl:.0} ms, load {load:.0} ms)"),
            "(reported)",
            true,
        );

        // Enter to results drawn, beside the API's answer for the same
        // request.
        for (what, q) in [("needle", needle.as_str()), ("a page of 100", hundred)] {
            let (first, rows) = enter_to_drawn(c, q).await;
            let mut again = Vec::new();
            for _ in 0..RUNS {
                again.push(enter_to_drawn(c, q).await.0);
            }
            let again = median(again);
            let path = format!("/api/v1/logs/search?query={}&start_time=now-24h&limit=100", enc(q));
            let api: Vec<f64> = (0..RUNS).map(|_| call(port, &path).0 * 1e3).collect();
            let api = median(api);
            row(
                &format!("Enter to {what} drawn ({rows} rows)"),
                format!(
                    "{first:.0} ms first, {again:.0} ms again; the API alone {api:.0} ms ({:.0} %)",
                    api / again * 100.0
                ),
                "<= 500 ms",
                first <= 500.0 && again <= 500.0,
            );
        }

        // Scrolling through 10,000 results, pages fetched as it goes.
        c.goto(&format!("{base}/")).await.unwrap();
        until(c, "results", "return Number(document.querySelector('#results')?.dataset.count) > 0").await;
        until(c, "the facets", "return document.querySelector('#histogram').dataset.sum !== undefined").await;
        let v = c
            .execute_async(
                &format!(
                    "const done = arguments[arguments.length - 1];
                     const list = document.querySelector('#results');
                     const frames = [];
                     let last = 0;
                     const started = performance.now();
                     function step(now) {{
                       if (last) frames.push(now - last);
                       last = now;
                       const count = Number(list.dataset.count);
                       if (count >= {SCROLL_ROWS} && list.scrollTop + list.clientHeight >= list.scrollHeight - 2) {{
                         done([frames, count, performance.now() - started]);
                         return;
                       }}
                       list.scrollTop += 500;
                       requestAnimationFrame(step);
                     }}
                     requestAnimationFrame(step);"
                ),
                vec![],
            )
            .await
            .unwrap();
        let frames: Vec<f64> = serde_json::from_value(v[0].clone()).unwrap();
        let count = v[1].as_u64().unwrap();
        let secs = v[2].as_f64().unwrap() / 1e3;
        let longest = frames.iter().copied().fold(0.0, f64::max);
        let over = frames.iter().filter(|f| **f > 50.0).count();
        let p99 = {
            let mut s = frames.clone();
            s.sort_by(f64::total_cmp);
            s[(s.len() * 99 / 100).min(s.len() - 1)]
        };
        row(
            &format!("scrolling through {count} results ({} frames in {secs:.1} s)", frames.len()),
            format!(
                "longest frame {longest:.1} ms, p99 {p99:.1} ms, {over} over 50 ms; a 60 Hz frame is 16.7 ms ({:.1}×)",
                longest / 16.7
            ),
            "< 50 ms",
            longest < 50.0,
        );
        browser.close().await;
    });
    drop(query);
}
