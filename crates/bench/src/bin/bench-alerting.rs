//! `make bench-alerting`: latency from an ingested event to the alert it causes (p50/p99),
//! under a sustained ingest load, with the four services as separate processes on
//! PostgreSQL and Redis; beside the same latency measured without load in the same run.
//!
//! Each probe is a new customer's NPS answer of 1 (a detractor); its latency runs from the
//! moment the event is sent to the moment the detractor alert arrives on a `WatchAlerts`
//! stream.

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

use rapport_bench::Sent;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_tests::scenario::{nps, order};
use rapport_tests::servers::{Postgres, Redis};
use rapport_tests::{Clients, Distributed, req};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Probes per phase.
const PROBES: usize = 100;
/// Time between probes.
const PROBE_EVERY: Duration = Duration::from_millis(150);
/// Background load: batches per second (the batch size follows from the rate).
const LOAD_BATCHES_PER_SEC: u64 = 10;
/// Background load in events per second, unless `RAPPORT_BENCH_EVENTS_PER_SEC` says otherwise.
const DEFAULT_EVENTS_PER_SEC: usize = 1_000;
/// Customers the load spreads over.
const LOAD_CUSTOMERS: usize = 20_000;

/// Sends `PROBES` detractor answers and returns each one's latency to its alert.
async fn probe(c: &Clients, phase: &str) -> anyhow::Result<Vec<Duration>> {
    let sent: Sent = Arc::default();
    let (watcher, mut rx) = rapport_bench::detractor_alerts(c, sent.clone()).await?;
    for i in 0..PROBES {
        let customer = format!("{phase}-probe-{i}");
        let event = nps(&format!("{customer}-nps"), &customer, 0, 1);
        if let Ok(mut s) = sent.lock() {
            s.insert(customer, Instant::now());
        }
        c.ingestion
            .clone()
            .ingest(req(ingestion::IngestRequest {
                events: vec![event],
                ..Default::default()
            }))
            .await?;
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let mut latencies = Vec::with_capacity(PROBES);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while latencies.len() < PROBES {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) => latencies.push(d),
            _ => break,
        }
    }
    watcher.abort();
    anyhow::ensure!(
        latencies.len() == PROBES,
        "{phase}: only {} of {PROBES} probes raised their alert within a minute",
        latencies.len()
    );
    latencies.sort();
    Ok(latencies)
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Ingests orders at a steady rate until stopped; returns the rate accepted (events/s).
async fn load(c: Clients, per_sec: usize, stop: tokio_util::sync::CancellationToken) -> f64 {
    let started = Instant::now();
    let batch = (per_sec / LOAD_BATCHES_PER_SEC as usize).max(1);
    let mut accepted = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / LOAD_BATCHES_PER_SEC));
    let mut n = 0usize;
    while !stop.is_cancelled() {
        tick.tick().await;
        let events: Vec<ingestion::Event> = (0..batch)
            .map(|_| {
                n += 1;
                let customer = format!("load-{}", n % LOAD_CUSTOMERS);
                order(&format!("load-{n}"), &customer, (n % 300) as i64, 20.0)
            })
            .collect();
        if let Ok(r) = c
            .ingestion
            .clone()
            .ingest(req(ingestion::IngestRequest {
                events,
                ..Default::default()
            }))
            .await
        {
            accepted += u64::from(r.into_inner().accepted);
        }
    }
    accepted as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The services' allocator, set up as they set it, so the figures are the deployed ones.
    rapport_allocator::configure();
    let pg = Postgres::start();
    let redis = Redis::start();
    let logs = tempfile::tempdir()?;
    let platform = Distributed::on_postgres_and_redis(&pg, &redis, logs.path());
    let c = Clients::new(&platform.addrs);

    let per_sec = std::env::var("RAPPORT_BENCH_EVENTS_PER_SEC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EVENTS_PER_SEC);
    let quiet = probe(&c, "quiet").await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let loading = tokio::spawn(load(c.clone(), per_sec, stop.clone()));
    // Let the load reach a steady state before measuring under it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded = probe(&c, "loaded").await?;
    stop.cancel();
    let rate = loading.await?;

    let (p50, p99) = (quantile(&loaded, 0.5), quantile(&loaded, 0.99));
    let (q50, q99) = (quantile(&quiet, 0.5), quantile(&quiet, 0.99));
    println!(
        "bench alert-latency-p50: {p50:.0} ms under {rate:.0} events/s vs {q50:.0} ms idle = {:.2}x",
        p50 / q50
    );
    println!(
        "bench alert-latency-p99: {p99:.0} ms under {rate:.0} events/s vs {q99:.0} ms idle = {:.2}x (goal < 1000 ms)",
        p99 / q99
    );
    Ok(())
}
