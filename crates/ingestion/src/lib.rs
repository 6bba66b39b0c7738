//! The ingestion service: validates, deduplicates and durably stores customer events, and
//! tells scoring (through its outbox) which customers changed.

mod entity;
pub mod grpc;
pub mod keys;
pub mod migration;
mod relay;
pub mod store;

use rapport_domain::event::ValidationPolicy;
use rapport_proto::ingestion::v1::ingestion_service_server::{
    IngestionServiceServer, SERVICE_NAME,
};
use rapport_proto::keys::v1::key_service_server::{
    KeyServiceServer, SERVICE_NAME as KEY_SERVICE_NAME,
};
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_server::CommonArgs;
use rapport_storage::outbox::Relay;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// Settings of the ingestion service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rapport-ingestion",
    about = "Rapport's ingestion service",
    version
)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(
        long,
        env = "RAPPORT_INGESTION_LISTEN",
        default_value = "127.0.0.1:7401"
    )]
    pub listen: SocketAddr,
    /// Address of the scoring service.
    #[arg(long, env = "RAPPORT_SCORING_ADDR", default_value = "127.0.0.1:7402")]
    pub scoring_addr: String,
    /// How far in the future an event time may be, in seconds, for producers with fast clocks.
    #[arg(long, env = "RAPPORT_MAX_FUTURE_SKEW_SECS", default_value_t = 300)]
    pub max_future_skew_secs: i64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the service on `listener` until `stop` is cancelled, then flushes its outbox.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let db = rapport_storage::open::<migration::Migrator>(&config.common.database_url("ingestion"))
        .await?;
    let keys = Arc::new(config.common.api_keys()?);
    let key_store = keys::KeyStore::new(db.clone());
    let following = tokio::spawn(rapport_server::keys::follow(
        keys.clone(),
        {
            let store = key_store.clone();
            move || {
                let store = store.clone();
                async move {
                    store
                        .in_force(rapport_storage::now_millis())
                        .await
                        .map_err(|e| e.to_string())
                }
            }
        },
        stop.clone(),
    ));

    let scoring = ScoringServiceClient::new(config.common.peer(&config.scoring_addr)?);
    let notifier = relay::ScoringNotifier::new(scoring, keys.service_key().to_owned());
    let mut relay = Relay::new(migration::OUTBOX, db.clone(), notifier);
    // A message names a whole batch's customers (up to 2,500), so a pass takes fewer.
    relay.batch = 100;
    // The relay outlives the server: what the last calls wrote is delivered before exit.
    let served = CancellationToken::new();
    let (waker, relay) = relay.spawn(served.clone());

    let api = grpc::IngestionApi {
        store: store::Store::new(db),
        policy: ValidationPolicy {
            future_skew: chrono::Duration::seconds(config.max_future_skew_secs),
        },
        waker,
        draining: config.common.drain().draining(&stop),
        clock: rapport_server::Clock::system(),
    };
    let server = IngestionServiceServer::new(api)
        .max_decoding_message_size(grpc::MAX_REQUEST_BYTES)
        .max_encoding_message_size(usize::MAX);
    let key_api = keys::grpc::KeysApi {
        store: key_store,
        keys: keys.clone(),
        clock: rapport_server::Clock::system(),
    };
    let routes = Routes::new(server).add_service(KeyServiceServer::new(key_api));
    let drain = config.common.drain();
    let tls = config.common.tls.acceptor()?;
    let gate = config.common.gate(keys)?;
    rapport_server::serve(
        listener,
        routes,
        &[SERVICE_NAME, KEY_SERVICE_NAME],
        stop,
        drain,
        tls,
        gate,
    )
    .await?;
    served.cancel();
    following.abort();
    relay.await?;
    Ok(())
}
