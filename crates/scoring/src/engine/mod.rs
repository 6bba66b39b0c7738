//! Scoring's work: fold new events into metrics, score, snapshot, cache, and announce; keep
//! every tenant's scorecard, percentile tables and models at hand; answer explanations.
//! Whole-tenant work (re-scores, model fits) is in `walk`.

mod backtest;
mod walk;

pub use rapport_server::Clock;
pub use walk::{FALL_WINDOWS, FALLERS_KEPT, FitOutcome, Progress, monday};

use crate::evaluate::{
    CustomerState, Evaluation, TenantContext, alert_signals, evaluate, percentile_values, remember,
    signals_digest,
};
use crate::params::NamedParams;
use crate::store::{
    Columns, FeatureRow, FitRecord, ListFilter, NewSnapshot, OverrideChange, Rescored, Snapshot,
    SnapshotDetail, Store, StoreError, StoredScorecard, TierChange,
};
use crate::view::health;
use chrono::{DateTime, Utc};
use rapport_cache::{AnyCache, Cache, Versioned};
use rapport_domain::event::{ValidationPolicy, validate};
use rapport_domain::models::bgnbd::BgNbd;
use rapport_domain::models::gamma_gamma::{GammaGamma, Spend};
use rapport_domain::models::outlook::{FittedModels, twelve_months_in_days};
use rapport_domain::models::summary::summarise_days;
use rapport_domain::models::{Customer, check_population};
use rapport_domain::scorecard::{
    HealthScore, PercentileTable, Population, ScorecardError, ScorecardSet,
};
use rapport_proto::convert;
use rapport_proto::ingestion::v1::{
    CustomerCursor, ListCustomerEventsRequest, StoredEvent,
    ingestion_service_client::IngestionServiceClient,
};
use rapport_proto::scoring::v1 as pb;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::RelayWaker;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Deadline of a call to ingestion for new events.
const FETCH_DEADLINE: Duration = Duration::from_secs(10);
/// Most events fetched per customer and call.
const EVENTS_PER_FETCH: u32 = 5_000;
/// Times a fold (or a re-score of a few customers) is tried again for customers written
/// meanwhile before the caller is answered ABORTED (a relay retries later).
const FOLD_ATTEMPTS: usize = 8;
/// How long a tenant's loaded scorecard, percentiles and models are reused before they are
/// read again: another replica may have changed them. Reading them is four small queries.
const CONTEXT_TTL: Duration = rapport_storage::coordination::CONFIG_REFRESH;

/// Errors of scoring's work.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ingestion did not answer: {0}")]
    Upstream(tonic::Status),
    #[error("the tenant's stored scorecard no longer parses: {0}")]
    StoredScorecard(ScorecardError),
    #[error("invalid scorecard: {0}")]
    Scorecard(ScorecardError),
    #[error("customer {0:?} is unknown")]
    UnknownCustomer(String),
    #[error("{0} customers kept being written by others while being folded; try again")]
    Contended(usize),
    #[error("internal: {0}")]
    Internal(String),
    /// Loading a tenant's context failed (for every caller waiting for that load).
    #[error(transparent)]
    Loading(Arc<ScoringError>),
}

/// The built-in scorecard, its text and its version.
#[derive(Debug, Clone)]
pub struct Builtin {
    pub cards: ScorecardSet,
    pub toml: String,
    pub version: String,
}

impl Builtin {
    /// The built-in scorecard of `toml`; its version is a digest of the text, so a changed
    /// file is a new version.
    pub fn new(toml: &str) -> Result<Builtin, ScorecardError> {
        Ok(Builtin {
            cards: ScorecardSet::from_toml(toml)?,
            toml: toml.to_owned(),
            version: rapport_domain::version::builtin_version(toml),
        })
    }
}

/// Scoring's state and collaborators.
pub struct Engine {
    store: Store,
    cache: AnyCache,
    ingestion: IngestionServiceClient<PeerChannel>,
    service_key: String,
    builtin: Builtin,
    waker: RelayWaker,
    clock: Clock,
    /// Each tenant's context, loaded on first use and reused for [`CONTEXT_TTL`].
    contexts: moka::future::Cache<String, Arc<TenantContext>>,
    /// Whole-tenant re-scores run one at a time.
    rescoring: tokio::sync::Mutex<()>,
}

/// A scorecard as the API shows it.
#[derive(Debug, Clone)]
pub struct ScorecardView {
    pub version: String,
    pub toml: String,
    pub builtin: bool,
    pub updated_at: Option<i64>,
}

/// Runs `attempt` on `ids`, then again on the customers it answers were written meanwhile
/// by someone else (read afresh each time), up to [`FOLD_ATTEMPTS`] times; then ABORTED.
async fn until_stored<F, Fut>(ids: Vec<String>, mut attempt: F) -> Result<(), ScoringError>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, ScoringError>>,
{
    let mut pending = ids;
    for _ in 0..FOLD_ATTEMPTS {
        pending = attempt(pending).await?;
        if pending.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            stale = pending.len(),
            "customers written meanwhile; trying again"
        );
    }
    Err(ScoringError::Contended(pending.len()))
}

/// The cache key of a customer's health; it carries the tenant.
pub fn cache_key(tenant: &str, customer_id: &str) -> String {
    format!("rapport:{}:{tenant}:health:{customer_id}", tenant.len())
}

/// The snapshot of an evaluation.
fn snapshot_of(
    customer_id: &str,
    state: &CustomerState,
    e: &Evaluation,
    version: &str,
    computed_at: i64,
) -> Snapshot {
    Snapshot {
        customer_id: customer_id.to_owned(),
        score: e.score,
        band: e.band,
        tier: state.tier,
        scorecard_version: version.to_owned(),
        measures: crate::store::measures(&e.computed),
        computed_at,
        outlook: e.outlook,
        detail: SnapshotDetail {
            groups: crate::store::groups(&e.computed),
            trend_7d: e.trend_7d,
            trend_30d: e.trend_30d,
            computed_score: Some(e.computed.score),
            overrides: e.overrides.clone(),
            churned_at: e.churned_at.map(|t| t.timestamp_millis()),
            stage: state.stage,
        },
    }
}

impl Engine {
    /// An engine on a migrated store; `ingestion` is where new events are fetched from.
    pub fn new(
        store: Store,
        cache: AnyCache,
        ingestion: IngestionServiceClient<PeerChannel>,
        service_key: String,
        builtin: Builtin,
        waker: RelayWaker,
        clock: Clock,
    ) -> Engine {
        Engine {
            store,
            cache,
            ingestion,
            service_key,
            builtin,
            waker,
            clock,
            contexts: moka::future::Cache::builder()
                .time_to_live(CONTEXT_TTL)
                .build(),
            rescoring: Default::default(),
        }
    }

    /// Fetches the new events of `customer_ids`, folds them in, rescoring each customer;
    /// idempotent: events at or below a customer's cursor are never applied twice. A
    /// customer written meanwhile by someone else (another replica, another call) is read
    /// and folded again.
    pub async fn customers_changed(
        &self,
        tenant: &str,
        customer_ids: Vec<String>,
    ) -> Result<usize, ScoringError> {
        let customers = std::sync::atomic::AtomicUsize::new(0);
        until_stored(customer_ids, |ids| {
            let customers = &customers;
            async move {
                let (folded, stale) = self.fold(tenant, ids).await?;
                customers.fetch_add(folded, std::sync::atomic::Ordering::Relaxed);
                Ok(stale)
            }
        })
        .await?;
        let customers = customers.into_inner();
        tracing::info!(tenant, customers, "rescored");
        Ok(customers)
    }

    /// One attempt of [`Engine::customers_changed`]: answers how many customers were stored
    /// and those found written meanwhile (nothing of theirs stored).
    async fn fold(
        &self,
        tenant: &str,
        customer_ids: Vec<String>,
    ) -> Result<(usize, Vec<String>), ScoringError> {
        let mut states = self.store.states(tenant, &customer_ids).await?;
        let now = self.clock.now();
        let lenient = ValidationPolicy::stored();
        let mut touched: BTreeMap<String, CustomerState> = BTreeMap::new();
        // Per customer, the backfill of every event folded (None once one was live).
        let mut backfills: BTreeMap<String, Option<String>> = BTreeMap::new();
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
                let seen = backfills.remove(&id);
                backfills.insert(id.clone(), backfill_after(seen, &stored.backfill));
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

        let ctx = self.context(tenant).await?;
        let mut rescored: Vec<Rescored> = touched
            .into_iter()
            .map(|(customer_id, state)| rescore(customer_id, state, &ctx, now).0)
            .collect();
        // Alerting tells a backfill's alerts in one summary: a change is the backfill's when
        // every event it folded came in with one; a single live event makes it live.
        for r in &mut rescored {
            if let (Some(n), Some(Some(b))) =
                (r.notification.as_mut(), backfills.get(&r.customer_id))
            {
                n.backfill = b.clone();
            }
        }
        let customers = rescored.len();
        let stale = self.persist(tenant, rescored, Columns::All).await?;
        Ok((customers - stale.len(), stale))
    }

    /// Stores new states and snapshots with their outbox rows, then writes the new
    /// snapshots through to the cache; answers the customers found written meanwhile.
    async fn persist(
        &self,
        tenant: &str,
        rescored: Vec<Rescored>,
        columns: Columns,
    ) -> Result<Vec<String>, ScoringError> {
        self.writer()
            .persist(
                tenant,
                rescored,
                columns,
                rapport_telemetry::current_traceparent(),
            )
            .await
    }

    /// What stores and caches new scores, detached from the engine (for pipelined work).
    fn writer(&self) -> Writer {
        Writer {
            store: self.store.clone(),
            cache: self.cache.clone(),
            waker: self.waker.clone(),
        }
    }

    /// The tenant's scorecard, percentile tables and models, loaded at most every
    /// [`CONTEXT_TTL`]. Percentile tables are made only by whole-tenant re-scores, never on
    /// this path: until the first one, percentile measures are left out.
    pub async fn context(&self, tenant: &str) -> Result<Arc<TenantContext>, ScoringError> {
        // Callers missing at once wait for one load.
        self.contexts
            .try_get_with(tenant.to_owned(), self.load_context(tenant))
            .await
            .map_err(ScoringError::Loading)
    }

    /// Reads the tenant's scorecard, percentile tables and models.
    async fn load_context(&self, tenant: &str) -> Result<Arc<TenantContext>, ScoringError> {
        let (cards, version) = match self.store.scorecard(tenant).await? {
            Some(stored) => (
                ScorecardSet::from_toml(&stored.toml).map_err(ScoringError::StoredScorecard)?,
                format!("v{}", stored.revision),
            ),
            None => (self.builtin.cards.clone(), self.builtin.version.clone()),
        };
        let (population, population_of) = self.store.population(tenant).await?;
        Ok(Arc::new(TenantContext {
            cards,
            version,
            population,
            population_of,
            models: self.fitted(tenant).await?,
        }))
    }

    /// Forgets the tenant's loaded context, so the next use reads it again.
    pub async fn forget_context(&self, tenant: &str) {
        self.contexts.invalidate(tenant).await;
    }

    /// The tenant's fitted models, from their latest converged fits.
    async fn fitted(&self, tenant: &str) -> Result<Option<FittedModels>, ScoringError> {
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
        Ok(bgnbd.map(|bgnbd| FittedModels {
            bgnbd,
            gamma_gamma,
            clv: twelve_months_in_days(),
        }))
    }

    /// Re-scores some customers from stored metrics (after an override or a stage change);
    /// a customer written meanwhile is read and re-scored again.
    pub async fn rescore_customers(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<(), ScoringError> {
        until_stored(ids.to_vec(), |pending| async move {
            let ctx = self.context(tenant).await?;
            let now = self.clock.now();
            let states = self.store.states(tenant, &pending).await?;
            let rescored: Vec<Rescored> = states
                .into_iter()
                .map(|(id, state)| rescore(id, state, &ctx, now).0)
                .filter(|r| r.notification.is_some())
                .collect();
            self.persist(tenant, rescored, Columns::Score).await
        })
        .await
    }

    async fn fetch(
        &self,
        tenant: &str,
        customers: Vec<CustomerCursor>,
    ) -> Result<Vec<StoredEvent>, ScoringError> {
        static RETRIES: std::sync::LazyLock<rapport_server::RetryBudget> =
            std::sync::LazyLock::new(Default::default);
        let answer = rapport_server::with_retries(&RETRIES, || {
            let req = peer_request(
                ListCustomerEventsRequest {
                    customers: customers.clone(),
                    limit_per_customer: EVENTS_PER_FETCH,
                    newest_first: false,
                },
                tenant,
                &self.service_key,
                FETCH_DEADLINE,
            );
            let mut ingestion = self.ingestion.clone();
            async move { ingestion.list_customer_events(req).await }
        })
        .await;
        Ok(answer.map_err(ScoringError::Upstream)?.into_inner().events)
    }

    /// The current health of customers: from the cache in one round trip, then the
    /// database for misses (refilling the cache); unknown customers are left out.
    pub async fn health(
        &self,
        tenant: &str,
        customer_ids: &[String],
    ) -> Result<Vec<pb::HealthScore>, ScoringError> {
        let keys: Vec<String> = customer_ids
            .iter()
            .map(|id| cache_key(tenant, id))
            .collect();
        // When Redis failed this call, it is not asked again (to refill) in the same call:
        // one timeout at most per read, never one per customer.
        let (cached, cache_up) = match self.cache.get_many(&keys).await {
            Ok(values) => (values, true),
            Err(error) => {
                tracing::warn!(%error, "cache read failed; reading from the database");
                (vec![None; keys.len()], false)
            }
        };
        let decoded: Vec<Option<pb::HealthScore>> = cached
            .into_iter()
            .map(|b| b.and_then(|b| crate::body::decode(&b).ok()))
            .collect();
        let misses: Vec<String> = customer_ids
            .iter()
            .zip(&decoded)
            .filter(|(_, h)| h.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let reads = &rapport_telemetry::metrics::metrics().cache_reads;
        let hits = (customer_ids.len() - misses.len()) as u64;
        reads
            .get_or_create(&vec![("result", "hit".to_owned())])
            .inc_by(hits);
        reads
            .get_or_create(&vec![("result", "miss".to_owned())])
            .inc_by(misses.len() as u64);
        let stored = if misses.is_empty() {
            HashMap::new()
        } else {
            self.store.latest_many(tenant, &misses).await?
        };
        let mut out = Vec::with_capacity(customer_ids.len());
        let mut refill = Vec::new();
        for ((id, key), hit) in customer_ids.iter().zip(keys).zip(decoded) {
            if let Some(h) = hit {
                out.push(h);
            } else if let Some(snapshot) = stored.get(id) {
                let h = health(snapshot);
                if cache_up {
                    refill.push((key, crate::body::encode(&h)));
                }
                out.push(h);
            }
        }
        // A write-through of a newer score since the database was read wins over the refill.
        if let Err(error) = self.cache.fill_many(refill).await {
            tracing::warn!(%error, "cache refill failed; reads fall back to the database");
        }
        Ok(out)
    }

    /// The latest snapshot at or before `at` (`None`: the current one).
    /// The time now, as this engine's clock tells it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Every tenant with customers.
    pub async fn tenants(&self) -> Result<Vec<String>, ScoringError> {
        Ok(self.store.tenants().await?)
    }

    /// A page of customers' features (ids after `after`, at most `limit`) as of `end` (now
    /// when `None`), and the id to continue after (empty on the last page).
    pub async fn features_page(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
        end: Option<DateTime<Utc>>,
    ) -> Result<(Vec<pb::CustomerFeatures>, String), ScoringError> {
        let rows = self
            .store
            .features_page(tenant, after, u64::from(limit))
            .await?;
        let now = self.now();
        let end = end.unwrap_or(now);
        let models = self.context(tenant).await?.models;
        let next = match rows.last() {
            Some(last) if rows.len() == limit as usize => last.customer_id.clone(),
            _ => String::new(),
        };
        let features = rows
            .into_iter()
            .map(|row| crate::features::features(row, models.as_ref(), now, end))
            .collect();
        Ok((features, next))
    }

    /// The `limit` lowest scores of a tenant of those that pass `filter`, lowest first.
    pub async fn lowest(
        &self,
        tenant: &str,
        filter: &ListFilter,
        limit: u32,
    ) -> Result<Vec<pb::HealthScore>, ScoringError> {
        let ids = self.store.lowest(tenant, filter, u64::from(limit)).await?;
        let mut scores = self.health(tenant, &ids).await?;
        scores.sort_by(|a, b| {
            a.score
                .total_cmp(&b.score)
                .then(a.customer_id.cmp(&b.customer_id))
        });
        Ok(scores)
    }

    /// A customer's snapshots computed from `from` to `to` (milliseconds), oldest first, at
    /// most `limit`.
    pub async fn history(
        &self,
        tenant: &str,
        customer_id: &str,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<Snapshot>, ScoringError> {
        Ok(self
            .store
            .history(tenant, customer_id, from, to, u64::from(limit))
            .await?)
    }

    /// The customer's latest snapshot at or before `at` (the latest of all when `None`).
    pub async fn snapshot_at(
        &self,
        tenant: &str,
        customer_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Snapshot>, ScoringError> {
        Ok(self
            .store
            .snapshot_at(tenant, customer_id, at.map(|t| t.timestamp_millis()))
            .await?)
    }

    /// When the newest event each measure reads happened, from the customer's stored state
    /// (for explaining the latest score: the state is today's, not a past one's).
    pub async fn freshness(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> Result<HashMap<rapport_domain::metrics::Indicator, DateTime<Utc>>, ScoringError> {
        let states = self.store.states(tenant, &[customer_id.to_owned()]).await?;
        let Some(state) = states.get(customer_id) else {
            return Ok(HashMap::new());
        };
        Ok(rapport_domain::metrics::Indicator::ALL
            .iter()
            .filter_map(|&i| Some((i, state.metrics.data_at(i)?)))
            .collect())
    }

    /// Records new tiers and stages, and re-scores the customers whose card may change.
    pub async fn apply_tiers(
        &self,
        tenant: &str,
        tiers: Vec<TierChange>,
    ) -> Result<(), ScoringError> {
        let now = self.clock.now().timestamp_millis();
        let ids = self.store.apply_tiers(tenant, &tiers, now).await?;
        // The tier and stage are part of what a snapshot shows, so every customer whose tier
        // moved here gets a new snapshot, written through to the cache.
        self.rescore_customers(tenant, &ids).await
    }

    /// The tenant's scorecard in use.
    pub async fn scorecard(&self, tenant: &str) -> Result<ScorecardView, ScoringError> {
        Ok(match self.store.scorecard(tenant).await? {
            Some(StoredScorecard {
                revision,
                toml,
                created_at,
            }) => ScorecardView {
                version: format!("v{revision}"),
                toml,
                builtin: false,
                updated_at: Some(created_at),
            },
            None => ScorecardView {
                version: self.builtin.version.clone(),
                toml: self.builtin.toml.clone(),
                builtin: true,
                updated_at: None,
            },
        })
    }

    /// Validates and stores the tenant's new scorecard; the old one stays if it is invalid.
    pub async fn set_scorecard(
        &self,
        tenant: &str,
        toml: &str,
    ) -> Result<ScorecardView, ScoringError> {
        ScorecardSet::from_toml(toml).map_err(ScoringError::Scorecard)?;
        let stored = self
            .store
            .save_scorecard(tenant, toml, self.clock.now().timestamp_millis())
            .await?;
        self.forget_context(tenant).await;
        Ok(ScorecardView {
            version: format!("v{}", stored.revision),
            toml: stored.toml,
            builtin: false,
            updated_at: Some(stored.created_at),
        })
    }

    /// Sets or clears an override and re-scores the customer at once.
    pub async fn change_override(
        &self,
        tenant: &str,
        change: OverrideChange,
    ) -> Result<Option<pb::HealthScore>, ScoringError> {
        let now = self.clock.now().timestamp_millis();
        if !self.store.change_override(tenant, &change, now).await? {
            return Err(ScoringError::UnknownCustomer(change.customer_id));
        }
        let ids = [change.customer_id];
        self.rescore_customers(tenant, &ids).await?;
        Ok(self.health(tenant, &ids).await?.pop())
    }

    /// Re-scores the customers whose overrides expired, so their computed score returns.
    pub async fn apply_expired_overrides(&self) -> Result<usize, ScoringError> {
        let now = self.clock.now().timestamp_millis();
        let expired = self.store.expired_overrides(now, 1_000).await?;
        let mut by_tenant: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (_, tenant, customer) in &expired {
            by_tenant
                .entry(tenant.as_str())
                .or_default()
                .insert(customer.clone());
        }
        for (tenant, customers) in by_tenant {
            let ids: Vec<String> = customers.into_iter().collect();
            self.rescore_customers(tenant, &ids).await?;
        }
        let ids: Vec<i64> = expired.iter().map(|(id, _, _)| *id).collect();
        if !ids.is_empty() {
            self.store.expiries_applied(&ids).await?;
        }
        Ok(ids.len())
    }
}

/// What a whole-tenant walk notes of each customer it evaluates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Seen {
    /// The customer's band now (`None`: no score).
    pub band: Option<rapport_domain::scorecard::Band>,
    pub trend_7d: Option<f64>,
    pub trend_30d: Option<f64>,
}

/// Evaluates a customer at `now`; a snapshot (and a notification) only when what it shows
/// changed since the stored one. Also returns the scorecard's result (its raw values feed
/// the percentile tables) and what a walk notes of the customer.
fn rescore(
    customer_id: String,
    mut state: CustomerState,
    ctx: &TenantContext,
    now: DateTime<Utc>,
) -> (Rescored, HealthScore, Seen) {
    let e = evaluate(&state, ctx, now);
    let seen = Seen {
        band: e.measured().then_some(e.band),
        trend_7d: e.trend_7d,
        trend_30d: e.trend_30d,
    };
    let signals = alert_signals(&state, &e, now);
    let digest = signals_digest(&signals);
    // A customer the models cover whose row has no P(alive) yet (stored before it was kept)
    // gets its snapshot again, which records it.
    let score_changed = state.fingerprint != Some(e.fingerprint)
        || (e.outlook.is_some() && state.p_alive.is_none());
    if !e.measured() || (!score_changed && state.signals == Some(digest)) {
        let unchanged = Rescored {
            customer_id,
            state,
            snapshot: None,
            notification: None,
        };
        return (unchanged, e.computed, seen);
    }
    let computed_at = now.timestamp_millis();
    let change = convert::score_change(&customer_id, e.band, computed_at, &signals);
    state.signals = Some(digest);
    if !score_changed {
        // Only what alerting hears changed (a complaint, a ticket): no new snapshot.
        let rescored = Rescored {
            customer_id,
            state,
            snapshot: None,
            notification: Some(change),
        };
        return (rescored, e.computed, seen);
    }
    let snapshot = snapshot_of(&customer_id, &state, &e, &ctx.version, computed_at);
    state.fingerprint = Some(e.fingerprint);
    state.score = Some(e.score);
    state.band = Some(e.band);
    state.p_alive = e.outlook.map(|o| o.p_alive);
    state.recent = remember(&state.recent, now.date_naive(), e.score);
    state.overrides = e.overrides;
    let rescored = Rescored {
        customer_id,
        state,
        snapshot: Some(NewSnapshot::of(snapshot)),
        notification: Some(change),
    };
    (rescored, e.computed, seen)
}

/// The storage and cache a whole-tenant walk writes to, owned so writes can run as tasks.
struct Writer {
    store: Store,
    cache: AnyCache,
    waker: RelayWaker,
}

impl Writer {
    /// Stores new states and snapshots with their outbox rows, then writes the new
    /// snapshots through to the cache; answers the customers found written meanwhile (by
    /// another replica or call), of whom nothing was stored or cached.
    async fn persist(
        &self,
        tenant: &str,
        rescored: Vec<Rescored>,
        columns: Columns,
        traceparent: Option<String>,
    ) -> Result<Vec<String>, ScoringError> {
        let saved = self
            .store
            .save(tenant, &rescored, columns, traceparent)
            .await?;
        self.waker.wake();
        // The stored bodies are the cached values: moved here, not copied. Another replica's
        // write of the same customer may reach the cache first: the version (the revision the
        // score was computed from, then its time) keeps the newer.
        let entries: Vec<Versioned> = rescored
            .into_iter()
            .filter(|r| saved.stored.contains(&r.customer_id))
            .filter_map(|r| {
                let revision = match columns {
                    Columns::All => r.state.revision + 1,
                    Columns::Score => r.state.revision,
                };
                let snapshot = r.snapshot?;
                Some(Versioned {
                    key: cache_key(tenant, &r.customer_id),
                    version: (revision, snapshot.computed_at),
                    value: snapshot.body,
                })
            })
            .collect();
        if let Err(error) = self.cache.put_many(entries).await {
            tracing::warn!(%error, "cache write failed; reads fall back to the database");
        }
        Ok(saved.stale)
    }
}

/// The backfill a customer's change belongs to after one more folded event (`seen`: what
/// the events before it said, `None` before the first): the event's backfill while every
/// event came with one, live (`None`) for good once one came live (an empty label).
fn backfill_after(seen: Option<Option<String>>, event: &str) -> Option<String> {
    let event = Some(event.to_owned()).filter(|b| !b.is_empty());
    match seen {
        None => event,
        Some(before) => before.and(event),
    }
}

#[cfg(test)]
mod backfill_tests {
    use super::backfill_after;

    #[test]
    fn a_change_is_a_backfills_only_when_every_event_it_folded_is() {
        let fold = |events: &[&str]| {
            events
                .iter()
                .fold(None, |seen, e| Some(backfill_after(seen, e)))
        };
        assert_eq!(fold(&["a.csv", "a.csv"]), Some(Some("a.csv".to_owned())));
        assert_eq!(fold(&["a.csv", "", "a.csv"]), Some(None));
        assert_eq!(fold(&["", "a.csv"]), Some(None));
        assert_eq!(fold(&["a.csv", "b.csv"]), Some(Some("b.csv".to_owned())));
        assert_eq!(fold(&[]), None);
    }
}
