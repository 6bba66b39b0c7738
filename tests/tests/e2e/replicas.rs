//! Several replicas of every service on one PostgreSQL and one Redis, under a sustained load
//! from several producers, through a rolling restart, a crash, whole-tenant work started on
//! two replicas at once and short schedules: nothing acknowledged is lost or counted twice,
//! scores are what one fresh process computes, schedules run once a period, alerts and
//! webhooks are not duplicated, and a watcher whose replica left resumes on another.

use rapport_proto::alerting::v1 as alerting;
use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::segmentation::v1 as segmentation;
use rapport_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use rapport_tests::scenario::{Folded, folded, nps, order};
use rapport_tests::{
    Addrs, Backing, Postgres, Proc, Redis, Service, channel, free_addrs, free_port, req, scrape,
    service_req, start_replica, webhook_receiver,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const CUSTOMERS: usize = 60;
const PRODUCERS: usize = 4;
const BATCH: usize = 100;
/// The scoring replicas' re-score schedule.
const RESCORE_EVERY: Duration = Duration::from_secs(3);
/// How long a replica pauses after SIGTERM before it drains, and its drain deadline.
const DRAIN_PAUSE_SECS: u64 = 1;
const DRAIN_TIMEOUT_SECS: u64 = 10;

/// Orders acknowledged, and their summed amounts, by customer.
type Ledger = Folded;

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The platform: every replica's address, its process, its metrics address.
struct Cluster {
    ingestion: Vec<String>,
    scoring: Vec<String>,
    segmentation: Vec<String>,
    alerting: Vec<String>,
    procs: BTreeMap<String, Proc>,
    metrics: BTreeMap<String, String>,
}

impl Cluster {
    /// The addresses a replica of `service` named `name` listens on and calls.
    fn addrs(&self, service: Service, own: &str, name: &str) -> Addrs {
        let list = |v: &[String]| v.join(",");
        let mut addrs = Addrs {
            ingestion: list(&self.ingestion),
            scoring: list(&self.scoring),
            segmentation: list(&self.segmentation),
            alerting: list(&self.alerting),
            metrics: BTreeMap::new(),
        };
        *addrs.of_mut(service) = own.to_owned();
        addrs.metrics.insert(service, self.metrics[name].clone());
        addrs
    }

    /// The addresses of every replica of `service`.
    fn replicas(&mut self, service: Service) -> &mut Vec<String> {
        match service {
            Service::Ingestion => &mut self.ingestion,
            Service::Scoring => &mut self.scoring,
            Service::Segmentation => &mut self.segmentation,
            Service::Alerting => &mut self.alerting,
        }
    }

    /// Starts (or restarts) replica `index` of `service`.
    fn start(&mut self, service: Service, index: usize, backing: &Backing<'_>, logs: &Path) {
        let own = self.replicas(service)[index].clone();
        let name = format!("{service}-{index}");
        let addrs = self.addrs(service, &own, &name);
        // A restarted replica logs to a file of its own.
        let log_name = match self.procs.contains_key(&name) {
            true => format!("{name}-again"),
            false => name.clone(),
        };
        let rescore = RESCORE_EVERY.as_secs().to_string();
        let (pause, timeout) = (DRAIN_PAUSE_SECS.to_string(), DRAIN_TIMEOUT_SECS.to_string());
        let env = [
            ("RAPPORT_LOG_JSON", "1"),
            ("RUST_LOG", "info,rapport_storage::coordination=debug"),
            ("RAPPORT_DRAIN_PAUSE_SECS", pause.as_str()),
            ("RAPPORT_DRAIN_TIMEOUT_SECS", timeout.as_str()),
            ("RAPPORT_RESCORE_INTERVAL_SECS", rescore.as_str()),
            ("RAPPORT_OVERRIDE_SWEEP_SECS", "1"),
            ("RAPPORT_SEGMENTATION_INTERVAL_SECS", "4"),
            ("RAPPORT_WEBHOOK_BACKOFF_MS", "100"),
        ];
        let proc = start_replica(&log_name, service, &addrs, backing, logs, &env);
        self.procs.insert(name, proc);
    }

    fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs.get_mut(name).expect("a started replica")
    }
}

/// A batch that failed: the replica that failed it, the code, and whether the batch was
/// stored all the same (its retry was answered DUPLICATE).
type Failure = (usize, tonic::Code, bool);

/// One producer: batches of orders (and some detractor answers) sent to the ingestion
/// replicas in turn until `stop`; a batch that fails is sent again to the other replica
/// (what was stored answers DUPLICATE). Answers what was acknowledged, and the failures.
async fn produce(
    p: usize,
    replicas: Vec<IngestionServiceClient<Channel>>,
    stop: Arc<AtomicBool>,
) -> (Ledger, Vec<Failure>) {
    let mut acked = Ledger::new();
    let mut failures = Vec::new();
    let mut b = 0;
    while !stop.load(Ordering::Relaxed) {
        let events: Vec<ingestion::Event> = (0..BATCH)
            .map(|i| {
                let customer = format!("c-{:02}", (i * 7 + p + b) % CUSTOMERS);
                let id = format!("p{p}-b{b}-{i}");
                if i % 25 == 0 {
                    nps(&id, &customer, 0, 2)
                } else {
                    order(&id, &customer, (i % 90) as i64, (1 + i % 9) as f64)
                }
            })
            .collect();
        let mut replica = (p + b) % replicas.len();
        let mut failed = Vec::new();
        let answer = loop {
            let call = replicas[replica]
                .clone()
                .ingest(req(ingestion::IngestRequest {
                    events: events.clone(),
                    ..Default::default()
                }))
                .await;
            match call {
                Ok(answer) => break answer.into_inner(),
                Err(status) => {
                    failed.push((replica, status.code()));
                    replica = (replica + 1) % replicas.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let stored_before = answer.duplicates > 0;
        failures.extend(failed.into_iter().map(|(r, code)| (r, code, stored_before)));
        for (event, result) in events.iter().zip(&answer.results) {
            let verdict = result.verdict;
            assert!(
                verdict == ingestion::Verdict::Accepted as i32
                    || verdict == ingestion::Verdict::Duplicate as i32,
                "{}: {result:?}",
                event.event_id
            );
            if let Some(ingestion::event::Payload::Order(o)) = &event.payload {
                let entry = acked.entry(event.customer_id.clone()).or_default();
                entry.0 += 1;
                entry.1 += o.amount;
            }
        }
        b += 1;
    }
    (acked, failures)
}

/// Watches alerts from revision 0 on the alerting replicas, moving to the other one when a
/// stream ends with an error, until `stop`; answers the revisions seen and the codes the
/// streams ended with.
async fn watch(
    replicas: Vec<AlertingServiceClient<Channel>>,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, Vec<tonic::Code>) {
    let (mut seen, mut ended) = (Vec::<u64>::new(), Vec::new());
    let mut replica = 0;
    while !stop.load(Ordering::Relaxed) {
        let after = seen.last().copied().unwrap_or(0);
        let mut watching = req(alerting::WatchAlertsRequest {
            after_revision: after,
        });
        watching.set_timeout(Duration::from_secs(600));
        let stream = replicas[replica].clone().watch_alerts(watching).await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(status) => {
                ended.push(status.code());
                replica = (replica + 1) % replicas.len();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            let next = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
            if stop.load(Ordering::Relaxed) {
                return (seen, ended);
            }
            match next {
                Err(_) => continue,
                Ok(Some(Ok(m))) if !m.bookmark => seen.push(m.revision),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(status))) => {
                    ended.push(status.code());
                    replica = (replica + 1) % replicas.len();
                    break;
                }
                Ok(None) => break,
            }
        }
    }
    (seen, ended)
}

/// Reads a progress stream to its end; its error, if it ends with one.
async fn to_the_end<T>(mut progress: tonic::Streaming<T>) -> Result<(), tonic::Status> {
    while let Some(p) = progress.next().await {
        p?;
    }
    Ok(())
}

/// Re-scores every customer twice (the second walk ranks by the tables the first made from
/// everyone's final metrics), then reads every customer's score.
async fn settled_scores(scoring: &ScoringServiceClient<Channel>) -> BTreeMap<String, f64> {
    for _ in 0..2 {
        let progress = scoring
            .clone()
            .rescore_all(req(scoring::RescoreAllRequest {}))
            .await
            .expect("rescore");
        to_the_end(progress.into_inner())
            .await
            .expect("rescore progress");
    }
    let ids: Vec<String> = (0..CUSTOMERS).map(|i| format!("c-{i:02}")).collect();
    scoring
        .clone()
        .batch_get_health(req(scoring::BatchGetHealthRequest { customer_ids: ids }))
        .await
        .expect("scores")
        .into_inner()
        .scores
        .into_iter()
        .map(|h| (h.customer_id, h.score))
        .collect()
}

/// The "scheduled round" lines of `schedule` in the JSON logs under `dir` whose file names
/// start with `service`, as seconds since the epoch, in order.
fn rounds(dir: &Path, service: &str, schedule: &str) -> Vec<f64> {
    let mut at = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(service) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["fields"]["message"] == "scheduled round" && v["fields"]["schedule"] == schedule {
                let t =
                    chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
                at.push(t.timestamp_millis() as f64 / 1000.0);
            }
        }
    }
    at.sort_by(f64::total_cmp);
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_of_replicas_loses_nothing_through_restarts_crashes_and_schedules() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let logs = tempfile::tempdir().unwrap();
    let (db, redis_url) = (pg.url(), redis.url());
    let backing = Backing {
        database_url: &db,
        redis_url: Some(&redis_url),
        otlp: None,
    };
    let mut cluster = Cluster {
        ingestion: Vec::new(),
        scoring: Vec::new(),
        segmentation: Vec::new(),
        alerting: Vec::new(),
        procs: BTreeMap::new(),
        metrics: BTreeMap::new(),
    };
    // Every replica's address and metrics address, drawn at once.
    let mut addrs = free_addrs(18).into_iter();
    for (service, n) in [
        (Service::Ingestion, 2),
        (Service::Scoring, 3),
        (Service::Segmentation, 2),
        (Service::Alerting, 2),
    ] {
        for i in 0..n {
            let own = addrs.next().expect("drawn");
            cluster.replicas(service).push(own);
            let metrics = addrs.next().expect("drawn");
            cluster.metrics.insert(format!("{service}-{i}"), metrics);
        }
    }
    for (service, n) in [
        (Service::Alerting, 2),
        (Service::Scoring, 3),
        (Service::Segmentation, 2),
        (Service::Ingestion, 2),
    ] {
        for i in 0..n {
            cluster.start(service, i, &backing, logs.path());
        }
    }
    let clients = |addrs: &[String]| addrs.iter().map(|a| channel(a)).collect::<Vec<_>>();
    let ingestion: Vec<_> = clients(&cluster.ingestion)
        .into_iter()
        .map(IngestionServiceClient::new)
        .collect();
    let scoring: Vec<_> = clients(&cluster.scoring)
        .into_iter()
        .map(ScoringServiceClient::new)
        .collect();
    let segmentation: Vec<_> = clients(&cluster.segmentation)
        .into_iter()
        .map(SegmentationServiceClient::new)
        .collect();
    let alerting: Vec<_> = clients(&cluster.alerting)
        .into_iter()
        .map(AlertingServiceClient::new)
        .collect();

    let hooks = tempfile::tempdir().unwrap();
    let (_receiver, base, hook_log) = webhook_receiver(hooks.path(), "{}");
    let hook_url = format!("{base}/hook");
    alerting[0]
        .clone()
        .create_webhook(req(alerting::CreateWebhookRequest {
            url: hook_url,
            route: Some(alerting::WebhookRoute {
                group_wait: Some(prost_types::Duration::default()),
                group_interval: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        }))
        .await
        .expect("webhook");

    let (producing, watching) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let watcher = tokio::spawn(watch(alerting.clone(), watching.clone()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(p, ingestion.clone(), producing.clone())))
        .collect();
    let load_started = Instant::now();

    // A rolling restart of scoring: one replica asked to stop, a fresh one in its place.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let exited = tokio::task::block_in_place(|| cluster.proc("scoring-2").terminate());
    let grace = DRAIN_PAUSE_SECS + DRAIN_TIMEOUT_SECS + 5;
    let exited = exited.expect("scoring-2 exited on SIGTERM");
    assert!(
        exited <= Duration::from_secs(grace),
        "scoring-2 took {exited:?} to exit"
    );
    cluster.start(Service::Scoring, 2, &backing, logs.path());

    // Ingestion: one replica asked to stop under load (its failures must all be UNAVAILABLE:
    // nothing it acknowledged fails), the other crashes; both come back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let exited = tokio::task::block_in_place(|| cluster.proc("ingestion-0").terminate());
    assert!(
        exited.is_some_and(|t| t <= Duration::from_secs(grace)),
        "{exited:?}"
    );
    cluster.start(Service::Ingestion, 0, &backing, logs.path());
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.proc("ingestion-1").kill();
    cluster.start(Service::Ingestion, 1, &backing, logs.path());

    // Whole-tenant work on two replicas at once.
    let rescores: Vec<_> = scoring[..2]
        .iter()
        .map(|s| {
            let mut s = s.clone();
            tokio::spawn(async move {
                let progress = s.rescore_all(req(scoring::RescoreAllRequest {})).await?;
                to_the_end(progress.into_inner()).await
            })
        })
        .collect();
    let runs: Vec<_> = segmentation
        .iter()
        .map(|s| {
            let mut s = s.clone();
            tokio::spawn(async move {
                let run = segmentation::RunSegmentationRequest { as_of: None };
                let progress = s.run_segmentation(req(run)).await?;
                to_the_end(progress.into_inner()).await
            })
        })
        .collect();
    for task in rescores.into_iter().chain(runs) {
        task.await
            .unwrap()
            .expect("whole-tenant work on two replicas at once");
    }
    // Both walks recorded the day's band count (one row, the later walk's) and their falls
    // under the walk's lock, without colliding.
    let weeks = scoring[0]
        .clone()
        .list_band_shares(req(scoring::ListBandSharesRequest { weeks: 1 }))
        .await
        .expect("band shares")
        .into_inner()
        .weeks;
    assert_eq!(weeks.len(), 1, "{weeks:?}");
    let w = &weeks[0];
    assert_eq!(
        (w.red + w.yellow + w.green + w.unscored) as usize,
        CUSTOMERS,
        "{w:?}"
    );
    scoring[1]
        .clone()
        .list_fallers(req(scoring::ListFallersRequest {
            days: 7,
            limit: 100,
        }))
        .await
        .expect("fallers");

    // The watcher's replica leaves: its stream ends, and it resumes on the other.
    let exited = tokio::task::block_in_place(|| cluster.proc("alerting-0").terminate());
    assert!(
        exited.is_some_and(|t| t <= Duration::from_secs(grace)),
        "{exited:?}"
    );
    cluster.start(Service::Alerting, 0, &backing, logs.path());

    tokio::time::sleep(Duration::from_secs(2)).await;
    // The load goes on until the restarted scoring replica has been notified (a busy machine
    // may have sent every notification of a fixed window to the others), within bounds.
    let notified = |text: &str| {
        text.lines().any(|l| {
            l.contains("method=\"NotifyCustomersChanged\"")
                && l.starts_with("rapport_rpc_requests_total")
        })
    };
    let fresh_metrics = cluster.metrics["scoring-2"].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !notified(&scrape(&fresh_metrics)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    producing.store(true, Ordering::Relaxed);
    let load = load_started.elapsed();
    let mut acked = Ledger::new();
    let mut failures = Vec::new();
    for producer in producers {
        let (ledger, failed) = producer.await.unwrap();
        for (customer, (n, sum)) in ledger {
            let entry = acked.entry(customer).or_default();
            entry.0 += n;
            entry.1 += sum;
        }
        failures.extend(failed);
    }
    let sent: u64 = acked.values().map(|(n, _)| n).sum();
    assert!(sent > 1_000, "a sustained load: {sent} orders in {load:?}");

    // 1. Every acknowledged order folded exactly once.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut now = folded(&scoring[0]).await;
    while now != acked && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = folded(&scoring[0]).await;
    }
    let differ: Vec<String> = acked
        .iter()
        .filter(|(c, want)| now.get(*c) != Some(want))
        .map(|(c, want)| format!("{c}: acknowledged {want:?}, folded {:?}", now.get(c)))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");

    // 2. Every score is what one fresh process computes from the events.
    pg.query("CREATE DATABASE fresh");
    let fresh_db = db.replace("/rapport", "/fresh");
    let fresh_backing = Backing::database(&fresh_db);
    let mut lone = cluster.addrs(Service::Scoring, &loopback(), "scoring-0");
    lone.metrics.clear();
    lone.alerting = format!("127.0.0.1:{}", free_port());
    let _fresh = start_replica(
        "fresh",
        Service::Scoring,
        &lone,
        &fresh_backing,
        logs.path(),
        &[],
    );
    let fresh = ScoringServiceClient::new(channel(&lone.scoring));
    fresh
        .clone()
        .notify_customers_changed(service_req(scoring::CustomersChanged {
            customer_ids: acked.keys().cloned().collect(),
        }))
        .await
        .expect("the fresh process folds every customer");
    assert_eq!(
        folded(&fresh).await,
        acked,
        "the fresh process folded the same"
    );
    let (ours, theirs) = (
        settled_scores(&scoring[1]).await,
        settled_scores(&fresh).await,
    );
    assert_eq!(ours.len(), acked.len());
    for (customer, score) in &theirs {
        let cluster_score = ours[customer];
        assert!(
            (cluster_score - score).abs() < 1e-9,
            "{customer}: the cluster scored {cluster_score}, a fresh process {score}"
        );
    }

    // 3. The replica asked to stop under load failed nothing it had taken: every batch it
    // answered with an error was not stored (its retry elsewhere was accepted, not a
    // duplicate). The crashed replica may have stored a batch it could not answer.
    let from_stopped: Vec<_> = failures.iter().filter(|(r, ..)| *r == 0).collect();
    assert!(
        !from_stopped.is_empty(),
        "the stopping replica was under load"
    );
    assert!(
        from_stopped.iter().all(|(_, _, stored)| !stored),
        "{from_stopped:?}"
    );

    // 4. The fresh scoring replica served calls.
    let text = scrape(&fresh_metrics);
    assert!(
        notified(&text),
        "the restarted scoring replica got no notification:\n{text}"
    );

    // 5. Each schedule ran once a period across the replicas.
    let rescored = rounds(logs.path(), "scoring", "rescore");
    assert!(rescored.len() >= 3, "{rescored:?}");
    let period = RESCORE_EVERY.as_secs_f64();
    for pair in rescored.windows(2) {
        assert!(
            pair[1] - pair[0] >= period * 0.9,
            "two re-score rounds {:.2} s apart: {rescored:?}",
            pair[1] - pair[0]
        );
    }

    // 6. The watcher saw every revision once, in order, across its replicas.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watching.store(true, Ordering::Relaxed);
    let (seen, ended) = watcher.await.unwrap();
    assert!(
        ended.contains(&tonic::Code::Unavailable),
        "the stream of the replica that left ended with UNAVAILABLE: {ended:?}"
    );
    assert!(!seen.is_empty());
    let expected: Vec<u64> = (1..=*seen.last().unwrap()).collect();
    assert_eq!(seen, expected, "no gap, no duplicate");

    // 7. One standing alert per dedup key.
    let alerts = alerting[1]
        .clone()
        .list_alerts(req(alerting::ListAlertsRequest::default()))
        .await
        .expect("alerts")
        .into_inner()
        .alerts;
    assert!(!alerts.is_empty());
    let mut standing = BTreeSet::new();
    for a in &alerts {
        if a.state != alerting::AlertState::Resolved as i32 {
            assert!(
                standing.insert(a.dedup_key.clone()),
                "two standing: {}",
                a.dedup_key
            );
        }
    }

    // 8. The webhook receiver got every delivery, none twice.
    let pending = || {
        pg.query(
            "SELECT (SELECT count(*) FROM alerting_deliveries) \
             + (SELECT count(*) FROM alerting_notices WHERE pending)",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending().trim() != "0" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(pending().trim(), "0", "every delivery made");
    let text = std::fs::read_to_string(&hook_log).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert!(!ids.is_empty());
    assert_eq!(distinct.len(), ids.len(), "a delivery was made twice");
    eprintln!(
        "{sent} orders acknowledged in {load:?}, {} failed calls retried, {} re-score rounds, \
         {} revisions watched over {} streams, {} alerts, {} webhook deliveries",
        failures.len(),
        rescored.len(),
        seen.len(),
        ended.len() + 1,
        alerts.len(),
        ids.len()
    );
}
