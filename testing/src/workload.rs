//! The workload of the aggregator's and the alerter's benchmarks: ERROR
//! records with realistic messages (30 templates of database, payment,
//! network, TLS and application errors, their numbers, ids, IPs, UUIDs and
//! paths drawn from a deterministic generator), in 100-record wire batches
//! of one app each with their subjects, as agents publish them; plus the
//! timing, the decode limit both services share, and the report.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice_core::codec::{decode_batch, decode_views, encode_batch, subject};
use sluice_core::record::{IdGen, now_nanos};
use sluice_core::subject::decode_views_checked;
use sluice_core::{Level, Record};

/// Records per batch.
pub const BATCH: usize = 100;
/// Apps the batches cycle through.
pub const APPS: usize = 20;
/// Services of the records.
pub const SERVICES: [&str; 5] = ["api", "checkout", "payments", "worker", "auth"];
/// Hosts of the records.
pub const HOSTS: usize = 10;
/// Message templates.
pub const TEMPLATES: usize = 30;

/// The prepared batches of one benchmark run.
pub struct Workload {
    /// The stream messages.
    pub batches: Vec<Message>,
    /// Records in them.
    pub records: usize,
    /// Message bytes: least, mean, most.
    pub msg_bytes: (usize, f64, usize),
    /// Seconds it took to prepare.
    pub prepare_secs: f64,
}

impl Workload {
    /// `records` ERROR records, the same on every run.
    pub fn errors(records: usize) -> Workload {
        let started = Instant::now();
        let (batches, msg_bytes) = prepare(records);
        Workload {
            batches,
            records,
            msg_bytes,
            prepare_secs: started.elapsed().as_secs_f64(),
        }
    }

    /// Two lines describing the machine and the data, for the report.
    pub fn describe(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wire: usize = self.batches.iter().map(|m| m.payload.len()).sum();
        let (min, mean, max) = self.msg_bytes;
        format!(
            "  machine: {cores} cores; data: {} ERROR records in {} batches of {BATCH} \
             ({APPS} apps x {} services, {HOSTS} hosts, {TEMPLATES} templates)\n  \
             msg bytes min/mean/max {min}/{mean:.0}/{max}; wire {:.1} MB, {:.0} B/record; \
             prepared in {:.1}s",
            self.records,
            self.batches.len(),
            SERVICES.len(),
            wire as f64 / 1e6,
            wire as f64 / self.records.max(1) as f64,
            self.prepare_secs
        )
    }
}

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
pub struct Message {
    /// `logs.<app>.error`.
    pub subject: String,
    /// The MessagePack batch.
    pub payload: Vec<u8>,
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

/// Best and median of the runs of one path.
#[derive(Default)]
pub struct Timings(Vec<Duration>);

impl Timings {
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    /// The fastest run.
    pub fn best(&self) -> Duration {
        self.sorted()[0]
    }

    /// The median run.
    pub fn median(&self) -> Duration {
        let v = self.sorted();
        v[v.len() / 2]
    }
}

/// Records per second.
pub fn rate(records: usize, d: Duration) -> f64 {
    records as f64 / d.as_secs_f64()
}

/// Times `work` on a fresh state from `setup` (set-up and drop untimed).
pub fn timed<S>(timings: &mut Timings, setup: impl FnOnce() -> S, work: impl FnOnce(&mut S)) -> S {
    let mut state = setup();
    let started = Instant::now();
    work(&mut state);
    timings.0.push(started.elapsed());
    state
}

/// (a'): owned decode only, for comparison.
pub fn decode_owned_only(batches: &[Message]) -> usize {
    let mut n = 0;
    for m in batches {
        let records = decode_batch(black_box(&m.payload)).expect("a prepared batch decodes");
        n += black_box(&records).len();
    }
    n
}

/// (a): borrowed decode only, the limit.
pub fn decode_views_only(batches: &[Message]) -> usize {
    let mut n = 0;
    for m in batches {
        let records = decode_views(black_box(&m.payload)).expect("a prepared batch decodes");
        n += black_box(&records).len();
    }
    n
}

/// What both services do first with every message.
pub fn checked(m: &Message) -> Vec<sluice_core::codec::RecordView<'_>> {
    decode_views_checked(black_box(&m.subject), black_box(&m.payload))
        .expect("a prepared batch decodes and matches its subject")
}

/// Prints the table of `paths` (name, timings) and, for each of `judged`,
/// its ratio to `limit` against `target` (the verdict uses the best run,
/// the least disturbed by the rest of the machine; the ratio of medians is
/// printed beside it).
pub fn report(
    records: usize,
    limit: &Timings,
    paths: &[(&str, &Timings)],
    judged: &[(&str, &Timings)],
    target: f64,
) {
    println!();
    println!(
        "  {:<34} {:>14} {:>14}",
        "path", "best rec/s", "median rec/s"
    );
    for (name, t) in paths {
        println!(
            "  {name:<34} {:>14.0} {:>14.0}",
            rate(records, t.best()),
            rate(records, t.median())
        );
    }
    println!();
    for (name, t) in judged {
        let best = limit.best().as_secs_f64() / t.best().as_secs_f64();
        let median = limit.median().as_secs_f64() / t.median().as_secs_f64();
        let verdict = if best >= target { "PASS" } else { "BELOW" };
        println!("  {name} = {best:.2} (medians {median:.2}); target >= {target:.2}: {verdict}");
    }
}
