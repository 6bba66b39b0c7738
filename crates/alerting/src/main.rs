//! `rapport-alerting`: the alerting service as its own process.

use clap::Parser;

/// mimalloc rather than the system allocator: a whole-tenant re-score spent about 15 % of
/// the machine in glibc's malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
