//! Prometheus metrics of a process: one registry (under `rapport up` the four services share
//! it; gRPC series carry the service in their labels, outbox series the outbox), and the text
//! exposition served on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Label pairs of a series.
pub type Labels = Vec<(&'static str, String)>;

/// Every metric Rapport exports.
pub struct Metrics {
    registry: Registry,
    /// gRPC calls served, by service, method and status code.
    pub rpc_requests: Family<Labels, Counter>,
    /// gRPC call latency to the response headers, by service and method.
    pub rpc_seconds: Family<Labels, Histogram>,
    /// Messages waiting in an outbox, by outbox.
    pub outbox_depth: Family<Labels, Gauge>,
    /// Age of the oldest waiting message of an outbox, by outbox.
    pub outbox_lag_seconds: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Messages an outbox relay delivered or failed to deliver, by outbox and outcome.
    pub outbox_messages: Family<Labels, Counter>,
    /// Ingested events by verdict (accepted, duplicate, rejected) and rejection reason.
    pub events: Family<Labels, Counter>,
    /// Score reads by where they were answered (cache hit, database after a miss).
    pub cache_reads: Family<Labels, Counter>,
    /// Alert changes by rule and change (opened, updated, resolved, ...).
    pub alert_changes: Family<Labels, Counter>,
    /// Webhook delivery attempts by outcome (delivered, retry, dead).
    pub webhook_attempts: Family<Labels, Counter>,
}

fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rapport");
        let rpc_requests = Family::<Labels, Counter>::default();
        registry.register(
            "rpc_requests",
            "gRPC calls served, by service, method and status code",
            rpc_requests.clone(),
        );
        let rpc_seconds =
            Family::<Labels, Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register(
            "rpc_seconds",
            "gRPC call latency to the response headers",
            rpc_seconds.clone(),
        );
        let outbox_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "outbox_depth",
            "Messages waiting in an outbox",
            outbox_depth.clone(),
        );
        let outbox_lag_seconds = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "outbox_lag_seconds",
            "Age of the oldest message waiting in an outbox",
            outbox_lag_seconds.clone(),
        );
        let outbox_messages = Family::<Labels, Counter>::default();
        registry.register(
            "outbox_messages",
            "Outbox messages delivered or failed, by outcome",
            outbox_messages.clone(),
        );
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "events",
            "Ingested events by verdict and rejection reason (rejected ones are quarantined)",
            events.clone(),
        );
        let cache_reads = Family::<Labels, Counter>::default();
        registry.register(
            "cache_reads",
            "Health reads by where they were answered (hit or miss)",
            cache_reads.clone(),
        );
        let alert_changes = Family::<Labels, Counter>::default();
        registry.register(
            "alert_changes",
            "Alert changes by rule and change",
            alert_changes.clone(),
        );
        let webhook_attempts = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_attempts.clone(),
        );
        Metrics {
            registry,
            rpc_requests,
            rpc_seconds,
            outbox_depth,
            outbox_lag_seconds,
            outbox_messages,
            events,
            cache_reads,
            alert_changes,
            webhook_attempts,
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Records one served gRPC call.
pub fn record_rpc(service: &str, method: &str, code: &str, latency: Duration) {
    let m = metrics();
    m.rpc_requests
        .get_or_create(&vec![
            ("service", service.to_owned()),
            ("method", method.to_owned()),
            ("code", code.to_owned()),
        ])
        .inc();
    m.rpc_seconds
        .get_or_create(&vec![
            ("service", service.to_owned()),
            ("method", method.to_owned()),
        ])
        .observe(latency.as_secs_f64());
}

/// Whether this process serves its metrics: gauges that cost a query to measure are only
/// measured then.
static SERVED: AtomicBool = AtomicBool::new(false);

/// Whether this process serves its metrics.
pub fn served() -> bool {
    SERVED.load(Ordering::Relaxed)
}

/// Serves the metrics on `at` as a task until `stop`, logging a failure to bind.
pub fn spawn(at: SocketAddr, stop: CancellationToken) {
    tokio::spawn(async move {
        if let Err(error) = serve(at, stop).await {
            tracing::error!(%error, "metrics endpoint failed");
        }
    });
}

/// Serves `GET /metrics` on `addr` until `stop`.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    SERVED.store(true, Ordering::Relaxed);
    tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        tokio::spawn(async move {
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                if req.uri().path() == "/metrics" {
                    hyper::Response::builder()
                        .header(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .body(Full::new(Bytes::from(metrics().encode())))
                } else {
                    hyper::Response::builder()
                        .status(404)
                        .body(Full::new(Bytes::from_static(b"only /metrics here\n")))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        record_rpc(
            "rapport.scoring.v1.ScoringService",
            "GetHealth",
            "0",
            Duration::from_millis(3),
        );
        metrics()
            .outbox_depth
            .get_or_create(&vec![("outbox", "scoring_outbox".to_owned())])
            .set(7);
        let text = metrics().encode();
        assert!(
            text.contains(r#"rapport_rpc_requests_total{service="rapport.scoring.v1.ScoringService",method="GetHealth",code="0"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rapport_outbox_depth{outbox="scoring_outbox"} 7"#),
            "{text}"
        );
        assert!(text.contains("rapport_rpc_seconds_bucket"), "{text}");
    }
}
