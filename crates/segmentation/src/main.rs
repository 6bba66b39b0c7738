//! `rapport-segmentation`: the segmentation service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_segmentation::Config::parse();
    let common = config.common.clone();
    rapport_server::run_process(
        "rapport-segmentation",
        config.listen,
        &common,
        |listener, stop| rapport_segmentation::run(config, listener, stop),
    )
    .await
}
