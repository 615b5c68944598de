//! `sluice check` and `sluice-agent check` report a bad value in every
//! section with exit code 2, naming the file, the line and the key: what an
//! operator runs before a deploy, and what every role runs at start.

use std::path::Path;
use std::process::Command;

use sluice_testing::workspace_binary;

/// One bad value per section: the file, and what the error must say after
/// the file name.
const CASES: &[(&str, &str)] = &[
    (
        "[nats]\nurl = \"nats://127.0.0.1:4222\"\nreplicas = \"three\"\n",
        "line 3, column 12: [nats] replicas",
    ),
    ("[agent]\nid = \"web 1\"\n", "line 2, column 6: [agent] id"),
    (
        "[[agent.files]]\ninclude = [\"/a/*.log\"]\napp = \"a\"\nmax_line_bytes = 0\n",
        "line 4, column 18: [[agent.files]] #1 max_line_bytes",
    ),
    (
        "[agent.spool]\nmax_bytes = 1048576\n",
        "line 2, column 13: [agent.spool] max_bytes",
    ),
    (
        "[agent.publish]\nmax_batch_bytes = 262145\n",
        "line 2, column 19: [agent.publish] max_batch_bytes",
    ),
    (
        "[agent.limits]\nnice = \"low\"\n",
        "line 2, column 8: [agent.limits] nice",
    ),
    (
        "[agent.admin]\nlisten = \"nowhere\"\n",
        "line 2, column 10: [agent.admin] listen",
    ),
    (
        "[agent.syslog]\ntimezone = \"Mars/Olympus\"\n",
        "line 2, column 12: [agent.syslog] timezone",
    ),
    (
        "[agent.http]\nmax_records = 0\n",
        "line 2, column 15: [agent.http] max_records",
    ),
    (
        "[store]\nurl = \"s3://b/p\"\nallow_http = \"yes\"\n",
        "line 3, column 14: [store] allow_http",
    ),
    (
        "[filterer]\nmax_blob_bytes = 1023\n",
        "line 2, column 18: [filterer] max_blob_bytes",
    ),
    (
        "[[receivers]]\nname = \"ops\"\nkind = \"pager\"\n",
        "line 3, column 8: receiver \"ops\" kind",
    ),
    (
        "[aggregator]\nmax_groups = 0\n",
        "line 2, column 14: [aggregator] max_groups",
    ),
    (
        "[alerter]\nretry_max_secs = 0\n",
        "line 2, column 18: [alerter] retry_max_secs",
    ),
    (
        "[query]\ntimeout_secs = 0\n",
        "line 2, column 16: [query] timeout_secs",
    ),
    (
        "[[expiry.rules]]\napp = \"shop\"\ncold_after_days = 7\ndelete_after_days = 7\n[cold_store]\nurl = \"/tmp/cold\"\n",
        "line 4, column 21: [[expiry.rules]] #1 delete_after_days: rule for app \"shop\": delete_after_days (7) must be more than cold_after_days (7)",
    ),
    (
        "[[expiry.rules]]\napp = \"shop\"\ncold_after_days = 7\n",
        "line 3, column 19: [[expiry.rules]] #1 cold_after_days: rule for app \"shop\" moves logs to the cold store, but there is no [cold_store]",
    ),
    (
        "[[expiry.rules]]\napp = \"Shop*\"\ndelete_after_days = 3\n",
        "line 2, column 7: [[expiry.rules]] #1 app: rule for app \"Shop*\"",
    ),
    (
        "[[expiry.rules]]\napp = \"a\"\ndelete_after_days = 3\n[[expiry.rules]]\napp = \"a\"\n",
        "line 5, column 7: [[expiry.rules]] #2 app: a second rule for app \"a\"",
    ),
];

fn check(program: &Path, file: &Path) -> (Option<i32>, String) {
    let out = Command::new(program)
        .args(["check", "--config"])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_value_in_every_section_is_named_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let sluice = sluice_tests::sluice_binary();
    let agent = workspace_binary("sluice-agent", "sluice-agent");
    for (i, (text, expected)) in CASES.iter().enumerate() {
        let file = tmp.path().join(format!("case{i}.toml"));
        std::fs::write(&file, text).unwrap();
        for program in [&sluice, &agent] {
            let (code, err) = check(program, &file);
            assert_eq!(code, Some(2), "{}: {text}\n{err}", program.display());
            let want = format!("{}: {expected}", file.display());
            assert!(
                err.contains(&want),
                "{}: wanted {want:?} in\n{err}",
                program.display()
            );
        }
    }
}

#[test]
fn what_parsing_cannot_see_is_checked_too() {
    let tmp = tempfile::tempdir().unwrap();
    let sluice = sluice_tests::sluice_binary();
    // A glob that does not compile, and a store URL no store can serve: the
    // roles' own checks, run by `sluice check` whatever role the file is for.
    for (text, needle) in [
        (
            "[[agent.files]]\ninclude = [\"/var/log/[.log\"]\napp = \"a\"\n",
            "[[agent.files]] #1",
        ),
        (
            "[store]\nurl = \"ftp://example.com/logs\"\n",
            "ftp://example.com/logs",
        ),
    ] {
        let file = tmp.path().join("file.toml");
        std::fs::write(&file, text).unwrap();
        let (code, err) = check(&sluice, &file);
        assert_eq!(code, Some(2), "{text}\n{err}");
        assert!(err.contains(needle), "{needle:?} in {err}");
    }
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[nats]\nurl = \"nats://127.0.0.1:4222\"\n").unwrap();
    let (code, err) = check(&sluice, &good);
    assert_eq!(code, Some(0), "{err}");
}
