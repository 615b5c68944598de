//! Reading a metric from Prometheus text, failing when it is missing.

/// Sum of a metric's values over its labels in Prometheus text. `name` may
/// hold label pairs, `name{outcome="rejected"}`, to sum only the series
/// that have all of them.
///
/// Panics when the text neither has a sample of the metric nor declares it
/// (`# TYPE`, with a counter's `_total` or a histogram's `_count`/`_sum`
/// suffix taken off): a renamed or missing metric fails the test instead of
/// reading as 0. A declared metric with no matching series is 0. (The
/// prometheus-client encoder leaves out a labelled family that has no series
/// yet, so a role creates the series of its bounded labels up front, as the
/// dead-letter counters do, or a test waits for the first one with
/// [`try_metric_value`].)
pub fn metric_value(body: &str, name: &str) -> f64 {
    try_metric_value(body, name).unwrap_or_else(|| {
        panic!(
            "metric {name} is not in the metrics text ({} lines); was it renamed or never registered?",
            body.lines().count()
        )
    })
}

/// Like [`metric_value`], but `None` when the metric is missing.
pub fn try_metric_value(body: &str, name: &str) -> Option<f64> {
    let (base, wanted) = match name.split_once('{') {
        Some((base, labels)) => (base, split_labels(labels.trim_end_matches('}'))),
        None => (name, Vec::new()),
    };
    let mut found = false;
    let mut sum = 0.0;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(base) else {
            continue;
        };
        let labels = match rest.strip_prefix('{') {
            Some(rest) => split_labels(rest.split_once('}').map_or("", |(l, _)| l)),
            None if rest.starts_with(' ') => Vec::new(),
            None => continue,
        };
        found = true;
        if wanted.iter().all(|w| labels.contains(w))
            && let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            sum += v;
        }
    }
    if found {
        return Some(sum);
    }
    let family = ["_total", "_count", "_sum", "_bucket"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base);
    let declared = body.lines().any(|l| {
        l.strip_prefix("# TYPE ")
            .and_then(|rest| rest.split(' ').next())
            .is_some_and(|declared| declared == family || declared == base)
    });
    declared.then_some(0.0)
}

/// `a="x",b="y"` as its pairs (values in this project hold no `,`).
fn split_labels(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}
