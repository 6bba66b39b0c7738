//! Segmentation's schema, versioned with its own migration table.

use sea_orm_migration::prelude::*;

/// The outbox of tier changes for scoring.
pub const OUTBOX: rapport_storage::outbox::Outbox =
    rapport_storage::outbox::Outbox::new("segmentation_outbox");

/// Segmentation's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261123_000001_tiers::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("segmentation_migrations").into_iden()
    }
}

mod m20261123_000001_tiers {
    use super::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261123_000001_tiers"
        }
    }

    fn c(name: &str) -> ColumnDef {
        ColumnDef::new(Alias::new(name))
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_customers"))
                        .if_not_exists()
                        .col(c("tenant_id").string().not_null())
                        .col(c("customer_id").string_len(100).not_null())
                        .col(c("tier").string().not_null())
                        .col(c("recency_score").integer().not_null())
                        .col(c("frequency_score").integer().not_null())
                        .col(c("monetary_score").integer().not_null())
                        .col(c("run_id").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("customer_id")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_tier_changes"))
                        .if_not_exists()
                        .col(
                            c("id")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(c("tenant_id").string().not_null())
                        .col(c("customer_id").string_len(100).not_null())
                        .col(c("old_tier").string().null())
                        .col(c("new_tier").string().not_null())
                        .col(c("reason").text().not_null())
                        .col(c("run_id").big_integer().not_null())
                        .col(c("at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_runs"))
                        .if_not_exists()
                        .col(
                            c("id")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(c("tenant_id").string().not_null())
                        .col(c("started_at").big_integer().not_null())
                        .col(c("finished_at").big_integer().not_null())
                        .col(c("customers").big_integer().not_null())
                        .col(c("tier_changes").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            rapport_storage::outbox::create_table(manager, "segmentation_outbox").await
        }
    }
}
