//! Connecting with each kind of credential to a real nats-server, and the
//! stream set-up that every component relies on.

use std::process::Command;
use std::time::Duration;

use sluice_core::config::NatsConfig;
use sluice_core::nats::{connect, ensure_stream};
use sluice_testing::NatsServer;

async fn stream_works(cfg: &NatsConfig) -> bool {
    let Ok(client) = connect(cfg, "test").await else {
        return false;
    };
    let js = async_nats::jetstream::new(client);
    matches!(
        tokio::time::timeout(Duration::from_secs(3), ensure_stream(&js, cfg)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn creates_and_updates_the_stream() {
    let nats = NatsServer::start();
    let mut cfg = nats.config();
    assert!(stream_works(&cfg).await);
    cfg.max_age_secs = 3600;
    let client = connect(&cfg, "test").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let info = ensure_stream(&js, &cfg).await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(info.config.subjects, vec!["logs.>".to_string()]);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(600));
}

#[tokio::test]
async fn user_and_password() {
    let nats = NatsServer::start_with(&["--user", "sluice", "--pass", "s3cret"]);
    let mut cfg = nats.config();
    cfg.user = Some("sluice".into());
    cfg.password = Some("s3cret".into());
    assert!(stream_works(&cfg).await);
    cfg.password = Some("wrong".into());
    assert!(!stream_works(&cfg).await);
}

#[tokio::test]
async fn token() {
    let nats = NatsServer::start_with(&["--auth", "t0ken"]);
    let mut cfg = nats.config();
    cfg.token = Some("t0ken".into());
    assert!(stream_works(&cfg).await);
    cfg.token = Some("nope".into());
    assert!(!stream_works(&cfg).await);
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (ca, ca_key, cert, key, csr, ext) = (
        p("ca.pem"),
        p("ca.key"),
        p("cert.pem"),
        p("key.pem"),
        p("server.csr"),
        p("ext.cnf"),
    );
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl not found: install it with `apt-get install -y openssl`");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A private CA and a server certificate it signed.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=sluice-test-ca",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        &cert,
        "-extfile",
        &ext,
    ]);
    let nats = NatsServer::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let mut cfg = nats.config();
    cfg.tls_required = true;
    cfg.tls_ca_file = Some(ca.clone().into());
    assert!(stream_works(&cfg).await);
    // Without the CA the server's certificate is not trusted.
    cfg.tls_ca_file = None;
    assert!(!stream_works(&cfg).await);
}

#[tokio::test]
async fn unreadable_creds_file_is_a_settings_error() {
    let cfg = NatsConfig {
        creds_file: Some("/nonexistent/sluice.creds".into()),
        ..NatsConfig::default()
    };
    let err = connect(&cfg, "test").await.unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/sluice.creds"),
        "{err}"
    );
}

#[tokio::test]
async fn a_url_list_reaches_the_server_that_is_up() {
    let nats = NatsServer::start();
    let dead = sluice_testing::free_port();
    let mut cfg = nats.config();
    cfg.url = Some(format!("nats://127.0.0.1:{dead}, {}", nats.url()));
    assert!(stream_works(&cfg).await);
}
