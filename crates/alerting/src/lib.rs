//! The alerting service: evaluates risk rules on customers' scores and signals, keeps
//! deduplicated alerts through their lifecycle with an audit trail, notifies signed webhooks
//! and watchers, recommends interventions and measures their effect.

mod entity;
pub mod grpc;
pub mod migration;
pub mod store;
pub mod webhook;
mod wire;

use rapport_proto::alerting::v1::alerting_service_server::{AlertingServiceServer, SERVICE_NAME};
use rapport_server::CommonArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// Settings of the alerting service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rapport-alerting",
    about = "Rapport's alerting service",
    version
)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(
        long,
        env = "RAPPORT_ALERTING_LISTEN",
        default_value = "127.0.0.1:7404"
    )]
    pub listen: SocketAddr,
    /// Address of the ingestion service (which keeps the managed API keys).
    #[arg(long, env = "RAPPORT_INGESTION_ADDR", default_value = "127.0.0.1:7401")]
    pub ingestion_addr: String,
    /// TOML file replacing the built-in alerting configuration (rules, playbook, holdout)
    /// for tenants that did not set their own.
    #[arg(long, env = "RAPPORT_ALERT_CONFIG")]
    pub alert_config: Option<PathBuf>,
    /// Milliseconds between sweeps for pending and resolve periods that ended, windows that
    /// moved, and snoozes that ended.
    #[arg(long, env = "RAPPORT_ALERT_SWEEP_MS", default_value_t = 1_000)]
    pub sweep_ms: u64,
    /// Watch revisions kept per tenant; resuming from an older one answers OUT_OF_RANGE.
    #[arg(long, env = "RAPPORT_WATCH_KEEP_REVISIONS", default_value_t = 100_000)]
    pub watch_keep_revisions: i64,
    /// Seconds between compactions of the watch log.
    #[arg(long, env = "RAPPORT_WATCH_COMPACT_SECS", default_value_t = 60)]
    pub watch_compact_secs: u64,
    /// Seconds without changes after which a watcher gets a heartbeat bookmark.
    #[arg(long, env = "RAPPORT_WATCH_HEARTBEAT_SECS", default_value_t = 15)]
    pub watch_heartbeat_secs: u64,
    /// Changes buffered per watcher before it counts as behind.
    #[arg(long, env = "RAPPORT_WATCH_BUFFER", default_value_t = 1_024)]
    pub watch_buffer: usize,
    /// Seconds a watcher may stay behind before its watch ends with RESOURCE_EXHAUSTED.
    #[arg(long, env = "RAPPORT_WATCH_SLOW_SECS", default_value_t = 10)]
    pub watch_slow_secs: u64,
    /// Attempts of a webhook delivery before it goes to the dead-letter list.
    #[arg(long, env = "RAPPORT_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: i32,
    /// First retry delay of a webhook delivery (doubling, with jitter).
    #[arg(long, env = "RAPPORT_WEBHOOK_BACKOFF_MS", default_value_t = 1_000)]
    pub webhook_backoff_ms: u64,
    /// Longest retry delay of a webhook delivery.
    #[arg(
        long,
        env = "RAPPORT_WEBHOOK_BACKOFF_MAX_SECS",
        default_value_t = 3_600
    )]
    pub webhook_backoff_max_secs: u64,
    /// Deadline of one webhook POST.
    #[arg(long, env = "RAPPORT_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// How watches are fed.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    pub heartbeat: Duration,
    pub buffer: usize,
    pub slow: Duration,
    /// How often a watcher looks for changes made by other replicas.
    pub poll: Duration,
}

/// Wakes watchers and the webhook worker when changes are committed.
#[derive(Debug, Clone, Default)]
pub struct Wakers {
    pub watch: Arc<Notify>,
    pub deliver: Arc<Notify>,
}

impl Wakers {
    /// Tells every watcher and the webhook worker that alerts changed.
    pub fn changed(&self) {
        self.watch.notify_waiters();
        self.deliver.notify_one();
    }
}

/// Runs the service on `listener` until `stop` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let text = match &config.alert_config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
        None => rapport_domain::alert::config::DEFAULT_TOML.to_owned(),
    };
    let builtin = store::LoadedConfig::builtin(&text)
        .map_err(|e| anyhow::anyhow!("alerting configuration: {e}"))?;
    anyhow::ensure!(
        config.watch_keep_revisions >= 1,
        "watch-keep-revisions must be at least 1"
    );
    let db = rapport_storage::open::<migration::Migrator>(&config.common.database_url("alerting"))
        .await?;
    let keys = Arc::new(config.common.api_keys()?);
    let following = rapport_server::keys::follow_peer(
        keys.clone(),
        config.common.peer(&config.ingestion_addr)?,
        stop.clone(),
    );
    let store = store::Store::new(db, builtin);
    let wakers = Wakers::default();

    let worker = webhook::Worker::new(
        store.clone(),
        webhook::Settings {
            max_attempts: config.webhook_max_attempts.max(1),
            backoff: rapport_storage::outbox::Backoff {
                base: Duration::from_millis(config.webhook_backoff_ms),
                max: Duration::from_secs(config.webhook_backoff_max_secs),
            },
            timeout: Duration::from_secs(config.webhook_timeout_secs),
            max_retry_after: Duration::from_secs(config.webhook_backoff_max_secs),
        },
        wakers.deliver.clone(),
        rapport_server::tls::web_client_config(config.common.tls.tls_ca.as_deref())?,
    );
    let delivering = tokio::spawn(worker.run(stop.clone()));
    let (swept, sweep_wakers) = (store.clone(), wakers.clone());
    let sweeping = tokio::spawn(store.schedules().periodically(
        "sweep",
        Duration::from_millis(config.sweep_ms.max(10)),
        stop.clone(),
        move || sweep(swept.clone(), sweep_wakers.clone()),
    ));
    let (compacted, keep) = (store.clone(), config.watch_keep_revisions);
    let compacting = tokio::spawn(store.schedules().periodically(
        "compact_watch_log",
        Duration::from_secs(config.watch_compact_secs.max(1)),
        stop.clone(),
        move || compact(compacted.clone(), keep),
    ));

    let drain = config.common.drain();
    let api = grpc::AlertingApi {
        draining: drain.draining(&stop),
        store,
        wakers,
        watch: WatchSettings {
            heartbeat: Duration::from_secs(config.watch_heartbeat_secs.max(1)),
            buffer: config.watch_buffer.max(1),
            slow: Duration::from_secs(config.watch_slow_secs.max(1)),
            poll: Duration::from_secs(1),
        },
    };
    let routes = Routes::new(AlertingServiceServer::new(api));
    let tls = config.common.tls.acceptor()?;
    let gate = config.common.gate(keys.clone())?;
    rapport_server::serve(listener, routes, &[SERVICE_NAME], stop, drain, tls, gate).await?;
    following.abort();
    let _ = tokio::join!(delivering, sweeping, compacting);
    Ok(())
}

/// Time-driven rule changes and snooze ends (one period of the sweep).
async fn sweep(store: store::Store, wakers: Wakers) {
    match store.sweep(rapport_storage::now_millis()).await {
        Ok(applied) if applied != store::Applied::default() => {
            tracing::info!(
                opened = applied.opened,
                updated = applied.updated,
                resolved = applied.resolved,
                "sweep changed alerts"
            );
            wakers.changed();
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "alert sweep failed"),
    }
}

/// Each tenant's watch log trimmed to its latest `keep` revisions (one period of the
/// compaction).
async fn compact(store: store::Store, keep: i64) {
    if let Err(e) = store.compact(keep).await {
        tracing::warn!(error = %e, "watch log compaction failed");
    }
}
