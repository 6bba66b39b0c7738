//! Per-tenant rate limits (token buckets: events/s for ingest, requests/s for everything
//! else) and the answer a caller over its limit gets at once: RESOURCE_EXHAUSTED with
//! `grpc-retry-pushback-ms`, never a queue that ends in time-outs.
//!
//! Limits hold per replica: N replicas of a service admit up to N times a tenant's rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Status;

/// The metadata key telling a client how long to wait before it retries.
pub const PUSHBACK_HEADER: &str = "grpc-retry-pushback-ms";

/// A tenant's rates; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub events_per_sec: f64,
    pub requests_per_sec: f64,
}

/// Errors in a limits specification.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid tenant limit {entry:?}: expected TENANT=EVENTS/REQUESTS (per second; 0 for none; `*` for every other tenant)"
)]
pub struct LimitSpecError {
    entry: String,
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Events,
    Requests,
}

/// A token bucket holding up to a second's worth of its rate.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The rate limits of a server, and the state of its tenants' buckets.
#[derive(Debug, Default)]
pub struct Limits {
    default: Option<Rate>,
    tenants: HashMap<String, Rate>,
    buckets: Mutex<HashMap<(String, Kind), Bucket>>,
}

impl Limits {
    /// Parses `TENANT=EVENTS/REQUESTS` entries separated by commas (`*` for every tenant not
    /// named); an empty spec limits nothing.
    pub fn parse(spec: &str) -> Result<Self, LimitSpecError> {
        let mut limits = Limits::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || LimitSpecError {
                entry: entry.to_owned(),
            };
            let (tenant, rates) = entry.split_once('=').ok_or_else(bad)?;
            let (events, requests) = rates.split_once('/').ok_or_else(bad)?;
            let rate = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(bad)
            };
            let rate = Rate {
                events_per_sec: rate(events)?,
                requests_per_sec: rate(requests)?,
            };
            match tenant.trim() {
                "" => return Err(bad()),
                "*" => limits.default = Some(rate),
                t => {
                    limits.tenants.insert(t.to_owned(), rate);
                }
            }
        }
        Ok(limits)
    }

    /// The rates of `tenant`, if it has any.
    fn rate(&self, tenant: &str) -> Option<Rate> {
        self.tenants.get(tenant).copied().or(self.default)
    }

    /// Takes one request of `tenant`'s rate, or says when to come back.
    pub fn take_request(&self, tenant: &str) -> Result<(), Status> {
        let Some(rate) = self.rate(tenant) else {
            return Ok(());
        };
        self.take(tenant, Kind::Requests, rate.requests_per_sec, 1.0)
    }

    /// Takes `events` of `tenant`'s ingest rate, or says when to come back. A batch larger
    /// than a second's worth passes when the bucket is full, leaving it in debt: the rate
    /// holds on average, and no batch is refused for ever.
    pub fn take_events(&self, tenant: &str, events: usize) -> Result<(), Status> {
        let Some(rate) = self.rate(tenant) else {
            return Ok(());
        };
        self.take(tenant, Kind::Events, rate.events_per_sec, events as f64)
    }

    fn take(&self, tenant: &str, kind: Kind, rate: f64, n: f64) -> Result<(), Status> {
        if rate <= 0.0 || n <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let capacity = rate.max(1.0);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let bucket = buckets.entry((tenant.to_owned(), kind)).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(capacity);
        bucket.at = now;
        let needed = n.min(capacity);
        if bucket.tokens >= needed {
            bucket.tokens -= n;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((needed - bucket.tokens) / rate);
        let what = match kind {
            Kind::Events => "events",
            Kind::Requests => "requests",
        };
        Err(exhausted(
            format!("tenant {tenant} is over its limit of {rate} {what}/s"),
            wait,
        ))
    }
}

/// RESOURCE_EXHAUSTED telling the caller to come back after `wait`.
pub fn exhausted(message: String, wait: Duration) -> Status {
    let ms = wait.as_millis().max(1);
    let mut status = Status::resource_exhausted(format!("{message}; retry after {ms} ms"));
    if let Ok(v) = ms.to_string().parse() {
        status.metadata_mut().insert(PUSHBACK_HEADER, v);
    }
    status
}

/// How long a RESOURCE_EXHAUSTED answer asks the caller to wait, if it says.
pub fn pushback(status: &Status) -> Option<Duration> {
    let ms: u64 = status
        .metadata()
        .get(PUSHBACK_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms))
}

/// A call's share of its tenant's limits, for handlers that charge by content (ingest
/// charges per event); put in the request's extensions by the server's guard.
#[derive(Debug, Clone)]
pub struct Quota {
    limits: Arc<Limits>,
    tenant: String,
}

impl Quota {
    pub(crate) fn new(limits: Arc<Limits>, tenant: String) -> Self {
        Quota { limits, tenant }
    }

    /// Charges `events` to the caller's ingest rate; a request that carries no quota (not
    /// served through the guard) is not limited.
    pub fn charge_events<T>(req: &tonic::Request<T>, events: usize) -> Result<(), Status> {
        match req.extensions().get::<Quota>() {
            Some(q) => q.limits.take_events(&q.tenant, events),
            None => Ok(()),
        }
    }

    /// [`Quota::charge_events`] with a quota taken out of its request (a stream's messages
    /// arrive after the request is consumed).
    pub fn charge(quota: Option<&Quota>, events: usize) -> Result<(), Status> {
        match quota {
            Some(q) => q.limits.take_events(&q.tenant, events),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_tenants_and_a_default() {
        let limits = Limits::parse("*=100/10, acme=0/2").unwrap();
        assert_eq!(limits.rate("other").map(|r| r.events_per_sec), Some(100.0));
        assert_eq!(limits.rate("acme").map(|r| r.requests_per_sec), Some(2.0));
        assert_eq!(Limits::parse("").unwrap().rate("x"), None);
        for bad in ["acme", "acme=1", "=1/1", "a=x/1", "a=-1/1", "a=1/inf"] {
            assert!(Limits::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bucket_admits_its_rate_and_then_pushes_back() {
        let limits = Limits::parse("acme=0/5").unwrap();
        for _ in 0..5 {
            limits.take_request("acme").unwrap();
        }
        let refused = limits.take_request("acme").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let wait = pushback(&refused).expect("a pushback");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        // Other tenants and unlimited kinds are untouched.
        limits.take_request("globex").unwrap();
        limits.take_events("acme", 1_000_000).unwrap();
    }

    #[test]
    fn a_large_batch_passes_on_a_full_bucket_and_leaves_a_debt() {
        let limits = Limits::parse("acme=100/0").unwrap();
        limits.take_events("acme", 1_000).unwrap();
        let refused = limits.take_events("acme", 1).unwrap_err();
        // 900 events of debt at 100/s: about nine seconds.
        let wait = pushback(&refused).unwrap();
        assert!(wait > Duration::from_secs(8), "{wait:?}");
    }
}
