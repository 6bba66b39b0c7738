//! Scoring's storage: customer metrics with their event cursor, score snapshots, and the
//! outbox to alerting, written together; scorecard versions, overrides, percentile tables
//! and model fits. One module per kind of row: `customers` (states, saves, tiers,
//! overrides), `history` (snapshots), `walks` (pages of a tenant), `tenant` (fits,
//! scorecards, percentiles), with the rows' forms in `rows` and a save's statements in
//! `statements`.

mod customers;
mod history;
mod rows;
mod statements;
mod summary;
mod tenant;
mod walks;

pub use rows::*;
use statements::*;
pub use summary::{BandCounts, DayCounts, Fall};
pub use walks::*;

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
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
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

/// Scoring's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// Up to how many customers a tier or stage may hold to be listed from its holders
    /// rather than by walking the scores ([`Store::lowest`]).
    few: u64,
}

/// Holders of a tier or stage few enough to list from them: a listing reads their scores
/// (about a millisecond per thousand) instead of walking every score until enough pass.
const FEW_HOLDERS: u64 = 20_000;

impl Store {
    /// The store on an already migrated database.
    pub fn new(db: DatabaseConnection) -> Self {
        Store {
            db,
            few: FEW_HOLDERS,
        }
    }

    /// The same store listing a tier or stage from its holders only while they are at most
    /// `few` (0: always by walking the scores); for tests of both ways.
    pub fn listing_from_holders_up_to(mut self, few: u64) -> Self {
        self.few = few;
        self
    }

    /// Holds the lock `name` across scoring's replicas until the answer is released.
    pub async fn exclusive(&self, name: &str) -> Result<Exclusive, StoreError> {
        Ok(Exclusive::take(&self.db, name).await?)
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
}
