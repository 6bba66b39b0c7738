//! Alerting's tables: alerts and the audit trail of their transitions.

/// Alerts; `open_key` equals `dedup_key` while the alert is open and is NULL once resolved,
/// so a unique index on (tenant, open_key) allows at most one open alert per key.
pub mod alert {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_alerts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub rule: String,
        pub customer_id: String,
        pub dedup_key: String,
        pub open_key: Option<String>,
        pub state: String,
        pub score: f64,
        pub tier: Option<String>,
        pub trigger_count: i32,
        pub opened_at: i64,
        pub updated_at: i64,
        pub resolved_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every state change of an alert, with who made it and why.
pub mod transition {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_transitions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub alert_id: i64,
        pub from_state: Option<String>,
        pub to_state: String,
        pub actor: String,
        pub reason: String,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
