//! The syslog parser never panics, and what it returns is a usable record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_agent::sources::syslog::parse::{ParseOptions, Zone, parse};

fuzz_target!(|data: &[u8]| {
    let now = 1_795_428_000_000_000_000;
    for zone in [Zone::Utc, Zone::Local] {
        let parsed = parse(data, &ParseOptions { zone, now_ns: now });
        // Whatever was not understood is still kept, in the message or
        // the attributes, never silently dropped.
        if data.iter().any(|b| !b.is_ascii_whitespace() && *b != 0) {
            assert!(
                !parsed.msg.is_empty()
                    || !parsed.attrs.is_empty()
                    || parsed.host.is_some()
                    || parsed.app_name.is_some(),
                "non-empty input gave an empty record"
            );
        }
    }
});
