//! The search API as its callers use it, against a real s3s-fs: tokens
//! limit every answer to their apps (401 without a valid token, 403 for
//! another app), bad parameters are 400s naming them, an unreachable store
//! is a 503, and the answers are the records a scan finds.

mod common;

use common::{BASE, HOURS, file, get, records, start_query, store_section};
use sluice_core::time::NS_PER_HOUR;
use sluice_testing::{S3Server, free_port};

const SHOP: &str = "shop-secret";
const ALL: &str = "all-secret";

/// The query role in this process, serving on `port`.
async fn start(s3: &S3Server, port: u16) -> tokio::sync::oneshot::Sender<()> {
    let text = format!(
        "{}[query]\nlisten = \"127.0.0.1:{port}\"\ntimeout_secs = 10\nlisting_cache_secs = 0\n\
         [[query.tokens]]\nname = \"shop-team\"\ntoken = \"{SHOP}\"\napps = [\"shop\"]\n\
         [[query.tokens]]\nname = \"ops\"\ntoken = \"{ALL}\"\napps = [\"*\"]\n",
        store_section(s3)
    );
    start_query(&text, port).await.0
}

fn apps_of(answer: &serde_json::Value) -> Vec<String> {
    let mut apps: Vec<String> = answer["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["app"].as_str().unwrap().to_string())
        .collect();
    apps.sort();
    apps.dedup();
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_bad_parameters_and_the_store_going_away() {
    let mut s3 = S3Server::start();
    let store = sluice_core::store::open(&s3.store_config("logs")).unwrap();
    let records = records();
    file(&store, &records).await;
    let port = free_port();
    let stop = start(&s3, port).await;
    let search = "/api/v1/logs/search?limit=10000";

    // Who may read what.
    assert_eq!(get(port, search, None).await.0, 401);
    assert_eq!(get(port, search, Some("wrong")).await.0, 401);
    assert_eq!(get(port, "/api/v1/apps", None).await.0, 401);
    let (status, shop) = get(port, search, Some(SHOP)).await;
    assert_eq!(status, 200, "{shop}");
    assert_eq!(apps_of(&shop), ["shop"]);
    let want = records.iter().filter(|r| r.app == "shop").count();
    assert_eq!(shop["logs"].as_array().unwrap().len(), want);
    let (status, denied) = get(port, &format!("{search}&app=billing"), Some(SHOP)).await;
    assert_eq!(status, 403, "{denied}");
    assert!(
        denied["error"].as_str().unwrap().contains("\"billing\""),
        "{denied}"
    );
    let (_, apps) = get(port, "/api/v1/apps", Some(SHOP)).await;
    assert_eq!(apps["apps"], serde_json::json!(["shop"]));
    let (_, apps) = get(port, "/api/v1/apps", Some(ALL)).await;
    assert_eq!(apps["apps"], serde_json::json!(["billing", "shop"]));
    let (_, all) = get(port, search, Some(ALL)).await;
    assert_eq!(apps_of(&all), ["billing", "shop"]);

    // One rare word, a page, and the cursor after it.
    let (_, zebra) = get(port, "/api/v1/logs/search?query=zebra", Some(ALL)).await;
    assert_eq!(zebra["total"], 2, "{zebra}");
    assert!(
        zebra["stats"]["skipped_by_bloom"].as_u64().unwrap() > 0,
        "{zebra}"
    );
    let (_, first) = get(port, "/api/v1/logs/search?app=shop&limit=5", Some(ALL)).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = get(
        port,
        &format!("/api/v1/logs/search?app=shop&limit=5&cursor={cursor}"),
        Some(ALL),
    )
    .await;
    let (_, both) = get(port, "/api/v1/logs/search?app=shop&limit=10", Some(ALL)).await;
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!([ids(&first), ids(&second)].concat(), ids(&both));
    let (_, page2) = get(
        port,
        "/api/v1/logs/search?app=shop&limit=5&page=2",
        Some(ALL),
    )
    .await;
    assert_eq!(ids(&page2), ids(&second));

    // Bad parameters name what is wrong.
    let start = sluice_core::record::format_ts(BASE + HOURS * NS_PER_HOUR);
    let end = sluice_core::record::format_ts(BASE);
    for (query, words) in [
        ("query=a%20OR", "expected a term after OR"),
        ("limit=10001", "over the maximum of 10000"),
        (
            &format!("start_time={start}&end_time={end}") as &str,
            "is not before end_time",
        ),
        ("querry=x", "unknown parameter \"querry\""),
        ("level=loud", "level \"loud\""),
        ("cursor=bm9uc2Vuc2U", "cursor"),
    ] {
        let (status, answer) = get(port, &format!("/api/v1/logs/search?{query}"), Some(ALL)).await;
        assert_eq!(status, 400, "{query}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{query}: {error}");
    }

    // The store gone: a 503 that says so.
    s3.stop();
    let (status, answer) = get(port, "/api/v1/logs/search?app=shop", Some(ALL)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("store"),
        "{answer}"
    );
    let _ = stop.send(());
}
