//! Scoring's storage: customer metrics with their event cursor, score snapshots, and the
//! outbox to alerting, written together; scorecard versions, overrides, percentile tables
//! and model fits.

use crate::entity::{customer, model_fit, population, score, score_override, scorecard, snapshot};
use crate::evaluate::{ActiveOverride, CustomerState, DayScore, OverrideTarget};
use crate::migration::OUTBOX;
use crate::params::NamedParams;
use crate::relay::{SCORE_CHANGES, score_changes};
use rapport_domain::lifecycle::Stage;
use rapport_domain::metrics::CustomerMetrics;
use rapport_domain::models::outlook::Outlook;
use rapport_domain::models::{Fit, ModelError};
use rapport_domain::scorecard::{Band, HealthScore, PercentileTable, Population};
use rapport_domain::tier::Tier;
use rapport_proto::alerting::v1::ScoreChange;
use rapport_storage::coordination::Exclusive;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows per multi-row INSERT: well under PostgreSQL's 65,535 bind parameters.
const ROWS_PER_INSERT: usize = 1_000;

/// Errors of scoring's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("stored data of customer {customer_id} is unreadable: {reason}")]
    Corrupt { customer_id: String, reason: String },
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// One measure of a stored snapshot. Absent values and zeros are left out of the stored
/// form, so a snapshot stays small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMeasure {
    pub measure: String,
    #[serde(default)]
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Normalised 0–100; `None` when the measure was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub weight: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contribution: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shortfall: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
}

/// One group of a stored snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub weight: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contribution: f64,
}

/// The stored form of a score's measures.
pub fn measures(score: &HealthScore) -> Vec<StoredMeasure> {
    score
        .measures
        .iter()
        .map(|m| StoredMeasure {
            measure: m.key.clone(),
            group: m.group.clone(),
            value: m.value,
            score: m.score,
            weight: m.weight,
            contribution: m.contribution,
            shortfall: m.shortfall,
            band: m.band.map(|b| b.name().to_owned()),
        })
        .collect()
}

/// The stored form of a score's groups.
pub fn groups(score: &HealthScore) -> Vec<StoredGroup> {
    score
        .groups
        .iter()
        .map(|g| StoredGroup {
            group: g.name.clone(),
            score: g.score,
            weight: g.weight,
            contribution: g.contribution,
        })
        .collect()
}

/// What a snapshot records beyond its score and measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDetail {
    #[serde(default)]
    pub groups: Vec<StoredGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_7d: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_30d: Option<f64>,
    /// The scorecard's score before overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<ActiveOverride>,
    /// When the customer churned (the score is frozen as of then), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churned_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
}

/// A stored health snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub customer_id: String,
    pub score: f64,
    pub band: Band,
    pub tier: Option<Tier>,
    pub scorecard_version: String,
    pub measures: Vec<StoredMeasure>,
    pub computed_at: i64,
    /// The fitted models' outlook, once the tenant's models are fitted.
    pub outlook: Option<Outlook>,
    pub detail: SnapshotDetail,
}

/// A new snapshot, ready to store and cache: the columns its rows are found and filtered
/// by, and its body, the API's `HealthScore` encoded and compressed once for both
/// ([`crate::body`]). Its customer is the [`Rescored`]'s.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub score: f64,
    pub band: Band,
    pub tier: Option<Tier>,
    pub scorecard_version: String,
    pub computed_at: i64,
    pub outlook: Option<Outlook>,
    pub body: Vec<u8>,
}

impl NewSnapshot {
    /// The columns and body of a snapshot; its measures and detail live on in the body
    /// alone.
    pub fn of(s: Snapshot) -> NewSnapshot {
        let body = crate::body::encode(&crate::view::health(&s));
        NewSnapshot {
            score: s.score,
            band: s.band,
            tier: s.tier,
            scorecard_version: s.scorecard_version,
            computed_at: s.computed_at,
            outlook: s.outlook,
            body,
        }
    }
}

/// A customer's tier (and stage) as a grading run decided them.
#[derive(Debug, Clone, PartialEq)]
pub struct TierChange {
    pub customer_id: String,
    pub tier: Tier,
    pub stage: Option<Stage>,
    /// When the run began grading (ms); `None` applies whatever set the tier before.
    pub graded_at: Option<i64>,
}

/// What [`Store::save`] stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// Customers whose state changed since it was read: nothing of theirs was stored.
    pub stale: Vec<String>,
    /// Customers whose new state or score was stored (with their snapshots and
    /// notifications).
    pub stored: HashSet<String>,
}

/// A customer's new state and, when its score changed, its new snapshot, ready to store.
#[derive(Debug, Clone)]
pub struct Rescored {
    pub customer_id: String,
    pub state: CustomerState,
    pub snapshot: Option<NewSnapshot>,
    /// What alerting is to hear of the change (with the snapshot).
    pub notification: Option<ScoreChange>,
}

impl FitRecord {
    /// The record of a fit, or of why it failed (`customers`: how many the fit was given).
    pub fn of<P: NamedParams>(
        fit: &Result<Fit<P>, ModelError>,
        customers: usize,
        observation_end: i64,
        fitted_at: i64,
    ) -> Self {
        let record = FitRecord {
            model: P::MODEL,
            params: BTreeMap::new(),
            log_likelihood: None,
            iterations: 0,
            converged: false,
            customers: customers as u64,
            error: None,
            observation_end,
            fitted_at,
        };
        match fit {
            Ok(f) => FitRecord {
                params: f.params.to_map(),
                log_likelihood: Some(f.log_likelihood),
                iterations: f.iterations,
                converged: f.converged,
                customers: f.customers as u64,
                ..record
            },
            Err(e) => FitRecord {
                error: Some(e.to_string()),
                ..record
            },
        }
    }
}

/// A stored model fit (parameters by name).
#[derive(Debug, Clone, PartialEq)]
pub struct FitRecord {
    pub model: &'static str,
    pub params: BTreeMap<String, f64>,
    pub log_likelihood: Option<f64>,
    pub iterations: u32,
    pub converged: bool,
    pub customers: u64,
    pub error: Option<String>,
    pub observation_end: i64,
    pub fitted_at: i64,
}

/// A tenant's customers, a page at a time in id order.
pub struct Pages<'a> {
    store: &'a Store,
    tenant: &'a str,
    size: u64,
    one_in: u64,
    after: Option<String>,
}

impl Pages<'_> {
    /// The next page; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<FeatureRow>>, StoreError> {
        let Some(after) = self.after.take() else {
            return Ok(None);
        };
        let page = self
            .store
            .sampled_page(self.tenant, &after, self.size, self.one_in)
            .await?;
        if page.len() as u64 == self.size {
            self.after = page.last().map(|r| r.customer_id.clone());
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

/// The ranking features of one customer.
#[derive(Debug, Clone)]
pub struct FeatureRow {
    pub customer_id: String,
    pub state: CustomerState,
}

fn json<T: serde::de::DeserializeOwned>(customer_id: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: e.to_string(),
    })
}

fn optional_json<T: serde::de::DeserializeOwned + Default>(
    customer_id: &str,
    text: Option<&str>,
) -> Result<T, StoreError> {
    text.map_or(Ok(T::default()), |t| json(customer_id, t))
}

/// A customer's state from its row and its score's (none until first scored).
fn state_of(m: &customer::Model, s: Option<&score::Model>) -> Result<CustomerState, StoreError> {
    let id = m.customer_id.as_str();
    Ok(CustomerState {
        metrics: json::<CustomerMetrics>(id, &m.metrics)?,
        last_event_seq: m.last_event_seq,
        revision: m.revision,
        tier: m.tier.as_deref().and_then(Tier::from_name),
        stage: m.stage.as_deref().and_then(Stage::from_name),
        stage_since: m.stage_since,
        fingerprint: s.and_then(|s| s.fingerprint),
        score: s.and_then(|s| s.score),
        band: s.and_then(|s| s.band.as_deref()).and_then(Band::from_name),
        recent: match s.and_then(|s| s.recent.as_deref()) {
            Some(bytes) => recent_of(id, bytes)?,
            None => Vec::new(),
        },
        overrides: optional_json::<Vec<ActiveOverride>>(id, m.overrides.as_deref())?,
        signals: s.and_then(|s| s.signals),
    })
}

/// The first byte of [`recent_bytes`]; JSON, as older rows hold, starts with `[`.
const RECENT_FORMAT: u8 = 1;
/// Bytes per day in [`recent_bytes`]: the day (from the common era) and the score.
const RECENT_DAY_BYTES: usize = 4 + 8;

/// The stored form of a customer's daily closing scores: a format byte, then per day its
/// number and score, little-endian (12 bytes a day; JSON took about 40).
pub fn recent_bytes(recent: &[DayScore]) -> Vec<u8> {
    use chrono::Datelike;
    let mut out = Vec::with_capacity(1 + recent.len() * RECENT_DAY_BYTES);
    out.push(RECENT_FORMAT);
    for d in recent {
        out.extend(d.day.num_days_from_ce().to_le_bytes());
        out.extend(d.score.to_le_bytes());
    }
    out
}

/// A customer's daily closing scores from their stored form: [`recent_bytes`], or the JSON
/// rows kept from before it.
pub fn recent_of(customer_id: &str, bytes: &[u8]) -> Result<Vec<DayScore>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: format!("recent scores: {reason}"),
    };
    match bytes.split_first() {
        None => Ok(Vec::new()),
        Some((b'[', _)) => serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string())),
        Some((&RECENT_FORMAT, days)) => {
            let (whole, rest) = days.as_chunks::<RECENT_DAY_BYTES>();
            if !rest.is_empty() {
                return Err(corrupt(format!("{} bytes of days", days.len())));
            }
            whole
                .iter()
                .map(|c| {
                    let day = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    let score =
                        f64::from_le_bytes([c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]]);
                    let day = chrono::NaiveDate::from_num_days_from_ce_opt(day)
                        .ok_or_else(|| corrupt(format!("day {day} out of range")))?;
                    Ok(DayScore { day, score })
                })
                .collect()
        }
        Some((other, _)) => Err(corrupt(format!("unknown format {other}"))),
    }
}

fn to_json<T: Serialize>(customer_id: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: e.to_string(),
    })
}

/// The snapshot of a stored row, with the customer's current tier.
fn snapshot_of(row: snapshot::Model, tier: Option<Tier>) -> Result<Snapshot, StoreError> {
    if let Some(body) = &row.body {
        let health = crate::body::decode(body).map_err(|e| StoreError::Corrupt {
            customer_id: row.customer_id.clone(),
            reason: format!("snapshot body: {e}"),
        })?;
        return crate::view::snapshot(health, tier);
    }
    let id = row.customer_id.as_str();
    let measures = json(id, &row.measures)?;
    let detail = optional_json(id, row.detail.as_deref())?;
    Ok(Snapshot {
        score: row.score,
        band: Band::from_name(&row.band).unwrap_or(Band::Red),
        tier,
        scorecard_version: row.scorecard_version,
        measures,
        computed_at: row.computed_at,
        outlook: match (row.p_alive, row.expected_purchases_90d, row.clv_12m) {
            (Some(p_alive), Some(expected_purchases_90d), Some(clv)) => Some(Outlook {
                p_alive,
                expected_purchases_90d,
                clv,
            }),
            _ => None,
        },
        detail,
        customer_id: row.customer_id,
    })
}

/// What of a customer a save writes. Tier, stage and overrides are never among them: their
/// own writers (ApplyTiers, SetOverride) own them. The score's row is written (inserted the
/// first time) for every customer that has been scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Metrics, event cursor and score: after folding new events.
    All,
    /// Only the score and what derives from it: a re-score from stored metrics, of
    /// customers read from the store.
    Score,
}

/// A customer with an override, set or cleared.
#[derive(Debug, Clone)]
pub struct OverrideChange {
    pub customer_id: String,
    pub target: OverrideTarget,
    pub author: String,
    pub reason: String,
    /// `Some` to set (value, expiry in milliseconds), `None` to clear.
    pub set: Option<(f64, i64)>,
}

/// A tenant's stored scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScorecard {
    pub revision: i64,
    pub toml: String,
    pub created_at: i64,
}

/// Points per step of the lowest-scores index (fixed by the migration that made it).
pub const SCORE_STEP: f64 = 5.0;

/// The step of the lowest-scores index a score falls in: truncated, so it never decreases as
/// the score grows, and ordering by step then score is ordering by score.
pub fn score_step(score: f64) -> i32 {
    // `as` saturates; scores lie between 0 and 100.
    (score / SCORE_STEP).trunc() as i32
}

/// Scoring's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// The store on an already migrated database.
    pub fn new(db: DatabaseConnection) -> Self {
        Store { db }
    }

    /// Holds the lock `name` across scoring's replicas until the answer is released.
    pub async fn exclusive(&self, name: &str) -> Result<Exclusive, StoreError> {
        Ok(Exclusive::take(&self.db, name).await?)
    }

    /// The stored state of some customers (absent ones are new).
    pub async fn states(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, CustomerState>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            // The customers' rows and their scores' as of one moment.
            let txn = rapport_storage::begin_read(&self.db).await?;
            let rows = customer::Entity::find()
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?;
            let scores = scores(
                &txn,
                tenant,
                score::Column::CustomerId.is_in(chunk.iter().cloned()),
            )
            .await?;
            txn.commit().await?;
            for row in with_scores(rows, &scores) {
                let row = row?;
                out.insert(row.customer_id, row.state);
            }
        }
        Ok(out)
    }

    /// Stores customers' new states (`Columns::All`, after folding events) or only their new
    /// scores (`Columns::Score`, a re-score that must not overwrite metrics folded meanwhile),
    /// their new snapshots and the outbox rows to alerting, in one transaction, with
    /// multi-row statements. The metrics and the score are rows of two tables: a re-score
    /// writes only the narrow one.
    ///
    /// Each state is stored only if the customer's row is still at the revision it was read
    /// at (`CustomerState::revision`); the others are answered as stale, to be read and
    /// computed again. So replicas (or two calls of one) writing a customer at once never
    /// lose an update nor put an older state over a newer one. A fold moves the revision;
    /// a re-score records the revision its score was computed from.
    pub async fn save(
        &self,
        tenant: &str,
        rescored: &[Rescored],
        columns: Columns,
        traceparent: Option<String>,
    ) -> Result<Saved, StoreError> {
        let mut saved = Saved::default();
        if rescored.is_empty() {
            return Ok(saved);
        }
        let txn = rapport_storage::begin_bulk_write(&self.db).await?;
        let backend = txn.get_database_backend();
        for chunk in rescored.chunks(ROWS_PER_INSERT) {
            let mut current: Vec<&Rescored> = match columns {
                Columns::All => {
                    let won = returned_ids(&txn, upsert_customers(backend, tenant, chunk)?).await?;
                    let (current, stale): (Vec<&Rescored>, Vec<&Rescored>) = chunk
                        .iter()
                        .partition(|r| won.contains(r.customer_id.as_str()));
                    saved
                        .stale
                        .extend(stale.into_iter().map(|r| r.customer_id.clone()));
                    current
                }
                Columns::Score => chunk.iter().collect(),
            };
            let won = returned_ids(&txn, upsert_scores(backend, tenant, &current, columns)).await?;
            current.retain(|r| {
                // A state without a score row has only its snapshot, if anything, to store.
                let stored = !has_score_row(&r.state) || won.contains(r.customer_id.as_str());
                if stored {
                    saved.stored.insert(r.customer_id.clone());
                } else if columns == Columns::Score {
                    saved.stale.push(r.customer_id.clone());
                }
                stored
            });
            if let Some(insert) = insert_snapshots(backend, tenant, &current) {
                txn.execute_raw(insert).await?;
            }
        }
        let scores: Vec<ScoreChange> = rescored
            .iter()
            .filter(|r| saved.stored.contains(&r.customer_id))
            .filter_map(|r| r.notification.clone())
            .collect();
        if !scores.is_empty() {
            OUTBOX
                .push(
                    &txn,
                    tenant,
                    SCORE_CHANGES,
                    score_changes(scores),
                    traceparent,
                )
                .await?;
        }
        txn.commit().await?;
        Ok(saved)
    }

    /// The tenants that have customers.
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(customer::Entity::find()
            .select_only()
            .column(customer::Column::TenantId)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Refreshes PostgreSQL's statistics of the customers table. A walk in id order pages
    /// with `customer_id > last ORDER BY customer_id LIMIT n`; planned with the statistics of
    /// a table that has since grown by a bulk load, each page sorted every remaining row
    /// instead of reading the primary key in order, and a walk grew with the square of the
    /// customers. (SQLite reads its primary key in order whatever its statistics.)
    ///
    /// Analyses only when the planner's row estimate is below `rows` (one tenant's known
    /// customers): scheduled re-scores run for every tenant, and fresh statistics need none.
    pub async fn refresh_statistics(&self, rows: u64) -> Result<(), StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        // -1 (or 0) until the table was first analysed.
        let estimate = self
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = 'scoring_customers'::regclass",
            ))
            .await?
            .map(|row| row.try_get::<f64>("", "rows"))
            .transpose()?
            .unwrap_or(-1.0);
        if estimate < rows as f64 * 0.9 {
            self.db
                .execute_unprepared("ANALYZE scoring_customers")
                .await?;
        }
        Ok(())
    }

    /// How many customers the tenant has.
    pub async fn customer_count(&self, tenant: &str) -> Result<u64, StoreError> {
        Ok(customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .count(&self.db)
            .await?)
    }

    /// Records a model fit.
    pub async fn save_fit(&self, tenant: &str, fit: &FitRecord) -> Result<(), StoreError> {
        model_fit::Entity::insert(model_fit::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            model: Set(fit.model.to_owned()),
            params: Set(serde_json::to_string(&fit.params).unwrap_or_else(|_| "{}".to_owned())),
            log_likelihood: Set(fit.log_likelihood),
            iterations: Set(i32::try_from(fit.iterations).unwrap_or(i32::MAX)),
            converged: Set(fit.converged),
            customers: Set(i64::try_from(fit.customers).unwrap_or(i64::MAX)),
            error: Set(fit.error.clone()),
            observation_end: Set(fit.observation_end),
            fitted_at: Set(fit.fitted_at),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The parameters of the latest converged fit of `model`, if any.
    pub async fn latest_params(
        &self,
        tenant: &str,
        model: &str,
    ) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        let row = model_fit::Entity::find()
            .filter(model_fit::Column::TenantId.eq(tenant))
            .filter(model_fit::Column::Model.eq(model))
            .filter(model_fit::Column::Error.is_null())
            .filter(model_fit::Column::Converged.eq(true))
            .order_by_desc(model_fit::Column::Id)
            .one(&self.db)
            .await?;
        row.map(|r| json(&format!("model fit {}", r.id), &r.params))
            .transpose()
    }

    async fn tier_of(&self, tenant: &str, customer_id: &str) -> Result<Option<Tier>, StoreError> {
        Ok(customer::Entity::find()
            .select_only()
            .column(customer::Column::Tier)
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(customer_id))
            .into_tuple::<Option<String>>()
            .one(&self.db)
            .await?
            .flatten()
            .as_deref()
            .and_then(Tier::from_name))
    }

    /// The latest snapshot of a customer at or before `at` (milliseconds; `None`: the
    /// latest of all), with the customer's current tier.
    pub async fn snapshot_at(
        &self,
        tenant: &str,
        customer_id: &str,
        at: Option<i64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let mut query = snapshot::Entity::find()
            .filter(snapshot::Column::TenantId.eq(tenant))
            .filter(snapshot::Column::CustomerId.eq(customer_id));
        // The latest of all is the last stored; at a time, the last computed by then.
        if let Some(at) = at {
            query = query
                .filter(snapshot::Column::ComputedAt.lte(at))
                .order_by_desc(snapshot::Column::ComputedAt);
        }
        let Some(row) = query
            .order_by_desc(snapshot::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let tier = self.tier_of(tenant, customer_id).await?;
        snapshot_of(row, tier).map(Some)
    }

    /// The latest snapshot of a customer, with the customer's current tier.
    pub async fn latest(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.snapshot_at(tenant, customer_id, None).await
    }

    /// The latest snapshots of many customers, in two queries (snapshots, tiers); customers
    /// without one are left out.
    pub async fn latest_many(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Snapshot>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let latest = sea_orm::sea_query::Query::select()
                .column(snapshot::Column::CustomerId)
                .expr(sea_orm::sea_query::Func::max(Expr::col(
                    snapshot::Column::Id,
                )))
                .from(snapshot::Entity)
                .and_where(snapshot::Column::TenantId.eq(tenant))
                .and_where(snapshot::Column::CustomerId.is_in(chunk.iter().cloned()))
                .group_by_col(snapshot::Column::CustomerId)
                .to_owned();
            // Matched by (customer, id): `id` has no index of its own on PostgreSQL (see the
            // migration `snapshot_ids_unindexed`), which finds each latest row through the
            // customers' index; SQLite by its row id.
            let rows = snapshot::Entity::find()
                .filter(snapshot::Column::TenantId.eq(tenant))
                .filter(sea_orm::sea_query::ExprTrait::in_subquery(
                    Expr::tuple([
                        Expr::col(snapshot::Column::CustomerId),
                        Expr::col(snapshot::Column::Id),
                    ]),
                    latest,
                ))
                .all(&self.db)
                .await?;
            let tiers: HashMap<String, Option<String>> = customer::Entity::find()
                .select_only()
                .columns([customer::Column::CustomerId, customer::Column::Tier])
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.is_in(chunk.iter().cloned()))
                .into_tuple::<(String, Option<String>)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect();
            for row in rows {
                let tier = tiers
                    .get(&row.customer_id)
                    .and_then(|t| t.as_deref())
                    .and_then(Tier::from_name);
                let snapshot = snapshot_of(row, tier)?;
                out.insert(snapshot.customer_id.clone(), snapshot);
            }
        }
        Ok(out)
    }

    /// A customer's snapshots in `[from, to]` (milliseconds), the most recent `limit` of
    /// them, oldest first.
    pub async fn history(
        &self,
        tenant: &str,
        customer_id: &str,
        from: i64,
        to: i64,
        limit: u64,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let rows = snapshot::Entity::find()
            .filter(snapshot::Column::TenantId.eq(tenant))
            .filter(snapshot::Column::CustomerId.eq(customer_id))
            .filter(snapshot::Column::ComputedAt.gte(from))
            .filter(snapshot::Column::ComputedAt.lte(to))
            .order_by_desc(snapshot::Column::ComputedAt)
            .order_by_desc(snapshot::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| snapshot_of(r, None))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Customer ids by score, lowest first, optionally of one tier and band.
    pub async fn lowest(
        &self,
        tenant: &str,
        tier: Option<Tier>,
        band: Option<Band>,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        use sea_orm::sea_query::{ExprTrait, Order, Query};
        let (s, c) = (score::Entity, customer::Entity);
        let mut query = Query::select();
        query
            .column((s, score::Column::CustomerId))
            .from(s)
            .and_where(Expr::col((s, score::Column::TenantId)).eq(tenant))
            .and_where(Expr::col((s, score::Column::Score)).is_not_null());
        if let Some(tier) = tier {
            query
                .inner_join(
                    c,
                    Expr::col((c, customer::Column::TenantId))
                        .equals((s, score::Column::TenantId))
                        .and(
                            Expr::col((c, customer::Column::CustomerId))
                                .equals((s, score::Column::CustomerId)),
                        ),
                )
                .and_where(Expr::col((c, customer::Column::Tier)).eq(tier.name()));
        }
        if let Some(band) = band {
            query.and_where(Expr::col((s, score::Column::Band)).eq(band.name()));
        }
        // The index holds steps; rows of a step are sorted by their scores.
        query
            .order_by((s, score::Column::ScoreStep), Order::Asc)
            .order_by((s, score::Column::Score), Order::Asc)
            .order_by((s, score::Column::CustomerId), Order::Asc)
            .limit(limit);
        let statement = self.db.get_database_backend().build(&query);
        self.db
            .query_all_raw(statement)
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<String>("", "customer_id")?))
            .collect()
    }

    /// Walks all of a tenant's customers, `size` at a time.
    pub fn pages<'a>(&'a self, tenant: &'a str, size: u64) -> Pages<'a> {
        self.sample(tenant, size, 1)
    }

    /// Walks about one in `one_in` of a tenant's customers (all of them when 1), `size` at a
    /// time. The choice is fixed by each customer's id (PostgreSQL) or row (SQLite), not by
    /// chance, so walks of unchanged customers sample the same ones.
    pub fn sample<'a>(&'a self, tenant: &'a str, size: u64, one_in: u64) -> Pages<'a> {
        Pages {
            store: self,
            tenant,
            size,
            one_in: one_in.max(1),
            after: Some(String::new()),
        }
    }

    /// A page of customers in id order, after `after`.
    pub async fn features_page(
        &self,
        tenant: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<FeatureRow>, StoreError> {
        self.sampled_page(tenant, after, limit, 1).await
    }

    /// A page of about one in `one_in` customers in id order, after `after`.
    async fn sampled_page(
        &self,
        tenant: &str,
        after: &str,
        limit: u64,
        one_in: u64,
    ) -> Result<Vec<FeatureRow>, StoreError> {
        let mut query = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.gt(after));
        if one_in > 1 {
            // The filter stands before the limit, so a short page still means the last one.
            let one_in = i64::try_from(one_in).unwrap_or(i64::MAX);
            let (chosen, bound) = match self.db.get_database_backend() {
                // The ids whose hash falls in the lowest `1 / one_in` of its range. A bound,
                // not a remainder: PostgreSQL guesses that `expr = value` keeps one row in
                // 200, expects a page to need every row, and sorts the whole table in
                // parallel for each page; for `expr < value` it guesses a third, and reads
                // the key in order until the page is full.
                DbBackend::Postgres => (
                    "(hashtext(customer_id) & 2147483647) < $1",
                    (1i64 << 31) / one_in,
                ),
                _ => ("rowid % ? = 0", one_in),
            };
            query = query.filter(Expr::cust_with_values(chosen, [bound]));
        }
        // The customers' rows and their scores' as of one moment.
        let txn = rapport_storage::begin_read(&self.db).await?;
        let rows = query
            .order_by_asc(customer::Column::CustomerId)
            .limit(limit)
            .all(&txn)
            .await?;
        let Some(last) = rows.last().map(|m| m.customer_id.clone()) else {
            return Ok(Vec::new());
        };
        // A whole page's scores are a range of the key; a sample's, a list of its ids.
        let scores = if one_in == 1 {
            let range = sea_orm::sea_query::ExprTrait::and(
                score::Column::CustomerId.gt(after),
                score::Column::CustomerId.lte(last),
            );
            scores(&txn, tenant, range).await?
        } else {
            let ids = rows.iter().map(|m| m.customer_id.clone());
            scores(&txn, tenant, score::Column::CustomerId.is_in(ids)).await?
        };
        txn.commit().await?;
        with_scores(rows, &scores).collect()
    }

    /// Records new tiers (and stages, when given) of existing customers, each unless a newer
    /// grading run already set the customer's; answers the customers updated. Each update
    /// moves the customer's revision, so a score computed before it is not stored after it.
    pub async fn apply_tiers(
        &self,
        tenant: &str,
        tiers: &[TierChange],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        use sea_orm::sea_query::ExprTrait as _;
        let txn = rapport_storage::begin_write(&self.db).await?;
        let mut updated = Vec::with_capacity(tiers.len());
        for change in tiers {
            let mut update = customer::Entity::update_many()
                .col_expr(customer::Column::Tier, Expr::value(change.tier.name()))
                .col_expr(
                    customer::Column::Revision,
                    Expr::col(customer::Column::Revision).add(1),
                )
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.eq(change.customer_id.as_str()));
            if let Some(graded_at) = change.graded_at {
                update = update
                    .col_expr(customer::Column::GradedAt, Expr::value(graded_at))
                    .filter(
                        customer::Column::GradedAt
                            .is_null()
                            .or(customer::Column::GradedAt.lte(graded_at)),
                    );
            }
            if let Some(stage) = change.stage {
                // The stage's start moves only when the stage changes.
                update = update
                    .col_expr(
                        customer::Column::StageSince,
                        Expr::case(
                            customer::Column::Stage.eq(stage.name()),
                            Expr::col(customer::Column::StageSince),
                        )
                        .finally(now)
                        .into(),
                    )
                    .col_expr(customer::Column::Stage, Expr::value(stage.name()));
            }
            if update.exec(&txn).await?.rows_affected > 0 {
                updated.push(change.customer_id.clone());
            }
        }
        txn.commit().await?;
        Ok(updated)
    }

    /// The tenant's latest scorecard, if it set one.
    pub async fn scorecard(&self, tenant: &str) -> Result<Option<StoredScorecard>, StoreError> {
        Ok(scorecard::Entity::find()
            .filter(scorecard::Column::TenantId.eq(tenant))
            .order_by_desc(scorecard::Column::Revision)
            .one(&self.db)
            .await?
            .map(|r| StoredScorecard {
                revision: r.revision,
                toml: r.toml,
                created_at: r.created_at,
            }))
    }

    /// Stores a (validated) scorecard as the tenant's next revision.
    pub async fn save_scorecard(
        &self,
        tenant: &str,
        toml: &str,
        now: i64,
    ) -> Result<StoredScorecard, StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        let revision = scorecard::Entity::find()
            .filter(scorecard::Column::TenantId.eq(tenant))
            .order_by_desc(scorecard::Column::Revision)
            .one(&txn)
            .await?
            .map_or(1, |r| r.revision + 1);
        scorecard::Entity::insert(scorecard::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            revision: Set(revision),
            toml: Set(toml.to_owned()),
            created_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(StoredScorecard {
            revision,
            toml: toml.to_owned(),
            created_at: now,
        })
    }

    /// Sets or clears an override: the audit row and the customer's overrides in force, in
    /// one transaction. `false` when the customer is unknown.
    pub async fn change_override(
        &self,
        tenant: &str,
        change: &OverrideChange,
        now: i64,
    ) -> Result<bool, StoreError> {
        use sea_orm::sea_query::ExprTrait as _;
        let txn = rapport_storage::begin_write(&self.db).await?;
        // Locked until commit: two changes of one customer's overrides at once must not
        // each keep only its own.
        let Some(row) = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(change.customer_id.as_str()))
            .lock_exclusive()
            .one(&txn)
            .await?
        else {
            return Ok(false);
        };
        let id = change.customer_id.as_str();
        let mut active: Vec<ActiveOverride> = optional_json(id, row.overrides.as_deref())?;
        active.retain(|o| o.target != change.target && o.expires_at > now);
        let target = change.target.name();
        // Whatever was in force for this target ends now, by this author.
        score_override::Entity::update_many()
            .col_expr(score_override::Column::ClearedAt, Expr::value(now))
            .col_expr(
                score_override::Column::ClearedBy,
                Expr::value(change.author.as_str()),
            )
            .col_expr(
                score_override::Column::ClearReason,
                Expr::value(change.reason.as_str()),
            )
            .col_expr(score_override::Column::ExpiryApplied, Expr::value(true))
            .filter(score_override::Column::TenantId.eq(tenant))
            .filter(score_override::Column::CustomerId.eq(id))
            .filter(score_override::Column::Target.eq(target))
            .filter(score_override::Column::ClearedAt.is_null())
            .filter(score_override::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if let Some((value, expires_at)) = change.set {
            score_override::Entity::insert(score_override::ActiveModel {
                id: NotSet,
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(id.to_owned()),
                target: Set(target.to_owned()),
                value: Set(value),
                author: Set(change.author.clone()),
                reason: Set(change.reason.clone()),
                set_at: Set(now),
                expires_at: Set(expires_at),
                cleared_at: Set(None),
                cleared_by: Set(None),
                clear_reason: Set(None),
                expiry_applied: Set(false),
            })
            .exec_without_returning(&txn)
            .await?;
            active.push(ActiveOverride {
                target: change.target,
                value,
                author: change.author.clone(),
                reason: change.reason.clone(),
                set_at: now,
                expires_at,
            });
        }
        customer::Entity::update_many()
            .col_expr(
                customer::Column::Overrides,
                Expr::value(to_json(id, &active)?),
            )
            .col_expr(
                customer::Column::Revision,
                Expr::col(customer::Column::Revision).add(1),
            )
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Overrides that expired by `now` and whose customers were not re-scored since, as
    /// (row id, tenant, customer).
    pub async fn expired_overrides(
        &self,
        now: i64,
        limit: u64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        Ok(score_override::Entity::find()
            .select_only()
            .columns([
                score_override::Column::Id,
                score_override::Column::TenantId,
                score_override::Column::CustomerId,
            ])
            .filter(score_override::Column::ExpiryApplied.eq(false))
            .filter(score_override::Column::ExpiresAt.lte(now))
            .order_by_asc(score_override::Column::ExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Marks expired overrides as applied to their customers' scores.
    pub async fn expiries_applied(&self, ids: &[i64]) -> Result<(), StoreError> {
        score_override::Entity::update_many()
            .col_expr(score_override::Column::ExpiryApplied, Expr::value(true))
            .filter(score_override::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The tenant's percentile tables, and how many customers they were computed over.
    pub async fn population(&self, tenant: &str) -> Result<(Population, u64), StoreError> {
        let rows = population::Entity::find()
            .filter(population::Column::TenantId.eq(tenant))
            .all(&self.db)
            .await?;
        let walked = rows
            .iter()
            .map(|r| r.customers.max(0) as u64)
            .max()
            .unwrap_or(0);
        let tables = rows
            .into_iter()
            .map(|r| {
                let table: PercentileTable =
                    json(&format!("population {}", r.measure), &r.quantiles)?;
                Ok((r.measure, table))
            })
            .collect::<Result<Population, StoreError>>()?;
        Ok((tables, walked))
    }

    /// Replaces the tenant's percentile tables, each with the customers walked to make it.
    pub async fn save_population(
        &self,
        tenant: &str,
        tables: &[(String, PercentileTable, u64)],
        now: i64,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        population::Entity::delete_many()
            .filter(population::Column::TenantId.eq(tenant))
            .exec(&txn)
            .await?;
        for (measure, table, customers) in tables {
            population::Entity::insert(population::ActiveModel {
                tenant_id: Set(tenant.to_owned()),
                measure: Set(measure.clone()),
                quantiles: Set(to_json(measure, table)?),
                customers: Set(i64::try_from(*customers).unwrap_or(i64::MAX)),
                computed_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

/// Customers' states from their rows and their score rows.
fn with_scores(
    rows: Vec<customer::Model>,
    scores: &HashMap<String, score::Model>,
) -> impl Iterator<Item = Result<FeatureRow, StoreError>> + '_ {
    rows.into_iter().map(|m| {
        Ok(FeatureRow {
            state: state_of(&m, scores.get(&m.customer_id))?,
            customer_id: m.customer_id,
        })
    })
}

/// The tenant's score rows that match `which`, by customer.
async fn scores<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    which: impl sea_orm::sea_query::IntoCondition,
) -> Result<HashMap<String, score::Model>, StoreError> {
    Ok(score::Entity::find()
        .filter(score::Column::TenantId.eq(tenant))
        .filter(which)
        .all(conn)
        .await?
        .into_iter()
        .map(|s| (s.customer_id.clone(), s))
        .collect())
}

/// Whether a state has anything for a score row (it was ever scored).
fn has_score_row(s: &CustomerState) -> bool {
    s.score.is_some() || s.fingerprint.is_some() || s.signals.is_some()
}

/// The customer ids a statement ending in `RETURNING customer_id` wrote.
async fn returned_ids<C: ConnectionTrait>(
    conn: &C,
    statement: Option<Statement>,
) -> Result<HashSet<String>, DbErr> {
    let Some(statement) = statement else {
        return Ok(HashSet::new());
    };
    conn.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "customer_id"))
        .collect()
}

/// One multi-row upsert of the customers' rows after a fold, each at the revision after
/// the one it was read at, written only where the stored row is still at that one (a new
/// customer's row only if none was stored meanwhile); answers the customers written.
fn upsert_customers(
    backend: DbBackend,
    tenant: &str,
    rescored: &[Rescored],
) -> Result<Option<Statement>, StoreError> {
    let mut list = ValuesList::new(backend, rescored.len());
    let now = rapport_storage::now_millis();
    for r in rescored {
        let s = &r.state;
        let id = r.customer_id.as_str();
        let overrides = to_json(id, &s.overrides)?;
        list.push([
            tenant.into(),
            id.into(),
            to_json(id, &s.metrics)?.into(),
            s.last_event_seq.into(),
            s.tier.map(|t| t.name().to_owned()).into(),
            now.into(),
            s.stage.map(|st| st.name().to_owned()).into(),
            s.stage_since.into(),
            Some(overrides).into(),
            (s.revision + 1).into(),
        ]);
    }
    Ok(list.statement(
        "INSERT INTO scoring_customers (tenant_id, customer_id, metrics, last_event_seq, tier, \
         updated_at, stage, stage_since, overrides, revision)",
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET metrics = excluded.metrics, \
         last_event_seq = excluded.last_event_seq, updated_at = excluded.updated_at, \
         revision = excluded.revision \
         WHERE scoring_customers.revision = excluded.revision - 1 \
         RETURNING customer_id",
    ))
}

/// One multi-row upsert of the score rows among `rescored` (those ever scored); `None` when
/// none is. A score row records the customer's revision it was computed from and never goes
/// back to an older one; a re-score's (`Columns::Score`) is written only while the customer
/// is still at that revision. Answers the customers written.
fn upsert_scores(
    backend: DbBackend,
    tenant: &str,
    rescored: &[&Rescored],
    columns: Columns,
) -> Option<Statement> {
    let mut list = ValuesList::new(backend, rescored.len());
    let now = rapport_storage::now_millis();
    for r in rescored {
        let s = &r.state;
        if !has_score_row(s) {
            continue;
        }
        let revision = match columns {
            Columns::All => s.revision + 1,
            Columns::Score => s.revision,
        };
        list.push([
            tenant.into(),
            r.customer_id.as_str().into(),
            s.score.into(),
            s.score.map(score_step).into(),
            s.band.map(|b| b.name().to_owned()).into(),
            s.fingerprint.into(),
            s.signals.into(),
            Some(recent_bytes(&s.recent)).into(),
            now.into(),
            revision.into(),
        ]);
    }
    let current = match columns {
        Columns::All => "",
        Columns::Score => {
            " AND excluded.revision = (SELECT c.revision FROM scoring_customers c \
             WHERE c.tenant_id = excluded.tenant_id AND c.customer_id = excluded.customer_id)"
        }
    };
    list.statement(
        "INSERT INTO scoring_scores (tenant_id, customer_id, score, score_step, band, \
         fingerprint, signals, recent, updated_at, revision)",
        &format!(
            "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET score = excluded.score, \
             score_step = excluded.score_step, band = excluded.band, \
             fingerprint = excluded.fingerprint, signals = excluded.signals, \
             recent = excluded.recent, updated_at = excluded.updated_at, \
             revision = excluded.revision \
             WHERE scoring_scores.revision <= excluded.revision{current} \
             RETURNING customer_id"
        ),
    )
}

/// The sigil of a numbered placeholder (`$3`, `?3`): numbered in both dialects, so the
/// values keep one order.
fn sigil(backend: DbBackend) -> char {
    match backend {
        DbBackend::Postgres => '$',
        _ => '?',
    }
}

/// The tuples of a multi-row `VALUES` list as statement text, and their values. The text is
/// written into one string, not a string per placeholder: a page has tens of thousands.
struct ValuesList {
    backend: DbBackend,
    rows: usize,
    text: String,
    values: Vec<sea_orm::Value>,
}

impl ValuesList {
    /// An empty list with room for `rows` tuples.
    fn new(backend: DbBackend, rows: usize) -> ValuesList {
        ValuesList {
            backend,
            rows,
            text: String::with_capacity(rows * 64),
            values: Vec::new(),
        }
    }

    fn push<const N: usize>(&mut self, row: [sea_orm::Value; N]) {
        use std::fmt::Write;
        let sigil = sigil(self.backend);
        if self.text.is_empty() {
            self.values.reserve(self.rows * N);
        } else {
            self.text.push_str(", ");
        }
        self.text.push('(');
        for i in 0..N {
            if i > 0 {
                self.text.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = write!(self.text, "{sigil}{}", self.values.len() + 1 + i);
        }
        self.text.push(')');
        self.values.extend(row);
    }

    /// `head VALUES (…), (…) tail` with the list's values; `None` when it has no tuple.
    fn statement(self, head: &str, tail: &str) -> Option<Statement> {
        if self.text.is_empty() {
            return None;
        }
        let sql = format!("{head} VALUES {} {tail}", self.text);
        Some(Statement::from_sql_and_values(
            self.backend,
            sql,
            self.values,
        ))
    }
}

/// One multi-row INSERT of the snapshots among `rescored`; `None` when none has one.
fn insert_snapshots(backend: DbBackend, tenant: &str, rescored: &[&Rescored]) -> Option<Statement> {
    let mut list = ValuesList::new(backend, rescored.len());
    for r in rescored {
        let Some(s) = &r.snapshot else { continue };
        list.push([
            tenant.into(),
            r.customer_id.as_str().into(),
            s.score.into(),
            s.band.name().into(),
            s.tier.map(|t| t.name().to_owned()).into(),
            s.scorecard_version.as_str().into(),
            // The legacy JSON columns: the body holds all of it.
            "".into(),
            s.computed_at.into(),
            s.outlook.map(|o| o.p_alive).into(),
            s.outlook.map(|o| o.expected_purchases_90d).into(),
            s.outlook.map(|o| o.clv).into(),
            Option::<String>::None.into(),
            s.body.clone().into(),
        ]);
    }
    list.statement(
        "INSERT INTO scoring_snapshots (tenant_id, customer_id, score, band, tier, \
         scorecard_version, measures, computed_at, p_alive, expected_purchases_90d, clv_12m, \
         detail, body)",
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};
    use proptest::prelude::*;

    fn day_score() -> impl Strategy<Value = DayScore> {
        // Every day chrono represents, and any score (NaN compares unequal, so not that).
        (
            NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce(),
            any::<f64>().prop_filter("comparable", |s| !s.is_nan()),
        )
            .prop_map(|(day, score)| DayScore {
                day: NaiveDate::from_num_days_from_ce_opt(day).unwrap_or_default(),
                score,
            })
    }

    proptest! {
        #[test]
        fn recent_days_read_back_as_written(days in prop::collection::vec(day_score(), 0..40)) {
            prop_assert_eq!(recent_of("c", &recent_bytes(&days)).unwrap(), days);
        }

        /// Stored bytes are read or refused with the reason, never a panic.
        #[test]
        fn any_stored_bytes_read_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Err(e) = recent_of("c", &bytes) {
                prop_assert!(e.to_string().contains("customer c"), "{}", e);
            }
        }
    }

    #[test]
    fn days_stored_as_json_before_read_the_same() {
        let json = r#"[{"day":"2026-06-01","score":60.0},{"day":"2026-06-02","score":63.5}]"#;
        let days = recent_of("c", json.as_bytes()).unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 6, d).unwrap_or_default();
        assert_eq!(
            days,
            [
                DayScore {
                    day: day(1),
                    score: 60.0
                },
                DayScore {
                    day: day(2),
                    score: 63.5
                }
            ]
        );
        assert_eq!(recent_bytes(&days).len(), 1 + 2 * RECENT_DAY_BYTES);
        assert_eq!(recent_of("c", &recent_bytes(&days)).unwrap(), days);
    }

    #[test]
    fn a_truncated_or_unknown_form_is_an_error_naming_the_customer() {
        let days = [DayScore {
            day: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default(),
            score: 1.0,
        }];
        let bytes = recent_bytes(&days);
        let short = recent_of("c9", &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(short.to_string().contains("c9"), "{short}");
        assert!(short.to_string().contains("11 bytes"), "{short}");
        let unknown = recent_of("c9", &[7, 0]).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown format 7"),
            "{unknown}"
        );
        assert_eq!(recent_of("c9", &[]).unwrap(), []);
    }
}
