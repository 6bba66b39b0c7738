//! The server's guard, a tower layer in front of every service's RPCs: it authenticates the
//! call, answers at once with RESOURCE_EXHAUSTED when the tenant is over its rate or the
//! replica has as many calls in hand as it takes, and scopes the call's deadline so that the
//! calls it makes to peers get what remains of it.

use crate::auth::{ApiKeys, Principal, Role};
use crate::limits::{Limits, Quota, exhausted};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;

/// What the guard checks calls against.
#[derive(Debug)]
pub struct Gate {
    pub keys: Arc<ApiKeys>,
    pub limits: Arc<Limits>,
    /// Calls this replica serves at once; none: no limit.
    pub concurrency: Option<Arc<Semaphore>>,
    /// The time keys expire by.
    pub clock: crate::Clock,
}

impl Gate {
    /// A gate with `keys`, `limits`, and at most `max_calls` calls at once (0: no limit).
    pub fn new(keys: Arc<ApiKeys>, limits: Limits, max_calls: usize) -> Self {
        Gate {
            keys,
            limits: Arc::new(limits),
            concurrency: (max_calls > 0).then(|| Arc::new(Semaphore::new(max_calls))),
            clock: crate::Clock::system(),
        }
    }

    /// Lets a call in: its caller, its quota and its share of the replica's concurrency.
    fn admit<B>(
        &self,
        req: &mut http::Request<B>,
    ) -> Result<Option<OwnedSemaphorePermit>, tonic::Status> {
        let now_ms = self.clock.now().timestamp_millis();
        let mut principal = self.keys.authenticate(req.headers(), now_ms)?;
        principal.method = req.uri().path().to_owned();
        if principal.role != Role::Service && !charged_by_content(&principal.method) {
            self.limits.take_request(&principal.tenant)?;
        }
        let permit = match &self.concurrency {
            Some(semaphore) => Some(Arc::clone(semaphore).try_acquire_owned().map_err(|_| {
                exhausted(
                    "this replica is serving as many calls as it takes".to_owned(),
                    Duration::from_millis(50),
                )
            })?),
            None => None,
        };
        let quota = Quota::new(Arc::clone(&self.limits), principal.tenant.clone());
        req.extensions_mut().insert::<Principal>(principal);
        req.extensions_mut().insert(quota);
        Ok(permit)
    }
}

/// Calls every caller may make without a key: health checks and reflection.
fn open_to_all(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Calls whose handlers charge the tenant by what they carry (ingest, per event).
fn charged_by_content(path: &str) -> bool {
    path.starts_with("/rapport.ingestion.v1.IngestionService/Ingest")
}

/// The tower layer of a [`Gate`].
#[derive(Debug, Clone)]
pub struct GuardLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            gate: Arc::clone(&self.0),
        }
    }
}

/// A service behind a [`Gate`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B> tower::Service<http::Request<B>> for Guard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if open_to_all(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        let permit = match self.gate.admit(&mut req) {
            Ok(permit) => permit,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::peer::grpc_timeout)
            .map(|d| Instant::now() + d);
        let call = self.inner.call(req);
        Box::pin(async move {
            let answer = match deadline {
                Some(at) => crate::peer::within(at, call).await,
                None => call.await,
            };
            drop(permit);
            answer
        })
    }
}
