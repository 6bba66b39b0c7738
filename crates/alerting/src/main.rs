//! `rapport-alerting`: the alerting service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_alerting::Config::parse();
    let metrics = config.common.metrics_listen;
    rapport_server::run_process(
        "rapport-alerting",
        config.listen,
        metrics,
        |listener, stop| rapport_alerting::run(config, listener, stop),
    )
    .await
}
