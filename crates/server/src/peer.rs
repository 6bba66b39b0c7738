//! Channels to peer services: lazy connections, a deadline on every call, the caller's trace
//! context injected by a tower layer, and the service key with the tenant acted for.

use crate::auth::TENANT_HEADER;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A channel to a peer whose requests carry the current trace context and end at their
/// deadline, wherever they wait (a balanced channel with no address yet waits for one).
pub type PeerChannel = InjectTraceContext<Deadline<Channel>>;

/// How often peers named by DNS are looked up again: replicas behind a headless Service
/// come and go, and a new one should get calls within seconds.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Errors in a peer address.
#[derive(Debug, thiserror::Error)]
pub enum PeerAddrError {
    #[error("invalid peer address {addr:?}: {source}")]
    Endpoint {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("invalid peer address {addr:?}: {reason}")]
    Address { addr: String, reason: String },
}

/// One address of a peer: a scheme, and a host (a name or an IP) with its port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

impl Target {
    /// `host:port` or a URL with a port.
    fn parse(addr: &str) -> Result<Target, PeerAddrError> {
        let invalid = |reason: &str| PeerAddrError::Address {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let url = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not host:port or a URL"))?;
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
        Ok(Target {
            scheme: uri.scheme_str().unwrap_or("http").to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// Whether the host is an IP address, which needs no lookup.
    fn is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

/// The endpoint of one resolved address of a peer; over TLS when `tls` is given, checking
/// the peer's certificate against the name it was addressed by (not the address it resolved
/// to: certificates name services, not pods).
fn endpoint(
    target: &Target,
    addr: std::net::SocketAddr,
    tls: Option<&ClientTlsConfig>,
) -> Result<Endpoint, PeerAddrError> {
    let scheme = if tls.is_some() {
        "https"
    } else {
        target.scheme.as_str()
    };
    let uri = format!("{scheme}://{addr}");
    let mut endpoint =
        Endpoint::from_shared(uri.clone()).map_err(|source| PeerAddrError::Endpoint {
            addr: uri.clone(),
            source,
        })?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.clone().domain_name(target.host.clone()))
            .map_err(|source| PeerAddrError::Endpoint { addr: uri, source })?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30)))
}

/// A lazily connected channel to a peer; a peer that is down delays calls, it does not stop
/// this process from starting. `spec` is one address (`host:port` or a URL) or several
/// separated by commas. One IP address is one connection; otherwise calls are balanced over
/// every address the names resolve to, looked up again every few seconds, so replicas behind
/// a DNS name (a Kubernetes headless Service) all get calls, new ones within seconds.
/// Needs a Tokio runtime when given names or several addresses (the lookups run on it).
pub fn peer_channel(spec: &str) -> Result<PeerChannel, PeerAddrError> {
    peer_channel_over(spec, None)
}

/// [`peer_channel`], over TLS when `tls` is given (the peers' addresses then mean https),
/// with the TLS files read again when they change: connections made after a certificate
/// was replaced on disk show the new one.
pub fn peer_channel_over(
    spec: &str,
    tls: Option<crate::tls::ClientTls>,
) -> Result<PeerChannel, PeerAddrError> {
    let targets = spec
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(Target::parse)
        .collect::<Result<Vec<_>, _>>()?;
    match targets.as_slice() {
        [] => Err(PeerAddrError::Address {
            addr: spec.to_owned(),
            reason: "empty".to_owned(),
        }),
        [one] if one.is_ip() && tls.is_none() => {
            let ip: std::net::IpAddr = one.host.parse().map_err(|_| PeerAddrError::Address {
                addr: spec.to_owned(),
                reason: "not an IP address".to_owned(),
            })?;
            let addr = std::net::SocketAddr::new(ip, one.port);
            Ok(InjectTraceContext(Deadline(
                endpoint(one, addr, None)?.connect_lazy(),
            )))
        }
        _ => {
            let tls = match tls {
                Some(files) => Some(Tls {
                    config: files.load().map_err(|e| PeerAddrError::Address {
                        addr: spec.to_owned(),
                        reason: e.to_string(),
                    })?,
                    seen: files.contents(),
                    files,
                }),
                None => None,
            };
            let (channel, changes) = Channel::balance_channel(64);
            tokio::spawn(follow(targets, changes, tls));
            Ok(InjectTraceContext(Deadline(channel)))
        }
    }
}

/// A peer channel's TLS: the configuration in use, its files, and what they held when read.
struct Tls {
    config: ClientTlsConfig,
    files: crate::tls::ClientTls,
    seen: Vec<Option<Vec<u8>>>,
}

impl Tls {
    /// Whether the files changed into a configuration that loads (then in use).
    fn reloaded(&mut self) -> bool {
        let now = self.files.contents();
        if now == self.seen {
            return false;
        }
        match self.files.load() {
            Ok(config) => {
                self.config = config;
                self.seen = now;
                tracing::info!("client TLS files changed; peers are called with the new ones");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "client TLS files changed but do not load; keeping the previous ones");
                false
            }
        }
    }
}

/// Keeps a balanced channel's endpoints those `targets` resolve to, until the channel is
/// dropped, over the TLS files as they are now. A lookup that fails keeps the addresses it
/// had: a DNS hiccup must not empty the channel.
async fn follow(
    targets: Vec<Target>,
    changes: tokio::sync::mpsc::Sender<Change<std::net::SocketAddr, Endpoint>>,
    mut tls: Option<Tls>,
) {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    // Each target's addresses as last resolved.
    let mut known: Vec<Vec<SocketAddr>> = vec![Vec::new(); targets.len()];
    let mut current: BTreeMap<SocketAddr, &Target> = BTreeMap::new();
    loop {
        for (target, addrs) in targets.iter().zip(known.iter_mut()) {
            match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                Ok(found) => *addrs = found.collect(),
                Err(error) => tracing::warn!(
                    %error,
                    host = target.host,
                    "peer lookup failed; keeping its last addresses"
                ),
            }
        }
        let next: BTreeMap<SocketAddr, &Target> = targets
            .iter()
            .zip(&known)
            .flat_map(|(t, addrs)| addrs.iter().map(move |a| (*a, t)))
            .collect();
        for gone in current.keys().filter(|a| !next.contains_key(a)) {
            if changes.send(Change::Remove(*gone)).await.is_err() {
                return;
            }
        }
        // New TLS files: every address gets an endpoint with them (an insert replaces).
        let renew = tls.as_mut().is_some_and(Tls::reloaded);
        let config = tls.as_ref().map(|t| &t.config);
        for (new, target) in next
            .iter()
            .filter(|(a, _)| renew || !current.contains_key(a))
        {
            match endpoint(target, *new, config) {
                Ok(e) => {
                    if changes.send(Change::Insert(*new, e)).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "peer address skipped"),
            }
        }
        if current != next {
            tracing::info!(addresses = next.len(), "peer addresses changed");
        }
        current = next;
        tokio::select! {
            _ = tokio::time::sleep(RESOLVE_EVERY) => {}
            _ = changes.closed() => return,
        }
    }
}

tokio::task_local! {
    /// When the call being served must be answered by (its caller's deadline).
    static DEADLINE: std::time::Instant;
}

/// Runs `call` (a served call) with its deadline `at` in scope for [`remaining`].
pub(crate) async fn within<F: std::future::Future>(at: std::time::Instant, call: F) -> F::Output {
    DEADLINE.scope(at, call).await
}

/// What remains of the deadline of the call being served, if it has one.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|at| at.saturating_duration_since(std::time::Instant::now()))
        .ok()
}

/// A request to a peer on behalf of `tenant`, authenticated with `service_key`, with a
/// deadline: `deadline`, or what remains of the deadline of the call being served when that
/// is sooner (a caller that gave up does not leave work running on its behalf downstream).
pub fn peer_request<T>(
    message: T,
    tenant: &str,
    service_key: &str,
    deadline: Duration,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    let deadline = remaining().map_or(deadline, |left| {
        left.min(deadline).max(Duration::from_millis(1))
    });
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

/// A budget of retries for calls to peers: a tenth of the calls of the last ten seconds, and
/// at least one a second, so that retries cannot multiply the load on a peer that is
/// already refusing it.
#[derive(Debug, Clone)]
pub struct RetryBudget(std::sync::Arc<tower::retry::budget::TpsBudget>);

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget(std::sync::Arc::new(tower::retry::budget::TpsBudget::new(
            Duration::from_secs(10),
            1,
            0.1,
        )))
    }
}

/// How many times a call is tried at most.
const MAX_ATTEMPTS: u32 = 3;

/// Makes `call` and, when it fails with UNAVAILABLE or RESOURCE_EXHAUSTED, tries again (at
/// most three times, after the wait the peer asked for or a short backoff) while `budget`
/// allows. Only for calls that are safe to repeat (reads, idempotent writes).
pub async fn with_retries<T, F, Fut>(budget: &RetryBudget, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    use tower::retry::budget::Budget;
    budget.0.deposit();
    let mut attempt = 1;
    loop {
        let status = match call().await {
            Ok(answer) => return Ok(answer),
            Err(status) => status,
        };
        let retryable = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
        );
        if !retryable || attempt >= MAX_ATTEMPTS || !budget.0.withdraw() {
            return Err(status);
        }
        let wait = crate::limits::pushback(&status)
            .unwrap_or(Duration::from_millis(25 << attempt))
            .min(Duration::from_secs(2));
        if remaining().is_some_and(|left| left <= wait) {
            return Err(status);
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
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

/// Tower middleware that ends a call at the deadline its `grpc-timeout` header gives, as
/// DEADLINE_EXCEEDED, whether it waits for an address, a connection or the answer: tonic
/// enforces the deadline only once the call is on a connection.
#[derive(Debug, Clone)]
pub struct Deadline<S>(pub S);

/// The duration a `grpc-timeout` value stands for (`10S`, `250m`: digits and a unit).
pub(crate) fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_timeout);
        let call = self.0.call(req);
        Box::pin(async move {
            match deadline {
                Some(d) => match tokio::time::timeout(d, call).await {
                    Ok(answer) => answer.map_err(Into::into),
                    Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                        "no answer from the peer within {d:?}"
                    ))
                    .into()),
                },
                None => call.await.map_err(Into::into),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_in_their_units() {
        assert_eq!(grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "S", "10", "10x", "-1S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }

    /// A peer whose name resolves to nothing: the call ends at its deadline.
    #[tokio::test]
    async fn a_call_to_a_peer_without_addresses_ends_at_its_deadline() {
        use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
        let channel = peer_channel("no-such-peer.invalid:7402").unwrap();
        let started = std::time::Instant::now();
        let answer = ScoringServiceClient::new(channel)
            .get_health(peer_request(
                Default::default(),
                "t",
                "key",
                Duration::from_millis(300),
            ))
            .await;
        let status = answer.expect_err("no peer to answer");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn peer_calls_get_what_remains_of_the_served_calls_deadline() {
        let outside = peer_request((), "t", "k", Duration::from_secs(30));
        assert_eq!(outside.metadata().get("grpc-timeout").unwrap(), "30000000u");
        let at = std::time::Instant::now() + Duration::from_millis(500);
        let inside = within(at, async {
            peer_request((), "t", "k", Duration::from_secs(30))
        })
        .await;
        let left = grpc_timeout(
            inside
                .metadata()
                .get("grpc-timeout")
                .unwrap()
                .to_str()
                .unwrap(),
        )
        .unwrap();
        assert!(
            left <= Duration::from_millis(500) && left > Duration::from_millis(100),
            "{left:?}"
        );
    }

    #[tokio::test]
    async fn retries_stop_at_the_budget_and_on_callers_mistakes() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let budget = RetryBudget::default();
        let tries = AtomicU32::new(0);
        let answer: Result<(), _> = with_retries(&budget, || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err(tonic::Status::invalid_argument("no")) }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(
            tries.load(Ordering::SeqCst),
            1,
            "a caller's mistake is not retried"
        );
        let tries = AtomicU32::new(0);
        let answer = with_retries(&budget, || {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(crate::limits::exhausted(
                        "busy".into(),
                        Duration::from_millis(5),
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 1);
        // An empty budget (one retry a second at least, spent above) stops the next retry.
        let empty = RetryBudget(std::sync::Arc::new(tower::retry::budget::TpsBudget::new(
            Duration::from_secs(10),
            0,
            0.0,
        )));
        let tries = AtomicU32::new(0);
        let _ = with_retries(&empty, || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(tonic::Status::unavailable("down")) }
        })
        .await;
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn addresses_are_read_with_their_port() {
        let t = Target::parse("scoring.rapport.svc:7402").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.is_ip()),
            ("scoring.rapport.svc", 7402, false)
        );
        let t = Target::parse("https://[::1]:9").unwrap();
        assert_eq!(
            (t.scheme.as_str(), t.host.as_str(), t.is_ip()),
            ("https", "::1", true)
        );
        for bad in ["scoring", "http://scoring", "", "a b:1"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn names_and_lists_make_balanced_channels() {
        assert!(peer_channel("127.0.0.1:1").is_ok());
        assert!(peer_channel("localhost:1").is_ok());
        assert!(peer_channel("127.0.0.1:1, 127.0.0.1:2").is_ok());
        assert!(peer_channel(" , ").is_err());
    }
}
