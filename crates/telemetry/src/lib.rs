//! Telemetry for every Rapport process: structured logs, OTLP export to Jaeger when
//! asked (`OTEL_EXPORTER_OTLP_ENDPOINT`), W3C trace-context propagation helpers, and
//! Prometheus metrics.

pub mod metrics;

use opentelemetry::propagation::Injector;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Errors while setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
    #[error("log filter (RUST_LOG) {filter:?}: {reason}")]
    Filter { filter: String, reason: String },
}

/// The logs printed unless asked otherwise: information, without a line per migration
/// applied or PostgreSQL's notices while migrating (a first start would print a wall of them).
pub const DEFAULT_LOG: &str = "info,sea_orm_migration=warn,sqlx::postgres::notice=warn";

/// Where a process's logs and traces go, from flags or the conventional environment
/// variables (declared here so that `--help` lists every variable a binary reads).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Which logs to print: a tracing filter such as `info` or `info,rapport_scoring=debug`.
    #[arg(long = "log", env = "RUST_LOG", default_value = DEFAULT_LOG)]
    pub log: String,
    /// Print logs as JSON lines (`RAPPORT_LOG_JSON=1`), for log collectors.
    #[arg(long, env = "RAPPORT_LOG_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub log_json: bool,
    /// Export traces over OTLP/gRPC to this collector (e.g. Jaeger on `http://jaeger:4317`);
    /// none when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log: DEFAULT_LOG.to_owned(),
            log_json: false,
            otlp_endpoint: None,
        }
    }
}

/// Keeps the exporter alive; flushes pending spans when dropped.
#[must_use = "dropping the guard flushes and stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes pending spans and stops the exporter.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs logging to stderr as `settings` say and, when they name a collector, OTLP span
/// export named `service`.
///
/// Must be called inside a multi-thread tokio runtime when exporting.
pub fn init(service: &str, settings: &Settings) -> Result<TelemetryGuard, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&settings.log).map_err(|e| TelemetryError::Filter {
        filter: settings.log.clone(),
        reason: e.to_string(),
    })?;
    let fmt = if settings.log_json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed()
    }
    .with_filter(filter);

    let endpoint = settings.otlp_endpoint.clone().filter(|e| !e.is_empty());
    let (otel, provider) = match endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_resource(
                    Resource::builder()
                        .with_service_name(service.to_owned())
                        .build(),
                )
                .with_batch_exporter(exporter)
                .build();
            let tracer = provider.tracer("rapport");
            // The exporter has its own filter: a quiet RUST_LOG must not silence traces.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(EnvFilter::new("info,h2=off,hyper=off,tower=off,tonic=off"));
            global::set_tracer_provider(provider.clone());
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { provider })
}

/// The trace context a request carries in its headers.
pub fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Makes `span` a child of the trace context carried by incoming `headers`.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let _ = span.set_parent(extract(headers));
}

/// Writes the current span's trace context into outgoing headers.
pub fn inject_current(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

/// The current span's W3C `traceparent`, to store beside work that continues later.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut headers)));
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn context_of(traceparent: &str) -> Option<Context> {
    let mut headers = http::HeaderMap::new();
    HeaderInjector(&mut headers).set("traceparent", traceparent.to_owned());
    let cx = extract(&headers);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` continue the trace of the first stored `traceparent` and links the others,
/// so work that was queued (an outbox) stays in the trace that caused it.
pub fn link_remote_parents(span: &tracing::Span, traceparents: &[&str]) {
    let mut contexts = traceparents.iter().filter_map(|t| context_of(t));
    if let Some(parent) = contexts.next() {
        let _ = span.set_parent(parent);
    }
    for cx in contexts {
        span.add_link(cx.span().span_context().clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_through_headers() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_of(tp).expect("valid traceparent");
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context_of("garbage").is_none());
    }
}
