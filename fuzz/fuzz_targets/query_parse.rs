//! The query parser never panics, refuses with a position inside the
//! query (or just after it), and a query it accepts can be matched against
//! a record and judged against a sidecar without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::index::IndexBuilder;
use sluice_core::{Level, Record};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match sluice_query::lang::parse(text) {
        Ok(expr) => {
            let record = Record {
                id: "01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
                ts: 0,
                app: "shop".into(),
                service: "checkout".into(),
                host: "web-1".into(),
                level: Level::Warn,
                msg: text.chars().rev().collect(),
                attrs: [("request_id".to_string(), text.to_string())].into_iter().collect(),
                source: String::new(),
            };
            let mut index = IndexBuilder::new("shop");
            index.push(&record, 100);
            let index = index.finish(10, false);
            // The sidecar test never rules out a blob holding a match.
            if expr.matches(&record) {
                assert!(expr.may_match(&index), "{text:?}");
            }
        }
        Err(e) => {
            assert!(e.position >= 1 && e.position <= text.chars().count() + 1, "{text:?}: {e}");
        }
    }
});
