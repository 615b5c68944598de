//! The HTTP body decoder and gunzip never panic, respect their limits, and
//! every accepted record obeys the documented rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_agent::sources::http::body::{Limits, decode, gunzip};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message_bytes: 64,
        max_attrs_bytes: 256,
        max_items: 50,
    };
    match decode(data, &limits) {
        Ok(records) => {
            assert!(!records.is_empty() && records.len() <= limits.max_items);
            for r in records {
                assert!(r.msg.len() <= limits.max_message_bytes);
                for name in [&r.app, &r.service].into_iter().flatten() {
                    assert!(sluice_core::names::is_valid(name), "{name:?}");
                }
            }
        }
        Err(e) => {
            let _ = e.to_json();
        }
    }
    if let Ok(plain) = gunzip(data, 4096) {
        assert!(plain.len() <= 4096);
    }
});
