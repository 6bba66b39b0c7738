//! `rapport-segmentation`: the segmentation service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = rapport_segmentation::Config::parse();
    rapport_server::run_process("rapport-segmentation", config.listen, |listener, stop| {
        rapport_segmentation::run(config, listener, stop)
    })
    .await
}
