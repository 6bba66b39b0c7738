//! Many producers at once on PostgreSQL: every acknowledged event reaches its customer's
//! metrics exactly once, however the producers' transactions interleave.

use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::scoring::v1 as scoring;
use rapport_tests::scenario::order;
use rapport_tests::{Backing, Clients, Distributed, Postgres, req};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PRODUCERS: usize = 8;
const BATCHES: usize = 8;
const BATCH: usize = 1_000;
/// Every batch touches every one of these customers, so producers' batches overlap.
const CUSTOMERS: usize = 40;

/// Orders and their summed amounts, by customer.
type Folded = BTreeMap<String, (u64, f64)>;

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

/// What scoring holds for every customer: orders counted and their value.
async fn stored(clients: &Clients) -> Folded {
    let page = clients
        .scoring
        .clone()
        .list_customer_features(req(scoring::ListCustomerFeaturesRequest {
            after_customer_id: String::new(),
            page_size: 10_000,
            observation_end: None,
        }))
        .await
        .map(|r| r.into_inner().customers)
        .unwrap_or_default();
    page.into_iter()
        .map(|f| (f.customer_id, (f.frequency, f.monetary)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_on_postgres_fold_every_accepted_event_exactly_once() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let db = pg.url();
    let backing = Backing {
        database_url: &db,
        redis_url: None,
        otlp: None,
    };
    let platform = Distributed::start(&backing, logs.path());
    let clients = Clients::new(&platform.addrs);

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let clients = clients.clone();
            tokio::spawn(async move {
                let mut accepted = Folded::new();
                for events in batches(p) {
                    let answer = clients
                        .ingestion
                        .clone()
                        .ingest(req(ingestion::IngestRequest {
                            events: events.clone(),
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
        let now = stored(&clients).await;
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
