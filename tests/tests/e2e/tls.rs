//! TLS and mTLS: a server with a certificate serves trusted clients only (Python's grpcio and
//! the CLI), refuses plaintext, clients without a certificate and clients of another CA,
//! serves a certificate replaced on disk without a restart; and the four services run on
//! mutual TLS end to end, driven by the CLI.

use rapport_tests::certs::{Ca, Pair};
use rapport_tests::{
    API_KEY, Addrs, Backing, Postgres, Service, bin, eventually, python, repo_root,
    start_service_with,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What `tests/python/tls_client.py call` answered.
fn grpcio(addr: &str, ca: Option<&Path>, client: Option<&Pair>) -> serde_json::Value {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/python/tls_client.py"))
        .arg("call")
        .arg(addr)
        .arg(ca.map_or("-".into(), |p| p.display().to_string()));
    if let Some(c) = client {
        cmd.arg(&c.cert).arg(&c.key);
    }
    let out = cmd.output().expect("run tls_client.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The common name of the certificate the server at `addr` presents.
fn served_subject(addr: &str, ca: &Path, client: &Pair) -> String {
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/tls_client.py"))
        .arg("subject")
        .arg(addr)
        .arg(ca)
        .arg(&client.cert)
        .arg(&client.key)
        .output()
        .expect("run tls_client.py");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The environment that puts a service on mutual TLS.
fn mtls_env(ca: &Ca, server: &Pair) -> Vec<(&'static str, String)> {
    vec![
        ("RAPPORT_TLS_CERT", server.cert.display().to_string()),
        ("RAPPORT_TLS_KEY", server.key.display().to_string()),
        ("RAPPORT_TLS_CLIENT_CA", ca.cert.display().to_string()),
        ("RAPPORT_TLS_CA", ca.cert.display().to_string()),
    ]
}

fn start(
    service: Service,
    addrs: &Addrs,
    backing: &Backing<'_>,
    dir: &Path,
    env: &[(&str, String)],
) -> rapport_tests::Proc {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_service_with(service, addrs, backing, dir, &env)
}

/// The CLI against `addrs`, over TLS with `client`'s certificate when given.
fn cli(addrs: &Addrs, ca: &Ca, client: Option<&Pair>, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(bin("rapport"));
    cmd.args(args)
        .arg("--ingestion")
        .arg(&addrs.ingestion)
        .arg("--scoring")
        .arg(&addrs.scoring)
        .arg("--segmentation")
        .arg(&addrs.segmentation)
        .arg("--alerting")
        .arg(&addrs.alerting)
        .arg("--api-key")
        .arg(API_KEY)
        .arg("--tls-ca")
        .arg(&ca.cert)
        .env_remove("RAPPORT_TLS_CERT")
        .env_remove("RAPPORT_TLS_KEY");
    if let Some(c) = client {
        cmd.arg("--tls-cert")
            .arg(&c.cert)
            .arg("--tls-key")
            .arg(&c.key);
    }
    let out = cmd.output().expect("run rapport");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_server_serves_trusted_clients_refuses_others_and_rotates_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ours");
    let server = ca.issue("server-1", "server");
    let client = ca.issue("a-platform", "client");
    let stranger = Ca::new(dir.path(), "theirs").issue("intruder", "intruder");

    let addrs = Addrs::free();
    let db = rapport_storage::sqlite_url(dir.path(), "ingestion");
    let backing = Backing::database(&db);
    let _ingestion = start(
        Service::Ingestion,
        &addrs,
        &backing,
        dir.path(),
        &mtls_env(&ca, &server),
    );
    let addr = addrs.ingestion.as_str();

    // Trusted, with a certificate of ours: serves, and answers calls.
    let ok = grpcio(addr, Some(&ca.cert), Some(&client));
    assert_eq!(ok["health"], "SERVING", "{ok}");
    assert!(
        ok["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "rapport.ingestion.v1.IngestionService"),
        "{ok}"
    );
    // Plaintext, no client certificate, a certificate of another CA: refused.
    for (what, answer) in [
        ("plaintext", grpcio(addr, None, None)),
        ("no certificate", grpcio(addr, Some(&ca.cert), None)),
        ("another CA", grpcio(addr, Some(&ca.cert), Some(&stranger))),
    ] {
        assert_eq!(
            answer["error"].as_str().map(|e| e.split(':').next()),
            Some(Some("UNAVAILABLE")),
            "{what}: {answer}"
        );
    }
    // The CLI's probe, with and without its certificate.
    let (served, text) = cli(&addrs, &ca, Some(&client), &["probe", addr]);
    assert!(served && text.contains("SERVING"), "{text}");
    let (served, text) = cli(&addrs, &ca, None, &["probe", addr, "--timeout-secs", "2"]);
    assert!(!served, "served a client without a certificate: {text}");

    // A new certificate written over the old files is served without a restart.
    assert_eq!(served_subject(addr, &ca.cert, &client), "server-1");
    let renewed = ca.issue("server-2", "renewed");
    std::fs::copy(&renewed.key, &server.key).unwrap();
    std::fs::copy(&renewed.cert, &server.cert).unwrap();
    eventually(
        "the renewed certificate served",
        Duration::from_secs(15),
        || async { (served_subject(addr, &ca.cert, &client) == "server-2").then_some(()) },
    )
    .await;
    let still = grpcio(addr, Some(&ca.cert), Some(&client));
    assert_eq!(still["health"], "SERVING", "{still}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_runs_on_mutual_tls_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "platform");
    let server = ca.issue("rapport", "service");
    let operator = ca.issue("operator", "operator");
    let pg = Postgres::start();
    let db = pg.url();
    let backing = Backing::database(&db);
    let addrs = Addrs::free();
    let env = mtls_env(&ca, &server);
    let _procs: Vec<_> = [
        Service::Alerting,
        Service::Scoring,
        Service::Segmentation,
        Service::Ingestion,
    ]
    .into_iter()
    .map(|s| start(s, &addrs, &backing, dir.path(), &env))
    .collect();

    let events = repo_root().join("examples/events.jsonl");
    let (ok, text) = cli(
        &addrs,
        &ca,
        Some(&operator),
        &["import", &events.display().to_string(), "--shift-to-today"],
    );
    assert!(text.starts_with("accepted 11"), "{ok} {text}");
    // Ingestion told scoring, scoring told alerting: every hop on mutual TLS.
    eventually(
        "bob scored and alerted",
        Duration::from_secs(30),
        || async {
            let (_, health) = cli(&addrs, &ca, Some(&operator), &["health", "bob"]);
            let (_, alerts) = cli(&addrs, &ca, Some(&operator), &["alerts"]);
            (health.contains("bob") && alerts.contains("health_below")).then_some(())
        },
    )
    .await;
    let (ok, text) = cli(&addrs, &ca, Some(&operator), &["segment"]);
    assert!(ok && text.contains("graded"), "{text}");
    // Without the operator's certificate the CLI is refused.
    let (ok, text) = cli(&addrs, &ca, None, &["health", "bob"]);
    assert!(!ok, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_reaches_postgresql_over_tls_with_sslmode() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "db");
    let pg = Postgres::start_tls(&ca.issue("postgres", "postgres"));
    // The cluster takes TCP connections over TLS only; the service checks its certificate.
    let db = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        ca.cert.display()
    );
    let backing = Backing::database(&db);
    let addrs = Addrs::free();
    let _ingestion = start(Service::Ingestion, &addrs, &backing, dir.path(), &[]);
    let encrypted = pg.query(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.ssl AND a.datname = 'rapport'",
    );
    assert!(encrypted.trim().parse::<u32>().unwrap() >= 1, "{encrypted}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_reach_https_endpoints_signed() {
    use crate::alerting::{Alerting, immediate, logged, score};
    use rapport_proto::alerting::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "receivers");
    let (_receiver, base, log) =
        rapport_tests::webhook_receiver_tls(dir.path(), "{}", &ca.issue("receiver", "receiver"));
    assert!(base.starts_with("https://"));
    let ca_path = ca.cert.display().to_string();
    let a = Alerting::start(
        "holdout_share = 0.0\n[health_below]\nenter_below = 50.0\nexit_at_or_above = 60.0\n",
        &[("RAPPORT_TLS_CA", ca_path.as_str())],
    );
    a.client()
        .create_webhook(rapport_tests::req(pb::CreateWebhookRequest {
            url: format!("{base}/secure"),
            route: Some(immediate()),
        }))
        .await
        .expect("an https endpoint is accepted");
    score(&a, "c1", 30.0).await;
    let got = eventually("a delivery over https", Duration::from_secs(20), || async {
        logged(&log, "/secure").into_iter().next()
    })
    .await;
    assert!(
        got["headers"]["webhook-signature"]
            .as_str()
            .unwrap()
            .starts_with("v1,")
    );
    let body: serde_json::Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["alerts"][0]["customer_id"], "c1", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scoring_caches_in_redis_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "cache");
    let redis = rapport_tests::Redis::start_tls(&ca.issue("redis", "redis"));
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let db = rapport_storage::sqlite_url(dir.path(), "scoring");
    let backing = Backing {
        redis_url: Some(&url),
        ..Backing::database(&db)
    };
    let addrs = Addrs::free();
    let env = [("RAPPORT_TLS_CA", ca.cert.display().to_string())];
    let scoring = start(Service::Scoring, &addrs, &backing, dir.path(), &env);
    eventually(
        "scoring connected to redis",
        Duration::from_secs(20),
        || async {
            scoring
                .log_text()
                .contains("connected to redis")
                .then_some(())
        },
    )
    .await;
}

/// Copies `ca`'s certificate and `pair` into the files every service reads (`dir`), as a
/// rotated Kubernetes secret appears: in place, under the same names.
fn mount(dir: &Path, ca: &Ca, pair: &Pair) {
    // Key first: a reader that sees the new certificate with the old key keeps the old pair.
    std::fs::copy(&pair.key, dir.join("tls.key")).unwrap();
    std::fs::copy(&pair.cert, dir.join("tls.crt")).unwrap();
    std::fs::copy(&ca.cert, dir.join("ca.crt")).unwrap();
}

/// Every service's certificates and CA replaced on disk by another CA's: the services that
/// keep running verify clients with the new CA and call their peers (one restarted, which
/// now accepts only the new material) with their new certificate, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn peers_follow_a_rotated_ca_and_client_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (Ca::new(dir.path(), "old"), Ca::new(dir.path(), "new"));
    let (old_server, new_server) = (
        old.issue("rapport", "old-service"),
        new.issue("rapport", "new-service"),
    );
    let (old_operator, new_operator) = (
        old.issue("operator", "old-op"),
        new.issue("operator", "new-op"),
    );
    let mounted = dir.path().join("mounted");
    std::fs::create_dir(&mounted).unwrap();
    mount(&mounted, &old, &old_server);
    let env = vec![
        (
            "RAPPORT_TLS_CERT",
            mounted.join("tls.crt").display().to_string(),
        ),
        (
            "RAPPORT_TLS_KEY",
            mounted.join("tls.key").display().to_string(),
        ),
        (
            "RAPPORT_TLS_CLIENT_CA",
            mounted.join("ca.crt").display().to_string(),
        ),
        (
            "RAPPORT_TLS_CA",
            mounted.join("ca.crt").display().to_string(),
        ),
    ];
    let pg = Postgres::start();
    let db = pg.url();
    let backing = Backing::database(&db);
    let addrs = Addrs::free();
    let mut procs: Vec<_> = [Service::Alerting, Service::Scoring, Service::Ingestion]
        .into_iter()
        .map(|s| start(s, &addrs, &backing, dir.path(), &env))
        .collect();
    let first = repo_root().join("examples/events.jsonl");
    let (ok, text) = cli(
        &addrs,
        &old,
        Some(&old_operator),
        &["import", &first.display().to_string(), "--shift-to-today"],
    );
    assert!(ok, "{text}");
    eventually(
        "bob scored on the old certificates",
        Duration::from_secs(30),
        || async {
            let (ok, health) = cli(&addrs, &old, Some(&old_operator), &["health", "bob"]);
            (ok && health.contains("bob")).then_some(())
        },
    )
    .await;

    mount(&mounted, &new, &new_server);
    // Alerting restarts on the new material: scoring, still running, must reach it with its
    // new client certificate and trust its new server certificate.
    procs.remove(0).kill();
    procs.push(start(Service::Alerting, &addrs, &backing, dir.path(), &env));
    let later = dir.path().join("later.jsonl");
    std::fs::write(
        &later,
        "{\"event_id\":\"rot-1\",\"customer_id\":\"rotated\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"survey\":{\"kind\":\"nps\",\"score\":0}}\n",
    )
    .unwrap();
    // Ingestion, still running, serves its new certificate and takes the new CA's clients.
    eventually(
        "ingestion on the new material",
        Duration::from_secs(20),
        || async {
            let later = later.display().to_string();
            let (ok, _) = cli(
                &addrs,
                &new,
                Some(&new_operator),
                &["import", &later, "--shift-to-today"],
            );
            ok.then_some(())
        },
    )
    .await;
    eventually(
        "the new detractor alerted through the rotated peers",
        Duration::from_secs(40),
        || async {
            let (ok, alerts) = cli(&addrs, &new, Some(&new_operator), &["alerts"]);
            (ok && alerts.contains("rotated")).then_some(())
        },
    )
    .await;
    // The old CA's clients are refused now.
    let (ok, text) = cli(&addrs, &old, Some(&old_operator), &["health", "bob"]);
    assert!(!ok, "{text}");
}
