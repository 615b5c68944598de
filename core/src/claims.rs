//! Claims on a partition: who may rewrite an hour of filed logs right now.
//!
//! Compaction (the filterer) and expiry both take the same claim, a key
//! `<app>.<date>.<hour>` in the JetStream KV bucket [`BUCKET`] created by
//! compare-and-set on "absent", so they never act on one partition at once,
//! and neither do two instances of either.
//!
//! * A claim's value is its claimant, `<instance>:<process start>`
//!   ([`crate::role::Role::claimant`]). A restarted instance takes over the
//!   claims of its earlier run; a claim of another live instance is
//!   respected; one of an instance that never returns expires with the
//!   bucket's [`MAX_AGE`].
//! * Each role prefixes its claimant with what it is, so a filterer and an
//!   expiry instance on one host (one default instance id) are never taken
//!   for two runs of the same instance.

use std::time::Duration;

use async_nats::jetstream::kv::Store as Kv;

use crate::kv::{self as cas, Decision};

/// The bucket of partition claims.
pub const BUCKET: &str = "sluice_compaction_claims";

/// How long a claim outlives the instance that took it.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// Claims `key` for `claimant`: creates the claim when absent, and takes
/// over a claim left by an earlier run of the same instance (it died
/// holding it). At most two attempts, each deciding on what the key holds.
/// `false` when another holds it or the bucket cannot be reached.
pub async fn claim(claims: &Kv, key: &str, claimant: &str) -> bool {
    let value = bytes::Bytes::from(claimant.to_string());
    let updated = cas::update(claims, key, 2, |current| {
        let Some(held) = current.value() else {
            return Decision::Write {
                value: value.clone(),
                outcome: (),
            };
        };
        let held_by = String::from_utf8_lossy(held);
        if !takes_over(&held_by, claimant) {
            return Decision::Done(());
        }
        tracing::info!(partition = key, previous = %held_by, "taking over a partition claim from an earlier run");
        Decision::Write {
            value: value.clone(),
            outcome: (),
        }
    })
    .await;
    match updated {
        Ok(updated) => updated.revision.is_some(),
        Err(err) => {
            if !err.is_conflict() {
                tracing::debug!(partition = key, error = %err, "cannot claim a partition");
            }
            false
        }
    }
}

/// Gives a claim back (best effort: an unreleased claim expires).
pub async fn release(claims: &Kv, key: &str) {
    if let Err(err) = claims.delete(key).await {
        tracing::debug!(partition = key, error = %err, "cannot release a partition claim; it expires");
    }
}

/// Whether a claim `held_by` is one `claimant` takes over: another run
/// (`:<process start>`) of the same instance.
fn takes_over(held_by: &str, claimant: &str) -> bool {
    let instance = |c: &str| c.rsplit_once(':').map(|(i, _)| i.to_string());
    held_by != claimant && instance(held_by).is_some() && instance(held_by) == instance(claimant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_earlier_run_of_the_same_instance_is_taken_over() {
        assert!(takes_over("f1:100", "f1:200"));
        assert!(!takes_over("f1:200", "f1:200"), "already ours");
        assert!(!takes_over("f2:100", "f1:200"), "another instance");
        assert!(!takes_over("f1", "f1:200"), "not a claimant");
        assert!(!takes_over("", "f1:200"));
        // The instance is everything before the last colon.
        assert!(takes_over("a:b:1", "a:b:2"));
        assert!(!takes_over("a:1", "a:b:2"));
        // Roles prefix their claimants: the same host is not the same run.
        assert!(!takes_over("web-1:100", "expiry.web-1:200"));
    }
}
