//! One tenant's flood does not slow another: tenant A offers forty times its rate limits in
//! ingest and reads and is answered RESOURCE_EXHAUSTED at once (with a pushback, never a
//! time-out or another error), while tenant B's reads and ingests keep their idle latency.

use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_tests::scenario::order;
use rapport_tests::{Addrs, Backing, Postgres, Proc, Service, channel, eventually, keyed};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const KEY_A: &str = "key-tenant-a";
const KEY_B: &str = "key-tenant-b";
const KEY_C: &str = "key-tenant-c";
/// A's limits: events/s and requests/s per replica.
const A_EVENTS: u32 = 50;
const A_REQUESTS: u32 = 10;
const B_CUSTOMERS: usize = 20;
/// Rounds of (idle phase, flood phase): alternating, both see the same background noise.
const ROUNDS: usize = 8;
const PHASE: Duration = Duration::from_millis(1_500);

fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// What A's calls were answered: code name → count; and whether every refusal said when to
/// come back.
#[derive(Debug, Default)]
struct Answers {
    codes: BTreeMap<String, u64>,
    without_pushback: u64,
}

impl Answers {
    fn record<T>(&mut self, kind: &str, answer: &Result<T, tonic::Status>) {
        let code = match answer {
            Ok(_) => format!("{kind} Ok"),
            Err(s) => {
                if s.code() == tonic::Code::ResourceExhausted
                    && rapport_server::limits::pushback(s).is_none()
                {
                    self.without_pushback += 1;
                }
                format!("{kind} {:?}", s.code())
            }
        };
        *self.codes.entry(code).or_default() += 1;
    }
}

/// A's flood until `stop`: 400 ListHealth calls and 20 batches of 100 events a second, forty
/// times its limits (paced, so that the load is the server's, not this process's).
async fn flood(addrs: Addrs, stop: Arc<AtomicBool>, answers: Arc<Mutex<Answers>>) {
    let events: Vec<ingestion::Event> = (0..100)
        .map(|i| order(&format!("a-{i}"), &format!("a-c{}", i % 200), 1, 10.0))
        .collect();
    let mut tasks = Vec::new();
    for lane in 0..4 {
        let (stop, answers, events) = (stop.clone(), answers.clone(), events.clone());
        let ingestion_addr = addrs.ingestion.clone();
        let scoring_addr = addrs.scoring.clone();
        tasks.push(tokio::spawn(async move {
            let mut ingest = IngestionServiceClient::new(channel(&ingestion_addr))
                .max_decoding_message_size(64 << 20);
            let mut read = ScoringServiceClient::new(channel(&scoring_addr));
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                // Per lane: 100 reads/s, and 5 batches of 100 events/s.
                let answer = read
                    .list_health(keyed(scoring::ListHealthRequest::default(), KEY_A))
                    .await;
                answers.lock().await.record("read", &answer);
                if (n + lane).is_multiple_of(20) {
                    let answer = ingest
                        .ingest(keyed(
                            ingestion::IngestRequest {
                                events: events.clone(),
                                backfill: String::new(),
                            },
                            KEY_A,
                        ))
                        .await;
                    answers.lock().await.record("ingest", &answer);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// B's calls during `PHASE`: a read of one customer's health and an ingest of one event,
/// in turn; their latencies, and any failure.
async fn measure(
    addrs: &Addrs,
    round: usize,
    reads: &mut Vec<Duration>,
    writes: &mut Vec<Duration>,
    failures: &mut Vec<String>,
) {
    let mut read = ScoringServiceClient::new(channel(&addrs.scoring));
    let mut ingest = IngestionServiceClient::new(channel(&addrs.ingestion));
    let end = Instant::now() + PHASE;
    let mut i = 0;
    while Instant::now() < end {
        i += 1;
        let customer = format!("b-c{}", i % B_CUSTOMERS);
        let t = Instant::now();
        match read
            .get_health(keyed(
                scoring::GetHealthRequest {
                    customer_id: customer.clone(),
                },
                KEY_B,
            ))
            .await
        {
            Ok(_) => reads.push(t.elapsed()),
            Err(s) => failures.push(format!("read: {s:?}")),
        }
        let t = Instant::now();
        let event = order(&format!("b-{round}-{i}"), &customer, 1, 5.0);
        match ingest.ingest_one(keyed(event, KEY_B)).await {
            Ok(_) => writes.push(t.elapsed()),
            Err(s) => failures.push(format!("ingest: {s:?}")),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_over_its_limits_is_refused_at_once_and_others_keep_their_latency() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let addrs = Addrs::free();
    let keys = format!("{KEY_A}=a:admin,{KEY_B}=b:admin,{KEY_C}=c:admin");
    let limits = format!("a={A_EVENTS}/{A_REQUESTS},c=250/0");
    let env = [
        ("RAPPORT_API_KEYS", keys.as_str()),
        ("RAPPORT_TENANT_LIMITS", limits.as_str()),
    ];
    let url = pg.url();
    let backing = Backing::database(&url);
    let _procs: Vec<Proc> = Service::ALL
        .into_iter()
        .map(|s| rapport_tests::start_service_with(s, &addrs, &backing, logs.path(), &env))
        .collect();

    // B's customers, scored.
    let mut ingest = IngestionServiceClient::new(channel(&addrs.ingestion));
    let events = (0..B_CUSTOMERS)
        .map(|i| order(&format!("b-seed-{i}"), &format!("b-c{i}"), 3, 40.0))
        .collect();
    ingest
        .ingest(keyed(
            ingestion::IngestRequest {
                events,
                backfill: String::new(),
            },
            KEY_B,
        ))
        .await
        .unwrap();
    let scoring_addr = addrs.scoring.clone();
    eventually("B's customers scored", Duration::from_secs(30), || {
        let mut read = ScoringServiceClient::new(channel(&scoring_addr));
        async move {
            let req = scoring::GetHealthRequest {
                customer_id: format!("b-c{}", B_CUSTOMERS - 1),
            };
            read.get_health(keyed(req, KEY_B)).await.ok()
        }
    })
    .await;

    let (mut idle_reads, mut idle_writes) = (Vec::new(), Vec::new());
    let (mut flood_reads, mut flood_writes) = (Vec::new(), Vec::new());
    let mut failures = Vec::new();
    let answers = Arc::new(Mutex::new(Answers::default()));
    for round in 0..ROUNDS {
        measure(
            &addrs,
            2 * round,
            &mut idle_reads,
            &mut idle_writes,
            &mut failures,
        )
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let flooding = tokio::spawn(flood(addrs.clone(), stop.clone(), answers.clone()));
        // The flood is on before B measures.
        tokio::time::sleep(Duration::from_millis(300)).await;
        measure(
            &addrs,
            2 * round + 1,
            &mut flood_reads,
            &mut flood_writes,
            &mut failures,
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        flooding.await.unwrap();
    }

    let answers = answers.lock().await;
    eprintln!("tenant A's answers: {:?}", answers.codes);
    let (ir, iw, fr, fw) = (
        p99(&mut idle_reads),
        p99(&mut idle_writes),
        p99(&mut flood_reads),
        p99(&mut flood_writes),
    );
    eprintln!(
        "tenant B p99: reads {ir:?} idle, {fr:?} under A's flood ({} samples); ingest {iw:?} idle, {fw:?} under the flood",
        flood_reads.len()
    );
    assert!(failures.is_empty(), "tenant B saw failures: {failures:?}");
    // Both kinds of call are refused far more often than taken; nothing else is answered.
    for kind in ["read", "ingest"] {
        let count = |code: &str| {
            answers
                .codes
                .get(&format!("{kind} {code}"))
                .copied()
                .unwrap_or(0)
        };
        assert!(
            count("ResourceExhausted") > 5 * count("Ok").max(1),
            "{kind}: {:?}",
            answers.codes
        );
    }
    assert!(
        answers
            .codes
            .keys()
            .all(|k| k.ends_with(" Ok") || k.ends_with(" ResourceExhausted")),
        "only OK and RESOURCE_EXHAUSTED: {:?}",
        answers.codes
    );
    assert_eq!(answers.without_pushback, 0);
    assert!(
        fr <= ir * 2,
        "reads: p99 {fr:?} under the flood, {ir:?} idle"
    );
    assert!(
        fw <= iw * 2,
        "ingest: p99 {fw:?} under the flood, {iw:?} idle"
    );

    // An import above its tenant's rate paces itself by the pushbacks: two batches of 1,000
    // events at 250 a second are all accepted, in about four seconds.
    let file = logs.path().join("c.jsonl");
    let lines: String = (0..2_000)
        .map(|i| {
            format!(
                "{{\"event_id\":\"c-{i}\",\"customer_id\":\"c{}\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"order\":{{\"order_id\":\"o{i}\",\"amount\":5,\"currency\":\"USD\"}}}}\n",
                i % 50
            )
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let out = std::process::Command::new(rapport_tests::bin("rapport"))
        .arg("import")
        .arg(&file)
        .args(["--api-key", KEY_C, "--ingestion", &addrs.ingestion])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("accepted 2000 "),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
