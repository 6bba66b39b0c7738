//! Server assembly: the trace-context layer, `grpc.health.v1`, reflection (v1 and v1alpha),
//! `CallerService`, and graceful shutdown (NOT_SERVING first, then drain).

use rapport_telemetry::set_remote_parent;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tower_http::classify::GrpcFailureClass;
use tower_http::trace::TraceLayer;

/// Errors of a running server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves `routes` (the service's own gRPC services) on `listener` behind `gate` (see
/// [`crate::guard`]; health and reflection are open to all), over TLS only when `tls` is
/// given, with health reporting SERVING for `service_names` until `stop` is cancelled; then
/// drains as `drain` says (see [`crate::drain`]) and returns.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&'static str],
    stop: CancellationToken,
    drain: crate::Drain,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gate: crate::Gate,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    health.set_service_status("", ServingStatus::Serving).await;
    // Advertise only what this server serves, not every service in the shared descriptors.
    let reflection = |itself: &str| {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rapport_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name(crate::caller::SERVICE_NAME)
            .with_service_name(itself);
        service_names
            .iter()
            .fold(builder, |b, name| b.with_service_name(*name))
    };
    let reflection_v1 = reflection("grpc.reflection.v1.ServerReflection").build_v1()?;
    let reflection_v1alpha =
        reflection("grpc.reflection.v1alpha.ServerReflection").build_v1alpha()?;
    let routes = routes
        .add_service(crate::caller::service())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let trace = TraceLayer::new_for_grpc()
        .make_span_with(|req: &http::Request<_>| {
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = %req.uri().path(),
                otel.kind = "server",
                rpc.system = "grpc",
            );
            set_remote_parent(&span, req.headers());
            span
        })
        .on_failure(log_failure);

    let names: Vec<&'static str> = service_names.to_vec();
    let stopped = stop.clone();
    let signal = async move {
        stopped.cancelled().await;
        // Tell load balancers and probes first, serve on while they forget this replica,
        // then stop accepting and drain.
        for name in names {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        tracing::info!(pause = ?drain.pause, "not serving; draining after the pause");
        tokio::time::sleep(drain.pause).await;
    };
    let router = Server::builder()
        .timeout(Duration::from_secs(60))
        .layer(trace)
        .layer(RecordLayer)
        .layer(crate::guard::GuardLayer(std::sync::Arc::new(gate)))
        .add_routes(routes);
    let serving: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match tls {
        Some(acceptor) => Box::pin(
            router.serve_with_incoming_shutdown(crate::tls::incoming(listener, acceptor), signal),
        ),
        None => Box::pin(router.serve_with_incoming_shutdown(incoming(listener), signal)),
    };
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(drain.pause + drain.timeout).await;
    };
    tokio::select! {
        served = serving => served?,
        _ = deadline => tracing::warn!(
            timeout = ?drain.timeout,
            "calls still in flight at the drain deadline were cut off"
        ),
    }
    Ok(())
}

/// Logs a failed call: what the caller got wrong at debug level (the caller hears of it),
/// anything else as a warning (the service logged its own errors where they happened).
fn log_failure(class: GrpcFailureClass, latency: Duration, _span: &tracing::Span) {
    match class {
        GrpcFailureClass::Code(code) if callers_mistake(code.get()) => {
            tracing::debug!(code = code.get(), ?latency, "call refused");
        }
        GrpcFailureClass::Code(code) => {
            tracing::warn!(code = code.get(), ?latency, "call failed");
        }
        GrpcFailureClass::Error(error) => tracing::warn!(%error, ?latency, "call failed"),
    }
}

/// Whether a status code answers a caller's own mistake or choice (a bad or stale request,
/// no key, no right, a cancelled call) rather than a failure of this service.
fn callers_mistake(code: i32) -> bool {
    use tonic::Code;
    matches!(
        Code::from_i32(code),
        Code::Cancelled
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unauthenticated
    )
}

/// Records each call's status code and latency in the process's metrics, when the call ends:
/// with its response headers when the status is there (an error answered at once), else at
/// the end of its body, from the trailers, so a stream that fails after some messages counts
/// as failed and its latency runs to its end.
#[derive(Debug, Clone, Copy)]
struct RecordLayer;

impl<S> tower::Layer<S> for RecordLayer {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded(inner)
    }
}

/// A service whose calls are recorded by [`RecordLayer`].
#[derive(Debug, Clone)]
struct Recorded<S>(S);

/// A call being recorded: what it calls, and since when.
#[derive(Debug)]
struct Call {
    path: String,
    start: std::time::Instant,
}

impl Call {
    fn record(self, code: &str) {
        let (service, method) = self
            .path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((self.path.as_str(), ""));
        rapport_telemetry::metrics::record_rpc(service, method, code, self.start.elapsed());
    }
}

/// The `grpc-status` of headers or trailers, if they carry one.
fn status_of(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}

impl<S, B, R> tower::Service<http::Request<B>> for Recorded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RecordedBody<R>>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = Call {
            path: req.uri().path().to_owned(),
            start: std::time::Instant::now(),
        };
        let responding = self.0.call(req);
        Box::pin(async move {
            match responding.await {
                Ok(response) => {
                    let call = match status_of(response.headers()) {
                        Some(code) => {
                            call.record(code);
                            None
                        }
                        None => Some(call),
                    };
                    Ok(response.map(|inner| RecordedBody { inner, call }))
                }
                Err(error) => {
                    call.record("transport");
                    Err(error)
                }
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when its trailers pass (or it ends or is
    /// dropped without them: a call the client left is CANCELLED).
    pub struct RecordedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for RecordedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.record("1");
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for RecordedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = std::task::ready!(this.inner.poll_frame(cx));
        let code = match &polled {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|t| status_of(t).unwrap_or("0").to_owned()),
            Some(Err(_)) => Some("transport".to_owned()),
            // The end without trailers: nothing said otherwise.
            None => Some("0".to_owned()),
        };
        if let Some(code) = code
            && let Some(call) = this.call.take()
        {
            call.record(&code);
        }
        std::task::Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connections of `listener`, with Nagle's algorithm off: gRPC sends small frames, and a
/// delayed acknowledgement would otherwise hold each response back by some 40 ms.
pub fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    type Frame = Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>;
    type Frames = Vec<Frame>;
    type Streamed = http_body_util::StreamBody<tokio_stream::Iter<std::vec::IntoIter<Frame>>>;

    /// A service answering every call with `status` in the headers, then a body of `frames`.
    fn answering(
        status: Option<&'static str>,
        frames: impl Fn() -> Frames + Clone + Send + 'static,
    ) -> impl Service<
        http::Request<()>,
        Response = http::Response<Streamed>,
        Error = std::convert::Infallible,
        Future = impl Send + 'static,
    > + Clone {
        tower::service_fn(move |_req: http::Request<()>| {
            let frames = frames();
            async move {
                let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
                let mut response = http::Response::new(body);
                if let Some(s) = status {
                    response
                        .headers_mut()
                        .insert("grpc-status", http::HeaderValue::from_static(s));
                }
                Ok(response)
            }
        })
    }

    /// A body of one message, then trailers with `status`.
    fn streamed(status: &'static str) -> Frames {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static(status));
        vec![
            Ok(http_body::Frame::data(bytes::Bytes::from_static(
                b"message",
            ))),
            Ok(http_body::Frame::trailers(trailers)),
        ]
    }

    /// Calls `path` and reads the whole answer.
    async fn call(status: Option<&'static str>, path: &str, frames: fn() -> Frames) {
        use http_body_util::BodyExt;
        let request = http::Request::builder().uri(path).body(()).unwrap();
        let response = RecordLayer
            .layer(answering(status, frames))
            .oneshot(request)
            .await
            .unwrap();
        let _ = response.into_body().collect().await;
    }

    fn metrics_text() -> String {
        rapport_telemetry::metrics::metrics().encode()
    }

    #[tokio::test]
    async fn a_stream_that_fails_in_its_trailers_counts_as_failed() {
        call(None, "/rapport.test.v1.Stream/Fails", || streamed("13")).await;
        call(None, "/rapport.test.v1.Stream/Ends", || streamed("0")).await;
        let text = metrics_text();
        for expected in [
            r#"rapport_rpc_requests_total{service="rapport.test.v1.Stream",method="Fails",code="13"} 1"#,
            r#"rapport_rpc_requests_total{service="rapport.test.v1.Stream",method="Ends",code="0"} 1"#,
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
    }

    #[tokio::test]
    async fn a_call_left_before_its_end_counts_as_cancelled() {
        let request = http::Request::builder()
            .uri("/rapport.test.v1.Stream/Left")
            .body(())
            .unwrap();
        let response = RecordLayer
            .layer(answering(None, || streamed("0")))
            .oneshot(request)
            .await
            .unwrap();
        drop(response);
        let text = metrics_text();
        let expected = r#"rapport_rpc_requests_total{service="rapport.test.v1.Stream",method="Left",code="1"} 1"#;
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }

    #[tokio::test]
    async fn calls_are_counted_by_service_method_and_code() {
        call(None, "/rapport.test.v1.Probe/Ok", || streamed("0")).await;
        call(Some("16"), "/rapport.test.v1.Probe/Denied", Vec::new).await;
        call(Some("16"), "/rapport.test.v1.Probe/Denied", Vec::new).await;
        let text = rapport_telemetry::metrics::metrics().encode();
        for expected in [
            r#"rapport_rpc_requests_total{service="rapport.test.v1.Probe",method="Ok",code="0"} 1"#,
            r#"rapport_rpc_requests_total{service="rapport.test.v1.Probe",method="Denied",code="16"} 2"#,
            r#"rapport_rpc_seconds_count{service="rapport.test.v1.Probe",method="Denied"} 2"#,
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
    }
}
