//! Fresh records: what arrived on `LOGS` is found before the filterer has
//! filed it (only the recent window can answer), exactly once after it is
//! filed, never for another tenant, and never when its subject names
//! another app.

mod common;

use std::time::{Duration, Instant};

use common::{get, put_blob, start_query, store_section};
use sluice_core::layout::Partition;
use sluice_core::time::now_nanos;
use sluice_core::{Level, Record};
use sluice_testing::{
    NatsServer, S3Server, free_port, publish_misfiled, publish_records, try_http_get_as,
    try_metric_value,
};

fn fresh(app: &str, i: usize) -> Record {
    Record {
        id: format!("01JFRESH{app}{i:04}"),
        ts: now_nanos(),
        app: app.into(),
        service: "api".into(),
        host: "web-1".into(),
        level: Level::Error,
        msg: format!("kiwi number {i} just arrived"),
        attrs: Default::default(),
        source: "http".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_record_is_found_before_and_once_after_it_is_filed() {
    let nats = NatsServer::start();
    let s3 = S3Server::start();
    let store_cfg = s3.store_config("logs");
    let store = sluice_core::store::open(&store_cfg).unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    sluice_core::nats::ensure_consumer_streams(&js, &nats.config())
        .await
        .unwrap();
    let port = free_port();
    let text = format!(
        "[nats]\nurl = \"{}\"\n{}[query]\nlisten = \"127.0.0.1:{port}\"\nlisting_cache_secs = 0\n\
         [[query.tokens]]\nname = \"shop\"\ntoken = \"shop-secret\"\napps = [\"shop\"]\n\
         [[query.tokens]]\nname = \"billing\"\ntoken = \"billing-secret\"\napps = [\"billing\"]\n",
        nats.url(),
        store_section(&s3),
    );
    // Listing on every query: the test files a blob after searching.
    let (stop, role) = start_query(&text, port).await;

    let shop: Vec<Record> = (0..3).map(|i| fresh("shop", i)).collect();
    let billing: Vec<Record> = (0..2).map(|i| fresh("billing", i)).collect();
    let misfiled = publish_misfiled(&js).await;
    let sent = Instant::now();
    publish_records(&js, &[shop.clone(), billing.clone()].concat(), 10).await;
    let search = "/api/v1/logs/search?query=kiwi";
    let mut answer = serde_json::Value::Null;
    while sent.elapsed() < Duration::from_secs(10) {
        answer = get(port, search, Some("shop-secret")).await.1;
        if answer["total"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let found_after = sent.elapsed();
    assert_eq!(answer["total"], 3, "{answer}");
    assert!(
        found_after < Duration::from_secs(1),
        "found after {found_after:?}"
    );
    assert_eq!(answer["stats"]["recent_matched"], 3, "{answer}");
    assert_eq!(answer["stats"]["blobs_read"], 0, "{answer}");
    assert_eq!(answer["stats"]["partial"], false, "{answer}");
    // Another tenant sees its own fresh records only.
    let (_, other) = get(port, search, Some("billing-secret")).await;
    assert_eq!(other["total"], 2, "{other}");
    assert!(
        other["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["app"] == "billing")
    );
    // What claims another app than its subject is never kept.
    let metrics = try_http_get_as(port, "/metrics", None).unwrap().1;
    let refused = try_metric_value(&metrics, "sluice_query_recent_refused_total")
        .unwrap_or_else(|| panic!("no refused count in\n{metrics}"));
    assert!(refused >= misfiled.len() as f64, "{metrics}");

    // Filed: now in a blob too, and still answered once.
    put_blob(
        &store,
        &Partition::of("shop", shop[0].ts),
        &shop,
        common::Sidecar::Good,
    )
    .await;
    let (_, after) = get(port, &format!("{search}&count=exact"), Some("shop-secret")).await;
    assert_eq!(after["total"], 3, "{after}");
    assert_eq!(after["total_exact"], true, "{after}");
    assert_eq!(after["stats"]["blobs_read"], 1, "{after}");
    let mut ids: Vec<&str> = after["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["01JFRESHshop0000", "01JFRESHshop0001", "01JFRESHshop0002"]
    );
    println!("fresh record found by search {found_after:?} after it was published");
    let _ = stop.send(());
    role.await.unwrap().unwrap();
}
