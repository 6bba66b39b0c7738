//! With scoring down, events are still acknowledged; when scoring returns, the outbox
//! delivers and every customer is scored, without the client sending anything again.

use rapport_proto::ingestion::v1 as ingestion;
use rapport_tests::scenario::{health, order, wait_all_scored};
use rapport_tests::{
    Backing, Clients, Distributed, Postgres, Service, eventually, req, start_service,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn events_acknowledged_while_scoring_is_down_are_all_scored_later() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let backing = Backing::database(&db);
    let mut platform = Distributed::start(&backing, logs.path());
    let clients = Clients::new(&platform.addrs);

    platform.proc(Service::Scoring).kill();
    let customers: Vec<String> = (0..40).map(|i| format!("cust-{i:02}")).collect();
    for (batch, chunk) in customers.chunks(10).enumerate() {
        let events: Vec<_> = chunk
            .iter()
            .flat_map(|c| {
                (0..3).map(move |k| order(&format!("{c}-{k}"), c, 10 + k, 20.0 * (k + 1) as f64))
            })
            .collect();
        let answer = clients
            .ingestion
            .clone()
            .ingest(req(ingestion::IngestRequest {
                events,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            answer.accepted, 30,
            "batch {batch} acknowledged while scoring is down"
        );
    }
    // Give the relay time to fail and back off at least once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(health(&clients, "cust-00").await.is_none());

    let restarted = start_service(Service::Scoring, &platform.addrs, &backing, logs.path());
    platform.procs.push(restarted);
    for c in &customers {
        let h = eventually(&format!("a score for {c}"), Duration::from_secs(60), || {
            health(&clients, c)
        })
        .await;
        let frequency = h
            .measures
            .iter()
            .find(|m| m.measure == "orders_365d")
            .and_then(|m| m.value);
        assert_eq!(frequency, Some(3.0), "{c}: each event applied exactly once");
    }
}

/// Scoring goes down and comes back while producers keep sending: every event is acknowledged
/// as it arrives, the outbox drains afterwards, and every customer is scored on all of its
/// events, with nothing sent twice by the client.
#[tokio::test(flavor = "multi_thread")]
async fn a_scoring_outage_under_load_delays_scores_and_loses_none() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let backing = Backing::database(&db);
    let mut platform = Distributed::start(&backing, logs.path());
    let clients = Clients::new(&platform.addrs);
    let (batches, per_batch, customers) = (40usize, 500usize, 300usize);

    let producer = {
        let clients = clients.clone();
        tokio::spawn(async move {
            for b in 0..batches {
                let events: Vec<_> = (0..per_batch)
                    .map(|i| {
                        let n = b * per_batch + i;
                        order(
                            &format!("load-{n}"),
                            &format!("load-{:03}", n % customers),
                            1 + (n % 90) as i64,
                            2.0,
                        )
                    })
                    .collect();
                let answer = clients
                    .ingestion
                    .clone()
                    .ingest(req(ingestion::IngestRequest {
                        events,
                        ..Default::default()
                    }))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(answer.accepted as usize, per_batch, "batch {b}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    platform.proc(Service::Scoring).kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    platform.procs.retain(|p| p.name != "scoring");
    platform.procs.push(start_service(
        Service::Scoring,
        &platform.addrs,
        &backing,
        logs.path(),
    ));
    producer.await.unwrap();

    wait_all_scored(
        &clients,
        customers,
        (batches * per_batch) as u64,
        Duration::from_secs(120),
    )
    .await;
}
