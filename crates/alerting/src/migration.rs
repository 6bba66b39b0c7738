//! Alerting's schema, versioned in its own migration table.

use rapport_storage::schema::{col, id_col, index, tenant_col};
use sea_orm_migration::prelude::*;

rapport_storage::migrator!("alerting_migrations", [m20261123_000001_alerts::Migration]);

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
                        .col(col("customer_id").string_len(100).not_null())
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
