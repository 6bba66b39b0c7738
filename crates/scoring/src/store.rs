//! Scoring's storage: customer metrics with their event cursor, score snapshots, and the
//! outbox to alerting, written together.

use crate::entity::{customer, model_fit, snapshot};
use crate::migration::OUTBOX;
use crate::params::NamedParams;
use rapport_domain::metrics::CustomerMetrics;
use rapport_domain::models::outlook::Outlook;
use rapport_domain::models::{Fit, ModelError};
use rapport_domain::scorecard::{Band, HealthScore};
use rapport_domain::tier::Tier;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Errors of scoring's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("stored data of customer {customer_id} is unreadable: {reason}")]
    Corrupt { customer_id: String, reason: String },
}

/// What scoring knows of a customer before new events are folded in.
#[derive(Debug, Clone, Default)]
pub struct CustomerState {
    pub metrics: CustomerMetrics,
    pub last_event_seq: i64,
    pub tier: Option<Tier>,
}

/// One measure of a stored snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMeasure {
    pub measure: String,
    pub value: Option<f64>,
    pub score: f64,
    pub weight: f64,
    pub contribution: f64,
}

/// The stored form of a score's measures.
pub fn measures(score: &HealthScore) -> Vec<StoredMeasure> {
    score
        .measures
        .iter()
        .map(|m| StoredMeasure {
            measure: m.indicator.name().to_owned(),
            value: m.value,
            score: m.score,
            weight: m.weight,
            contribution: m.contribution,
        })
        .collect()
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
}

/// A customer's new state and snapshot, ready to store.
#[derive(Debug, Clone)]
pub struct Rescored {
    pub state: CustomerState,
    pub snapshot: Snapshot,
    /// The notification to alerting, already encoded.
    pub outbox_payload: Vec<u8>,
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
            .features_page(self.tenant, &after, self.size)
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

fn band_name(b: Band) -> &'static str {
    match b {
        Band::Red => "red",
        Band::Yellow => "yellow",
        Band::Green => "green",
    }
}

fn band_of(name: &str) -> Band {
    match name {
        "green" => Band::Green,
        "yellow" => Band::Yellow,
        _ => Band::Red,
    }
}

fn metrics_of(customer_id: &str, json: &str) -> Result<CustomerMetrics, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: e.to_string(),
    })
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

    /// The stored state of some customers (absent ones are new).
    pub async fn states(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, CustomerState>, StoreError> {
        let rows = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| {
                let state = CustomerState {
                    metrics: metrics_of(&m.customer_id, &m.metrics)?,
                    last_event_seq: m.last_event_seq,
                    tier: m.tier.as_deref().and_then(Tier::from_name),
                };
                Ok((m.customer_id, state))
            })
            .collect()
    }

    /// Stores new states, their snapshots and the outbox rows to alerting, in one transaction.
    pub async fn save(
        &self,
        tenant: &str,
        rescored: &[Rescored],
        traceparent: Option<String>,
    ) -> Result<(), StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        for Rescored {
            state,
            snapshot: snap,
            ..
        } in rescored
        {
            let corrupt = |e: serde_json::Error| StoreError::Corrupt {
                customer_id: snap.customer_id.clone(),
                reason: e.to_string(),
            };
            customer::Entity::insert(customer::ActiveModel {
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(snap.customer_id.clone()),
                metrics: Set(serde_json::to_string(&state.metrics).map_err(corrupt)?),
                last_event_seq: Set(state.last_event_seq),
                tier: Set(state.tier.map(|t| t.name().to_owned())),
                score: Set(Some(snap.score)),
                updated_at: Set(snap.computed_at),
            })
            .on_conflict(
                OnConflict::columns([customer::Column::TenantId, customer::Column::CustomerId])
                    .update_columns([
                        customer::Column::Metrics,
                        customer::Column::LastEventSeq,
                        customer::Column::Score,
                        customer::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
            snapshot::Entity::insert(snapshot::ActiveModel {
                id: NotSet,
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(snap.customer_id.clone()),
                score: Set(snap.score),
                band: Set(band_name(snap.band).to_owned()),
                tier: Set(snap.tier.map(|t| t.name().to_owned())),
                scorecard_version: Set(snap.scorecard_version.clone()),
                measures: Set(serde_json::to_string(&snap.measures).map_err(corrupt)?),
                computed_at: Set(snap.computed_at),
                p_alive: Set(snap.outlook.map(|o| o.p_alive)),
                expected_purchases_90d: Set(snap.outlook.map(|o| o.expected_purchases_90d)),
                clv_12m: Set(snap.outlook.map(|o| o.clv)),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        let payloads = rescored.iter().map(|r| r.outbox_payload.clone()).collect();
        OUTBOX
            .push_many(&txn, tenant, "score_changed", payloads, traceparent)
            .await?;
        txn.commit().await?;
        Ok(())
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
        row.map(|r| {
            serde_json::from_str(&r.params).map_err(|e| StoreError::Corrupt {
                customer_id: String::new(),
                reason: format!("model fit {}: {e}", r.id),
            })
        })
        .transpose()
    }

    /// The latest snapshot of a customer, with the customer's current tier.
    pub async fn latest(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        let Some(row) = snapshot::Entity::find()
            .filter(snapshot::Column::TenantId.eq(tenant))
            .filter(snapshot::Column::CustomerId.eq(customer_id))
            .order_by_desc(snapshot::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let tier = customer::Entity::find()
            .select_only()
            .column(customer::Column::Tier)
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(customer_id))
            .into_tuple::<Option<String>>()
            .one(&self.db)
            .await?
            .flatten();
        let measures = serde_json::from_str(&row.measures).map_err(|e| StoreError::Corrupt {
            customer_id: customer_id.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Some(Snapshot {
            customer_id: row.customer_id,
            score: row.score,
            band: band_of(&row.band),
            tier: tier.as_deref().and_then(Tier::from_name),
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
        }))
    }

    /// Walks all of a tenant's customers, `size` at a time.
    pub fn pages<'a>(&'a self, tenant: &'a str, size: u64) -> Pages<'a> {
        Pages {
            store: self,
            tenant,
            size,
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
        let rows = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.gt(after))
            .order_by_asc(customer::Column::CustomerId)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| {
                let state = CustomerState {
                    metrics: metrics_of(&m.customer_id, &m.metrics)?,
                    last_event_seq: m.last_event_seq,
                    tier: m.tier.as_deref().and_then(Tier::from_name),
                };
                Ok(FeatureRow {
                    customer_id: m.customer_id,
                    state,
                })
            })
            .collect()
    }

    /// Records new tiers of existing customers.
    pub async fn apply_tiers(
        &self,
        tenant: &str,
        tiers: &[(String, Tier)],
    ) -> Result<(), StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        for (customer_id, tier) in tiers {
            customer::Entity::update_many()
                .col_expr(
                    customer::Column::Tier,
                    sea_orm::sea_query::Expr::value(tier.name()),
                )
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.eq(customer_id.as_str()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
