//! `rapport-alerting`: the alerting service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_alerting::Config::parse();
    let common = config.common.clone();
    rapport_server::run_process(
        "rapport-alerting",
        config.listen,
        &common,
        |listener, stop| rapport_alerting::run(config, listener, stop),
    )
    .await
}
