//! Merges continuation lines (stack traces, tracebacks, wrapped output) into
//! the event they belong to.
//!
//! A [`MultilineRule`] names the pattern of a line that *starts* an event. The
//! [`Merger`] keeps at most one pending event:
//!
//! * a line matching the start pattern completes the pending event (which is
//!   returned) and begins a new one;
//! * any other line is appended to the pending event, joined with `\n`; with
//!   nothing pending it begins an event itself, since the first line read from
//!   a file may well be the middle of a trace;
//! * [`Merger::poll`] emits the pending event once no line arrived for the
//!   rule's timeout, so the last event of a quiet file is not held forever;
//! * [`Merger::flush`] emits it unconditionally (file closed, shutdown).
//!
//! Merged text is capped at the rule's `max_bytes`, cut at a character
//! boundary; once cut, later lines of the event are still counted (so the
//! event records its full would-be length in `truncated_from`) but their text
//! is dropped. Lines already truncated or lossily decoded by the reader mark
//! the whole event the same way.
//!
//! Byte offsets travel with every line so the caller can persist a read
//! position that never skips data: [`Merger::safe_offset`] is where the
//! pending event starts, and every byte before it belongs to events already
//! emitted.
//!
//! The merger is pure: it does no I/O and takes the current time as an
//! argument.

use regex::Regex;

/// How to group lines into events.
#[derive(Debug, Clone)]
pub struct MultilineRule {
    /// A line matching this pattern starts a new event, e.g.
    /// `^\d{4}-\d{2}-\d{2}` for logs whose entries begin with a date.
    pub start: Regex,
    /// A pending event is emitted by [`Merger::poll`] once this many
    /// nanoseconds passed without a new line.
    pub timeout_nanos: i64,
    /// Upper bound on an event's text, in bytes.
    pub max_bytes: usize,
}

/// One line as read from a file, without its terminator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// The line's text (possibly already truncated by the reader).
    pub text: String,
    /// File offset of the line's first byte.
    pub start_offset: u64,
    /// File offset just past the line, including its terminator.
    pub end_offset: u64,
    /// The line's original length in bytes, if the reader truncated it.
    pub truncated_from: Option<usize>,
    /// Whether the line was not valid UTF-8 and was decoded lossily.
    pub lossy: bool,
}

/// One complete event: a line plus its continuation lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The lines' text joined with `\n`, at most `max_bytes` long.
    pub text: String,
    /// File offset of the first line's first byte.
    pub start_offset: u64,
    /// The `end_offset` of the event's last line.
    pub end_offset: u64,
    /// The full length the merged text would have had (counting every line
    /// at its original length), if anything was cut: by the cap here or by
    /// the reader.
    pub truncated_from: Option<usize>,
    /// Whether any of the lines was decoded lossily.
    pub lossy: bool,
}

/// Groups lines into events according to a [`MultilineRule`].
#[derive(Debug)]
pub struct Merger {
    rule: MultilineRule,
    pending: Option<Pending>,
    last_push_nanos: i64,
}

/// The event being assembled.
#[derive(Debug)]
struct Pending {
    text: String,
    start_offset: u64,
    end_offset: u64,
    /// Length the text would have without any truncation.
    full_len: usize,
    /// Something was cut, here or by the reader.
    truncated: bool,
    /// The cap was reached: further lines are counted but not kept.
    capped: bool,
    lossy: bool,
}

/// The original length of a line, trusting the reader's record over the text.
fn original_len(line: &Line) -> usize {
    line.truncated_from
        .map_or(line.text.len(), |len| len.max(line.text.len()))
}

/// The largest char boundary of `text` not beyond `max`.
fn floor_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

impl Pending {
    fn begin(line: Line, max_bytes: usize) -> Self {
        let full_len = original_len(&line);
        let mut text = line.text;
        let capped = text.len() > max_bytes;
        if capped {
            text.truncate(floor_boundary(&text, max_bytes));
        }
        Pending {
            text,
            start_offset: line.start_offset,
            end_offset: line.end_offset,
            full_len,
            truncated: capped || line.truncated_from.is_some(),
            capped,
            lossy: line.lossy,
        }
    }

    fn append(&mut self, line: Line, max_bytes: usize) {
        self.full_len = self
            .full_len
            .saturating_add(1)
            .saturating_add(original_len(&line));
        self.end_offset = line.end_offset;
        self.lossy |= line.lossy;
        self.truncated |= line.truncated_from.is_some();
        if self.capped {
            return;
        }
        let room = max_bytes.saturating_sub(self.text.len());
        if line.text.len() < room {
            self.text.push('\n');
            self.text.push_str(&line.text);
            return;
        }
        self.capped = true;
        self.truncated = true;
        // Keep what fits, but not a lone separator with nothing after it.
        if room >= 2 {
            let cut = floor_boundary(&line.text, room - 1);
            if let Some(head) = line.text.get(..cut).filter(|h| !h.is_empty()) {
                self.text.push('\n');
                self.text.push_str(head);
            }
        }
    }

    fn finish(self) -> Event {
        Event {
            text: self.text,
            start_offset: self.start_offset,
            end_offset: self.end_offset,
            truncated_from: self.truncated.then_some(self.full_len),
            lossy: self.lossy,
        }
    }
}

impl Merger {
    /// A merger with nothing pending.
    pub fn new(rule: MultilineRule) -> Merger {
        Merger {
            rule,
            pending: None,
            last_push_nanos: 0,
        }
    }

    /// The rule this merger applies.
    pub fn rule(&self) -> &MultilineRule {
        &self.rule
    }

    /// Feeds one line read at `now_nanos`. Returns the previous event when
    /// `line` starts a new one; otherwise the line joins the pending event.
    pub fn push(&mut self, line: Line, now_nanos: i64) -> Option<Event> {
        self.last_push_nanos = now_nanos;
        let max_bytes = self.rule.max_bytes;
        if !self.rule.start.is_match(&line.text)
            && let Some(pending) = self.pending.as_mut()
        {
            pending.append(line, max_bytes);
            return None;
        }
        let done = self.pending.take().map(Pending::finish);
        self.pending = Some(Pending::begin(line, max_bytes));
        done
    }

    /// Emits the pending event if no line was pushed for the rule's timeout
    /// (`now_nanos - time of last push >= timeout_nanos`).
    pub fn poll(&mut self, now_nanos: i64) -> Option<Event> {
        let idle = now_nanos.saturating_sub(self.last_push_nanos);
        if self.pending.is_some() && idle >= self.rule.timeout_nanos {
            self.flush()
        } else {
            None
        }
    }

    /// Emits whatever is pending, e.g. because the file was closed or the
    /// agent is shutting down.
    pub fn flush(&mut self) -> Option<Event> {
        self.pending.take().map(Pending::finish)
    }

    /// The file offset at which the pending event starts, or `None` when
    /// nothing is pending. Every byte before it belongs to emitted events, so
    /// a caller persisting its read position must not record one beyond it
    /// while an event is pending.
    pub fn safe_offset(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.start_offset)
    }

    /// Whether an event is being assembled.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When the last line was pushed, in nanoseconds since the epoch (zero
    /// before the first push); lets a caller schedule its next
    /// [`Merger::poll`].
    pub fn last_push_nanos(&self) -> i64 {
        self.last_push_nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: i64 = sluice_core::time::NS_PER_SEC;

    fn rule(pattern: &str, max_bytes: usize) -> MultilineRule {
        MultilineRule {
            start: Regex::new(pattern).unwrap(),
            timeout_nanos: 5 * SEC,
            max_bytes,
        }
    }

    /// Turns text lines into `Line`s with offsets as if read from one file
    /// with `\n` terminators.
    fn lines(texts: &[&str]) -> Vec<Line> {
        let mut offset = 0;
        texts
            .iter()
            .map(|t| {
                let start = offset;
                offset += t.len() as u64 + 1;
                Line {
                    text: t.to_string(),
                    start_offset: start,
                    end_offset: offset,
                    ..Line::default()
                }
            })
            .collect()
    }

    /// Pushes everything, then flushes; returns all events.
    fn run(merger: &mut Merger, input: Vec<Line>) -> Vec<Event> {
        let mut out: Vec<Event> = input
            .into_iter()
            .filter_map(|l| merger.push(l, 0))
            .collect();
        out.extend(merger.flush());
        out
    }

    #[test]
    fn java_stack_trace_is_merged() {
        let texts = [
            "2026-11-22 10:00:00,001 ERROR [main] c.e.Checkout - payment failed",
            "java.lang.IllegalStateException: declined",
            "\tat com.example.Checkout.pay(Checkout.java:42)",
            "\tat com.example.Main.main(Main.java:7)",
            "Caused by: java.io.IOException: timeout",
            "\t... 2 more",
            "2026-11-22 10:00:01,000 INFO [main] c.e.Checkout - retrying",
        ];
        let mut merger = Merger::new(rule(r"^\d{4}-\d{2}-\d{2}", 1 << 20));
        let input = lines(&texts);
        let events = run(&mut merger, input.clone());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].text, texts[..6].join("\n"));
        assert_eq!(events[0].start_offset, 0);
        assert_eq!(events[0].end_offset, input[5].end_offset);
        assert_eq!(events[0].truncated_from, None);
        assert_eq!(events[1].text, texts[6]);
        assert_eq!(events[1].start_offset, input[6].start_offset);
    }

    #[test]
    fn python_traceback_is_merged() {
        // Entries start at column 0 with a level; the traceback is indented
        // apart from its header and final line, which the rule must exclude.
        let texts = [
            "ERROR:root:request failed",
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in <module>",
            "    main()",
            "ZeroDivisionError: division by zero",
            "INFO:root:next request",
        ];
        let mut merger = Merger::new(rule(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):", 1 << 20));
        let events = run(&mut merger, lines(&texts));
        let got: Vec<&str> = events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(got, [texts[..5].join("\n"), texts[5].to_string()]);
    }

    #[test]
    fn leading_continuation_lines_form_an_event() {
        let texts = [
            "\tat a.b(C.java:1)",
            "\tat d.e(F.java:2)",
            "2026-11-22 start",
        ];
        let mut merger = Merger::new(rule(r"^\d{4}-", 1 << 20));
        let events = run(&mut merger, lines(&texts));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].text, "\tat a.b(C.java:1)\n\tat d.e(F.java:2)");
    }

    #[test]
    fn timeout_emits_pending_event() {
        let mut merger = Merger::new(rule(r"^\d", 1 << 20));
        let input = lines(&["1 start", " more"]);
        assert_eq!(merger.poll(100 * SEC), None, "nothing pending");
        assert_eq!(merger.push(input[0].clone(), 10 * SEC), None);
        assert_eq!(merger.push(input[1].clone(), 12 * SEC), None);
        // The timeout runs from the last push, not the first.
        assert_eq!(merger.poll(16 * SEC), None);
        assert!(merger.has_pending());
        let event = merger.poll(17 * SEC).unwrap();
        assert_eq!(event.text, "1 start\n more");
        assert!(!merger.has_pending());
        assert_eq!(merger.poll(100 * SEC), None);
        assert_eq!(merger.flush(), None);
    }

    #[test]
    fn flush_emits_pending_event() {
        let mut merger = Merger::new(rule(r"^\d", 1 << 20));
        assert_eq!(merger.flush(), None);
        let input = lines(&["1 only"]);
        assert_eq!(merger.push(input[0].clone(), 0), None);
        let event = merger.flush().unwrap();
        assert_eq!(event.text, "1 only");
        assert_eq!((event.start_offset, event.end_offset), (0, 7));
        assert_eq!(merger.flush(), None);
    }

    #[test]
    fn max_bytes_truncates_and_flags() {
        let mut merger = Merger::new(rule(r"^\d", 12));
        let texts = ["1 abcdef", "  ghijkl", "  mn", "2 next"];
        let events = run(&mut merger, lines(&texts));
        // "1 abcdef" (8) + "\n" + 3 bytes of the second line reach the cap.
        assert_eq!(events[0].text, "1 abcdef\n  g");
        assert_eq!(events[0].truncated_from, Some(8 + 1 + 8 + 1 + 4));
        assert_eq!(events[0].end_offset, 8 + 1 + 8 + 1 + 4 + 1);
        assert_eq!(events[1].text, "2 next");
        assert_eq!(events[1].truncated_from, None);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut merger = Merger::new(rule(r"^\d", 5));
        let events = run(&mut merger, lines(&["1 é", " ééé"]));
        // "1 é" is 4 bytes; one byte of room left is not enough for "\n" plus
        // anything, so the continuation is dropped.
        assert_eq!(events[0].text, "1 é");
        assert_eq!(events[0].truncated_from, Some(4 + 1 + 7));

        let mut merger = Merger::new(rule(r"^\d", 3));
        let events = run(&mut merger, lines(&["1 ééé"]));
        assert_eq!(events[0].text, "1 ");
        assert_eq!(events[0].truncated_from, Some(8));

        let mut merger = Merger::new(rule(r"^\d", 0));
        let events = run(&mut merger, lines(&["1 x", "y"]));
        assert_eq!(events[0].text, "");
        assert_eq!(events[0].truncated_from, Some(5));
    }

    #[test]
    fn reader_flags_carry_over() {
        let mut merger = Merger::new(rule(r"^\d", 1 << 20));
        let mut input = lines(&["1 head", " cut", " bad", "2 clean"]);
        input[1].truncated_from = Some(1000);
        input[2].lossy = true;
        let events = run(&mut merger, input);
        assert_eq!(events[0].text, "1 head\n cut\n bad");
        assert_eq!(events[0].truncated_from, Some(6 + 1 + 1000 + 1 + 4));
        assert!(events[0].lossy);
        assert_eq!(events[1].truncated_from, None);
        assert!(!events[1].lossy);
    }

    #[test]
    fn safe_offset_tracks_the_pending_event() {
        let mut merger = Merger::new(rule(r"^\d", 1 << 20));
        let input = lines(&["1 a", " b", "2 c", " d"]);
        assert_eq!(merger.safe_offset(), None);
        merger.push(input[0].clone(), 0);
        assert_eq!(merger.safe_offset(), Some(0));
        merger.push(input[1].clone(), 0);
        assert_eq!(merger.safe_offset(), Some(0));
        let first = merger.push(input[2].clone(), 0).unwrap();
        assert_eq!(first.end_offset, input[2].start_offset);
        assert_eq!(merger.safe_offset(), Some(input[2].start_offset));
        merger.push(input[3].clone(), 0);
        assert_eq!(merger.safe_offset(), Some(input[2].start_offset));
        let second = merger.flush().unwrap();
        assert_eq!(second.end_offset, input[3].end_offset);
        assert_eq!(merger.safe_offset(), None);
    }

    /// One generated line: whether it starts an event, and its body.
    fn line_strategy() -> impl Strategy<Value = (bool, String)> {
        (any::<bool>(), "[a-z é]{0,8}")
    }

    proptest! {
        #[test]
        fn events_reassemble_the_input(
            spec in prop::collection::vec(line_strategy(), 0..60),
            polls in prop::collection::vec(0i64..8, 0..60),
        ) {
            let texts: Vec<String> = spec
                .iter()
                .map(|(start, body)| if *start { format!("S{body}") } else { body.clone() })
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let input = lines(&refs);
            let mut merger = Merger::new(rule("^S", 1 << 20));
            let mut events = Vec::new();
            let mut now = 0;
            for (i, line) in input.iter().enumerate() {
                events.extend(merger.push(line.clone(), now));
                prop_assert!(merger.safe_offset().is_some());
                // Advance time by a few seconds; sometimes past the timeout.
                now += polls.get(i).copied().unwrap_or(0) * SEC;
                events.extend(merger.poll(now));
                if let (Some(safe), Some(last)) = (merger.safe_offset(), events.last()) {
                    prop_assert_eq!(safe, last.end_offset);
                }
            }
            events.extend(merger.flush());
            prop_assert!(!merger.has_pending());

            let rejoined: Vec<&str> = events.iter().flat_map(|e| e.text.split('\n')).collect();
            prop_assert_eq!(rejoined, refs);
            // Events tile the file: each starts where the previous ended.
            let mut expected_start = 0;
            for e in &events {
                prop_assert_eq!(e.start_offset, expected_start);
                prop_assert_eq!(e.truncated_from, None);
                expected_start = e.end_offset;
            }
            prop_assert_eq!(expected_start, input.last().map_or(0, |l| l.end_offset));
        }

        #[test]
        fn capped_events_stay_within_max_bytes(
            spec in prop::collection::vec(line_strategy(), 1..40),
            max_bytes in 0usize..40,
        ) {
            let texts: Vec<String> = spec
                .iter()
                .map(|(start, body)| if *start { format!("S{body}") } else { body.clone() })
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut unlimited = Merger::new(rule("^S", 1 << 20));
            let full = run(&mut unlimited, lines(&refs));
            let mut capped = Merger::new(rule("^S", max_bytes));
            let cut = run(&mut capped, lines(&refs));
            prop_assert_eq!(full.len(), cut.len());
            for (f, c) in full.iter().zip(&cut) {
                prop_assert!(c.text.len() <= max_bytes);
                prop_assert!(f.text.starts_with(&c.text));
                let want = (f.text.len() > max_bytes).then_some(f.text.len());
                prop_assert_eq!(c.truncated_from, want);
                prop_assert_eq!((c.start_offset, c.end_offset), (f.start_offset, f.end_offset));
            }
        }
    }
}
