//! The segmentation service: population-level grading of customers (RFM quintiles and named
//! segments, value tiers with hysteresis, lifecycle stages), with every tier and stage change
//! recorded and announced to scoring through its outbox.

mod entity;
pub mod grading;
pub mod grpc;
mod kpis;
pub mod migration;
mod relay;
mod run;
mod spill;
pub mod store;

use rapport_domain::lifecycle::StageRules;
use rapport_domain::tier::TierCutoffs;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::segmentation::v1::segmentation_service_server::{
    SERVICE_NAME, SegmentationServiceServer,
};
use rapport_server::{ApiKeys, CommonArgs};
use rapport_storage::outbox::Relay;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// Deadline of one page requested from a peer (scoring's features, ingestion's events).
const PAGE_DEADLINE: Duration = Duration::from_secs(30);
/// Seconds between scheduled runs unless configured: daily.
const DEFAULT_INTERVAL_SECS: u64 = 86_400;

/// Settings of the segmentation service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rapport-segmentation",
    about = "Rapport's segmentation service",
    version
)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(
        long,
        env = "RAPPORT_SEGMENTATION_LISTEN",
        default_value = "127.0.0.1:7403"
    )]
    pub listen: SocketAddr,
    /// Address of the scoring service.
    #[arg(long, env = "RAPPORT_SCORING_ADDR", default_value = "127.0.0.1:7402")]
    pub scoring_addr: String,
    /// Address of the ingestion service (the KPIs read its event log).
    #[arg(long, env = "RAPPORT_INGESTION_ADDR", default_value = "127.0.0.1:7401")]
    pub ingestion_addr: String,
    /// Lifecycle rules: a first purchase this many days ago or less makes a customer new.
    #[arg(long, env = "RAPPORT_STAGE_NEW_DAYS", default_value_t = StageRules::default().new_days)]
    pub stage_new_days: f64,
    /// A last purchase this many days ago or less keeps a customer active.
    #[arg(long, env = "RAPPORT_STAGE_ACTIVE_DAYS", default_value_t = StageRules::default().active_days)]
    pub stage_active_days: f64,
    /// Up to this many days since the last purchase a customer is at risk, then dormant.
    #[arg(long, env = "RAPPORT_STAGE_AT_RISK_DAYS", default_value_t = StageRules::default().at_risk_days)]
    pub stage_at_risk_days: f64,
    /// Beyond this many days since the last purchase a customer has churned.
    #[arg(long, env = "RAPPORT_STAGE_DORMANT_DAYS", default_value_t = StageRules::default().dormant_days)]
    pub stage_dormant_days: f64,
    /// A fitted P(alive) below this means churned (0: never, the default).
    #[arg(long, env = "RAPPORT_STAGE_P_ALIVE_FLOOR", default_value_t = StageRules::default().p_alive_floor)]
    pub stage_p_alive_floor: f64,
    /// The value tiers rank by: `clv` (predicted 12-month CLV once the models are fitted,
    /// trailing 12-month spend before), `spend_12m`, or `monetary` (net value ever).
    #[arg(long, env = "RAPPORT_TIER_MEASURE", value_enum, default_value_t = TierMeasure::Clv)]
    pub tier_measure: TierMeasure,
    /// Tier cut-offs for VIP, Gold, Silver and Bronze: population shares
    /// (`shares:0.01,0.04,0.15,0.30`, the rest Regular) or least values of the measure
    /// (`absolute:5000,2000,500,100`).
    #[arg(long, env = "RAPPORT_TIER_CUTOFFS", default_value = "shares:0.01,0.04,0.15,0.30", value_parser = TierCutoffs::parse)]
    pub tier_cutoffs: TierCutoffs,
    /// Seconds between scheduled runs for every tenant segmentation has graded before (0: only
    /// on demand; a new tenant's first run is on demand).
    #[arg(
        long,
        env = "RAPPORT_SEGMENTATION_INTERVAL_SECS",
        default_value_t = DEFAULT_INTERVAL_SECS
    )]
    pub interval_secs: u64,
    /// Days a returning customer stays "reactivated".
    #[arg(long, env = "RAPPORT_STAGE_REACTIVATED_DAYS", default_value_t = StageRules::default().reactivated_days)]
    pub stage_reactivated_days: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What value tiers rank customers by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierMeasure {
    /// Predicted 12-month CLV once every customer has one, trailing 12-month spend before.
    Clv,
    /// Order value of the last 12 months.
    #[value(name = "spend_12m")]
    Spend12m,
    /// Net order value ever.
    Monetary,
}

impl Config {
    /// The lifecycle rules of these settings.
    pub fn stage_rules(&self) -> StageRules {
        StageRules {
            new_days: self.stage_new_days,
            active_days: self.stage_active_days,
            at_risk_days: self.stage_at_risk_days,
            dormant_days: self.stage_dormant_days,
            p_alive_floor: self.stage_p_alive_floor,
            reactivated_days: self.stage_reactivated_days,
        }
    }
}

/// The service's API on its migrated database, with its outbox relay running until `stop`
/// (await the handle to let it flush): what `run` serves. Its progress streams end when
/// `draining` is cancelled.
async fn api(
    config: &Config,
    keys: &ApiKeys,
    stop: CancellationToken,
    draining: CancellationToken,
) -> anyhow::Result<(Arc<grpc::SegmentationApi>, tokio::task::JoinHandle<()>)> {
    let db =
        rapport_storage::open::<migration::Migrator>(&config.common.database_url("segmentation"))
            .await?;
    let scoring = ScoringServiceClient::new(config.common.peer(&config.scoring_addr)?);
    let (waker, relay) = Relay::new(
        migration::OUTBOX,
        db.clone(),
        relay::TierNotifier::new(scoring.clone(), keys.service_key().to_owned()),
    )
    .spawn(stop);
    let api = Arc::new(grpc::SegmentationApi {
        store: store::Store::new(db),
        scoring,
        ingestion: IngestionServiceClient::new(config.common.peer(&config.ingestion_addr)?),
        service_key: keys.service_key().to_owned(),
        cutoffs: config.tier_cutoffs.clone(),
        measure: config.tier_measure,
        stage_rules: config.stage_rules(),
        waker,
        running: Arc::default(),
        draining,
        clock: rapport_server::Clock::system(),
    });
    Ok((api, relay))
}

/// Runs the service on `listener` until `stop` is cancelled, then flushes its outbox.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let keys = Arc::new(config.common.api_keys()?);
    let following = rapport_server::keys::follow_peer(
        keys.clone(),
        config.common.peer(&config.ingestion_addr)?,
        stop.clone(),
    );
    // The relay outlives the server: what the last calls wrote is delivered before exit.
    let served = CancellationToken::new();
    let drain = config.common.drain();
    let (api, relay) = api(&config, &keys, served.clone(), drain.draining(&stop)).await?;
    if config.interval_secs > 0 {
        // A scheduled run cut short by the exit stores nothing: its writes commit at its end.
        let (runs, stopping) = (api.clone(), stop.clone());
        tokio::spawn(api.store.schedules().periodically(
            "segmentation",
            Duration::from_secs(config.interval_secs),
            stop.clone(),
            move || scheduled_runs(runs.clone(), stopping.clone()),
        ));
    }
    let routes = Routes::new(SegmentationServiceServer::from_arc(api));
    let tls = config.common.tls.acceptor()?;
    let gate = config.common.gate(keys.clone())?;
    rapport_server::serve(listener, routes, &[SERVICE_NAME], stop, drain, tls, gate).await?;
    following.abort();
    served.cancel();
    relay.await?;
    Ok(())
}

/// A run for each tenant segmentation has graded before (one period of the schedule).
async fn scheduled_runs(api: Arc<grpc::SegmentationApi>, stop: CancellationToken) {
    let tenants = match api.store.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "scheduled segmentation: no tenant list");
            return;
        }
    };
    for tenant in tenants {
        if stop.is_cancelled() {
            return;
        }
        match api.run_for(&tenant, None, &|_| {}).await {
            Ok(run) => tracing::info!(
                tenant,
                customers = run.customers,
                tier_changes = run.tier_changes,
                "scheduled segmentation run"
            ),
            Err(status) => {
                tracing::warn!(tenant, error = %status.message(), "scheduled segmentation failed")
            }
        }
    }
}
