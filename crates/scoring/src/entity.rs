//! Scoring's tables: customers (metrics, cursor, tier and stage), their current scores,
//! score snapshots, model fits, scorecards, overrides and the tenants' percentile tables.

/// One row per customer: incrementally maintained metrics, tier, stage and overrides.
pub mod customer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_id: String,
        /// `CustomerMetrics` as JSON.
        pub metrics: String,
        /// Ingestion sequence number of the last event folded into the metrics.
        pub last_event_seq: i64,
        pub tier: Option<String>,
        /// When the metrics were last written (milliseconds).
        pub updated_at: i64,
        pub stage: Option<String>,
        pub stage_since: Option<i64>,
        /// Overrides in force, as JSON.
        pub overrides: Option<String>,
        /// Moves with every change of the row: a write computed from an older revision is
        /// refused (`crate::store`).
        pub revision: i64,
        /// The time of the grading run that set the tier and stage (milliseconds).
        pub graded_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One row per scored customer: the latest score and what derives from it, apart from the
/// metrics, so a re-score writes a narrow row.
pub mod score {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_scores")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_id: String,
        pub score: Option<f64>,
        /// The score in steps of [`crate::store::SCORE_STEP`] points ([`crate::store::score_step`]):
        /// what the lowest-scores index holds, so a re-score that moves a score within its
        /// step changes no indexed column.
        pub score_step: Option<i32>,
        pub band: Option<String>,
        /// Fingerprint of the latest snapshot: a re-score that gives the same stores nothing.
        pub fingerprint: Option<i64>,
        /// Digest of the alert signals last sent to alerting.
        pub signals: Option<i64>,
        /// Daily closing scores of the last month ([`crate::store::recent_bytes`], for trends).
        pub recent: Option<Vec<u8>>,
        pub updated_at: i64,
        /// The customer's revision the score was computed from.
        pub revision: i64,
        /// The latest snapshot's P(alive), once the tenant's models are fitted.
        pub p_alive: Option<f64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Score history: every computed score with the scorecard version and each measure's part.
pub mod snapshot {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_snapshots")]
    pub struct Model {
        /// Unique (from a sequence) and the order of a customer's snapshots, but not indexed
        /// on PostgreSQL: rows are found by customer and time.
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub customer_id: String,
        pub score: f64,
        pub band: String,
        pub tier: Option<String>,
        pub scorecard_version: String,
        /// Each measure's value, normalised score, weight and contribution, as JSON, in
        /// snapshots stored before `body`; empty in those that have one.
        pub measures: String,
        pub computed_at: i64,
        pub p_alive: Option<f64>,
        pub expected_purchases_90d: Option<f64>,
        pub clv_12m: Option<f64>,
        /// Groups, trends, overrides, freeze and stage, as JSON, beside `measures`.
        pub detail: Option<String>,
        /// The whole snapshot as the API's `HealthScore`, compressed (`crate::body`): the
        /// cached value, byte for byte.
        pub body: Option<Vec<u8>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fitted customer-base models per tenant; the latest fit of each model is the one in use.
pub mod model_fit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_model_fits")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        /// "bgnbd" or "gamma_gamma".
        pub model: String,
        /// Parameter name → value, as JSON (empty when the fit failed).
        pub params: String,
        pub log_likelihood: Option<f64>,
        pub iterations: i32,
        pub converged: bool,
        pub customers: i64,
        /// Why the fit failed, if it did.
        pub error: Option<String>,
        pub observation_end: i64,
        pub fitted_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Scorecard versions per tenant; the highest revision is in use.
pub mod scorecard {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_scorecards")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub revision: i64,
        pub toml: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every override ever set, with who set and cleared it and why (the audit trail).
pub mod score_override {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_overrides")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub customer_id: String,
        pub target: String,
        pub value: f64,
        pub author: String,
        pub reason: String,
        pub set_at: i64,
        pub expires_at: i64,
        pub cleared_at: Option<i64>,
        pub cleared_by: Option<String>,
        pub clear_reason: Option<String>,
        pub expiry_applied: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Each tenant's distribution of the measures normalised by percentile.
pub mod population {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_populations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub measure: String,
        /// The 101 quantiles, as JSON.
        pub quantiles: String,
        pub customers: i64,
        pub computed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How many of a tenant's customers were in each band, as the day's last whole-tenant
/// re-score counted them.
pub mod band_count {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_band_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// Days since the Unix epoch (UTC).
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: i64,
        pub red: i64,
        pub yellow: i64,
        pub green: i64,
        /// Customers without a score (no measure had data).
        pub unscored: i64,
        pub counted_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The customers whose score fell most over `days` (7 or 30), as the last whole-tenant
/// re-score found them.
pub mod faller {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "scoring_fallers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub days: i32,
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_id: String,
        /// Points over the window (negative: a fall).
        pub change: f64,
        pub counted_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
