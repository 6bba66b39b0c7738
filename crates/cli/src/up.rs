//! `rapport up`: the four services in one process, on loopback ports, talking gRPC to each
//! other exactly as separate processes do, on SQLite and the in-process cache.

use crate::local::LocalPlatform;
use rapport_server::CommonArgs;
use rapport_server::auth::DEV_API_KEY;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;

/// Options of `rapport up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Directory of the databases and of the local platform file.
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = ".rapport")]
    pub data_dir: PathBuf,
    /// First of four consecutive ports (ingestion, scoring, segmentation, alerting); 0 picks
    /// free ports.
    #[arg(long, env = "RAPPORT_PORT_BASE", default_value_t = 7401)]
    pub port_base: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Address to serve the four services' Prometheus metrics on (`GET /metrics`).
    #[arg(long, env = "RAPPORT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

async fn bind(host: std::net::IpAddr, port: u16) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::new(host, port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Runs the platform until SIGINT or SIGTERM.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut telemetry = rapport_telemetry::init("rapport")?;
    let port = |i: u16| {
        if args.port_base == 0 {
            0
        } else {
            args.port_base.saturating_add(i)
        }
    };
    let (ingestion_l, ingestion) = bind(args.host, port(0)).await?;
    let (scoring_l, scoring) = bind(args.host, port(1)).await?;
    let (segmentation_l, segmentation) = bind(args.host, port(2)).await?;
    let (alerting_l, alerting) = bind(args.host, port(3)).await?;
    let common = CommonArgs::embedded(args.data_dir.clone());
    let stop = rapport_server::shutdown_signal();
    if let Some(at) = args.metrics_listen {
        rapport_telemetry::metrics::spawn(at, stop.clone());
    }

    let ingestion_run = rapport_ingestion::run(
        rapport_ingestion::Config {
            listen: ingestion,
            scoring_addr: scoring.to_string(),
            max_future_skew_secs: 300,
            common: common.clone(),
        },
        ingestion_l,
        stop.clone(),
    );
    let scoring_run = rapport_scoring::run(
        rapport_scoring::Config {
            listen: scoring,
            ingestion_addr: ingestion.to_string(),
            alerting_addr: alerting.to_string(),
            redis_url: None,
            cache_ttl_secs: 3_600,
            cache_timeout_ms: 100,
            model_fit_interval_secs: 86_400,
            rescore_interval_secs: 3_600,
            override_sweep_secs: 30,
            scorecard: None,
            common: common.clone(),
        },
        scoring_l,
        stop.clone(),
    );
    let segmentation_run = rapport_segmentation::run(
        rapport_segmentation::Config::new(
            segmentation,
            scoring.to_string(),
            ingestion.to_string(),
            common.clone(),
        ),
        segmentation_l,
        stop.clone(),
    );
    let alerting_run = rapport_alerting::run(
        rapport_alerting::Config::new(alerting, common),
        alerting_l,
        stop.clone(),
    );

    let local = LocalPlatform {
        ingestion: ingestion.to_string(),
        scoring: scoring.to_string(),
        segmentation: segmentation.to_string(),
        alerting: alerting.to_string(),
        api_key: DEV_API_KEY.to_owned(),
    };
    local.save(&args.data_dir)?;
    println!(
        "Rapport is up (SQLite under {}, in-process cache)",
        args.data_dir.display()
    );
    println!("  ingestion     {ingestion}");
    println!("  scoring       {scoring}");
    println!("  segmentation  {segmentation}");
    println!("  alerting      {alerting}");
    println!("  API key       {DEV_API_KEY}  (tenant \"dev\"; development only)");
    println!("Stop with Ctrl-C. In another terminal, from this directory: rapport --help");

    let result = tokio::try_join!(
        async { ingestion_run.await.map_err(|e| e.context("ingestion")) },
        async { scoring_run.await.map_err(|e| e.context("scoring")) },
        async {
            segmentation_run
                .await
                .map_err(|e| e.context("segmentation"))
        },
        async { alerting_run.await.map_err(|e| e.context("alerting")) },
    );
    if result.is_err() {
        stop.cancel();
    }
    let _ = std::fs::remove_file(LocalPlatform::path(&args.data_dir));
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    result.map(|_| ())
}
