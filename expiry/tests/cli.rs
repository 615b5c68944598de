//! `sluice expiry plan`, `lifecycle` and `audit` as an operator runs them:
//! the plan names what a run then does and changes nothing; the lifecycle
//! configuration is JSON with a rule per app; the audit lists the run.

mod common;

use std::process::Command;

use common::{Setup, file_hot, partitions};
use sluice_core::record::now_nanos;
use sluice_testing::filed::listing;
use sluice_testing::workspace_binary;

fn sluice(args: &[&str], config: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(workspace_binary("sluice", "sluice"))
        .args(["expiry"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_then_run_then_audit() {
    let setup = Setup::start(
        "[expiry]\nmin_write_age_hours = 0\n[[expiry.rules]]\napp = \"shop\"\ncold_after_days = 1\ndelete_after_days = 2\n\
         [[expiry.rules]]\napp = \"keep\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    let text = setup.text.replace(
        "[cold_store]",
        "[cold_store]\nstorage_class = \"REDUCED_REDUNDANCY\"",
    );
    std::fs::write(&config, &text).unwrap();
    file_hot(
        &setup.s3,
        &partitions(&["shop", "keep"], now_nanos(), 3 * 24),
        1,
        1,
    )
    .await;
    let before = listing(&setup.hot).await;

    let (ok, plan, err) = sluice(&["plan"], &config);
    assert!(ok, "{err}");
    assert_eq!(listing(&setup.hot).await, before, "plan changes nothing");
    assert!(listing(&setup.cold).await.is_empty());
    let would_move = plan.lines().filter(|l| l.starts_with("would move")).count();
    let would_delete = plan
        .lines()
        .filter(|l| l.starts_with("would delete"))
        .count();
    assert!(would_move >= 23 && would_delete >= 23, "{plan}");
    assert!(!plan.contains("app=keep"), "{plan}");
    assert!(plan.contains("rule app \"shop\""), "{plan}");

    let (ok, run, err) = sluice(&["run", "--once"], &config);
    assert!(ok, "{err}\n{run}");
    assert_eq!(
        run.lines().filter(|l| l.starts_with("moved")).count(),
        would_move,
        "{run}"
    );
    assert_eq!(
        run.lines().filter(|l| l.starts_with("deleted")).count(),
        would_delete,
        "{run}"
    );
    assert!(
        run.contains(&format!("{would_delete} partitions deleted")),
        "{run}"
    );

    let (ok, audit, err) = sluice(&["audit"], &config);
    assert!(ok, "{err}");
    assert_eq!(audit.lines().count(), would_move + would_delete, "{audit}");

    let (ok, lifecycle, notes) = sluice(&["lifecycle"], &config);
    assert!(ok, "{notes}");
    let v: serde_json::Value = serde_json::from_str(&lifecycle).unwrap();
    let rules = v["Rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{lifecycle}");
    assert_eq!(rules[0]["Filter"]["Prefix"], "hot/app=shop/");
    assert_eq!(
        rules[0]["Transitions"][0]["StorageClass"],
        "REDUCED_REDUNDANCY"
    );
    assert_eq!(rules[0]["Expiration"]["Days"], 2);
    assert!(notes.contains("when an object was written"), "{notes}");
}
