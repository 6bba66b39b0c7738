//! `rapport-scoring`: the scoring service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_scoring::Config::parse();
    let metrics = config.common.metrics_listen;
    rapport_server::run_process(
        "rapport-scoring",
        config.listen,
        metrics,
        |listener, stop| rapport_scoring::run(config, listener, stop),
    )
    .await
}
