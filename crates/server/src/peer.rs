//! Channels to peer services: lazy connections, a deadline on every call, the caller's trace
//! context injected by a tower layer, and the service key with the tenant acted for.

use crate::auth::TENANT_HEADER;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// A channel to a peer whose requests carry the current trace context.
pub type PeerChannel = InjectTraceContext<Channel>;

/// Errors in a peer address.
#[derive(Debug, thiserror::Error)]
#[error("invalid peer address {addr:?}: {source}")]
pub struct PeerAddrError {
    addr: String,
    source: tonic::transport::Error,
}

/// A lazily connected channel to `addr` (`host:port` or a URL); a peer that is down delays
/// calls, it does not stop this process from starting.
pub fn peer_channel(addr: &str) -> Result<PeerChannel, PeerAddrError> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|source| PeerAddrError {
        addr: addr.to_owned(),
        source,
    })?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .connect_lazy();
    Ok(InjectTraceContext(channel))
}

/// A request to a peer on behalf of `tenant`, authenticated with `service_key`, with a deadline.
pub fn peer_request<T>(
    message: T,
    tenant: &str,
    service_key: &str,
    deadline: Duration,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(deadline);
    let meta = req.metadata_mut();
    if let Ok(v) = format!("Bearer {service_key}").parse() {
        meta.insert("authorization", v);
    }
    if let Ok(v) = tenant.parse() {
        meta.insert(TENANT_HEADER, v);
    }
    req
}

/// A failed call to `peer` as this service's answer: UNAVAILABLE (the caller may retry),
/// naming the peer and keeping its message.
pub fn peer_unavailable(peer: &str, status: &tonic::Status) -> tonic::Status {
    tonic::Status::unavailable(format!("{peer}: {}", status.message()))
}

/// The outbox error of a failed call to `peer`, keeping the status code for the logs.
pub fn delivery_error(
    peer: &str,
    status: &tonic::Status,
) -> rapport_storage::outbox::DeliveryError {
    rapport_storage::outbox::DeliveryError(format!(
        "{peer}: {}: {}",
        status.code(),
        status.message()
    ))
}

/// Tower middleware that writes the current span's W3C trace context into each request.
#[derive(Debug, Clone)]
pub struct InjectTraceContext<S>(pub S);

impl<S, B> tower::Service<http::Request<B>> for InjectTraceContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        rapport_telemetry::inject_current(req.headers_mut());
        self.0.call(req)
    }
}
