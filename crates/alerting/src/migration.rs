//! Alerting's schema, versioned with its own migration table.

use sea_orm_migration::prelude::*;

/// Alerting's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261123_000001_alerts::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("alerting_migrations").into_iden()
    }
}

mod m20261123_000001_alerts {
    use super::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261123_000001_alerts"
        }
    }

    fn c(name: &str) -> ColumnDef {
        ColumnDef::new(Alias::new(name))
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let alerts = Alias::new("alerting_alerts");
            manager
                .create_table(
                    Table::create()
                        .table(alerts.clone())
                        .if_not_exists()
                        .col(
                            c("id")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(c("tenant_id").string().not_null())
                        .col(c("rule").string().not_null())
                        .col(c("customer_id").string_len(100).not_null())
                        .col(c("dedup_key").text().not_null())
                        .col(c("open_key").text().null())
                        .col(c("state").string().not_null())
                        .col(c("score").double().not_null())
                        .col(c("tier").string().null())
                        .col(c("trigger_count").integer().not_null())
                        .col(c("opened_at").big_integer().not_null())
                        .col(c("updated_at").big_integer().not_null())
                        .col(c("resolved_at").big_integer().null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("alerting_alerts_one_open_per_key")
                        .table(alerts.clone())
                        .col(Alias::new("tenant_id"))
                        .col(Alias::new("open_key"))
                        .unique()
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("alerting_alerts_customer")
                        .table(alerts)
                        .col(Alias::new("tenant_id"))
                        .col(Alias::new("customer_id"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("alerting_transitions"))
                        .if_not_exists()
                        .col(
                            c("id")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(c("tenant_id").string().not_null())
                        .col(c("alert_id").big_integer().not_null())
                        .col(c("from_state").string().null())
                        .col(c("to_state").string().not_null())
                        .col(c("actor").string().not_null())
                        .col(c("reason").text().not_null())
                        .col(c("at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            Ok(())
        }
    }
}
