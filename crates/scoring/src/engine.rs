//! Scoring's work: fold new events into metrics, score, snapshot, cache, and announce.

use crate::params::NamedParams;
use crate::store::{CustomerState, FitRecord, Rescored, Snapshot, Store, StoreError};
use chrono::{DateTime, Utc};
use prost::Message;
use rapport_cache::{AnyCache, Cache};
use rapport_domain::event::{ValidationPolicy, validate};
use rapport_domain::models::bgnbd::BgNbd;
use rapport_domain::models::gamma_gamma::{GammaGamma, Spend};
use rapport_domain::models::outlook::{FittedModels, twelve_months_in_days};
use rapport_domain::models::summary::summarise_days;
use rapport_domain::models::{Customer, check_population};
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
use std::collections::{BTreeMap, HashMap};
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
    /// Fitted models per tenant, loaded on first use.
    pub models: tokio::sync::RwLock<HashMap<String, Option<FittedModels>>>,
}

/// Customers per page when walking a whole tenant.
const PAGE: u64 = 5_000;

/// What `fit_models` did.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    pub bgnbd: FitRecord,
    pub gamma_gamma: FitRecord,
    pub rescored: u64,
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
        p_alive: s.outlook.map(|o| o.p_alive),
        expected_purchases_90d: s.outlook.map(|o| o.expected_purchases_90d),
        clv_12m: s.outlook.map(|o| o.clv),
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

        let models = self.fitted(tenant).await?;
        let rescored: Vec<Rescored> = touched
            .into_iter()
            .map(|(customer_id, state)| self.rescore(customer_id, state, now, models.as_ref()))
            .collect();
        self.persist(tenant, &rescored).await?;
        tracing::info!(tenant, customers = rescored.len(), "rescored");
        Ok(rescored.len())
    }

    /// Scores a customer's state at `now`, with the tenant's models when they are fitted.
    fn rescore(
        &self,
        customer_id: String,
        state: CustomerState,
        now: DateTime<Utc>,
        models: Option<&FittedModels>,
    ) -> Rescored {
        let outlook =
            models.and_then(|m| m.outlook(&state.metrics.purchase_days, now.date_naive()));
        let mut indicators = state.metrics.indicators(now);
        indicators.p_alive = outlook.map(|o| o.p_alive);
        indicators.clv = outlook.map(|o| o.clv);
        let score = self.scorecard.score(&indicators);
        let computed_at = now.timestamp_millis();
        let change = ScoreChange {
            customer_id: customer_id.clone(),
            score: score.score,
            band: convert::band(score.band).into(),
            tier: convert::tier(state.tier).into(),
            computed_at: Some(convert::timestamp(computed_at)),
        };
        let snapshot = Snapshot {
            customer_id,
            score: score.score,
            band: score.band,
            tier: state.tier,
            scorecard_version: self.scorecard.version.clone(),
            measures: crate::store::measures(&score),
            computed_at,
            outlook,
        };
        Rescored {
            state,
            snapshot,
            outbox_payload: change.encode_to_vec(),
        }
    }

    /// Stores new snapshots with their outbox rows, then writes them through to the cache.
    async fn persist(&self, tenant: &str, rescored: &[Rescored]) -> Result<(), ScoringError> {
        self.store
            .save(tenant, rescored, rapport_telemetry::current_traceparent())
            .await?;
        self.waker.wake();
        for r in rescored {
            self.cache_put(tenant, &health(&r.snapshot)).await;
        }
        Ok(())
    }

    /// The tenant's fitted models (loaded once, then kept current by `fit_models`).
    pub async fn fitted(&self, tenant: &str) -> Result<Option<FittedModels>, ScoringError> {
        if let Some(models) = self.models.read().await.get(tenant) {
            return Ok(*models);
        }
        let bgnbd = self
            .store
            .latest_params(tenant, BgNbd::MODEL)
            .await?
            .and_then(|p| BgNbd::from_map(&p));
        let gamma_gamma = self
            .store
            .latest_params(tenant, GammaGamma::MODEL)
            .await?
            .and_then(|p| GammaGamma::from_map(&p));
        let models = bgnbd.map(|bgnbd| FittedModels {
            bgnbd,
            gamma_gamma,
            clv: twelve_months_in_days(),
        });
        self.models.write().await.insert(tenant.to_owned(), models);
        Ok(models)
    }

    /// Fits BG/NBD and Gamma-Gamma on every customer's purchase days up to `end` (in days),
    /// stores both fits, and re-scores every customer with them.
    pub async fn fit_models(
        &self,
        tenant: &str,
        end: DateTime<Utc>,
    ) -> Result<FitOutcome, ScoringError> {
        let mut summaries = Vec::new();
        let mut pages = self.store.pages(tenant, PAGE);
        while let Some(page) = pages.next().await? {
            summaries.extend(page.iter().filter_map(|row| {
                summarise_days(&row.state.metrics.purchase_days, end.date_naive(), 1.0)
            }));
        }
        let customers: Vec<Customer> = summaries.iter().map(|s| s.customer).collect();
        let spends: Vec<Spend> = summaries.iter().map(|s| s.spend()).collect();
        // Too small a population fits nothing meaningful: both models report why.
        let enough = check_population(&customers);
        let bgnbd = enough.clone().and_then(|()| BgNbd::fit(&customers));
        let gamma_gamma = enough.and_then(|()| GammaGamma::fit(&spends));
        let (end_ms, fitted_at) = (end.timestamp_millis(), Utc::now().timestamp_millis());
        let bg_record = FitRecord::of(&bgnbd, customers.len(), end_ms, fitted_at);
        let gg_record = FitRecord::of(&gamma_gamma, customers.len(), end_ms, fitted_at);
        self.store.save_fit(tenant, &bg_record).await?;
        self.store.save_fit(tenant, &gg_record).await?;
        // A failed fit keeps the tenant's previous models in use.
        self.models.write().await.remove(tenant);
        let rescored = self.rescore_all(tenant).await?;
        tracing::info!(tenant, customers = customers.len(), bgnbd = ?bg_record.error, gamma_gamma = ?gg_record.error, rescored, "models fitted");
        Ok(FitOutcome {
            bgnbd: bg_record,
            gamma_gamma: gg_record,
            rescored,
        })
    }

    /// Re-scores every customer of the tenant from stored metrics.
    pub async fn rescore_all(&self, tenant: &str) -> Result<u64, ScoringError> {
        let models = self.fitted(tenant).await?;
        let now = Utc::now();
        let mut total = 0u64;
        let mut pages = self.store.pages(tenant, PAGE);
        while let Some(page) = pages.next().await? {
            let rescored: Vec<Rescored> = page
                .into_iter()
                .map(|row| self.rescore(row.customer_id, row.state, now, models.as_ref()))
                .collect();
            self.persist(tenant, &rescored).await?;
            total += rescored.len() as u64;
        }
        Ok(total)
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
