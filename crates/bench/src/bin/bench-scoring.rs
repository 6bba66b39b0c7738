//! `make bench-scoring`: the read path and the whole-tenant re-score.
//!
//! - `GetHealth` served from Redis by the scoring service, under a concurrent client, next to
//!   a bare tonic service answering the same message with no work, in the same process; the
//!   two are loaded in turns, in short rounds, so a slow spell of the machine falls on both.
//! - `RescoreAll` of `RAPPORT_BENCH_CUSTOMERS` (default 1,000,000) synthetic customers on
//!   PostgreSQL: the first run (every score new), a run a day later (scores moved by time),
//!   and an unchanged re-run, next to a bare read of the customers' rows.
//!
//! - The same `GetHealth` load over TLS next to plaintext, in turns.
//!
//! `RAPPORT_BENCH_ONLY=reads` or `=rescore` measures one of the two.

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

use chrono::{DateTime, Duration as Days, TimeZone, Utc};
use rapport_cache::{AnyCache, RedisCache};
use rapport_domain::scorecard::DEFAULT_TOML;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1 as pb;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_scoring::engine::{Builtin, Clock, Engine};
use rapport_scoring::store::Store;
use rapport_storage::outbox::RelayWaker;
use sea_orm::ConnectionTrait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const TENANT: &str = "dev";
/// Customers the read benchmark reads among.
const READ_CUSTOMERS: usize = 10_000;
/// Requests in flight at once for the throughput figure, and for the latency figure (a
/// moderately loaded service, not a saturated one).
const CONCURRENCY: usize = 32;
const LATENCY_CONCURRENCY: usize = 4;
/// Rounds of each read measurement: in each, the service and the bare one are loaded in turn
/// for [`ROUND`] (in alternating order), so the machine's slow spells fall on both.
const ROUNDS: u32 = 6;
const ROUND: Duration = Duration::from_millis(800);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

fn engine(store: Store, cache: AnyCache, clock: Clock) -> anyhow::Result<Engine> {
    Ok(Engine::new(
        store,
        cache,
        IngestionServiceClient::new(rapport_server::peer_channel("127.0.0.1:1")?),
        "bench".into(),
        Builtin::new(DEFAULT_TOML)?,
        RelayWaker::default(),
        clock,
    ))
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(10));
    if let Ok(v) = format!("Bearer {}", rapport_server::auth::DEV_API_KEY).parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// Requests/s and latencies of `GetHealth` at one address under some callers.
#[derive(Default)]
struct Load {
    latencies: Vec<Duration>,
    errors: u64,
    took: Duration,
}

impl Load {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.took.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q`.
    fn at(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        let last = self.latencies.len().saturating_sub(1);
        let i = ((self.latencies.len() as f64 * q) as usize).min(last);
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Loads `GetHealth` at `addr` (over TLS trusting `ca` when given) under `concurrency`
/// callers for `time`, adding to `into`.
async fn load(
    addr: std::net::SocketAddr,
    ca: Option<&std::path::Path>,
    concurrency: usize,
    time: Duration,
    into: &mut Load,
) -> anyhow::Result<()> {
    let tls = rapport_server::tls::ClientTlsArgs {
        tls_ca: ca.map(std::path::Path::to_path_buf),
        ..Default::default()
    };
    let channel: Channel = tls.endpoint(&addr.to_string())?.connect().await?;
    let started = Instant::now();
    let until = started + time;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let mut client = ScoringServiceClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut i) = (Vec::new(), 0u64, w);
            while Instant::now() < until {
                let started = Instant::now();
                let id = format!("c{:07}", (i * 7_919) % READ_CUSTOMERS);
                match client
                    .get_health(request(pb::GetHealthRequest { customer_id: id }))
                    .await
                {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
                i += concurrency;
            }
            (latencies, errors)
        }));
    }
    for t in tasks {
        let (l, e) = t.await?;
        into.latencies.extend(l);
        into.errors += e;
    }
    into.took += started.elapsed();
    Ok(())
}

async fn bench_reads() -> anyhow::Result<()> {
    let redis = rapport_tests::Redis::start();
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("scoring.db").display()
    );
    let db = rapport_storage::open::<rapport_scoring::migration::Migrator>(&url).await?;
    let cache = RedisCache::connect(
        &redis.url(),
        Duration::from_secs(3_600),
        Duration::from_millis(100),
        None,
    )?;
    cache.wait_connected(Duration::from_secs(10)).await;
    let store = Store::new(db);
    let seeder = engine(store.clone(), AnyCache::Redis(cache), Clock::system())?;
    rapport_bench::synthetic::seed(&store, TENANT, t0(), READ_CUSTOMERS).await?;
    seeder.rescore_all(TENANT, |_| {}).await?;
    let sample = seeder
        .health(TENANT, &["c0000001".to_owned()])
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no score seeded"))?;

    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut common = rapport_server::CommonArgs::embedded(dir.path().to_path_buf());
    common.database_url = Some(url);
    let config = |listen, common| rapport_scoring::Config {
        listen,
        ingestion_addr: "127.0.0.1:1".into(),
        alerting_addr: "127.0.0.1:1".into(),
        redis_url: Some(redis.url()),
        cache_ttl_secs: 3_600,
        model_fit_interval_secs: 0,
        rescore_interval_secs: 0,
        override_sweep_secs: 0,
        scorecard: None,
        cache_timeout_ms: 100,
        common,
    };
    // A second server on the same data, serving TLS.
    let certs = tempfile::tempdir()?;
    let ca = rapport_tests::certs::Ca::new(certs.path(), "bench");
    let server = ca.issue("scoring", "scoring");
    let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let tls_addr = tls_listener.local_addr()?;
    let mut tls_common = common.clone();
    tls_common.tls.tls_cert = Some(server.cert.clone());
    tls_common.tls.tls_key = Some(server.key.clone());
    tokio::spawn(rapport_scoring::run(
        config(addr, common),
        listener,
        stop.clone(),
    ));
    tokio::spawn(rapport_scoring::run(
        config(tls_addr, tls_common),
        tls_listener,
        stop.clone(),
    ));
    let echo = rapport_bench::standin::start(sample).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Warm both up, then measure them in turns.
    for warm in [addr, echo] {
        load(warm, None, CONCURRENCY, ROUND, &mut Load::default()).await?;
    }
    for (label, concurrency) in [
        ("throughput", CONCURRENCY),
        ("latency", LATENCY_CONCURRENCY),
    ] {
        let (mut ours, mut bare) = (Load::default(), Load::default());
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                load(addr, None, concurrency, ROUND, &mut ours).await?;
                load(echo, None, concurrency, ROUND, &mut bare).await?;
            } else {
                load(echo, None, concurrency, ROUND, &mut bare).await?;
                load(addr, None, concurrency, ROUND, &mut ours).await?;
            }
        }
        println!(
            "bench gethealth-redis-{label}: {concurrency} in flight: {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms, {} errors) vs bare tonic {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms) = {:.2}x of bare",
            ours.rps(),
            rapport_bench::ms(ours.at(0.50)),
            rapport_bench::ms(ours.at(0.99)),
            ours.errors,
            bare.rps(),
            rapport_bench::ms(bare.at(0.50)),
            rapport_bench::ms(bare.at(0.99)),
            ours.rps() / bare.rps()
        );
    }
    let (mut plain, mut secure) = (Load::default(), Load::default());
    load(
        tls_addr,
        Some(&ca.cert),
        CONCURRENCY,
        ROUND,
        &mut Load::default(),
    )
    .await?;
    for round in 0..ROUNDS {
        let first_plain = round % 2 == 0;
        for over_tls in [!first_plain, first_plain] {
            if over_tls {
                load(tls_addr, Some(&ca.cert), CONCURRENCY, ROUND, &mut secure).await?;
            } else {
                load(addr, None, CONCURRENCY, ROUND, &mut plain).await?;
            }
        }
    }
    println!(
        "bench gethealth-redis-tls: {CONCURRENCY} in flight: {:.0} req/s (p99 {:.2} ms, {} errors) vs plaintext {:.0} req/s (p99 {:.2} ms) = {:.2}x of plaintext",
        secure.rps(),
        rapport_bench::ms(secure.at(0.99)),
        secure.errors,
        plain.rps(),
        rapport_bench::ms(plain.at(0.99)),
        secure.rps() / plain.rps()
    );
    stop.cancel();
    Ok(())
}

async fn bench_rescore() -> anyhow::Result<()> {
    let n: usize = std::env::var("RAPPORT_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Commits synced to disk, as in production: a re-score commits every page it writes.
    let pg = rapport_tests::Postgres::start_durable();
    let db = rapport_storage::open::<rapport_scoring::migration::Migrator>(&pg.url()).await?;
    let redis = rapport_tests::Redis::start();
    let cache = RedisCache::connect(
        &redis.url(),
        Duration::from_secs(3_600),
        Duration::from_millis(500),
        None,
    )?;
    cache.wait_connected(Duration::from_secs(10)).await;
    let clock = Clock::fixed(t0());
    let store = Store::new(db.clone());
    let engine = Arc::new(engine(
        store.clone(),
        AnyCache::Redis(cache),
        clock.clone(),
    )?);
    let started = Instant::now();
    rapport_bench::synthetic::seed(&store, TENANT, t0(), n).await?;
    eprintln!(
        "seeded {n} customers in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT customer_id, metrics FROM scoring_customers WHERE tenant_id = 'dev'",
        ))
        .await?
        .len();
    let raw = started.elapsed();

    let timed = |label: &'static str| {
        let (engine, db) = (engine.clone(), db.clone());
        async move {
            let wal = wal_bytes(&db).await?;
            let started = Instant::now();
            let p = engine.rescore_all(TENANT, |_| {}).await?;
            let took = started.elapsed();
            let wal = wal_bytes(&db).await? - wal;
            println!(
                "bench rescore-{label}-postgres: {} customers in {:.1} s ({} changed, {:.0}/s, WAL {:.2} KB a customer) vs bare read of the customers' rows {:.1} s",
                p.done,
                took.as_secs_f64(),
                p.changed,
                p.done as f64 / took.as_secs_f64(),
                wal as f64 / 1e3 / p.done.max(1) as f64,
                raw.as_secs_f64()
            );
            anyhow::Ok(took)
        }
    };
    let first = timed("first").await?;
    clock.set(t0() + Days::days(1));
    timed("next-day").await?;
    timed("unchanged").await?;
    let mut sizes = Vec::new();
    for table in ["scoring_customers", "scoring_scores", "scoring_snapshots"] {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT pg_total_relation_size('{table}') AS bytes, \
                     (SELECT avg(pg_column_size(t.*))::float8 FROM \
                     (SELECT * FROM {table} LIMIT 10000) t) AS row_bytes"
                ),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no size of {table}"))?;
        let bytes: i64 = row.try_get("", "bytes")?;
        let row_bytes: Option<f64> = row.try_get("", "row_bytes")?;
        sizes.push(format!(
            "{table} {:.0} MB (rows of {:.0} B)",
            bytes as f64 / 1e6,
            row_bytes.unwrap_or(0.0)
        ));
    }
    println!("tables with their indexes: {}", sizes.join(", "));
    println!(
        "bench rescore-1m-goal: first full re-score of {rows} customers {:.1} s (goal < 60 s for 1,000,000)",
        first.as_secs_f64()
    );
    Ok(())
}

/// Bytes of write-ahead log PostgreSQL has written so far: what a run wrote is the difference.
async fn wal_bytes(db: &sea_orm::DatabaseConnection) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS bytes",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no WAL position"))?;
    Ok(row.try_get("", "bytes")?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The services' allocator, set up as they set it, so the figures are the deployed ones.
    rapport_allocator::configure();
    let only = std::env::var("RAPPORT_BENCH_ONLY").ok();
    if only.as_deref().is_none_or(|o| o == "reads") {
        bench_reads().await?;
    }
    if only.as_deref().is_none_or(|o| o == "rescore") {
        bench_rescore().await?;
    }
    Ok(())
}
