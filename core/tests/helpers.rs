//! The test helpers fail loudly: a missing metric or an endpoint that is
//! down is a test failure, never a zero that lets an assertion pass.

use std::net::TcpListener;

use sluice_testing::{free_port, http_get, metric_value, try_http_get, try_metric_value};

const METRICS: &str = "\
# HELP sluice_x_records Records.
# TYPE sluice_x_records counter
sluice_x_records_total 5
# HELP sluice_x_dropped Records dropped, by reason.
# TYPE sluice_x_dropped counter
sluice_x_dropped_total{reason=\"a\"} 2
sluice_x_dropped_total{reason=\"b\"} 3
# HELP sluice_x_refused Refused, by reason (none yet).
# TYPE sluice_x_refused counter
# EOF
";

#[test]
fn present_metrics_are_summed_and_declared_empty_families_are_zero() {
    assert_eq!(metric_value(METRICS, "sluice_x_records_total"), 5.0);
    assert_eq!(metric_value(METRICS, "sluice_x_dropped_total"), 5.0);
    assert_eq!(metric_value(METRICS, "sluice_x_refused_total"), 0.0);
    // A prefix of a longer name is not the metric.
    assert_eq!(try_metric_value(METRICS, "sluice_x_record"), None);
}

#[test]
#[should_panic(expected = "metric sluice_x_renamed_total is not in the metrics text")]
fn a_missing_metric_fails_the_test() {
    metric_value(METRICS, "sluice_x_renamed_total");
}

#[test]
#[should_panic(expected = "cannot connect")]
fn a_closed_port_fails_the_test() {
    let port = free_port();
    http_get(port, "/metrics");
}

#[test]
fn an_endpoint_that_does_not_answer_http_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        // Read the whole request first: closing with unread bytes resets
        // the connection, and the client would see a reset instead of the
        // answer.
        let mut request = Vec::new();
        let mut buf = [0u8; 256];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        s.write_all(b"SSH-2.0-nope\r\n").unwrap();
    });
    let err = try_http_get(port, "/health").unwrap_err();
    assert!(err.contains("not an HTTP answer"), "{err}");
    server.join().unwrap();
    assert!(try_http_get(free_port(), "/health").is_err());
}

#[test]
fn process_figures_are_read_or_fail() {
    let me = std::process::id();
    assert!(sluice_testing::process_peak_rss_mib(me) > 0.0);
    assert!(sluice_testing::process_cpu_secs(me) >= 0.0);
    let gone = std::panic::catch_unwind(|| sluice_testing::process_cpu_secs(u32::MAX));
    assert!(
        gone.is_err(),
        "a process that does not exist has no cpu time"
    );
}

#[test]
fn label_pairs_select_series() {
    let text = "\
# TYPE sluice_y_deliveries counter
sluice_y_deliveries_total{receiver=\"hook\",outcome=\"rejected\"} 1
sluice_y_deliveries_total{receiver=\"hook\",outcome=\"sent\"} 4
sluice_y_deliveries_total{receiver=\"ops\",outcome=\"sent\"} 2
";
    let m = |name: &str| metric_value(text, name);
    assert_eq!(m("sluice_y_deliveries_total"), 7.0);
    assert_eq!(m("sluice_y_deliveries_total{outcome=\"sent\"}"), 6.0);
    assert_eq!(
        m("sluice_y_deliveries_total{outcome=\"sent\",receiver=\"ops\"}"),
        2.0
    );
    assert_eq!(m("sluice_y_deliveries_total{outcome=\"lost\"}"), 0.0);
    assert_eq!(
        try_metric_value(text, "sluice_y_missing_total{outcome=\"sent\"}"),
        None
    );
}
