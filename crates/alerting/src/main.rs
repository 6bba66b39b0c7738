//! `rapport-alerting`: the alerting service as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = rapport_alerting::Config::parse();
    rapport_server::run_process("rapport-alerting", config.listen, |listener, stop| {
        rapport_alerting::run(config, listener, stop)
    })
    .await
}
