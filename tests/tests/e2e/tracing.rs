//! One ingested event is one trace across ingestion → scoring → alerting, exported over OTLP.

use rapport_proto::ingestion::v1 as ingestion;
use rapport_tests::otlp::Receiver;
use rapport_tests::scenario::nps;
use rapport_tests::{Backing, Clients, Distributed, eventually, req};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn one_event_is_one_trace_across_three_services() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/shared.db?mode=rwc", dir.path().display());
    let platform = Distributed::start(
        &Backing {
            database_url: &db,
            redis_url: None,
            otlp: Some(&receiver.endpoint),
        },
        dir.path(),
    );
    let clients = Clients::new(&platform.addrs);

    let trace_id = format!("{:032x}", rand_id());
    let mut request = req(ingestion::IngestRequest {
        events: vec![nps("t1", "traced", 1, 3)],
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let answer = clients
        .ingestion
        .clone()
        .ingest(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.accepted, 1);

    let services = eventually(
        "spans of all three services in one trace",
        Duration::from_secs(30),
        || async {
            let spans: Vec<_> = receiver
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            let has = |svc: &str| spans.iter().any(|s| s.service == svc);
            (has("rapport-ingestion") && has("rapport-scoring") && has("rapport-alerting"))
                .then_some(spans)
        },
    )
    .await;
    // Scoring's span for the notification descends from ingestion's: same trace, real parent.
    let scoring_server = services
        .iter()
        .find(|s| s.service == "rapport-scoring" && s.name.contains("NotifyCustomersChanged"))
        .expect("scoring's server span");
    assert!(!scoring_server.parent_span_id.is_empty());
}

fn rand_id() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    nanos ^ (u128::from(std::process::id()) << 64) | 1
}
