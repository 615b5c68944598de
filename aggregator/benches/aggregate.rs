//! Per-record cost of the error aggregator, against the cost of decoding
//! its input.
//!
//! The same prepared wire batches (`sluice_testing::workload`: 100 ERROR
//! records of one app each, MessagePack as agents publish them, each with
//! its subject) go through these paths, each timed over the whole set and
//! repeated 3 times (best and median printed):
//!
//! (a) **borrowed decode**: [`decode_views`](sluice_core::codec::decode_views)
//!     of every batch and nothing else — the decode the aggregator uses, so
//!     the limit; (a') the owned decode, printed for comparison only;
//! (b) **error groups** (the consumers of `logs.*.error` and
//!     `logs.*.fatal`): what the service does per message,
//!     [`decode_views_checked`](sluice_core::subject::decode_views_checked)
//!     (the borrowed decode, then every record checked against the
//!     subject), then for every record [`Grouper::add`] (template,
//!     fingerprint, delta), with [`Grouper::take`] as often as the service
//!     writes at these rates (every [`sluice_aggregator::MAX_HELD`]
//!     batches); (b') the same decode and [`template_into`] alone, printed
//!     to show how much of (b) the template itself takes;
//! (d) **hourly counts** (the consumer of `logs.>`, which sees every record
//!     of every level): the checked decode, then [`Tally::add`] of every
//!     record, with [`Tally::take`] as in (b).
//!
//! The aggregator gets its records only by decoding stream messages, so (a)
//! is the most it can do on one core. The figures that matter are (b)/(a)
//! and (d)/(a), with a target of at least 0.50 each. KV writes and
//! acknowledgements are not measured: they happen once per group per
//! second, not per record. The alerter's counterpart is
//! `cargo bench -p sluice-alerter --bench rules`.
//!
//! `cargo bench -p sluice-aggregator --bench aggregate`
//! (`SLUICE_BENCH_RECORDS` sets the size; default 1,000,000).

use std::hint::black_box;

use sluice_aggregator::counts::Tally;
use sluice_aggregator::fingerprint::template_into;
use sluice_aggregator::groups::Grouper;
use sluice_testing::bench_size;
use sluice_testing::workload::{
    Message, Timings, Workload, checked, decode_owned_only, decode_views_only, report, timed,
};

/// Batches between two writes of the grouper and of the counts. The
/// service writes every second (counts: every 2 s) or once it holds
/// [`sluice_aggregator::MAX_HELD`] messages, whichever comes first; at the
/// rates measured here (10,000+ batches a second) that is the latter.
const WRITE_EVERY: usize = sluice_aggregator::MAX_HELD;
const RUNS: usize = 3;
const TARGET: f64 = 0.50;

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

fn main() {
    let records = bench_size("SLUICE_BENCH_RECORDS", 1_000_000);
    let work = Workload::errors(records);
    let batches = &work.batches;
    println!("sluice aggregator per-record cost vs decode (single thread)");
    println!("{}", work.describe());

    let (mut ta, mut tv, mut tb) = (Timings::default(), Timings::default(), Timings::default());
    let (mut tt, mut td) = (Timings::default(), Timings::default());
    let (mut deltas, mut cells) = (0, 0);
    // Interleaved, so a disturbance of the machine spreads over all paths.
    for _ in 0..RUNS {
        let n = timed(&mut ta, || 0, |n| *n = decode_views_only(batches));
        assert_eq!(n, records);
        let n = timed(&mut tv, || 0, |n| *n = decode_owned_only(batches));
        assert_eq!(n, records);
        deltas = timed(
            &mut tb,
            || (Grouper::new(5), 0),
            |(grouper, out)| *out = aggregate(batches, grouper),
        )
        .1;
        timed(&mut tt, || 0, |n| *n = templates_only(batches));
        cells = timed(
            &mut td,
            || (Tally::default(), 0),
            |(tally, out)| *out = count(batches, tally),
        )
        .1;
    }
    println!("  per run: (b) {deltas} deltas taken; (d) {cells} count cells");
    report(
        records,
        &ta,
        &[
            ("(a) borrowed decode (the limit)", &ta),
            ("(a') owned decode (comparison)", &tv),
            ("(b) aggregator: error groups", &tb),
            ("(b') decode + template only", &tt),
            ("(d) aggregator: hourly counts", &td),
        ],
        &[("(b)/(a)", &tb), ("(d)/(a)", &td)],
        TARGET,
    );
}
