//! Scoring's schema, versioned with its own migration table.

use sea_orm_migration::prelude::*;

/// The outbox of new scores for alerting.
pub const OUTBOX: rapport_storage::outbox::Outbox =
    rapport_storage::outbox::Outbox::new("scoring_outbox");

/// Scoring's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261123_000001_scores::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("scoring_migrations").into_iden()
    }
}

mod m20261123_000001_scores {
    use super::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261123_000001_scores"
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
                        .table(Alias::new("scoring_customers"))
                        .if_not_exists()
                        .col(c("tenant_id").string().not_null())
                        .col(c("customer_id").string_len(100).not_null())
                        .col(c("metrics").text().not_null())
                        .col(c("last_event_seq").big_integer().not_null())
                        .col(c("tier").string().null())
                        .col(c("score").double().null())
                        .col(c("updated_at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("customer_id")),
                        )
                        .to_owned(),
                )
                .await?;
            let snapshots = Alias::new("scoring_snapshots");
            manager
                .create_table(
                    Table::create()
                        .table(snapshots.clone())
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
                        .col(c("score").double().not_null())
                        .col(c("band").string().not_null())
                        .col(c("tier").string().null())
                        .col(c("scorecard_version").string().not_null())
                        .col(c("measures").text().not_null())
                        .col(c("computed_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("scoring_snapshots_customer")
                        .table(snapshots)
                        .col(Alias::new("tenant_id"))
                        .col(Alias::new("customer_id"))
                        .col(Alias::new("id"))
                        .to_owned(),
                )
                .await?;
            rapport_storage::outbox::create_table(manager, "scoring_outbox").await
        }
    }
}
