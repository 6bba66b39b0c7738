//! The console: server-rendered pages where customer-success managers see and act on customer
//! health. A client of the services' gRPC APIs that owns no tables; every asset is in the
//! binary, so the pages need no network beyond the installation.

pub mod backends;
pub mod charts;
pub mod pages;
pub mod session;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::routing::{get, post};
pub use backends::Addresses;
use backends::{Backends, Caller};
use pages::PageError;
use session::Identity;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The console's settings, from flags or `RAPPORT_*` environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rapport-console",
    version,
    about = "The Rapport console (web pages)"
)]
pub struct Config {
    /// Address to serve the pages on (HTTP; put TLS in the proxy in front).
    #[arg(long, env = "RAPPORT_CONSOLE_LISTEN", default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Address of the ingestion service.
    #[arg(long, env = "RAPPORT_INGESTION_ADDR", default_value = "127.0.0.1:7401")]
    pub ingestion_addr: String,
    /// Address of the scoring service.
    #[arg(long, env = "RAPPORT_SCORING_ADDR", default_value = "127.0.0.1:7402")]
    pub scoring_addr: String,
    /// Address of the segmentation service.
    #[arg(
        long,
        env = "RAPPORT_SEGMENTATION_ADDR",
        default_value = "127.0.0.1:7403"
    )]
    pub segmentation_addr: String,
    /// Address of the alerting service.
    #[arg(long, env = "RAPPORT_ALERTING_ADDR", default_value = "127.0.0.1:7404")]
    pub alerting_addr: String,
    /// Take the person from the `X-Forwarded-Email` / `X-Forwarded-User` headers of the
    /// authenticating proxy in front, and call the services with --api-key. Only behind a proxy
    /// that sets those headers and strips them from what browsers send.
    #[arg(long, env = "RAPPORT_CONSOLE_TRUST_PROXY", requires = "api_key")]
    pub trust_proxy_headers: bool,
    /// The key the console calls the services with for people the proxy vouches for.
    #[arg(long, env = "RAPPORT_CONSOLE_API_KEY")]
    pub api_key: Option<String>,
    /// CA (PEM) trusted when calling the services, which are then called over TLS.
    #[arg(long, env = "RAPPORT_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub telemetry: rapport_telemetry::Settings,
}

impl Config {
    /// The binary's defaults (its flags' declarations, not the environment) calling the
    /// services at these addresses: the console as `rapport up` and the benchmarks run it.
    pub fn calling(addrs: &Addresses) -> Result<Config, clap::Error> {
        rapport_server::config::defaults(&[
            "rapport-console",
            "--ingestion-addr",
            &addrs.ingestion,
            "--scoring-addr",
            &addrs.scoring,
            "--segmentation-addr",
            &addrs.segmentation,
            "--alerting-addr",
            &addrs.alerting,
        ])
    }

    /// The services' addresses.
    pub fn addresses(&self) -> Addresses {
        Addresses {
            ingestion: self.ingestion_addr.clone(),
            scoring: self.scoring_addr.clone(),
            segmentation: self.segmentation_addr.clone(),
            alerting: self.alerting_addr.clone(),
        }
    }
}

/// What every page handler shares.
#[derive(Clone)]
pub struct Console {
    pub backends: Backends,
    pub identity: Identity,
    pub clock: rapport_server::Clock,
    /// Cancelled when the console stops: live feeds end with it.
    pub stop: CancellationToken,
    /// Whether the console's own key (behind a proxy) may act, once asked.
    proxy_writes: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

/// A key's role, as the services name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRole(pub String);

impl KeyRole {
    /// Whether the key may act on alerts (acknowledge, snooze, resolve, record).
    pub fn writes(&self) -> bool {
        self.0 == "admin"
    }

    /// Whether the key may read what the pages show.
    pub fn reads(&self) -> bool {
        matches!(self.0.as_str(), "read" | "admin")
    }
}

impl Console {
    /// The console these settings describe.
    pub fn new(config: &Config) -> anyhow::Result<Console> {
        let tls = rapport_server::tls::TlsArgs {
            tls_ca: config.tls_ca.clone(),
            ..Default::default()
        };
        let backends = Backends::new(&config.addresses(), tls.client())?;
        let identity = match (&config.api_key, config.trust_proxy_headers) {
            (Some(key), true) => Identity::Proxy { key: key.clone() },
            _ => Identity::SignIn,
        };
        Ok(Console {
            backends,
            identity,
            clock: rapport_server::Clock::system(),
            stop: CancellationToken::new(),
            proxy_writes: Default::default(),
        })
    }

    /// Who is calling, or off to sign in.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, PageError> {
        let mut caller = self.identity.caller(headers).ok_or(PageError::SignIn)?;
        if let Identity::Proxy { .. } = self.identity {
            caller.can_write = *self
                .proxy_writes
                .get_or_try_init(|| async {
                    Ok::<_, tonic::Status>(self.role(&caller).await?.writes())
                })
                .await?;
        }
        Ok(caller)
    }

    /// What the services say `caller`'s key is.
    pub async fn role(&self, caller: &Caller) -> Result<KeyRole, tonic::Status> {
        let me = self
            .backends
            .caller()
            .who_am_i(caller.request(rapport_proto::common::v1::WhoAmIRequest {}))
            .await?
            .into_inner();
        Ok(KeyRole(me.role))
    }
}

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");
const ICON: &str = include_str!("../assets/favicon.svg");

/// Every page and asset of the console.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(pages::book::show))
        .route("/customers", get(pages::customers::show))
        .route("/customers.csv", get(pages::customers::csv))
        .route("/customers/{id}", get(pages::customer::show))
        .route("/alerts", get(pages::alerts::show))
        .route("/alerts/events", get(pages::alerts::events))
        .route("/alerts/{id}/{verb}", post(pages::alerts::act))
        .route(
            "/signin",
            get(pages::signin::show).post(pages::signin::submit),
        )
        .route("/signout", post(pages::signin::sign_out))
        .route("/segments", get(pages::segments::show))
        .route("/segments/{name}", get(pages::segments::members))
        .route("/interventions", get(pages::interventions::show))
        .route("/backtest", get(pages::backtest::show))
        .route("/assets/console.css", get(|| asset("text/css", CSS)))
        .route("/assets/console.js", get(|| asset("text/javascript", JS)))
        .route("/favicon.ico", get(|| asset("image/svg+xml", ICON)))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(console)
}

async fn asset(kind: &'static str, body: &'static str) -> impl axum::response::IntoResponse {
    (
        [(CONTENT_TYPE, kind), (CACHE_CONTROL, "public, max-age=300")],
        body,
    )
}

/// Serves the console on `listener` until `stop` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let console = Console::new(&config)?;
    serve(console, listener, stop).await
}

/// Serves `console` on `listener` until `stop` is cancelled; open live feeds end with it.
pub async fn serve(
    mut console: Console,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    console.stop = stop.clone();
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_of_rapport_up_calls_the_given_services_and_signs_people_in() {
        let addrs = Addresses {
            ingestion: "127.0.0.1:1".into(),
            scoring: "127.0.0.1:2".into(),
            segmentation: "127.0.0.1:3".into(),
            alerting: "127.0.0.1:4".into(),
        };
        let c = Config::calling(&addrs).unwrap();
        assert_eq!(c.addresses(), addrs);
        assert_eq!(c.listen, "127.0.0.1:7400".parse().unwrap());
        assert!(!c.trust_proxy_headers && c.api_key.is_none());
    }
}
