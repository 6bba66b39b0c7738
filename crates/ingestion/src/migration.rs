//! Ingestion's schema, versioned with its own migration table.

use sea_orm_migration::prelude::*;

/// The outbox of "these customers changed" notifications to scoring.
pub const OUTBOX: rapport_storage::outbox::Outbox =
    rapport_storage::outbox::Outbox::new("ingestion_outbox");

/// Ingestion's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261123_000001_events::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("ingestion_migrations").into_iden()
    }
}

mod m20261123_000001_events {
    use super::*;

    pub struct Migration;

    impl MigrationName for Migration {
        fn name(&self) -> &str {
            "m20261123_000001_events"
        }
    }

    fn c(name: &str) -> ColumnDef {
        ColumnDef::new(Alias::new(name))
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let events = Alias::new("ingestion_events");
            manager
                .create_table(
                    Table::create()
                        .table(events.clone())
                        .if_not_exists()
                        .col(
                            c("seq")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(c("tenant_id").string().not_null())
                        .col(c("event_id").string_len(100).not_null())
                        .col(c("customer_id").string_len(100).not_null())
                        .col(c("event_type").string().not_null())
                        .col(c("occurred_at").big_integer().not_null())
                        .col(c("sent_at").big_integer().null())
                        .col(c("received_at").big_integer().not_null())
                        .col(c("payload").blob().not_null())
                        .col(c("content_hash").string().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("ingestion_events_idempotency")
                        .table(events.clone())
                        .col(Alias::new("tenant_id"))
                        .col(Alias::new("event_id"))
                        .unique()
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name("ingestion_events_customer")
                        .table(events)
                        .col(Alias::new("tenant_id"))
                        .col(Alias::new("customer_id"))
                        .col(Alias::new("seq"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("ingestion_quarantine"))
                        .if_not_exists()
                        .col(
                            c("id")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(c("tenant_id").string().not_null())
                        .col(c("event_id").text().not_null())
                        .col(c("reason").string().not_null())
                        .col(c("field").string().not_null())
                        .col(c("message").text().not_null())
                        .col(c("raw").blob().not_null())
                        .col(c("received_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            rapport_storage::outbox::create_table(manager, "ingestion_outbox").await
        }
    }
}
