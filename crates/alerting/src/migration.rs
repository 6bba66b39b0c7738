//! Alerting's schema, versioned in its own migration table.

use rapport_storage::schema::{
    add_columns, col, customer_col, customer_key, id_col, index, tenant_col,
};
use sea_orm_migration::prelude::*;

rapport_storage::migrator!(
    "alerting_migrations",
    [
        m20261123_000001_alerts::Migration,
        m20261124_000001_lifecycle::Migration,
        m20261204_000001_schedules::Migration,
        m20261206_000001_notifications::Migration,
        m20261209_000001_room_for_updates::Migration
    ]
);

mod m20261123_000001_alerts {
    use super::*;

    rapport_storage::migration_name!("m20261123_000001_alerts");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_alerts"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("rule").string().not_null())
                        .col(customer_col())
                        .col(col("dedup_key").text().not_null())
                        .col(col("open_key").text().null())
                        .col(col("state").string().not_null())
                        .col(col("score").double().not_null())
                        .col(col("tier").string().null())
                        .col(col("trigger_count").integer().not_null())
                        .col(col("opened_at").big_integer().not_null())
                        .col(col("updated_at").big_integer().not_null())
                        .col(col("resolved_at").big_integer().null())
                        .to_owned(),
                )
                .await?;
            // NULLs are distinct in a unique index (PostgreSQL and SQLite alike), so resolved
            // alerts (open_key NULL) never collide while open ones stay one per key.
            let mut one_open = index(
                "alerting_alerts",
                "alerting_alerts_one_open_per_key",
                &["tenant_id", "open_key"],
            );
            manager.create_index(one_open.unique().to_owned()).await?;
            manager
                .create_index(index(
                    "alerting_alerts",
                    "alerting_alerts_customer",
                    &["tenant_id", "customer_id"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_transitions"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("alert_id").big_integer().not_null())
                        .col(col("from_state").string().null())
                        .col(col("to_state").string().not_null())
                        .col(col("actor").string().not_null())
                        .col(col("reason").text().not_null())
                        .col(col("at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            Ok(())
        }
    }
}

mod m20261124_000001_lifecycle {
    use super::*;

    rapport_storage::migration_name!("m20261124_000001_lifecycle");

    /// Seven rule kinds with per-customer state, the full alert lifecycle, the watch log,
    /// webhooks and their deliveries, and interventions.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "alerting_alerts",
                vec![
                    col("severity").string().null().to_owned(),
                    col("discriminator").string().null().to_owned(),
                    col("evidence").text().null().to_owned(),
                    col("snoozed_until").big_integer().null().to_owned(),
                    col("recommendations").text().null().to_owned(),
                    col("holdout").boolean().null().to_owned(),
                    col("config_version").string().null().to_owned(),
                    col("baseline_score").double().null().to_owned(),
                    col("baseline_spend").double().null().to_owned(),
                    col("outcome_score").double().null().to_owned(),
                    col("outcome_spend").double().null().to_owned(),
                    col("outcome_retained").boolean().null().to_owned(),
                    col("outcome_at").big_integer().null().to_owned(),
                ],
            )
            .await?;
            add_columns(
                manager,
                "alerting_transitions",
                vec![col("config_version").string().null().to_owned()],
            )
            .await?;
            manager
                .create_index(index(
                    "alerting_alerts",
                    "alerting_alerts_snoozed",
                    &["snoozed_until"],
                ))
                .await?;
            manager
                .create_index(index(
                    "alerting_transitions",
                    "alerting_transitions_alert",
                    &["tenant_id", "alert_id"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_customers"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("state").text().not_null())
                        .col(col("next_check_at").big_integer().null())
                        .primary_key(&mut customer_key())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "alerting_customers",
                    "alerting_customers_due",
                    &["next_check_at"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_configs"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("version").string().not_null())
                        .col(col("toml").text().not_null())
                        .col(col("created_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "alerting_configs",
                    "alerting_configs_tenant",
                    &["tenant_id", "id"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_tenants"))
                        .if_not_exists()
                        .col(col("tenant_id").string().not_null().primary_key())
                        .col(col("revision").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_revisions"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("revision").big_integer().not_null())
                        .col(col("alert_id").big_integer().not_null())
                        .col(col("change").string().not_null())
                        .col(col("actor").string().not_null())
                        .col(col("reason").text().not_null())
                        .col(col("alert").text().not_null())
                        .col(col("at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("revision")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_webhooks"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("url").text().not_null())
                        .col(col("secrets").text().not_null())
                        .col(col("enabled").boolean().not_null())
                        .col(col("disabled_reason").text().null())
                        .col(col("created_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_deliveries"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("webhook_id").big_integer().not_null())
                        .col(col("message_id").string().not_null())
                        .col(col("event_type").string().not_null())
                        .col(col("payload").text().not_null())
                        .col(col("state").string().not_null())
                        .col(col("attempts").integer().not_null())
                        .col(col("next_attempt_at").big_integer().not_null())
                        .col(col("last_error").text().null())
                        .col(col("created_at").big_integer().not_null())
                        .col(col("updated_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "alerting_deliveries",
                    "alerting_deliveries_due",
                    &["state", "next_attempt_at"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_interventions"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("alert_id").big_integer().not_null())
                        .col(col("action").string().not_null())
                        .col(col("actor").string().not_null())
                        .col(col("at").big_integer().not_null())
                        .col(col("cost").double().not_null())
                        .col(col("note").text().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "alerting_interventions",
                    "alerting_interventions_alert",
                    &["tenant_id", "alert_id"],
                ))
                .await?;
            Ok(())
        }
    }
}

mod m20261204_000001_schedules {
    use super::*;

    rapport_storage::migration_name!("m20261204_000001_schedules");

    /// The periods of the sweeps and compactions, claimed by one replica each.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::coordination::create_schedule_table(manager, "alerting_schedules")
                .await
        }
    }
}

mod m20261206_000001_notifications {
    use super::*;

    rapport_storage::migration_name!("m20261206_000001_notifications");

    /// The queue's priority, and grouped notifications: each endpoint's route, what each endpoint has yet to hear (and
    /// has heard) of each alert, its groups with when they are due, and silences.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "alerting_webhooks",
                vec![col("route").text().null().to_owned()],
            )
            .await?;
            add_columns(
                manager,
                "alerting_alerts",
                vec![col("priority").double().null().to_owned()],
            )
            .await?;
            manager
                .create_index(index(
                    "alerting_alerts",
                    "alerting_alerts_priority",
                    &["tenant_id", "priority"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_notices"))
                        .if_not_exists()
                        .col(col("webhook_id").big_integer().not_null())
                        .col(col("alert_id").big_integer().not_null())
                        .col(tenant_col())
                        .col(col("group_key").text().not_null())
                        .col(col("labels").text().not_null())
                        .col(col("change").string().not_null())
                        .col(col("item").text().not_null())
                        .col(col("pending").boolean().not_null())
                        .col(col("announced").boolean().not_null())
                        .col(col("changed_at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("webhook_id"))
                                .col(Alias::new("alert_id")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "alerting_notices",
                    "alerting_notices_group",
                    &["webhook_id", "group_key"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_groups"))
                        .if_not_exists()
                        .col(col("webhook_id").big_integer().not_null())
                        .col(col("group_key").text().not_null())
                        .col(tenant_col())
                        .col(col("labels").text().not_null())
                        .col(col("backfill").text().null())
                        .col(col("pending_since").big_integer().null())
                        .col(col("last_sent_at").big_integer().null())
                        .col(col("due_at").big_integer().null())
                        .col(col("in_flight").text().null())
                        .col(col("held").big_integer().not_null().default(0))
                        .primary_key(
                            Index::create()
                                .col(Alias::new("webhook_id"))
                                .col(Alias::new("group_key")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index("alerting_groups", "alerting_groups_due", &["due_at"]))
                .await?;
            manager
                .create_index(index(
                    "alerting_deliveries",
                    "alerting_deliveries_message",
                    &["webhook_id", "message_id"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_silences"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("matcher").text().not_null())
                        .col(col("author").string().not_null())
                        .col(col("reason").text().not_null())
                        .col(col("starts_at").big_integer().not_null())
                        .col(col("ends_at").big_integer().not_null())
                        .col(col("created_at").big_integer().not_null())
                        .col(col("expired_by").string().null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "alerting_silences",
                    "alerting_silences_tenant",
                    &["tenant_id", "ends_at"],
                ))
                .await?;
            Ok(())
        }
    }
}

mod m20261209_000001_room_for_updates {
    use super::*;

    rapport_storage::migration_name!("m20261209_000001_room_for_updates");

    /// A customer's state is rewritten by every observation, a standing alert by its changes
    /// and its effect outcome: room on their pages keeps those updates in place.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::schema::room_for_updates(
                manager,
                &["alerting_customers", "alerting_alerts"],
            )
            .await
        }
    }
}
