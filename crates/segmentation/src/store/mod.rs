//! Segmentation's storage: customers' grades, the tier and stage changes runs made, custom
//! segments and their members; a run itself is stored by [`RunWriter`] (`writer.rs`).

use crate::entity::{custom_segment, customer, kpi_report, run, segment_member, tier_change};
use chrono::DateTime;
use rapport_domain::kpi::{TierChange, TierHistory};
use rapport_domain::lifecycle::{Stage, StageFacts, StageRules};
use rapport_domain::rfm::{RfmScore, RfmSegment};
use rapport_domain::tier::Tier;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::HashMap;

/// Rows per multi-row statement.
const CHUNK: usize = 500;

/// Errors of segmentation's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The task writing a run stopped without an error of its own (it panicked).
    #[error("the run's writer stopped: {0}")]
    Writer(String),
}

/// One customer's grade in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    pub customer_id: String,
    /// The tier its value grades it into (before the hysteresis rule).
    pub tier: Tier,
    pub rfm: RfmScore,
    /// What the lifecycle rules read of it.
    pub facts: StageFacts,
    /// Its predicted 12-month CLV, once the tenant's models are fitted.
    pub clv: Option<f64>,
}

/// A customer's tier and stage changes announced to scoring.
pub type Announced = (String, Tier, Option<Stage>);

/// How a run grades, fixed when it starts.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub started_at: i64,
    /// When its grades are recorded as given (milliseconds): the time of its changes.
    pub graded_at: i64,
    /// The time graded as (milliseconds): stage durations are counted to it.
    pub as_of: i64,
    /// Why tiers changed, recorded with each change.
    pub reason: String,
    pub stage_rules: StageRules,
    /// Trace context the announcements continue.
    pub traceparent: Option<String>,
}

/// What a run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub customers: u64,
    pub tier_changes: u64,
    /// Customers per tier after the run (pending downgrades not yet applied).
    pub tiers: HashMap<Tier, u64>,
    pub stage_changes: u64,
    pub stages: HashMap<Stage, u64>,
    pub rfm_segments: HashMap<RfmSegment, u64>,
    /// Customers per recency and frequency score.
    pub rfm_grid: HashMap<(u8, u8), u64>,
}

/// A customer's tier and stage after a run.
pub type Standing = (Option<Tier>, Option<Stage>);

mod writer;
pub use writer::RunWriter;

/// A customer's stored grade.
pub type StoredGrade = customer::Model;

/// The columns customers can be counted by.
pub use crate::entity::customer::Column as GradeColumn;

/// Segmentation's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// The segmentation's schedules, recorded with its tables.
    pub fn schedules(&self) -> rapport_storage::coordination::Schedules {
        rapport_storage::coordination::Schedules::new("segmentation_schedules", self.db.clone())
    }

    /// Holds the lock `name` across segmentation's replicas until the answer is released.
    pub async fn exclusive(
        &self,
        name: &str,
    ) -> Result<rapport_storage::coordination::Exclusive, StoreError> {
        Ok(rapport_storage::coordination::Exclusive::take(&self.db, name).await?)
    }

    /// The time a run of `tenant` beginning to grade at `now` (ms) stands for: later than
    /// every run before it, whatever the clocks of the replicas that ran them (runs take
    /// turns, and scoring keeps a tier from the later run).
    pub async fn next_graded_at(&self, tenant: &str, now: i64) -> Result<i64, StoreError> {
        let last: Option<i64> = run::Entity::find()
            .select_only()
            .column(run::Column::FinishedAt)
            .filter(run::Column::TenantId.eq(tenant))
            .order_by_desc(run::Column::Id)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(last.map_or(now, |last| now.max(last + 1)))
    }

    /// The store on an already migrated database.
    pub fn new(db: DatabaseConnection) -> Self {
        Store { db }
    }
}

impl Store {
    /// How many customers have each value of `column` (absent values left out).
    pub async fn count_by(
        &self,
        tenant: &str,
        column: customer::Column,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(Option<String>, i64)> = customer::Entity::find()
            .select_only()
            .column(column)
            .column_as(customer::Column::CustomerId.count(), "n")
            .filter(customer::Column::TenantId.eq(tenant))
            .group_by(column)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(value, n)| value.map(|v| (v, n.max(0) as u64)))
            .collect())
    }

    /// How the tenant's latest run left its customers spread, as the run described it (a run
    /// is stored only once finished); `None` before a run that recorded it.
    pub async fn latest_distribution(&self, tenant: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(run::Entity::find()
            .select_only()
            .column(run::Column::Distribution)
            .filter(run::Column::TenantId.eq(tenant))
            .order_by_desc(run::Column::Id)
            .into_tuple::<Option<Vec<u8>>>()
            .one(&self.db)
            .await?
            .flatten())
    }

    /// The id of the tenant's latest run, if any.
    pub async fn latest_run(&self, tenant: &str) -> Result<Option<i64>, StoreError> {
        Ok(run::Entity::find()
            .select_only()
            .column(run::Column::Id)
            .filter(run::Column::TenantId.eq(tenant))
            .order_by_desc(run::Column::Id)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?)
    }

    /// The kept KPI report of a shape, if any.
    pub async fn kpi_report(
        &self,
        tenant: &str,
        shape: &str,
    ) -> Result<Option<kpi_report::Model>, StoreError> {
        Ok(
            kpi_report::Entity::find_by_id((tenant.to_owned(), shape.to_owned()))
                .one(&self.db)
                .await?,
        )
    }

    /// Keeps a KPI report of a shape, replacing the one kept (unless that follows a later run).
    pub async fn keep_kpi_report(&self, row: kpi_report::Model) -> Result<(), StoreError> {
        use sea_orm::sea_query::ExprTrait;
        kpi_report::Entity::insert(kpi_report::ActiveModel::from(row))
            .on_conflict(
                OnConflict::columns([kpi_report::Column::TenantId, kpi_report::Column::Shape])
                    .update_columns([
                        kpi_report::Column::RunId,
                        kpi_report::Column::ComputedAt,
                        kpi_report::Column::Report,
                    ])
                    .action_and_where(
                        Expr::col((kpi_report::Entity, kpi_report::Column::RunId))
                            .lte(Expr::cust("excluded.run_id")),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// How many customers have each recency and frequency score (the RFM grid).
    pub async fn rfm_grid(&self, tenant: &str) -> Result<Vec<(u32, u32, u64)>, StoreError> {
        let rows: Vec<(i32, i32, i64)> = customer::Entity::find()
            .select_only()
            .columns([
                customer::Column::RecencyScore,
                customer::Column::FrequencyScore,
            ])
            .column_as(customer::Column::CustomerId.count(), "n")
            .filter(customer::Column::TenantId.eq(tenant))
            .group_by(customer::Column::RecencyScore)
            .group_by(customer::Column::FrequencyScore)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(r, f, n)| {
                Some((
                    u32::try_from(r).ok()?,
                    u32::try_from(f).ok()?,
                    n.max(0) as u64,
                ))
            })
            .collect())
    }

    /// The stored grades of some customers.
    pub async fn grades(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<StoredGrade>, StoreError> {
        Ok(customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?)
    }

    /// Stores a custom segment's definition, replacing one of the same name.
    pub async fn define_segment(
        &self,
        tenant: &str,
        name: &str,
        expression: &str,
    ) -> Result<(), StoreError> {
        custom_segment::Entity::insert(custom_segment::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            name: Set(name.to_owned()),
            expression: Set(expression.to_owned()),
            created_at: Set(rapport_storage::now_millis()),
        })
        .on_conflict(
            OnConflict::columns([
                custom_segment::Column::TenantId,
                custom_segment::Column::Name,
            ])
            .update_columns([
                custom_segment::Column::Expression,
                custom_segment::Column::CreatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The tenant's custom segment definitions, by name.
    pub async fn definitions(
        &self,
        tenant: &str,
    ) -> Result<Vec<custom_segment::Model>, StoreError> {
        Ok(custom_segment::Entity::find()
            .filter(custom_segment::Column::TenantId.eq(tenant))
            .order_by_asc(custom_segment::Column::Name)
            .all(&self.db)
            .await?)
    }

    /// The tenant's custom segments, by name, with their member counts.
    pub async fn custom_segments(
        &self,
        tenant: &str,
    ) -> Result<Vec<(custom_segment::Model, u64)>, StoreError> {
        let defined = self.definitions(tenant).await?;
        let counts: HashMap<String, i64> = segment_member::Entity::find()
            .select_only()
            .column(segment_member::Column::Segment)
            .column_as(segment_member::Column::CustomerId.count(), "n")
            .filter(segment_member::Column::TenantId.eq(tenant))
            .group_by(segment_member::Column::Segment)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(defined
            .into_iter()
            .map(|d| {
                let n = counts.get(&d.name).copied().unwrap_or(0).max(0) as u64;
                (d, n)
            })
            .collect())
    }

    /// Up to `limit` members of a segment after `after`, and how many it has; `None` when the
    /// tenant has no such segment.
    pub async fn members(
        &self,
        tenant: &str,
        segment: &str,
        after: &str,
        limit: u64,
    ) -> Result<Option<(u64, Vec<String>)>, StoreError> {
        let defined = custom_segment::Entity::find_by_id((tenant.to_owned(), segment.to_owned()))
            .one(&self.db)
            .await?;
        if defined.is_none() {
            return Ok(None);
        }
        let of_segment = || {
            segment_member::Entity::find()
                .filter(segment_member::Column::TenantId.eq(tenant))
                .filter(segment_member::Column::Segment.eq(segment))
        };
        let total = of_segment().count(&self.db).await?;
        let page = of_segment()
            .filter(segment_member::Column::CustomerId.gt(after))
            .order_by_asc(segment_member::Column::CustomerId)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.customer_id)
            .collect();
        Ok(Some((total, page)))
    }

    /// Up to `limit` customers graded into an RFM segment (its stored name) after `after`, and
    /// how many it has, as of the latest run.
    pub async fn rfm_members(
        &self,
        tenant: &str,
        segment: &str,
        after: &str,
        limit: u64,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let of_segment = || {
            customer::Entity::find()
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::RfmSegment.eq(segment))
        };
        let total = of_segment().count(&self.db).await?;
        let page = of_segment()
            .select_only()
            .column(customer::Column::CustomerId)
            .filter(customer::Column::CustomerId.gt(after))
            .order_by_asc(customer::Column::CustomerId)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await?;
        Ok((total, page))
    }

    /// Every customer's tier history (the KPIs' tiers).
    pub async fn tier_histories(
        &self,
        tenant: &str,
    ) -> Result<HashMap<String, TierHistory>, StoreError> {
        let rows: Vec<(String, String, i64)> = tier_change::Entity::find()
            .select_only()
            .columns([
                tier_change::Column::CustomerId,
                tier_change::Column::NewTier,
                tier_change::Column::At,
            ])
            .filter(tier_change::Column::TenantId.eq(tenant))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut changes: HashMap<String, Vec<TierChange>> = HashMap::new();
        for (customer, tier, at) in rows {
            let (Some(tier), Some(at)) =
                (Tier::from_name(&tier), DateTime::from_timestamp_millis(at))
            else {
                continue;
            };
            changes
                .entry(customer)
                .or_default()
                .push(TierChange { at, tier });
        }
        Ok(changes
            .into_iter()
            .map(|(id, c)| (id, TierHistory::new(c)))
            .collect())
    }

    /// Each customer's predicted CLV as of the latest run, where it has one.
    pub async fn clv(&self, tenant: &str) -> Result<HashMap<String, f64>, StoreError> {
        let rows: Vec<(String, f64)> = customer::Entity::find()
            .select_only()
            .columns([customer::Column::CustomerId, customer::Column::Clv])
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::Clv.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// The tenants segmentation has run for (the scheduled runs' list).
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(run::Entity::find()
            .select_only()
            .column(run::Column::TenantId)
            .distinct()
            .into_tuple::<String>()
            .all(&self.db)
            .await?)
    }
}
