//! Many producers at once on PostgreSQL: every acknowledged event reaches its customer's
//! metrics exactly once, however the producers' transactions interleave and however many
//! replicas of ingestion and scoring share the database.

use rapport_proto::ingestion::v1 as ingestion;
use rapport_tests::scenario::{Folded, folded, order};
use rapport_tests::{
    Addrs, Backing, Clients, Distributed, Postgres, Proc, Service, channel, eventually, req,
    start_replica, start_service,
};
use std::time::{Duration, Instant};

const PRODUCERS: usize = 8;
const BATCHES: usize = 8;
const BATCH: usize = 1_000;
/// Every batch touches every one of these customers, so producers' batches overlap.
const CUSTOMERS: usize = 40;

/// One producer's batches; amounts are whole numbers, so sums compare exactly.
fn batches(producer: usize) -> Vec<Vec<ingestion::Event>> {
    (0..BATCHES)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let customer = format!("c-{:02}", (i + producer) % CUSTOMERS);
                    let id = format!("p{producer}-b{b}-{i}");
                    order(&id, &customer, (i % 300) as i64, (1 + i % 9) as f64)
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_on_postgres_fold_every_accepted_event_exactly_once() {
    produce_and_check(1).await;
}

/// Two ingestion replicas, each relaying to its own scoring replica: one customer's events
/// are folded by both scoring replicas at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_of_ingestion_and_scoring_fold_every_accepted_event_exactly_once() {
    produce_and_check(2).await;
}

/// Runs the producers against `replicas` ingestion and scoring pairs (producer `p` sends to
/// pair `p % replicas`) and checks what scoring folded against what was accepted.
async fn produce_and_check(replicas: usize) {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let backing = Backing::database(&db);
    let mut platform = Distributed::start(&backing, logs.path());
    let mut pairs = vec![Clients::new(&platform.addrs)];
    for _ in 1..replicas {
        let mut addrs = platform.addrs.clone();
        let fresh = Addrs::free();
        (addrs.ingestion, addrs.scoring) = (fresh.ingestion, fresh.scoring);
        addrs.metrics.clear();
        for service in [Service::Scoring, Service::Ingestion] {
            let replica = start_service(service, &addrs, &backing, logs.path());
            platform.procs.push(replica);
        }
        pairs.push(Clients::new(&addrs));
    }
    let clients = pairs[0].clone();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let clients = pairs[p % pairs.len()].clone();
            tokio::spawn(async move {
                let mut accepted = Folded::new();
                for events in batches(p) {
                    let answer = clients
                        .ingestion
                        .clone()
                        .ingest(req(ingestion::IngestRequest {
                            events: events.clone(),
                            ..Default::default()
                        }))
                        .await
                        .expect("batch answered")
                        .into_inner();
                    for (event, result) in events.iter().zip(&answer.results) {
                        if result.verdict == ingestion::Verdict::Accepted as i32 {
                            let Some(ingestion::event::Payload::Order(o)) = &event.payload else {
                                unreachable!("only orders are sent")
                            };
                            let entry = accepted.entry(event.customer_id.clone()).or_default();
                            entry.0 += 1;
                            entry.1 += o.amount;
                        }
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = Folded::new();
    for producer in producers {
        for (customer, (n, sum)) in producer.await.unwrap() {
            let entry = accepted.entry(customer).or_default();
            entry.0 += n;
            entry.1 += sum;
        }
    }
    let total: u64 = accepted.values().map(|(n, _)| n).sum();
    assert_eq!(
        total,
        (PRODUCERS * BATCHES * BATCH) as u64,
        "every new event is accepted"
    );

    // Scoring settles when its counts reach the accepted ones, or stop moving short of them.
    let (mut last, mut since) = (Folded::new(), Instant::now());
    let deadline = Instant::now() + Duration::from_secs(120);
    let folded = loop {
        let now = folded(&clients.scoring).await;
        if now == accepted || Instant::now() > deadline {
            break now;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(15) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let short: Vec<String> = accepted
        .iter()
        .filter(|(c, want)| folded.get(*c) != Some(want))
        .map(|(c, want)| format!("{c}: accepted {want:?}, folded {:?}", folded.get(c)))
        .collect();
    let folded_total: u64 = folded.values().map(|(n, _)| n).sum();
    assert!(
        short.is_empty(),
        "{} of {} customers differ ({folded_total} of {total} orders folded): {short:#?}",
        short.len(),
        accepted.len()
    );
}

/// Relays of several replicas claim one outbox at once on PostgreSQL: each message is
/// claimed by one of them, and none is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_claiming_one_outbox_at_once_take_each_message_once() {
    use rapport_storage::outbox::{Outbox, create_table};
    let pg = Postgres::start();
    let db = rapport_storage::connect(&pg.url()).await.unwrap();
    create_table(
        &rapport_storage::sea_orm_migration::SchemaManager::new(&db),
        "claims_outbox",
    )
    .await
    .unwrap();
    let outbox = Outbox::new("claims_outbox");
    const MESSAGES: u32 = 4_000;
    let payloads = (0..MESSAGES).map(|i| i.to_le_bytes().to_vec()).collect();
    outbox
        .push_many(&db, "t", "x", payloads, None)
        .await
        .unwrap();

    let relays: Vec<_> = (0..6)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let claimed = outbox
                        .claim(&db, 50, Duration::from_secs(60))
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        return taken;
                    }
                    let ids: Vec<i64> = claimed.iter().map(|m| m.id).collect();
                    outbox.delivered(&db, &ids).await.unwrap();
                    taken.extend(ids);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy = 0;
    for relay in relays {
        let taken = relay.await.unwrap();
        busy += usize::from(!taken.is_empty());
        all.extend(taken);
    }
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(claimed, all.len(), "no message claimed twice");
    assert_eq!(all.len(), MESSAGES as usize, "every message claimed");
    assert!(busy > 1, "the relays shared the work");
    assert_eq!(outbox.depth(&db).await.unwrap().0, 0);
}

/// Replicas of every service starting at once on a new database: the migrations run once,
/// under a lock, and every replica comes up and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_migrate_once_and_all_serve() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let services = Service::ALL;
    let replicas: Vec<(Addrs, Proc)> = tokio::task::block_in_place(|| {
        let backing = Backing::database(&db);
        std::thread::scope(|s| {
            let starting: Vec<_> = services
                .iter()
                .flat_map(|service| (0..3).map(move |i| (*service, i)))
                .map(|(service, i)| {
                    let (backing, logs) = (&backing, logs.path());
                    s.spawn(move || {
                        let mut addrs = Addrs::free();
                        addrs.metrics.clear();
                        let name = format!("{service}-{i}");
                        let proc = start_replica(&name, service, &addrs, backing, logs, &[]);
                        (addrs, proc)
                    })
                })
                .collect();
            starting.into_iter().map(|t| t.join().unwrap()).collect()
        })
    });
    for (i, (addrs, _)) in replicas.iter().enumerate() {
        let service = services[i / 3];
        let addr = addrs.of(service);
        eventually(
            &format!("{service} replica {i} serving"),
            Duration::from_secs(60),
            || async {
                let status = HealthClient::new(channel(addr))
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .status;
                (status == ServingStatus::Serving as i32).then_some(())
            },
        )
        .await;
    }
    for service in services {
        let applied = pg.query(&format!("SELECT count(*) FROM {service}_migrations"));
        let distinct = pg.query(&format!(
            "SELECT count(DISTINCT version) FROM {service}_migrations"
        ));
        assert_eq!(applied, distinct, "{service}: each migration recorded once");
        assert_ne!(applied, "0");
    }
}

/// Configurations set at once through several replicas: each gets a version of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configurations_set_at_once_through_replicas_get_versions_of_their_own() {
    use rapport_proto::alerting::v1 as alerting;
    use rapport_proto::scoring::v1 as scoring;
    const SETS: usize = 8;
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let backing = Backing::database(&db);
    let replicas: Vec<(Addrs, Vec<Proc>)> = (0..2)
        .map(|i| {
            let mut addrs = Addrs::free();
            addrs.metrics.clear();
            let procs = [Service::Scoring, Service::Alerting]
                .into_iter()
                .map(|s| start_replica(&format!("{s}-{i}"), s, &addrs, &backing, logs.path(), &[]))
                .collect();
            (addrs, procs)
        })
        .collect();
    let clients: Vec<Clients> = replicas.iter().map(|(a, _)| Clients::new(a)).collect();
    let card = clients[0]
        .scoring
        .clone()
        .get_scorecard(req(scoring::GetScorecardRequest {}))
        .await
        .expect("the built-in scorecard")
        .into_inner()
        .toml;
    let rules = clients[0]
        .alerting
        .clone()
        .get_alert_config(req(alerting::GetAlertConfigRequest {}))
        .await
        .expect("the built-in rules")
        .into_inner()
        .toml;
    let sets: Vec<_> = (0..SETS)
        .map(|i| {
            let c = clients[i % 2].clone();
            let (card, rules) = (card.clone(), rules.clone());
            tokio::spawn(async move {
                let (mut scoring, mut alerting) = (c.scoring.clone(), c.alerting.clone());
                let scored =
                    scoring.set_scorecard(req(scoring::SetScorecardRequest { toml: card }));
                let alerted =
                    alerting.set_alert_config(req(alerting::SetAlertConfigRequest { toml: rules }));
                let (scored, alerted) = tokio::join!(scored, alerted);
                scored.expect("scorecard set");
                alerted.expect("alert config set");
            })
        })
        .collect();
    for set in sets {
        set.await.unwrap();
    }
    let distinct = |sql: &str| pg.query(sql).trim().parse::<usize>().unwrap();
    assert_eq!(
        distinct("SELECT count(DISTINCT revision) FROM scoring_scorecards"),
        SETS,
        "scorecard revisions"
    );
    assert_eq!(
        distinct("SELECT count(DISTINCT version) FROM alerting_configs"),
        SETS,
        "alert configuration versions"
    );
}
