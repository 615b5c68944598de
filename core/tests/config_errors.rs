//! Every section's errors, as a process sees them: a file with one unknown
//! key or one bad value, loaded with `Config::load`, fails with a message
//! naming the file, the line and column, the section and the key.

use sluice_core::config::Config;

/// A file and the start of the first line of its error, after the file
/// name: `line L, column C: <section> <key>: <what>`.
struct Case {
    text: &'static str,
    error: &'static str,
}

const fn case(text: &'static str, error: &'static str) -> Case {
    Case { text, error }
}

/// A valid receiver and rule that the alerting cases build on (lines 1–8).
const ALERTING: &str = "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n\
    [[alerter.rules]]\nname = \"r1\"\napp = \"shop\"\nkind = \"every\"\nreceiver = \"ops\"\n";

const CASES: &[Case] = &[
    // [nats]
    case(
        "[nats]\nurl = \"nats://127.0.0.1:4222\"\nstreams = \"LOGS\"\n",
        "line 3, column 1: [nats]: unknown field `streams`",
    ),
    case(
        "[nats]\nurl = \"nats://127.0.0.1:4222\"\nreplicas = \"three\"\n",
        "line 3, column 12: [nats] replicas: invalid type: string \"three\", expected usize",
    ),
    // [agent]
    case(
        "[agent]\nid = \"web-1\"\nspool_size = 5\n",
        "line 3, column 1: [agent]: unknown field `spool_size`",
    ),
    case(
        "[nats]\nreplicas = 1\n[agent]\nid = \"web 1\"\n",
        "line 4, column 6: [agent] id: \"web 1\" must be non-empty, without whitespace or ':'",
    ),
    case(
        "[agent]\nid = \"web:1\"\n",
        "line 2, column 6: [agent] id: \"web:1\" must be non-empty",
    ),
    case(
        "[agent]\nid = \"\"\n",
        "line 2, column 6: [agent] id: \"\" must be non-empty",
    ),
    // [[agent.files]]
    case(
        "[[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"a\"\n\
         [[agent.files]]\ninclude = [\"/b/*.log\"]\npath = \"/b\"\napp = \"b\"\n",
        "line 6, column 1: [[agent.files]] #2: unknown field `path`",
    ),
    case(
        "[[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"a\"\n\
         [[agent.files]]\ninclude = [\"/b/*.log\"]\napp = \"b\"\nmax_line_bytes = 0\n",
        "line 7, column 18: [[agent.files]] #2 max_line_bytes: 0 must be between 1 and 524288",
    ),
    case(
        "[[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"a\"\nmax_line_bytes = 524289\n",
        "line 4, column 18: [[agent.files]] #1 max_line_bytes: 524289 must be between 1 and 524288",
    ),
    case(
        "[[agent.files]]\napp = \"a\"\ninclude = []\n",
        "line 3, column 11: [[agent.files]] #1 include: lists no pattern",
    ),
    case(
        "[[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"A b\"\n",
        "line 3, column 7: [[agent.files]] #1 app: name \"A b\" must match",
    ),
    case(
        "[[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"a\"\n\
         [agent.files.multiline]\nstart_pattern = \"^(\"\n",
        "line 5, column 17: [[agent.files]] #1 multiline.start_pattern: invalid regex \"^(\"",
    ),
    // [agent.spool]
    case(
        "[agent.spool]\nmax_bytes = 1073741824\nsegment_size = 1\n",
        "line 3, column 1: [agent.spool]: unknown field `segment_size`",
    ),
    case(
        "[agent.spool]\nsegment_bytes = 1048576\nmax_bytes = 1048576\n",
        "line 3, column 13: [agent.spool] max_bytes: 1048576 is under the minimum of 4194304",
    ),
    // [agent.publish]
    case(
        "[agent.publish]\nmax_batch_size = 1\n",
        "line 2, column 1: [agent.publish]: unknown field `max_batch_size`",
    ),
    case(
        "[agent]\nid = \"web-1\"\n[agent.publish]\nmax_in_flight = 64\nmax_batch_bytes = 262145\n",
        "line 5, column 19: [agent.publish] max_batch_bytes: 262145 is over the limit of 262144",
    ),
    case(
        "[agent]\npublish = { max_in_flight = 64, max_batch_bytes = 300000 }\n",
        "line 2, column 51: [agent.publish] max_batch_bytes: 300000 is over the limit of 262144",
    ),
    // [agent.limits]
    case(
        "[agent.limits]\nworker_threads = 2\nthreads = 2\n",
        "line 3, column 1: [agent.limits]: unknown field `threads`",
    ),
    case(
        "[agent.limits]\nworker_threads = 2\nnice = \"low\"\n",
        "line 3, column 8: [agent.limits] nice: invalid type: string \"low\", expected i32",
    ),
    // [agent.admin]
    case(
        "[agent.admin]\nlisten = \"127.0.0.1:9881\"\nport = 9881\n",
        "line 3, column 1: [agent.admin]: unknown field `port`",
    ),
    case(
        "[agent.admin]\nstall_secs = 30\nlisten = \"localhost\"\n",
        "line 3, column 10: [agent.admin] listen: invalid socket address syntax",
    ),
    // [agent.syslog]
    case(
        "[agent.syslog]\nudp = \"127.0.0.1:5514\"\nlisten = \"127.0.0.1:5514\"\n",
        "line 3, column 1: [agent.syslog]: unknown field `listen`",
    ),
    case(
        "[agent.syslog]\nudp = \"127.0.0.1:5514\"\ntimezone = \"Mars/Olympus\"\n",
        "line 3, column 12: [agent.syslog] timezone: invalid time zone \"Mars/Olympus\"",
    ),
    case(
        "[agent.syslog]\nudp = \"127.0.0.1:5514\"\nmax_message_bytes = 0\n",
        "line 3, column 21: [agent.syslog] max_message_bytes: 0 must be between 1 and 524288",
    ),
    case(
        "[agent.syslog]\nudp = \"127.0.0.1:5514\"\ntls = \"127.0.0.1:6514\"\ntls_cert_file = \"/c.pem\"\n",
        "line 3, column 7: [agent.syslog] tls: a tls listener needs tls_cert_file and tls_key_file",
    ),
    case(
        "[agent.syslog.app_map]\nnginx = \"Web!\"\n",
        "line 2, column 9: [agent.syslog.app_map] nginx: name \"Web!\" must match",
    ),
    // [agent.http]
    case(
        "[agent.http]\nlisten = \"127.0.0.1:9880\"\nmax_body = 1\n",
        "line 3, column 1: [agent.http]: unknown field `max_body`",
    ),
    case(
        "[agent.http]\nlisten = \"127.0.0.1:9880\"\nmax_metadata_bytes = 262145\n",
        "line 3, column 22: [agent.http] max_metadata_bytes: 262145 is over the limit of 262144",
    ),
    case(
        "[agent.http]\nmax_message_bytes = 0\n",
        "line 2, column 21: [agent.http] max_message_bytes: 0 must be between 1 and 524288",
    ),
    case(
        "[agent.http]\nmax_records = 0\n",
        "line 2, column 15: [agent.http] max_records: 0 is under the minimum of 1",
    ),
    case(
        "[agent.http]\nlisten = \"127.0.0.1:9880\"\ntoken = \"\"\n",
        "line 3, column 9: [agent.http] token: must not be empty",
    ),
    case(
        "[agent.http]\nmax_in_flight_bytes = 10\nmax_body_bytes = 100\n",
        "line 2, column 23: [agent.http] max_in_flight_bytes: max_in_flight_bytes = 10 must be at least max_body_bytes = 100",
    ),
    case(
        "[agent.http]\nlisten = \"127.0.0.1:9880\"\nmax_body_bytes = 100000000\n",
        "line 3, column 18: [agent.http] max_body_bytes: max_in_flight_bytes = 67108864 must be at least max_body_bytes = 100000000",
    ),
    // [store]
    case(
        "[store]\nurl = \"s3://logs/sluice\"\nbucket = \"logs\"\n",
        "line 3, column 1: [store]: unknown field `bucket`",
    ),
    case(
        "[store]\nurl = \"s3://logs/sluice\"\nallow_http = \"yes\"\n",
        "line 3, column 14: [store] allow_http: invalid type: string \"yes\", expected a boolean",
    ),
    // [filterer]
    case(
        "[filterer]\nid = \"f1\"\nmax_blob = 1\n",
        "line 3, column 1: [filterer]: unknown field `max_blob`",
    ),
    case(
        "[filterer]\nid = \"f1\"\nmax_blob_bytes = 1023\n",
        "line 3, column 18: [filterer] max_blob_bytes: 1023 is under the minimum of 1024",
    ),
    case(
        "[filterer]\nid = \"f1\"\nflush_interval_secs = 0\n",
        "line 3, column 23: [filterer] flush_interval_secs: 0 is under the minimum of 1",
    ),
    case(
        "[filterer.admin]\nlisten = \"127.0.0.1:9882\"\nstall = 1\n",
        "line 3, column 1: [filterer.admin]: unknown field `stall`",
    ),
    // [[receivers]]
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n[[receivers]]\nname = \"hooks\"\nkind = \"log\"\nsecrets = \"k\"\n",
        "line 7, column 1: receiver \"hooks\": unknown field `secrets`",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"log\"\nrate_per_minute = 0\n",
        "line 4, column 19: receiver \"ops\" rate_per_minute: 0 is under the minimum of 1",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"ftp://example.com/\"\n",
        "line 4, column 7: receiver \"ops\" url: \"ftp://example.com/\" must be http or https",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"pager\"\n",
        "line 3, column 8: receiver \"ops\" kind: unknown variant `pager`",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n[[receivers]]\nname = \"hooks\"\nkind = \"slack\"\n",
        "line 6, column 8: receiver \"hooks\" kind: url is required for slack and webhook receivers",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n[[receivers]]\nname = \"ops\"\nkind = \"log\"\n",
        "line 5, column 8: receiver \"ops\" name: \"ops\" is defined twice",
    ),
    case(
        "[[receivers]]\nname = \"\"\nkind = \"log\"\n",
        "line 2, column 8: [[receivers]] #1 name: must not be empty",
    ),
    // [aggregator] and its owners
    case(
        "[aggregator]\nmax_groups = 10\nspike = 2.0\n",
        "line 3, column 1: [aggregator]: unknown field `spike`",
    ),
    case(
        "[aggregator]\nmax_groups = 10\nspike_factor = 1.0\n",
        "line 3, column 16: [aggregator] spike_factor: 1 must be greater than 1",
    ),
    case(
        "[aggregator]\nmax_groups = 0\n",
        "line 2, column 14: [aggregator] max_groups: 0 is under the minimum of 1",
    ),
    case(
        "[aggregator]\nadmin = { listen = \"127.0.0.1:9883\", stall = 1 }\n",
        "line 2, column 38: [aggregator.admin]: unknown field `stall`",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n[aggregator]\ndefault_receiver = \"pager\"\n",
        "line 5, column 20: [aggregator] default_receiver: unknown receiver \"pager\"",
    ),
    case(
        "[[receivers]]\nname = \"ops\"\nkind = \"log\"\n\
         [[aggregator.owners]]\napp = \"shop\"\nreceiver = \"ops\"\n\
         [[aggregator.owners]]\napp = \"billing\"\nreceiver = \"ghost\"\n",
        "line 9, column 12: [[aggregator.owners]] #2 receiver: unknown receiver \"ghost\"",
    ),
    case(
        "[[aggregator.owners]]\napp = \"shop\"\nreceiver = \"ops\"\nteam = \"x\"\n",
        "line 4, column 1: [[aggregator.owners]] #1: unknown field `team`",
    ),
    // [alerter]
    case(
        "[alerter]\nmax_groups = 10\nmax_lag = 1\n",
        "line 3, column 1: [alerter]: unknown field `max_lag`",
    ),
    case(
        "[alerter]\nmax_groups = 10\nretry_max_secs = 0\n",
        "line 3, column 18: [alerter] retry_max_secs: 0 is under the minimum of 1",
    ),
    case(
        "[alerter]\nmax_groups = 0\n",
        "line 2, column 14: [alerter] max_groups: 0 is under the minimum of 1",
    ),
    case(
        "[alerter]\nmax_groups = 10\nsystem_receiver = \"ops\"\n",
        "line 3, column 19: [alerter] system_receiver: unknown receiver \"ops\"",
    ),
];

/// Cases built on [`ALERTING`]: `(appended text, error)`.
const RULE_CASES: &[(&str, &str)] = &[
    // The first rule, which ends on line 8.
    (
        "severity = \"high\"\n",
        "line 9, column 1: rule \"r1\": unknown field `severity`",
    ),
    (
        "pattern = \"payment (\"\n",
        "line 9, column 11: rule \"r1\" pattern: invalid regex \"payment (\"",
    ),
    (
        "window_secs = 0\n",
        "line 9, column 15: rule \"r1\" window_secs: 0 is under the minimum of 1",
    ),
    (
        "repeat_interval_secs = 0\n",
        "line 9, column 24: rule \"r1\" repeat_interval_secs: 0 is under the minimum of 1",
    ),
    (
        "group_by = [\"host\", \"host\"]\n",
        "line 9, column 12: rule \"r1\" group_by: empty or repeated entry \"host\"",
    ),
    (
        "min_level = \"LOUD\"\n",
        "line 9, column 13: rule \"r1\" min_level:",
    ),
    (
        "threshold = 3\n",
        "line 9, column 13: rule \"r1\" threshold: threshold only applies to kind = \"threshold\"",
    ),
    // A second rule, from line 9.
    (
        "[[alerter.rules]]\nname = \"r2\"\napp = \"shop\"\nkind = \"threshold\"\nreceiver = \"ops\"\n",
        "line 12, column 8: rule \"r2\" kind: kind = \"threshold\" needs a threshold",
    ),
    (
        "[[alerter.rules]]\nname = \"r2\"\napp = \"shop\"\nkind = \"threshold\"\nthreshold = 0\nreceiver = \"ops\"\n",
        "line 13, column 13: rule \"r2\" threshold: 0 is under the minimum of 1",
    ),
    (
        "[[alerter.rules]]\nname = \"r2\"\napp = \"shop\"\nkind = \"every\"\nreceiver = \"nobody\"\n",
        "line 13, column 12: rule \"r2\" receiver: unknown receiver \"nobody\"",
    ),
    (
        "[[alerter.rules]]\nname = \"r2\"\napp = \"shop\"\nkind = \"every\"\nreceiver = \"ops\"\nbogus = 1\n",
        "line 14, column 1: rule \"r2\": unknown field `bogus`",
    ),
    (
        "[[alerter.rules]]\nname = \"r1\"\napp = \"shop\"\nkind = \"every\"\nreceiver = \"ops\"\n",
        "line 10, column 8: rule \"r1\" name: \"r1\" is defined twice",
    ),
    (
        "[[alerter.rules]]\nname = \"r2\"\nkind = \"every\"\nreceiver = \"ops\"\n",
        "line 9, column 1: rule \"r2\": missing field `app`",
    ),
    // Silences, from line 9.
    (
        "[[alerter.silences]]\nrule = \"r1\"\nuntil = \"tomorrow\"\n",
        "line 11, column 9: [[alerter.silences]] #1 until: \"tomorrow\" is not an RFC 3339 time",
    ),
    (
        "[[alerter.silences]]\nrule = \"r1\"\nuntil = \"2030-01-01T00:00:00Z\"\n\
         [[alerter.silences]]\nrule = \"r9\"\nuntil = \"2030-01-01T00:00:00Z\"\n",
        "line 13, column 8: [[alerter.silences]] #2 rule: unknown rule \"r9\"",
    ),
    (
        "[[alerter.silences]]\nuntil = \"2030-01-01T00:00:00Z\"\nreason = \"x\"\n",
        "line 11, column 1: [[alerter.silences]] #1: unknown field `reason`",
    ),
];

/// Loads `text` from a file and checks its error; what is wrong when it
/// is not the one expected.
fn wrong_error(text: &str, expected: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    let err = match Config::load(&path) {
        Ok(_) => return Some(format!("accepted:\n{text}")),
        Err(err) => err.to_string(),
    };
    let first = err.lines().next().unwrap_or_default();
    let want = format!("{}: {expected}", path.display());
    if !first.starts_with(&want) {
        return Some(format!(
            "file:\n{text}error:\n{err}\nexpected it to start with:\n{want}"
        ));
    }
    // The line quoted under the message is the line named.
    let line: usize = expected["line ".len()..expected.find(',').unwrap()]
        .parse()
        .unwrap();
    let quoted = format!("{line} | {}", text.lines().nth(line - 1).unwrap());
    if !err.lines().any(|l| l == quoted) {
        return Some(format!("error:\n{err}\ndoes not quote:\n{quoted}"));
    }
    None
}

fn assert_all(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} wrong:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_section_names_file_line_and_key() {
    assert_all(
        CASES
            .iter()
            .filter_map(|c| wrong_error(c.text, c.error))
            .collect(),
    );
}

#[test]
fn rules_and_silences_name_file_line_and_key() {
    assert!(Config::parse(ALERTING).is_ok());
    assert_all(
        RULE_CASES
            .iter()
            .filter_map(|(extra, error)| wrong_error(&format!("{ALERTING}{extra}"), error))
            .collect(),
    );
}

#[test]
fn the_limits_themselves_are_accepted() {
    let text = "[agent]\nid = \"web-1\"\n\
        [[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"a\"\nmax_line_bytes = 524288\n\
        [agent.spool]\nmax_bytes = 4194304\n\
        [agent.publish]\nmax_batch_bytes = 262144\n\
        [agent.syslog]\nmax_message_bytes = 524288\ntimezone = \"-0530\"\n\
        [agent.http]\nmax_message_bytes = 1\nmax_metadata_bytes = 262144\n\
        max_body_bytes = 1000\nmax_in_flight_bytes = 1000\n\
        [filterer]\nmax_blob_bytes = 1024\nflush_interval_secs = 1\n";
    let c = Config::parse(text).unwrap();
    assert_eq!(
        c.agent.publish.max_batch_bytes,
        sluice_core::config::MAX_BATCH_BYTES
    );
    assert_eq!(
        c.agent.files[0].max_line_bytes,
        sluice_core::config::MAX_LINE_BYTES
    );
    assert_eq!(
        c.agent.spool.max_bytes,
        sluice_core::config::MIN_SPOOL_BYTES
    );
    assert_eq!(
        c.agent.http.unwrap().max_metadata_bytes,
        sluice_core::config::MAX_METADATA_BYTES
    );
    assert_eq!(
        c.filterer.max_blob_bytes,
        sluice_core::config::MIN_BLOB_BYTES
    );
}
