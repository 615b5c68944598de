//! Per-record cost of the error aggregator and of the alerter, against the
//! cost of decoding their input.
//!
//! The same prepared wire batches (100 ERROR records of one app each,
//! MessagePack as agents publish them, each with its subject) go through
//! three paths, each timed over the whole set and repeated 3 times (best
//! and median printed):
//!
//! (a) **borrowed decode**: [`decode_views`] of every batch and nothing
//!     else — the decode both services use, so the limit; (a') the owned
//!     decode, [`decode_batch`], printed for comparison only;
//! (b) **aggregator, error groups** (its consumers of `logs.*.error` and
//!     `logs.*.fatal`): what the service does per message,
//!     [`decode_views_checked`] (the borrowed decode, then every record
//!     checked against the subject), then for every record [`Grouper::add`]
//!     (template, fingerprint, delta), with [`Grouper::take`] as often as
//!     the service writes at these rates (every
//!     [`sluice_aggregator::MAX_HELD`] batches);
//!     (b') the same decode and [`template_into`] alone, printed to show
//!     how much of (b) the template itself takes;
//! (c) **alerter with 100 rules**: [`decode_views_checked`], then
//!     [`Engine::observe`] of every record, with [`Engine::due`] and
//!     [`Engine::apply`] of each due notification every 1,000 batches;
//! (d) **aggregator, hourly counts** (its consumer of `logs.>`, which sees
//!     every record of every level): [`decode_views_checked`], then
//!     [`Tally::add`] of every record, with [`Tally::take`] as in (b).
//!
//! Both services get their records only by decoding stream messages, so
//! (a) is the most either can do on one core: a consumer can never process
//! records faster than it decodes them. The figure that matters is how much
//! of that limit the per-record work leaves: (b)/(a), (c)/(a) and (d)/(a),
//! with a target of at least 0.50 each (the verdict uses the best of the 3 runs of
//! each path, the least disturbed by the rest of the machine; the ratio of
//! medians is printed beside it). KV writes, acknowledgements and delivery
//! are not measured: they happen once per group per second, not per record.
//!
//! Rules wait 0 s before their first notice (`group_wait_secs = 0`) so the
//! `due`/`apply` path is exercised within the run.
//!
//! `cargo bench -p sluice-aggregator --bench aggregate`
//! (`SLUICE_BENCH_RECORDS` sets the size; default 1,000,000).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice_aggregator::counts::Tally;
use sluice_aggregator::fingerprint::template_into;
use sluice_aggregator::groups::Grouper;
use sluice_alerter::rules::{Engine, Rule};
use sluice_core::codec::{decode_batch, decode_views, encode_batch, subject};
use sluice_core::config::Config;
use sluice_core::record::{IdGen, now_nanos};
use sluice_core::subject::decode_views_checked;
use sluice_core::{Level, Record};
use sluice_testing::bench_size;

const BATCH: usize = 100;
const APPS: usize = 20;
const SERVICES: [&str; 5] = ["api", "checkout", "payments", "worker", "auth"];
const HOSTS: usize = 10;
const TEMPLATES: usize = 30;
/// Batches between two writes of the grouper and of the counts. The
/// service writes every second (counts: every 2 s) or once it holds
/// [`sluice_aggregator::MAX_HELD`] messages, whichever comes first; at the
/// rates measured here (10,000+ batches a second) that is the latter.
const WRITE_EVERY: usize = sluice_aggregator::MAX_HELD;
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

/// A small deterministic generator (splitmix64), so every run sees the
/// same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.below(256),
            self.below(256),
            self.range(1, 254)
        )
    }

    fn hex(&mut self) -> String {
        format!("{:016x}", self.next())
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// An error message from template `t`, with its variable parts drawn
/// from `g`.
fn message(t: usize, g: &mut Rng) -> String {
    let ms = g.range(5, 30_000);
    let n1 = g.range(1, 99_999);
    let n2 = g.range(1, 99_999);
    let n3 = g.range(1, 9_999);
    let a = g.range(1, 9);
    match t {
        0 => format!(
            "payment {n1} declined for order ord_{n2} user {n3} from {} after {ms}ms: card issuer returned code 05 (do not honor), retry not attempted",
            g.ip()
        ),
        1 => format!(
            "upstream request to inventory-svc timeout after {ms}ms (attempt {a}/3) for GET /api/v2/items/{n1} from {}:{n2}, circuit breaker still closed",
            g.ip()
        ),
        2 => format!(
            "Connection reset by peer while reading response from {}:5432 (pool checkout-db, conn {n1}, in use {a}/64) after {ms}ms; query aborted",
            g.ip()
        ),
        3 => format!(
            "connection refused: dial tcp {}:6379 for redis cache shard {a} (session store), falling back to database lookup for user {n1}",
            g.ip()
        ),
        4 => format!(
            "deadlock detected on table orders: transaction {} waited {ms}ms for lock held by process {n1}; rolling back order ord_{n2}",
            g.hex()
        ),
        5 => format!(
            "failed to render invoice pdf for account acct_{n1}: template engine returned error E{n3} after {ms}ms, job {} moved to dead letter queue",
            g.uuid()
        ),
        6 => format!(
            "HTTP 503 from payments-gateway.internal:8443 on POST /v1/charges (request {}) after {ms}ms; upstream said: service temporarily unavailable",
            g.hex()
        ),
        7 => format!(
            "TLS handshake with {}:443 failed: certificate verify failed (unable to get local issuer certificate) for partner api host edi-{n3}.example.net",
            g.ip()
        ),
        8 => format!(
            "disk full on /var/lib/app/uploads: wrote {n1} of {n2} bytes for upload {} from user {n3}; free space {a}MB below threshold",
            g.uuid()
        ),
        9 => format!(
            "user {n1} not found in directory during SSO callback from {}, state token {}, tenant tenant_{n3}; redirecting to login page",
            g.ip(),
            g.hex()
        ),
        10 => format!(
            "retrying publish to topic order-events exhausted after {a} attempts ({ms}ms total): broker {}:9092 reported NOT_LEADER_FOR_PARTITION {n3}",
            g.ip()
        ),
        11 => format!(
            "OOM: worker {a} killed while processing batch {n1} of report {}; rss {n2}MB exceeded limit 2048MB, batch will be retried by scheduler",
            g.uuid()
        ),
        12 => format!(
            "null pointer dereference in CartService.applyDiscount for cart cart_{n1} with coupon SPRING{a}; stack trace written to /var/log/app/crash-{n2}.log"
        ),
        13 => format!(
            "failed to parse webhook payload from {}: unexpected token at byte {n1} (content-length {n2}), signature sha {} kept for replay",
            g.ip(),
            g.hex()
        ),
        14 => format!(
            "rate limit exceeded for api key key_{n1} ({n3} req/min over quota 600) on GET /api/v1/search from {}; responding 429 to client",
            g.ip()
        ),
        15 => format!(
            "email delivery to user{n1}@example.com failed: smtp server mx{a}.mail.example.net answered 451 4.7.1 greylisted after {ms}ms, queued message {}",
            g.hex()
        ),
        16 => format!(
            "stock reservation conflict for sku SKU-{n1} in warehouse wh-{a}: requested {n3}, available {a}; order ord_{n2} put on hold for manual review"
        ),
        17 => format!(
            "cannot acquire database connection from pool primary within {ms}ms ({n3} waiting, max 50) for handler /api/orders/{n1} on {}",
            g.ip()
        ),
        18 => format!(
            "shipping label request to carrier dhl failed with status 500 after {ms}ms: internal error reference {} for shipment shp_{n1} to zone {a}",
            g.hex()
        ),
        19 => format!(
            "token refresh failed for client mobile-ios version 4.{a}.{n3}: refresh token expired {n1}s ago, user {n2} signed out from device {}",
            g.hex()
        ),
        20 => format!(
            "DNS lookup of search-cluster-{a}.internal failed: i/o timeout after {ms}ms via resolver {}:53, using cached address for {n3}s",
            g.ip()
        ),
        21 => format!(
            "scheduled job nightly-settlement run {n1} aborted at step {a}/7: balance mismatch of {n3} cents between ledger and bank statement {n2}"
        ),
        22 => format!(
            "grpc call recommendations.Rank/Score failed with DEADLINE_EXCEEDED after {ms}ms (deadline 200ms) for user {n1}, serving fallback list"
        ),
        23 => format!(
            "kafka consumer group billing-consumers lag {n1} messages on partition {a} exceeds limit; offset commit failed for offset {n2} at {}",
            g.ip()
        ),
        24 => format!(
            "image resize of upload {} failed: unsupported color profile in file of {n1} bytes from user {n2}; original kept in bucket media-{a}",
            g.uuid()
        ),
        25 => format!(
            "session {} rejected: csrf token mismatch on POST /account/settings from {} (user agent Mozilla/5.0, user {n1}, attempt {a})",
            g.hex(),
            g.ip()
        ),
        26 => format!(
            "elasticsearch bulk index of {n1} documents into logs-{n3} failed: {n2} items rejected with es_rejected_execution_exception, queue size 200"
        ),
        27 => format!(
            "feature flag service unreachable at http://flags.internal:{n3}/v2/flags after {ms}ms; evaluating checkout-redesign with default off for user {n1}"
        ),
        28 => format!(
            "refund {n1} for order ord_{n2} rejected by processor: amount {n3}.{:02} EUR exceeds captured amount, idempotency key {}",
            g.below(100),
            g.hex()
        ),
        _ => format!(
            "websocket connection from {}:{n3} closed abnormally with code 1006 after {ms}s; {a} pending notifications requeued for user {n1}",
            g.ip()
        ),
    }
}

/// A stream message: its subject and payload.
struct Message {
    subject: String,
    payload: Vec<u8>,
}

/// The wire batches, and message sizes (min, mean, max) for the report.
fn prepare(records: usize) -> (Vec<Message>, (usize, f64, usize)) {
    let mut g = Rng(0x5eed);
    let mut ids = IdGen::new();
    let now = now_nanos();
    let (mut min, mut sum, mut max) = (usize::MAX, 0usize, 0usize);
    let mut batches = Vec::with_capacity(records.div_ceil(BATCH));
    let mut made = 0;
    while made < records {
        let app = format!("app{}", batches.len() % APPS);
        let n = BATCH.min(records - made);
        let batch: Vec<Record> = (0..n)
            .map(|k| {
                // 10 µs apart, the newest now: 1M records span 10 s.
                let ts = now - ((records - made - k) as i64) * 10_000;
                let service = SERVICES[g.below(SERVICES.len() as u64) as usize];
                let msg = message(g.below(TEMPLATES as u64) as usize, &mut g);
                min = min.min(msg.len());
                max = max.max(msg.len());
                sum += msg.len();
                Record {
                    id: ids.next_id(),
                    ts,
                    app: app.clone(),
                    service: service.to_string(),
                    host: format!("web-{}", g.below(HOSTS as u64)),
                    level: Level::Error,
                    msg,
                    attrs: BTreeMap::from([(
                        "request_id".to_string(),
                        format!("req-{:012x}", g.next() >> 16),
                    )]),
                    source: format!("file:/var/log/{app}/{service}.log"),
                }
            })
            .collect();
        made += n;
        batches.push(Message {
            subject: subject(&app, Level::Error),
            payload: encode_batch(&batch),
        });
    }
    (batches, (min, sum as f64 / records.max(1) as f64, max))
}

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

/// Best and median of the runs of one path.
#[derive(Default)]
struct Timings(Vec<Duration>);

impl Timings {
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    fn best(&self) -> Duration {
        self.sorted()[0]
    }

    fn median(&self) -> Duration {
        let v = self.sorted();
        v[v.len() / 2]
    }
}

fn rate(records: usize, d: Duration) -> f64 {
    records as f64 / d.as_secs_f64()
}

/// Times `work` on a fresh state from `setup` (set-up and drop untimed).
fn timed<S>(timings: &mut Timings, setup: impl FnOnce() -> S, work: impl FnOnce(&mut S)) -> S {
    let mut state = setup();
    let started = Instant::now();
    work(&mut state);
    timings.0.push(started.elapsed());
    state
}

/// (a'): owned decode only, for comparison.
fn decode_owned_only(batches: &[Message]) -> usize {
    let mut n = 0;
    for m in batches {
        let records = decode_batch(black_box(&m.payload)).expect("a prepared batch decodes");
        n += black_box(&records).len();
    }
    n
}

/// (a): borrowed decode only, the limit.
fn decode_views_only(batches: &[Message]) -> usize {
    let mut n = 0;
    for m in batches {
        let records = decode_views(black_box(&m.payload)).expect("a prepared batch decodes");
        n += black_box(&records).len();
    }
    n
}

/// What both services do first with every message.
fn checked(m: &Message) -> Vec<sluice_core::codec::RecordView<'_>> {
    decode_views_checked(black_box(&m.subject), black_box(&m.payload))
        .expect("a prepared batch decodes and matches its subject")
}

/// (b): what the aggregator's error consumers do per message. Returns the
/// deltas taken.
fn aggregate(batches: &[Message], grouper: &mut Grouper) -> usize {
    let mut deltas = 0;
    for (i, m) in batches.iter().enumerate() {
        let records = checked(m);
        for r in &records {
            grouper.add(r);
        }
        if (i + 1) % WRITE_EVERY == 0 {
            deltas += black_box(grouper.take()).len();
        }
    }
    deltas + black_box(grouper.take()).len()
}

/// (b'): the decode and the template of every message, nothing else.
fn templates_only(batches: &[Message]) -> usize {
    let mut out = String::with_capacity(1024);
    let mut bytes = 0;
    for m in batches {
        for r in &checked(m) {
            template_into(r.msg, &mut out);
            bytes += black_box(&out).len();
        }
    }
    bytes
}

/// (d): what the aggregator's counts consumer does per message. Returns
/// the count cells taken.
fn count(batches: &[Message], tally: &mut Tally) -> usize {
    let mut cells = 0;
    for (i, m) in batches.iter().enumerate() {
        let records = checked(m);
        for r in &records {
            tally.add(r.app, r.service, r.level, r.ts);
        }
        if (i + 1) % WRITE_EVERY == 0 {
            cells += black_box(tally.take()).len();
        }
    }
    cells + black_box(tally.take()).len()
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

fn verdict(ratio: f64) -> &'static str {
    if ratio >= TARGET { "PASS" } else { "BELOW" }
}

fn main() {
    let records = bench_size("SLUICE_BENCH_RECORDS", 1_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let started = Instant::now();
    let (batches, (msg_min, msg_mean, msg_max)) = prepare(records);
    let wire: usize = batches.iter().map(|m| m.payload.len()).sum();
    let (toml, mix) = rules_toml();
    let config = Config::parse(&toml).expect("the generated rules parse");
    let rules: Vec<Rule> = config.alerter.rules.iter().map(Rule::from_config).collect();
    assert_eq!(rules.len(), RULES);

    println!("sluice aggregator/alerter per-record cost vs decode (single thread)");
    println!(
        "  machine: {cores} cores; data: {records} ERROR records in {} batches of {BATCH} \
         ({APPS} apps x {} services, {HOSTS} hosts, {TEMPLATES} templates)",
        batches.len(),
        SERVICES.len()
    );
    println!(
        "  msg bytes min/mean/max {msg_min}/{msg_mean:.0}/{msg_max}; wire {:.1} MB, {:.0} B/record; \
         prepared in {:.1}s",
        wire as f64 / 1e6,
        wire as f64 / records.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
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

    let (mut ta, mut tb, mut tc) = (Timings::default(), Timings::default(), Timings::default());
    let (mut tv, mut td, mut tt) = (Timings::default(), Timings::default(), Timings::default());
    let (mut deltas, mut cells, mut notices, mut matches, mut groups) = (0, 0, 0, 0, 0);
    // Interleaved, so a disturbance of the machine spreads over all paths.
    for _ in 0..RUNS {
        let n = timed(&mut ta, || 0, |n| *n = decode_views_only(&batches));
        assert_eq!(n, records);
        let n = timed(&mut tv, || 0, |n| *n = decode_owned_only(&batches));
        assert_eq!(n, records);
        deltas = timed(
            &mut tb,
            || (Grouper::new(5), 0),
            |(grouper, out)| *out = aggregate(&batches, grouper),
        )
        .1;
        timed(&mut tt, || 0, |n| *n = templates_only(&batches));
        cells = timed(
            &mut td,
            || (Tally::default(), 0),
            |(tally, out)| *out = count(&batches, tally),
        )
        .1;
        let (engine, n) = timed(
            &mut tc,
            || {
                let engine = Engine::new(rules.clone(), 10_000, "bench", now_nanos());
                (engine, 0)
            },
            |(engine, n)| *n = alert(&batches, engine),
        );
        notices = n;
        matches = engine.stats.matches;
        groups = engine.group_count();
    }

    println!(
        "  per run: (b) {deltas} deltas taken; \
         (c) {matches} rule matches ({:.2}/record), {groups} groups, {notices} notices due; \
         (d) {cells} count cells",
        matches as f64 / records.max(1) as f64
    );
    println!();
    println!(
        "  {:<34} {:>14} {:>14}",
        "path", "best rec/s", "median rec/s"
    );
    for (name, t) in [
        ("(a) borrowed decode (the limit)", &ta),
        ("(a') owned decode (comparison)", &tv),
        ("(b) aggregator: error groups", &tb),
        ("(b') decode + template only", &tt),
        ("(c) alerter: 100 rules", &tc),
        ("(d) aggregator: hourly counts", &td),
    ] {
        println!(
            "  {name:<34} {:>14.0} {:>14.0}",
            rate(records, t.best()),
            rate(records, t.median())
        );
    }
    println!();
    for (name, t) in [("(b)/(a)", &tb), ("(c)/(a)", &tc), ("(d)/(a)", &td)] {
        let best = ta.best().as_secs_f64() / t.best().as_secs_f64();
        let median = ta.median().as_secs_f64() / t.median().as_secs_f64();
        println!(
            "  {name} = {best:.2} (medians {median:.2}); target >= {TARGET:.2}: {}",
            verdict(best)
        );
    }
}
