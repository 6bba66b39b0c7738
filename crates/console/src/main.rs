//! `rapport-console`: the console as its own process.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rapport_allocator::configure();
    let config = rapport_console::Config::parse();
    let mut telemetry = rapport_telemetry::init("rapport-console", &config.telemetry)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    println!("console on http://{addr}");
    tracing::info!(%addr, "console listening");
    let stop = rapport_server::shutdown_signal();
    let result = rapport_console::run(config, listener, stop).await;
    if let Err(error) = &result {
        tracing::error!(%error, "the console stopped with an error");
    }
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    result
}
