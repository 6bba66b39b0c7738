//! `make bench-ingest`: events/s through the batch and the streaming APIs into PostgreSQL and
//! into SQLite (durable: each batch committed before it is acknowledged), next to a raw
//! multi-row INSERT of the same rows by the same process into a table of the same shape; and
//! the batch API over TLS next to plaintext, in turns, against the same database.

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

use prost::Message;
use rapport_proto::ingestion::v1 as pb;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1 as scoring;
use rapport_server::CommonArgs;
use sea_orm::sea_query::{Alias, Expr, PostgresQueryBuilder, Query, SqliteQueryBuilder};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const EVENTS: usize = 100_000;
const BATCH: usize = 2_500;
const ROWS_PER_INSERT: usize = 500;

fn events(run: &str) -> Vec<pb::Event> {
    let now = chrono::Utc::now().timestamp() - 86_400;
    (0..EVENTS)
        .map(|i| pb::Event {
            event_id: format!("{run}-{i:07}"),
            customer_id: format!("c{:05}", i % 20_000),
            occurred_at: Some(prost_types::Timestamp {
                seconds: now - (i % 1_000) as i64 * 60,
                nanos: 0,
            }),
            sent_at: None,
            payload: Some(pb::event::Payload::Order(pb::Order {
                order_id: format!("o-{i}"),
                amount: 10.0 + (i % 97) as f64,
                currency: "EUR".into(),
                items: 1 + (i % 3) as u32,
            })),
        })
        .collect()
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(120));
    if let Ok(v) = format!("Bearer {}", rapport_server::auth::DEV_API_KEY).parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// TLS material of the benchmark: a CA and the server's certificate.
struct Tls {
    ca: std::path::PathBuf,
    server: rapport_tests::certs::Pair,
}

/// Starts the ingestion service in this process on `database_url` (serving TLS with `tls`);
/// returns its client.
async fn start_ingestion(
    database_url: String,
    stop: CancellationToken,
    tls: Option<&Tls>,
) -> anyhow::Result<IngestionServiceClient<Channel>> {
    let scoring = rapport_bench::standin::start(scoring::HealthScore::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut common = CommonArgs::embedded(std::env::temp_dir());
    common.database_url = Some(database_url);
    let mut client_tls = rapport_server::tls::ClientTlsArgs::default();
    if let Some(t) = tls {
        common.tls.tls_cert = Some(t.server.cert.clone());
        common.tls.tls_key = Some(t.server.key.clone());
        client_tls.tls_ca = Some(t.ca.clone());
    }
    let config = rapport_ingestion::Config {
        listen: addr,
        scoring_addr: scoring.to_string(),
        max_future_skew_secs: 300,
        common,
    };
    tokio::spawn(rapport_ingestion::run(config, listener, stop));
    let channel = client_tls.endpoint(&addr.to_string())?.connect_lazy();
    let client = IngestionServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    // Wait until it answers (migrations done).
    for _ in 0..200 {
        if client
            .clone()
            .ingest(request(pb::IngestRequest {
                events: vec![],
                ..Default::default()
            }))
            .await
            .is_ok()
        {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("ingestion did not start")
}

async fn via_batches(
    client: &IngestionServiceClient<Channel>,
    events: Vec<pb::Event>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for chunk in events.chunks(BATCH) {
        let answer = client
            .clone()
            .ingest(request(pb::IngestRequest {
                events: chunk.to_vec(),
                ..Default::default()
            }))
            .await?
            .into_inner();
        anyhow::ensure!(
            answer.accepted as usize == chunk.len(),
            "not all accepted: {answer:?}"
        );
    }
    Ok(start.elapsed())
}

async fn via_stream(
    client: &IngestionServiceClient<Channel>,
    events: Vec<pb::Event>,
) -> anyhow::Result<Duration> {
    let n = events.len();
    let start = Instant::now();
    let mut answers = client
        .clone()
        .ingest_stream(request(tokio_stream::iter(events)))
        .await?
        .into_inner();
    let mut accepted = 0usize;
    while let Some(batch) = answers.message().await? {
        accepted += batch.accepted as usize;
    }
    anyhow::ensure!(accepted == n, "stream accepted {accepted} of {n}");
    Ok(start.elapsed())
}

/// The baseline: the same rows (already encoded and hashed) inserted with multi-row INSERTs,
/// one transaction per batch, into a table shaped (and indexed) like `ingestion_events`.
async fn raw_insert(database_url: &str, events: &[pb::Event]) -> anyhow::Result<Duration> {
    let db = rapport_storage::connect(database_url).await?;
    let backend = db.get_database_backend();
    let key = if backend == DbBackend::Postgres {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    };
    let blob = if backend == DbBackend::Postgres {
        "BYTEA"
    } else {
        "BLOB"
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS bench_raw (seq {key}, tenant_id VARCHAR NOT NULL, event_id VARCHAR(100) NOT NULL, \
         customer_id VARCHAR(100) NOT NULL, event_type VARCHAR NOT NULL, occurred_at BIGINT NOT NULL, sent_at BIGINT, \
         received_at BIGINT NOT NULL, payload {blob} NOT NULL, content_hash VARCHAR NOT NULL)"
    ))
    .await?;
    // The same two indexes as the events table: idempotency, and each customer's history.
    db.execute_unprepared(
        "CREATE UNIQUE INDEX IF NOT EXISTS bench_raw_id ON bench_raw (tenant_id, event_id)",
    )
    .await?;
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS bench_raw_customer ON bench_raw (tenant_id, customer_id, seq)",
    )
    .await?;
    let rows: Vec<(String, String, i64, Vec<u8>, String)> = events
        .iter()
        .map(|e| {
            let raw = e.encode_to_vec();
            let hash = hex::encode(Sha256::digest(&raw));
            (
                e.event_id.clone(),
                e.customer_id.clone(),
                e.occurred_at.map_or(0, |t| t.seconds * 1000),
                raw,
                hash,
            )
        })
        .collect();
    let start = Instant::now();
    for batch in rows.chunks(BATCH) {
        let txn = rapport_storage::begin_write(&db).await?;
        for chunk in batch.chunks(ROWS_PER_INSERT) {
            let mut insert = Query::insert();
            insert.into_table(Alias::new("bench_raw")).columns(
                [
                    "tenant_id",
                    "event_id",
                    "customer_id",
                    "event_type",
                    "occurred_at",
                    "received_at",
                    "payload",
                    "content_hash",
                ]
                .map(Alias::new),
            );
            for (id, customer, at, raw, hash) in chunk {
                insert.values_panic([
                    Expr::val("bench"),
                    Expr::val(id.as_str()),
                    Expr::val(customer.as_str()),
                    Expr::val("order"),
                    Expr::val(*at),
                    Expr::val(*at),
                    Expr::val(raw.clone()),
                    Expr::val(hash.as_str()),
                ]);
            }
            let (sql, values) = match backend {
                DbBackend::Postgres => insert.build(PostgresQueryBuilder),
                _ => insert.build(SqliteQueryBuilder),
            };
            txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        txn.commit().await?;
    }
    Ok(start.elapsed())
}

fn rate(d: Duration) -> f64 {
    EVENTS as f64 / d.as_secs_f64()
}

fn report(name: &str, ours: Duration, raw: Duration) {
    println!(
        "bench {name}: {:.0} events/s vs raw multi-row INSERT {:.0} events/s = {:.2}x of raw",
        rate(ours),
        rate(raw),
        rate(ours) / rate(raw)
    );
}

async fn bench(store: &str, database_url: String, tls: &Tls) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let client = start_ingestion(database_url.clone(), stop.clone(), None).await?;
    let secure = start_ingestion(database_url.clone(), stop.clone(), Some(tls)).await?;
    // Warm up connections and caches, then measure.
    via_batches(&client, events("warm")[..BATCH].to_vec()).await?;
    via_batches(&secure, events("warm-tls")[..BATCH].to_vec()).await?;
    let raw = raw_insert(&database_url, &events("raw")).await?;
    let batch = via_batches(&client, events("batch")).await?;
    let stream = via_stream(&client, events("stream")).await?;
    report(&format!("ingest-batch-{store}"), batch, raw);
    report(&format!("ingest-stream-{store}"), stream, raw);
    // In turns, so the table's growth weighs on both alike; the best of two each.
    let (mut plain, mut over_tls) = (Duration::MAX, Duration::MAX);
    for round in 0..2 {
        plain = plain.min(via_batches(&client, events(&format!("plain{round}"))).await?);
        over_tls = over_tls.min(via_batches(&secure, events(&format!("tls{round}"))).await?);
    }
    println!(
        "bench ingest-batch-tls-{store}: {:.0} events/s vs plaintext {:.0} events/s = {:.2}x of plaintext",
        rate(over_tls),
        rate(plain),
        rate(over_tls) / rate(plain)
    );
    stop.cancel();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The services' allocator, set up as they set it, so the figures are the deployed ones.
    rapport_allocator::configure();
    println!(
        "{EVENTS} order events per run, batches of {BATCH}, durable commits; 2 cores shared by client and server"
    );
    // RAPPORT_BENCH_STORE=postgres or =sqlite measures one store only.
    let only = std::env::var("RAPPORT_BENCH_STORE").ok();
    let certs = tempfile::tempdir()?;
    let ca = rapport_tests::certs::Ca::new(certs.path(), "bench");
    let tls = Tls {
        server: ca.issue("ingestion", "ingestion"),
        ca: ca.cert.clone(),
    };
    if only.as_deref().is_none_or(|s| s == "postgres") {
        let pg = rapport_tests::Postgres::start_durable();
        bench("postgres", pg.url(), &tls).await?;
    }
    if only.as_deref().is_none_or(|s| s == "sqlite") {
        let dir = tempfile::tempdir()?;
        bench(
            "sqlite",
            rapport_storage::sqlite_url(dir.path(), "bench"),
            &tls,
        )
        .await?;
    }
    Ok(())
}
