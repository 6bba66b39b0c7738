//! The scoring service: keeps per-customer metrics and explainable health scores, serves them
//! from the cache, and announces new scores to alerting through its outbox.

pub mod engine;
mod entity;
pub mod grpc;
pub mod migration;
pub mod params;
mod relay;
pub mod store;

use rapport_cache::{AnyCache, MemoryCache, RedisCache};
use rapport_domain::scorecard::Scorecard;
use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_server::{SERVICE_NAME, ScoringServiceServer};
use rapport_server::{Authenticator, CommonArgs, peer_channel};
use rapport_storage::outbox::Relay;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

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
    let ttl = Duration::from_secs(config.cache_ttl_secs);
    let cache = match &config.redis_url {
        Some(url) => AnyCache::Redis(RedisCache::connect(
            url,
            ttl,
            Duration::from_millis(config.cache_timeout_ms),
        )?),
        None => AnyCache::Memory(MemoryCache::new(1_000_000, ttl)),
    };

    let alerting = AlertingServiceClient::new(peer_channel(&config.alerting_addr)?);
    let (waker, relay) = Relay::new(
        migration::OUTBOX,
        db.clone(),
        relay::AlertNotifier::new(alerting, keys.service_key().to_owned()),
    )
    .spawn(stop.clone());

    let engine = engine::Engine {
        store: store::Store::new(db),
        cache,
        ingestion: IngestionServiceClient::new(peer_channel(&config.ingestion_addr)?)
            .max_decoding_message_size(256 * 1024 * 1024),
        service_key: keys.service_key().to_owned(),
        scorecard: Scorecard::default(),
        waker,
        models: Default::default(),
    };
    let engine = Arc::new(engine);
    if config.model_fit_interval_secs > 0 {
        tokio::spawn(fit_on_schedule(
            engine.clone(),
            Duration::from_secs(config.model_fit_interval_secs),
            stop.clone(),
        ));
    }
    let server = ScoringServiceServer::new(grpc::ScoringApi(engine));
    let routes = Routes::new(InterceptedService::new(server, Authenticator(keys)));
    rapport_server::serve(listener, routes, &[SERVICE_NAME], stop).await?;
    relay.await?;
    Ok(())
}

/// Refits every tenant's models every `interval` (population-level work is periodic), until
/// `stop`. The first run waits one interval: a restart does not refit at once.
async fn fit_on_schedule(engine: Arc<engine::Engine>, interval: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
        let tenants = match engine.store.tenants().await {
            Ok(t) => t,
            Err(error) => {
                tracing::warn!(%error, "scheduled model fit: cannot list tenants");
                continue;
            }
        };
        for tenant in tenants {
            if let Err(error) = engine.fit_models(&tenant, chrono::Utc::now()).await {
                tracing::warn!(%error, tenant, "scheduled model fit failed");
            }
        }
    }
}
