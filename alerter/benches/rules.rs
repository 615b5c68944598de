//! Per-record cost of the alerter, against the cost of decoding its input.
//!
//! The prepared wire batches of `sluice_testing::workload` (100 ERROR
//! records of one app each, with their subjects) go through two paths,
//! each timed over the whole set and repeated 3 times (best and median
//! printed):
//!
//! (a) **borrowed decode**: [`decode_views`](sluice_core::codec::decode_views)
//!     of every batch and nothing else — the decode the alerter uses, so
//!     the limit;
//! (c) **100 rules**: [`decode_views_checked`](sluice_core::subject::decode_views_checked)
//!     (the decode, then every record checked against the subject), then
//!     [`Engine::observe`] of every record, with [`Engine::due`] and
//!     [`Engine::apply`] of each due notification every 1,000 batches.
//!
//! The rules: 40 `every`, 40 `threshold`, 20 `absence`, half with a regex,
//! a third naming a service, a quarter grouped by host; they wait 0 s
//! before their first notice (`group_wait_secs = 0`) so the `due`/`apply`
//! path is exercised within the run. The figure that matters is (c)/(a),
//! with a target of at least 0.50. Delivery is not measured: it happens
//! once per group per interval, not per record.
//!
//! `cargo bench -p sluice-alerter --bench rules`
//! (`SLUICE_BENCH_RECORDS` sets the size; default 1,000,000).

use std::fmt::Write as _;
use std::hint::black_box;

use sluice_alerter::rules::{Engine, Rule};
use sluice_core::config::Config;
use sluice_core::record::now_nanos;
use sluice_testing::bench_size;
use sluice_testing::workload::{
    APPS, Message, SERVICES, Timings, Workload, checked, decode_views_only, report, timed,
};

/// Batches between two `due` checks of the alerter (every second in the
/// service, over 10,000 batches at these rates: checking more often is
/// the costlier case).
const DUE_EVERY: usize = 1_000;
const RUNS: usize = 3;
const TARGET: f64 = 0.50;
const RULES: usize = 100;
/// Regexes of the rules that have one; most match one or two templates.
const PATTERNS: [&str; 10] = [
    r"payment .* declined",
    r"timeout after \d+ms",
    r"(?i)connection (reset|refused)",
    r"deadlock detected",
    r"HTTP 5\d\d",
    r"certificate (expired|verify failed)",
    r"(?i)\boom\b|out of memory",
    r"user \d+ not found",
    r"retrying .* exhausted",
    r"DEADLINE_EXCEEDED|i/o timeout",
];

/// What the rule mix is, for the report.
#[derive(Default)]
struct Mix {
    every: usize,
    threshold: usize,
    absence: usize,
    patterns: usize,
    services: usize,
    by_service: usize,
    by_host: usize,
    warn: usize,
}

/// The TOML of the 100 rules, 5 per app, and its mix.
fn rules_toml() -> (String, Mix) {
    let mut mix = Mix::default();
    let mut t = String::from("[[receivers]]\nname = \"ops\"\nkind = \"log\"\n");
    for k in 0..RULES {
        let app = k / (RULES / APPS);
        let _ = write!(
            t,
            "\n[[alerter.rules]]\nname = \"rule-{k}\"\napp = \"app{app}\"\nreceiver = \"ops\"\n"
        );
        let _ = writeln!(t, "window_secs = 60\ngroup_wait_secs = 0");
        match k % 5 {
            0 | 1 => {
                mix.every += 1;
                let _ = writeln!(t, "kind = \"every\"");
            }
            2 | 3 => {
                mix.threshold += 1;
                let _ = writeln!(t, "kind = \"threshold\"\nthreshold = 100");
            }
            _ => {
                mix.absence += 1;
                let _ = writeln!(t, "kind = \"absence\"");
            }
        }
        if k % 2 == 0 {
            mix.patterns += 1;
            // A TOML literal string: the regex as written.
            let _ = writeln!(t, "pattern = '{}'", PATTERNS[(k / 2) % PATTERNS.len()]);
        }
        if k % 3 == 0 {
            mix.services += 1;
            let _ = writeln!(t, "service = \"{}\"", SERVICES[(k / 3) % SERVICES.len()]);
        }
        match k % 4 {
            1 if k % 3 != 0 => {
                mix.by_service += 1;
                let _ = writeln!(t, "group_by = [\"service\"]");
            }
            3 => {
                mix.by_host += 1;
                let _ = writeln!(t, "group_by = [\"host\"]");
            }
            _ => {}
        }
        if k % 7 == 0 {
            mix.warn += 1;
            let _ = writeln!(t, "min_level = \"WARN\"");
        } else {
            let _ = writeln!(t, "min_level = \"ERROR\"");
        }
    }
    (t, mix)
}

/// (c): what the alerter does per message. Returns the notifications due.
fn alert(batches: &[Message], engine: &mut Engine) -> usize {
    let mut notices = 0;
    for (i, m) in batches.iter().enumerate() {
        let records = checked(m);
        // One clock reading per message, the stream sequence as seq.
        let now = now_nanos();
        let seq = i as u64 + 1;
        for r in &records {
            black_box(engine.observe(r, seq, now));
        }
        if (i + 1) % DUE_EVERY == 0 {
            for d in engine.due(now) {
                engine.apply(&d.state, now);
                notices += 1;
            }
        }
    }
    notices
}

fn main() {
    let records = bench_size("SLUICE_BENCH_RECORDS", 1_000_000);
    let work = Workload::errors(records);
    let batches = &work.batches;
    let (toml, mix) = rules_toml();
    let config = Config::parse(&toml).expect("the generated rules parse");
    let rules: Vec<Rule> = config.alerter.rules.iter().map(Rule::from_config).collect();
    assert_eq!(rules.len(), RULES);

    println!("sluice alerter per-record cost vs decode (single thread)");
    println!("{}", work.describe());
    println!(
        "  rules: {} ({} every, {} threshold >= 100/60s, {} absence 60s); {} with a pattern \
         ({} distinct regexes), {} with a service, group_by service {} / host {}, \
         min_level WARN {} / ERROR {}",
        rules.len(),
        mix.every,
        mix.threshold,
        mix.absence,
        mix.patterns,
        PATTERNS.len(),
        mix.services,
        mix.by_service,
        mix.by_host,
        mix.warn,
        rules.len() - mix.warn
    );

    let (mut ta, mut tc) = (Timings::default(), Timings::default());
    let (mut notices, mut matches, mut groups) = (0, 0, 0);
    // Interleaved, so a disturbance of the machine spreads over both paths.
    for _ in 0..RUNS {
        let n = timed(&mut ta, || 0, |n| *n = decode_views_only(batches));
        assert_eq!(n, records);
        let (engine, n) = timed(
            &mut tc,
            || {
                let engine = Engine::new(rules.clone(), 10_000, "bench", now_nanos());
                (engine, 0)
            },
            |(engine, n)| *n = alert(batches, engine),
        );
        notices = n;
        matches = engine.stats.matches;
        groups = engine.group_count();
    }
    println!(
        "  per run: {matches} rule matches ({:.2}/record), {groups} groups, {notices} notices due",
        matches as f64 / records.max(1) as f64
    );
    report(
        records,
        &ta,
        &[
            ("(a) borrowed decode (the limit)", &ta),
            ("(c) alerter: 100 rules", &tc),
        ],
        &[("(c)/(a)", &tc)],
        TARGET,
    );
}
