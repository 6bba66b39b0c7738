//! Alerting's tables.

/// Alerts; `open_key` equals `dedup_key` while the alert stands (open, acknowledged or
/// snoozed) and is NULL once resolved, so a unique index on (tenant, open_key) allows at most
/// one standing alert per key.
pub mod alert {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "alerting_alerts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub rule: String,
        pub customer_id: String,
        pub dedup_key: String,
        pub open_key: Option<String>,
        /// open, acknowledged, snoozed or resolved.
        pub state: String,
        pub score: f64,
        pub tier: Option<String>,
        pub trigger_count: i32,
        pub opened_at: i64,
        pub updated_at: i64,
        pub resolved_at: Option<i64>,
        pub severity: Option<String>,
        pub discriminator: Option<String>,
        pub evidence: Option<String>,
        pub snoozed_until: Option<i64>,
        /// Recommended actions as JSON; empty for the holdout.
        pub recommendations: Option<String>,
        pub holdout: Option<bool>,
        pub config_version: Option<String>,
        /// Health and spend when the alert opened, and as last observed within the effect
        /// window after it.
        pub baseline_score: Option<f64>,
        pub baseline_spend: Option<f64>,
        pub outcome_score: Option<f64>,
        pub outcome_spend: Option<f64>,
        pub outcome_retained: Option<bool>,
        pub outcome_at: Option<i64>,
        /// The work queue's order (`rapport_domain::alert::priority`); NULL on alerts older
        /// than it.
        pub priority: Option<f64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every state change of an alert, with who made it, why, and under which configuration.
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
        pub config_version: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What alerting knows of each customer (facts and rule tracks, as JSON), and when time
/// alone may change a condition.
pub mod customer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_id: String,
        pub state: String,
        pub next_check_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Tenants' alerting configurations, every version kept.
pub mod config {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_configs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub version: String,
        pub toml: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Per tenant, the revision of its latest alert change (the row that orders writers).
pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub revision: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The change log `WatchAlerts` streams: one row per alert change, numbered per tenant.
pub mod revision {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_revisions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub revision: i64,
        pub alert_id: i64,
        pub change: String,
        pub actor: String,
        pub reason: String,
        /// The alert after the change, as JSON.
        pub alert: String,
        pub at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Webhook endpoints with their signing secrets.
pub mod webhook {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_webhooks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub url: String,
        /// Secrets as JSON: the current one first, previous ones with their expiry.
        pub secrets: String,
        pub enabled: bool,
        pub disabled_reason: Option<String>,
        pub created_at: i64,
        /// The endpoint's route as JSON (`rapport_domain::alert::notify::Route`); NULL for the
        /// default route.
        pub route: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Webhook deliveries: pending ones are the outbox, dead ones the dead-letter list.
pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub webhook_id: i64,
        /// The `webhook-id` header: stable across retries and replays.
        pub message_id: String,
        pub event_type: String,
        pub payload: String,
        /// pending or dead (delivered ones are deleted).
        pub state: String,
        pub attempts: i32,
        pub next_attempt_at: i64,
        pub last_error: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Interventions recorded against alerts.
pub mod intervention {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_interventions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub alert_id: i64,
        pub action: String,
        pub actor: String,
        pub at: i64,
        pub cost: f64,
        pub note: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What each endpoint has yet to hear of each alert (pending), and the alerts it has heard
/// of that still stand (announced): one row per (endpoint, alert).
pub mod notice {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_notices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub webhook_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub alert_id: i64,
        pub tenant_id: String,
        pub group_key: String,
        /// The alert's labels as JSON (`rapport_domain::alert::notify::Labels`).
        pub labels: String,
        /// The change the endpoint has yet to hear of (or heard last).
        pub change: String,
        /// The alert as the endpoint will read it, JSON.
        pub item: String,
        pub pending: bool,
        /// The endpoint was told the alert opened (so it must hear that it resolved).
        pub announced: bool,
        pub changed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Each endpoint's notification groups and when each is next due.
pub mod group {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub webhook_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_key: String,
        pub tenant_id: String,
        /// The group's labels as JSON.
        pub labels: String,
        /// Set on a backfill's group: its one summary goes out when it is due.
        pub backfill: Option<String>,
        /// Since when changes wait (NULL when none do).
        pub pending_since: Option<i64>,
        pub last_sent_at: Option<i64>,
        /// When the group next goes out or is looked at again (NULL: nothing to do).
        pub due_at: Option<i64>,
        /// The `webhook-id`s of its last flush, JSON: the next waits until they are
        /// delivered (or dead), so an endpoint hears a group's changes in order.
        pub in_flight: Option<String>,
        /// How many of its notices its last flush held back (muted).
        pub held: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Silences: matchers whose alerts notify nobody between a start and an end.
pub mod silence {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "alerting_silences")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        /// JSON (`rapport_domain::alert::notify::Matcher`).
        pub matcher: String,
        pub author: String,
        pub reason: String,
        pub starts_at: i64,
        pub ends_at: i64,
        pub created_at: i64,
        /// Who ended it early, when someone did.
        pub expired_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
