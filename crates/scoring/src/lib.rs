//! The scoring service: keeps per-customer metrics and explainable health scores, serves them
//! from the cache, and announces new scores to alerting through its outbox.

pub mod backtest;
pub mod body;
pub mod engine;
mod entity;
pub mod evaluate;
pub mod features;
pub mod grpc;
pub mod migration;
pub mod params;
mod relay;
pub mod store;
pub mod view;

use rapport_cache::{AnyCache, MemoryCache, RedisCache};
use rapport_domain::scorecard::DEFAULT_TOML;
use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_server::{SERVICE_NAME, ScoringServiceServer};
use rapport_server::CommonArgs;
use rapport_storage::coordination::Schedules;
use rapport_storage::outbox::Relay;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// Settings of the scoring service.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "rapport-scoring", about = "Rapport's scoring service", version)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(long, env = "RAPPORT_SCORING_LISTEN", default_value = "127.0.0.1:7402")]
    pub listen: SocketAddr,
    /// Address of the ingestion service (to fetch new events).
    #[arg(long, env = "RAPPORT_INGESTION_ADDR", default_value = "127.0.0.1:7401")]
    pub ingestion_addr: String,
    /// Address of the alerting service.
    #[arg(long, env = "RAPPORT_ALERTING_ADDR", default_value = "127.0.0.1:7404")]
    pub alerting_addr: String,
    /// Redis URL for hot scores; without it, an in-process cache.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// How long a cached score lives, in seconds.
    #[arg(long, env = "RAPPORT_CACHE_TTL_SECS", default_value_t = 3_600)]
    pub cache_ttl_secs: u64,
    /// How often to refit every tenant's customer-base models, in seconds (0: only on demand).
    #[arg(
        long,
        env = "RAPPORT_MODEL_FIT_INTERVAL_SECS",
        default_value_t = 86_400
    )]
    pub model_fit_interval_secs: u64,
    /// How often to re-score every customer of every tenant, in seconds, so scores move with
    /// time alone (0: only on demand).
    #[arg(long, env = "RAPPORT_RESCORE_INTERVAL_SECS", default_value_t = 3_600)]
    pub rescore_interval_secs: u64,
    /// How often to look for expired overrides, in seconds.
    #[arg(long, env = "RAPPORT_OVERRIDE_SWEEP_SECS", default_value_t = 30)]
    pub override_sweep_secs: u64,
    /// A TOML scorecard to use instead of the built-in one for tenants without their own.
    #[arg(long, env = "RAPPORT_SCORECARD")]
    pub scorecard: Option<std::path::PathBuf>,
    /// Longest wait for Redis before reading from the database, in milliseconds.
    #[arg(long, env = "RAPPORT_CACHE_TIMEOUT_MS", default_value_t = 100)]
    pub cache_timeout_ms: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the service on `listener` until `stop` is cancelled, then flushes its outbox.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let db = rapport_storage::open::<migration::Migrator>(&config.common.database_url("scoring"))
        .await?;
    let keys = Arc::new(config.common.api_keys()?);
    let following = rapport_server::keys::follow_peer(
        keys.clone(),
        config.common.peer(&config.ingestion_addr)?,
        stop.clone(),
    );
    let ttl = Duration::from_secs(config.cache_ttl_secs);
    let cache = match &config.redis_url {
        Some(url) => AnyCache::Redis(RedisCache::connect(
            url,
            ttl,
            Duration::from_millis(config.cache_timeout_ms),
            redis_tls(&config.common.tls)?,
        )?),
        None => AnyCache::Memory(MemoryCache::new(1_000_000, ttl)),
    };

    let alerting = AlertingServiceClient::new(config.common.peer(&config.alerting_addr)?);
    let mut relay = Relay::new(
        migration::OUTBOX,
        db.clone(),
        relay::AlertNotifier::new(alerting, keys.service_key().to_owned()),
    );
    // A message carries a whole write's score changes (up to a re-score page), so a pass
    // takes fewer.
    relay.batch = 20;
    // The relay outlives the server: what the last calls wrote is delivered before exit.
    let served = CancellationToken::new();
    let (waker, relay) = relay.spawn(served.clone());

    let builtin = match &config.scorecard {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("scorecard {}: {e}", path.display()))?;
            engine::Builtin::new(&text)
                .map_err(|e| anyhow::anyhow!("scorecard {}: {e}", path.display()))?
        }
        None => engine::Builtin::new(DEFAULT_TOML)?,
    };
    let engine = engine::Engine::new(
        store::Store::new(db.clone()),
        cache,
        IngestionServiceClient::new(config.common.peer(&config.ingestion_addr)?)
            .max_decoding_message_size(256 * 1024 * 1024),
        keys.service_key().to_owned(),
        builtin,
        waker,
        engine::Clock::system(),
    );
    let engine = Arc::new(engine);
    let every = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let schedules = Schedules::new("scoring_schedules", db);
    for (work, interval) in [
        (Work::FitModels, config.model_fit_interval_secs),
        (Work::Rescore, config.rescore_interval_secs),
        (Work::Overrides, config.override_sweep_secs),
    ] {
        if let Some(interval) = every(interval) {
            let engine = engine.clone();
            tokio::spawn(schedules.clone().periodically(
                work.name(),
                interval,
                stop.clone(),
                move || {
                    let engine = engine.clone();
                    async move { run_once(&engine, work).await }
                },
            ));
        }
    }
    let drain = config.common.drain();
    let server = ScoringServiceServer::new(grpc::ScoringApi(engine, drain.draining(&stop)));
    let routes = Routes::new(server);
    let tls = config.common.tls.acceptor()?;
    let gate = config.common.gate(keys.clone())?;
    rapport_server::serve(listener, routes, &[SERVICE_NAME], stop, drain, tls, gate).await?;
    following.abort();
    served.cancel();
    relay.await?;
    Ok(())
}

/// Periodic work of the scoring service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Refit every tenant's customer-base models.
    FitModels,
    /// Re-score every customer of every tenant (scores move with time alone).
    Rescore,
    /// Re-score customers whose overrides expired.
    Overrides,
}

impl Work {
    /// The schedule's name, as its periods are recorded.
    pub fn name(self) -> &'static str {
        match self {
            Work::FitModels => "fit_models",
            Work::Rescore => "rescore",
            Work::Overrides => "expired_overrides",
        }
    }
}

/// Does one round of `work` for every tenant; failures are logged and retried next round.
pub async fn run_once(engine: &engine::Engine, work: Work) {
    if work == Work::Overrides {
        if let Err(error) = engine.apply_expired_overrides().await {
            tracing::warn!(%error, "expired overrides: re-score failed");
        }
        return;
    }
    let tenants = match engine.tenants().await {
        Ok(t) => t,
        Err(error) => {
            tracing::warn!(%error, ?work, "scheduled work: cannot list tenants");
            return;
        }
    };
    for tenant in tenants {
        let outcome = match work {
            Work::FitModels => engine.fit_models(&tenant, engine.now()).await.map(|_| ()),
            _ => engine.rescore_all(&tenant, |_| {}).await.map(|_| ()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, tenant, ?work, "scheduled work failed");
        }
    }
}

/// TLS towards Redis from this process's TLS settings: its CA, and its certificate as the
/// client's; `None` when it has neither.
fn redis_tls(
    tls: &rapport_server::tls::TlsArgs,
) -> anyhow::Result<Option<rapport_cache::RedisTls>> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    let ca = tls.tls_ca.as_deref().map(read).transpose()?;
    let client = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    Ok((ca.is_some() || client.is_some()).then_some(rapport_cache::RedisTls { ca, client }))
}
