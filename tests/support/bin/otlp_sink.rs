//! `otlp-sink [ADDR]`: an OTLP/gRPC trace receiver (default `0.0.0.0:4317`) that prints each
//! span it receives as `span service=… name=… trace=…`. The deployment checks run it in
//! Jaeger's place, since no registry here serves Jaeger's image.

use rapport_tests::otlp::Receiver;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:4317".to_owned());
    let receiver = Receiver::start_on(&addr).await;
    println!("listening on {}", receiver.endpoint);
    // PID 1 in a container ignores SIGTERM unless it handles it.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let spans = receiver.spans();
        for span in spans.iter().skip(printed) {
            println!(
                "span service={} name={} trace={}",
                span.service, span.name, span.trace_id
            );
        }
        printed = spans.len();
    }
}
