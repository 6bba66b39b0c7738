//! `rapport-scoring`: the scoring service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_scoring::Config::parse();
    let common = config.common.clone();
    rapport_server::run_process(
        "rapport-scoring",
        config.listen,
        &common,
        |listener, stop| rapport_scoring::run(config, listener, stop),
    )
    .await
}
