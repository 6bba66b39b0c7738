//! The alerting service: evaluates risk rules on new health scores and keeps deduplicated
//! alerts with an audit trail.

mod entity;
pub mod grpc;
pub mod migration;
pub mod store;

use rapport_domain::alert::HealthBelow;
use rapport_proto::alerting::v1::alerting_service_server::{AlertingServiceServer, SERVICE_NAME};
use rapport_server::{Authenticator, CommonArgs};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

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
    /// An alert opens when a customer's health falls below this.
    #[arg(long, env = "RAPPORT_HEALTH_ALERT_BELOW", default_value_t = 50.0)]
    pub health_alert_below: f64,
    /// An open alert resolves when the health reaches this.
    #[arg(long, env = "RAPPORT_HEALTH_ALERT_EXIT", default_value_t = 60.0)]
    pub health_alert_exit: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the service on `listener` until `stop` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.health_alert_exit >= config.health_alert_below,
        "health-alert-exit ({}) must not be below health-alert-below ({})",
        config.health_alert_exit,
        config.health_alert_below
    );
    let db = rapport_storage::open::<migration::Migrator>(&config.common.database_url("alerting"))
        .await?;
    let keys = Arc::new(config.common.api_keys()?);
    let api = grpc::AlertingApi {
        store: store::Store::new(db),
        rule: HealthBelow {
            enter_below: config.health_alert_below,
            exit_at_or_above: config.health_alert_exit,
        },
    };
    let routes = Routes::new(InterceptedService::new(
        AlertingServiceServer::new(api),
        Authenticator(keys),
    ));
    rapport_server::serve(listener, routes, &[SERVICE_NAME], stop).await?;
    Ok(())
}
