//! Scoring's storage: customer metrics with their event cursor, score snapshots, and the
//! outbox to alerting, written together.

use crate::entity::{customer, snapshot};
use crate::migration::OUTBOX;
use rapport_domain::metrics::CustomerMetrics;
use rapport_domain::scorecard::{Band, HealthScore};
use rapport_domain::tier::Tier;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
}

/// A customer's new state and score, ready to store.
#[derive(Debug, Clone)]
pub struct Rescored {
    pub customer_id: String,
    pub state: CustomerState,
    pub score: HealthScore,
    pub scorecard_version: String,
    /// The notification to alerting, already encoded.
    pub outbox_payload: Vec<u8>,
}

/// The ranking features of one customer.
#[derive(Debug, Clone)]
pub struct FeatureRow {
    pub customer_id: String,
    pub metrics: CustomerMetrics,
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
        now: i64,
        traceparent: Option<String>,
    ) -> Result<(), StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        for r in rescored {
            let metrics =
                serde_json::to_string(&r.state.metrics).map_err(|e| StoreError::Corrupt {
                    customer_id: r.customer_id.clone(),
                    reason: e.to_string(),
                })?;
            customer::Entity::insert(customer::ActiveModel {
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(r.customer_id.clone()),
                metrics: Set(metrics),
                last_event_seq: Set(r.state.last_event_seq),
                tier: Set(r.state.tier.map(|t| t.name().to_owned())),
                score: Set(Some(r.score.score)),
                updated_at: Set(now),
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
            let measures = measures(&r.score);
            snapshot::Entity::insert(snapshot::ActiveModel {
                id: NotSet,
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(r.customer_id.clone()),
                score: Set(r.score.score),
                band: Set(band_name(r.score.band).to_owned()),
                tier: Set(r.state.tier.map(|t| t.name().to_owned())),
                scorecard_version: Set(r.scorecard_version.clone()),
                measures: Set(serde_json::to_string(&measures).unwrap_or_else(|_| "[]".to_owned())),
                computed_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
            OUTBOX
                .push(
                    &txn,
                    tenant,
                    "score_changed",
                    r.outbox_payload.clone(),
                    traceparent.clone(),
                )
                .await?;
        }
        txn.commit().await?;
        Ok(())
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
        }))
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
                Ok(FeatureRow {
                    metrics: metrics_of(&m.customer_id, &m.metrics)?,
                    customer_id: m.customer_id,
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
