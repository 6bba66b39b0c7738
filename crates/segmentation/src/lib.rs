//! The segmentation service: population-level grading of customers (RFM quintiles and value
//! tiers), with every tier change recorded and announced to scoring through its outbox.

mod entity;
pub mod grpc;
pub mod migration;
mod relay;
pub mod store;

use rapport_domain::tier::TierShares;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::segmentation::v1::segmentation_service_server::{
    SERVICE_NAME, SegmentationServiceServer,
};
use rapport_server::{Authenticator, CommonArgs, peer_channel};
use rapport_storage::outbox::Relay;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

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
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the service on `listener` until `stop` is cancelled, then flushes its outbox.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let db =
        rapport_storage::open::<migration::Migrator>(&config.common.database_url("segmentation"))
            .await?;
    let keys = Arc::new(config.common.api_keys()?);
    let scoring = ScoringServiceClient::new(peer_channel(&config.scoring_addr)?);
    let (waker, relay) = Relay::new(
        migration::OUTBOX,
        db.clone(),
        relay::TierNotifier::new(scoring.clone(), keys.service_key().to_owned()),
    )
    .spawn(stop.clone());
    let api = grpc::SegmentationApi {
        store: store::Store::new(db),
        scoring,
        service_key: keys.service_key().to_owned(),
        shares: TierShares::default(),
        waker,
    };
    let routes = Routes::new(InterceptedService::new(
        SegmentationServiceServer::new(api),
        Authenticator(keys),
    ));
    rapport_server::serve(listener, routes, &[SERVICE_NAME], stop).await?;
    relay.await?;
    Ok(())
}
