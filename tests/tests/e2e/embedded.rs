//! The flow against `rapport up`: one process, four services on loopback, SQLite, no Redis.

use rapport_tests::{Clients, Embedded, repo_root, scenario};

#[tokio::test(flavor = "multi_thread")]
async fn embedded_platform_scores_grades_and_alerts() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    scenario::run(&clients).await;
    for service in ["ingestion", "scoring", "segmentation", "alerting"] {
        assert!(
            platform
                .dir
                .path()
                .join(format!(".rapport/{service}.db"))
                .exists(),
            "{service} has its own SQLite file"
        );
    }

    // The command line finds the local platform and works the alert lifecycle.
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = platform.cli(&[args, &["--json"]].concat());
        serde_json::from_str(&out).expect("JSON output")
    };
    let listed = cli(&["alerts", "--rule", "detractor", "--customer", "bob"]);
    let id = listed[0]["id"]
        .as_str()
        .expect("bob's detractor alert")
        .to_owned();
    assert_eq!(listed[0]["state"], "open");
    let acked = cli(&["alerts", "ack", &id, "--reason", "calling bob"]);
    assert_eq!(acked["state"], "acknowledged");
    let shown = cli(&["alerts", "show", &id]);
    let to: Vec<&str> = shown["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["open", "acknowledged"]);
    let effect = cli(&["effect"]);
    assert_eq!(effect["window_days"], 30);

    // Custom segments from the command line: the scenario's segment, then a new one.
    let listed = cli(&["segments"]);
    assert_eq!(listed[0]["name"], "watch");
    cli(&["segments", "define", "big", "monetary > 500.0"]);
    cli(&["segment"]);
    let big = cli(&["segments", "members", "big"]);
    assert_eq!(big["members"], serde_json::json!(["alice"]));
}

/// A customer with more new events than scoring fetches in one call still gets all of them
/// applied, each once.
#[tokio::test(flavor = "multi_thread")]
async fn a_customer_with_many_events_is_scored_on_all_of_them() {
    use rapport_proto::ingestion::v1::IngestRequest;
    use rapport_tests::scenario::{health, order};
    use rapport_tests::{eventually, req};

    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    let total = 5_100;
    let events: Vec<_> = (0..total)
        .map(|i| order(&format!("big-{i}"), "big", 1 + i % 300, 1.0))
        .collect();
    for chunk in events.chunks(2_500) {
        let answer = clients
            .ingestion
            .clone()
            .ingest(req(IngestRequest {
                events: chunk.to_vec(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.accepted as usize, chunk.len());
    }
    let frequency = eventually("all events applied", scenario::SETTLE, || async {
        let h = health(&clients, "big").await?;
        let f = h
            .measures
            .iter()
            .find(|m| m.measure == "orders_365d")?
            .value?;
        (f >= total as f64).then_some(f)
    })
    .await;
    assert_eq!(frequency, total as f64, "each event applied exactly once");
}

/// Callers' mistakes (an empty request, bytes that are not protobuf, a key nobody issued)
/// against every unary RPC of every service are answered, and none is an ERROR in the log:
/// operators' ERROR lines are for what operators must act on.
#[tokio::test(flavor = "multi_thread")]
async fn callers_mistakes_are_answered_and_never_logged_as_errors() {
    let platform = Embedded::start();
    let out = std::process::Command::new(rapport_tests::python())
        .arg(repo_root().join("tests/python/caller_mistakes.py"))
        .arg(repo_root().join("proto"))
        .arg(rapport_tests::API_KEY)
        .args(rapport_tests::Service::ALL.map(|s| platform.addrs.of(s).clone()))
        .output()
        .expect("run caller_mistakes.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&out.stdout).expect("codes as JSON");
    let calls: u64 = codes.values().sum();
    // Every unary RPC (over forty) three ways; each call with a key nobody issued refused.
    assert!(calls >= 120, "{codes:?}");
    assert_eq!(
        codes.get("UNAUTHENTICATED").copied().unwrap_or(0) * 3,
        calls,
        "{codes:?}"
    );
    assert!(!codes.contains_key("UNKNOWN"), "{codes:?}");
    // Bytes that are not protobuf are INTERNAL, as gRPC frameworks answer them; nothing else.
    assert!(
        codes.get("INTERNAL").copied().unwrap_or(0) * 3 <= calls,
        "{codes:?}"
    );
    let log = platform.proc.log_text();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines after {codes:?}:\n{}",
        errors.len(),
        errors.join("\n")
    );
}
