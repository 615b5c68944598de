//! Compaction claims against a real JetStream KV bucket: one compactor per
//! partition at a time, and a restarted instance takes over its own stale
//! claims.

use std::time::Duration;

use sluice_core::nats::ensure_kv;
use sluice_filterer::compact::claim;
use sluice_testing::NatsServer;

#[tokio::test]
async fn one_claim_per_partition_and_takeover_after_restart() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let claims = ensure_kv(&js, "claims_test", Duration::from_secs(600), 1)
        .await
        .unwrap();
    let key = "shop.2026-11-22.10";

    // Two instances race: exactly one wins.
    let (a, b) = tokio::join!(claim(&claims, key, "a:1"), claim(&claims, key, "b:1"));
    assert!(a ^ b, "a={a} b={b}");
    let (winner, loser) = if a { ("a", "b") } else { ("b", "a") };
    // The loser cannot take it while it is held, even on a retry.
    assert!(!claim(&claims, key, &format!("{loser}:1")).await);
    // The winner died and came back (new process start): it takes over.
    assert!(claim(&claims, key, &format!("{winner}:2")).await);
    // Released: anyone may claim.
    claims.delete(key).await.unwrap();
    assert!(claim(&claims, key, &format!("{loser}:1")).await);
    // Another partition is independent.
    assert!(claim(&claims, "shop.2026-11-22.11", &format!("{winner}:2")).await);
}
