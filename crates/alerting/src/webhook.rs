//! Delivers queued webhooks: flushes the notification groups that are due into deliveries,
//! signs each per Standard Webhooks, POSTs it, and retries with exponential backoff and
//! jitter. 2xx delivers; 410 Gone disables the endpoint; 429 honours Retry-After; exhausted
//! attempts go to the dead-letter list.

use crate::store::Store;
use crate::store::webhooks::{Attempt, Delivery, Endpoint, signing_keys};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rapport_storage::outbox::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>` of
/// `"{id}.{timestamp}.{body}"` for each key, space-separated (several during a rotation).
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .filter_map(|key| {
            let mut mac = HmacSha256::new_from_slice(key).ok()?;
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How deliveries are attempted.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Attempts before a delivery goes to the dead-letter list.
    pub max_attempts: i32,
    pub backoff: Backoff,
    /// Deadline of one POST.
    pub timeout: Duration,
    /// Longest Retry-After honoured.
    pub max_retry_after: Duration,
}

/// The worker that sends due deliveries, woken when new ones are committed.
pub struct Worker {
    store: Store,
    settings: Settings,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    wake: Arc<Notify>,
}

/// Deliveries claimed per pass.
const BATCH: u64 = 100;
/// How long a claimed delivery is hidden from other workers.
const LEASE: Duration = Duration::from_secs(60);
/// Poll interval when not woken.
const POLL: Duration = Duration::from_millis(500);

impl Worker {
    /// A worker over the store's deliveries, reaching https endpoints with `tls`.
    pub fn new(
        store: Store,
        settings: Settings,
        wake: Arc<Notify>,
        tls: rustls::ClientConfig,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.timeout));
        // http stays allowed: endpoints inside the cluster often have no certificate.
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Worker {
            store,
            settings,
            client: Client::builder(TokioExecutor::new()).build(connector),
            wake,
        }
    }

    /// Sends due deliveries until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let sent = match self.pass().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass failed");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One pass: flushes due groups, then claims due deliveries and attempts each
    /// (concurrently); returns how many.
    pub async fn pass(&self) -> Result<usize, crate::store::StoreError> {
        let now = rapport_storage::now_millis();
        // Deliveries already queued go out even when groups cannot be flushed now.
        if let Err(error) = self.store.flush_due(now).await {
            tracing::warn!(%error, "notification groups not flushed");
        }
        let due = self
            .store
            .claim_due(now, BATCH, LEASE.as_millis() as i64)
            .await?;
        let n = due.len();
        let attempts = due.into_iter().map(|(d, w)| self.attempt(d, w));
        for result in futures_util::future::join_all(attempts).await {
            result?;
        }
        Ok(n)
    }

    async fn attempt(&self, d: Delivery, w: Endpoint) -> Result<(), crate::store::StoreError> {
        let now = rapport_storage::now_millis();
        let attempts = d.attempts.saturating_add(1);
        if !w.enabled {
            let error = "endpoint disabled".to_owned();
            return self
                .store
                .attempted(d.id, attempts, Attempt::Dead { error }, now)
                .await;
        }
        let outcome = match self.post(&d, &w, now).await {
            Ok((status, _)) if (200..300).contains(&status) => Attempt::Delivered,
            Ok((410, _)) => {
                tracing::warn!(webhook = w.id, url = %w.url, "endpoint answered 410 Gone: disabled");
                self.store
                    .disable_webhook(w.id, "the endpoint answered 410 Gone", now)
                    .await?;
                Attempt::Dead {
                    error: "410 Gone: endpoint disabled".to_owned(),
                }
            }
            Ok((status, retry_after)) => {
                let wait = match (status, retry_after) {
                    (429, Some(secs)) => {
                        Duration::from_secs(secs).min(self.settings.max_retry_after)
                    }
                    _ => self.settings.backoff.delay(attempts - 1),
                };
                self.retry_or_dead(attempts, format!("HTTP {status}"), wait, now)
            }
            Err(error) => {
                let wait = self.settings.backoff.delay(attempts - 1);
                self.retry_or_dead(attempts, error, wait, now)
            }
        };
        let label = match &outcome {
            Attempt::Delivered => "delivered",
            Attempt::Retry { .. } => "retry",
            Attempt::Dead { .. } => "dead",
        };
        rapport_telemetry::metrics::metrics()
            .webhook_attempts
            .get_or_create(&vec![("outcome", label.to_owned())])
            .inc();
        if let Attempt::Dead { error } = &outcome {
            tracing::warn!(delivery = d.id, message = %d.message_id, error, "webhook dead-lettered");
        }
        self.store.attempted(d.id, attempts, outcome, now).await
    }

    fn retry_or_dead(&self, attempts: i32, error: String, wait: Duration, now: i64) -> Attempt {
        if attempts >= self.settings.max_attempts {
            Attempt::Dead {
                error: format!("{error} after {attempts} attempts"),
            }
        } else {
            Attempt::Retry {
                at: now + wait.as_millis() as i64,
                error,
            }
        }
    }

    /// POSTs one delivery; the status and any Retry-After seconds, or why it failed.
    async fn post(
        &self,
        d: &Delivery,
        w: &Endpoint,
        now: i64,
    ) -> Result<(u16, Option<u64>), String> {
        let timestamp = now.div_euclid(1000);
        let keys = signing_keys(w, now);
        let request = hyper::Request::post(&w.url)
            .header("content-type", "application/json")
            .header("user-agent", "rapport-alerting")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&keys, &d.message_id, timestamp, &d.payload),
            )
            .body(Full::new(Bytes::from(d.payload.clone())))
            .map_err(|e| format!("bad request: {e}"))?;
        let response = tokio::time::timeout(self.settings.timeout, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {:?}", self.settings.timeout))?
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // Read the body so the connection can be reused; its content does not matter.
        let _ = tokio::time::timeout(self.settings.timeout, response.into_body().collect()).await;
        Ok((status, retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        let sig = signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_key() {
        let sig = signature(&[b"a".to_vec(), b"b".to_vec()], "m", 1, "{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    }
}
