//! Nothing acknowledged is lost, nothing is stored twice: a client streams 100,000 events,
//! ingestion is killed with SIGKILL in the middle and restarted, the client re-sends whatever
//! was not acknowledged, and afterwards the store holds every event exactly once and every
//! customer was scored on all of its events.

use rapport_proto::ingestion::v1 as pb;
use rapport_tests::scenario::{order, wait_all_scored};
use rapport_tests::{
    Backing, Clients, Distributed, Postgres, Service, eventually, req, start_service,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const EVENTS: usize = 100_000;
const CUSTOMERS: usize = 500;

fn events() -> Vec<pb::Event> {
    (0..EVENTS)
        .map(|i| {
            order(
                &format!("crash-{i:06}"),
                &format!("c{:03}", i % CUSTOMERS),
                1 + (i % 200) as i64,
                1.0 + (i % 7) as f64,
            )
        })
        .collect()
}

/// Streams `events`; returns the ids acknowledged before the stream ended (cleanly or not).
/// Calls `midway` once, after `kill_after` acknowledgements.
async fn stream(
    clients: &Clients,
    events: Vec<pb::Event>,
    kill_after: usize,
    mut midway: impl FnMut(),
) -> BTreeSet<String> {
    let mut acked = BTreeSet::new();
    let Ok(answers) = clients
        .ingestion
        .clone()
        .ingest_stream(req(tokio_stream::iter(events)))
        .await
    else {
        return acked;
    };
    let mut answers = answers.into_inner();
    let mut fired = false;
    while let Ok(Some(batch)) = answers.message().await {
        for r in batch.results {
            assert_ne!(r.verdict, pb::Verdict::Rejected as i32, "{r:?}");
            acked.insert(r.event_id);
        }
        if !fired && acked.len() >= kill_after {
            fired = true;
            midway();
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_in_the_middle_of_a_stream_loses_nothing_and_duplicates_nothing() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let backing = Backing::database(&db);
    let mut platform = Distributed::start(&backing, logs.path());
    let clients = Clients::new(&platform.addrs);
    let all = events();

    let pid = platform
        .proc(Service::Ingestion)
        .pid()
        .expect("ingestion runs")
        .to_string();
    let kill = || {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "SIGKILL sent");
    };
    let first = stream(&clients, all.clone(), 30_000, kill).await;
    assert!(
        first.len() >= 30_000 && first.len() < EVENTS,
        "killed midway: {} acknowledged",
        first.len()
    );

    platform.proc(Service::Ingestion).kill();
    platform.procs.retain(|p| p.name != "ingestion");
    platform.procs.push(start_service(
        Service::Ingestion,
        &platform.addrs,
        &backing,
        logs.path(),
    ));
    let rest: Vec<pb::Event> = all
        .iter()
        .filter(|e| !first.contains(&e.event_id))
        .cloned()
        .collect();
    let second = eventually(
        "the re-sent events acknowledged",
        Duration::from_secs(60),
        || {
            let rest = rest.clone();
            let clients = clients.clone();
            async move {
                let acked = stream(&clients, rest.clone(), usize::MAX, || {}).await;
                (acked.len() == rest.len()).then_some(acked)
            }
        },
    )
    .await;
    assert_eq!(first.len() + second.len(), EVENTS);

    // The store holds every event exactly once, with its content.
    let mut stored: BTreeMap<String, pb::Event> = BTreeMap::new();
    let customers: Vec<String> = (0..CUSTOMERS).map(|c| format!("c{c:03}")).collect();
    for chunk in customers.chunks(50) {
        let cursors = chunk
            .iter()
            .map(|c| pb::CustomerCursor {
                customer_id: c.clone(),
                after_seq: 0,
            })
            .collect();
        let page = clients
            .ingestion
            .clone()
            .max_decoding_message_size(64 * 1024 * 1024)
            .list_customer_events(req(pb::ListCustomerEventsRequest {
                customers: cursors,
                limit_per_customer: 10_000,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        for s in page.events {
            let e = s.event.unwrap();
            assert!(
                stored.insert(e.event_id.clone(), e).is_none(),
                "an event stored twice"
            );
        }
    }
    assert_eq!(stored.len(), EVENTS);
    for e in &all {
        let s = &stored[&e.event_id];
        assert_eq!(
            (&s.customer_id, &s.payload),
            (&e.customer_id, &e.payload),
            "content of {}",
            e.event_id
        );
    }

    // Every customer was scored on every one of its events.
    wait_all_scored(&clients, CUSTOMERS, EVENTS as u64, Duration::from_secs(120)).await;
}
