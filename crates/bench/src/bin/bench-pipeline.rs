//! `make bench-pipeline`: the highest rate of events the platform turns into scores and
//! alerts as fast as it accepts them, held for a minute, with the four services as separate
//! processes on PostgreSQL and Redis; beside the rate ingestion alone accepts in the same run.
//!
//! A rate is kept up with when, over the hold (after a warm-up), the p99 from sending an event
//! to the score that reflects it (`GetHealth`) and to its alert (`WatchAlerts`) are both under
//! a second and the backlog (the outboxes' depth) does not grow. The load mixes orders, NPS
//! answers, support tickets and engagement over `RAPPORT_BENCH_CUSTOMERS` customers (default
//! 20,000); probes are new customers' detractor answers, timed to their first score and their
//! alert. The search doubles the rate from 500 events/s until one is not kept up with, then
//! halves the gap three times.
//!
//! To find where the time goes: `RAPPORT_BENCH_RATE=N[,M…]` holds those rates instead, and
//! `RAPPORT_BENCH_PROFILE=1` prints after each hold the CPU of every process, the rows each
//! event wrote per table and PostgreSQL's costliest statements (`rapport_bench::profile`).
//! `RAPPORT_BENCH_SCORING_REPLICAS=N` runs N scoring processes. Each rate is held on a
//! platform started afresh.

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

use rapport_bench::profile::{self, Process};
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::ingestion::v1::event::Payload;
use rapport_proto::scoring::v1 as scoring;
use rapport_storage::sea_orm::DatabaseConnection;
use rapport_tests::servers::{Postgres, Redis};
use rapport_tests::{Addrs, Backing, Clients, Distributed, Service, req, start_service};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Batches of load a second (the batch size follows from the rate).
const BATCHES_PER_SEC: u64 = 10;
/// A probe every this long.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The goal on both latencies' p99.
const GOAL: Duration = Duration::from_secs(1);
/// Producers sending the load at once (each its share of the batches).
const PRODUCERS: usize = 4;

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn at_now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// Event `n` of the load: orders, NPS answers, tickets and engagement, over `customers`.
fn load_event(run: &str, n: u64, customers: u64) -> ingestion::Event {
    // Customers in a scattered order, so consecutive events rarely share one.
    let customer = format!("c{:07}", n.wrapping_mul(2_654_435_761) % customers);
    let payload = match n % 10 {
        0..=3 => Payload::Order(ingestion::Order {
            order_id: format!("{run}-o{n}"),
            amount: 10.0 + (n % 90) as f64,
            currency: "EUR".into(),
            items: 1,
        }),
        4 | 5 => Payload::Survey(ingestion::Survey {
            kind: ingestion::SurveyKind::Nps.into(),
            // Passives and promoters: detractors are the probes' to raise.
            score: 7 + (n % 4) as i32,
            comment: String::new(),
        }),
        6 | 7 => Payload::SupportTicket(ingestion::SupportTicket {
            ticket_id: format!("{run}-t{}", n / 2),
            status: if n % 10 == 6 {
                ingestion::TicketStatus::Opened
            } else {
                ingestion::TicketStatus::FirstResponse
            }
            .into(),
            channel: "email".into(),
            priority: ingestion::Priority::Normal.into(),
        }),
        _ => Payload::Engagement(ingestion::Engagement {
            kind: ingestion::EngagementKind::Login.into(),
            channel: "app".into(),
            count: 1,
            subject: String::new(),
        }),
    };
    ingestion::Event {
        event_id: format!("{run}-{n}"),
        customer_id: customer,
        occurred_at: Some(at_now()),
        sent_at: None,
        payload: Some(payload),
    }
}

/// Sends `per_sec` events a second from [`PRODUCERS`] producers until stopped; answers the
/// rate accepted.
async fn load(
    c: &Clients,
    run: &str,
    per_sec: u64,
    customers: u64,
    stop: CancellationToken,
) -> f64 {
    let started = Instant::now();
    let batch = (per_sec / BATCHES_PER_SEC).max(1);
    let accepted = Arc::new(AtomicU64::new(0));
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS as u64 {
        let (c, run, stop, accepted) = (c.clone(), run.to_owned(), stop.clone(), accepted.clone());
        producers.spawn(async move {
            let period = Duration::from_millis(1000 * PRODUCERS as u64 / BATCHES_PER_SEC);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut k = 0u64;
            while !stop.is_cancelled() {
                tick.tick().await;
                let events = (0..batch)
                    .map(|i| load_event(&run, ((k * PRODUCERS as u64 + p) * batch) + i, customers))
                    .collect();
                k += 1;
                send(&c, events, &accepted).await;
            }
        });
    }
    while producers.join_next().await.is_some() {}
    accepted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Sends one batch, counting the events accepted (a refused batch counts none).
async fn send(c: &Clients, events: Vec<ingestion::Event>, accepted: &AtomicU64) {
    let answer = c
        .ingestion
        .clone()
        .ingest(req(ingestion::IngestRequest {
            events,
            ..Default::default()
        }))
        .await;
    if let Ok(r) = answer {
        accepted.fetch_add(u64::from(r.into_inner().accepted), Ordering::Relaxed);
    }
}

/// What the probes of one phase measured.
#[derive(Debug, Default)]
struct Probed {
    to_score: Vec<Duration>,
    to_alert: Vec<Duration>,
    sent: usize,
}

/// Sends a probe every [`PROBE_EVERY`] until stopped: a new customer's detractor answer, timed
/// to its first score (polled for all waiting probes with one `BatchGetHealth` a round) and
/// its alert (on a `WatchAlerts` stream).
async fn probe(c: &Clients, run: &str, stop: CancellationToken) -> anyhow::Result<Probed> {
    let sent: rapport_bench::Sent = Arc::default();
    let (watcher, mut alerted) = rapport_bench::detractor_alerts(c, sent.clone()).await?;
    // One poller asks for every probe not yet scored in one call each round, so probes
    // waiting on a slow pipeline do not add load of their own (one call per probe would).
    let unscored: rapport_bench::Sent = Arc::default();
    let polling = CancellationToken::new();
    let poller = {
        let (mut scoring, unscored, polling) =
            (c.scoring.clone(), unscored.clone(), polling.clone());
        tokio::spawn(async move {
            let mut to_score = Vec::new();
            let mut round = tokio::time::interval(Duration::from_millis(20));
            loop {
                round.tick().await;
                let ids: Vec<String> = match unscored.lock() {
                    Ok(u) => u.keys().cloned().collect(),
                    Err(_) => break,
                };
                if ids.is_empty() && polling.is_cancelled() {
                    break;
                }
                if ids.is_empty() {
                    continue;
                }
                let Ok(answer) = scoring
                    .batch_get_health(req(scoring::BatchGetHealthRequest { customer_ids: ids }))
                    .await
                else {
                    continue;
                };
                let Ok(mut waiting) = unscored.lock() else {
                    break;
                };
                for h in &answer.get_ref().scores {
                    let reflects = h
                        .measures
                        .iter()
                        .any(|m| m.measure == "nps" && m.value == Some(1.0));
                    if let Some(started) = waiting.get(&h.customer_id).copied().filter(|_| reflects)
                    {
                        to_score.push(started.elapsed());
                        waiting.remove(&h.customer_id);
                    }
                }
                // A probe unscored after a minute is lost: it stops being asked for.
                waiting.retain(|_, started| started.elapsed() < Duration::from_secs(60));
            }
            to_score
        })
    };
    let mut k = 0;
    let mut tick = tokio::time::interval(PROBE_EVERY);
    while !stop.is_cancelled() {
        tick.tick().await;
        let customer = format!("{run}-probe-{k}");
        k += 1;
        let event = ingestion::Event {
            event_id: format!("{customer}-nps"),
            customer_id: customer.clone(),
            occurred_at: Some(at_now()),
            sent_at: None,
            payload: Some(Payload::Survey(ingestion::Survey {
                kind: ingestion::SurveyKind::Nps.into(),
                score: 1,
                comment: String::new(),
            })),
        };
        let started = Instant::now();
        for waiting in [&sent, &unscored] {
            if let Ok(mut s) = waiting.lock() {
                s.insert(customer.clone(), started);
            }
        }
        c.ingestion
            .clone()
            .ingest(req(ingestion::IngestRequest {
                events: vec![event],
                ..Default::default()
            }))
            .await?;
    }
    // The last probes get their time to arrive.
    let grace = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut probed = Probed {
        sent: k,
        ..Default::default()
    };
    while probed.to_alert.len() < k {
        match tokio::time::timeout_at(grace, alerted.recv()).await {
            Ok(Some(d)) => probed.to_alert.push(d),
            _ => break,
        }
    }
    polling.cancel();
    probed.to_score = poller.await?;
    watcher.abort();
    probed.to_score.sort();
    probed.to_alert.sort();
    Ok(probed)
}

fn p99(sorted: &[Duration]) -> Duration {
    if sorted.is_empty() {
        return Duration::MAX;
    }
    let i = ((sorted.len() as f64 - 1.0) * 0.99).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How one rate went.
#[derive(Debug)]
struct Held {
    rate: f64,
    to_score: Duration,
    to_alert: Duration,
    backlog: (i64, i64),
    lost: usize,
}

impl Held {
    fn kept_up(&self) -> bool {
        self.to_score < GOAL
            && self.to_alert < GOAL
            && self.lost == 0
            && self.backlog.1 <= self.backlog.0.max(10) * 2
    }
}

/// How each rate is held: the load's spread and durations, whether to profile, and how
/// many scoring replicas run.
struct Plan {
    customers: u64,
    warm_up: Duration,
    holding: Duration,
    profiling: bool,
    scoring_replicas: usize,
}

/// Holds `per_sec` on a platform of its own, started afresh (PostgreSQL, Redis and the
/// services), so each rate starts from the same state whatever the one before left behind
/// (an overload's dead rows being vacuumed, its backlog).
async fn hold_fresh(per_sec: u64, plan: &Plan, logs: &std::path::Path) -> anyhow::Result<Held> {
    let pg = if plan.profiling {
        Postgres::start_observed()
    } else {
        Postgres::start()
    };
    let redis = Redis::start();
    let (database_url, redis_url) = (pg.url(), redis.url());
    let backing = Backing {
        database_url: &database_url,
        redis_url: Some(&redis_url),
        otlp: None,
    };
    let platform = Distributed::start_scaled(&backing, logs, plan.scoring_replicas);
    let c = Clients::new(&platform.addrs);
    let db = rapport_storage::connect(&pg.url()).await?;
    let process = |name: &str, pid: u32, children: bool| Process {
        name: name.to_owned(),
        pid,
        children,
    };
    let mut profiled: Vec<Process> = Vec::new();
    if plan.profiling {
        profiled.extend(
            platform
                .procs
                .iter()
                .filter_map(|p| Some(process(&p.name, p.pid()?, false))),
        );
        profiled.extend(pg.postmaster_pid().map(|p| process("postgresql", p, true)));
        profiled.extend(redis.pid().map(|p| process("redis", p, false)));
        profiled.push(process("load, probes", std::process::id(), false));
    }
    hold(&c, &db, per_sec, plan, &profiled).await
}

/// Loads the platform at `per_sec` for the warm-up and the hold, probing through the hold.
async fn hold(
    c: &Clients,
    db: &DatabaseConnection,
    per_sec: u64,
    plan: &Plan,
    profiled: &[Process],
) -> anyhow::Result<Held> {
    let Plan {
        customers,
        warm_up,
        holding,
        ..
    } = *plan;
    let run = format!("r{per_sec}");
    let stop = CancellationToken::new();
    let loading = {
        let (c, run, stop) = (c.clone(), run.clone(), stop.clone());
        tokio::spawn(async move { load(&c, &run, per_sec, customers, stop).await })
    };
    tokio::time::sleep(warm_up).await;
    let before = rapport_bench::backlog(db).await?;
    let profiling = if profiled.is_empty() {
        None
    } else {
        profile::reset_statements(db).await?;
        Some(profile::mark(db, profiled).await?)
    };
    let stop_probes = CancellationToken::new();
    let probing = {
        let (c, run, stop) = (c.clone(), run.clone(), stop_probes.clone());
        tokio::spawn(async move { probe(&c, &run, stop).await })
    };
    tokio::time::sleep(holding).await;
    let after = rapport_bench::backlog(db).await?;
    if let Some(start) = &profiling {
        let events = per_sec as f64 * holding.as_secs_f64();
        let secs = holding.as_secs_f64();
        eprint!(
            "{}",
            profile::report(db, profiled, start, secs, events).await?
        );
    }
    stop_probes.cancel();
    stop.cancel();
    let rate = loading.await?;
    let probed = probing.await??;
    Ok(Held {
        rate,
        to_score: p99(&probed.to_score),
        to_alert: p99(&probed.to_alert),
        backlog: (before, after),
        lost: (probed.sent - probed.to_score.len()) + (probed.sent - probed.to_alert.len()),
    })
}

/// The rate ingestion alone accepts: [`PRODUCERS`] producers sending batches back to back for
/// `holding`, into a database of its own, with no scoring to tell.
async fn ingest_only(
    pg: &Postgres,
    logs: &std::path::Path,
    holding: Duration,
) -> anyhow::Result<f64> {
    pg.query("CREATE DATABASE ingest_only");
    let url = pg.url().replace("/rapport", "/ingest_only");
    let addrs = Addrs::free();
    let _ingestion = start_service(
        Service::Ingestion,
        &addrs,
        &Backing {
            database_url: &url,
            redis_url: None,
            otlp: None,
        },
        logs,
    );
    let c = Clients::new(&addrs);
    rapport_tests::eventually("ingestion answers", Duration::from_secs(60), || {
        let mut ingestion = c.ingestion.clone();
        async move {
            let answer = ingestion
                .ingest(req(ingestion::IngestRequest::default()))
                .await;
            answer.ok().map(|_| ())
        }
    })
    .await;
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS as u64 {
        let (c, accepted) = (c.clone(), accepted.clone());
        producers.spawn(async move {
            let mut k = 0;
            while started.elapsed() < holding {
                let events = (0..1_000)
                    .map(|i| load_event("only", (k * PRODUCERS as u64 + p) * 1_000 + i, 20_000))
                    .collect();
                k += 1;
                send(&c, events, &accepted).await;
            }
        });
    }
    while producers.join_next().await.is_some() {}
    Ok(accepted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let customers: u64 = std::env::var("RAPPORT_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let warm_up = seconds("RAPPORT_BENCH_WARM_UP_SECS", 10);
    let holding = seconds("RAPPORT_BENCH_HOLD_SECS", 60);
    // Rates to hold one after another, instead of the search.
    let only_rates: Vec<u64> = std::env::var("RAPPORT_BENCH_RATE")
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_default();
    let plan = Plan {
        customers,
        warm_up,
        holding,
        profiling: std::env::var_os("RAPPORT_BENCH_PROFILE").is_some(),
        scoring_replicas: std::env::var("RAPPORT_BENCH_SCORING_REPLICAS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
    };
    let logs = tempfile::tempdir()?;
    let only = {
        let pg = Postgres::start();
        ingest_only(&pg, logs.path(), Duration::from_secs(20)).await?
    };
    eprintln!("ingestion alone: {only:.0} events/s");

    if !only_rates.is_empty() {
        for rate in only_rates {
            let held = hold_fresh(rate, &plan, logs.path()).await?;
            println!("{rate} events/s: {held:?} kept up: {}", held.kept_up());
        }
        return Ok(());
    }
    let (mut kept, mut missed): (Option<Held>, Option<Held>) = (None, None);
    let mut rate = 500;
    while missed.is_none() && rate <= 128_000 {
        let held = hold_fresh(rate, &plan, logs.path()).await?;
        eprintln!("{rate} events/s: {held:?} kept up: {}", held.kept_up());
        if held.kept_up() {
            kept = Some(held);
            rate *= 2;
        } else {
            missed = Some(held);
        }
    }
    for _ in 0..3 {
        let (Some(low), Some(high)) = (&kept, &missed) else {
            break;
        };
        let rate = ((low.rate + high.rate) / 2.0) as u64;
        let held = hold_fresh(rate, &plan, logs.path()).await?;
        eprintln!("{rate} events/s: {held:?} kept up: {}", held.kept_up());
        if held.kept_up() {
            kept = Some(held);
        } else {
            missed = Some(held);
        }
    }
    let mut scale = rapport_bench::population(customers);
    if plan.scoring_replicas > 1 {
        scale = format!("{scale}-{}-scoring-replicas", plan.scoring_replicas);
    }
    match kept {
        Some(h) => println!(
            "bench pipeline-sustained-{scale}: {:.0} events/s (p99 event→score {} ms, event→alert {} ms) vs ingest-only {only:.0} events/s = {:.2}x",
            h.rate,
            h.to_score.as_millis(),
            h.to_alert.as_millis(),
            h.rate / only
        ),
        None => println!(
            "bench pipeline-sustained-{scale}: not kept up with at 500 events/s ({missed:?}) vs ingest-only {only:.0} events/s"
        ),
    }
    Ok(())
}
