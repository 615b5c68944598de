//! What expiry does with what it must not lose: records of 400 days ago
//! filed just now by the filterer are kept for `min_write_age_hours`, then
//! expire; a store error on one partition leaves it as it was, is counted
//! and shown in `/health`, and the pass goes on with the others.

mod common;

use std::time::{Duration, Instant};

use common::{DAY, Setup, file_hot, partitions};
use sluice_core::layout::Partition;
use sluice_core::record::now_nanos;
use sluice_testing::filed::listing;
use sluice_testing::{free_port, publish_records, test_record, try_http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_old_logs_is_kept_for_the_write_age_then_expires() {
    // 0.002 h: 7.2 s.
    let setup = Setup::start(
        "[expiry]\nmin_write_age_hours = 0.002\ndefault = { delete_after_days = 30 }\n\
         [filterer]\nflush_interval_secs = 1\ncompaction = false\nadmin = { listen = \"127.0.0.1:0\" }\n",
    );
    let client = async_nats::connect(setup.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    sluice_core::nats::ensure_stream(&js, &setup.config.nats)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let filterer = tokio::spawn(sluice_filterer::run(setup.config.clone(), async {
        let _ = stop_rx.await;
    }));
    let old = now_nanos() - 400 * DAY;
    let records: Vec<_> = (0..50)
        .map(|i| {
            let mut r = test_record(
                "backfill",
                "api",
                sluice_core::Level::Info,
                "web-1",
                &format!("old line {i}"),
            );
            r.ts = old + i * 1_000_000_000;
            r
        })
        .collect();
    publish_records(&js, &records, 10).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let filed = loop {
        let hot = listing(&setup.hot).await;
        if hot.keys().any(|k| k.ends_with(".ndjson.gz")) {
            break hot;
        }
        assert!(Instant::now() < deadline, "the filterer filed nothing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let written = Instant::now();
    let p = Partition::of("backfill", old);
    assert!(
        filed
            .keys()
            .all(|k| k.starts_with(&format!("{}/", p.prefix()))),
        "{filed:?}"
    );

    // Filed just now: held, however old its hour.
    let (expiry, nats, _) = setup.expiry("e1").await;
    let report = expiry.pass(Some(&nats), now_nanos()).await.unwrap();
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    assert_eq!(
        report
            .held
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>(),
        vec![p.clone()]
    );
    assert_eq!(
        listing(&setup.hot)
            .await
            .keys()
            .filter(|k| k.contains("dt="))
            .count(),
        filed.len()
    );

    // Once the write age has passed, it goes.
    let _ = stop_tx.send(());
    filterer.await.unwrap().unwrap();
    tokio::time::sleep(
        (written + Duration::from_millis(7_400)).saturating_duration_since(Instant::now()),
    )
    .await;
    let report = expiry.pass(Some(&nats), now_nanos()).await.unwrap();
    assert!(
        report.failed.is_empty() && report.held.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.actions.len(), 1);
    assert_eq!(report.actions[0].0.partition(), &p);
    assert!(
        !listing(&setup.hot).await.keys().any(|k| k.contains("dt=")),
        "the backfilled hour is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_leaves_the_partition_counts_it_and_the_pass_goes_on() {
    let cold_dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let mut setup = Setup::start(&format!(
        "[expiry]\ninterval_secs = 1\nmin_write_age_hours = 0\nadmin = {{ listen = \"127.0.0.1:{admin}\" }}\n\
         [[expiry.rules]]\napp = \"shop\"\ncold_after_days = 1\n"
    ));
    // The cold store on the local disk, where one partition cannot be
    // written: a file stands where its directory must go.
    setup.text = setup.text.replace(
        &setup.text
            [setup.text.find("[cold_store]").unwrap()..setup.text.find("\n[expiry]").unwrap()],
        &format!(
            "[cold_store]\nurl = \"file://{}\"\n",
            cold_dir.path().display()
        ),
    );
    setup.config = sluice_core::config::Config::parse(&setup.text).unwrap();
    let all = partitions(&["shop"], now_nanos(), 3 * 24);
    file_hot(&setup.s3, &all, 1, 2).await;
    let now = now_nanos();
    let due: Vec<&Partition> = all.iter().filter(|p| now - p.end_ns() >= DAY).collect();
    let blocked = due[3].clone();
    let blocked_dir = cold_dir.path().join(blocked.prefix());
    std::fs::create_dir_all(blocked_dir.parent().unwrap()).unwrap();
    std::fs::write(&blocked_dir, b"in the way").unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let role = tokio::spawn(sluice_expiry::run(setup.config.clone(), async {
        let _ = stop_rx.await;
    }));
    let metric = |name: &str| {
        try_http_get(admin, "/metrics")
            .ok()
            .map(|(_, body)| sluice_testing::try_metric_value(&body, name).unwrap_or(0.0))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let moved = metric("sluice_expiry_partitions_total{app=\"shop\",action=\"moved\"}");
        let errors = metric("sluice_expiry_errors_total{app=\"shop\"}");
        if moved == Some((due.len() - 1) as f64) && errors.is_some_and(|e| e >= 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moved {moved:?}, errors {errors:?} of {} due",
            due.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = try_http_get(admin, "/health").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(&blocked.prefix()),
        "/health names the partition: {body}"
    );
    // The blocked partition is wholly hot still; the others moved.
    let hot = listing(&setup.hot).await;
    let prefix = format!("{}/", blocked.prefix());
    let objects = |k: &&String| k.contains("dt=") && k.contains(".ndjson.gz");
    assert_eq!(
        hot.keys()
            .filter(objects)
            .filter(|k| k.starts_with(&prefix))
            .count(),
        2,
        "still hot"
    );
    // Its move is marked, to be resumed; nothing of it counts as moved.
    assert!(hot.contains_key(&format!("{prefix}{}", sluice_core::layout::MOVING_MARKER)));
    assert_eq!(
        hot.keys().filter(objects).count(),
        (all.len() - due.len() + 1) * 2
    );

    // Cleared, the next pass moves it and /health recovers.
    std::fs::remove_file(&blocked_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = try_http_get(admin, "/health").unwrap();
        if status == 200
            && !listing(&setup.hot)
                .await
                .keys()
                .any(|k| k.starts_with(&prefix))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the partition was never moved");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric("sluice_expiry_partitions_total{app=\"shop\",action=\"moved\"}"),
        Some(due.len() as f64)
    );
    let _ = stop_tx.send(());
    role.await.unwrap().unwrap();
}
