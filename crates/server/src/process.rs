//! The shape of every service binary: parse, set up telemetry, bind, run until a signal.

use crate::config::CommonArgs;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs one service as its own process: telemetry named `service` as `common` says, a
/// listener on `listen` (its address printed as `listening on ADDR` for supervisors and
/// tests), Prometheus metrics when `common` asks, and `run` until SIGINT or SIGTERM.
pub async fn run_process<F, Fut>(
    service: &str,
    listen: SocketAddr,
    common: &CommonArgs,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut telemetry = rapport_telemetry::init(service, &common.telemetry)?;
    let metrics = common.metrics_listen;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let stop = crate::shutdown_signal();
    if let Some(at) = metrics {
        rapport_telemetry::metrics::spawn(at, stop.clone());
    }
    println!("listening on {addr}");
    tracing::info!(%addr, service, "listening");
    let result = run(listener, stop).await;
    if let Err(error) = &result {
        tracing::error!(%error, service, "stopped with an error");
    }
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    result
}
