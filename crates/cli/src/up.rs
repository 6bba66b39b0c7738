//! `rapport up`: the four services in one process, on loopback ports, talking gRPC to each
//! other exactly as separate processes do, on SQLite and the in-process cache.

use crate::local::LocalPlatform;
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
    /// Port of the console (web pages); 0 picks a free one, as does --port-base 0.
    #[arg(long, env = "RAPPORT_CONSOLE_PORT", default_value_t = 7400)]
    pub console_port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Address to serve the four services' Prometheus metrics on (`GET /metrics`).
    #[arg(long, env = "RAPPORT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub telemetry: rapport_telemetry::Settings,
}

async fn bind(host: std::net::IpAddr, port: u16) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::new(host, port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The four services' settings in `rapport up`: each binary's own defaults (one source:
/// its flags' declarations), listening on the given addresses and calling each other there,
/// with their data under `data_dir`.
pub struct Configs {
    pub ingestion: rapport_ingestion::Config,
    pub scoring: rapport_scoring::Config,
    pub segmentation: rapport_segmentation::Config,
    pub alerting: rapport_alerting::Config,
}

impl Configs {
    /// The settings of services listening on `addrs` (ingestion, scoring, segmentation,
    /// alerting).
    pub fn of(data_dir: &std::path::Path, addrs: [SocketAddr; 4]) -> anyhow::Result<Configs> {
        let dir = data_dir
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("the data directory {data_dir:?} is not UTF-8"))?;
        let [ingestion, scoring, segmentation, alerting] = addrs.map(|a| a.to_string());
        let common = ["--data-dir", dir, "--allow-dev-keys"];
        let with = |bin: &'static str, flags: &[&str]| {
            let mut all = vec![bin];
            all.extend_from_slice(flags);
            all.extend_from_slice(&common);
            all.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        Ok(Configs {
            ingestion: settings(with(
                "rapport-ingestion",
                &["--listen", &ingestion, "--scoring-addr", &scoring],
            ))?,
            scoring: settings(with(
                "rapport-scoring",
                &[
                    "--listen",
                    &scoring,
                    "--ingestion-addr",
                    &ingestion,
                    "--alerting-addr",
                    &alerting,
                ],
            ))?,
            segmentation: settings(with(
                "rapport-segmentation",
                &[
                    "--listen",
                    &segmentation,
                    "--scoring-addr",
                    &scoring,
                    "--ingestion-addr",
                    &ingestion,
                ],
            ))?,
            alerting: settings(with(
                "rapport-alerting",
                &["--listen", &alerting, "--ingestion-addr", &ingestion],
            ))?,
        })
    }
}

/// A service's settings from its binary's arguments, with its defaults and not the
/// environment (`rapport up` is the development shape, whatever the shell exports).
fn settings<C: clap::Parser>(args: Vec<String>) -> anyhow::Result<C> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rapport_server::config::defaults(&args)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.first().copied().unwrap_or_default()))
}

/// Runs the platform until SIGINT or SIGTERM.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let mut telemetry = rapport_telemetry::init("rapport", &args.telemetry)?;
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
    let console_port = if args.port_base == 0 {
        0
    } else {
        args.console_port
    };
    let (console_l, console) = bind(args.host, console_port).await?;
    let stop = rapport_server::shutdown_signal();
    if let Some(at) = args.metrics_listen {
        rapport_telemetry::metrics::spawn(at, stop.clone());
    }
    let configs = Configs::of(&args.data_dir, [ingestion, scoring, segmentation, alerting])?;
    let ingestion_run = rapport_ingestion::run(configs.ingestion, ingestion_l, stop.clone());
    let scoring_run = rapport_scoring::run(configs.scoring, scoring_l, stop.clone());
    let segmentation_run =
        rapport_segmentation::run(configs.segmentation, segmentation_l, stop.clone());
    let alerting_run = rapport_alerting::run(configs.alerting, alerting_l, stop.clone());
    // People sign in with their API key.
    let console_config = rapport_console::Config::calling(&rapport_console::Addresses {
        ingestion: ingestion.to_string(),
        scoring: scoring.to_string(),
        segmentation: segmentation.to_string(),
        alerting: alerting.to_string(),
    })?;
    let console_run = rapport_console::run(console_config, console_l, stop.clone());

    let local = LocalPlatform {
        ingestion: ingestion.to_string(),
        scoring: scoring.to_string(),
        segmentation: segmentation.to_string(),
        alerting: alerting.to_string(),
        api_key: DEV_API_KEY.to_owned(),
        console: Some(console.to_string()),
    };
    local.save(&args.data_dir)?;
    outln!(
        "Rapport is up (SQLite under {}, in-process cache)",
        args.data_dir.display()
    );
    outln!("  ingestion     {ingestion}");
    outln!("  scoring       {scoring}");
    outln!("  segmentation  {segmentation}");
    outln!("  alerting      {alerting}");
    outln!("  console       http://{console}  (sign in with the API key)");
    outln!("  API key       {DEV_API_KEY}  (tenant \"dev\"; development only)");
    outln!("Stop with Ctrl-C. In another terminal, from this directory: rapport --help");

    let result = tokio::try_join!(
        async { ingestion_run.await.map_err(|e| e.context("ingestion")) },
        async { scoring_run.await.map_err(|e| e.context("scoring")) },
        async {
            segmentation_run
                .await
                .map_err(|e| e.context("segmentation"))
        },
        async { alerting_run.await.map_err(|e| e.context("alerting")) },
        async { console_run.await.map_err(|e| e.context("console")) },
    );
    if result.is_err() {
        stop.cancel();
    }
    let _ = std::fs::remove_file(LocalPlatform::path(&args.data_dir));
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_call_each_other_where_they_listen_with_their_binaries_defaults() {
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let dir = std::path::Path::new("/tmp/rapport-up");
        let c = Configs::of(dir, [addr(1), addr(2), addr(3), addr(4)]).unwrap();
        assert_eq!(
            (
                c.ingestion.listen,
                c.scoring.listen,
                c.segmentation.listen,
                c.alerting.listen
            ),
            (addr(1), addr(2), addr(3), addr(4))
        );
        assert_eq!(c.ingestion.scoring_addr, "127.0.0.1:2");
        assert_eq!(
            (
                c.scoring.ingestion_addr.as_str(),
                c.scoring.alerting_addr.as_str()
            ),
            ("127.0.0.1:1", "127.0.0.1:4")
        );
        assert_eq!(
            (
                c.segmentation.scoring_addr.as_str(),
                c.segmentation.ingestion_addr.as_str()
            ),
            ("127.0.0.1:2", "127.0.0.1:1")
        );
        for common in [
            &c.ingestion.common,
            &c.scoring.common,
            &c.segmentation.common,
            &c.alerting.common,
        ] {
            assert_eq!(common.data_dir, dir);
            assert_eq!(common.database_url, None, "SQLite under the data directory");
        }
        // Every other setting is the binary's own default, read from its flags.
        assert_eq!(c.scoring.rescore_interval_secs, 3_600);
        assert!(c.scoring.redis_url.is_none(), "the in-process cache");
        assert_eq!(c.alerting.sweep_ms, 1_000);
        assert_eq!(c.segmentation.interval_secs, 86_400);
    }
}
