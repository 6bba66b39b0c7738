//! `rapport-ingestion`: the ingestion service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_ingestion::Config::parse();
    let common = config.common.clone();
    rapport_server::run_process(
        "rapport-ingestion",
        config.listen,
        &common,
        |listener, stop| rapport_ingestion::run(config, listener, stop),
    )
    .await
}
