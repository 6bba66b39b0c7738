//! Scoring's work: fold new events into metrics, score, snapshot, cache, and announce.

use crate::store::{CustomerState, Rescored, Snapshot, Store, StoreError};
use prost::Message;
use rapport_cache::{AnyCache, Cache};
use rapport_domain::event::{ValidationPolicy, validate};
use rapport_domain::scorecard::Scorecard;
use rapport_domain::tier::Tier;
use rapport_proto::alerting::v1::ScoreChange;
use rapport_proto::convert;
use rapport_proto::ingestion::v1::{
    CustomerCursor, ListCustomerEventsRequest, StoredEvent,
    ingestion_service_client::IngestionServiceClient,
};
use rapport_proto::scoring::v1::{HealthScore, MeasureScore};
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::RelayWaker;
use std::collections::BTreeMap;
use std::time::Duration;

/// Deadline of a call to ingestion for new events.
const FETCH_DEADLINE: Duration = Duration::from_secs(10);
/// Most events fetched per customer and call.
const EVENTS_PER_FETCH: u32 = 5_000;

/// Errors of scoring's work.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ingestion did not answer: {0}")]
    Upstream(tonic::Status),
}

/// Scoring's state and collaborators.
pub struct Engine {
    pub store: Store,
    pub cache: AnyCache,
    pub ingestion: IngestionServiceClient<PeerChannel>,
    pub service_key: String,
    pub scorecard: Scorecard,
    pub waker: RelayWaker,
}

/// The cache key of a customer's health; it carries the tenant.
pub fn cache_key(tenant: &str, customer_id: &str) -> String {
    format!("rapport:{}:{tenant}:health:{customer_id}", tenant.len())
}

/// The API view of a stored snapshot.
pub fn health(s: &Snapshot) -> HealthScore {
    HealthScore {
        customer_id: s.customer_id.clone(),
        score: s.score,
        band: convert::band(s.band).into(),
        tier: convert::tier(s.tier).into(),
        measures: s
            .measures
            .iter()
            .map(|m| MeasureScore {
                measure: m.measure.clone(),
                value: m.value,
                score: m.score,
                contribution: m.contribution,
                weight: m.weight,
            })
            .collect(),
        scorecard_version: s.scorecard_version.clone(),
        computed_at: Some(convert::timestamp(s.computed_at)),
    }
}

impl Engine {
    /// Fetches the new events of `customer_ids`, folds them in, rescoring each customer;
    /// idempotent: events at or below a customer's cursor are never applied twice.
    pub async fn customers_changed(
        &self,
        tenant: &str,
        customer_ids: Vec<String>,
    ) -> Result<usize, ScoringError> {
        let mut states = self.store.states(tenant, &customer_ids).await?;
        let now = chrono::Utc::now();
        // Stored events passed validation at ingestion; the policy here only re-checks shape.
        let lenient = ValidationPolicy {
            future_skew: chrono::Duration::days(36_500),
        };
        let mut touched: BTreeMap<String, CustomerState> = BTreeMap::new();
        let mut pending = customer_ids;
        while !pending.is_empty() {
            let cursors = pending
                .iter()
                .map(|id| CustomerCursor {
                    customer_id: id.clone(),
                    after_seq: touched
                        .get(id)
                        .or_else(|| states.get(id))
                        .map_or(0, |s| s.last_event_seq),
                })
                .collect();
            let events = self.fetch(tenant, cursors).await?;
            let mut per_customer: BTreeMap<String, u32> = BTreeMap::new();
            for stored in events {
                let Some(event) = stored.event else { continue };
                let id = event.customer_id.clone();
                *per_customer.entry(id.clone()).or_default() += 1;
                let state = touched
                    .entry(id.clone())
                    .or_insert_with(|| states.remove(&id).unwrap_or_default());
                if stored.seq <= state.last_event_seq {
                    continue;
                }
                match convert::draft(&event).and_then(|d| validate(d, now, &lenient)) {
                    Ok(valid) => state.metrics.apply(&valid),
                    Err(rejection) => {
                        tracing::warn!(seq = stored.seq, %rejection, "stored event no longer validates; skipped")
                    }
                }
                state.last_event_seq = stored.seq;
            }
            // A full page means there may be more: ask again from the new cursor.
            pending = per_customer
                .into_iter()
                .filter(|(_, n)| *n >= EVENTS_PER_FETCH)
                .map(|(id, _)| id)
                .collect();
        }

        let now_ms = now.timestamp_millis();
        let rescored: Vec<Rescored> = touched
            .into_iter()
            .map(|(customer_id, state)| {
                let score = self.scorecard.score(&state.metrics.indicators(now));
                let change = ScoreChange {
                    customer_id: customer_id.clone(),
                    score: score.score,
                    band: convert::band(score.band).into(),
                    tier: convert::tier(state.tier).into(),
                    computed_at: Some(convert::timestamp(now_ms)),
                };
                Rescored {
                    customer_id,
                    state,
                    score,
                    scorecard_version: self.scorecard.version.clone(),
                    outbox_payload: change.encode_to_vec(),
                }
            })
            .collect();
        self.store
            .save(
                tenant,
                &rescored,
                now_ms,
                rapport_telemetry::current_traceparent(),
            )
            .await?;
        self.waker.wake();
        for r in &rescored {
            let snapshot = Snapshot {
                customer_id: r.customer_id.clone(),
                score: r.score.score,
                band: r.score.band,
                tier: r.state.tier,
                scorecard_version: r.scorecard_version.clone(),
                measures: crate::store::measures(&r.score),
                computed_at: now_ms,
            };
            self.cache_put(tenant, &health(&snapshot)).await;
        }
        tracing::info!(tenant, customers = rescored.len(), "rescored");
        Ok(rescored.len())
    }

    async fn fetch(
        &self,
        tenant: &str,
        customers: Vec<CustomerCursor>,
    ) -> Result<Vec<StoredEvent>, ScoringError> {
        let req = peer_request(
            ListCustomerEventsRequest {
                customers,
                limit_per_customer: EVENTS_PER_FETCH,
            },
            tenant,
            &self.service_key,
            FETCH_DEADLINE,
        );
        Ok(self
            .ingestion
            .clone()
            .list_customer_events(req)
            .await
            .map_err(ScoringError::Upstream)?
            .into_inner()
            .events)
    }

    async fn cache_put(&self, tenant: &str, h: &HealthScore) {
        if let Err(error) = self
            .cache
            .set(&cache_key(tenant, &h.customer_id), h.encode_to_vec())
            .await
        {
            tracing::warn!(%error, "cache write failed; reads fall back to the database");
        }
    }

    fn decode_cached(bytes: Option<Vec<u8>>) -> Option<HealthScore> {
        bytes.and_then(|b| HealthScore::decode(b.as_slice()).ok())
    }

    /// The current health of customers: from the cache in one round trip, then the
    /// database for misses (refilling the cache); unknown customers are left out.
    pub async fn health(
        &self,
        tenant: &str,
        customer_ids: &[String],
    ) -> Result<Vec<HealthScore>, ScoringError> {
        let keys: Vec<String> = customer_ids
            .iter()
            .map(|id| cache_key(tenant, id))
            .collect();
        let cached = match self.cache.get_many(&keys).await {
            Ok(values) => values,
            Err(error) => {
                tracing::warn!(%error, "cache read failed; reading from the database");
                vec![None; keys.len()]
            }
        };
        let mut out = Vec::with_capacity(customer_ids.len());
        for (id, bytes) in customer_ids.iter().zip(cached) {
            if let Some(h) = Self::decode_cached(bytes) {
                out.push(h);
                continue;
            }
            if let Some(snapshot) = self.store.latest(tenant, id).await? {
                let h = health(&snapshot);
                self.cache_put(tenant, &h).await;
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Records new tiers and refreshes the cached scores so reads show them at once.
    pub async fn apply_tiers(
        &self,
        tenant: &str,
        tiers: Vec<(String, Tier)>,
    ) -> Result<(), ScoringError> {
        self.store.apply_tiers(tenant, &tiers).await?;
        for (id, _) in &tiers {
            if let Some(snapshot) = self.store.latest(tenant, id).await? {
                self.cache_put(tenant, &health(&snapshot)).await;
            }
        }
        Ok(())
    }
}
