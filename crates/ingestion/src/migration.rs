//! Ingestion's schema, versioned in its own migration table.

use rapport_storage::schema::{col, customer_col, id_col, index, tenant_col};
use sea_orm_migration::prelude::*;

/// The outbox of "these customers changed" notifications to scoring.
pub const OUTBOX: rapport_storage::outbox::Outbox =
    rapport_storage::outbox::Outbox::new("ingestion_outbox");

rapport_storage::migrator!(
    "ingestion_migrations",
    [
        m20261123_000001_events::Migration,
        m20261123_000002_quarantine_replay::Migration,
        m20261206_000001_backfill::Migration,
        m20261207_000001_keys::Migration
    ]
);

mod m20261123_000001_events {
    use super::*;

    rapport_storage::migration_name!("m20261123_000001_events");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("ingestion_events"))
                        .if_not_exists()
                        .col(
                            col("seq")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(tenant_col())
                        .col(col("event_id").string_len(100).not_null())
                        .col(customer_col())
                        .col(col("event_type").string().not_null())
                        .col(col("occurred_at").big_integer().not_null())
                        .col(col("sent_at").big_integer().null())
                        .col(col("received_at").big_integer().not_null())
                        .col(col("payload").blob().not_null())
                        .col(col("content_hash").string().not_null())
                        .to_owned(),
                )
                .await?;
            let mut idempotency = index(
                "ingestion_events",
                "ingestion_events_idempotency",
                &["tenant_id", "event_id"],
            );
            manager
                .create_index(idempotency.unique().to_owned())
                .await?;
            manager
                .create_index(index(
                    "ingestion_events",
                    "ingestion_events_customer",
                    &["tenant_id", "customer_id", "seq"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("ingestion_quarantine"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("event_id").text().not_null())
                        .col(col("reason").string().not_null())
                        .col(col("field").string().not_null())
                        .col(col("message").text().not_null())
                        .col(col("raw").blob().not_null())
                        .col(col("received_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            rapport_storage::outbox::create_table(manager, "ingestion_outbox").await
        }
    }
}

mod m20261123_000002_quarantine_replay {
    use super::*;

    rapport_storage::migration_name!("m20261123_000002_quarantine_replay");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("ingestion_quarantine"))
                        .add_column(col("replayed_at").big_integer().null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "ingestion_quarantine",
                    "ingestion_quarantine_tenant",
                    &["tenant_id", "id"],
                ))
                .await
        }
    }
}

mod m20261206_000001_backfill {
    use super::*;

    rapport_storage::migration_name!("m20261206_000001_backfill");

    /// The backfill (an import of history) each event came in with, NULL for live events.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::schema::add_columns(
                manager,
                "ingestion_events",
                vec![col("backfill").text().null().to_owned()],
            )
            .await
        }
    }
}

mod m20261207_000001_keys {
    use super::*;

    rapport_storage::migration_name!("m20261207_000001_keys");

    /// Managed API keys (their digests) and the audit of the key RPCs.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("ingestion_keys"))
                        .if_not_exists()
                        .col(col("id").string_len(32).not_null().primary_key())
                        .col(tenant_col())
                        .col(col("role").string().not_null())
                        .col(col("name").text().not_null())
                        .col(col("sha256").blob().not_null())
                        .col(col("created_at").big_integer().not_null())
                        .col(col("created_by").string().not_null())
                        .col(col("expires_at").big_integer().null())
                        .col(col("revoked_at").big_integer().null())
                        .col(col("revoked_by").string().null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("ingestion_key_audit"))
                        .if_not_exists()
                        .col(id_col())
                        .col(col("at").big_integer().not_null())
                        .col(col("actor").string().not_null())
                        .col(tenant_col())
                        .col(col("action").string().not_null())
                        .col(col("key_id").string().null())
                        .col(col("detail").text().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "ingestion_key_audit",
                    "ingestion_key_audit_tenant",
                    &["tenant_id", "id"],
                ))
                .await
        }
    }
}
